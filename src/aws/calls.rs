//! Counts of the AWS calls rolecall makes, by operation and outcome. Tests and benchmarks read
//! them to prove that a converged object costs no write.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;

use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::http::Response as HttpResponse;

use super::error::AwsError;

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

    /// Sends one request, counting it and classifying its error.
    pub async fn call<T, E>(
        &self,
        kind: CallKind,
        operation: &'static str,
        request: impl Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    ) -> Result<T, AwsError>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let result = request.await;
        self.record(kind, operation, result.is_ok());
        result.map_err(|error| AwsError::from_sdk(operation, error))
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
