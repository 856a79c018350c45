//! The CRDs on a real API server: they install and become Established, valid objects of every
//! kind round-trip, invalid ones are refused with a message naming the field, and
//! `kubectl explain` teaches the API.

mod common;

use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::{Client, Resource};
use rolecall::api::{Ec2InstanceBinding, IamPolicy, IamRole, InstanceProfile};
use serde_json::{Value, json};

fn resource<K: Resource<DynamicType = ()>>() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(&K::group(&()), &K::version(&()), &K::kind(&())),
        &K::plural(&()),
    )
}

fn object(kind: &str, name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "iam.rolecall.dev/v1alpha1",
        "kind": kind,
        "metadata": { "name": name },
        "spec": spec,
    }))
    .unwrap()
}

fn api_for(client: &Client, namespace: &str, kind: &str) -> Api<DynamicObject> {
    let resource = match kind {
        "IamPolicy" => resource::<IamPolicy>(),
        "IamRole" => resource::<IamRole>(),
        "InstanceProfile" => resource::<InstanceProfile>(),
        "Ec2InstanceBinding" => resource::<Ec2InstanceBinding>(),
        "IamUser" => resource::<rolecall::api::IamUser>(),
        other => panic!("unknown kind {other}"),
    };
    Api::namespaced_with(client.clone(), namespace, &resource)
}

fn s3_read_document() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "ReadAssets",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:ListAllMyBuckets"],
            "Resource": "*",
            "Condition": { "Bool": { "aws:SecureTransport": "true" } },
        }],
    })
}

fn valid_specs() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "IamPolicy",
            "s3-reader",
            json!({
                "path": "/platform/",
                "description": "read the asset buckets",
                "document": s3_read_document(),
                "tags": { "team": "web" },
            }),
        ),
        (
            "IamRole",
            "web",
            json!({
                "trustedServices": ["ec2.amazonaws.com"],
                "maxSessionDuration": 7200,
                "policyRefs": [{ "name": "s3-reader" }],
                "managedPolicyArns": ["arn:aws:iam::aws:policy/ReadOnlyAccess"],
                "inlinePolicies": { "logs": {
                    "Statement": [{ "Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": "*" }],
                }},
                "deletionPolicy": "Retain",
            }),
        ),
        (
            "IamRole",
            "ci",
            json!({
                "name": "ci-runner",
                "assumeRolePolicy": {
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Effect": "Allow",
                        "Principal": { "AWS": "arn:aws:iam::123456789012:root" },
                        "Action": "sts:AssumeRole",
                    }],
                },
            }),
        ),
        (
            "InstanceProfile",
            "web",
            json!({ "roleRef": { "name": "web" } }),
        ),
        (
            "Ec2InstanceBinding",
            "web",
            json!({
                "instanceProfileRef": { "name": "web" },
                "instanceSelector": { "matchTags": { "app": "web" } },
            }),
        ),
        (
            "IamUser",
            "administrator",
            json!({
                "name": "administrator",
                "path": "/people/",
                "groupRefs": [{ "name": "admin" }],
                "groupNames": ["auditors"],
                "managedPolicyArns": ["arn:aws:iam::aws:policy/ReadOnlyAccess"],
                "policyRefs": [{ "name": "s3-reader" }],
                "inlinePolicies": { "logs": {
                    "Statement": [{ "Effect": "Allow", "Action": "logs:GetLogEvents", "Resource": "*" }],
                }},
                "permissionsBoundary": "arn:aws:iam::aws:policy/PowerUserAccess",
                "tags": { "team": "platform" },
                "consoleAccess": {
                    "enabled": true,
                    "passwordResetRequired": true,
                    "passwordSecretName": "administrator-password",
                },
                "accessKey": {
                    "enabled": false,
                    "secretName": "administrator-key",
                    "maxAge": "90d",
                    "rotationGracePeriod": "24h",
                },
                "deletionPolicy": "Retain",
            }),
        ),
    ]
}

