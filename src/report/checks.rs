//! The checks, pure functions of an [`AccountSnapshot`]: the IAM console's five security
//! recommendations and the CIS AWS Foundations IAM controls the IAM API can answer, under
//! Prowler's check ids (rolecall's own, in the same style, where Prowler has none).

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::{AccountSnapshot, CredentialReport, Credentials, ROOT_ACCOUNT};
use crate::api::report::CheckResult;
use crate::aws::iam::account::PasswordPolicy;

/// CIS 1.12: credentials unused this long are to be disabled.
pub const UNUSED_DAYS: i64 = 45;
/// CIS 1.14: access keys are to be rotated this often.
pub const ROTATION_DAYS: i64 = 90;
/// CIS 1.8 and 1.9.
pub const MINIMUM_PASSWORD_LENGTH: i32 = 14;
pub const PASSWORD_REUSE: i32 = 24;

/// One check: its id, what it asks for, and how it is decided.
pub struct Check {
    pub id: &'static str,
    pub title: &'static str,
    evaluate: fn(&AccountSnapshot) -> Verdict,
}

/// What a check concluded, in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub result: CheckResult,
    pub reason: String,
    pub offenders: Vec<String>,
}

impl Verdict {
    fn pass(reason: impl Into<String>) -> Self {
        Self {
            result: CheckResult::Pass,
            reason: reason.into(),
            offenders: vec![],
        }
    }

    fn fail(reason: impl Into<String>, offenders: Vec<String>) -> Self {
        Self {
            result: CheckResult::Fail,
            reason: reason.into(),
            offenders,
        }
    }

    fn unknown(reason: impl Into<String>) -> Self {
        Self {
            result: CheckResult::Unknown,
            reason: reason.into(),
            offenders: vec![],
        }
    }

    /// Fail naming `offenders`, or pass, with the words for each.
    fn offenders(
        offenders: Vec<String>,
        fail: impl FnOnce(&[String]) -> String,
        pass: &str,
    ) -> Self {
        if offenders.is_empty() {
            Self::pass(pass)
        } else {
            Self::fail(fail(&offenders), offenders)
        }
    }
}

/// A check's outcome, ready for status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub id: &'static str,
    pub title: &'static str,
    pub verdict: Verdict,
}

/// Every check, in the order status lists them.
pub const CHECKS: &[Check] = &[
    Check {
        id: "iam_no_root_access_key",
        title: "The root user has no access keys",
        evaluate: no_root_access_key,
    },
    Check {
        id: "iam_root_mfa_enabled",
        title: "MFA is enabled for the root user",
        evaluate: root_mfa_enabled,
    },
    Check {
        id: "iam_root_hardware_mfa_enabled",
        title: "The root user's MFA is a hardware device",
        evaluate: root_hardware_mfa_enabled,
    },
    Check {
        id: "iam_individual_users_exist",
        title: "Individual IAM users exist, so that nobody works as the root user",
        evaluate: individual_users_exist,
    },
    Check {
        id: "iam_groups_assign_permissions",
        title: "Groups are used to assign permissions",
        evaluate: groups_assign_permissions,
    },
    Check {
        id: "iam_password_policy_exists",
        title: "The account has a password policy",
        evaluate: password_policy_exists,
    },
    Check {
        id: "iam_user_mfa_enabled_console_access",
        title: "Every user with a console password has MFA enabled",
        evaluate: user_mfa_enabled_console_access,
    },
    Check {
        id: "iam_user_console_access_unused",
        title: "No console password has gone unused for 45 days or more",
        evaluate: user_console_access_unused,
    },
    Check {
        id: "iam_user_accesskey_unused",
        title: "No active access key has gone unused for 45 days or more",
        evaluate: user_accesskey_unused,
    },
    Check {
        id: "iam_rotate_access_key_90_days",
        title: "Active access keys are rotated every 90 days or less",
        evaluate: rotate_access_key_90_days,
    },
    Check {
        id: "iam_policy_attached_only_to_group_or_roles",
        title: "Users get permissions only through groups (no policy attached to or inline in a user)",
        evaluate: policy_attached_only_to_group_or_roles,
    },
    Check {
        id: "iam_customer_attached_policy_no_administrative_privileges",
        title: "No attached customer managed policy allows full administrative privileges (\"*:*\")",
        evaluate: customer_attached_policy_no_administrative_privileges,
    },
    Check {
        id: "iam_password_policy_minimum_length_14",
        title: "The password policy requires at least 14 characters",
        evaluate: password_policy_minimum_length_14,
    },
    Check {
        id: "iam_password_policy_reuse_24",
        title: "The password policy prevents reusing any of the last 24 passwords",
        evaluate: password_policy_reuse_24,
    },
];

