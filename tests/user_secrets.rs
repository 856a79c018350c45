//! The Secrets an IamUser's spec names, against the real API server and moto: a credentials
//! Secret deleted or edited wakes its user at once (not at the next resync: the operator here
//! resyncs once an hour); turning console or programmatic access off deletes the Secret
//! rolecall wrote, and so does deleting the user; a Secret someone else made, or another
//! IamUser's, named in a spec is refused with no AWS write, and never written or deleted.
//!
//! Each test acts in an AWS account of its own, through a Tenancy of its own.

mod common;

use std::time::Duration;

use common::operator::{Operator, Options, aws_clients};
use common::ready::wait_reason;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use rolecall::api::IamUser;
use rolecall::aws::AwsClients;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const TEST_LABEL: &str = "rolecall.dev/user-secrets-test";

fn role_arn(account: &str) -> String {
    format!("arn:aws:iam::{account}:role/rolecall/operator")
}

/// A namespace of its own, under a Tenancy of its own that reaches `account`.
async fn namespace_in(client: &Client, prefix: &str, account: &str) -> String {
    let name = format!("{prefix}-{account}");
    let namespace: Namespace = serde_json::from_value(
        json!({ "metadata": { "name": name, "labels": { TEST_LABEL: account } } }),
    )
    .unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    let tenancy = json!({
        "apiVersion": "iam.rolecall.dev/v1alpha1", "kind": "Tenancy",
        "metadata": { "name": name },
        "spec": {
            "namespaceSelector": { "matchLabels": { TEST_LABEL: account } },
            "path": "/",
            "account": { "roleArn": role_arn(account) },
        },
    });
    let api: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &kube::api::ApiResource::erase::<rolecall::api::Tenancy>(&()),
    );
    api.patch(
        &name,
        &PatchParams::apply("rolecall-tests").force(),
        &Patch::Apply(&tenancy),
    )
    .await
    .unwrap();
    name
}

async fn drop_tenancy(client: &Client, name: &str) {
    let api: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &kube::api::ApiResource::erase::<rolecall::api::Tenancy>(&()),
    );
    let _ = api.delete(name, &DeleteParams::default()).await;
}

fn user(name: &str, spec: Value) -> IamUser {
    serde_json::from_value(json!({
        "apiVersion": "iam.rolecall.dev/v1alpha1", "kind": "IamUser",
        "metadata": { "name": name }, "spec": spec,
    }))
    .unwrap()
}

fn console(secret: &str) -> Value {
    json!({ "passwordSecretName": secret })
}

async fn value(secrets: &Api<Secret>, name: &str, key: &str) -> Option<String> {
    let secret = secrets.get_opt(name).await.unwrap()?;
    String::from_utf8(secret.data?.get(key)?.0.clone()).ok()
}

