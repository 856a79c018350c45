//! IamUser against the real API server and moto: every field reaches IAM, the console password
//! meets the account's password policy and is in its Secret and nowhere else (not in status,
//! Events or the operator's own log, read here at debug level), a lost Secret is reported and
//! the password reset only when asked, a converged user costs no write, the access key rotates
//! before its maximum age and the old one goes after the grace period, deletion works with every
//! attachment present (login profile, key, MFA device, groups, managed and inline policies),
//! the namespace's rules refuse what the platform did not grant with no AWS write, an untagged
//! user is adopted only when asked, and without the chart's Secrets rule a console user is
//! refused in words.

mod common;

use std::time::Duration;

use common::operator::{Operator, Options, aws_clients};
use common::process::OperatorProcess;
use common::ready::{Ready, wait_reason};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use rolecall::api::{IamGroup, IamPolicy, IamUser};
use rolecall::aws::AwsClients;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const READ_ONLY: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";
const ADMIN: &str = "arn:aws:iam::aws:policy/AdministratorAccess";
const BOUNDARY: &str = "arn:aws:iam::aws:policy/PowerUserAccess";

fn role_arn(account: &str) -> String {
    format!("arn:aws:iam::{account}:role/rolecall/operator")
}

async fn clients_in(account: &str) -> AwsClients {
    aws_clients().await.assuming(&role_arn(account), None).await
}

fn user(name: &str, spec: Value) -> IamUser {
    serde_json::from_value(json!({
        "apiVersion": "iam.rolecall.dev/v1alpha1", "kind": "IamUser",
        "metadata": { "name": name }, "spec": spec,
    }))
    .unwrap()
}

fn statement(action: &str) -> Value {
    json!({ "Version": "2012-10-17", "Statement": [{ "Effect": "Allow", "Action": action, "Resource": "*" }] })
}

/// A namespace no Tenancy selects yet (no `rolecall.dev/test` label), labelled `label`.
async fn unlabelled_namespace(client: &Client, prefix: &str, label: &str) -> String {
    let name = format!("{prefix}-{}", std::process::id());
    let object: Namespace = serde_json::from_value(
        json!({ "metadata": { "name": name, "labels": { "rolecall.dev/users-test": label } } }),
    )
    .unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
    name
}

async fn apply_tenancy(client: &Client, name: &str, spec: Value) {
    let tenancy = json!({
        "apiVersion": "iam.rolecall.dev/v1alpha1", "kind": "Tenancy",
        "metadata": { "name": name }, "spec": spec,
    });
    let api: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &kube::api::ApiResource::erase::<rolecall::api::Tenancy>(&()),
    );
    api.patch(
        name,
        &PatchParams::apply("rolecall-tests").force(),
        &Patch::Apply(&tenancy),
    )
    .await
    .unwrap();
}

async fn user_exists(aws: &AwsClients, name: &str) -> bool {
    common::found("GetUser", aws.iam.get_user().user_name(name).send().await).is_some()
}

async fn key_ids(aws: &AwsClients, name: &str) -> Vec<String> {
    let output = aws
        .iam
        .list_access_keys()
        .user_name(name)
        .send()
        .await
        .unwrap();
    output
        .access_key_metadata()
        .iter()
        .filter_map(|key| key.access_key_id().map(str::to_owned))
        .collect()
}

async fn groups_of(aws: &AwsClients, name: &str) -> Vec<String> {
    let output = aws
        .iam
        .list_groups_for_user()
        .user_name(name)
        .send()
        .await
        .unwrap();
    let mut names: Vec<String> = output
        .groups()
        .iter()
        .map(|g| g.group_name().to_owned())
        .collect();
    names.sort();
    names
}

async fn secret_value(secrets: &Api<Secret>, name: &str, key: &str) -> Option<String> {
    let secret = secrets.get_opt(name).await.ok()??;
    let value = secret.data?.get(key)?.0.clone();
    String::from_utf8(value).ok()
}

