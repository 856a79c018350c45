//! IamPolicy and IamRole reconcilers against the real API server and moto: create, update each
//! field, drift repair, conflict and adoption, deletion policies, references becoming Ready
//! later, dry-run, invalid specs, and zero writes on a converged resync.

mod common;

use std::time::Duration;

use common::operator::{Operator, Options, aws_clients};
use common::ready::{Ready, wait_reason};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use rolecall::api::{IamPolicy, IamRole};
use rolecall::aws::AwsClients;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

fn policy(name: &str, aws_name: &str, actions: &[&str]) -> IamPolicy {
    serde_json::from_value(json!({
        "apiVersion": "iam.rolecall.dev/v1alpha1",
        "kind": "IamPolicy",
        "metadata": { "name": name },
        "spec": {
            "name": aws_name,
            "description": "test policy",
            "document": { "Version": "2012-10-17", "Statement": [{ "Effect": "Allow", "Action": actions, "Resource": "*" }] },
            "tags": { "team": "web" },
        },
    }))
    .unwrap()
}

fn role(name: &str, spec: Value) -> IamRole {
    serde_json::from_value(json!({
        "apiVersion": "iam.rolecall.dev/v1alpha1",
        "kind": "IamRole",
        "metadata": { "name": name },
        "spec": spec,
    }))
    .unwrap()
}

async fn role_in_moto(aws: &AwsClients, name: &str) -> Option<aws_sdk_iam::types::Role> {
    common::found("GetRole", aws.iam.get_role().role_name(name).send().await)?.role
}

async fn attached(aws: &AwsClients, role: &str) -> Vec<String> {
    let output = aws
        .iam
        .list_attached_role_policies()
        .role_name(role)
        .send()
        .await
        .unwrap();
    let mut arns: Vec<String> = output
        .attached_policies()
        .iter()
        .filter_map(|p| p.policy_arn().map(str::to_owned))
        .collect();
    arns.sort();
    arns
}

struct Env {
    client: Client,
    namespace: String,
    aws: AwsClients,
    policies: Api<IamPolicy>,
    roles: Api<IamRole>,
}

