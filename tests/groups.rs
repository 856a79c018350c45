//! IamGroup against the real API server and moto: every field reaches IAM, members are
//! reported as observed, drift is repaired, a converged group costs no write, deletion works
//! with every attachment present (a member, managed and inline policies), a group the object
//! did not make is refused until adopted, and the namespace's rules apply to groups.

mod common;

use std::time::Duration;

use common::operator::{Operator, Options, aws_clients};
use common::ready::{Ready, wait_reason};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use rolecall::api::{IamGroup, IamPolicy};
use rolecall::aws::AwsClients;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const READ_ONLY: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";

fn group(name: &str, spec: Value) -> IamGroup {
    serde_json::from_value(json!({
        "apiVersion": "iam.rolecall.dev/v1alpha1", "kind": "IamGroup",
        "metadata": { "name": name }, "spec": spec,
    }))
    .unwrap()
}

fn statement(action: &str) -> Value {
    json!({ "Version": "2012-10-17", "Statement": [{ "Effect": "Allow", "Action": action, "Resource": "*" }] })
}

async fn group_in_moto(
    aws: &AwsClients,
    name: &str,
) -> Option<aws_sdk_iam::operation::get_group::GetGroupOutput> {
    common::found(
        "GetGroup",
        aws.iam.get_group().group_name(name).send().await,
    )
}

