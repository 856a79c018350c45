//! The account-wide IAM reads of the security report: the account summary, the credential
//! report, the password policy, virtual MFA devices, and the users', groups' and customer
//! managed policies' permissions. All reads; GenerateCredentialReport only asks IAM to
//! refresh its report (IAM's own access level for it is Read), it changes no IAM object.

use aws_sdk_iam::types::{AssignmentStatusType, EntityType, ReportStateType, SummaryKeyType};

use super::Iam;
use crate::aws::calls::CallKind;
use crate::aws::error::AwsError;

/// The account summary's flags and counts the checks read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountSummary {
    /// The root user has an MFA device (`AccountMFAEnabled`).
    pub root_mfa_enabled: bool,
    /// The root user has an access key (`AccountAccessKeysPresent`).
    pub root_access_keys_present: bool,
    pub users: i32,
    pub groups: i32,
}

/// The account's password policy, every field UpdateAccountPasswordPolicy sets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub minimum_length: Option<i32>,
    pub reuse_prevention: Option<i32>,
    pub require_symbols: bool,
    pub require_numbers: bool,
    pub require_uppercase: bool,
    pub require_lowercase: bool,
    pub allow_users_to_change_password: bool,
    pub max_password_age: Option<i32>,
    pub hard_expiry: bool,
}

/// The credential report as IAM hands it over: CSV, and when it was generated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialReportFile {
    pub csv: Vec<u8>,
    /// Seconds since the epoch.
    pub generated: Option<i64>,
}

/// What the report could not get yet: IAM is still generating it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialReportState {
    Ready(CredentialReportFile),
    Generating,
}

/// A user's or group's own permissions: managed policies attached to it and inline policies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Permissions {
    pub name: String,
    pub attached_policies: Vec<String>,
    pub inline_policies: Vec<String>,
}

/// A customer managed policy with its default version's (raw, URL-encoded) document.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CustomerPolicy {
    pub name: String,
    pub arn: String,
    pub attachment_count: i32,
    pub default_document: Option<String>,
}

/// Users, groups and customer managed policies, from GetAccountAuthorizationDetails.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthorizationDetails {
    pub users: Vec<Permissions>,
    pub groups: Vec<Permissions>,
    pub policies: Vec<CustomerPolicy>,
}

impl Iam {
    pub async fn account_summary(&self) -> Result<AccountSummary, AwsError> {
        let output = self
            .call(
                CallKind::Read,
                "GetAccountSummary",
                self.client.get_account_summary().send(),
            )
            .await?;
        let map = output.summary_map().cloned().unwrap_or_default();
        let value = |key: SummaryKeyType| map.get(&key).copied().unwrap_or_default();
        Ok(AccountSummary {
            root_mfa_enabled: value(SummaryKeyType::AccountMfaEnabled) > 0,
            root_access_keys_present: value(SummaryKeyType::AccountAccessKeysPresent) > 0,
            users: value(SummaryKeyType::Users),
            groups: value(SummaryKeyType::Groups),
        })
    }

    /// Asks IAM for a fresh credential report (IAM makes a new one only when its last is
    /// older than 4 hours) and reads it, or says it is still being generated.
    pub async fn credential_report(&self) -> Result<CredentialReportState, AwsError> {
        let generated = self
            .call(
                CallKind::Read,
                "GenerateCredentialReport",
                self.client.generate_credential_report().send(),
            )
            .await?;
        let complete = generated.state() == Some(&ReportStateType::Complete);
        let output = self
            .call(
                CallKind::Read,
                "GetCredentialReport",
                self.client.get_credential_report().send(),
            )
            .await;
        match output {
            Ok(output) => Ok(CredentialReportState::Ready(CredentialReportFile {
                csv: output
                    .content()
                    .map(|blob| blob.as_ref().to_vec())
                    .unwrap_or_default(),
                generated: output.generated_time().map(|time| time.secs()),
            })),
            // The report a moment after GenerateCredentialReport started it.
            Err(error)
                if !complete
                    && matches!(
                        error.code.as_deref(),
                        Some("ReportInProgress" | "ReportNotPresent" | "ReportExpired")
                    ) =>
            {
                Ok(CredentialReportState::Generating)
            }
            Err(error) => Err(error),
        }
    }

