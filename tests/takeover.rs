//! No takeover between owners (issue 12, part 7), against the real API server and moto: a role
//! one owner created is claimed by another owner declaring the same `spec.name`, once plainly
//! and once with `rolecall.dev/adopt: "true"`. The claimant reports `Ready=False`, reason
//! `Conflict`, naming the owner's `<cluster>/<namespace>/<name>`; no AWS write reaches the role
//! (the claimant's own call count, moto's recorded requests naming the role, and the role read
//! back before and after agree); deleting the claims leaves the role in AWS and its owner
//! Ready.
//!
//! (a) two clusters sharing one AWS account: two operators with different `--cluster-name`,
//!     each watching its own namespace of one API server; and the same namespace and object
//!     name served by two clusters in turn, whose owner ids differ only by the cluster;
//! (b) two namespaces of one cluster: one operator watching both.

mod common;

use std::time::Duration;

use common::operator::{Operator, Options, aws_clients};
use common::ready::{Ready, wait_reason};
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};
use rolecall::api::IamRole;
use rolecall::aws::AwsClients;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const EC2_TRUST: &str = "ec2.amazonaws.com";

fn role(name: &str, spec: Value, adopt: bool) -> IamRole {
    let mut role: IamRole = serde_json::from_value(json!({
        "apiVersion": "iam.rolecall.dev/v1alpha1",
        "kind": "IamRole",
        "metadata": { "name": name },
        "spec": spec,
    }))
    .unwrap();
    if adopt {
        role.metadata.annotations =
            Some([("rolecall.dev/adopt".to_string(), "true".to_string())].into());
    }
    role
}

/// The owner's spec: what the role in AWS looks like.
fn owner_spec(aws_name: &str) -> Value {
    json!({
        "name": aws_name,
        "description": "the owner's",
        "trustedServices": [EC2_TRUST],
        "inlinePolicies": { "owner": { "Version": "2012-10-17", "Statement": [
            { "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::owner/*" } ] } },
        "tags": { "team": "owner" },
    })
}

/// A claimant's spec: the same AWS name, every other field different, so any write it made
/// would show in the role.
fn claimant_spec(aws_name: &str) -> Value {
    json!({
        "name": aws_name,
        "description": "the claimant's",
        "trustedServices": [EC2_TRUST],
        "maxSessionDuration": 7200,
        "inlinePolicies": { "claimant": { "Version": "2012-10-17", "Statement": [
            { "Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::claimant/*" } ] } },
        "tags": { "team": "claimant" },
    })
}

/// Everything about the role a write could change, as AWS reports it.
async fn role_state(aws: &AwsClients, name: &str) -> String {
    let role = aws
        .iam
        .get_role()
        .role_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetRole {name}: {e:?}"))
        .role
        .expect("a role");
    let mut tags: Vec<_> = role
        .tags()
        .iter()
        .map(|t| format!("{}={}", t.key(), t.value()))
        .collect();
    tags.sort();
    let attached = aws
        .iam
        .list_attached_role_policies()
        .role_name(name)
        .send()
        .await
        .unwrap();
    let inline = aws
        .iam
        .list_role_policies()
        .role_name(name)
        .send()
        .await
        .unwrap();
    let mut documents = Vec::new();
    for policy in inline.policy_names() {
        let document = aws
            .iam
            .get_role_policy()
            .role_name(name)
            .policy_name(policy)
            .send()
            .await
            .unwrap()
            .policy_document;
        documents.push(format!("{policy}: {document}"));
    }
    format!(
        "arn {} id {} path {} description {:?} max session {:?} boundary {:?}\n\
         trust {:?}\ntags {tags:?}\nattached {:?}\ninline {documents:?}",
        role.arn(),
        role.role_id(),
        role.path(),
        role.description(),
        role.max_session_duration(),
        role.permissions_boundary()
            .and_then(|b| b.permissions_boundary_arn()),
        role.assume_role_policy_document(),
        attached
            .attached_policies()
            .iter()
            .filter_map(|p| p.policy_arn())
            .collect::<Vec<_>>(),
    )
}

/// IAM writes moto has recorded for the role named `name`: every request naming it
/// (`RoleName=`) whose action is not a Get or List.
fn recorded_writes_to(name: &str) -> Vec<String> {
    use base64::Engine as _;
    let path = std::env::var("ROLECALL_TEST_MOTO_RECORDING")
        .expect("ROLECALL_TEST_MOTO_RECORDING (set by `scripts/moto.sh env`)");
    let text = std::fs::read_to_string(&path).expect("moto's recording");
    let engine = base64::engine::general_purpose::STANDARD;
    let naming = format!("RoleName={name}");
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|request| {
            let body = request["body"].as_str()?;
            let body = if request["body_encoded"].as_bool() == Some(true) {
                String::from_utf8(engine.decode(body).ok()?).ok()?
            } else {
                body.to_owned()
            };
            let pairs: Vec<&str> = body.split('&').collect();
            if !pairs.contains(&naming.as_str()) {
                return None;
            }
            let action = pairs.iter().find_map(|p| p.strip_prefix("Action="))?;
            (!action.starts_with("Get") && !action.starts_with("List")).then(|| action.to_owned())
        })
        .collect()
}