#[tokio::test]
async fn crds_install_and_become_established() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let api: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    for crd in common::checked_in_crds() {
        let name = crd.metadata.name.unwrap();
        let live = api.get(&name).await.unwrap();
        assert!(common::is_established(&live), "{name} is not Established");
        // The platform team's Tenancy and the security report (which only reads the account)
        // are rolecall objects, not AWS ones.
        let categories: &[&str] =
            if ["Tenancy", "AccountSecurityReport"].contains(&live.spec.names.kind.as_str()) {
                &["rolecall"]
            } else {
                &["rolecall", "aws"]
            };
        let expected: Vec<String> = categories.iter().map(|c| c.to_string()).collect();
        assert_eq!(live.spec.names.categories.as_deref(), Some(&expected[..]));
    }
}

#[tokio::test]
async fn valid_objects_of_every_kind_round_trip() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let namespace = common::fresh_namespace(&client, "valid").await;
    for (kind, name, spec) in valid_specs() {
        let api = api_for(&client, &namespace, kind);
        api.create(&PostParams::default(), &object(kind, name, spec.clone()))
            .await
            .unwrap_or_else(|e| panic!("creating valid {kind}/{name}: {e}"));
        let read = api.get(name).await.unwrap();
        // Defaults (deletionPolicy) are filled in by the server; everything sent comes back.
        let mut expected = spec.clone();
        expected
            .as_object_mut()
            .unwrap()
            .entry("deletionPolicy")
            .or_insert(json!("Delete"));
        assert_eq!(
            read.data["spec"], expected,
            "{kind}/{name} did not round-trip"
        );
    }
    // The typed API reads the same objects.
    let roles: Api<IamRole> = Api::namespaced(client.clone(), &namespace);
    let web = roles.get("web").await.unwrap();
    assert_eq!(
        web.spec.trusted_services.as_deref(),
        Some(&["ec2.amazonaws.com".to_string()][..])
    );
    assert_eq!(web.spec.policy_refs[0].name, "s3-reader");
    for (kind, name, _) in valid_specs() {
        api_for(&client, &namespace, kind)
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
        let gone = api_for(&client, &namespace, kind)
            .get_opt(name)
            .await
            .unwrap();
        assert!(gone.is_none(), "{kind}/{name} still exists after delete");
    }
}

/// (kind, spec, text the refusal must contain: the field or the rule's message)
fn invalid_cases() -> Vec<(&'static str, Value, &'static str)> {
    let doc = s3_read_document();
    let trust = json!({ "Statement": [{ "Effect": "Allow", "Principal": { "Service": "ec2.amazonaws.com" }, "Action": "sts:AssumeRole" }] });
    vec![
        (
            "IamPolicy",
            json!({ "name": "has spaces!", "document": doc }),
            "spec.name",
        ),
        (
            "IamPolicy",
            json!({ "name": "x".repeat(129), "document": doc }),
            "spec.name",
        ),
        (
            "IamPolicy",
            json!({ "path": "no-slashes", "document": doc }),
            "spec.path",
        ),
        (
            "IamPolicy",
            json!({ "document": { "Statement": [{ "Effect": "Maybe", "Action": "s3:*", "Resource": "*" }] } }),
            "spec.document.Statement[0].Effect",
        ),
        (
            "IamPolicy",
            json!({ "document": { "Version": "2020-01-01", "Statement": doc["Statement"] } }),
            "spec.document.Version",
        ),
        (
            "IamPolicy",
            json!({ "document": { "Statement": [] } }),
            "spec.document.Statement",
        ),
        (
            "IamPolicy",
            json!({ "document": doc, "deletionPolicy": "Orphan" }),
            "spec.deletionPolicy",
        ),
        (
            "IamPolicy",
            json!({ "document": doc, "tags": { "rolecall.dev/owner": "me" } }),
            "spec.tags",
        ),
        (
            "IamRole",
            json!({ "trustedServices": ["ec2.amazonaws.com"], "maxSessionDuration": 60 }),
            "spec.maxSessionDuration",
        ),
        (
            "IamRole",
            json!({ "trustedServices": ["ec2.amazonaws.com"], "maxSessionDuration": 50000 }),
            "spec.maxSessionDuration",
        ),
        (
            "IamRole",
            json!({ "trustedServices": ["ec2.amazonaws.com"], "assumeRolePolicy": trust }),
            "exactly one of assumeRolePolicy and trustedServices",
        ),
        (
            "IamRole",
            json!({ "description": "no trust at all" }),
            "exactly one of assumeRolePolicy and trustedServices",
        ),
        (
            "IamRole",
            json!({ "name": "r".repeat(65), "trustedServices": ["ec2.amazonaws.com"] }),
            "spec.name",
        ),
        (
            "IamRole",
            json!({ "trustedServices": ["not a service"] }),
            "spec.trustedServices[0]",
        ),
        (
            "IamRole",
            json!({ "trustedServices": ["ec2.amazonaws.com"], "managedPolicyArns": ["arn:aws:s3:::bucket"] }),
            "spec.managedPolicyArns[0]",
        ),
        (
            "IamRole",
            json!({ "trustedServices": ["ec2.amazonaws.com"], "permissionsBoundary": "boundary" }),
            "spec.permissionsBoundary",
        ),
        (
            "IamRole",
            json!({ "trustedServices": ["ec2.amazonaws.com"], "inlinePolicies": { "bad name": doc } }),
            "inline policy names",
        ),
        (
            "InstanceProfile",
            json!({ "roleRef": { "name": "web" }, "roleName": "web" }),
            "exactly one of roleRef and roleName",
        ),
        (
            "InstanceProfile",
            json!({}),
            "exactly one of roleRef and roleName",
        ),
        (
            "Ec2InstanceBinding",
            json!({ "instanceProfileName": "web" }),
            "at least one of instanceIds and instanceSelector",
        ),
        (
            "Ec2InstanceBinding",
            json!({ "instanceIds": ["i-0123456789abcdef0"] }),
            "exactly one of instanceProfileRef and instanceProfileName",
        ),
        (
            "Ec2InstanceBinding",
            json!({ "instanceProfileName": "web", "instanceIds": ["server-1"] }),
            "spec.instanceIds[0]",
        ),
        (
            "Ec2InstanceBinding",
            json!({ "instanceProfileName": "web", "instanceSelector": { "matchTags": {} } }),
            "spec.instanceSelector.matchTags",
        ),
    ]
}

