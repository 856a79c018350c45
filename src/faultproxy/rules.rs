//! Fault rules and the decision which fault, if any, a request gets. Pure: time and randomness
//! come in as arguments, so the decisions are unit-tested and reproducible from a seed.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// What the proxy does to a request a rule picks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Answer the service's throttling error without forwarding.
    Throttle,
    /// Answer HTTP 500 without forwarding.
    InternalError,
    /// Wait, then forward as usual.
    Latency { ms: u64 },
    /// Read the request, then close the connection without an answer.
    Drop,
    /// Forward (the write happens), then answer HTTP 500: the client believes it failed.
    FailAfterForward,
    /// The endpoint is down: every request's connection is closed without an answer,
    /// whatever `operations` says.
    Outage,
}

impl Fault {
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Throttle => "throttle",
            Fault::InternalError => "internal_error",
            Fault::Latency { .. } => "latency",
            Fault::Drop => "drop",
            Fault::FailAfterForward => "fail_after_forward",
            Fault::Outage => "outage",
        }
    }
}

/// One rule: which requests, how often, how many times, for how long.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Operation names with `*` wildcards (`CreateRole`, `Create*`, `*`); empty means all.
    #[serde(default)]
    pub operations: Vec<String>,
    pub fault: Fault,
    /// Fraction of matching requests faulted (drawn from the seeded generator); default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Fault only every Nth matching request (the Nth, 2Nth...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<u64>,
    /// Stop after faulting this many requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u64>,
    /// The rule lapses this long after it is installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

impl Rule {
    pub fn new(operations: &[&str], fault: Fault) -> Self {
        Self {
            operations: operations.iter().map(|op| op.to_string()).collect(),
            fault,
            rate: None,
            every: None,
            max: None,
            duration_ms: None,
        }
    }

    pub fn rate(mut self, rate: f64) -> Self {
        self.rate = Some(rate);
        self
    }

    pub fn every(mut self, every: u64) -> Self {
        self.every = Some(every);
        self
    }

    pub fn max(mut self, max: u64) -> Self {
        self.max = Some(max);
        self
    }

    pub fn for_duration(mut self, duration: Duration) -> Self {
        self.duration_ms = Some(duration.as_millis() as u64);
        self
    }

    pub fn matches(&self, operation: &str) -> bool {
        self.fault == Fault::Outage
            || self.operations.is_empty()
            || self
                .operations
                .iter()
                .any(|pattern| crate::controllers::binding::wildcard_match(pattern, operation))
    }
}

/// The rule set the proxy is given: ordered rules (the first that fires wins) and the seed of
/// the generator behind `rate`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

impl Rules {
    pub fn new(rules: Vec<Rule>) -> Self {
        Self { seed: None, rules }
    }

    pub fn seeded(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }
}

/// A rule with its counters, as `GET /__faults` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleState {
    #[serde(flatten)]
    pub rule: Rule,
    /// Requests the rule matched while active.
    pub matched: u64,
    /// Requests it faulted.
    pub applied: u64,
    #[serde(skip)]
    installed: Instant,
}

/// The installed rules and the generator: decides per request.
#[derive(Debug)]
pub struct Injector {
    rules: Vec<RuleState>,
    random: SplitMix,
}

impl Injector {
    pub fn new(rules: Rules, now: Instant) -> Self {
        let seed = rules.seed.unwrap_or_else(seed_from_clock);
        Self {
            rules: rules
                .rules
                .into_iter()
                .map(|rule| RuleState {
                    rule,
                    matched: 0,
                    applied: 0,
                    installed: now,
                })
                .collect(),
            random: SplitMix(seed),
        }
    }

    pub fn rules(&self) -> &[RuleState] {
        &self.rules
    }

    /// Whether an outage rule is in force: checked before a request is read, whatever its
    /// operation.
    pub fn outage(&mut self, now: Instant) -> bool {
        self.first_firing(now, |rule| rule.fault == Fault::Outage)
            .is_some()
    }

    /// The fault for one request (outages aside), counting it against every rule it reaches.
    pub fn decide(&mut self, operation: &str, now: Instant) -> Option<Fault> {
        self.first_firing(now, |rule| {
            rule.fault != Fault::Outage && rule.matches(operation)
        })
    }