/// Runs every check over `snapshot`.
pub fn evaluate(snapshot: &AccountSnapshot) -> Vec<Finding> {
    CHECKS
        .iter()
        .map(|check| Finding {
            id: check.id,
            title: check.title,
            verdict: (check.evaluate)(snapshot),
        })
        .collect()
}

const ONLY_ROOT: &str =
    "only the root user can change this: sign in as root, open Security credentials";

fn root_row(report: &CredentialReport) -> Option<&Credentials> {
    report.root.as_ref()
}

fn no_root_access_key(snapshot: &AccountSnapshot) -> Verdict {
    // The summary is live; the credential report may be hours old, so it is the fallback.
    let present = match (&snapshot.summary, &snapshot.credential_report) {
        (Ok(summary), _) => summary.root_access_keys_present,
        (Err(_), Ok(report)) if root_row(report).is_some() => {
            root_row(report).is_some_and(|root| root.access_keys.iter().any(|key| key.active))
        }
        (Err(summary), _) => {
            return Verdict::unknown(format!(
                "the account summary could not be read ({summary}) and the credential report has no root row"
            ));
        }
    };
    if present {
        Verdict::fail(
            format!("the root user has an access key; {ONLY_ROOT} and delete it"),
            vec![ROOT_ACCOUNT.into()],
        )
    } else {
        Verdict::pass("the root user has no access key")
    }
}

/// Whether root has an MFA device: from the live summary, else the credential report.
fn root_mfa(snapshot: &AccountSnapshot) -> Result<bool, String> {
    match (&snapshot.summary, &snapshot.credential_report) {
        (Ok(summary), _) => Ok(summary.root_mfa_enabled),
        (Err(_), Ok(report)) if root_row(report).is_some() => {
            Ok(root_row(report).is_some_and(|root| root.mfa_active))
        }
        (Err(summary), _) => Err(format!(
            "the account summary could not be read ({summary}) and the credential report has no root row"
        )),
    }
}

fn root_mfa_enabled(snapshot: &AccountSnapshot) -> Verdict {
    match root_mfa(snapshot) {
        Ok(true) => Verdict::pass("the root user has an MFA device"),
        Ok(false) => Verdict::fail(
            format!("the root user has no MFA device; {ONLY_ROOT} and assign one"),
            vec![ROOT_ACCOUNT.into()],
        ),
        Err(why) => Verdict::unknown(why),
    }
}

fn root_hardware_mfa_enabled(snapshot: &AccountSnapshot) -> Verdict {
    match root_mfa(snapshot) {
        Err(why) => Verdict::unknown(why),
        Ok(false) => Verdict::fail(
            format!(
                "the root user has no MFA device at all; {ONLY_ROOT} and assign a hardware one"
            ),
            vec![ROOT_ACCOUNT.into()],
        ),
        Ok(true) => match &snapshot.virtual_mfa_users {
            Err(error) => Verdict::unknown(format!(
                "the root user has MFA, but the virtual MFA devices could not be listed ({error})"
            )),
            Ok(users) if users.iter().any(|arn| arn.ends_with(":root")) => Verdict::fail(
                format!(
                    "the root user's MFA device is a virtual one; {ONLY_ROOT} and replace it with a hardware device"
                ),
                vec![ROOT_ACCOUNT.into()],
            ),
            Ok(_) => Verdict::pass("the root user's MFA device is not a virtual one"),
        },
    }
}

fn individual_users_exist(snapshot: &AccountSnapshot) -> Verdict {
    match &snapshot.summary {
        Err(error) => Verdict::unknown(format!("the account summary could not be read ({error})")),
        Ok(summary) if summary.users > 0 => {
            let plural = if summary.users == 1 { "" } else { "s" };
            Verdict::pass(format!(
                "the account has {} IAM user{plural}",
                summary.users
            ))
        }
        Ok(_) => Verdict::fail(
            "the account has no IAM user: create one per person (IamUser) rather than sharing the root user",
            vec![],
        ),
    }
}

