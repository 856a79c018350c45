//! EC2 and IAM fixtures for the binding tests: rolecall objects from JSON, instances launched
//! in moto, associations as EC2 reports them, and profiles made outside rolecall.

use rolecall::aws::AwsClients;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// An AMI moto ships.
pub const AMI: &str = "ami-03cf127a";

pub fn object<K: DeserializeOwned>(kind: &str, name: &str, spec: Value) -> K {
    serde_json::from_value(json!({
        "apiVersion": "iam.rolecall.dev/v1alpha1", "kind": kind, "metadata": { "name": name }, "spec": spec,
    }))
    .unwrap()
}

pub async fn run_instance(aws: &AwsClients, tags: &[(&str, &str)]) -> String {
    // EC2 refuses an empty tag specification, so every test instance carries one tag.
    let mut spec = aws_sdk_ec2::types::TagSpecification::builder()
        .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("rolecall-test")
                .value("true")
                .build(),
        );
    for (key, value) in tags {
        spec = spec.tags(
            aws_sdk_ec2::types::Tag::builder()
                .key(*key)
                .value(*value)
                .build(),
        );
    }
    let output = aws
        .ec2
        .run_instances()
        .image_id(AMI)
        .min_count(1)
        .max_count(1)
        .tag_specifications(spec.build())
        .send()
        .await
        .unwrap();
    output.instances()[0].instance_id().unwrap().to_owned()
}

/// The profile ARN an instance is associated with, if any.
pub async fn associated_profile(aws: &AwsClients, instance: &str) -> Option<String> {
    let output = aws
        .ec2
        .describe_iam_instance_profile_associations()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("instance-id")
                .values(instance)
                .build(),
        )
        .send()
        .await
        .unwrap();
    output
        .iam_instance_profile_associations()
        .iter()
        .find(|a| {
            a.state()
                .is_some_and(|s| s.as_str() == "associated" || s.as_str() == "associating")
        })
        .and_then(|a| a.iam_instance_profile()?.arn().map(str::to_owned))
}

pub async fn external_profile(aws: &AwsClients, name: &str) -> String {
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    aws.iam
        .create_role()
        .role_name(name)
        .assume_role_policy_document(trust)
        .send()
        .await
        .unwrap();
    let profile = aws
        .iam
        .create_instance_profile()
        .instance_profile_name(name)
        .send()
        .await
        .unwrap();
    aws.iam
        .add_role_to_instance_profile()
        .instance_profile_name(name)
        .role_name(name)
        .send()
        .await
        .unwrap();
    profile.instance_profile.unwrap().arn().to_owned()
}

/// The Events published about the object named `name` in `namespace`.
pub async fn events_about(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Vec<k8s_openapi::api::events::v1::Event> {
    let events: kube::Api<k8s_openapi::api::events::v1::Event> =
        kube::Api::namespaced(client.clone(), namespace);
    events
        .list(&Default::default())
        .await
        .expect("list Events")
        .items
        .into_iter()
        .filter(|event| event.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .collect()
}
