use super::*;
use crate::conditions::OWNER_TAG;

fn inline(action: &str) -> (PolicyDocument, String) {
    let document: PolicyDocument = serde_json::from_value(serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{ "Effect": "Allow", "Action": action, "Resource": "*" }],
    }))
    .unwrap();
    let json = crate::equivalence::to_iam_json(&document);
    (document, json)
}

fn desired() -> Desired {
    Desired {
        name: "administrator".into(),
        path: "/".into(),
        permissions_boundary: Some("arn:aws:iam::aws:policy/PowerUserAccess".into()),
        groups: ["admin".to_string()].into(),
        managed_policy_arns: ["arn:aws:iam::aws:policy/ReadOnlyAccess".to_string()].into(),
        inline_policies: [("mfa".to_string(), inline("iam:ListMFADevices"))].into(),
        tags: [(OWNER_TAG.to_string(), "c/ns/administrator".to_string())].into(),
        console: Some(Console {
            secret: "administrator-password".into(),
            password_reset_required: true,
            reset_request: None,
        }),
        keys: None,
        reset_recorded: None,
        recorded_password_secret: Some("administrator-password".into()),
        recorded_key_secret: None,
    }
}

fn converged(desired: &Desired) -> Observed {
    Observed {
        now: 1_000_000,
        user: Some(ObservedUser {
            arn: "arn:aws:iam::123456789012:user/administrator".into(),
            user_id: "AIDA".into(),
            path: "/".into(),
            permissions_boundary: desired.permissions_boundary.clone(),
            tags: desired.tags.clone(),
            password_last_used: Some(999_000),
        }),
        groups: desired.groups.clone(),
        attached: desired.managed_policy_arns.clone(),
        inline: desired
            .inline_policies
            .iter()
            .map(|(name, (_, json))| (name.clone(), json.clone()))
            .collect(),
        login_profile: Some(LoginProfile {
            created: 900_000,
            password_reset_required: false,
        }),
        password_policy: None,
        password_in_secret: true,
        access_keys: vec![],
        last_used: BTreeMap::new(),
        key_in_secret: None,
        mfa_devices: vec!["arn:aws:iam::123456789012:mfa/administrator".into()],
    }
}

fn missing() -> Observed {
    Observed {
        user: None,
        groups: BTreeSet::new(),
        attached: BTreeSet::new(),
        inline: BTreeMap::new(),
        login_profile: None,
        password_in_secret: false,
        mfa_devices: vec![],
        ..converged(&desired())
    }
}

#[test]
fn a_missing_user_is_created_joined_given_its_policies_then_its_login_profile() {
    let plan = plan(&desired(), &missing());
    assert_eq!(
        plan.actions,
        vec![
            UserAction::Create,
            UserAction::AddToGroup {
                group: "admin".into()
            },
            UserAction::AttachPolicy {
                arn: "arn:aws:iam::aws:policy/ReadOnlyAccess".into()
            },
            UserAction::PutInlinePolicy { name: "mfa".into() },
            UserAction::CreateLoginProfile { policy: None },
        ]
    );
    assert_eq!(plan.status.arn, None);
    assert_eq!(plan.status.groups, vec!["admin".to_string()]);
    let console = plan.status.console_access.unwrap();
    assert!(console.password_reset_required);
    assert!(plan.readiness.ready);
}

#[test]
fn a_converged_user_needs_no_write_and_reports_what_it_has() {
    let desired = desired();
    let plan = plan(&desired, &converged(&desired));
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    assert!(plan.status.mfa_active);
    assert_eq!(plan.status.user_id.as_deref(), Some("AIDA"));
    assert_eq!(
        plan.status.password_last_used,
        Some(Time(Timestamp::from_second(999_000).unwrap()))
    );
    // IAM cleared the flag when the user chose a password: reported, never set again.
    assert!(!plan.status.console_access.unwrap().password_reset_required);
    assert_eq!(plan.readiness.message, "user matches the spec; in 1 group");
}

#[test]
fn drift_is_put_back_and_strays_removed() {
    let desired = desired();
    let mut observed = converged(&desired);
    let user = observed.user.as_mut().unwrap();
    user.permissions_boundary = None;
    user.tags.insert("stray".into(), "x".into());
    observed.groups = ["ops".to_string()].into();
    observed.attached.clear();
    observed.inline.insert("extra".into(), inline("s3:*").1);
    assert_eq!(
        plan(&desired, &observed).actions,
        vec![
            UserAction::PutPermissionsBoundary {
                arn: "arn:aws:iam::aws:policy/PowerUserAccess".into()
            },
            UserAction::Untag {
                keys: vec!["stray".into()]
            },
            UserAction::AddToGroup {
                group: "admin".into()
            },
            UserAction::RemoveFromGroup {
                group: "ops".into()
            },
            UserAction::AttachPolicy {
                arn: "arn:aws:iam::aws:policy/ReadOnlyAccess".into()
            },
            UserAction::DeleteInlinePolicy {
                name: "extra".into()
            },
        ]
    );
}

#[test]
fn a_lost_password_secret_is_reported_not_reset() {
    let desired = desired();
    let mut observed = converged(&desired);
    observed.password_in_secret = false;
    let plan = plan(&desired, &observed);
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    assert!(!plan.readiness.ready);
    assert_eq!(plan.readiness.reason, reason::PASSWORD_SECRET_MISSING);
    assert!(
        plan.readiness.message.contains(RESET_PASSWORD_ANNOTATION),
        "{}",
        plan.readiness.message
    );
}

