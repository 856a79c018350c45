//! Each check passes on a clean account, fails on the state it looks for (naming the
//! offenders), and is Unknown, saying why, when its source could not be read.

use super::*;
use crate::aws::iam::account::{AccountSummary, AuthorizationDetails, CustomerPolicy, Permissions};
use crate::report::AccessKey;

const NOW: &str = "2026-12-01T12:00:00Z";

fn days_ago(days: i64) -> Option<Timestamp> {
    let now: Timestamp = NOW.parse().unwrap();
    Some(Timestamp::from_second(now.as_second() - days * 86_400).unwrap())
}

fn user(name: &str) -> Credentials {
    Credentials {
        user: name.into(),
        created: days_ago(10),
        ..Credentials::default()
    }
}

fn admin_document() -> String {
    // As IAM returns documents: URL-encoded.
    "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22%2A%22%2C%22Resource%22%3A%22%2A%22%7D%5D%7D".into()
}

/// An account every check passes.
fn clean() -> AccountSnapshot {
    let mut alice = user("alice");
    alice.password_enabled = true;
    alice.mfa_active = true;
    alice.password_last_used = days_ago(1);
    alice.access_keys[0] = AccessKey {
        active: true,
        last_rotated: days_ago(30),
        last_used: days_ago(2),
    };
    AccountSnapshot {
        now: NOW.parse().unwrap(),
        summary: Ok(AccountSummary {
            root_mfa_enabled: true,
            root_access_keys_present: false,
            users: 1,
            groups: 1,
        }),
        credential_report: Ok(CredentialReport {
            generated: days_ago(0),
            root: Some(Credentials {
                user: ROOT_ACCOUNT.into(),
                mfa_active: true,
                ..Credentials::default()
            }),
            users: vec![alice],
        }),
        password_policy: Ok(Some(PasswordPolicy {
            minimum_length: Some(14),
            reuse_prevention: Some(24),
            ..Default::default()
        })),
        virtual_mfa_users: Ok(vec!["arn:aws:iam::123456789012:user/alice".into()]),
        authorization: Ok(AuthorizationDetails {
            users: vec![Permissions {
                name: "alice".into(),
                ..Permissions::default()
            }],
            groups: vec![Permissions {
                name: "admin".into(),
                attached_policies: vec!["AdministratorAccess".into()],
                inline_policies: vec![],
            }],
            policies: vec![CustomerPolicy {
                name: "unattached-admin".into(),
                arn: "arn:aws:iam::123456789012:policy/unattached-admin".into(),
                attachment_count: 0,
                default_document: Some(admin_document()),
            }],
        }),
    }
}

fn verdict(snapshot: &AccountSnapshot, id: &str) -> Verdict {
    evaluate(snapshot)
        .into_iter()
        .find(|finding| finding.id == id)
        .unwrap_or_else(|| panic!("no check {id}"))
        .verdict
}

fn assert_result(snapshot: &AccountSnapshot, id: &str, result: CheckResult) -> Verdict {
    let verdict = verdict(snapshot, id);
    assert_eq!(verdict.result, result, "{id}: {verdict:?}");
    assert!(!verdict.reason.is_empty(), "{id}: a reason in words");
    verdict
}

fn unreadable() -> String {
    "GetThing: AccessDenied: not authorized".into()
}

#[test]
fn a_clean_account_passes_every_check() {
    let findings = evaluate(&clean());
    assert_eq!(findings.len(), CHECKS.len());
    for finding in findings {
        assert_eq!(finding.verdict.result, CheckResult::Pass, "{finding:?}");
    }
}

#[test]
fn check_ids_are_unique_and_prowler_styled() {
    let mut ids: Vec<&str> = CHECKS.iter().map(|check| check.id).collect();
    assert!(ids.iter().all(|id| id.starts_with("iam_")));
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), CHECKS.len());
}

#[test]
fn root_access_key_fails_from_the_summary_or_the_report_and_is_unknown_without_both() {
    let id = "iam_no_root_access_key";
    let mut snapshot = clean();
    if let Ok(summary) = &mut snapshot.summary {
        summary.root_access_keys_present = true;
    }
    let verdict = assert_result(&snapshot, id, CheckResult::Fail);
    assert_eq!(verdict.offenders, vec![ROOT_ACCOUNT]);
    assert!(verdict.reason.contains("only the root user"), "{verdict:?}");

    let mut snapshot = clean();
    snapshot.summary = Err(unreadable());
    if let Ok(report) = &mut snapshot.credential_report {
        report.root.as_mut().unwrap().access_keys[1].active = true;
    }
    assert_result(&snapshot, id, CheckResult::Fail);

    if let Ok(report) = &mut snapshot.credential_report {
        report.root = None;
    }
    let verdict = assert_result(&snapshot, id, CheckResult::Unknown);
    assert!(verdict.reason.contains("AccessDenied"), "{verdict:?}");
}

