//! The generated console password: long and drawn from every character class, so that it
//! meets any password policy an account can set. Pure apart from the random source.

use crate::aws::iam::account::PasswordPolicy;
use crate::aws::iam::users::Sensitive;

const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const DIGITS: &[u8] = b"0123456789";
/// The symbols IAM's password policy counts (`RequireSymbols`).
pub const SYMBOLS: &[u8] = b"!@#$%^&*()_+-=[]{}|'";

/// Never shorter than this, whatever the policy asks.
pub const MIN_LENGTH: usize = 20;
/// IAM's longest password.
pub const MAX_LENGTH: usize = 128;

/// The length for `policy`: its minimum, but at least [`MIN_LENGTH`] (IAM's default policy,
/// with no password policy set, asks for 8).
pub fn length_for(policy: Option<&PasswordPolicy>) -> usize {
    let minimum = policy
        .and_then(|policy| policy.minimum_length)
        .map_or(0, |length| usize::try_from(length).unwrap_or(0));
    minimum.clamp(MIN_LENGTH, MAX_LENGTH)
}

/// A new password meeting `policy`: one character of every class, whether the policy asks
/// for it or not, the rest from all of them, shuffled.
pub fn generate(policy: Option<&PasswordPolicy>) -> Sensitive {
    let all: Vec<u8> = [UPPER, LOWER, DIGITS, SYMBOLS].concat();
    let length = length_for(policy);
    let mut password: Vec<u8> = [UPPER, LOWER, DIGITS, SYMBOLS]
        .iter()
        .map(|class| class[uniform(class.len())])
        .collect();
    while password.len() < length {
        password.push(all[uniform(all.len())]);
    }
    // Fisher-Yates, so the guaranteed characters are not always first.
    for i in (1..password.len()).rev() {
        password.swap(i, uniform(i + 1));
    }
    Sensitive::new(String::from_utf8(password).expect("ASCII"))
}

/// Whether `password` meets `policy` as IAM checks it (for the tests, and as a guard).
pub fn meets(password: &str, policy: Option<&PasswordPolicy>) -> bool {
    let bytes = password.as_bytes();
    let has = |class: &[u8]| bytes.iter().any(|b| class.contains(b));
    let Some(policy) = policy else {
        return bytes.len() >= 8;
    };
    let minimum = policy
        .minimum_length
        .map_or(8, |length| usize::try_from(length).unwrap_or(8));
    bytes.len() >= minimum
        && (!policy.require_uppercase || has(UPPER))
        && (!policy.require_lowercase || has(LOWER))
        && (!policy.require_numbers || has(DIGITS))
        && (!policy.require_symbols || has(SYMBOLS))
}

/// A uniformly random index below `bound` (rejection sampling: no modulo bias).
fn uniform(bound: usize) -> usize {
    let bound = bound as u64;
    let zone = u64::MAX - u64::MAX % bound;
    loop {
        let value = getrandom::u64().expect("the operating system's random source");
        if value < zone {
            return (value % bound) as usize;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(minimum_length: i32) -> PasswordPolicy {
        PasswordPolicy {
            minimum_length: Some(minimum_length),
            require_symbols: true,
            require_numbers: true,
            require_uppercase: true,
            require_lowercase: true,
            ..PasswordPolicy::default()
        }
    }

    #[test]
    fn passwords_meet_the_strictest_policy_and_are_at_least_twenty_long() {
        for minimum in [6, 14, 20, 32, 128] {
            let policy = policy(minimum);
            for _ in 0..200 {
                let password = generate(Some(&policy));
                let text = password.expose();
                assert!(meets(text, Some(&policy)), "{minimum}: {text}");
                assert_eq!(text.len(), (minimum as usize).max(MIN_LENGTH));
                for class in [UPPER, LOWER, DIGITS, SYMBOLS] {
                    assert!(text.bytes().any(|b| class.contains(&b)), "{text}");
                }
            }
        }
        // No policy: IAM's default (8 characters), and still 20 of every class.
        let text = generate(None).expose().to_owned();
        assert_eq!(text.len(), MIN_LENGTH);
        assert!(meets(&text, None));
    }

    #[test]
    fn passwords_differ_and_use_every_character() {
        let passwords: std::collections::BTreeSet<String> = (0..100)
            .map(|_| generate(None).expose().to_owned())
            .collect();
        assert_eq!(passwords.len(), 100);
        let used: std::collections::BTreeSet<u8> =
            passwords.iter().flat_map(|p| p.bytes()).collect();
        let alphabet = UPPER.len() + LOWER.len() + DIGITS.len() + SYMBOLS.len();
        assert_eq!(used.len(), alphabet, "2000 characters leave none unused");
    }

    #[test]
    fn a_short_or_classless_password_does_not_meet_the_policy() {
        let policy = policy(14);
        assert!(!meets("Aa1!", Some(&policy)));
        assert!(!meets("abcdefghijklmnop1!", Some(&policy)));
        assert!(meets("Abcdefghijklmnop1!", Some(&policy)));
    }

    #[test]
    fn the_password_never_prints() {
        let password = generate(None);
        assert_eq!(format!("{password:?} {password}"), "<redacted> <redacted>");
    }
}
