//! Counts of the AWS calls rolecall makes, by service, operation and outcome. Tests and
//! benchmarks read them to prove that a converged object costs no write; `/metrics` exports
//! them.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_async::future::pagination_stream::PaginationStream;
use aws_smithy_runtime_api::http::Response as HttpResponse;

use super::error::{AwsError, ErrorClass};

/// Whether a call can change AWS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CallKind {
    Read,
    Write,
}

impl CallKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CallKind::Read => "read",
            CallKind::Write => "write",
        }
    }
}

/// How a call ended: `ok`, or the class of its error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    Ok,
    Failed(ErrorClass),
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed(ErrorClass::NotFound) => "not_found",
            Outcome::Failed(ErrorClass::Throttled) => "throttled",
            Outcome::Failed(ErrorClass::Transient) => "transient",
            Outcome::Failed(ErrorClass::AlreadyExists) => "already_exists",
            Outcome::Failed(ErrorClass::Terminal) => "terminal",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallCount {
    pub ok: u64,
    pub failed: u64,
}

/// One counter's labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallKey {
    pub service: &'static str,
    pub kind: CallKind,
    pub operation: &'static str,
    pub outcome: Outcome,
}

#[derive(Debug, Default)]
pub struct CallLog {
    counts: Mutex<BTreeMap<CallKey, u64>>,
    /// Set when this replica loses the leader lease: from then on no write leaves the process,
    /// even from reconciles already in flight.
    writes_fenced: AtomicBool,
}

impl CallLog {
    /// Refuses every further write (the leader lease is lost; a stand-by may already lead).
    pub fn fence_writes(&self) {
        self.writes_fenced.store(true, Ordering::SeqCst);
    }

    pub fn writes_fenced(&self) -> bool {
        self.writes_fenced.load(Ordering::SeqCst)
    }

    pub fn record(&self, key: CallKey) {
        *self
            .counts
            .lock()
            .expect("call log lock")
            .entry(key)
            .or_default() += 1;
    }

    /// A handle that sends and counts the calls of one service (`iam`, `ec2`, `sts`).
    pub fn service(self: &Arc<Self>, service: &'static str) -> ServiceCalls {
        ServiceCalls {
            log: self.clone(),
            service,
        }
    }

    /// Every counter, by service, kind, operation and outcome.
    pub fn counters(&self) -> BTreeMap<CallKey, u64> {
        self.counts.lock().expect("call log lock").clone()
    }

    /// Every operation called so far with its counts, all services and error classes together.
    pub fn snapshot(&self) -> BTreeMap<(CallKind, &'static str), CallCount> {
        let mut snapshot = BTreeMap::<_, CallCount>::new();
        for (key, count) in self.counters() {
            let entry = snapshot.entry((key.kind, key.operation)).or_default();
            match key.outcome {
                Outcome::Ok => entry.ok += count,
                Outcome::Failed(_) => entry.failed += count,
            }
        }
        snapshot
    }

    /// Total calls of one kind, successful or not.
    pub fn total(&self, kind: CallKind) -> u64 {
        self.counters()
            .iter()
            .filter(|(key, _)| key.kind == kind)
            .map(|(_, count)| count)
            .sum()
    }
}

/// The calls of one service, counted into a shared [`CallLog`].
#[derive(Clone, Debug)]
pub struct ServiceCalls {
    log: Arc<CallLog>,
    service: &'static str,
}

impl ServiceCalls {
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
        self.refuse_fenced(kind, operation)?;
        let result = request.await;
        self.count(kind, operation, result)
    }

    /// Reads every page of an SDK paginator (`into_paginator().send()`), counting each page
    /// as one call, and hands each page to `each`. Stops at the first error.
    pub async fn pages<T, E>(
        &self,
        kind: CallKind,
        operation: &'static str,
        mut pages: PaginationStream<Result<T, SdkError<E, HttpResponse>>>,
        mut each: impl FnMut(T),
    ) -> Result<(), AwsError>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        loop {
            self.refuse_fenced(kind, operation)?;
            let Some(page) = pages.next().await else {
                return Ok(());
            };
            each(self.count(kind, operation, page)?);
        }
    }

    fn refuse_fenced(&self, kind: CallKind, operation: &'static str) -> Result<(), AwsError> {
        if kind == CallKind::Write && self.log.writes_fenced() {
            return Err(AwsError::not_leader(operation));
        }
        Ok(())
    }

    /// Counts one answered (or failed) request and classifies its error.
    fn count<T, E>(
        &self,
        kind: CallKind,
        operation: &'static str,
        result: Result<T, SdkError<E, HttpResponse>>,
    ) -> Result<T, AwsError>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let result = result.map_err(|error| AwsError::from_sdk(operation, error));
        let outcome = match &result {
            Ok(_) => Outcome::Ok,
            Err(error) => Outcome::Failed(error.class),
        };
        self.log.record(CallKey {
            service: self.service,
            kind,
            operation,
            outcome,
        });
        result
    }
}

// In a file of its own: tests/aws_permissions.rs reads src/aws/*.rs for the calls the
// operator makes, and these tests' calls are not the operator's.
#[cfg(test)]
mod tests;
