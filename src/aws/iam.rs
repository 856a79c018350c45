//! IAM calls, each returning rolecall's own small structs and classified errors. No decisions
//! are made here.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_iam::types::Tag;
use aws_smithy_runtime_api::http::Response as HttpResponse;

use super::calls::{CallKind, CallLog, ServiceCalls};
use super::error::AwsError;

pub mod account;
pub mod groups;
pub mod snapshot;
pub mod users;

const SERVICE: &str = "iam";

pub type Tags = BTreeMap<String, String>;

/// A customer managed policy as IAM reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedPolicy {
    pub arn: String,
    pub policy_id: String,
    pub default_version_id: String,
    pub description: Option<String>,
    pub tags: Tags,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyVersion {
    pub version_id: String,
    pub is_default: bool,
    /// Seconds since the epoch; orders versions from oldest to newest.
    pub created: i64,
}

/// A role as IAM reports it, with its raw (possibly URL-encoded) trust policy.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedRole {
    pub arn: String,
    pub role_id: String,
    pub assume_role_policy: String,
    pub description: Option<String>,
    pub max_session_duration: i32,
    pub permissions_boundary: Option<String>,
    pub tags: Tags,
}

/// What a new role is created with.
#[derive(Clone, Debug, PartialEq)]
pub struct NewRole<'a> {
    pub name: &'a str,
    pub path: &'a str,
    pub assume_role_policy: &'a str,
    pub description: Option<&'a str>,
    pub max_session_duration: Option<i32>,
    pub permissions_boundary: Option<&'a str>,
    pub tags: &'a Tags,
}

#[derive(Clone, Debug)]
pub struct Iam {
    client: aws_sdk_iam::Client,
    calls: ServiceCalls,
}

fn to_tags(tags: &Tags) -> Vec<Tag> {
    tags.iter()
        .map(|(key, value)| {
            Tag::builder()
                .key(key)
                .value(value)
                .build()
                .expect("Tag::build fails only without a key or value, and both are set")
        })
        .collect()
}

fn from_tags(tags: &[Tag]) -> Tags {
    tags.iter()
        .map(|tag| (tag.key().to_owned(), tag.value().to_owned()))
        .collect()
}

impl Iam {
    pub fn new(client: aws_sdk_iam::Client, calls: Arc<CallLog>) -> Self {
        Self {
            client,
            calls: calls.service(SERVICE),
        }
    }