#[tokio::test]
async fn invalid_objects_are_refused_naming_the_field() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let namespace = common::fresh_namespace(&client, "invalid").await;
    let mut accepted = Vec::new();
    for (index, (kind, spec, expected)) in invalid_cases().into_iter().enumerate() {
        let api = api_for(&client, &namespace, kind);
        let name = format!("invalid-{index}");
        match api
            .create(&PostParams::default(), &object(kind, &name, spec.clone()))
            .await
        {
            Ok(_) => accepted.push(format!("#{index} {kind} {spec} was accepted")),
            Err(kube::Error::Api(status)) => {
                assert_eq!(status.code, 422, "#{index} {kind}: {}", status.message);
                assert!(
                    status.message.contains(expected),
                    "#{index} {kind}: refusal does not mention {expected:?}: {}",
                    status.message
                );
            }
            Err(other) => panic!("#{index} {kind}: unexpected error {other}"),
        }
    }
    assert!(
        accepted.is_empty(),
        "invalid objects accepted:\n{}",
        accepted.join("\n")
    );
}

fn user_tags(count: usize) -> Value {
    Value::Object(
        (0..count)
            .map(|index| (format!("key{index}"), json!("value")))
            .collect(),
    )
}

/// IAM allows 50 tags per entity and rolecall always adds `rolecall.dev/owner`: 49 are left.
#[tokio::test]
async fn tags_leave_room_for_the_owner_tag() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let namespace = common::fresh_namespace(&client, "tag-limit").await;
    let kinds = [
        ("IamPolicy", json!({ "document": s3_read_document() })),
        (
            "IamRole",
            json!({ "trustedServices": ["ec2.amazonaws.com"] }),
        ),
        ("InstanceProfile", json!({ "roleName": "web" })),
    ];
    for (kind, spec) in kinds {
        let api = api_for(&client, &namespace, kind);
        let with_tags = |count| {
            let mut spec = spec.clone();
            spec["tags"] = user_tags(count);
            object(kind, &format!("tags-{count}"), spec)
        };
        api.create(&PostParams::default(), &with_tags(49))
            .await
            .unwrap_or_else(|e| panic!("{kind} with 49 tags refused: {e}"));
        match api.create(&PostParams::default(), &with_tags(50)).await {
            Err(kube::Error::Api(status)) => {
                assert_eq!(status.code, 422, "{kind}: {}", status.message);
                assert!(
                    status.message.contains("spec.tags: Too many: 50"),
                    "{kind}: refusal does not name spec.tags: {}",
                    status.message
                );
            }
            Ok(_) => panic!("{kind} with 50 tags was accepted"),
            Err(other) => panic!("{kind} with 50 tags: unexpected error {other}"),
        }
    }
}