#[test]
fn the_reset_annotation_resets_once_and_is_recorded() {
    let mut desired = desired();
    desired.console.as_mut().unwrap().reset_request = Some("1".into());
    let mut observed = converged(&desired);
    observed.password_in_secret = false;
    let plan = plan(&desired, &observed);
    assert_eq!(
        plan.actions,
        vec![UserAction::ResetPassword { policy: None }]
    );
    assert!(plan.readiness.ready);
    let console = plan.status.console_access.unwrap();
    assert_eq!(console.reset_request.as_deref(), Some("1"));
    assert!(console.password_reset_required);
}

#[test]
fn turning_console_and_programmatic_access_off_deletes_the_profile_and_keys() {
    let mut desired = desired();
    desired.console = None;
    let mut observed = converged(&desired);
    observed.access_keys = vec![AccessKey {
        id: "AKIA1".into(),
        active: true,
        created: 0,
    }];
    let plan = plan(&desired, &observed);
    assert_eq!(
        plan.actions,
        vec![
            UserAction::DeleteLoginProfile,
            UserAction::DeleteAccessKey { id: "AKIA1".into() },
            UserAction::DeleteSecret {
                name: "administrator-password".into()
            },
        ]
    );
    assert_eq!(plan.status.console_access, None);
    assert!(plan.status.access_keys.is_empty());
}

#[test]
fn access_turned_off_deletes_the_secrets_it_held_last() {
    let mut desired = desired();
    desired.console = None;
    desired.recorded_key_secret = Some("administrator-key".into());
    let observed = converged(&desired);
    let plan = plan(&desired, &observed);
    assert_eq!(
        plan.actions,
        vec![
            UserAction::DeleteLoginProfile,
            UserAction::DeleteSecret {
                name: "administrator-password".into()
            },
            UserAction::DeleteSecret {
                name: "administrator-key".into()
            },
        ]
    );
    assert_eq!(plan.status.password_secret, None);
    assert_eq!(plan.status.access_key_secret, None);
}

#[test]
fn a_secret_in_use_is_recorded_and_kept() {
    let desired = desired();
    let plan = plan(&desired, &converged(&desired));
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    assert_eq!(
        plan.status.password_secret.as_deref(),
        Some("administrator-password")
    );
}

#[test]
fn a_renamed_secret_takes_over_only_once_it_holds_the_password() {
    let mut desired = desired();
    desired.console.as_mut().unwrap().secret = "renamed".into();
    // The new Secret is empty: the password stays where it is, and so does its record.
    let mut observed = converged(&desired);
    observed.password_in_secret = false;
    let waiting = plan(&desired, &observed);
    assert!(waiting.actions.is_empty(), "{:?}", waiting.actions);
    assert_eq!(
        waiting.status.password_secret.as_deref(),
        Some("administrator-password")
    );
    // A reset writes the new one: the old Secret, holding a dead password, goes after it.
    desired.console.as_mut().unwrap().reset_request = Some("1".into());
    let reset = plan(&desired, &observed);
    assert_eq!(
        reset.actions,
        vec![
            UserAction::ResetPassword { policy: None },
            UserAction::DeleteSecret {
                name: "administrator-password".into()
            },
        ]
    );
    assert_eq!(reset.status.password_secret.as_deref(), Some("renamed"));
}

#[test]
fn an_aged_key_is_rotated_and_reported_with_its_use() {
    let mut desired = desired();
    desired.keys = Some(Keys {
        secret: "administrator-key".into(),
        rules: KeyRules {
            max_age: 100,
            grace: 10,
        },
    });
    let mut observed = converged(&desired);
    observed.access_keys = vec![AccessKey {
        id: "AKIA1".into(),
        active: true,
        created: observed.now - 100,
    }];
    observed.key_in_secret = Some("AKIA1".into());
    observed.last_used.insert("AKIA1".into(), observed.now - 5);
    let plan = plan(&desired, &observed);
    assert_eq!(plan.actions, vec![UserAction::CreateAccessKey]);
    let key = &plan.status.access_keys[0];
    assert_eq!(key.access_key_id, "AKIA1");
    assert!(key.in_secret);
    assert_eq!(
        key.last_used,
        Some(Time(Timestamp::from_second(observed.now - 5).unwrap()))
    );
}

#[test]
fn durations_parse_and_the_grace_period_must_be_shorter_than_the_maximum_age() {
    assert_eq!(seconds("f", "90d").unwrap(), 90 * 86400);
    assert_eq!(seconds("f", "1h30m").unwrap(), 5400);
    assert!(seconds("f", "0s").is_err());
    let user = |max_age: &str, grace: &str| -> IamUser {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "iam.rolecall.dev/v1alpha1", "kind": "IamUser",
            "metadata": { "name": "u", "namespace": "ns" },
            "spec": { "accessKey": { "secretName": "k", "maxAge": max_age, "rotationGracePeriod": grace } },
        }))
        .unwrap()
    };
    assert_eq!(
        key_rules(&user("90d", "24h")).unwrap().unwrap().rules,
        KeyRules {
            max_age: 90 * 86400,
            grace: 86400
        }
    );
    let Err(Error::InvalidSpec(message)) = key_rules(&user("1h", "2h")) else {
        panic!("a grace period longer than the maximum age must be refused");
    };
    assert!(message.contains("must be shorter"), "{message}");
}
