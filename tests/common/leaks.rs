//! The leak check every operator test ends with: within one namespace, every rolecall-tagged
//! AWS object (owner tag `test/<namespace>/<name>`) belongs to a live Kubernetes object of the
//! right kind, every Ready object's ARN names an AWS object that exists, and every EC2
//! association to one of the namespace's profiles is held by a live binding.
//!
//! IAM list calls do not return tags (in AWS or moto), so each listed object costs one tag
//! call; moto holds few objects at a time, since every test cleans up after itself.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_iam::error::ProvideErrorMetadata;
use aws_sdk_iam::types::Tag;
use kube::api::{Api, ListParams};
use kube::{Client, Resource, ResourceExt};
use rolecall::api::{Ec2InstanceBinding, IamPolicy, IamRole, InstanceProfile};
use rolecall::aws::AwsClients;
use rolecall::conditions::OWNER_TAG;

use super::ready::Ready;

/// The cluster name the in-process operator writes into owner tags.
const CLUSTER: &str = "test";

/// A rolecall-tagged AWS object of one namespace.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tagged {
    /// The Kubernetes kind that owns this AWS type.
    pub kind: &'static str,
    /// The Kubernetes object named by the owner tag.
    pub owner: String,
    pub arn: String,
}

fn owner_in<'a>(tags: &'a [Tag], namespace: &str) -> Option<&'a str> {
    let prefix = format!("{CLUSTER}/{namespace}/");
    tags.iter()
        .find(|tag| tag.key() == OWNER_TAG)
        .and_then(|tag| tag.value().strip_prefix(prefix.as_str()))
}

/// Whether an SDK error is IAM's "no such entity" (an object another test just deleted).
fn gone<E: ProvideErrorMetadata>(error: &E) -> bool {
    error.code() == Some("NoSuchEntity")
}

/// Every IAM policy, role and instance profile tagged as owned by an object of `namespace`.
pub async fn tagged_in_namespace(aws: &AwsClients, namespace: &str) -> Vec<Tagged> {
    let iam = &aws.iam;
    let mut tagged = Vec::new();

    let policies = iam
        .list_policies()
        .scope(aws_sdk_iam::types::PolicyScopeType::Local)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("ListPolicies");
    for policy in policies {
        let arn = policy.arn().unwrap_or_default().to_owned();
        let tags = match iam.list_policy_tags().policy_arn(&arn).send().await {
            Ok(output) => output.tags,
            Err(error) if error.as_service_error().is_some_and(gone) => continue,
            Err(error) => panic!("ListPolicyTags {arn}: {error:?}"),
        };
        if let Some(owner) = owner_in(&tags, namespace) {
            tagged.push(Tagged {
                kind: "IamPolicy",
                owner: owner.to_owned(),
                arn,
            });
        }
    }

    let roles = iam
        .list_roles()
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("ListRoles");
    for role in roles {
        let name = role.role_name();
        let tags = match iam.list_role_tags().role_name(name).send().await {
            Ok(output) => output.tags,
            Err(error) if error.as_service_error().is_some_and(gone) => continue,
            Err(error) => panic!("ListRoleTags {name}: {error:?}"),
        };
        if let Some(owner) = owner_in(&tags, namespace) {
            tagged.push(Tagged {
                kind: "IamRole",
                owner: owner.to_owned(),
                arn: role.arn().to_owned(),
            });
        }
    }

    let profiles = iam
        .list_instance_profiles()
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("ListInstanceProfiles");
    for profile in profiles {
        let name = profile.instance_profile_name();
        // GetInstanceProfile, not ListInstanceProfileTags: moto 5.2.5 answers the latter with 500.
        let tags = match iam
            .get_instance_profile()
            .instance_profile_name(name)
            .send()
            .await
        {
            Ok(output) => output
                .instance_profile
                .and_then(|profile| profile.tags)
                .unwrap_or_default(),
            Err(error) if error.as_service_error().is_some_and(gone) => continue,
            Err(error) => panic!("GetInstanceProfile {name}: {error:?}"),
        };
        if let Some(owner) = owner_in(&tags, namespace) {
            tagged.push(Tagged {
                kind: "InstanceProfile",
                owner: owner.to_owned(),
                arn: profile.arn().to_owned(),
            });
        }
    }
    tagged.sort();
    tagged
}

/// The Kubernetes objects of one kind in the namespace: name → (status ARN, Ready).
async fn live<K>(
    client: &Client,
    namespace: &str,
    arn: impl Fn(&K) -> Option<String>,
) -> BTreeMap<String, (Option<String>, bool)>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Ready,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    api.list(&ListParams::default())
        .await
        .expect("listing rolecall objects")
        .items
        .into_iter()
        .map(|object| {
            let ready = object
                .ready()
                .is_some_and(|(status, _, _)| status == "True");
            (object.name_any(), (arn(&object), ready))
        })
        .collect()
}