fn groups_assign_permissions(snapshot: &AccountSnapshot) -> Verdict {
    let details = match &snapshot.authorization {
        Err(error) => {
            return Verdict::unknown(format!(
                "the account's users and groups could not be read ({error})"
            ));
        }
        Ok(details) => details,
    };
    let carrying: Vec<&str> = details
        .groups
        .iter()
        .filter(|group| !group.attached_policies.is_empty() || !group.inline_policies.is_empty())
        .map(|group| group.name.as_str())
        .collect();
    if carrying.is_empty() {
        Verdict::fail(
            "no group carries a policy: create groups with the permissions people need (IamGroup) and put users in them",
            vec![],
        )
    } else {
        Verdict::pass(format!("groups carry permissions: {}", carrying.join(", ")))
    }
}

/// The password policy, or the Verdict for a check that cannot look at one.
fn with_password_policy(
    snapshot: &AccountSnapshot,
    decide: impl FnOnce(&PasswordPolicy) -> Verdict,
) -> Verdict {
    match &snapshot.password_policy {
        Err(error) => Verdict::unknown(format!("the password policy could not be read ({error})")),
        Ok(None) => Verdict::fail(
            "the account has no password policy (AccountPasswordPolicy sets one)",
            vec![],
        ),
        Ok(Some(policy)) => decide(policy),
    }
}

fn password_policy_exists(snapshot: &AccountSnapshot) -> Verdict {
    with_password_policy(snapshot, |_| {
        Verdict::pass("the account has a password policy")
    })
}

fn password_policy_minimum_length_14(snapshot: &AccountSnapshot) -> Verdict {
    with_password_policy(snapshot, |policy| match policy.minimum_length {
        Some(length) if length >= MINIMUM_PASSWORD_LENGTH => {
            Verdict::pass(format!("passwords need at least {length} characters"))
        }
        length => Verdict::fail(
            format!(
                "passwords need only {} characters; require {MINIMUM_PASSWORD_LENGTH} or more",
                length.map_or("IAM's default 8".to_string(), |l| l.to_string())
            ),
            vec![],
        ),
    })
}

fn password_policy_reuse_24(snapshot: &AccountSnapshot) -> Verdict {
    with_password_policy(snapshot, |policy| match policy.reuse_prevention {
        Some(reuse) if reuse >= PASSWORD_REUSE => {
            Verdict::pass(format!("the last {reuse} passwords cannot be reused"))
        }
        Some(reuse) => Verdict::fail(
            format!(
                "only the last {reuse} passwords are remembered; prevent reuse of {PASSWORD_REUSE}"
            ),
            vec![],
        ),
        None => Verdict::fail(
            format!("password reuse is not prevented; prevent reuse of the last {PASSWORD_REUSE}"),
            vec![],
        ),
    })
}

/// The report's users, or the Verdict for a check that cannot read them.
fn with_credential_report(
    snapshot: &AccountSnapshot,
    decide: impl FnOnce(&CredentialReport) -> Verdict,
) -> Verdict {
    match &snapshot.credential_report {
        Err(error) => {
            Verdict::unknown(format!("the credential report could not be read ({error})"))
        }
        Ok(report) => decide(report),
    }
}

fn older_than(now: Timestamp, then: Option<Timestamp>, days: i64) -> bool {
    then.is_some_and(|then| now.as_second() - then.as_second() >= days * 86_400)
}

fn names(users: impl Iterator<Item = String>) -> Vec<String> {
    let mut names: Vec<String> = users.collect();
    names.sort();
    names.dedup();
    names
}

fn user_mfa_enabled_console_access(snapshot: &AccountSnapshot) -> Verdict {
    with_credential_report(snapshot, |report| {
        let offenders = names(
            report
                .users
                .iter()
                .filter(|user| user.password_enabled && !user.mfa_active)
                .map(|user| user.user.clone()),
        );
        Verdict::offenders(
            offenders,
            |names| {
                format!(
                    "{} can sign in to the console without MFA: {}",
                    count(names.len(), "user"),
                    names.join(", ")
                )
            },
            "every user with a console password has MFA",
        )
    })
}

fn user_console_access_unused(snapshot: &AccountSnapshot) -> Verdict {
    with_credential_report(snapshot, |report| {
        // A password never used counts from when it was set (CIS: unused since creation too).
        let offenders = names(
            report
                .users
                .iter()
                .filter(|user| user.password_enabled)
                .filter(|user| {
                    let last = user
                        .password_last_used
                        .or(user.password_last_changed)
                        .or(user.created);
                    older_than(snapshot.now, last, UNUSED_DAYS)
                })
                .map(|user| user.user.clone()),
        );
        Verdict::offenders(
            offenders,
            |names| {
                format!(
                    "console passwords unused for {UNUSED_DAYS} days or more: {}; delete their login profiles",
                    names.join(", ")
                )
            },
            "every console password was used within 45 days",
        )
    })
}

