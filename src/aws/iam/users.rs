//! IAM user calls: the user, its groups and policies, its login profile, access keys and MFA
//! devices. Passwords and secret keys travel as [`Sensitive`], which never prints.

use std::collections::BTreeMap;

use aws_sdk_iam::types::StatusType;

use super::{Iam, Tags, from_tags, to_tags};
use crate::aws::calls::CallKind;
use crate::aws::error::AwsError;

/// A password or secret access key: its `Debug` and `Display` say `<redacted>`, so it cannot
/// reach a log line, an Event or an error message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Sensitive(String);

impl Sensitive {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The value itself, for the one place it goes (IAM's request, the Secret's data).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::fmt::Display for Sensitive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A user as IAM reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedUser {
    pub arn: String,
    pub user_id: String,
    pub path: String,
    pub permissions_boundary: Option<String>,
    pub tags: Tags,
    /// Seconds since the epoch.
    pub password_last_used: Option<i64>,
}

/// What a new user is created with.
#[derive(Clone, Debug, PartialEq)]
pub struct NewUser<'a> {
    pub name: &'a str,
    pub path: &'a str,
    pub permissions_boundary: Option<&'a str>,
    pub tags: &'a Tags,
}

/// A user's login profile (its password is never readable).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginProfile {
    /// Seconds since the epoch.
    pub created: i64,
    pub password_reset_required: bool,
}

/// One access key's metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessKey {
    pub id: String,
    pub active: bool,
    /// Seconds since the epoch: the key's age is counted from here.
    pub created: i64,
}

/// A key just created: the only time IAM hands out its secret.
#[derive(Clone, Debug)]
pub struct NewAccessKey {
    pub key: AccessKey,
    pub secret: Sensitive,
}

impl Iam {
    pub async fn get_user(&self, name: &str) -> Result<Option<ObservedUser>, AwsError> {
        let output = self
            .call(
                CallKind::Read,
                "GetUser",
                self.client.get_user().user_name(name).send(),
            )
            .await;
        Ok(Self::optional(output)?
            .and_then(|output| output.user)
            .map(|user| ObservedUser {
                permissions_boundary: user
                    .permissions_boundary()
                    .and_then(|boundary| boundary.permissions_boundary_arn())
                    .map(str::to_owned),
                tags: from_tags(user.tags()),
                password_last_used: user.password_last_used().map(|time| time.secs()),
                arn: user.arn,
                user_id: user.user_id,
                path: user.path,
            }))
    }

    pub async fn create_user(&self, user: &NewUser<'_>) -> Result<ObservedUser, AwsError> {
        let output = self
            .call(
                CallKind::Write,
                "CreateUser",
                self.client
                    .create_user()
                    .user_name(user.name)
                    .path(user.path)
                    .set_permissions_boundary(user.permissions_boundary.map(str::to_owned))
                    .set_tags(Some(to_tags(user.tags)))
                    .send(),
            )
            .await?;
        let created = output
            .user
            .ok_or_else(|| AwsError::unexpected("CreateUser", "the answer holds no user"))?;
        Ok(ObservedUser {
            arn: created.arn,
            user_id: created.user_id,
            path: created.path,
            permissions_boundary: user.permissions_boundary.map(str::to_owned),
            tags: user.tags.clone(),
            password_last_used: None,
        })
    }

    pub async fn tag_user(&self, name: &str, tags: &Tags) -> Result<(), AwsError> {
        self.call(
            CallKind::Write,
            "TagUser",
            self.client
                .tag_user()
                .user_name(name)
                .set_tags(Some(to_tags(tags)))
                .send(),
        )
        .await
        .map(drop)
    }

    pub async fn untag_user(&self, name: &str, keys: &[String]) -> Result<(), AwsError> {
        self.call(
            CallKind::Write,
            "UntagUser",
            self.client
                .untag_user()
                .user_name(name)
                .set_tag_keys(Some(keys.to_vec()))
                .send(),
        )
        .await
        .map(drop)
    }

