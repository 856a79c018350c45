//! The reconcilers' error, and what each kind of failure means for the Ready condition and
//! the next attempt.

use std::time::Duration;

use crate::aws::{AwsError, ErrorClass};
use crate::conditions::{Readiness, reason};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec cannot be applied; waits for the user to change it.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),

    /// The AWS object belongs to someone else.
    #[error("{0}")]
    Conflict(String),

    /// The namespace's Tenancy (or the default rules) does not allow this spec. Checked
    /// before any AWS write; a change of the Tenancy re-triggers us.
    #[error("{0}")]
    Forbidden(String),

    /// A referenced object is missing or not Ready; its watch re-triggers us.
    #[error("{0}")]
    DependencyNotReady(String),

    /// Another object still refers to this one: its deletion waits for that object to go.
    #[error("{0}")]
    InUse(String),

    #[error(transparent)]
    Aws(#[from] AwsError),

    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

impl Error {
    /// The Ready condition this error leaves on the object.
    pub fn readiness(&self) -> Readiness {
        match self {
            Error::InvalidSpec(message) => {
                Readiness::not_ready(reason::INVALID_SPEC, message.clone())
            }
            Error::Conflict(message) => Readiness::not_ready(reason::CONFLICT, message.clone()),
            Error::Forbidden(message) => Readiness::not_ready(reason::FORBIDDEN, message.clone()),
            Error::DependencyNotReady(message) => {
                Readiness::not_ready(reason::DEPENDENCY_NOT_READY, message.clone())
            }
            Error::InUse(message) => Readiness::not_ready(reason::DELETING, message.clone()),
            Error::Aws(error) => match error.class {
                // Throttling and IAM's eventual consistency are expected: still converging.
                ErrorClass::Throttled | ErrorClass::Transient | ErrorClass::AlreadyExists => {
                    Readiness::not_ready(reason::RECONCILING, format!("retrying after {error}"))
                }
                ErrorClass::Terminal | ErrorClass::NotFound => {
                    Readiness::not_ready(reason::AWS_ERROR, error.to_string())
                }
            },
            Error::Kube(error) => Readiness::not_ready(
                reason::RECONCILING,
                format!("retrying after Kubernetes API error: {error}"),
            ),
        }
    }

    /// Waiting for another object, not a failure: logged quietly.
    pub fn is_expected(&self) -> bool {
        matches!(self, Error::DependencyNotReady(_) | Error::InUse(_))
    }

    /// Delay before the next attempt, given how many attempts in a row have failed (from 1);
    /// `None` waits for a change to the object.
    pub fn retry_after(&self, failures: u32) -> Option<Duration> {
        let exponential = |base: u64, cap: u64| {
            let factor = 1u64 << failures.saturating_sub(1).min(16);
            Duration::from_secs(base.saturating_mul(factor).min(cap))
        };
        match self {
            Error::InvalidSpec(_) => None,
            // A Tenancy or Namespace change wakes every object it may concern; the retry only
            // repeats the check, which reads no AWS state before refusing.
            Error::Forbidden(_) => Some(exponential(60, 600)),
            Error::Conflict(_) => Some(exponential(30, 600)),
            // The other object's change wakes us through a watch; this is only the safety net,
            // kept short because the trigger can arrive a moment before the store that the
            // next attempt reads. It reads only the stores, never AWS.
            Error::DependencyNotReady(_) | Error::InUse(_) => Some(exponential(1, 10)),
            Error::Aws(error) => Some(match error.class {
                ErrorClass::Throttled => exponential(10, 300),
                ErrorClass::Transient | ErrorClass::AlreadyExists => exponential(1, 120),
                // Never a hot loop on a request that cannot succeed as is.
                ErrorClass::Terminal | ErrorClass::NotFound => exponential(60, 1800),
            }),
            Error::Kube(_) => Some(exponential(1, 60)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aws(class: ErrorClass) -> Error {
        Error::Aws(AwsError {
            operation: "CreateRole",
            class,
            code: None,
            message: "x".into(),
        })
    }

    #[test]
    fn invalid_spec_waits_for_a_change() {
        assert_eq!(Error::InvalidSpec("x".into()).retry_after(1), None);
    }

    #[test]
    fn terminal_errors_back_off_slowly_and_are_capped() {
        let first = aws(ErrorClass::Terminal).retry_after(1).unwrap();
        let later = aws(ErrorClass::Terminal).retry_after(30).unwrap();
        assert!(first >= Duration::from_secs(60));
        assert_eq!(later, Duration::from_secs(1800));
    }

    #[test]
    fn transient_errors_retry_soon_and_grow() {
        let first = aws(ErrorClass::Transient).retry_after(1).unwrap();
        let third = aws(ErrorClass::Transient).retry_after(3).unwrap();
        assert_eq!(first, Duration::from_secs(1));
        assert_eq!(third, Duration::from_secs(4));
    }

    #[test]
    fn throttling_is_reported_as_reconciling_not_failure() {
        assert_eq!(
            aws(ErrorClass::Throttled).readiness().reason,
            reason::RECONCILING
        );
        assert_eq!(
            aws(ErrorClass::Terminal).readiness().reason,
            reason::AWS_ERROR
        );
    }
}