async fn annotate(users: &Api<IamUser>, name: &str, key: &str, value: &str) {
    let patch = json!({ "metadata": { "annotations": { key: value } } });
    users
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

fn writes(operator: &OperatorProcess) -> f64 {
    operator.metric_sum("rolecall_aws_calls_total", &["kind=\"write\""])
}

fn reads(operator: &OperatorProcess) -> f64 {
    operator.metric_sum("rolecall_aws_calls_total", &["kind=\"read\""])
}

/// Every character class, 32 long: stricter than any default.
async fn strict_password_policy(aws: &AwsClients) {
    aws.iam
        .update_account_password_policy()
        .minimum_password_length(32)
        .require_symbols(true)
        .require_numbers(true)
        .require_uppercase_characters(true)
        .require_lowercase_characters(true)
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_console_user_in_groups_keeps_its_password_in_its_secret_only_and_deletes_in_iams_order()
{
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    // An account of its own (its password policy reaches no other test), through a Tenancy
    // of its own.
    let account = common::fresh_account(500_000_000_000);
    let namespace = unlabelled_namespace(&client, "users-console", &account).await;
    apply_tenancy(
        &client,
        &namespace,
        json!({
            "namespaceSelector": { "matchLabels": { "rolecall.dev/users-test": account } },
            "path": "/",
            "managedPolicies": ["*"],
            "allowPrivilegeEscalation": true,
            "references": { "groups": ["external-*"] },
            "account": { "roleArn": role_arn(&account) },
        }),
    )
    .await;
    let aws = clients_in(&account).await;
    strict_password_policy(&aws).await;
    aws.iam
        .create_group()
        .group_name("external-readers")
        .send()
        .await
        .unwrap();
    let kubeconfig = std::env::var("KUBECONFIG").unwrap();
    let operator = OperatorProcess::start_logging(
        &kubeconfig,
        env!("CARGO_BIN_EXE_rolecall"),
        &namespace,
        &common::aws_endpoint(),
        &["--resync-period", "2s"],
        "debug,kube=warn",
    );

    let policies: Api<IamPolicy> = Api::namespaced(client.clone(), &namespace);
    let groups: Api<IamGroup> = Api::namespaced(client.clone(), &namespace);
    let users: Api<IamUser> = Api::namespaced(client.clone(), &namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let policy: IamPolicy = serde_json::from_value(json!({
        "apiVersion": "iam.rolecall.dev/v1alpha1", "kind": "IamPolicy",
        "metadata": { "name": "mfa" },
        "spec": { "document": statement("iam:ListMFADevices") },
    }))
    .unwrap();
    policies
        .create(&PostParams::default(), &policy)
        .await
        .unwrap();
    let group: IamGroup = serde_json::from_value(json!({
        "apiVersion": "iam.rolecall.dev/v1alpha1", "kind": "IamGroup",
        "metadata": { "name": "admin" },
        "spec": { "managedPolicyArns": [ADMIN] },
    }))
    .unwrap();
    groups.create(&PostParams::default(), &group).await.unwrap();
    let spec = json!({
        "name": "administrator",
        "path": "/people/",
        "groupRefs": [{ "name": "admin" }],
        "groupNames": ["external-readers"],
        "managedPolicyArns": [READ_ONLY],
        "policyRefs": [{ "name": "mfa" }],
        "inlinePolicies": { "logs": statement("logs:GetLogEvents") },
        "permissionsBoundary": BOUNDARY,
        "tags": { "team": "platform" },
        "consoleAccess": { "passwordSecretName": "administrator-password", "passwordResetRequired": true },
        "deletionPolicy": "Delete",
    });
    users
        .create(&PostParams::default(), &user("administrator", spec))
        .await
        .unwrap();

    let ready = wait_reason(&users, "administrator", "Available").await;
    let status = ready.status.clone().unwrap();
    let found = aws
        .iam
        .get_user()
        .user_name("administrator")
        .send()
        .await
        .unwrap()
        .user
        .unwrap();
    assert_eq!(status.arn.as_deref(), Some(found.arn()));
    assert_eq!(status.user_id.as_deref(), Some(found.user_id()));
    assert_eq!(found.path(), "/people/");
    assert_eq!(
        found
            .permissions_boundary()
            .and_then(|b| b.permissions_boundary_arn()),
        Some(BOUNDARY)
    );
    let tags: Vec<(String, String)> = found
        .tags()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect();
    assert!(
        tags.contains(&("team".into(), "platform".into())),
        "{tags:?}"
    );
    assert!(
        tags.contains(&(
            "rolecall.dev/owner".into(),
            format!("test/{namespace}/administrator")
        )),
        "{tags:?}"
    );
    assert_eq!(
        groups_of(&aws, "administrator").await,
        ["admin", "external-readers"]
    );
    assert_eq!(status.groups, ["admin", "external-readers"]);
    let policy_arn = wait_reason(&policies, "mfa", "Available")
        .await
        .status
        .unwrap()
        .arn
        .unwrap();
    let attached = aws
        .iam
        .list_attached_user_policies()
        .user_name("administrator")
        .send()
        .await
        .unwrap();
    let mut attached: Vec<String> = attached
        .attached_policies()
        .iter()
        .filter_map(|p| p.policy_arn().map(str::to_owned))
        .collect();
    attached.sort();
    let mut expected = vec![READ_ONLY.to_string(), policy_arn];
    expected.sort();
    assert_eq!(attached, expected);
    let inline = aws
        .iam
        .list_user_policies()
        .user_name("administrator")
        .send()
        .await
        .unwrap();
    assert_eq!(inline.policy_names(), ["logs"]);
    let profile = aws
        .iam
        .get_login_profile()
        .user_name("administrator")
        .send()
        .await
        .unwrap()
        .login_profile
        .unwrap();
    assert!(profile.password_reset_required);
    let console = status
        .console_access
        .clone()
        .expect("console access status");
    assert!(console.password_reset_required);
    assert!(console.created.is_some());
    assert!(!status.mfa_active);
    assert!(status.access_keys.is_empty());

    // The password: in its Secret, owned by the user, meeting the 32-character policy (moto,
    // as patched, refuses CreateLoginProfile otherwise).
    let secret = secrets.get("administrator-password").await.unwrap();
    let owners = secret.owner_references();
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0].kind, "IamUser");
    assert_eq!(Some(&owners[0].uid), ready.uid().as_ref());
    assert_eq!(
        secret_value(&secrets, "administrator-password", "username")
            .await
            .as_deref(),
        Some("administrator")
    );
    let first_password = secret_value(&secrets, "administrator-password", "password")
        .await
        .unwrap();
    assert!(first_password.len() >= 32, "{}", first_password.len());
    for class in [
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "abcdefghijklmnopqrstuvwxyz",
        "0123456789",
        "!@#$%^&*()_+-=[]{}|'",
    ] {
        assert!(first_password.chars().any(|c| class.contains(c)));
    }

    // The group reports its member.
    common::wait_for("the member in the group's status", WAIT, || async {
        let group = groups.get("admin").await.ok()?;
        (group.status?.members == ["administrator"]).then_some(())
    })
    .await;

    // Converged: resyncs read and write nothing.
    let before = writes(&operator);
    let read_before = reads(&operator);
    common::wait_for("two more resyncs", WAIT, || async {
        (reads(&operator) >= read_before + 2.0 * 9.0).then_some(())
    })
    .await;
    assert_eq!(writes(&operator), before, "a converged user was written to");

    // An MFA device enabled outside rolecall is reported.
    let device = aws
        .iam
        .create_virtual_mfa_device()
        .virtual_mfa_device_name("administrator")
        .send()
        .await
        .unwrap()
        .virtual_mfa_device
        .unwrap();
    let serial = device.serial_number().to_owned();
    aws.iam
        .enable_mfa_device()
        .user_name("administrator")
        .serial_number(&serial)
        .authentication_code1("123456")
        .authentication_code2("654321")
        .send()
        .await
        .unwrap();
    common::wait_for("mfaActive", WAIT, || async {
        users
            .get("administrator")
            .await
            .ok()?
            .status?
            .mfa_active
            .then_some(())
    })
    .await;

    // The Secret lost: reported, and no password reset (no write).
    let before = writes(&operator);
    secrets
        .delete("administrator-password", &DeleteParams::default())
        .await
        .unwrap();
    let missing = wait_reason(&users, "administrator", "PasswordSecretMissing").await;
    let message = missing.ready().unwrap().2;
    assert!(message.contains("rolecall.dev/reset-password"), "{message}");
    assert_eq!(writes(&operator), before, "the password was reset unasked");

    // Asked to reset: a new password, in a new Secret, once.
    annotate(&users, "administrator", "rolecall.dev/reset-password", "1").await;
    let second_password = common::wait_for("the new password", WAIT, || async {
        secret_value(&secrets, "administrator-password", "password").await
    })
    .await;
    assert_ne!(second_password, first_password);
    let reset = wait_reason(&users, "administrator", "Available").await;
    assert_eq!(
        reset
            .status
            .unwrap()
            .console_access
            .unwrap()
            .reset_request
            .as_deref(),
        Some("1")
    );
    let before = writes(&operator);
    let read_before = reads(&operator);
    common::wait_for("two more resyncs", WAIT, || async {
        (reads(&operator) >= read_before + 2.0 * 9.0).then_some(())
    })
    .await;
    assert_eq!(writes(&operator), before, "the reset was made twice");

    // Nowhere but the Secret: not in status, not in Events, not in the operator's log.
    let object = serde_json::to_string(&users.get("administrator").await.unwrap()).unwrap();
    let events: Api<Event> = Api::namespaced(client.clone(), &namespace);
    let notes: Vec<String> = events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|event| event.note)
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("created the login profile")),
        "{notes:?}"
    );
    let log = operator.output();
    assert!(
        log.lines().count() > 50,
        "the debug log is too short to mean anything"
    );
    for password in [&first_password, &second_password] {
        assert!(
            !object.contains(password.as_str()),
            "password in the object"
        );
        assert!(
            !notes.iter().any(|n| n.contains(password.as_str())),
            "password in an Event"
        );
        assert!(!log.contains(password.as_str()), "password in the log");
    }

    // Deletion with a login profile, an MFA device, two groups, managed and inline
    // policies: moto (as patched) refuses DeleteUser while any is left, as IAM does.
    users
        .delete("administrator", &DeleteParams::default())
        .await
        .unwrap();
    groups
        .delete("admin", &DeleteParams::default())
        .await
        .unwrap();
    policies
        .delete("mfa", &DeleteParams::default())
        .await
        .unwrap();
    common::wait_for("the user, group and policy deleted", WAIT, || async {
        let gone = users.get_opt("administrator").await.ok()?.is_none()
            && groups.get_opt("admin").await.ok()?.is_none()
            && policies.get_opt("mfa").await.ok()?.is_none();
        gone.then_some(())
    })
    .await;
    assert!(!user_exists(&aws, "administrator").await);
    let external = aws
        .iam
        .get_group()
        .group_name("external-readers")
        .send()
        .await
        .unwrap();
    assert!(external.users().is_empty(), "still a member");
    let unassigned = aws
        .iam
        .list_virtual_mfa_devices()
        .assignment_status(aws_sdk_iam::types::AssignmentStatusType::Unassigned)
        .send()
        .await
        .unwrap();
    assert!(
        unassigned
            .virtual_mfa_devices()
            .iter()
            .any(|d| d.serial_number() == serial),
        "the MFA device was not deactivated"
    );
    drop(operator);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_access_key_is_written_to_its_secret_rotated_and_the_old_one_deleted_after_grace() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let namespace = common::fresh_namespace(&client, "users-keys").await;
    let aws = aws_clients().await;
    let operator = Operator::start(
        &client,
        &namespace,
        Options {
            resync: Duration::from_secs(1),
            ..Options::default()
        },
    )
    .await;
    let users: Api<IamUser> = Api::namespaced(client.clone(), &namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let name = format!("{namespace}-ci");
    let spec = json!({
        "name": name,
        "accessKey": { "secretName": "ci-key", "maxAge": "8s", "rotationGracePeriod": "3s" },
    });
    users
        .create(&PostParams::default(), &user("ci", spec))
        .await
        .unwrap();
    wait_reason(&users, "ci", "Available").await;
    let first = secret_value(&secrets, "ci-key", "AWS_ACCESS_KEY_ID")
        .await
        .expect("the key id in the Secret");
    let secret = secret_value(&secrets, "ci-key", "AWS_SECRET_ACCESS_KEY")
        .await
        .expect("the secret key in the Secret");
    assert_eq!(key_ids(&aws, &name).await, std::slice::from_ref(&first));
    // The key in the Secret is the user's: STS says whose it is.
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::Config::builder()
            .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
            .region(aws_sdk_sts::config::Region::new("us-east-1"))
            .endpoint_url(common::aws_endpoint())
            .credentials_provider(aws_sdk_sts::config::Credentials::new(
                &first, &secret, None, None, "test",
            ))
            .build(),
    );
    let identity = sts.get_caller_identity().send().await.unwrap();
    assert!(
        identity.arn().unwrap().ends_with(&format!(":user/{name}")),
        "{identity:?}"
    );
    let status = users.get("ci").await.unwrap().status.unwrap();
    assert_eq!(status.access_keys.len(), 1);
    assert_eq!(status.access_keys[0].access_key_id, first);
    assert!(status.access_keys[0].in_secret);
    assert!(status.access_keys[0].created.is_some());
    assert!(
        !serde_json::to_string(&status).unwrap().contains(&secret),
        "the secret key in status"
    );

    // Rotation: past 8 s a new key is in the Secret, and the old one still works for the
    // grace period.
    let second = common::wait_for("the key rotated", Duration::from_secs(30), || async {
        secret_value(&secrets, "ci-key", "AWS_ACCESS_KEY_ID")
            .await
            .filter(|id| *id != first)
    })
    .await;
    let keys = key_ids(&aws, &name).await;
    assert!(
        keys.contains(&first) && keys.contains(&second),
        "{keys:?}: the old key went before its grace period"
    );
    common::wait_for(
        "the old key deleted after the grace period",
        Duration::from_secs(30),
        || async {
            let keys = key_ids(&aws, &name).await;
            (keys == [second.clone()]).then_some(())
        },
    )
    .await;
    common::wait_for("status showing the new key only", WAIT, || async {
        let status = users.get("ci").await.ok()?.status?;
        let ids: Vec<&str> = status
            .access_keys
            .iter()
            .map(|k| k.access_key_id.as_str())
            .collect();
        (ids == [second.as_str()] && status.access_keys[0].in_secret).then_some(())
    })
    .await;

    // Programmatic access off: the keys go.
    let patch = json!({ "spec": { "accessKey": { "secretName": "ci-key", "enabled": false } } });
    users
        .patch("ci", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    common::wait_for("the keys deleted", WAIT, || async {
        key_ids(&aws, &name).await.is_empty().then_some(())
    })
    .await;

    // Deletion with a key present.
    let patch = json!({ "spec": { "accessKey": { "secretName": "ci-key", "enabled": true } } });
    users
        .patch("ci", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    common::wait_for("a key again", WAIT, || async {
        (key_ids(&aws, &name).await.len() == 1).then_some(())
    })
    .await;
    users.delete("ci", &DeleteParams::default()).await.unwrap();
    common::wait_for("the user deleted", WAIT, || async {
        users.get_opt("ci").await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(!user_exists(&aws, &name).await);
    assert!(operator.writes() > 0);
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_default_rules_refuse_what_the_platform_did_not_grant_with_no_aws_write() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    // No `rolecall.dev/test` label: the permissive test Tenancy does not select it.
    let namespace = unlabelled_namespace(&client, "users-rules", "none").await;
    let aws = aws_clients().await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    // Someone else's Secret.
    let theirs: Secret = serde_json::from_value(json!({
        "metadata": { "name": "app-credentials" },
        "stringData": { "token": "theirs" },
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &theirs)
        .await
        .unwrap();
    let operator = Operator::start(&client, &namespace, Options::default()).await;
    let users: Api<IamUser> = Api::namespaced(client.clone(), &namespace);
    let refusals = [
        (
            "admin",
            json!({ "managedPolicyArns": [ADMIN] }),
            "Forbidden",
            "(rule managedPolicies)",
        ),
        (
            "elsewhere",
            json!({ "path": "/admins/" }),
            "Forbidden",
            "(rule path)",
        ),
        (
            "joiner",
            json!({ "groupNames": ["admins"] }),
            "Forbidden",
            "(rule references.groups)",
        ),
        (
            "escalator",
            json!({ "inlinePolicies": { "all": statement("iam:*") } }),
            "Forbidden",
            "(rule allowPrivilegeEscalation)",
        ),
        (
            "foreign-account",
            json!({ "managedPolicyArns": ["arn:aws:iam::210987654321:policy/theirs"] }),
            "Forbidden",
            "(rule managedPolicies)",
        ),
        (
            "clobber",
            json!({ "consoleAccess": { "passwordSecretName": "app-credentials" } }),
            "Conflict",
            "not owned by this IamUser",
        ),
    ];
    for (name, spec, _, _) in &refusals {
        let mut spec = spec.clone();
        spec["name"] = json!(format!("{namespace}-{name}"));
        users
            .create(&PostParams::default(), &user(name, spec))
            .await
            .unwrap();
    }
    for (name, _, reason, words) in &refusals {
        let refused = wait_reason(&users, name, reason).await;
        let message = refused.ready().unwrap().2;
        assert!(message.contains(words), "{name}: {message}");
        assert!(!user_exists(&aws, &format!("{namespace}-{name}")).await);
    }
    assert_eq!(operator.writes(), 0, "a refused user made an AWS write");
    assert_eq!(
        secret_value(&secrets, "app-credentials", "token")
            .await
            .as_deref(),
        Some("theirs"),
        "someone else's Secret was written to"
    );

    // Within the rules, the user is made on the namespace's path.
    let spec = json!({ "name": format!("{namespace}-reader"), "inlinePolicies": { "logs": statement("logs:GetLogEvents") } });
    users
        .create(&PostParams::default(), &user("reader", spec))
        .await
        .unwrap();
    let ready = wait_reason(&users, "reader", "Available").await;
    let arn = ready.status.unwrap().arn.unwrap();
    assert!(
        arn.ends_with(&format!(":user/rolecall/{namespace}/{namespace}-reader")),
        "{arn}"
    );
    for (name, _, _, _) in refusals.iter().chain([&("reader", json!({}), "", "")]) {
        users.delete(name, &DeleteParams::default()).await.unwrap();
    }
    common::wait_for("the users deleted", WAIT, || async {
        users
            .list(&Default::default())
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await;
    assert!(!user_exists(&aws, &format!("{namespace}-reader")).await);
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_untagged_user_is_refused_until_adopted() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let namespace = common::fresh_namespace(&client, "users-adopt").await;
    let aws = aws_clients().await;
    let name = format!("{namespace}-legacy");
    aws.iam.create_user().user_name(&name).send().await.unwrap();
    aws.iam
        .put_user_policy()
        .user_name(&name)
        .policy_name("theirs")
        .policy_document(statement("s3:ListBucket").to_string())
        .send()
        .await
        .unwrap();
    let operator = Operator::start(&client, &namespace, Options::default()).await;
    let users: Api<IamUser> = Api::namespaced(client.clone(), &namespace);
    users
        .create(
            &PostParams::default(),
            &user("legacy", json!({ "name": name })),
        )
        .await
        .unwrap();
    let refused = wait_reason(&users, "legacy", "Conflict").await;
    let message = refused.ready().unwrap().2;
    assert!(message.contains("rolecall.dev/adopt"), "{message}");
    assert_eq!(operator.writes(), 0);

    annotate(&users, "legacy", "rolecall.dev/adopt", "true").await;
    wait_reason(&users, "legacy", "Available").await;
    let tags = aws
        .iam
        .list_user_tags()
        .user_name(&name)
        .send()
        .await
        .unwrap();
    assert!(
        tags.tags()
            .iter()
            .any(|t| t.key() == "rolecall.dev/owner"
                && t.value() == format!("test/{namespace}/legacy")),
        "{tags:?}"
    );
    // Adopted means managed: the inline policy the spec does not list is removed.
    let inline = aws
        .iam
        .list_user_policies()
        .user_name(&name)
        .send()
        .await
        .unwrap();
    assert!(inline.policy_names().is_empty());
    users
        .delete("legacy", &DeleteParams::default())
        .await
        .unwrap();
    common::wait_for("the adopted user deleted", WAIT, || async {
        (!user_exists(&aws, &name).await).then_some(())
    })
    .await;
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_charts_secrets_rule_a_console_user_is_refused_in_words() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let namespace = common::fresh_namespace(&client, "users-no-secrets").await;
    // The chart's rules with its default values: rbac.userSecrets off.
    let role = "rolecall-test-chart-rules-default";
    let account = "rolecall-default-rules";
    common::rbac::apply_cluster_role(
        &client,
        role,
        common::chart::cluster_role().rules.unwrap_or_default(),
    )
    .await;
    common::rbac::bind_cluster_wide(&client, role, common::rbac::TEST_ACCOUNT_NAMESPACE, account)
        .await;
    let reader = "rolecall-test-chart-tenancy-reader";
    common::rbac::apply_cluster_role(
        &client,
        reader,
        common::chart::tenancy_reader_role()
            .rules
            .unwrap_or_default(),
    )
    .await;
    common::rbac::bind_cluster_wide(
        &client,
        reader,
        common::rbac::TEST_ACCOUNT_NAMESPACE,
        account,
    )
    .await;
    let operator_client = common::rbac::impersonating_client(&common::rbac::service_account_user(
        common::rbac::TEST_ACCOUNT_NAMESPACE,
        account,
    ))
    .await;
    common::rbac::wait_until_allowed(
        &operator_client,
        None,
        "iam.rolecall.dev",
        "iamusers",
        "watch",
    )
    .await;
    let operator =
        Operator::start_as(&client, operator_client, &namespace, Options::default()).await;
    let aws = aws_clients().await;
    let users: Api<IamUser> = Api::namespaced(client.clone(), &namespace);
    let name = format!("{namespace}-person");
    let spec =
        json!({ "name": name, "consoleAccess": { "passwordSecretName": "person-password" } });
    users
        .create(&PostParams::default(), &user("person", spec))
        .await
        .unwrap();
    let refused = wait_reason(&users, "person", "Forbidden").await;
    let message = refused.ready().unwrap().2;
    assert!(message.contains("rbac.userSecrets=true"), "{message}");
    assert_eq!(operator.writes(), 0);
    assert!(!user_exists(&aws, &name).await);
    // Without console access or a key the same rules make the user.
    let patch = json!({ "spec": { "consoleAccess": null } });
    users
        .patch("person", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_reason(&users, "person", "Available").await;
    users
        .delete("person", &DeleteParams::default())
        .await
        .unwrap();
    common::wait_for("the user deleted", WAIT, || async {
        (!user_exists(&aws, &name).await).then_some(())
    })
    .await;
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_password_and_key_secrets_must_differ_and_durations_be_durations() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let namespace = common::fresh_namespace(&client, "users-schema").await;
    let users: Api<IamUser> = Api::namespaced(client.clone(), &namespace);
    for (spec, words) in [
        (
            json!({ "consoleAccess": { "passwordSecretName": "same" }, "accessKey": { "secretName": "same" } }),
            "Secrets of their own",
        ),
        (
            json!({ "accessKey": { "secretName": "k", "maxAge": "ninety days" } }),
            "maxAge",
        ),
        (
            json!({ "consoleAccess": { "passwordSecretName": "../kube-system/x" } }),
            "passwordSecretName",
        ),
    ] {
        let error = users
            .create(&PostParams::default(), &user("bad", spec.clone()))
            .await
            .expect_err("the API server must refuse it");
        assert!(error.to_string().contains(words), "{spec}: {error}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_account_baseline_example_makes_the_administrator_in_the_admin_group() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/account-baseline");
    let kubectl = |args: &[&str]| {
        let output = std::process::Command::new("kubectl")
            .args(args)
            .output()
            .expect("running kubectl");
        assert!(
            output.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    kubectl(&["apply", "-f", dir.join("platform.yaml").to_str().unwrap()]);
    // This environment runs no garbage collector: an earlier run's Secret outlives its IamUser,
    // and the new IamUser (another uid) would rightly refuse it.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "accounts");
    let _ = secrets
        .delete("administrator-console-password", &DeleteParams::default())
        .await;
    let aws = aws_clients().await;
    let operator = Operator::start(&client, "accounts", Options::default()).await;
    let apply = |file: &str| {
        kubectl(&[
            "apply",
            "-n",
            "accounts",
            "-f",
            dir.join(file).to_str().unwrap(),
        ])
    };
    apply("admin-group.yaml");
    let users: Api<IamUser> = Api::namespaced(client.clone(), "accounts");
    let groups: Api<IamGroup> = Api::namespaced(client.clone(), "accounts");
    wait_reason(&groups, "admin", "Available").await;
    // The user's own writes: CreateUser, AddUserToGroup, CreateLoginProfile.
    let before = operator.writes();
    apply("administrator-user.yaml");
    let ready = wait_reason(&users, "administrator", "Available").await;
    assert_eq!(operator.writes() - before, 3, "writes to create the user");
    let arn = ready.status.unwrap().arn.unwrap();
    assert!(
        arn.ends_with(":user/rolecall/accounts/administrator"),
        "{arn}"
    );
    assert_eq!(groups_of(&aws, "administrator").await, ["admin"]);
    let profile = aws
        .iam
        .get_login_profile()
        .user_name("administrator")
        .send()
        .await
        .unwrap()
        .login_profile
        .unwrap();
    assert!(profile.password_reset_required);
    assert!(
        secret_value(&secrets, "administrator-console-password", "password")
            .await
            .is_some_and(|p| p.len() >= 20)
    );
    // Deletion: DeleteLoginProfile, RemoveUserFromGroup, DeleteUser.
    let before = operator.writes();
    users
        .delete("administrator", &DeleteParams::default())
        .await
        .unwrap();
    common::wait_for("the administrator deleted", WAIT, || async {
        users
            .get_opt("administrator")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    assert_eq!(operator.writes() - before, 3, "writes to delete the user");
    groups
        .delete("admin", &DeleteParams::default())
        .await
        .unwrap();
    common::wait_for("the administrator and admin deleted", WAIT, || async {
        let gone = !user_exists(&aws, "administrator").await
            && groups.get_opt("admin").await.ok()?.is_none();
        gone.then_some(())
    })
    .await;
    operator.stop().await;
}

/// Signing certificates, SSH public keys and service-specific credentials are not rolecall's
/// to make, but IAM refuses DeleteUser while any exists (DeleteConflict; the project's moto
/// does too): deleting the IamUser removes them, in IAM's order, with everything else.
#[tokio::test(flavor = "multi_thread")]
async fn deletion_removes_what_others_attached_signing_certificates_ssh_keys_and_service_credentials()
 {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let account = common::fresh_account(500_000_000_000);
    let namespace = unlabelled_namespace(&client, "users-attached", &account).await;
    apply_tenancy(
        &client,
        &namespace,
        json!({
            "namespaceSelector": { "matchLabels": { "rolecall.dev/users-test": account } },
            "path": "/",
            "managedPolicies": ["*"],
            "allowPrivilegeEscalation": true,
            "account": { "roleArn": role_arn(&account) },
        }),
    )
    .await;
    let aws = clients_in(&account).await;
    let operator = Operator::start(&client, &namespace, Options::default()).await;
    let users: Api<IamUser> = Api::namespaced(client.clone(), &namespace);
    users
        .create(
            &PostParams::default(),
            &user(
                "builder",
                json!({
                    "consoleAccess": { "passwordSecretName": "builder-console" },
                    "accessKey": { "enabled": true, "secretName": "builder-key" },
                    "managedPolicyArns": [READ_ONLY],
                    "inlinePolicies": { "own": statement("s3:GetObject") },
                }),
            ),
        )
        .await
        .unwrap();
    wait_reason(&users, "builder", "Available").await;
    let fixture = |name: &str| {
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(name),
        )
        .unwrap()
    };
    aws.iam
        .upload_signing_certificate()
        .user_name("builder")
        .certificate_body(fixture("signing-certificate.pem"))
        .send()
        .await
        .unwrap();
    aws.iam
        .upload_ssh_public_key()
        .user_name("builder")
        .ssh_public_key_body(fixture("ssh-public-key.pub").trim())
        .send()
        .await
        .unwrap();
    aws.iam
        .create_service_specific_credential()
        .user_name("builder")
        .service_name("codecommit.amazonaws.com")
        .send()
        .await
        .expect("service-specific credentials (tools/moto/server.py adds them to moto)");
    users
        .delete("builder", &DeleteParams::default())
        .await
        .unwrap();
    common::wait_for("builder deleted, in IAM too", WAIT, || async {
        let gone =
            users.get_opt("builder").await.ok()?.is_none() && !user_exists(&aws, "builder").await;
        gone.then_some(())
    })
    .await;
    let calls = operator.ctx.calls.snapshot();
    for operation in [
        "DeleteSigningCertificate",
        "DeleteSSHPublicKey",
        "DeleteServiceSpecificCredential",
    ] {
        assert!(
            calls.keys().any(|(_, op)| *op == operation),
            "{operation}: {calls:?}"
        );
    }
    operator.stop().await;
}