#[test]
fn root_mfa_fails_without_a_device_and_is_unknown_without_a_source() {
    let id = "iam_root_mfa_enabled";
    let mut snapshot = clean();
    if let Ok(summary) = &mut snapshot.summary {
        summary.root_mfa_enabled = false;
    }
    let verdict = assert_result(&snapshot, id, CheckResult::Fail);
    assert_eq!(verdict.offenders, vec![ROOT_ACCOUNT]);
    assert!(
        verdict.reason.contains("only the root user can"),
        "{verdict:?}"
    );

    snapshot.summary = Err(unreadable());
    snapshot.credential_report = Err(unreadable());
    assert_result(&snapshot, id, CheckResult::Unknown);
}

#[test]
fn root_hardware_mfa_fails_for_a_virtual_device_or_none() {
    let id = "iam_root_hardware_mfa_enabled";
    let mut snapshot = clean();
    if let Ok(users) = &mut snapshot.virtual_mfa_users {
        users.push("arn:aws:iam::123456789012:root".into());
    }
    let verdict = assert_result(&snapshot, id, CheckResult::Fail);
    assert!(verdict.reason.contains("virtual"), "{verdict:?}");

    let mut snapshot = clean();
    if let Ok(summary) = &mut snapshot.summary {
        summary.root_mfa_enabled = false;
    }
    assert_result(&snapshot, id, CheckResult::Fail);

    let mut snapshot = clean();
    snapshot.virtual_mfa_users = Err(unreadable());
    assert_result(&snapshot, id, CheckResult::Unknown);
}

#[test]
fn individual_users_fail_in_an_account_without_users() {
    let id = "iam_individual_users_exist";
    let mut snapshot = clean();
    if let Ok(summary) = &mut snapshot.summary {
        summary.users = 0;
    }
    assert_result(&snapshot, id, CheckResult::Fail);
    snapshot.summary = Err(unreadable());
    assert_result(&snapshot, id, CheckResult::Unknown);
}

#[test]
fn groups_fail_when_no_group_carries_a_policy() {
    let id = "iam_groups_assign_permissions";
    let mut snapshot = clean();
    if let Ok(details) = &mut snapshot.authorization {
        details.groups[0].attached_policies.clear();
    }
    assert_result(&snapshot, id, CheckResult::Fail);
    snapshot.authorization = Err(unreadable());
    assert_result(&snapshot, id, CheckResult::Unknown);
}

#[test]
fn password_checks_fail_without_a_policy_or_below_cis_and_are_unknown_unread() {
    let ids = [
        "iam_password_policy_exists",
        "iam_password_policy_minimum_length_14",
        "iam_password_policy_reuse_24",
    ];
    let mut snapshot = clean();
    snapshot.password_policy = Ok(None);
    for id in ids {
        assert_result(&snapshot, id, CheckResult::Fail);
    }
    snapshot.password_policy = Ok(Some(PasswordPolicy {
        minimum_length: Some(13),
        reuse_prevention: Some(23),
        ..Default::default()
    }));
    assert_result(&snapshot, ids[0], CheckResult::Pass);
    let length = assert_result(&snapshot, ids[1], CheckResult::Fail);
    assert!(length.reason.contains("13"), "{length:?}");
    assert_result(&snapshot, ids[2], CheckResult::Fail);
    snapshot.password_policy = Ok(Some(PasswordPolicy::default()));
    assert_result(&snapshot, ids[1], CheckResult::Fail);
    assert_result(&snapshot, ids[2], CheckResult::Fail);
    snapshot.password_policy = Err(unreadable());
    for id in ids {
        assert_result(&snapshot, id, CheckResult::Unknown);
    }
}

/// Adds `user` to the credential report of `snapshot`.
fn with_user(mut snapshot: AccountSnapshot, user: Credentials) -> AccountSnapshot {
    if let Ok(report) = &mut snapshot.credential_report {
        report.users.push(user);
    }
    snapshot
}

#[test]
fn console_users_without_mfa_are_named() {
    let id = "iam_user_mfa_enabled_console_access";
    let mut bob = user("bob");
    bob.password_enabled = true;
    let mut keys_only = user("ci");
    keys_only.access_keys[0].active = true;
    keys_only.access_keys[0].last_rotated = days_ago(1);
    let snapshot = with_user(with_user(clean(), bob), keys_only);
    let verdict = assert_result(&snapshot, id, CheckResult::Fail);
    assert_eq!(verdict.offenders, vec!["bob"]);
    let mut snapshot = clean();
    snapshot.credential_report = Err(unreadable());
    assert_result(&snapshot, id, CheckResult::Unknown);
}

