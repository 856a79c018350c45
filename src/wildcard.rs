//! EC2 filter and IAM name wildcards, matched in linear time.

/// EC2 filter wildcards: `*` any run of characters, `?` one character. Greedy with one
/// resume point (the last `*`), so it takes at most pattern × value steps whatever the pattern:
/// a user's `**********x` must not cost exponential time on every other binding's check.
pub fn wildcard_match(pattern: &str, value: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let value: Vec<char> = value.chars().collect();
    let (mut p, mut v) = (0, 0);
    // After the last `*` seen: where the pattern resumes, and the value position it covers to.
    let mut resume: Option<(usize, usize)> = None;
    while v < value.len() {
        match pattern.get(p) {
            Some('*') => {
                p += 1;
                resume = Some((p, v));
            }
            Some('?') => {
                p += 1;
                v += 1;
            }
            Some(c) if *c == value[v] => {
                p += 1;
                v += 1;
            }
            _ => match resume {
                // Let the last `*` take one more character and try again from there.
                Some((after_star, covered)) => {
                    p = after_star;
                    v = covered + 1;
                    resume = Some((after_star, covered + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}