    pub async fn put_user_permissions_boundary(
        &self,
        name: &str,
        arn: &str,
    ) -> Result<(), AwsError> {
        self.call(
            CallKind::Write,
            "PutUserPermissionsBoundary",
            self.client
                .put_user_permissions_boundary()
                .user_name(name)
                .permissions_boundary(arn)
                .send(),
        )
        .await
        .map(drop)
    }

    pub async fn delete_user_permissions_boundary(&self, name: &str) -> Result<(), AwsError> {
        let result = self
            .call(
                CallKind::Write,
                "DeleteUserPermissionsBoundary",
                self.client
                    .delete_user_permissions_boundary()
                    .user_name(name)
                    .send(),
            )
            .await;
        Self::optional(result).map(drop)
    }

    /// Names of the groups the user is in.
    pub async fn groups_for_user(&self, name: &str) -> Result<Vec<String>, AwsError> {
        let mut groups = Vec::new();
        self.calls
            .pages(
                CallKind::Read,
                "ListGroupsForUser",
                self.client
                    .list_groups_for_user()
                    .user_name(name)
                    .into_paginator()
                    .send(),
                |output| groups.extend(output.groups.into_iter().map(|g| g.group_name)),
            )
            .await?;
        Ok(groups)
    }

    pub async fn add_user_to_group(&self, group: &str, user: &str) -> Result<(), AwsError> {
        self.call(
            CallKind::Write,
            "AddUserToGroup",
            self.client
                .add_user_to_group()
                .group_name(group)
                .user_name(user)
                .send(),
        )
        .await
        .map(drop)
    }