    async fn call<T, E>(
        &self,
        kind: CallKind,
        operation: &'static str,
        request: impl Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    ) -> Result<T, AwsError>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        self.calls.call(kind, operation, request).await
    }

    /// Turns "not found" into `None`.
    pub(crate) fn optional<T>(result: Result<T, AwsError>) -> Result<Option<T>, AwsError> {
        match result {
            Ok(value) => Ok(Some(value)),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error),
        }
    }

    // ---- policies ----

    pub async fn get_policy(&self, arn: &str) -> Result<Option<ObservedPolicy>, AwsError> {
        let output = self
            .call(
                CallKind::Read,
                "GetPolicy",
                self.client.get_policy().policy_arn(arn).send(),
            )
            .await;
        Ok(Self::optional(output)?
            .and_then(|output| output.policy)
            .map(|policy| ObservedPolicy {
                arn: policy.arn().unwrap_or(arn).to_owned(),
                policy_id: policy.policy_id().unwrap_or_default().to_owned(),
                default_version_id: policy.default_version_id().unwrap_or_default().to_owned(),
                description: policy.description().map(str::to_owned),
                tags: from_tags(policy.tags()),
            }))
    }

    /// The raw document of one policy version.
    pub async fn get_policy_version(
        &self,
        arn: &str,
        version_id: &str,
    ) -> Result<String, AwsError> {
        let output = self
            .call(
                CallKind::Read,
                "GetPolicyVersion",
                self.client
                    .get_policy_version()
                    .policy_arn(arn)
                    .version_id(version_id)
                    .send(),
            )
            .await?;
        Ok(output
            .policy_version
            .and_then(|version| version.document)
            .unwrap_or_default())
    }

    pub async fn list_policy_versions(&self, arn: &str) -> Result<Vec<PolicyVersion>, AwsError> {
        // IAM keeps at most five versions, so one page always holds them all.
        let output = self
            .call(
                CallKind::Read,
                "ListPolicyVersions",
                self.client.list_policy_versions().policy_arn(arn).send(),
            )
            .await?;
        let mut versions: Vec<PolicyVersion> = output
            .versions()
            .iter()
            .map(|version| PolicyVersion {
                version_id: version.version_id().unwrap_or_default().to_owned(),
                is_default: version.is_default_version(),
                created: version
                    .create_date()
                    .map(|date| date.secs())
                    .unwrap_or_default(),
            })
            .collect();
        versions.sort_by(|a, b| (a.created, &a.version_id).cmp(&(b.created, &b.version_id)));
        Ok(versions)
    }

    pub async fn create_policy(
        &self,
        name: &str,
        path: &str,
        description: Option<&str>,
        document: &str,
        tags: &Tags,
    ) -> Result<ObservedPolicy, AwsError> {
        let output = self
            .call(
                CallKind::Write,
                "CreatePolicy",
                self.client
                    .create_policy()
                    .policy_name(name)
                    .path(path)
                    .set_description(description.map(str::to_owned))
                    .policy_document(document)
                    .set_tags(Some(to_tags(tags)))
                    .send(),
            )
            .await?;
        let policy = output
            .policy
            .unwrap_or_else(|| aws_sdk_iam::types::Policy::builder().build());
        Ok(ObservedPolicy {
            arn: policy.arn().unwrap_or_default().to_owned(),
            policy_id: policy.policy_id().unwrap_or_default().to_owned(),
            default_version_id: policy.default_version_id().unwrap_or("v1").to_owned(),
            description: description.map(str::to_owned),
            tags: tags.clone(),
        })
    }

    /// Publishes a new default version; returns its id.
    pub async fn create_policy_version(
        &self,
        arn: &str,
        document: &str,
    ) -> Result<String, AwsError> {
        let output = self
            .call(
                CallKind::Write,
                "CreatePolicyVersion",
                self.client
                    .create_policy_version()
                    .policy_arn(arn)
                    .policy_document(document)
                    .set_as_default(true)
                    .send(),
            )
            .await?;
        Ok(output
            .policy_version
            .and_then(|version| version.version_id)
            .unwrap_or_default())
    }

    pub async fn delete_policy_version(&self, arn: &str, version_id: &str) -> Result<(), AwsError> {
        let result = self
            .call(
                CallKind::Write,
                "DeletePolicyVersion",
                self.client
                    .delete_policy_version()
                    .policy_arn(arn)
                    .version_id(version_id)
                    .send(),
            )
            .await;
        Self::optional(result).map(drop)
    }

    pub async fn tag_policy(&self, arn: &str, tags: &Tags) -> Result<(), AwsError> {
        self.call(
            CallKind::Write,
            "TagPolicy",
            self.client
                .tag_policy()
                .policy_arn(arn)
                .set_tags(Some(to_tags(tags)))
                .send(),
        )
        .await
        .map(drop)
    }

    pub async fn untag_policy(&self, arn: &str, keys: &[String]) -> Result<(), AwsError> {
        self.call(
            CallKind::Write,
            "UntagPolicy",
            self.client
                .untag_policy()
                .policy_arn(arn)
                .set_tag_keys(Some(keys.to_vec()))
                .send(),
        )
        .await
        .map(drop)
    }

    /// Names of the roles, users and groups the policy is attached to.
    pub async fn list_entities_for_policy(&self, arn: &str) -> Result<PolicyEntities, AwsError> {
        let mut entities = PolicyEntities::default();
        self.calls
            .pages(
                CallKind::Read,
                "ListEntitiesForPolicy",
                self.client
                    .list_entities_for_policy()
                    .policy_arn(arn)
                    .into_paginator()
                    .send(),
                |output| {
                    entities.roles.extend(
                        output
                            .policy_roles()
                            .iter()
                            .filter_map(|r| r.role_name().map(str::to_owned)),
                    );
                    entities.users.extend(
                        output
                            .policy_users()
                            .iter()
                            .filter_map(|u| u.user_name().map(str::to_owned)),
                    );
                    entities.groups.extend(
                        output
                            .policy_groups()
                            .iter()
                            .filter_map(|g| g.group_name().map(str::to_owned)),
                    );
                },
            )
            .await?;
        Ok(entities)
    }

    pub async fn delete_policy(&self, arn: &str) -> Result<(), AwsError> {
        let result = self
            .call(
                CallKind::Write,
                "DeletePolicy",
                self.client.delete_policy().policy_arn(arn).send(),
            )
            .await;
        Self::optional(result).map(drop)
    }

    // ---- roles ----

    pub async fn get_role(&self, name: &str) -> Result<Option<ObservedRole>, AwsError> {
        let output = self
            .call(
                CallKind::Read,
                "GetRole",
                self.client.get_role().role_name(name).send(),
            )
            .await;
        Ok(Self::optional(output)?
            .and_then(|output| output.role)
            .map(|role| ObservedRole {
                arn: role.arn().to_owned(),
                role_id: role.role_id().to_owned(),
                assume_role_policy: role
                    .assume_role_policy_document()
                    .unwrap_or_default()
                    .to_owned(),
                description: role
                    .description()
                    .filter(|d| !d.is_empty())
                    .map(str::to_owned),
                max_session_duration: role.max_session_duration().unwrap_or(3600),
                permissions_boundary: role
                    .permissions_boundary()
                    .and_then(|boundary| boundary.permissions_boundary_arn())
                    .map(str::to_owned),
                tags: from_tags(role.tags()),
            }))
    }

    pub async fn create_role(&self, role: &NewRole<'_>) -> Result<ObservedRole, AwsError> {
        let output = self
            .call(
                CallKind::Write,
                "CreateRole",
                self.client
                    .create_role()
                    .role_name(role.name)
                    .path(role.path)
                    .assume_role_policy_document(role.assume_role_policy)
                    .set_description(role.description.map(str::to_owned))
                    .set_max_session_duration(role.max_session_duration)
                    .set_permissions_boundary(role.permissions_boundary.map(str::to_owned))
                    .set_tags(Some(to_tags(role.tags)))
                    .send(),
            )
            .await?;
        let created = output
            .role
            .ok_or_else(|| AwsError::unexpected("CreateRole", "the answer holds no role"))?;
        Ok(ObservedRole {
            arn: created.arn().to_owned(),
            role_id: created.role_id().to_owned(),
            assume_role_policy: role.assume_role_policy.to_owned(),
            description: role.description.map(str::to_owned),
            max_session_duration: role.max_session_duration.unwrap_or(3600),
            permissions_boundary: role.permissions_boundary.map(str::to_owned),
            tags: role.tags.clone(),
        })
    }

    pub async fn update_assume_role_policy(
        &self,
        name: &str,
        document: &str,
    ) -> Result<(), AwsError> {
        self.call(
            CallKind::Write,
            "UpdateAssumeRolePolicy",
            self.client
                .update_assume_role_policy()
                .role_name(name)
                .policy_document(document)
                .send(),
        )
        .await
        .map(drop)
    }

    pub async fn update_role(
        &self,
        name: &str,
        description: &str,
        max_session_duration: i32,
    ) -> Result<(), AwsError> {
        self.call(
            CallKind::Write,
            "UpdateRole",
            self.client
                .update_role()
                .role_name(name)
                .description(description)
                .max_session_duration(max_session_duration)
                .send(),
        )
        .await
        .map(drop)
    }

    pub async fn put_role_permissions_boundary(
        &self,
        name: &str,
        arn: &str,
    ) -> Result<(), AwsError> {
        self.call(
            CallKind::Write,
            "PutRolePermissionsBoundary",
            self.client
                .put_role_permissions_boundary()
                .role_name(name)
                .permissions_boundary(arn)
                .send(),
        )
        .await
        .map(drop)
    }

    pub async fn delete_role_permissions_boundary(&self, name: &str) -> Result<(), AwsError> {
        let result = self
            .call(
                CallKind::Write,
                "DeleteRolePermissionsBoundary",
                self.client
                    .delete_role_permissions_boundary()
                    .role_name(name)
                    .send(),
            )
            .await;
        Self::optional(result).map(drop)
    }

    pub async fn tag_role(&self, name: &str, tags: &Tags) -> Result<(), AwsError> {
        self.call(
            CallKind::Write,
            "TagRole",
            self.client
                .tag_role()
                .role_name(name)
                .set_tags(Some(to_tags(tags)))
                .send(),
        )
        .await
        .map(drop)
    }

    pub async fn untag_role(&self, name: &str, keys: &[String]) -> Result<(), AwsError> {
        self.call(
            CallKind::Write,
            "UntagRole",
            self.client
                .untag_role()
                .role_name(name)
                .set_tag_keys(Some(keys.to_vec()))
                .send(),
        )
        .await
        .map(drop)
    }

    pub async fn list_attached_role_policies(&self, name: &str) -> Result<Vec<String>, AwsError> {
        let mut arns = Vec::new();
        self.calls
            .pages(
                CallKind::Read,
                "ListAttachedRolePolicies",
                self.client
                    .list_attached_role_policies()
                    .role_name(name)
                    .into_paginator()
                    .send(),
                |output| {
                    arns.extend(
                        output
                            .attached_policies()
                            .iter()
                            .filter_map(|p| p.policy_arn().map(str::to_owned)),
                    )
                },
            )
            .await?;
        Ok(arns)
    }

    pub async fn attach_role_policy(&self, name: &str, arn: &str) -> Result<(), AwsError> {
        self.call(
            CallKind::Write,
            "AttachRolePolicy",
            self.client
                .attach_role_policy()
                .role_name(name)
                .policy_arn(arn)
                .send(),
        )
        .await
        .map(drop)
    }

    pub async fn detach_role_policy(&self, name: &str, arn: &str) -> Result<(), AwsError> {
        let result = self
            .call(
                CallKind::Write,
                "DetachRolePolicy",
                self.client
                    .detach_role_policy()
                    .role_name(name)
                    .policy_arn(arn)
                    .send(),
            )
            .await;
        Self::optional(result).map(drop)
    }

    /// Inline policy name to raw document.
    pub async fn inline_role_policies(
        &self,
        name: &str,
    ) -> Result<BTreeMap<String, String>, AwsError> {
        let mut names = Vec::new();
        self.calls
            .pages(
                CallKind::Read,
                "ListRolePolicies",
                self.client
                    .list_role_policies()
                    .role_name(name)
                    .into_paginator()
                    .send(),
                |output| names.extend(output.policy_names),
            )
            .await?;
        let mut policies = BTreeMap::new();
        for policy_name in names {
            let output = self
                .call(
                    CallKind::Read,
                    "GetRolePolicy",
                    self.client
                        .get_role_policy()
                        .role_name(name)
                        .policy_name(&policy_name)
                        .send(),
                )
                .await?;
            policies.insert(policy_name, output.policy_document);
        }
        Ok(policies)
    }

    pub async fn put_role_policy(
        &self,
        name: &str,
        policy_name: &str,
        document: &str,
    ) -> Result<(), AwsError> {
        self.call(
            CallKind::Write,
            "PutRolePolicy",
            self.client
                .put_role_policy()
                .role_name(name)
                .policy_name(policy_name)
                .policy_document(document)
                .send(),
        )
        .await
        .map(drop)
    }

    pub async fn delete_role_policy(&self, name: &str, policy_name: &str) -> Result<(), AwsError> {
        let result = self
            .call(
                CallKind::Write,
                "DeleteRolePolicy",
                self.client
                    .delete_role_policy()
                    .role_name(name)
                    .policy_name(policy_name)
                    .send(),
            )
            .await;
        Self::optional(result).map(drop)
    }

    /// Names of the instance profiles holding the role.
    pub async fn instance_profiles_for_role(&self, name: &str) -> Result<Vec<String>, AwsError> {
        let mut profiles = Vec::new();
        self.calls
            .pages(
                CallKind::Read,
                "ListInstanceProfilesForRole",
                self.client
                    .list_instance_profiles_for_role()
                    .role_name(name)
                    .into_paginator()
                    .send(),
                |output| {
                    profiles.extend(
                        output
                            .instance_profiles
                            .into_iter()
                            .map(|p| p.instance_profile_name),
                    )
                },
            )
            .await?;
        Ok(profiles)
    }

    pub async fn remove_role_from_instance_profile(
        &self,
        profile: &str,
        role: &str,
    ) -> Result<(), AwsError> {
        let result = self
            .call(
                CallKind::Write,
                "RemoveRoleFromInstanceProfile",
                self.client
                    .remove_role_from_instance_profile()
                    .instance_profile_name(profile)
                    .role_name(role)
                    .send(),
            )
            .await;
        Self::optional(result).map(drop)
    }

    pub async fn delete_role(&self, name: &str) -> Result<(), AwsError> {
        let result = self
            .call(
                CallKind::Write,
                "DeleteRole",
                self.client.delete_role().role_name(name).send(),
            )
            .await;
        Self::optional(result).map(drop)
    }
}

