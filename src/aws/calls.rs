//! Counts of the AWS calls rolecall makes, by operation and outcome. Tests and benchmarks read
//! them to prove that a converged object costs no write.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Whether a call can change AWS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CallKind {
    Read,
    Write,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallCount {
    pub ok: u64,
    pub failed: u64,
}

#[derive(Debug, Default)]
pub struct CallLog {
    counts: Mutex<BTreeMap<(CallKind, &'static str), CallCount>>,
}

impl CallLog {
    pub fn record(&self, kind: CallKind, operation: &'static str, ok: bool) {
        let mut counts = self.counts.lock().expect("call log lock");
        let count = counts.entry((kind, operation)).or_default();
        if ok {
            count.ok += 1;
        } else {
            count.failed += 1;
        }
    }

    /// Every operation called so far with its counts.
    pub fn snapshot(&self) -> BTreeMap<(CallKind, &'static str), CallCount> {
        self.counts.lock().expect("call log lock").clone()
    }

    /// Total calls of one kind, successful or not.
    pub fn total(&self, kind: CallKind) -> u64 {
        self.snapshot()
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|(_, count)| count.ok + count.failed)
            .sum()
    }
}
