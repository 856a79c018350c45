//! The Ready condition, its reasons, and the finalizer and tag names: every constant the
//! controllers share about how state is reported.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

pub const READY: &str = "Ready";

/// Finalizer holding a Kubernetes object until its AWS object is cleaned up.
pub const FINALIZER: &str = "iam.rolecall.dev/cleanup";

/// Tag marking an AWS object as created (or adopted) by one rolecall object.
pub const OWNER_TAG: &str = "rolecall.dev/owner";

/// Annotation allowing rolecall to take over an existing AWS object without its owner tag.
pub const ADOPT_ANNOTATION: &str = "rolecall.dev/adopt";

/// Annotation asking an IamUser for a new console password: each new value resets it once
/// (a new password, written to the Secret). rolecall never resets a password on its own.
pub const RESET_PASSWORD_ANNOTATION: &str = "rolecall.dev/reset-password";

pub mod reason {
    pub const AVAILABLE: &str = "Available";
    pub const RECONCILING: &str = "Reconciling";
    pub const DEPENDENCY_NOT_READY: &str = "DependencyNotReady";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const CONFLICT: &str = "Conflict";
    /// The namespace's Tenancy (or the default rules) does not allow the spec.
    pub const FORBIDDEN: &str = "Forbidden";
    pub const AWS_ERROR: &str = "AwsError";
    pub const DELETING: &str = "Deleting";
    /// Ready, with nothing to act on: a binding whose spec matches no live instance.
    pub const NO_INSTANCES: &str = "NoInstances";
    /// An IamUser's login profile exists but the Secret with its password does not.
    pub const PASSWORD_SECRET_MISSING: &str = "PasswordSecretMissing";
}

/// The Ready condition a reconcile concluded, before timestamps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Readiness {
    pub ready: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Readiness {
    pub fn available(message: impl Into<String>) -> Self {
        Self {
            ready: true,
            reason: reason::AVAILABLE,
            message: message.into(),
        }
    }

    pub fn not_ready(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            ready: false,
            reason,
            message: message.into(),
        }
    }
}

/// The conditions after setting Ready, keeping `lastTransitionTime` when the status did not
/// flip so that an unchanged outcome produces an identical status (and no write).
pub fn with_ready(
    previous: &[Condition],
    readiness: &Readiness,
    generation: Option<i64>,
) -> Vec<Condition> {
    let status = if readiness.ready { "True" } else { "False" };
    let old = previous.iter().find(|condition| condition.type_ == READY);
    let last_transition_time = match old {
        Some(old) if old.status == status => old.last_transition_time.clone(),
        _ => Time(Timestamp::now()),
    };
    let mut conditions: Vec<Condition> = previous
        .iter()
        .filter(|condition| condition.type_ != READY)
        .cloned()
        .collect();
    conditions.push(Condition {
        type_: READY.into(),
        status: status.into(),
        reason: readiness.reason.into(),
        message: readiness.message.clone(),
        observed_generation: generation,
        last_transition_time,
    });
    conditions
}

/// The owner tag value for an object: `<cluster>/<namespace>/<name>`.
pub fn owner_value(cluster: &str, namespace: &str, name: &str) -> String {
    format!("{cluster}/{namespace}/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_status_keeps_its_transition_time() {
        let first = with_ready(&[], &Readiness::available("ok"), Some(1));
        let second = with_ready(&first, &Readiness::available("ok"), Some(1));
        assert_eq!(first, second);
    }

    #[test]
    fn flipped_status_gets_a_new_transition_time_and_reason() {
        let old = vec![Condition {
            type_: READY.into(),
            status: "False".into(),
            reason: reason::RECONCILING.into(),
            message: String::new(),
            observed_generation: Some(1),
            last_transition_time: Time(Timestamp::UNIX_EPOCH),
        }];
        let new = with_ready(&old, &Readiness::available("ok"), Some(2));
        assert_eq!(new.len(), 1);
        assert_eq!(new[0].status, "True");
        assert_eq!(new[0].reason, reason::AVAILABLE);
        assert_ne!(new[0].last_transition_time, Time(Timestamp::UNIX_EPOCH));
        assert_eq!(new[0].observed_generation, Some(2));
    }
}