/// An instance profile as IAM reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedInstanceProfile {
    pub arn: String,
    pub instance_profile_id: String,
    /// Names of the roles it holds (IAM allows at most one).
    pub roles: Vec<String>,
    pub tags: Tags,
}

impl Iam {
    pub async fn get_instance_profile(
        &self,
        name: &str,
    ) -> Result<Option<ObservedInstanceProfile>, AwsError> {
        let output = self
            .call(
                CallKind::Read,
                "GetInstanceProfile",
                self.client
                    .get_instance_profile()
                    .instance_profile_name(name)
                    .send(),
            )
            .await;
        Ok(Self::optional(output)?
            .and_then(|output| output.instance_profile)
            .map(|profile| ObservedInstanceProfile {
                arn: profile.arn().to_owned(),
                instance_profile_id: profile.instance_profile_id().to_owned(),
                roles: profile
                    .roles()
                    .iter()
                    .map(|role| role.role_name().to_owned())
                    .collect(),
                tags: from_tags(profile.tags()),
            }))
    }

    pub async fn create_instance_profile(
        &self,
        name: &str,
        path: &str,
        tags: &Tags,
    ) -> Result<ObservedInstanceProfile, AwsError> {
        let output = self
            .call(
                CallKind::Write,
                "CreateInstanceProfile",
                self.client
                    .create_instance_profile()
                    .instance_profile_name(name)
                    .path(path)
                    .set_tags(Some(to_tags(tags)))
                    .send(),
            )
            .await?;
        let profile = output.instance_profile.ok_or_else(|| {
            AwsError::unexpected(
                "CreateInstanceProfile",
                "the answer holds no instance profile",
            )
        })?;
        Ok(ObservedInstanceProfile {
            arn: profile.arn().to_owned(),
            instance_profile_id: profile.instance_profile_id().to_owned(),
            roles: Vec::new(),
            tags: tags.clone(),
        })
    }

