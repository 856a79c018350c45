//! AWS errors reduced to what the reconcilers decide on: retry soon, back off, report and
//! wait, or treat as absent.

use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::http::Response as HttpResponse;

/// What an AWS failure means for the reconcile that saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorClass {
    /// The entity does not exist.
    NotFound,
    /// Throttled by AWS: back off longer.
    Throttled,
    /// 5xx, network failure, timeout, or IAM eventual consistency: retry soon.
    Transient,
    /// The entity exists already (a race with another writer, or a crash after create).
    AlreadyExists,
    /// The request can never succeed as is (malformed document, limit, access denied):
    /// report it and retry slowly.
    Terminal,
}

#[derive(Debug, thiserror::Error)]
#[error("{operation}: {}{message}", code.as_deref().map(|c| format!("{c}: ")).unwrap_or_default())]
pub struct AwsError {
    pub operation: &'static str,
    pub class: ErrorClass,
    pub code: Option<String>,
    pub message: String,
}

impl AwsError {
    pub fn is_not_found(&self) -> bool {
        self.class == ErrorClass::NotFound
    }

    /// An answer that lacks what the API promises: retried, since a well-formed answer is
    /// the normal case.
    pub fn unexpected(operation: &'static str, what: &str) -> Self {
        Self {
            operation,
            class: ErrorClass::Transient,
            code: None,
            message: format!("unexpected answer: {what}"),
        }
    }

    /// The error for a write refused locally because this replica no longer holds the leader
    /// lease: the new leader makes the write instead.
    pub fn not_leader(operation: &'static str) -> Self {
        Self {
            operation,
            class: ErrorClass::Transient,
            code: None,
            message: "not sent: this replica lost the leader lease".into(),
        }
    }

    pub fn from_sdk<E>(operation: &'static str, error: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        match &error {
            SdkError::ServiceError(context) => {
                let service_error = context.err();
                let code = service_error.code().map(str::to_owned);
                // An answer without an AWS error code (a proxy, a mock) is shown as it came.
                let message = service_error
                    .message()
                    .map(str::to_owned)
                    .unwrap_or_else(|| {
                        let raw = context.raw();
                        let body = raw
                            .body()
                            .bytes()
                            .map(String::from_utf8_lossy)
                            .unwrap_or_default();
                        format!(
                            "HTTP {}: {}",
                            raw.status().as_u16(),
                            body.chars().take(300).collect::<String>()
                        )
                    });
                let server_side = context.raw().status().is_server_error();
                // EC2 does not know a just-created instance profile for a few seconds (IAM is
                // eventually consistent): that is a retry, not a failure.
                let class = if is_unknown_new_profile(code.as_deref(), &message) {
                    ErrorClass::Transient
                } else {
                    classify(code.as_deref(), server_side)
                };
                Self {
                    operation,
                    class,
                    code,
                    message,
                }
            }
            // No answer at all (connection refused, timeout, dropped connection): retry.
            other => Self {
                operation,
                class: ErrorClass::Transient,
                code: None,
                message: describe_transport_error(other),
            },
        }
    }
}

/// Maps an AWS error code to its class; `server_side` is true for a 5xx answer. Throttling and
/// transient codes come from the SDK's own retry classifier lists, so they stay current.
pub fn classify(code: Option<&str>, server_side: bool) -> ErrorClass {
    use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
    if let Some(code) = code {
        if THROTTLING_ERRORS.contains(&code) {
            return ErrorClass::Throttled;
        }
        if TRANSIENT_ERRORS.contains(&code) {
            return ErrorClass::Transient;
        }
    }
    match code {
        Some(
            "NoSuchEntity"
            | "NoSuchEntityException"
            | "InvalidInstanceID.NotFound"
            | "InvalidAssociationID.NotFound",
        ) => ErrorClass::NotFound,
        Some("EntityAlreadyExists" | "EntityAlreadyExistsException") => ErrorClass::AlreadyExists,
        // DeleteConflict clears once the dependent detaches; ConcurrentModification and
        // ServiceFailure are IAM's own "try again". EC2's IncorrectState ("there is an existing
        // association") is what a retry after a crash sees: the next observe finds the
        // association and converges.
        Some(
            "IncorrectState"
            | "ServiceFailure"
            | "ServiceFailureException"
            | "InternalError"
            | "InternalFailure"
            | "ServiceUnavailable"
            | "DeleteConflict"
            | "DeleteConflictException"
            | "ConcurrentModification"
            | "ConcurrentModificationException",
        ) => ErrorClass::Transient,
        _ if server_side => ErrorClass::Transient,
        _ => ErrorClass::Terminal,
    }
}

/// EC2's answer for an instance profile IAM has created but EC2 does not know yet.
pub fn is_unknown_new_profile(code: Option<&str>, message: &str) -> bool {
    code == Some("InvalidParameterValue") && message.contains("Instance Profile")
}

fn describe_transport_error<E: std::error::Error + 'static>(
    error: &SdkError<E, HttpResponse>,
) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_entities_are_not_found() {
        assert_eq!(classify(Some("NoSuchEntity"), false), ErrorClass::NotFound);
    }

    #[test]
    fn throttling_backs_off() {
        for code in [
            "Throttling",
            "RequestLimitExceeded",
            "ThrottledException",
            "RequestThrottledException",
            "EC2ThrottledException",
            "SlowDown",
            "PriorRequestNotComplete",
            "TooManyRequestsException",
        ] {
            assert_eq!(classify(Some(code), false), ErrorClass::Throttled, "{code}");
        }
    }

    #[test]
    fn timeouts_and_existing_associations_are_retried() {
        assert_eq!(
            classify(Some("RequestTimeout"), false),
            ErrorClass::Transient
        );
        assert_eq!(
            classify(Some("IncorrectState"), false),
            ErrorClass::Transient
        );
    }

    #[test]
    fn server_failures_and_conflicts_retry() {
        assert_eq!(
            classify(Some("ServiceFailure"), true),
            ErrorClass::Transient
        );
        assert_eq!(classify(None, true), ErrorClass::Transient);
        assert_eq!(
            classify(Some("DeleteConflict"), false),
            ErrorClass::Transient
        );
    }

    #[test]
    fn a_profile_ec2_does_not_know_yet_is_retried() {
        let message = "Value (arn:aws:iam::123456789012:instance-profile/web) for parameter \
                       iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN";
        assert!(is_unknown_new_profile(
            Some("InvalidParameterValue"),
            message
        ));
        assert!(!is_unknown_new_profile(
            Some("InvalidParameterValue"),
            "Invalid instance id"
        ));
    }

    #[test]
    fn bad_requests_are_terminal() {
        for code in [
            "MalformedPolicyDocument",
            "LimitExceeded",
            "AccessDenied",
            "InvalidInput",
        ] {
            assert_eq!(classify(Some(code), false), ErrorClass::Terminal, "{code}");
        }
    }
}