#[tokio::test]
async fn a_long_metadata_name_needs_an_explicit_aws_name() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let namespace = common::fresh_namespace(&client, "longname").await;
    let api = api_for(&client, &namespace, "IamRole");
    let long = "r".repeat(70);
    let refused = api
        .create(
            &PostParams::default(),
            &object(
                "IamRole",
                &long,
                json!({ "trustedServices": ["ec2.amazonaws.com"] }),
            ),
        )
        .await
        .expect_err("a 70-character role name must be refused");
    assert!(refused.to_string().contains("set spec.name"), "{refused}");
    api.create(
        &PostParams::default(),
        &object(
            "IamRole",
            &long,
            json!({ "name": "short", "trustedServices": ["ec2.amazonaws.com"] }),
        ),
    )
    .await
    .expect("an explicit spec.name lifts the limit");
}

#[tokio::test]
async fn aws_names_and_paths_are_immutable() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let namespace = common::fresh_namespace(&client, "immutable").await;
    let cases = [
        (
            "IamPolicy",
            json!({ "name": "first", "document": s3_read_document() }),
            json!({ "spec": { "name": "second" } }),
            "name is immutable",
        ),
        (
            "IamPolicy",
            json!({ "document": s3_read_document() }),
            json!({ "spec": { "name": "added-later" } }),
            "name is immutable",
        ),
        (
            "IamRole",
            json!({ "path": "/a/", "trustedServices": ["ec2.amazonaws.com"] }),
            json!({ "spec": { "path": "/b/" } }),
            "path is immutable",
        ),
        (
            "InstanceProfile",
            json!({ "name": "first", "roleName": "web" }),
            json!({ "spec": { "name": null } }),
            "name is immutable",
        ),
    ];
    for (index, (kind, spec, patch, expected)) in cases.into_iter().enumerate() {
        let api = api_for(&client, &namespace, kind);
        let name = format!("immutable-{index}");
        api.create(&PostParams::default(), &object(kind, &name, spec))
            .await
            .unwrap();
        let refused = api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect_err("changing an AWS name must be refused");
        assert!(
            refused.to_string().contains(expected),
            "#{index} {kind}: {refused}"
        );
        // Other fields stay editable.
        api.patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "spec": { "deletionPolicy": "Retain" } })),
        )
        .await
        .unwrap_or_else(|e| panic!("#{index} {kind}: editing deletionPolicy: {e}"));
    }
}

/// Every field of every CRD (from the checked-in schema, see `common::schema`): one
/// `kubectl explain <kind>.<path>` per object lists each of its fields with the description.
#[tokio::test]
async fn kubectl_explain_shows_field_docs_of_every_kind() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let nodes = common::schema::object_nodes();
    let mut missing = Vec::new();
    let mut checked = 0;
    for node in &nodes {
        let path = node.explain_path();
        let output = common::wait_for(&format!("kubectl explain {path}"), std::time::Duration::from_secs(30), || {
            let path = path.clone();
            async move {
                // The OpenAPI document lags CRD establishment by a moment; retry until it has the kind.
                let output = std::process::Command::new("kubectl")
                    .args(["explain", &path])
                    .output()
                    .unwrap_or_else(|e| panic!("kubectl not found on PATH ({e}); run `eval \"$(scripts/cluster.sh env)\"`"));
                output.status.success().then(|| String::from_utf8(output.stdout).unwrap())
            }
        })
        .await;
        let flattened = common::schema::flatten(&output);
        for (name, description) in &node.fields {
            checked += 1;
            let shown = flattened.contains(&format!(" {name} <"))
                && flattened.contains(&common::schema::flatten(description));
            if description.trim().is_empty() || !shown {
                missing.push(format!("{path}.{name}"));
            }
        }
    }
    assert!(checked > 100, "only {checked} fields checked");
    assert!(
        missing.is_empty(),
        "kubectl explain lacks the description of:\n{}",
        missing.join("\n")
    );
}