    /// The account's password policy; `None` when the account has none.
    pub async fn password_policy(&self) -> Result<Option<PasswordPolicy>, AwsError> {
        let output = self
            .call(
                CallKind::Read,
                "GetAccountPasswordPolicy",
                self.client.get_account_password_policy().send(),
            )
            .await;
        Ok(Self::optional(output)?
            .and_then(|output| output.password_policy)
            .map(|policy| PasswordPolicy {
                minimum_length: policy.minimum_password_length(),
                reuse_prevention: policy.password_reuse_prevention(),
                require_symbols: policy.require_symbols(),
                require_numbers: policy.require_numbers(),
                require_uppercase: policy.require_uppercase_characters(),
                require_lowercase: policy.require_lowercase_characters(),
                allow_users_to_change_password: policy.allow_users_to_change_password(),
                // IAM reports 0 or nothing for "never expires".
                max_password_age: policy.max_password_age().filter(|age| *age > 0),
                hard_expiry: policy.hard_expiry().unwrap_or(false),
            }))
    }

    pub async fn update_password_policy(&self, policy: &PasswordPolicy) -> Result<(), AwsError> {
        self.call(
            CallKind::Write,
            "UpdateAccountPasswordPolicy",
            self.client
                .update_account_password_policy()
                .set_minimum_password_length(policy.minimum_length)
                .set_password_reuse_prevention(policy.reuse_prevention)
                .require_symbols(policy.require_symbols)
                .require_numbers(policy.require_numbers)
                .require_uppercase_characters(policy.require_uppercase)
                .require_lowercase_characters(policy.require_lowercase)
                .allow_users_to_change_password(policy.allow_users_to_change_password)
                .set_max_password_age(policy.max_password_age)
                .hard_expiry(policy.hard_expiry)
                .send(),
        )
        .await
        .map(drop)
    }

    pub async fn delete_password_policy(&self) -> Result<(), AwsError> {
        let result = self
            .call(
                CallKind::Write,
                "DeleteAccountPasswordPolicy",
                self.client.delete_account_password_policy().send(),
            )
            .await;
        Self::optional(result).map(drop)
    }

    /// The ARNs of the users assigned virtual MFA devices (`arn:...:root` for the root user).
    pub async fn virtual_mfa_users(&self) -> Result<Vec<String>, AwsError> {
        let mut users = Vec::new();
        self.calls
            .pages(
                CallKind::Read,
                "ListVirtualMFADevices",
                self.client
                    .list_virtual_mfa_devices()
                    .assignment_status(AssignmentStatusType::Assigned)
                    .into_paginator()
                    .send(),
                |output| {
                    users.extend(
                        output
                            .virtual_mfa_devices()
                            .iter()
                            .filter_map(|device| device.user().map(|user| user.arn().to_owned())),
                    );
                },
            )
            .await?;
        Ok(users)
    }

    /// Every user's and group's own policies and every customer managed policy, in one
    /// paginated call rather than several per user.
    pub async fn authorization_details(&self) -> Result<AuthorizationDetails, AwsError> {
        let mut details = AuthorizationDetails::default();
        self.calls
            .pages(
                CallKind::Read,
                "GetAccountAuthorizationDetails",
                self.client
                    .get_account_authorization_details()
                    .filter(EntityType::User)
                    .filter(EntityType::Group)
                    .filter(EntityType::LocalManagedPolicy)
                    .into_paginator()
                    .send(),
                |output| {
                    details
                        .users
                        .extend(output.user_detail_list().iter().map(|user| Permissions {
                            name: user.user_name().unwrap_or_default().to_owned(),
                            attached_policies: attached_names(user.attached_managed_policies()),
                            inline_policies: inline_names(user.user_policy_list()),
                        }));
                    details
                        .groups
                        .extend(output.group_detail_list().iter().map(|group| Permissions {
                            name: group.group_name().unwrap_or_default().to_owned(),
                            attached_policies: attached_names(group.attached_managed_policies()),
                            inline_policies: inline_names(group.group_policy_list()),
                        }));
                    details
                        .policies
                        .extend(output.policies().iter().map(|policy| {
                            CustomerPolicy {
                                // moto leaves PolicyName out; the ARN ends with it.
                                name: policy
                                    .policy_name()
                                    .or_else(|| policy.arn().and_then(|arn| arn.rsplit('/').next()))
                                    .unwrap_or_default()
                                    .to_owned(),
                                arn: policy.arn().unwrap_or_default().to_owned(),
                                attachment_count: policy.attachment_count().unwrap_or_default(),
                                default_document: policy
                                    .policy_version_list()
                                    .iter()
                                    .find(|version| version.is_default_version())
                                    .and_then(|version| version.document())
                                    .map(str::to_owned),
                            }
                        }));
                },
            )
            .await?;
        Ok(details)
    }
}

fn attached_names(policies: &[aws_sdk_iam::types::AttachedPolicy]) -> Vec<String> {
    policies
        .iter()
        .filter_map(|policy| policy.policy_name().map(str::to_owned))
        .collect()
}

fn inline_names(policies: &[aws_sdk_iam::types::PolicyDetail]) -> Vec<String> {
    policies
        .iter()
        .filter_map(|policy| policy.policy_name().map(str::to_owned))
        .collect()
}