    pub async fn list_attached_user_policies(&self, name: &str) -> Result<Vec<String>, AwsError> {
        let mut arns = Vec::new();
        self.calls
            .pages(
                CallKind::Read,
                "ListAttachedUserPolicies",
                self.client
                    .list_attached_user_policies()
                    .user_name(name)
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

    pub async fn attach_user_policy(&self, name: &str, arn: &str) -> Result<(), AwsError> {
        self.call(
            CallKind::Write,
            "AttachUserPolicy",
            self.client
                .attach_user_policy()
                .user_name(name)
                .policy_arn(arn)
                .send(),
        )
        .await
        .map(drop)
    }

    pub async fn detach_user_policy(&self, name: &str, arn: &str) -> Result<(), AwsError> {
        let result = self
            .call(
                CallKind::Write,
                "DetachUserPolicy",
                self.client
                    .detach_user_policy()
                    .user_name(name)
                    .policy_arn(arn)
                    .send(),
            )
            .await;
        Self::optional(result).map(drop)
    }

    /// Inline policy name to raw (URL-encoded) document.
    pub async fn inline_user_policies(
        &self,
        name: &str,
    ) -> Result<BTreeMap<String, String>, AwsError> {
        let mut names = Vec::new();
        self.calls
            .pages(
                CallKind::Read,
                "ListUserPolicies",
                self.client
                    .list_user_policies()
                    .user_name(name)
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
                    "GetUserPolicy",
                    self.client
                        .get_user_policy()
                        .user_name(name)
                        .policy_name(&policy_name)
                        .send(),
                )
                .await?;
            policies.insert(policy_name, output.policy_document);
        }
        Ok(policies)
    }

    pub async fn put_user_policy(
        &self,
        name: &str,
        policy_name: &str,
        document: &str,
    ) -> Result<(), AwsError> {
        self.call(
            CallKind::Write,
            "PutUserPolicy",
            self.client
                .put_user_policy()
                .user_name(name)
                .policy_name(policy_name)
                .policy_document(document)
                .send(),
        )
        .await
        .map(drop)
    }

    pub async fn delete_user_policy(&self, name: &str, policy_name: &str) -> Result<(), AwsError> {
        let result = self
            .call(
                CallKind::Write,
                "DeleteUserPolicy",
                self.client
                    .delete_user_policy()
                    .user_name(name)
                    .policy_name(policy_name)
                    .send(),
            )
            .await;
        Self::optional(result).map(drop)
    }

    pub async fn get_login_profile(&self, name: &str) -> Result<Option<LoginProfile>, AwsError> {
        let output = self
            .call(
                CallKind::Read,
                "GetLoginProfile",
                self.client.get_login_profile().user_name(name).send(),
            )
            .await;
        Ok(Self::optional(output)?
            .and_then(|output| output.login_profile)
            .map(|profile| LoginProfile {
                created: profile.create_date.secs(),
                password_reset_required: profile.password_reset_required,
            }))
    }

    pub async fn create_login_profile(
        &self,
        name: &str,
        password: &Sensitive,
        password_reset_required: bool,
    ) -> Result<LoginProfile, AwsError> {
        let output = self
            .call(
                CallKind::Write,
                "CreateLoginProfile",
                self.client
                    .create_login_profile()
                    .user_name(name)
                    .password(password.expose())
                    .password_reset_required(password_reset_required)
                    .send(),
            )
            .await?;
        let profile = output.login_profile.ok_or_else(|| {
            AwsError::unexpected("CreateLoginProfile", "the answer holds no login profile")
        })?;
        Ok(LoginProfile {
            created: profile.create_date.secs(),
            password_reset_required: profile.password_reset_required,
        })
    }

    /// A new password for an existing login profile.
    pub async fn update_login_profile(
        &self,
        name: &str,
        password: &Sensitive,
        password_reset_required: bool,
    ) -> Result<(), AwsError> {
        self.call(
            CallKind::Write,
            "UpdateLoginProfile",
            self.client
                .update_login_profile()
                .user_name(name)
                .password(password.expose())
                .password_reset_required(password_reset_required)
                .send(),
        )
        .await
        .map(drop)
    }

    pub async fn delete_login_profile(&self, name: &str) -> Result<(), AwsError> {
        let result = self
            .call(
                CallKind::Write,
                "DeleteLoginProfile",
                self.client.delete_login_profile().user_name(name).send(),
            )
            .await;
        Self::optional(result).map(drop)
    }

    /// The user's access keys, oldest first.
    pub async fn list_access_keys(&self, name: &str) -> Result<Vec<AccessKey>, AwsError> {
        let mut keys = Vec::new();
        self.calls
            .pages(
                CallKind::Read,
                "ListAccessKeys",
                self.client
                    .list_access_keys()
                    .user_name(name)
                    .into_paginator()
                    .send(),
                |output| {
                    keys.extend(output.access_key_metadata.into_iter().map(|key| AccessKey {
                        id: key.access_key_id.unwrap_or_default(),
                        active: key.status == Some(StatusType::Active),
                        created: key.create_date.map(|d| d.secs()).unwrap_or_default(),
                    }))
                },
            )
            .await?;
        keys.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        Ok(keys)
    }

    /// When the key was last used, in seconds since the epoch; `None` if never.
    pub async fn access_key_last_used(&self, id: &str) -> Result<Option<i64>, AwsError> {
        let output = self
            .call(
                CallKind::Read,
                "GetAccessKeyLastUsed",
                self.client
                    .get_access_key_last_used()
                    .access_key_id(id)
                    .send(),
            )
            .await?;
        Ok(output
            .access_key_last_used
            .and_then(|used| used.last_used_date)
            .map(|date| date.secs()))
    }

    pub async fn create_access_key(&self, name: &str) -> Result<NewAccessKey, AwsError> {
        let output = self
            .call(
                CallKind::Write,
                "CreateAccessKey",
                self.client.create_access_key().user_name(name).send(),
            )
            .await?;
        let key = output.access_key.ok_or_else(|| {
            AwsError::unexpected("CreateAccessKey", "the answer holds no access key")
        })?;
        Ok(NewAccessKey {
            key: AccessKey {
                active: key.status == StatusType::Active,
                created: key.create_date.map(|d| d.secs()).unwrap_or_default(),
                id: key.access_key_id,
            },
            secret: Sensitive::new(key.secret_access_key),
        })
    }

    pub async fn delete_access_key(&self, name: &str, id: &str) -> Result<(), AwsError> {
        let result = self
            .call(
                CallKind::Write,
                "DeleteAccessKey",
                self.client
                    .delete_access_key()
                    .user_name(name)
                    .access_key_id(id)
                    .send(),
            )
            .await;
        Self::optional(result).map(drop)
    }

    /// Serial numbers (or ARNs, for virtual devices) of the user's MFA devices.
    pub async fn list_mfa_devices(&self, name: &str) -> Result<Vec<String>, AwsError> {
        let mut serials = Vec::new();
        self.calls
            .pages(
                CallKind::Read,
                "ListMFADevices",
                self.client
                    .list_mfa_devices()
                    .user_name(name)
                    .into_paginator()
                    .send(),
                |output| serials.extend(output.mfa_devices.into_iter().map(|d| d.serial_number)),
            )
            .await?;
        Ok(serials)
    }

    pub async fn deactivate_mfa_device(&self, name: &str, serial: &str) -> Result<(), AwsError> {
        let result = self
            .call(
                CallKind::Write,
                "DeactivateMFADevice",
                self.client
                    .deactivate_mfa_device()
                    .user_name(name)
                    .serial_number(serial)
                    .send(),
            )
            .await;
        Self::optional(result).map(drop)
    }

    /// Ids of the user's X.509 signing certificates.
    pub async fn list_signing_certificates(&self, name: &str) -> Result<Vec<String>, AwsError> {
        let mut ids = Vec::new();
        self.calls
            .pages(
                CallKind::Read,
                "ListSigningCertificates",
                self.client
                    .list_signing_certificates()
                    .user_name(name)
                    .into_paginator()
                    .send(),
                |output| ids.extend(output.certificates.into_iter().map(|c| c.certificate_id)),
            )
            .await?;
        Ok(ids)
    }

    pub async fn delete_signing_certificate(&self, name: &str, id: &str) -> Result<(), AwsError> {
        let result = self
            .call(
                CallKind::Write,
                "DeleteSigningCertificate",
                self.client
                    .delete_signing_certificate()
                    .user_name(name)
                    .certificate_id(id)
                    .send(),
            )
            .await;
        Self::optional(result).map(drop)
    }

    /// Ids of the user's SSH public keys (for CodeCommit).
    pub async fn list_ssh_public_keys(&self, name: &str) -> Result<Vec<String>, AwsError> {
        let mut ids = Vec::new();
        self.calls
            .pages(
                CallKind::Read,
                "ListSSHPublicKeys",
                self.client
                    .list_ssh_public_keys()
                    .user_name(name)
                    .into_paginator()
                    .send(),
                |output| {
                    ids.extend(
                        output
                            .ssh_public_keys
                            .unwrap_or_default()
                            .into_iter()
                            .map(|k| k.ssh_public_key_id),
                    )
                },
            )
            .await?;
        Ok(ids)
    }

    pub async fn delete_ssh_public_key(&self, name: &str, id: &str) -> Result<(), AwsError> {
        let result = self
            .call(
                CallKind::Write,
                "DeleteSSHPublicKey",
                self.client
                    .delete_ssh_public_key()
                    .user_name(name)
                    .ssh_public_key_id(id)
                    .send(),
            )
            .await;
        Self::optional(result).map(drop)
    }

    /// Ids of the user's service-specific credentials (CodeCommit, Keyspaces, Bedrock). The
    /// call has no pages.
    pub async fn list_service_specific_credentials(
        &self,
        name: &str,
    ) -> Result<Vec<String>, AwsError> {
        let output = self
            .call(
                CallKind::Read,
                "ListServiceSpecificCredentials",
                self.client
                    .list_service_specific_credentials()
                    .user_name(name)
                    .send(),
            )
            .await?;
        Ok(output
            .service_specific_credentials
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.service_specific_credential_id)
            .collect())
    }

    pub async fn delete_service_specific_credential(
        &self,
        name: &str,
        id: &str,
    ) -> Result<(), AwsError> {
        let result = self
            .call(
                CallKind::Write,
                "DeleteServiceSpecificCredential",
                self.client
                    .delete_service_specific_credential()
                    .user_name(name)
                    .service_specific_credential_id(id)
                    .send(),
            )
            .await;
        Self::optional(result).map(drop)
    }

    pub async fn delete_user(&self, name: &str) -> Result<(), AwsError> {
        let result = self
            .call(
                CallKind::Write,
                "DeleteUser",
                self.client.delete_user().user_name(name).send(),
            )
            .await;
        Self::optional(result).map(drop)
    }
}