async fn env(prefix: &str) -> Env {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let namespace = common::fresh_namespace(&client, prefix).await;
    Env {
        policies: Api::namespaced(client.clone(), &namespace),
        roles: Api::namespaced(client.clone(), &namespace),
        aws: aws_clients().await,
        client,
        namespace,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn policy_and_role_converge_and_a_resync_makes_no_write() {
    let env = env("converge").await;
    let operator = Operator::start(
        &env.client,
        &env.namespace,
        Options {
            resync: Duration::from_secs(2),
            ..Options::default()
        },
    )
    .await;
    let policy_name = format!("{}-s3", env.namespace);
    let role_name = format!("{}-web", env.namespace);
    env.policies
        .create(
            &PostParams::default(),
            &policy("s3", &policy_name, &["s3:GetObject", "s3:ListAllMyBuckets"]),
        )
        .await
        .unwrap();
    env.roles
        .create(&PostParams::default(), &role("web", json!({
            "name": role_name,
            "description": "web fleet",
            "trustedServices": ["ec2.amazonaws.com"],
            "policyRefs": [{ "name": "s3" }],
            "inlinePolicies": { "logs": { "Version": "2012-10-17", "Statement": [{ "Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": "*" }] } },
            "tags": { "team": "web" },
        })))
        .await
        .unwrap();

    let policy = wait_reason(&env.policies, "s3", "Available").await;
    let role = wait_reason(&env.roles, "web", "Available").await;
    let policy_arn = policy.status.as_ref().unwrap().arn.clone().unwrap();
    assert!(
        policy_arn.ends_with(&format!(":policy/{policy_name}")),
        "{policy_arn}"
    );
    assert_eq!(
        policy
            .status
            .as_ref()
            .unwrap()
            .default_version_id
            .as_deref(),
        Some("v1")
    );
    let role_status = role.status.clone().unwrap();
    assert_eq!(role_status.attached_policy_arns, vec![policy_arn.clone()]);

    let in_moto = role_in_moto(&env.aws, &role_name)
        .await
        .expect("the role exists in AWS");
    assert_eq!(Some(in_moto.arn()), role_status.arn.as_deref());
    assert_eq!(in_moto.description(), Some("web fleet"));
    let tags: Vec<(&str, &str)> = in_moto
        .tags()
        .iter()
        .map(|t| (t.key(), t.value()))
        .collect();
    let owner = format!("test/{}/web", env.namespace);
    assert!(
        tags.contains(&("rolecall.dev/owner", owner.as_str())),
        "{tags:?}"
    );
    assert!(tags.contains(&("team", "web")), "{tags:?}");
    assert_eq!(attached(&env.aws, &role_name).await, vec![policy_arn]);
    let inline = env
        .aws
        .iam
        .list_role_policies()
        .role_name(&role_name)
        .send()
        .await
        .unwrap();
    assert_eq!(inline.policy_names(), ["logs"]);

    // One Event per AWS change, on the object that made it.
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(env.client.clone(), &env.namespace);
    common::wait_for("the role's Events", WAIT, || async {
        let list = events.list(&Default::default()).await.ok()?;
        let notes: Vec<String> = list
            .items
            .iter()
            .filter(|event| event.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("web"))
            .filter_map(|event| event.note.clone())
            .collect();
        let expected = ["created role", "attached", "put inline policy logs"];
        expected
            .iter()
            .all(|text| notes.iter().any(|note| note.contains(text)))
            .then_some(())
    })
    .await;

    // Converged: later resyncs read AWS but write nothing.
    let writes = operator.writes();
    let reads = operator.reads();
    common::wait_for("two more resyncs", WAIT, || async {
        (operator.reads() >= reads + 2 * 6).then_some(())
    })
    .await;
    assert_eq!(
        operator.writes(),
        writes,
        "a converged object made AWS writes on resync: {:?}",
        operator.ctx.calls.snapshot()
    );
    common::leaks::assert_no_leaks(&env.client, &env.aws, &env.namespace).await;
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_role_field_update_reaches_iam() {
    let env = env("update").await;
    let operator = Operator::start(&env.client, &env.namespace, Options::default()).await;
    let role_name = format!("{}-r", env.namespace);
    env.roles
        .create(
            &PostParams::default(),
            &role(
                "r",
                json!({ "name": role_name, "trustedServices": ["ec2.amazonaws.com"] }),
            ),
        )
        .await
        .unwrap();
    wait_reason(&env.roles, "r", "Available").await;

    let boundary = "arn:aws:iam::aws:policy/PowerUserAccess";
    let managed = "arn:aws:iam::aws:policy/ReadOnlyAccess";
    let patch = json!({ "spec": {
        "trustedServices": null,
        "assumeRolePolicy": { "Version": "2012-10-17", "Statement": [{ "Effect": "Allow", "Principal": { "Service": "lambda.amazonaws.com" }, "Action": "sts:AssumeRole" }] },
        "description": "changed",
        "maxSessionDuration": 7200,
        "permissionsBoundary": boundary,
        "managedPolicyArns": [managed],
        "inlinePolicies": { "extra": { "Version": "2012-10-17", "Statement": [{ "Effect": "Deny", "Action": "iam:*", "Resource": "*" }] } },
        "tags": { "env": "prod" },
    }});
    env.roles
        .patch("r", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_reason(&env.roles, "r", "Available").await;

    let in_moto = role_in_moto(&env.aws, &role_name).await.unwrap();
    assert_eq!(in_moto.description(), Some("changed"));
    assert_eq!(in_moto.max_session_duration(), Some(7200));
    assert_eq!(
        in_moto
            .permissions_boundary()
            .and_then(|b| b.permissions_boundary_arn()),
        Some(boundary)
    );
    let trust =
        rolecall::equivalence::decode_iam_document(in_moto.assume_role_policy_document().unwrap())
            .unwrap();
    assert_eq!(
        trust["Statement"][0]["Principal"]["Service"],
        "lambda.amazonaws.com"
    );
    let tags: Vec<(&str, &str)> = in_moto
        .tags()
        .iter()
        .map(|t| (t.key(), t.value()))
        .collect();
    assert!(tags.contains(&("env", "prod")), "{tags:?}");
    assert_eq!(
        attached(&env.aws, &role_name).await,
        vec![managed.to_string()]
    );
    let inline = env
        .aws
        .iam
        .list_role_policies()
        .role_name(&role_name)
        .send()
        .await
        .unwrap();
    assert_eq!(inline.policy_names(), ["extra"]);

    // Removing fields removes them in IAM too.
    let patch = json!({ "spec": { "permissionsBoundary": null, "managedPolicyArns": null, "inlinePolicies": null, "tags": null } });
    env.roles
        .patch("r", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_reason(&env.roles, "r", "Available").await;
    let in_moto = role_in_moto(&env.aws, &role_name).await.unwrap();
    assert!(in_moto.permissions_boundary().is_none());
    assert!(attached(&env.aws, &role_name).await.is_empty());
    assert!(
        env.aws
            .iam
            .list_role_policies()
            .role_name(&role_name)
            .send()
            .await
            .unwrap()
            .policy_names()
            .is_empty()
    );
    assert!(!in_moto.tags().iter().any(|t| t.key() == "env"));
    common::leaks::assert_no_leaks(&env.client, &env.aws, &env.namespace).await;
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_document_change_publishes_a_new_default_version_and_prunes_at_five() {
    let env = env("versions").await;
    let operator = Operator::start(&env.client, &env.namespace, Options::default()).await;
    let aws_name = format!("{}-p", env.namespace);
    env.policies
        .create(
            &PostParams::default(),
            &policy("p", &aws_name, &["s3:GetObject"]),
        )
        .await
        .unwrap();
    let mut arn = String::new();
    for action in [
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:ListBucket",
        "s3:GetBucketTagging",
        "s3:PutBucketTagging",
        "s3:GetBucketPolicy",
    ] {
        let ready = wait_reason(&env.policies, "p", "Available").await;
        arn = ready.status.unwrap().arn.unwrap();
        let patch = json!({ "spec": { "document": { "Version": "2012-10-17", "Statement": [{ "Effect": "Allow", "Action": action, "Resource": "*" }] } } });
        env.policies
            .patch("p", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }
    let ready = wait_reason(&env.policies, "p", "Available").await;
    assert_eq!(
        ready.status.unwrap().default_version_id.as_deref(),
        Some("v7")
    );
    let versions = env
        .aws
        .iam
        .list_policy_versions()
        .policy_arn(&arn)
        .send()
        .await
        .unwrap();
    let mut ids: Vec<&str> = versions
        .versions()
        .iter()
        .filter_map(|v| v.version_id())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        ["v3", "v4", "v5", "v6", "v7"],
        "IAM keeps five versions, the oldest pruned first"
    );
    common::leaks::assert_no_leaks(&env.client, &env.aws, &env.namespace).await;
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn drift_behind_the_operators_back_is_repaired_on_resync() {
    let env = env("drift").await;
    let operator = Operator::start(
        &env.client,
        &env.namespace,
        Options {
            resync: Duration::from_secs(2),
            ..Options::default()
        },
    )
    .await;
    let role_name = format!("{}-d", env.namespace);
    let managed = "arn:aws:iam::aws:policy/ReadOnlyAccess";
    env.roles
        .create(
            &PostParams::default(),
            &role(
                "d",
                json!({
                    "name": role_name,
                    "description": "kept",
                    "trustedServices": ["ec2.amazonaws.com"],
                    "managedPolicyArns": [managed],
                }),
            ),
        )
        .await
        .unwrap();
    wait_reason(&env.roles, "d", "Available").await;

    env.aws
        .iam
        .detach_role_policy()
        .role_name(&role_name)
        .policy_arn(managed)
        .send()
        .await
        .unwrap();
    env.aws
        .iam
        .update_role()
        .role_name(&role_name)
        .description("tampered")
        .send()
        .await
        .unwrap();
    env.aws.iam.put_role_policy().role_name(&role_name).policy_name("sneaky")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#)
        .send().await.unwrap();

    common::wait_for("drift repaired", WAIT, || async {
        let role = role_in_moto(&env.aws, &role_name).await?;
        let inline = env
            .aws
            .iam
            .list_role_policies()
            .role_name(&role_name)
            .send()
            .await
            .ok()?;
        let repaired = role.description() == Some("kept")
            && attached(&env.aws, &role_name).await == vec![managed.to_string()]
            && inline.policy_names().is_empty();
        repaired.then_some(())
    })
    .await;
    common::leaks::assert_no_leaks(&env.client, &env.aws, &env.namespace).await;
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_existing_role_is_adopted_only_on_request_and_never_taken_from_another_namespace() {
    let env = env("adopt").await;
    let operator = Operator::start(&env.client, &env.namespace, Options::default()).await;
    let role_name = format!("{}-legacy", env.namespace);
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    env.aws
        .iam
        .create_role()
        .role_name(&role_name)
        .assume_role_policy_document(trust)
        .description("hand made")
        .send()
        .await
        .unwrap();

    let spec = json!({ "name": role_name, "description": "managed now", "trustedServices": ["ec2.amazonaws.com"] });
    env.roles
        .create(&PostParams::default(), &role("legacy", spec.clone()))
        .await
        .unwrap();
    let conflicted = wait_reason(&env.roles, "legacy", "Conflict").await;
    assert!(
        conflicted.ready().unwrap().2.contains("rolecall.dev/adopt"),
        "{:?}",
        conflicted.ready()
    );
    assert_eq!(
        role_in_moto(&env.aws, &role_name)
            .await
            .unwrap()
            .description(),
        Some("hand made"),
        "a conflicting role was modified"
    );

    let annotate = json!({ "metadata": { "annotations": { "rolecall.dev/adopt": "true" } } });
    env.roles
        .patch("legacy", &PatchParams::default(), &Patch::Merge(&annotate))
        .await
        .unwrap();
    common::wait_for("adoption", WAIT, || async {
        let role = role_in_moto(&env.aws, &role_name).await?;
        (role.description() == Some("managed now")
            && role.tags().iter().any(|t| t.key() == "rolecall.dev/owner"))
        .then_some(())
    })
    .await;

    // The same AWS role claimed from another namespace, even with the adopt annotation.
    let other = common::fresh_namespace(&env.client, "adopt-other").await;
    let other_operator = Operator::start(&env.client, &other, Options::default()).await;
    let other_roles: Api<IamRole> = Api::namespaced(env.client.clone(), &other);
    let mut thief = role("legacy", spec);
    thief.metadata.annotations =
        Some([("rolecall.dev/adopt".to_string(), "true".to_string())].into());
    other_roles
        .create(&PostParams::default(), &thief)
        .await
        .unwrap();
    let refused = wait_reason(&other_roles, "legacy", "Conflict").await;
    let owner = format!("test/{}/legacy", env.namespace);
    assert!(
        refused.ready().unwrap().2.contains(&owner),
        "{:?}",
        refused.ready()
    );
    let tags = role_in_moto(&env.aws, &role_name).await.unwrap();
    assert!(
        tags.tags()
            .iter()
            .any(|t| t.key() == "rolecall.dev/owner" && t.value() == owner)
    );
    common::leaks::assert_no_leaks(&env.client, &env.aws, &env.namespace).await;
    other_operator.stop().await;
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_removes_aws_objects_and_retain_leaves_them() {
    let env = env("delete").await;
    let operator = Operator::start(&env.client, &env.namespace, Options::default()).await;
    let policy_name = format!("{}-pol", env.namespace);
    let doomed = format!("{}-doomed", env.namespace);
    let kept = format!("{}-kept", env.namespace);
    env.policies
        .create(
            &PostParams::default(),
            &policy("pol", &policy_name, &["s3:GetObject"]),
        )
        .await
        .unwrap();
    env.roles.create(&PostParams::default(), &role("doomed", json!({
        "name": doomed, "trustedServices": ["ec2.amazonaws.com"], "policyRefs": [{ "name": "pol" }],
        "inlinePolicies": { "x": { "Version": "2012-10-17", "Statement": [{ "Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*" }] } },
    }))).await.unwrap();
    env.roles.create(&PostParams::default(), &role("kept", json!({
        "name": kept, "trustedServices": ["ec2.amazonaws.com"], "deletionPolicy": "Retain",
    }))).await.unwrap();
    let policy_arn = wait_reason(&env.policies, "pol", "Available")
        .await
        .status
        .unwrap()
        .arn
        .unwrap();
    wait_reason(&env.roles, "doomed", "Available").await;
    wait_reason(&env.roles, "kept", "Available").await;
    // An instance profile of rolecall's (tagged by this cluster) holding the role must not
    // block its deletion. One made outside rolecall does: tests/tenancy.rs.
    env.aws
        .iam
        .create_instance_profile()
        .instance_profile_name(&doomed)
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key("rolecall.dev/owner")
                .value(format!("test/{}/other-profile", env.namespace))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    env.aws
        .iam
        .add_role_to_instance_profile()
        .instance_profile_name(&doomed)
        .role_name(&doomed)
        .send()
        .await
        .unwrap();

    for name in ["doomed", "kept"] {
        env.roles
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    env.policies
        .delete("pol", &DeleteParams::default())
        .await
        .unwrap();
    for name in ["doomed", "kept"] {
        common::wait_for(&format!("IamRole {name} gone"), WAIT, || async {
            env.roles
                .get_opt(name)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        })
        .await;
    }
    common::wait_for("IamPolicy gone", WAIT, || async {
        env.policies
            .get_opt("pol")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;

    assert!(
        role_in_moto(&env.aws, &doomed).await.is_none(),
        "Delete left the role in AWS"
    );
    assert!(
        role_in_moto(&env.aws, &kept).await.is_some(),
        "Retain removed the role from AWS"
    );
    let policy_gone = env
        .aws
        .iam
        .get_policy()
        .policy_arn(&policy_arn)
        .send()
        .await;
    assert!(policy_gone.is_err(), "Delete left the policy in AWS");
    let profile = env
        .aws
        .iam
        .get_instance_profile()
        .instance_profile_name(&doomed)
        .send()
        .await
        .unwrap();
    assert!(
        profile.instance_profile().unwrap().roles().is_empty(),
        "the role is still in the profile"
    );
    // The stand-in for another rolecall object's profile goes with it.
    env.aws
        .iam
        .delete_instance_profile()
        .instance_profile_name(&doomed)
        .send()
        .await
        .unwrap();
    // The leak check sees the retained role (tagged, its object gone); once removed by hand,
    // nothing of the namespace is left.
    let leaks = common::leaks::leaks(&env.client, &env.aws, &env.namespace).await;
    assert_eq!(leaks.len(), 1, "{leaks:?}");
    assert!(leaks[0].contains(&format!("role/{kept}")), "{leaks:?}");
    env.aws
        .iam
        .delete_role()
        .role_name(&kept)
        .send()
        .await
        .unwrap();
    common::leaks::assert_no_leaks(&env.client, &env.aws, &env.namespace).await;
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_waits_for_its_policy_and_is_triggered_when_it_becomes_ready() {
    let env = env("refs").await;
    // Resync is an hour: only the watch on IamPolicy can wake the role in time.
    let operator = Operator::start(&env.client, &env.namespace, Options::default()).await;
    let role_name = format!("{}-late", env.namespace);
    env.roles.create(&PostParams::default(), &role("late", json!({
        "name": role_name, "trustedServices": ["ec2.amazonaws.com"], "policyRefs": [{ "name": "later" }],
    }))).await.unwrap();
    let waiting = wait_reason(&env.roles, "late", "DependencyNotReady").await;
    assert!(
        waiting.ready().unwrap().2.contains("later"),
        "{:?}",
        waiting.ready()
    );
    assert!(
        role_in_moto(&env.aws, &role_name).await.is_none(),
        "the role was created before its policy was Ready"
    );

    let policy_name = format!("{}-later", env.namespace);
    env.policies
        .create(
            &PostParams::default(),
            &policy("later", &policy_name, &["s3:GetObject"]),
        )
        .await
        .unwrap();
    let ready = wait_reason(&env.roles, "late", "Available").await;
    let arn = ready.status.unwrap().attached_policy_arns;
    assert_eq!(attached(&env.aws, &role_name).await, arn);
    assert!(arn[0].ends_with(&policy_name));
    common::leaks::assert_no_leaks(&env.client, &env.aws, &env.namespace).await;
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_plans_but_writes_nothing() {
    let env = env("dryrun").await;
    let operator = Operator::start(
        &env.client,
        &env.namespace,
        Options {
            dry_run: true,
            ..Options::default()
        },
    )
    .await;
    let role_name = format!("{}-dry", env.namespace);
    env.roles
        .create(
            &PostParams::default(),
            &role(
                "dry",
                json!({ "name": role_name, "trustedServices": ["ec2.amazonaws.com"] }),
            ),
        )
        .await
        .unwrap();
    common::wait_for("a planned CreateRole", WAIT, || async {
        operator
            .ctx
            .planned
            .lock()
            .unwrap()
            .iter()
            .any(|line| line.ends_with("dry: Create"))
            .then_some(())
    })
    .await;
    assert_eq!(
        operator.writes(),
        0,
        "dry run wrote to AWS: {:?}",
        operator.ctx.calls.snapshot()
    );
    assert!(role_in_moto(&env.aws, &role_name).await.is_none());
    let object = env.roles.get("dry").await.unwrap();
    assert!(
        object.metadata.finalizers.is_none(),
        "dry run added a finalizer"
    );
    assert!(object.status.is_none(), "dry run wrote a status");
    common::leaks::assert_no_leaks(&env.client, &env.aws, &env.namespace).await;
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_document_is_reported_with_no_aws_write() {
    let env = env("invalid").await;
    let operator = Operator::start(&env.client, &env.namespace, Options::default()).await;
    let mut bad = policy("bad", &format!("{}-bad", env.namespace), &["s3:GetObject"]);
    bad.spec.document.statement[0].not_action = Some(rolecall::api::OneOrMany::One("iam:*".into()));
    env.policies
        .create(&PostParams::default(), &bad)
        .await
        .unwrap();
    let refused = wait_reason(&env.policies, "bad", "InvalidSpec").await;
    assert!(
        refused.ready().unwrap().2.contains("NotAction"),
        "{:?}",
        refused.ready()
    );
    assert_eq!(operator.writes(), 0);
    common::leaks::assert_no_leaks(&env.client, &env.aws, &env.namespace).await;
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_while_aws_is_unreachable_keeps_the_finalizer() {
    let env = env("unreachable").await;
    let operator = Operator::start(&env.client, &env.namespace, Options::default()).await;
    let role_name = format!("{}-u", env.namespace);
    env.roles
        .create(
            &PostParams::default(),
            &role(
                "u",
                json!({ "name": role_name, "trustedServices": ["ec2.amazonaws.com"] }),
            ),
        )
        .await
        .unwrap();
    wait_reason(&env.roles, "u", "Available").await;
    operator.stop().await;

    // Port 9 (discard) on loopback: nothing listens, every call fails to connect.
    let dead = Operator::start(
        &env.client,
        &env.namespace,
        Options {
            endpoint: Some("http://127.0.0.1:9".into()),
            ..Options::default()
        },
    )
    .await;
    env.roles
        .delete("u", &DeleteParams::default())
        .await
        .unwrap();
    let stuck = wait_reason(&env.roles, "u", "Deleting").await;
    assert!(
        stuck
            .metadata
            .finalizers
            .is_some_and(|f| f.contains(&"iam.rolecall.dev/cleanup".to_string()))
    );
    assert!(role_in_moto(&env.aws, &role_name).await.is_some());
    dead.stop().await;

    let recovered = Operator::start(&env.client, &env.namespace, Options::default()).await;
    common::wait_for("deletion to complete", WAIT, || async {
        env.roles
            .get_opt("u")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(role_in_moto(&env.aws, &role_name).await.is_none());
    common::leaks::assert_no_leaks(&env.client, &env.aws, &env.namespace).await;
    recovered.stop().await;
}

/// Calls per phase, from the operator's own call log: (reads, writes).
fn delta(before: &Operator, reads: u64, writes: u64) -> (u64, u64) {
    (before.reads() - reads, before.writes() - writes)
}

#[tokio::test(flavor = "multi_thread")]
async fn one_role_with_two_policies_costs_the_minimal_writes() {
    let env = env("calls").await;
    let operator = Operator::start(&env.client, &env.namespace, Options::default()).await;
    for name in ["a", "b"] {
        let aws_name = format!("{}-{name}", env.namespace);
        env.policies
            .create(
                &PostParams::default(),
                &policy(name, &aws_name, &["s3:GetObject"]),
            )
            .await
            .unwrap();
    }
    let role_name = format!("{}-two", env.namespace);
    env.roles
        .create(&PostParams::default(), &role("two", json!({
            "name": role_name, "trustedServices": ["ec2.amazonaws.com"], "policyRefs": [{ "name": "a" }, { "name": "b" }],
        })))
        .await
        .unwrap();
    wait_reason(&env.policies, "a", "Available").await;
    wait_reason(&env.policies, "b", "Available").await;
    wait_reason(&env.roles, "two", "Available").await;
    let (create_reads, create_writes) = delta(&operator, 0, 0);
    eprintln!(
        "create: {create_reads} reads, {create_writes} writes: {:?}",
        operator.ctx.calls.snapshot()
    );
    // CreatePolicy x2, CreateRole (trust, tags and all in one call), AttachRolePolicy x2.
    assert_eq!(create_writes, 5, "{:?}", operator.ctx.calls.snapshot());

    // A resync is a reconcile with nothing changed; touching an annotation triggers one per object.
    let (reads, writes) = (operator.reads(), operator.writes());
    for (api_name, kind) in [("a", "policy"), ("b", "policy"), ("two", "role")] {
        let touch = json!({ "metadata": { "annotations": { "test/touched": "1" } } });
        match kind {
            "policy" => drop(
                env.policies
                    .patch(api_name, &PatchParams::default(), &Patch::Merge(&touch))
                    .await
                    .unwrap(),
            ),
            _ => drop(
                env.roles
                    .patch(api_name, &PatchParams::default(), &Patch::Merge(&touch))
                    .await
                    .unwrap(),
            ),
        }
    }
    // Two policies (GetPolicy, ListPolicyVersions, GetPolicyVersion) and one role (GetRole,
    // ListAttachedRolePolicies, ListRolePolicies).
    common::wait_for("the resync reads", WAIT, || async {
        (operator.reads() >= reads + 9).then_some(())
    })
    .await;
    let (resync_reads, resync_writes) = delta(&operator, reads, writes);
    eprintln!("resync: {resync_reads} reads, {resync_writes} writes");
    assert_eq!(resync_writes, 0);

    let (reads, writes) = (operator.reads(), operator.writes());
    env.roles
        .delete("two", &DeleteParams::default())
        .await
        .unwrap();
    common::wait_for("role gone", WAIT, || async {
        env.roles
            .get_opt("two")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    for name in ["a", "b"] {
        env.policies
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
        common::wait_for("policy gone", WAIT, || async {
            env.policies
                .get_opt(name)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        })
        .await;
    }
    let (delete_reads, delete_writes) = delta(&operator, reads, writes);
    eprintln!("delete: {delete_reads} reads, {delete_writes} writes");
    // DetachRolePolicy x2, DeleteRole, DeletePolicy x2.
    assert_eq!(delete_writes, 5, "{:?}", operator.ctx.calls.snapshot());
    assert!(role_in_moto(&env.aws, &role_name).await.is_none());
    common::leaks::assert_no_leaks(&env.client, &env.aws, &env.namespace).await;
    operator.stop().await;
}