    pub async fn add_role_to_instance_profile(
        &self,
        profile: &str,
        role: &str,
    ) -> Result<(), AwsError> {
        self.call(
            CallKind::Write,
            "AddRoleToInstanceProfile",
            self.client
                .add_role_to_instance_profile()
                .instance_profile_name(profile)
                .role_name(role)
                .send(),
        )
        .await
        .map(drop)
    }

    pub async fn tag_instance_profile(&self, name: &str, tags: &Tags) -> Result<(), AwsError> {
        self.call(
            CallKind::Write,
            "TagInstanceProfile",
            self.client
                .tag_instance_profile()
                .instance_profile_name(name)
                .set_tags(Some(to_tags(tags)))
                .send(),
        )
        .await
        .map(drop)
    }

    pub async fn untag_instance_profile(
        &self,
        name: &str,
        keys: &[String],
    ) -> Result<(), AwsError> {
        self.call(
            CallKind::Write,
            "UntagInstanceProfile",
            self.client
                .untag_instance_profile()
                .instance_profile_name(name)
                .set_tag_keys(Some(keys.to_vec()))
                .send(),
        )
        .await
        .map(drop)
    }

    pub async fn delete_instance_profile(&self, name: &str) -> Result<(), AwsError> {
        let result = self
            .call(
                CallKind::Write,
                "DeleteInstanceProfile",
                self.client
                    .delete_instance_profile()
                    .instance_profile_name(name)
                    .send(),
            )
            .await;
        Self::optional(result).map(drop)
    }
}

/// Who holds a managed policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyEntities {
    pub roles: Vec<String>,
    pub users: Vec<String>,
    pub groups: Vec<String>,
}
