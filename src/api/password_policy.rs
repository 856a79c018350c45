//! `AccountPasswordPolicy`: the AWS account's password policy for IAM users, one per cluster.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CommonStatus, DeletionPolicy};
use super::tenancy::AccountAccess;

fn minimum_length() -> i32 {
    14
}
fn reuse_prevention() -> i32 {
    24
}
fn yes() -> bool {
    true
}

/// The password rules IAM users of the account must follow. The defaults meet the CIS AWS
/// Foundations Benchmark (minimum length 14, the last 24 passwords not reused). An account
/// has one password policy and IAM cannot tag it: one object in one cluster should own an account's policy.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "iam.rolecall.dev",
    version = "v1alpha1",
    kind = "AccountPasswordPolicy",
    plural = "accountpasswordpolicies",
    status = "AccountPasswordPolicyStatus",
    shortname = "pwpolicy",
    category = "rolecall",
    category = "aws",
    doc = "An AWS account's IAM password policy, kept as its spec describes (cluster-scoped, one per account).",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#
    ),
    printcolumn(
        name = "Min Length",
        type_ = "integer",
        json_path = ".spec.minimumPasswordLength"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AccountPasswordPolicySpec {
    /// Fewest characters a password may have: 6 to 128, 14 by default (CIS).
    #[serde(default = "minimum_length")]
    #[schemars(range(min = 6, max = 128))]
    pub minimum_password_length: i32,

    /// How many previous passwords a user may not reuse: 1 to 24, 24 by default (CIS); 0
    /// allows reuse.
    #[serde(default = "reuse_prevention")]
    #[schemars(range(min = 0, max = 24))]
    pub password_reuse_prevention: i32,

    /// At least one non-alphanumeric character (`! @ # $ % ^ & * ( ) _ + - = [ ] { } | '`).
    #[serde(default = "yes")]
    pub require_symbols: bool,

    /// At least one digit.
    #[serde(default = "yes")]
    pub require_numbers: bool,

    /// At least one uppercase letter of the Latin alphabet.
    #[serde(default = "yes")]
    pub require_uppercase_characters: bool,

    /// At least one lowercase letter of the Latin alphabet.
    #[serde(default = "yes")]
    pub require_lowercase_characters: bool,

    /// Users may change their own password (true by default).
    #[serde(default = "yes")]
    pub allow_users_to_change_password: bool,

    /// Days a password stays valid, 1 to 1095; unset, passwords never expire (NIST 800-63B
    /// advises against forced rotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1095))]
    pub max_password_age: Option<i32>,

    /// With `maxPasswordAge`, an expired password can be reset only by an administrator.
    #[serde(default)]
    pub hard_expiry: bool,

    /// The account whose policy this is, reached by assuming a role there; the operator's own
    /// account when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountAccess>,

    /// `Delete` (default) removes the account's password policy when this object is deleted;
    /// `Retain` leaves it.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountPasswordPolicyStatus {
    #[serde(flatten)]
    pub common: CommonStatus,
}
