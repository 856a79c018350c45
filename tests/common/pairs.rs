//! Batches of IamPolicy + IamRole pairs (the role attaches its policy): what the leader
//! election and crash tests create, apply and count.

use std::time::Duration;

use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use rolecall::api::{IamPolicy, IamRole};
use serde_json::json;

use super::ready::Ready;

/// Writes per pair: CreatePolicy, CreateRole, AttachRolePolicy.
pub const WRITES_PER_PAIR: usize = 3;

/// IAM names are `<namespace>-p<i>` and `<namespace>-r<i>`; Kubernetes names `p<i>`, `r<i>`.
pub fn policy_name(namespace: &str, index: usize) -> String {
    format!("{namespace}-p{index}")
}

pub fn role_name(namespace: &str, index: usize) -> String {
    format!("{namespace}-r{index}")
}

/// Server-side applies pairs `range` into `namespace`.
pub async fn apply(client: &Client, namespace: &str, range: std::ops::Range<usize>) {
    let policies: Api<IamPolicy> = Api::namespaced(client.clone(), namespace);
    let roles: Api<IamRole> = Api::namespaced(client.clone(), namespace);
    let params = PatchParams::apply("rolecall-tests").force();
    for index in range {
        let policy = json!({
            "apiVersion": "iam.rolecall.dev/v1alpha1",
            "kind": "IamPolicy",
            "metadata": { "name": format!("p{index}") },
            "spec": {
                "name": policy_name(namespace, index),
                "document": { "Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow", "Action": "s3:GetObject",
                    "Resource": format!("arn:aws:s3:::bucket-{index}/*"),
                }] },
            },
        });
        let role = json!({
            "apiVersion": "iam.rolecall.dev/v1alpha1",
            "kind": "IamRole",
            "metadata": { "name": format!("r{index}") },
            "spec": {
                "name": role_name(namespace, index),
                "trustedServices": ["ec2.amazonaws.com"],
                "policyRefs": [{ "name": format!("p{index}") }],
            },
        });
        policies
            .patch(&format!("p{index}"), &params, &Patch::Apply(&policy))
            .await
            .unwrap_or_else(|e| panic!("apply policy p{index}: {e}"));
        roles
            .patch(&format!("r{index}"), &params, &Patch::Apply(&role))
            .await
            .unwrap_or_else(|e| panic!("apply role r{index}: {e}"));
    }
}

/// How many policies and roles in `namespace` are Ready for their current generation.
pub async fn ready_count(client: &Client, namespace: &str) -> usize {
    let policies: Api<IamPolicy> = Api::namespaced(client.clone(), namespace);
    let roles: Api<IamRole> = Api::namespaced(client.clone(), namespace);
    let (Ok(policies), Ok(roles)) = (
        policies.list(&ListParams::default()).await,
        roles.list(&ListParams::default()).await,
    ) else {
        return 0;
    };
    let ready = |r: Option<(String, String, String)>| r.is_some_and(|(s, _, _)| s == "True");
    policies.items.iter().filter(|p| ready(p.ready())).count()
        + roles.items.iter().filter(|r| ready(r.ready())).count()
}

/// Waits until all `pairs` pairs are Ready; on timeout, fails naming those that are not.
pub async fn wait_all_ready(client: &Client, namespace: &str, pairs: usize, timeout: Duration) {
    if let Err(message) = try_wait_all_ready(client, namespace, pairs, timeout).await {
        panic!("{message}");
    }
}

/// As [`wait_all_ready`], returning the failure for the caller to add to.
pub async fn try_wait_all_ready(
    client: &Client,
    namespace: &str,
    pairs: usize,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = std::time::Instant::now() + timeout;
    while ready_count(client, namespace).await < pairs * 2 {
        if std::time::Instant::now() > deadline {
            return Err(format!(
                "timed out after {timeout:?} waiting for {} objects in {namespace} to be Ready; not Ready: {:?}",
                pairs * 2,
                not_ready(client, namespace).await
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// Deletes every pair and waits until the finalizers let them go.
pub async fn delete_all(client: &Client, namespace: &str, timeout: Duration) {
    let policies: Api<IamPolicy> = Api::namespaced(client.clone(), namespace);
    let roles: Api<IamRole> = Api::namespaced(client.clone(), namespace);
    let all = ListParams::default();
    let _ = roles.delete_collection(&Default::default(), &all).await;
    let _ = policies.delete_collection(&Default::default(), &all).await;
    super::wait_for(
        &format!("the pairs in {namespace} to be deleted"),
        timeout,
        || async {
            let left = policies.list(&all).await.ok()?.items.len()
                + roles.list(&all).await.ok()?.items.len();
            (left == 0).then_some(())
        },
    )
    .await;
}

/// The Events in `namespace` that say an object waited for the operator to read the
/// Tenancies: a start or hand-over that users could see.
pub async fn waits_for_the_rules(client: &Client, namespace: &str) -> Vec<String> {
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), namespace);
    events
        .list(&ListParams::default())
        .await
        .expect("list Events")
        .items
        .into_iter()
        .filter_map(|event| event.note)
        .filter(|note| note.contains("waiting to read the Tenancies"))
        .collect()
}

/// Names of the objects in `namespace` that are not Ready, for failure messages.
pub async fn not_ready(client: &Client, namespace: &str) -> Vec<String> {
    let policies: Api<IamPolicy> = Api::namespaced(client.clone(), namespace);
    let roles: Api<IamRole> = Api::namespaced(client.clone(), namespace);
    let mut names = Vec::new();
    if let Ok(list) = policies.list(&ListParams::default()).await {
        names.extend(
            list.items
                .iter()
                .filter(|p| p.ready().is_none_or(|r| r.0 != "True"))
                .map(|p| format!("policy {} {:?}", p.name_any(), p.ready())),
        );
    }
    if let Ok(list) = roles.list(&ListParams::default()).await {
        names.extend(
            list.items
                .iter()
                .filter(|r| r.ready().is_none_or(|x| x.0 != "True"))
                .map(|r| format!("role {} {:?}", r.name_any(), r.ready())),
        );
    }
    names
}
