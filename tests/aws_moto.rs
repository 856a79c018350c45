//! The crate's AWS configuration (endpoint override, region, default credential chain) reaches
//! moto: the same code path `rolecall run --aws-endpoint-url` will use.

mod common;

use rolecall::aws::{AwsArgs, AwsClients};

const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

fn moto_args() -> AwsArgs {
    AwsArgs {
        region: Some("us-east-1".into()),
        aws_endpoint_url: Some(common::aws_endpoint()),
        ..AwsArgs::default()
    }
}

#[tokio::test]
async fn clients_create_and_read_back_a_role_in_moto() {
    let clients = AwsClients::from_args(&moto_args()).await;
    let role_name = format!("foundation-{}", std::process::id());
    let created = clients
        .iam
        .create_role()
        .role_name(&role_name)
        .assume_role_policy_document(TRUST)
        .send()
        .await
        .expect("CreateRole against moto");
    let created = created.role().expect("CreateRole returns the role");
    assert_eq!(created.role_name(), role_name);

    let read = clients
        .iam
        .get_role()
        .role_name(&role_name)
        .send()
        .await
        .expect("GetRole");
    let read = read.role().expect("GetRole returns the role");
    assert_eq!(read.arn(), created.arn());
    assert!(
        read.arn().ends_with(&format!(":role/{role_name}")),
        "{}",
        read.arn()
    );

    clients
        .iam
        .delete_role()
        .role_name(&role_name)
        .send()
        .await
        .expect("DeleteRole");
    let gone = clients.iam.get_role().role_name(&role_name).send().await;
    let error = gone.expect_err("the role is deleted");
    assert!(error.into_service_error().is_no_such_entity_exception());
}

#[tokio::test]
async fn sts_and_ec2_clients_share_the_configuration() {
    let clients = AwsClients::from_args(&moto_args()).await;
    let identity = clients
        .sts
        .get_caller_identity()
        .send()
        .await
        .expect("GetCallerIdentity");
    assert!(
        identity
            .account()
            .is_some_and(|account| account.len() == 12)
    );
    let regions = clients
        .ec2
        .describe_regions()
        .send()
        .await
        .expect("DescribeRegions");
    assert!(
        regions
            .regions()
            .iter()
            .any(|region| region.region_name() == Some("us-east-1"))
    );
}

#[tokio::test]
async fn an_attached_policy_cannot_be_deleted_as_in_iam() {
    // tools/moto/server.py patches this in: plain moto deletes the policy and leaves an
    // attachment no call can remove, which then blocks DeleteRole for good.
    let clients = AwsClients::from_args(&moto_args()).await;
    let name = format!("attached-{}", std::process::id());
    let document = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;
    let iam = &clients.iam;
    iam.create_role()
        .role_name(&name)
        .assume_role_policy_document(TRUST)
        .send()
        .await
        .expect("CreateRole");
    let policy = iam
        .create_policy()
        .policy_name(&name)
        .policy_document(document)
        .send()
        .await
        .expect("CreatePolicy");
    let arn = policy
        .policy()
        .and_then(|p| p.arn())
        .expect("ARN")
        .to_owned();
    iam.attach_role_policy()
        .role_name(&name)
        .policy_arn(&arn)
        .send()
        .await
        .expect("AttachRolePolicy");

    let refused = iam.delete_policy().policy_arn(&arn).send().await;
    let error = refused.expect_err("DeletePolicy of an attached policy");
    assert!(
        error.into_service_error().is_delete_conflict_exception(),
        "DeleteConflict"
    );

    iam.detach_role_policy()
        .role_name(&name)
        .policy_arn(&arn)
        .send()
        .await
        .expect("DetachRolePolicy");
    iam.delete_policy()
        .policy_arn(&arn)
        .send()
        .await
        .expect("DeletePolicy once detached");
    iam.delete_role()
        .role_name(&name)
        .send()
        .await
        .expect("DeleteRole");
}