#[test]
fn console_passwords_unused_for_45_days_are_named_counting_never_used_from_creation() {
    let id = "iam_user_console_access_unused";
    let mut idle = user("idle");
    idle.password_enabled = true;
    idle.password_last_used = days_ago(45);
    let mut never = user("never");
    never.password_enabled = true;
    never.password_last_changed = days_ago(60);
    let mut fresh = user("fresh");
    fresh.password_enabled = true;
    fresh.password_last_changed = days_ago(3);
    let snapshot = with_user(with_user(with_user(clean(), idle), never), fresh);
    let verdict = assert_result(&snapshot, id, CheckResult::Fail);
    assert_eq!(verdict.offenders, vec!["idle", "never"]);
    let mut snapshot = clean();
    snapshot.credential_report = Err(unreadable());
    assert_result(&snapshot, id, CheckResult::Unknown);
}

#[test]
fn active_keys_unused_for_45_days_are_named_inactive_ones_are_not() {
    let id = "iam_user_accesskey_unused";
    let mut idle = user("idle-key");
    idle.access_keys[1] = AccessKey {
        active: true,
        last_rotated: days_ago(50),
        last_used: None,
    };
    let mut off = user("off-key");
    off.access_keys[0] = AccessKey {
        active: false,
        last_rotated: days_ago(400),
        last_used: days_ago(300),
    };
    let snapshot = with_user(with_user(clean(), idle), off);
    let verdict = assert_result(&snapshot, id, CheckResult::Fail);
    assert_eq!(verdict.offenders, vec!["idle-key"]);
    let mut snapshot = clean();
    snapshot.credential_report = Err(unreadable());
    assert_result(&snapshot, id, CheckResult::Unknown);
}

#[test]
fn keys_older_than_90_days_are_named() {
    let id = "iam_rotate_access_key_90_days";
    let mut old = user("old-key");
    old.access_keys[0] = AccessKey {
        active: true,
        last_rotated: days_ago(91),
        last_used: days_ago(1),
    };
    let snapshot = with_user(clean(), old);
    let verdict = assert_result(&snapshot, id, CheckResult::Fail);
    assert_eq!(verdict.offenders, vec!["old-key"]);
    let mut snapshot = clean();
    snapshot.credential_report = Err(unreadable());
    assert_result(&snapshot, id, CheckResult::Unknown);
}

#[test]
fn users_with_policies_of_their_own_are_named() {
    let id = "iam_policy_attached_only_to_group_or_roles";
    let mut snapshot = clean();
    if let Ok(details) = &mut snapshot.authorization {
        details.users.push(Permissions {
            name: "direct".into(),
            attached_policies: vec!["ReadOnlyAccess".into()],
            inline_policies: vec![],
        });
        details.users.push(Permissions {
            name: "inline".into(),
            attached_policies: vec![],
            inline_policies: vec!["s3".into()],
        });
    }
    let verdict = assert_result(&snapshot, id, CheckResult::Fail);
    assert_eq!(verdict.offenders, vec!["direct", "inline"]);
    snapshot.authorization = Err(unreadable());
    assert_result(&snapshot, id, CheckResult::Unknown);
}

#[test]
fn attached_customer_policies_allowing_everything_are_named_unattached_ones_are_not() {
    let id = "iam_customer_attached_policy_no_administrative_privileges";
    let mut snapshot = clean();
    if let Ok(details) = &mut snapshot.authorization {
        details.policies.push(CustomerPolicy {
            name: "god-mode".into(),
            arn: "arn:aws:iam::123456789012:policy/god-mode".into(),
            attachment_count: 2,
            default_document: Some(admin_document()),
        });
    }
    let verdict = assert_result(&snapshot, id, CheckResult::Fail);
    assert_eq!(verdict.offenders, vec!["god-mode"]);

    let mut snapshot = clean();
    if let Ok(details) = &mut snapshot.authorization {
        details.policies.push(CustomerPolicy {
            name: "garbled".into(),
            attachment_count: 1,
            default_document: Some("%ZZ".into()),
            ..CustomerPolicy::default()
        });
    }
    let verdict = assert_result(&snapshot, id, CheckResult::Unknown);
    assert!(verdict.reason.contains("garbled"), "{verdict:?}");
    snapshot.authorization = Err(unreadable());
    assert_result(&snapshot, id, CheckResult::Unknown);
}

#[test]
fn administrator_means_allow_every_action_on_every_resource() {
    let grants = |document: serde_json::Value| grants_administrator(&document);
    assert!(grants(
        serde_json::json!({"Statement": {"Effect": "Allow", "Action": "*:*", "Resource": "*"}})
    ));
    assert!(grants(serde_json::json!({"Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "*"},
        {"Effect": "Allow", "Action": ["ec2:*", "*"], "Resource": ["*"]}]})));
    assert!(!grants(
        serde_json::json!({"Statement": {"Effect": "Deny", "Action": "*", "Resource": "*"}})
    ));
    assert!(!grants(
        serde_json::json!({"Statement": {"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::b/*"}})
    ));
    assert!(!grants(
        serde_json::json!({"Statement": {"Effect": "Allow", "Action": "iam:*", "Resource": "*"}})
    ));
}