async fn wait_gone(secrets: &Api<Secret>, name: &str) {
    common::wait_for(&format!("Secret {name} deleted"), WAIT, || async {
        secrets.get_opt(name).await.unwrap().is_none().then_some(())
    })
    .await
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

async fn login_profile(aws: &AwsClients, name: &str) -> bool {
    common::found(
        "GetLoginProfile",
        aws.iam.get_login_profile().user_name(name).send().await,
    )
    .is_some()
}

async fn patch_spec(users: &Api<IamUser>, name: &str, spec: Value) {
    users
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "spec": spec })),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_secret_wakes_its_user_and_access_turned_off_takes_its_secret() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let account = common::fresh_account(600_000_000_000);
    let namespace = namespace_in(&client, "user-secrets", &account).await;
    let aws = aws_clients()
        .await
        .assuming(&role_arn(&account), None)
        .await;
    // Resync once an hour: whatever happens within the deadlines below is the watch's doing.
    let operator = Operator::start(&client, &namespace, Options::default()).await;
    let users: Api<IamUser> = Api::namespaced(client.clone(), &namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    users
        .create(
            &PostParams::default(),
            &user(
                "alice",
                json!({
                    "consoleAccess": console("alice-console"),
                    "accessKey": { "enabled": true, "secretName": "alice-key" },
                }),
            ),
        )
        .await
        .unwrap();
    let ready = wait_reason(&users, "alice", "Available").await;
    let status = ready.status.unwrap();
    assert_eq!(status.password_secret.as_deref(), Some("alice-console"));
    assert_eq!(status.access_key_secret.as_deref(), Some("alice-key"));
    for name in ["alice-console", "alice-key"] {
        let secret = secrets.get(name).await.unwrap();
        assert_eq!(
            secret.labels().get("app.kubernetes.io/managed-by"),
            Some(&"rolecall".to_string()),
            "{name}"
        );
    }

    // The password Secret deleted: the user says so at once, not at the next resync.
    secrets
        .delete("alice-console", &DeleteParams::default())
        .await
        .unwrap();
    let missing = wait_reason(&users, "alice", "PasswordSecretMissing").await;
    let (_, _, message) = common::ready_condition(&missing.status.unwrap().common.conditions)
        .expect("a Ready condition");
    assert!(message.contains("alice-console"), "{message}");
    // Asked for, a new password goes to a new Secret.
    let annotate = json!({ "metadata": { "annotations": { "rolecall.dev/reset-password": "1" } } });
    users
        .patch("alice", &PatchParams::default(), &Patch::Merge(&annotate))
        .await
        .unwrap();
    wait_reason(&users, "alice", "Available").await;
    assert!(value(&secrets, "alice-console", "password").await.is_some());

    // The key Secret edited to hold a key IAM does not know: the user replaces it at once.
    let bogus = "AKIAIOSFODNN7EXAMPLE";
    let edit = json!({ "data": { "AWS_ACCESS_KEY_ID": ByteString(bogus.as_bytes().to_vec()) } });
    secrets
        .patch("alice-key", &PatchParams::default(), &Patch::Merge(&edit))
        .await
        .unwrap();
    common::wait_for("a key IAM knows back in alice-key", WAIT, || async {
        let id = value(&secrets, "alice-key", "AWS_ACCESS_KEY_ID").await?;
        (id != bogus && key_ids(&aws, "alice").await.contains(&id)).then_some(())
    })
    .await;

    // Console access off: the login profile goes, and the Secret with its dead password.
    patch_spec(
        &users,
        "alice",
        json!({ "consoleAccess": { "enabled": false } }),
    )
    .await;
    wait_gone(&secrets, "alice-console").await;
    assert!(!login_profile(&aws, "alice").await);
    let user = wait_reason(&users, "alice", "Available").await;
    assert_eq!(user.status.unwrap().password_secret, None);
    assert!(secrets.get_opt("alice-key").await.unwrap().is_some());

    // Programmatic access off: the keys go, and their Secret.
    patch_spec(&users, "alice", json!({ "accessKey": null })).await;
    wait_gone(&secrets, "alice-key").await;
    assert!(key_ids(&aws, "alice").await.is_empty());

    users
        .delete("alice", &DeleteParams::default())
        .await
        .unwrap();
    common::wait_for("alice deleted", WAIT, || async {
        users
            .get_opt("alice")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    operator.stop().await;
    drop_tenancy(&client, &namespace).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_not_made_for_the_user_is_refused_and_never_deleted() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let account = common::fresh_account(600_000_000_000);
    let namespace = namespace_in(&client, "user-secrets-foreign", &account).await;
    let aws = aws_clients()
        .await
        .assuming(&role_arn(&account), None)
        .await;
    let operator = Operator::start(&client, &namespace, Options::default()).await;
    let users: Api<IamUser> = Api::namespaced(client.clone(), &namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);

    // An application's Secret, and one carrying rolecall's label (anyone may set a label).
    for (name, labels) in [
        ("app-config", json!({})),
        (
            "labelled",
            json!({ "app.kubernetes.io/managed-by": "rolecall" }),
        ),
    ] {
        let secret: Secret = serde_json::from_value(json!({
            "metadata": { "name": name, "labels": labels },
            "stringData": { "password": "the application's own" },
        }))
        .unwrap();
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
    }
    // bob's own console Secret, made by rolecall.
    users
        .create(
            &PostParams::default(),
            &user("bob", json!({ "consoleAccess": console("bob-console") })),
        )
        .await
        .unwrap();
    wait_reason(&users, "bob", "Available").await;
    let bobs_password = value(&secrets, "bob-console", "password").await.unwrap();

    // A tenant naming each of those Secrets, for console access or an access key.
    let writes_before = operator.writes();
    let tries = [
        ("mallory", json!({ "consoleAccess": console("app-config") })),
        (
            "trudy",
            json!({ "accessKey": { "enabled": true, "secretName": "labelled" } }),
        ),
        ("eve", json!({ "consoleAccess": console("bob-console") })),
    ];
    for (name, spec) in &tries {
        users
            .create(&PostParams::default(), &user(name, spec.clone()))
            .await
            .unwrap();
        let refused = wait_reason(&users, name, "Conflict").await;
        let (_, _, message) = common::ready_condition(&refused.status.unwrap().common.conditions)
            .expect("a Ready condition");
        assert!(message.contains("not owned by this IamUser"), "{message}");
    }
    assert_eq!(
        operator.writes(),
        writes_before,
        "no AWS write for a refusal"
    );
    for (name, _) in &tries {
        assert!(
            common::found("GetUser", aws.iam.get_user().user_name(*name).send().await).is_none(),
            "{name} was not created"
        );
    }

    // Access turned off, then the users deleted: nothing of theirs was ever rolecall's.
    patch_spec(
        &users,
        "mallory",
        json!({ "consoleAccess": { "enabled": false } }),
    )
    .await;
    wait_reason(&users, "mallory", "Available").await;
    for (name, _) in &tries {
        users.delete(name, &DeleteParams::default()).await.unwrap();
    }
    common::wait_for("the tenant's users gone", WAIT, || async {
        let mut gone = true;
        for (name, _) in &tries {
            gone &= users.get_opt(name).await.unwrap().is_none();
        }
        gone.then_some(())
    })
    .await;
    for name in ["app-config", "labelled"] {
        assert_eq!(
            value(&secrets, name, "password").await.as_deref(),
            Some("the application's own"),
            "{name}"
        );
    }
    assert_eq!(
        value(&secrets, "bob-console", "password").await,
        Some(bobs_password)
    );

    // bob deleted: the Secret rolecall made for him goes with him.
    users.delete("bob", &DeleteParams::default()).await.unwrap();
    wait_gone(&secrets, "bob-console").await;
    operator.stop().await;
    drop_tenancy(&client, &namespace).await;
}