async fn attached(aws: &AwsClients, group: &str) -> Vec<String> {
    let output = aws
        .iam
        .list_attached_group_policies()
        .group_name(group)
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

async fn inline(aws: &AwsClients, group: &str) -> Vec<String> {
    let output = aws
        .iam
        .list_group_policies()
        .group_name(group)
        .send()
        .await
        .unwrap();
    output.policy_names().to_vec()
}

/// Asks for a reconcile now, as `rolecall.dev/touched` does.
async fn touch(groups: &Api<IamGroup>, name: &str, value: &str) {
    let patch = json!({ "metadata": { "annotations": { "rolecall.dev/touched": value } } });
    groups
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_converges_reports_members_repairs_drift_and_deletes_with_everything_attached() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let namespace = common::fresh_namespace(&client, "groups").await;
    let aws = aws_clients().await;
    let operator = Operator::start(
        &client,
        &namespace,
        Options {
            resync: Duration::from_secs(2),
            ..Options::default()
        },
    )
    .await;
    let policies: Api<IamPolicy> = Api::namespaced(client.clone(), &namespace);
    let groups: Api<IamGroup> = Api::namespaced(client.clone(), &namespace);
    let name = format!("{namespace}-admins");
    let policy_name = format!("{namespace}-mfa");
    let policy: IamPolicy = serde_json::from_value(json!({
        "apiVersion": "iam.rolecall.dev/v1alpha1", "kind": "IamPolicy",
        "metadata": { "name": "mfa" },
        "spec": { "name": policy_name, "document": statement("iam:ListMFADevices") },
    }))
    .unwrap();
    policies
        .create(&PostParams::default(), &policy)
        .await
        .unwrap();
    let spec = json!({
        "name": name,
        "path": "/people/",
        "managedPolicyArns": [READ_ONLY],
        "policyRefs": [{ "name": "mfa" }],
        "inlinePolicies": { "logs": statement("logs:GetLogEvents") },
    });
    groups
        .create(&PostParams::default(), &group("admins", spec))
        .await
        .unwrap();

    let ready = wait_reason(&groups, "admins", "Available").await;
    let policy = wait_reason(&policies, "mfa", "Available").await;
    let policy_arn = policy.status.unwrap().arn.unwrap();
    let status = ready.status.clone().unwrap();
    let in_moto = group_in_moto(&aws, &name).await.expect("the group exists");
    let found = in_moto.group.as_ref().unwrap();
    assert_eq!(status.arn.as_deref(), Some(found.arn.as_str()));
    assert_eq!(status.group_id.as_deref(), Some(found.group_id.as_str()));
    assert_eq!(found.path, "/people/");
    assert!(status.members.is_empty(), "{status:?}");
    let mut expected = vec![READ_ONLY.to_string(), policy_arn.clone()];
    expected.sort();
    assert_eq!(attached(&aws, &name).await, expected);
    let mut reported = status.attached_policy_arns.clone();
    reported.sort();
    assert_eq!(reported, expected);
    assert_eq!(inline(&aws, &name).await, ["logs"]);

    // A member added outside rolecall is reported as observed, and costs no write.
    let user = format!("{namespace}-alice");
    aws.iam.create_user().user_name(&user).send().await.unwrap();
    aws.iam
        .add_user_to_group()
        .group_name(&name)
        .user_name(&user)
        .send()
        .await
        .unwrap();
    let writes = operator.writes();
    touch(&groups, "admins", "members").await;
    common::wait_for("the member in status", WAIT, || async {
        let group = groups.get("admins").await.ok()?;
        let status = group.status?;
        (status.members == vec![user.clone()]).then_some(())
    })
    .await;
    assert_eq!(operator.writes(), writes, "reporting a member wrote to AWS");

    // Drift behind the operator's back: a policy detached, the inline policy rewritten, a
    // stray inline policy added. The next resync puts it back.
    aws.iam
        .detach_group_policy()
        .group_name(&name)
        .policy_arn(READ_ONLY)
        .send()
        .await
        .unwrap();
    for (policy, action) in [("logs", "s3:*"), ("stray", "ec2:*")] {
        aws.iam
            .put_group_policy()
            .group_name(&name)
            .policy_name(policy)
            .policy_document(statement(action).to_string())
            .send()
            .await
            .unwrap();
    }
    common::wait_for("the drift repaired", WAIT, || async {
        let repaired =
            attached(&aws, &name).await == expected && inline(&aws, &name).await == ["logs"];
        let document = aws
            .iam
            .get_group_policy()
            .group_name(&name)
            .policy_name("logs")
            .send()
            .await
            .ok()?
            .policy_document;
        (repaired && !document.contains("s3")).then_some(())
    })
    .await;

    // Converged: resyncs read and write nothing.
    common::wait_for("Ready again after the repair", WAIT, || async {
        let group = groups.get("admins").await.ok()?;
        (group.ready()?.1 == "Available").then_some(())
    })
    .await;
    let writes = operator.writes();
    let reads = operator.reads();
    // A resync of the group reads GetGroup, ListAttachedGroupPolicies, ListGroupPolicies and
    // GetGroupPolicy; the policy reads three.
    common::wait_for("two more resyncs", WAIT, || async {
        (operator.reads() >= reads + 2 * 7).then_some(())
    })
    .await;
    assert_eq!(
        operator.writes(),
        writes,
        "a converged group was written to"
    );

    // Deletion with a member, managed and inline policies present: IAM's order, then gone.
    // The policy waits for the group that holds it.
    policies
        .delete("mfa", &DeleteParams::default())
        .await
        .unwrap();
    groups
        .delete("admins", &DeleteParams::default())
        .await
        .unwrap();
    common::wait_for("the group and policy deleted", WAIT, || async {
        let gone = groups.get_opt("admins").await.ok()?.is_none()
            && policies.get_opt("mfa").await.ok()?.is_none();
        gone.then_some(())
    })
    .await;
    assert!(
        group_in_moto(&aws, &name).await.is_none(),
        "group left in IAM"
    );
    let groups_of_user = aws
        .iam
        .list_groups_for_user()
        .user_name(&user)
        .send()
        .await
        .unwrap();
    assert!(groups_of_user.groups().is_empty());
    // The user was the group's member, not its object: it stays.
    aws.iam.delete_user().user_name(&user).send().await.unwrap();
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_the_object_did_not_make_is_refused_until_adopted() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let namespace = common::fresh_namespace(&client, "group-adopt").await;
    let aws = aws_clients().await;
    let name = format!("{namespace}-ops");
    aws.iam
        .create_group()
        .group_name(&name)
        .send()
        .await
        .unwrap();
    aws.iam
        .put_group_policy()
        .group_name(&name)
        .policy_name("theirs")
        .policy_document(statement("s3:ListBucket").to_string())
        .send()
        .await
        .unwrap();
    // IAM dates a group to the second: the object must be visibly younger.
    let created = std::time::Instant::now();
    common::wait_for("a second to pass", Duration::from_secs(5), || async {
        (created.elapsed() >= Duration::from_millis(1100)).then_some(())
    })
    .await;
    let operator = Operator::start(&client, &namespace, Options::default()).await;
    let groups: Api<IamGroup> = Api::namespaced(client.clone(), &namespace);
    groups
        .create(
            &PostParams::default(),
            &group("ops", json!({ "name": name })),
        )
        .await
        .unwrap();
    let refused = wait_reason(&groups, "ops", "Conflict").await;
    let message = refused.ready().unwrap().2;
    assert!(
        message.contains("was not created by this object"),
        "{message}"
    );
    assert!(message.contains("rolecall.dev/adopt"), "{message}");
    assert_eq!(operator.writes(), 0);
    assert_eq!(inline(&aws, &name).await, ["theirs"]);

    let patch = json!({ "metadata": { "annotations": { "rolecall.dev/adopt": "true" } } });
    groups
        .patch("ops", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let adopted = wait_reason(&groups, "ops", "Available").await;
    let found = group_in_moto(&aws, &name).await.unwrap().group.unwrap();
    assert_eq!(
        adopted.status.unwrap().group_id.as_deref(),
        Some(found.group_id.as_str())
    );
    // Adopted means managed: the inline policy the spec does not list is removed.
    assert!(inline(&aws, &name).await.is_empty());

    groups
        .delete("ops", &DeleteParams::default())
        .await
        .unwrap();
    common::wait_for("the adopted group deleted", WAIT, || async {
        group_in_moto(&aws, &name).await.is_none().then_some(())
    })
    .await;
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_default_rules_refuse_an_administrator_group_with_no_aws_write() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    // No `rolecall.dev/test` label: the permissive test Tenancy does not select it.
    let namespace = format!("group-rules-{}", std::process::id());
    let object: Namespace =
        serde_json::from_value(json!({ "metadata": { "name": namespace } })).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
    let aws = aws_clients().await;
    let operator = Operator::start(&client, &namespace, Options::default()).await;
    let groups: Api<IamGroup> = Api::namespaced(client.clone(), &namespace);
    let name = format!("{namespace}-admin");
    let spec = json!({
        "name": name,
        "managedPolicyArns": ["arn:aws:iam::aws:policy/AdministratorAccess"],
    });
    groups
        .create(&PostParams::default(), &group("admin", spec))
        .await
        .unwrap();
    let refused = wait_reason(&groups, "admin", "Forbidden").await;
    let message = refused.ready().unwrap().2;
    assert!(message.contains("the default rules"), "{message}");
    assert!(message.contains("(rule managedPolicies)"), "{message}");

    // A path outside the namespace's own is refused too.
    let spec = json!({ "name": format!("{namespace}-elsewhere"), "path": "/admins/" });
    groups
        .create(&PostParams::default(), &group("elsewhere", spec))
        .await
        .unwrap();
    let refused = wait_reason(&groups, "elsewhere", "Forbidden").await;
    let message = refused.ready().unwrap().2;
    assert!(message.contains("(rule path)"), "{message}");
    assert_eq!(operator.writes(), 0);
    assert!(group_in_moto(&aws, &name).await.is_none());

    // Within the rules, the group is made on the namespace's path.
    let spec = json!({
        "name": format!("{namespace}-readers"),
        "inlinePolicies": { "logs": statement("logs:GetLogEvents") },
    });
    groups
        .create(&PostParams::default(), &group("readers", spec))
        .await
        .unwrap();
    let ready = wait_reason(&groups, "readers", "Available").await;
    let arn = ready.status.unwrap().arn.unwrap();
    assert!(
        arn.ends_with(&format!(":group/rolecall/{namespace}/{namespace}-readers")),
        "{arn}"
    );
    groups
        .delete("readers", &DeleteParams::default())
        .await
        .unwrap();
    groups
        .delete("admin", &DeleteParams::default())
        .await
        .unwrap();
    groups
        .delete("elsewhere", &DeleteParams::default())
        .await
        .unwrap();
    common::wait_for("the groups deleted", WAIT, || async {
        groups
            .list(&Default::default())
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await;
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_account_baseline_example_makes_the_admin_group_under_its_tenancy() {
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
    let aws = aws_clients().await;
    let operator = Operator::start(&client, "accounts", Options::default()).await;
    kubectl(&[
        "apply",
        "-n",
        "accounts",
        "-f",
        dir.join("admin-group.yaml").to_str().unwrap(),
    ]);
    let groups: Api<IamGroup> = Api::namespaced(client.clone(), "accounts");
    let ready = wait_reason(&groups, "admin", "Available").await;
    let arn = ready.status.unwrap().arn.unwrap();
    assert!(arn.ends_with(":group/rolecall/accounts/admin"), "{arn}");
    assert_eq!(
        attached(&aws, "admin").await,
        ["arn:aws:iam::aws:policy/AdministratorAccess"]
    );
    groups
        .delete("admin", &DeleteParams::default())
        .await
        .unwrap();
    common::wait_for("the admin group deleted", WAIT, || async {
        group_in_moto(&aws, "admin").await.is_none().then_some(())
    })
    .await;
    operator.stop().await;
}
