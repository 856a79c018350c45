//! How the shared pipeline reports, against the real API server and moto: a failed reconcile
//! counts once as an error and is not woken by its own status write; a missing dependency is
//! announced once and its arrival wakes the dependent; a Conflict is announced once however
//! often it is seen again.

mod common;

use std::time::Duration;

use common::ec2::{events_about, object};
use common::operator::{Operator, Options, aws_clients};
use common::ready::{Ready, wait_reason};
use kube::api::{Api, Patch, PatchParams, PostParams};
use rolecall::api::{IamPolicy, IamRole};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_reconcile_counts_once_as_an_error_and_its_status_write_does_not_wake_it() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let namespace = common::fresh_namespace(&client, "count").await;
    let operator = Operator::start(&client, &namespace, Options::default()).await;
    let roles: Api<IamRole> = Api::namespaced(client.clone(), &namespace);
    // Valid for the schema, refused by the operator: another account's policy.
    roles
        .create(
            &PostParams::default(),
            &object(
                "IamRole",
                "bad",
                json!({
                    "name": format!("{namespace}-bad"), "trustedServices": ["ec2.amazonaws.com"],
                    "managedPolicyArns": ["arn:aws:iam::210987654321:policy/theirs"],
                }),
            ),
        )
        .await
        .unwrap();
    wait_reason(&roles, "bad", "InvalidSpec").await;
    // A second role converging after the failure's status write proves the controller has
    // handled the events since; a wake-up by that write would have failed a second time.
    roles
        .create(
            &PostParams::default(),
            &object(
                "IamRole",
                "good",
                json!({
                    "name": format!("{namespace}-good"), "trustedServices": ["ec2.amazonaws.com"],
                }),
            ),
        )
        .await
        .unwrap();
    wait_reason(&roles, "good", "Available").await;
    assert_eq!(operator.reconciles("IamRole", "error"), 1);
    let events: Vec<_> = events_about(&client, &namespace, "bad")
        .await
        .into_iter()
        .filter(|event| event.reason.as_deref() == Some("InvalidSpec"))
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].type_.as_deref(), Some("Warning"));
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_dependency_is_announced_once_and_its_arrival_wakes_the_dependent() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let namespace = common::fresh_namespace(&client, "dep").await;
    let operator = Operator::start(&client, &namespace, Options::default()).await;
    let roles: Api<IamRole> = Api::namespaced(client.clone(), &namespace);
    let policies: Api<IamPolicy> = Api::namespaced(client.clone(), &namespace);
    roles
        .create(
            &PostParams::default(),
            &object(
                "IamRole",
                "web",
                json!({
                    "name": format!("{namespace}-web"), "trustedServices": ["ec2.amazonaws.com"],
                    "policyRefs": [{ "name": "reader" }],
                }),
            ),
        )
        .await
        .unwrap();
    wait_reason(&roles, "web", "DependencyNotReady").await;
    policies
        .create(
            &PostParams::default(),
            &object(
                "IamPolicy",
                "reader",
                json!({
                    "name": format!("{namespace}-reader"),
                    "document": { "Version": "2012-10-17", "Statement": [
                        { "Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*" }] },
                }),
            ),
        )
        .await
        .unwrap();
    let role = wait_reason(&roles, "web", "Available").await;
    assert_eq!(role.status.unwrap().attached_policy_arns.len(), 1);
    let waiting: Vec<_> = events_about(&client, &namespace, "web")
        .await
        .into_iter()
        .filter(|event| event.reason.as_deref() == Some("DependencyNotReady"))
        .collect();
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(
        waiting[0].type_.as_deref(),
        Some("Normal"),
        "waiting is not a failure"
    );
    assert!(
        waiting[0].series.is_none(),
        "repeated: {:?}",
        waiting[0].series
    );
    common::leaks::assert_no_leaks(&client, &aws_clients().await, &namespace).await;
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_conflict_is_announced_once_however_often_it_is_seen() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let namespace = common::fresh_namespace(&client, "conflict-once").await;
    let aws = aws_clients().await;
    let operator = Operator::start(&client, &namespace, Options::default()).await;
    let roles: Api<IamRole> = Api::namespaced(client.clone(), &namespace);
    let name = format!("{namespace}-theirs");
    aws.iam
        .create_role()
        .role_name(&name)
        .assume_role_policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        )
        .send()
        .await
        .unwrap();
    roles
        .create(
            &PostParams::default(),
            &object(
                "IamRole",
                "theirs",
                json!({
                    "name": name, "trustedServices": ["ec2.amazonaws.com"],
                }),
            ),
        )
        .await
        .unwrap();
    wait_reason(&roles, "theirs", "Conflict").await;
    // Each touch is a reconcile that finds the same Conflict.
    for touch in 1..=3 {
        let errors = operator.reconciles("IamRole", "error");
        let patch = json!({ "metadata": { "annotations": { "test/touch": touch.to_string() } } });
        roles
            .patch("theirs", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        common::wait_for("another reconcile", WAIT, || async {
            (operator.reconciles("IamRole", "error") > errors).then_some(())
        })
        .await;
    }
    let conflicts: Vec<_> = events_about(&client, &namespace, "theirs")
        .await
        .into_iter()
        .filter(|event| event.reason.as_deref() == Some("Conflict"))
        .collect();
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert!(
        conflicts[0].series.is_none(),
        "repeated: {:?}",
        conflicts[0].series
    );
    assert!(
        roles
            .get("theirs")
            .await
            .unwrap()
            .ready()
            .unwrap()
            .2
            .contains(&name)
    );
    operator.stop().await;
}