/// Every EC2 association (associating or associated) as (instance, profile ARN).
async fn associations(aws: &AwsClients) -> Vec<(String, String)> {
    aws.ec2
        .describe_iam_instance_profile_associations()
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("DescribeIamInstanceProfileAssociations")
        .into_iter()
        .filter(|association| {
            association
                .state()
                .is_some_and(|state| matches!(state.as_str(), "associating" | "associated"))
        })
        .map(|association| {
            (
                association.instance_id().unwrap_or_default().to_owned(),
                association
                    .iam_instance_profile()
                    .and_then(|profile| profile.arn())
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

/// Fails the test, listing every problem, unless the namespace's AWS objects and Kubernetes
/// objects map onto each other (see the module comment). With every object deleted, this is
/// the check that nothing tagged remains.
pub async fn assert_no_leaks(client: &Client, aws: &AwsClients, namespace: &str) {
    let problems = leaks(client, aws, namespace).await;
    assert!(
        problems.is_empty(),
        "leak check of namespace {namespace} found:\n  {}",
        problems.join("\n  ")
    );
}

/// The problems `assert_no_leaks` reports, one sentence each.
pub async fn leaks(client: &Client, aws: &AwsClients, namespace: &str) -> Vec<String> {
    let tagged = tagged_in_namespace(aws, namespace).await;
    let policies = live::<IamPolicy>(client, namespace, |p| p.status.as_ref()?.arn.clone()).await;
    let roles = live::<IamRole>(client, namespace, |r| r.status.as_ref()?.arn.clone()).await;
    let profiles =
        live::<InstanceProfile>(client, namespace, |p| p.status.as_ref()?.arn.clone()).await;
    let kinds = [
        ("IamPolicy", &policies),
        ("IamRole", &roles),
        ("InstanceProfile", &profiles),
    ];
    let mut problems = Vec::new();

    let mut owned_by: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
    for object in &tagged {
        owned_by
            .entry((object.kind, object.owner.as_str()))
            .or_default()
            .push(&object.arn);
        let objects = kinds
            .iter()
            .find(|(kind, _)| *kind == object.kind)
            .map(|(_, objects)| *objects)
            .expect("a known kind");
        match objects.get(&object.owner) {
            None => problems.push(format!(
                "{} is tagged for {} {namespace}/{}, which does not exist",
                object.arn, object.kind, object.owner
            )),
            Some((Some(arn), _)) if *arn != object.arn => problems.push(format!(
                "{} is tagged for {} {namespace}/{}, whose status names {arn}",
                object.arn, object.kind, object.owner
            )),
            Some(_) => {}
        }
    }
    for ((kind, owner), arns) in &owned_by {
        if arns.len() > 1 {
            problems.push(format!(
                "{kind} {namespace}/{owner} owns {} AWS objects: {}",
                arns.len(),
                arns.join(", ")
            ));
        }
    }
    let tagged_arns: BTreeSet<&str> = tagged.iter().map(|t| t.arn.as_str()).collect();
    for (kind, objects) in kinds {
        for (name, (arn, ready)) in objects {
            if !ready {
                continue;
            }
            match arn {
                None => problems.push(format!("{kind} {namespace}/{name} is Ready without an ARN")),
                // Adopted or foreign-tagged objects are not in the tagged set: ask IAM.
                Some(arn)
                    if !tagged_arns.contains(arn.as_str()) && !exists(aws, kind, arn).await =>
                {
                    problems.push(format!(
                        "{kind} {namespace}/{name} is Ready but {arn} does not exist"
                    ))
                }
                Some(_) => {}
            }
        }
    }

    let bindings: Api<Ec2InstanceBinding> = Api::namespaced(client.clone(), namespace);
    let bindings = bindings
        .list(&ListParams::default())
        .await
        .expect("listing bindings")
        .items;
    let held: BTreeSet<(String, String)> = bindings
        .iter()
        .filter_map(|binding| {
            let status = binding.status.as_ref()?;
            let arn = status.instance_profile_arn.clone()?;
            Some(
                status
                    .instances
                    .iter()
                    .map(move |instance| (instance.instance_id.clone(), arn.clone())),
            )
        })
        .flatten()
        .collect();
    let our_profiles: BTreeSet<&str> = tagged
        .iter()
        .filter(|t| t.kind == "InstanceProfile")
        .map(|t| t.arn.as_str())
        .collect();
    let current = associations(aws).await;
    for (instance, profile) in &current {
        if our_profiles.contains(profile.as_str())
            && !held.contains(&(instance.clone(), profile.clone()))
        {
            problems.push(format!(
                "{instance} is associated with {profile}, but no binding in {namespace} holds it"
            ));
        }
    }
    for binding in bindings
        .iter()
        .filter(|b| b.ready().is_some_and(|(status, _, _)| status == "True"))
    {
        let status = binding.status.as_ref().expect("a Ready binding has status");
        let arn = status.instance_profile_arn.clone().unwrap_or_default();
        for instance in &status.instances {
            if !current.contains(&(instance.instance_id.clone(), arn.clone())) {
                problems.push(format!(
                    "Ec2InstanceBinding {namespace}/{} is Ready but {} is not associated with {arn}",
                    binding.name_any(),
                    instance.instance_id
                ));
            }
        }
    }
    problems
}

async fn exists(aws: &AwsClients, kind: &str, arn: &str) -> bool {
    let name = arn.rsplit('/').next().unwrap_or_default();
    let found = match kind {
        "IamPolicy" => aws
            .iam
            .get_policy()
            .policy_arn(arn)
            .send()
            .await
            .map(drop)
            .map_err(|e| e.into_service_error().code().map(str::to_owned)),
        "IamRole" => aws
            .iam
            .get_role()
            .role_name(name)
            .send()
            .await
            .map(drop)
            .map_err(|e| e.into_service_error().code().map(str::to_owned)),
        _ => aws
            .iam
            .get_instance_profile()
            .instance_profile_name(name)
            .send()
            .await
            .map(drop)
            .map_err(|e| e.into_service_error().code().map(str::to_owned)),
    };
    match found {
        Ok(()) => true,
        Err(Some(code)) if code == "NoSuchEntity" => false,
        Err(code) => panic!("looking up {arn}: {code:?}"),
    }
}