    fn first_firing(&mut self, now: Instant, applies: impl Fn(&Rule) -> bool) -> Option<Fault> {
        for state in &mut self.rules {
            let rule = &state.rule;
            let lapsed = rule
                .duration_ms
                .is_some_and(|ms| now.duration_since(state.installed) >= Duration::from_millis(ms));
            let exhausted = rule.max.is_some_and(|max| state.applied >= max);
            if lapsed || exhausted || !applies(rule) {
                continue;
            }
            state.matched += 1;
            if rule.every.is_some_and(|n| n == 0 || state.matched % n != 0) {
                continue;
            }
            if let Some(rate) = rule.rate
                && self.random.next_fraction() >= rate
            {
                continue;
            }
            state.applied += 1;
            return Some(rule.fault.clone());
        }
        None
    }
}

fn seed_from_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() as u64)
        .unwrap_or(0x5eed)
}

/// SplitMix64: small, fast, and the same sequence for the same seed everywhere.
#[derive(Debug)]
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_fraction(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn injector(rules: Vec<Rule>) -> (Injector, Instant) {
        let now = Instant::now();
        (Injector::new(Rules::new(rules).seeded(7), now), now)
    }

    #[test]
    fn patterns_match_operations_with_wildcards() {
        let rule = Rule::new(&["Create*", "AttachRolePolicy"], Fault::Throttle);
        assert!(rule.matches("CreateRole"));
        assert!(rule.matches("AttachRolePolicy"));
        assert!(!rule.matches("GetRole"));
        assert!(Rule::new(&["*"], Fault::Drop).matches("GetRole"));
        assert!(Rule::new(&[], Fault::Drop).matches("GetRole"));
        assert!(Rule::new(&["GetRole"], Fault::Outage).matches("ListRoles"));
    }

    #[test]
    fn every_nth_and_max_bound_the_faults() {
        let (mut injector, now) =
            injector(vec![Rule::new(&["*"], Fault::Throttle).every(2).max(2)]);
        let decided: Vec<bool> = (0..8)
            .map(|_| injector.decide("GetRole", now).is_some())
            .collect();
        assert_eq!(
            decided,
            [false, true, false, true, false, false, false, false]
        );
        assert_eq!(injector.rules()[0].applied, 2);
    }

    #[test]
    fn the_first_rule_that_fires_wins_and_others_fall_through() {
        let (mut injector, now) = injector(vec![
            Rule::new(&["CreateRole"], Fault::Drop).max(1),
            Rule::new(&["*"], Fault::InternalError),
        ]);
        assert_eq!(injector.decide("CreateRole", now), Some(Fault::Drop));
        assert_eq!(
            injector.decide("CreateRole", now),
            Some(Fault::InternalError)
        );
        assert_eq!(injector.decide("GetRole", now), Some(Fault::InternalError));
    }

    #[test]
    fn rates_are_reproducible_from_the_seed_and_close_to_the_fraction() {
        let run = || {
            let (mut injector, now) = injector(vec![Rule::new(&["*"], Fault::Throttle).rate(0.3)]);
            (0..1000)
                .map(|_| injector.decide("GetRole", now).is_some())
                .collect::<Vec<_>>()
        };
        let first = run();
        assert_eq!(first, run());
        let faulted = first.iter().filter(|hit| **hit).count();
        assert!((250..350).contains(&faulted), "{faulted} of 1000");
    }

    #[test]
    fn a_rule_lapses_after_its_duration() {
        let (mut injector, now) = injector(vec![
            Rule::new(&[], Fault::Outage).for_duration(Duration::from_secs(60)),
        ]);
        assert!(injector.outage(now));
        assert_eq!(injector.decide("GetRole", now), None);
        let later = now + Duration::from_secs(61);
        assert!(!injector.outage(later));
    }

    #[test]
    fn rules_read_from_json() {
        let rules: Rules = serde_json::from_str(
            r#"{"seed": 1, "rules": [
                {"operations": ["Create*"], "fault": {"kind": "fail_after_forward"}, "max": 3},
                {"fault": {"kind": "latency", "ms": 200}, "rate": 0.5}
            ]}"#,
        )
        .unwrap();
        assert_eq!(rules.rules[0].fault, Fault::FailAfterForward);
        assert_eq!(rules.rules[1].fault, Fault::Latency { ms: 200 });
        assert!(
            serde_json::from_str::<Rules>(r#"{"rules": [{"fault": {"kind": "explode"}}]}"#)
                .is_err()
        );
    }
}