fn user_accesskey_unused(snapshot: &AccountSnapshot) -> Verdict {
    with_credential_report(snapshot, |report| {
        // A key never used counts from its creation.
        let offenders = names(
            report
                .users
                .iter()
                .filter(|user| {
                    user.access_keys.iter().any(|key| {
                        key.active
                            && older_than(
                                snapshot.now,
                                key.last_used.or(key.last_rotated),
                                UNUSED_DAYS,
                            )
                    })
                })
                .map(|user| user.user.clone()),
        );
        Verdict::offenders(
            offenders,
            |names| {
                format!(
                    "active access keys unused for {UNUSED_DAYS} days or more, of: {}; deactivate them",
                    names.join(", ")
                )
            },
            "every active access key was used within 45 days",
        )
    })
}

fn rotate_access_key_90_days(snapshot: &AccountSnapshot) -> Verdict {
    with_credential_report(snapshot, |report| {
        let offenders = names(
            report
                .users
                .iter()
                .filter(|user| {
                    user.access_keys.iter().any(|key| {
                        key.active && older_than(snapshot.now, key.last_rotated, ROTATION_DAYS)
                    })
                })
                .map(|user| user.user.clone()),
        );
        Verdict::offenders(
            offenders,
            |names| {
                format!(
                    "active access keys older than {ROTATION_DAYS} days, of: {}; rotate them",
                    names.join(", ")
                )
            },
            "every active access key is younger than 90 days",
        )
    })
}

fn policy_attached_only_to_group_or_roles(snapshot: &AccountSnapshot) -> Verdict {
    let details = match &snapshot.authorization {
        Err(error) => {
            return Verdict::unknown(format!("the account's users could not be read ({error})"));
        }
        Ok(details) => details,
    };
    let offenders = names(
        details
            .users
            .iter()
            .filter(|user| !user.attached_policies.is_empty() || !user.inline_policies.is_empty())
            .map(|user| user.name.clone()),
    );
    Verdict::offenders(
        offenders,
        |names| {
            format!(
                "{} carry policies of their own: {}; give them the permissions through a group",
                count(names.len(), "user"),
                names.join(", ")
            )
        },
        "no user carries a policy of its own",
    )
}

fn customer_attached_policy_no_administrative_privileges(snapshot: &AccountSnapshot) -> Verdict {
    let details = match &snapshot.authorization {
        Err(error) => {
            return Verdict::unknown(format!(
                "the customer managed policies could not be read ({error})"
            ));
        }
        Ok(details) => details,
    };
    let mut offenders = Vec::new();
    let mut unreadable = Vec::new();
    for policy in details.policies.iter().filter(|p| p.attachment_count > 0) {
        let document = policy
            .default_document
            .as_deref()
            .and_then(|raw| crate::equivalence::decode_iam_document(raw).ok());
        match document {
            Some(document) if grants_administrator(&document) => {
                offenders.push(policy.name.clone())
            }
            Some(_) => {}
            None => unreadable.push(policy.name.clone()),
        }
    }
    let offenders = names(offenders.into_iter());
    if !offenders.is_empty() {
        return Verdict::fail(
            format!(
                "attached customer managed policies allow \"*\" on \"*\": {}; grant what is needed instead",
                offenders.join(", ")
            ),
            offenders,
        );
    }
    if !unreadable.is_empty() {
        return Verdict::unknown(format!(
            "the documents of these attached policies could not be read: {}",
            unreadable.join(", ")
        ));
    }
    Verdict::pass("no attached customer managed policy allows \"*\" on \"*\"")
}

/// An `Allow` of every action (`*` or `*:*`) on every resource, as Prowler decides it
/// (conditions are not weighed).
pub fn grants_administrator(document: &Value) -> bool {
    let statements = match &document["Statement"] {
        Value::Array(statements) => statements.iter().collect(),
        statement @ Value::Object(_) => vec![statement],
        _ => vec![],
    };
    let has = |value: &Value, wanted: &[&str]| match value {
        Value::String(one) => wanted.contains(&one.as_str()),
        Value::Array(many) => many
            .iter()
            .any(|v| v.as_str().is_some_and(|one| wanted.contains(&one))),
        _ => false,
    };
    statements.into_iter().any(|statement| {
        statement["Effect"] == "Allow"
            && has(&statement["Action"], &["*", "*:*"])
            && has(&statement["Resource"], &["*"])
    })
}

fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

#[cfg(test)]
mod tests;