async fn role_exists(aws: &AwsClients, name: &str) -> bool {
    common::found("GetRole", aws.iam.get_role().role_name(name).send().await).is_some()
}

/// The owner's object `web` in `owner_ns` is Ready with the role in AWS; two claimants in
/// `claimant_ns` (one annotated to adopt) declare the same AWS name. `claimant_writes` reads
/// the AWS writes made on the claimants' behalf so far.
async fn claims_are_refused_and_change_nothing(
    client: &Client,
    aws: &AwsClients,
    aws_name: &str,
    owner_ns: &str,
    owner_id: &str,
    claimant_ns: &str,
    claimant_writes: impl Fn() -> u64,
) {
    let owners: Api<IamRole> = Api::namespaced(client.clone(), owner_ns);
    let claimants: Api<IamRole> = Api::namespaced(client.clone(), claimant_ns);
    let before = role_state(aws, aws_name).await;
    assert!(
        before.contains(&format!("rolecall.dev/owner={owner_id}")),
        "the owner's tag is on the role: {before}"
    );
    let writes_before = claimant_writes();
    let recorded_before = recorded_writes_to(aws_name);
    assert!(
        recorded_before.iter().any(|action| action == "CreateRole"),
        "moto's recording shows the owner's writes (else the check below proves nothing): \
         {recorded_before:?}"
    );

    for (name, adopt) in [("claim", false), ("adopt", true)] {
        claimants
            .create(
                &PostParams::default(),
                &role(name, claimant_spec(aws_name), adopt),
            )
            .await
            .unwrap();
    }
    for name in ["claim", "adopt"] {
        let refused = wait_reason(&claimants, name, "Conflict").await;
        let (status, _, message) = refused.ready().unwrap();
        assert_eq!(status, "False", "{name}: {message}");
        assert!(
            message.contains(owner_id),
            "{name}: the Conflict names the owner {owner_id}: {message}"
        );
    }
    assert_eq!(
        role_state(aws, aws_name).await,
        before,
        "a refused claim changed the role"
    );
    assert_eq!(
        claimant_writes(),
        writes_before,
        "AWS writes were made for a refused claim"
    );

    for name in ["claim", "adopt"] {
        claimants
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    common::wait_for("the claims to be deleted", WAIT, || async {
        let left = claimants.list(&Default::default()).await.ok()?;
        left.items.is_empty().then_some(())
    })
    .await;
    assert!(
        role_exists(aws, aws_name).await,
        "deleting a refused claim deleted the owner's role"
    );
    assert_eq!(
        role_state(aws, aws_name).await,
        before,
        "deleting a refused claim changed the role"
    );
    assert_eq!(
        claimant_writes(),
        writes_before,
        "AWS writes were made deleting a refused claim"
    );
    let recorded: Vec<_> = recorded_writes_to(aws_name)
        .into_iter()
        .skip(recorded_before.len())
        .collect();
    assert!(
        recorded.is_empty(),
        "moto recorded writes to {aws_name} while only the claims changed: {recorded:?}"
    );
    let owner = owners.get("web").await.unwrap();
    assert_eq!(
        owner.ready().map(|r| (r.0, r.1)),
        Some(("True".to_string(), "Available".to_string())),
        "the owner stays Ready: {:?}",
        owner.ready()
    );
}

/// Deletes the owner's object and waits until its role is gone from AWS (the owner still
/// deletes what it owns), then checks for leaks.
async fn owner_cleans_up(client: &Client, aws: &AwsClients, owner_ns: &str, aws_name: &str) {
    let owners: Api<IamRole> = Api::namespaced(client.clone(), owner_ns);
    owners
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    common::wait_for("the owner to delete its role", WAIT, || async {
        (!role_exists(aws, aws_name).await).then_some(())
    })
    .await;
    common::leaks::assert_no_leaks(client, aws, owner_ns).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_clusters_sharing_an_account_cannot_take_each_others_roles() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let aws = aws_clients().await;
    let east_ns = common::fresh_namespace(&client, "takeover-east").await;
    let west_ns = common::fresh_namespace(&client, "takeover-west").await;
    let aws_name = format!("{east_ns}-web");
    let cluster = |name: &str| Options {
        cluster_name: Some(name.into()),
        ..Options::default()
    };
    let east = Operator::start(&client, &east_ns, cluster("east")).await;
    let west = Operator::start(&client, &west_ns, cluster("west")).await;

    let owners: Api<IamRole> = Api::namespaced(client.clone(), &east_ns);
    owners
        .create(
            &PostParams::default(),
            &role("web", owner_spec(&aws_name), false),
        )
        .await
        .unwrap();
    wait_reason(&owners, "web", "Available").await;
    let east_writes = east.writes();
    assert!(east_writes > 0, "the owner created the role");

    // The west operator watches only the claims: every AWS write it makes would be for them.
    claims_are_refused_and_change_nothing(
        &client,
        &aws,
        &aws_name,
        &east_ns,
        &format!("east/{east_ns}/web"),
        &west_ns,
        || west.writes(),
    )
    .await;
    assert_eq!(west.writes(), 0, "the west cluster made AWS writes");
    assert_eq!(
        east.writes(),
        east_writes,
        "the owner wrote while only claims changed"
    );

    owner_cleans_up(&client, &aws, &east_ns, &aws_name).await;
    west.stop().await;
    east.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_clusters_with_the_same_namespace_and_name_cannot_take_each_others_roles() {
    // The owner id is <cluster>/<namespace>/<name>, so `apps/web` in two clusters differs
    // only by the cluster. One API server cannot hold two `web`s in one namespace, so the
    // same object is served first by an "east" operator, then by a "west" one: to west, the
    // role in AWS carries another cluster's tag.
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let aws = aws_clients().await;
    let shared_ns = common::fresh_namespace(&client, "takeover-same").await;
    let aws_name = format!("{shared_ns}-web");
    let east = Operator::start(
        &client,
        &shared_ns,
        Options {
            cluster_name: Some("east".into()),
            ..Options::default()
        },
    )
    .await;
    let owners: Api<IamRole> = Api::namespaced(client.clone(), &shared_ns);
    owners
        .create(
            &PostParams::default(),
            &role("web", owner_spec(&aws_name), false),
        )
        .await
        .unwrap();
    wait_reason(&owners, "web", "Available").await;
    let before = role_state(&aws, &aws_name).await;
    // The owner stops; a "west" operator takes over the namespace, so the object named `web`
    // in the same namespace now belongs to another cluster's operator.
    east.stop().await;
    let west = Operator::start(
        &client,
        &shared_ns,
        Options {
            cluster_name: Some("west".into()),
            ..Options::default()
        },
    )
    .await;
    let refused = wait_reason(&owners, "web", "Conflict").await;
    let message = refused.ready().unwrap().2;
    assert!(
        message.contains(&format!("east/{shared_ns}/web")),
        "the Conflict names the east cluster's owner: {message}"
    );
    assert_eq!(
        role_state(&aws, &aws_name).await,
        before,
        "the west cluster changed the role"
    );
    assert_eq!(west.writes(), 0, "the west cluster made AWS writes");
    west.stop().await;
    // Back with its own cluster name, the owner deletes what it owns.
    let east = Operator::start(
        &client,
        &shared_ns,
        Options {
            cluster_name: Some("east".into()),
            ..Options::default()
        },
    )
    .await;
    wait_reason(&owners, "web", "Available").await;
    owner_cleans_up(&client, &aws, &shared_ns, &aws_name).await;
    east.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_namespaces_of_one_cluster_cannot_take_each_others_roles() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let aws = aws_clients().await;
    let owner_ns = common::fresh_namespace(&client, "takeover-owner").await;
    let claimant_ns = common::fresh_namespace(&client, "takeover-claimant").await;
    let aws_name = format!("{owner_ns}-web");
    let operator = Operator::start(
        &client,
        &owner_ns,
        Options {
            also_watch: vec![claimant_ns.clone()],
            ..Options::default()
        },
    )
    .await;
    let owners: Api<IamRole> = Api::namespaced(client.clone(), &owner_ns);
    owners
        .create(
            &PostParams::default(),
            &role("web", owner_spec(&aws_name), false),
        )
        .await
        .unwrap();
    wait_reason(&owners, "web", "Available").await;

    // One operator serves both namespaces: with the owner converged (and a resync an hour
    // away), every AWS write it makes from here on would be for a claim.
    claims_are_refused_and_change_nothing(
        &client,
        &aws,
        &aws_name,
        &owner_ns,
        &format!("test/{owner_ns}/web"),
        &claimant_ns,
        || operator.writes(),
    )
    .await;

    owner_cleans_up(&client, &aws, &owner_ns, &aws_name).await;
    common::leaks::assert_no_leaks(&client, &aws, &claimant_ns).await;
    operator.stop().await;
}
