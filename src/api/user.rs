//! `IamUser`: an IAM user, its groups and permissions, and its console and programmatic
//! credentials, kept in Kubernetes Secrets of its own namespace.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    CommonStatus, DeletionPolicy, IAM_NAME_PATTERN, IAM_PATH_PATTERN, LocalObjectReference,
    OBJECT_NAME_PATTERN, POLICY_ARN_PATTERN, Tags, immutable_optional_rule, tags_schema,
};
use super::document::PolicyDocument;

/// IAM attaches at most 20 managed policies to a user (10 by default quota).
pub const MAX_USER_MANAGED_POLICIES: u32 = 20;
/// IAM puts a user in at most 10 groups.
pub const MAX_USER_GROUPS: u32 = 10;

/// An IAM user: a person (console access with a generated password) or, where nothing better
/// exists, a program (an access key). Permissions come best through its groups.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "iam.rolecall.dev",
    version = "v1alpha1",
    kind = "IamUser",
    plural = "iamusers",
    namespaced,
    status = "IamUserStatus",
    shortname = "iamuser",
    category = "rolecall",
    category = "aws",
    doc = "An AWS IAM user, kept in the state its spec describes.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#,
        priority = 1
    ),
    printcolumn(name = "MFA", type_ = "boolean", json_path = ".status.mfaActive"),
    printcolumn(name = "ARN", type_ = "string", json_path = ".status.arn"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "(has(self.managedPolicyArns) ? size(self.managedPolicyArns) : 0) + (has(self.policyRefs) ? size(self.policyRefs) : 0) <= 20",
        "message": "a user can carry at most 20 managed policies (managedPolicyArns and policyRefs together)",
    },
    {
        "rule": "(has(self.groupRefs) ? size(self.groupRefs) : 0) + (has(self.groupNames) ? size(self.groupNames) : 0) <= 10",
        "message": "a user can be in at most 10 groups (groupRefs and groupNames together)",
    },
    {
        "rule": "!has(self.consoleAccess) || !has(self.accessKey) || self.consoleAccess.passwordSecretName != self.accessKey.secretName",
        "message": "the password and the access key need Secrets of their own",
    },
    immutable_optional_rule("name"),
    immutable_optional_rule("path"),
]))]
pub struct IamUserSpec {
    /// Name of the user in IAM (1 to 64 characters of `[A-Za-z0-9+=,.@_-]`). Defaults to
    /// `metadata.name`. Cannot be changed after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), pattern(IAM_NAME_PATTERN))]
    pub name: Option<String>,

    /// IAM path of the user; the namespace's path by default. Cannot be changed after
    /// creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512), pattern(IAM_PATH_PATTERN))]
    pub path: Option<String>,

    /// IamGroup objects in this namespace the user is a member of. The user waits until each
    /// is Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_USER_GROUPS))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub group_refs: Vec<LocalObjectReference>,

    /// Names of IAM groups not managed here that the user is a member of, where the
    /// namespace's rules allow it (Tenancy `references.groups`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_USER_GROUPS), inner(length(min = 1, max = 128), pattern(IAM_NAME_PATTERN)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub group_names: Vec<String>,

    /// ARNs of managed policies not managed by rolecall to attach to the user directly
    /// (groups are the better place for them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_USER_MANAGED_POLICIES), inner(pattern(POLICY_ARN_PATTERN), length(max = 2048)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub managed_policy_arns: Vec<String>,

    /// IamPolicy objects in this namespace to attach. The user waits until each is Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_USER_MANAGED_POLICIES))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub policy_refs: Vec<LocalObjectReference>,

    /// Inline policies embedded in the user, by policy name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 100, "x-kubernetes-validations" = [{
        "rule": "self.all(k, k.matches('^[A-Za-z0-9+=,.@_-]{1,128}$'))",
        "message": "inline policy names must be 1 to 128 characters of [A-Za-z0-9+=,.@_-]",
    }]))]
    pub inline_policies: BTreeMap<String, PolicyDocument>,

    /// ARN of a managed policy that bounds the user's permissions (the namespace's boundary
    /// when its Tenancy sets one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(POLICY_ARN_PATTERN), length(max = 2048))]
    pub permissions_boundary: Option<String>,

    /// Tags on the user: at most 49, because IAM allows 50 and rolecall adds its own
    /// `rolecall.dev/owner` tag.
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    #[schemars(schema_with = "tags_schema")]
    pub tags: Tags,

    /// Sign-in to the AWS console with a password rolecall generates and writes, once, to a
    /// Secret of this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_access: Option<ConsoleAccess>,

    /// An access key for programs, written to a Secret of this namespace and rotated. Off
    /// unless set: a role (IRSA, EKS Pod Identity, an instance profile) gives a program
    /// short-lived credentials and nothing to leak.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key: Option<AccessKeySpec>,

    /// `Delete` (default) removes the user from AWS when this object is deleted, after its
    /// login profile, access keys, MFA devices, group memberships and policies; `Retain`
    /// leaves it.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// Console access: a login profile with a generated password.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleAccess {
    /// Whether the user may sign in to the console (default true). False deletes the login
    /// profile.
    #[serde(default = "enabled")]
    pub enabled: bool,

    /// Whether the user must choose a new password at first sign-in (default true). Applied
    /// when the login profile is created or its password reset: IAM clears it once the user
    /// changes the password, and rolecall does not set it again.
    #[serde(default = "enabled")]
    pub password_reset_required: bool,

    /// Secret of this namespace that receives the generated password (keys `username` and
    /// `password`), created and owned by this object. Written once; an existing Secret not
    /// owned by this object is never written to.
    #[schemars(length(min = 1, max = 253), pattern(OBJECT_NAME_PATTERN))]
    pub password_secret_name: String,
}

/// Programmatic access: one active access key, rotated before `maxAge`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessKeySpec {
    /// Whether the user has an access key (default true). False deletes its keys.
    #[serde(default = "enabled")]
    pub enabled: bool,

    /// Secret of this namespace that receives the key (keys `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY`), created and owned by this object.
    #[schemars(length(min = 1, max = 253), pattern(OBJECT_NAME_PATTERN))]
    pub secret_name: String,

    /// Age (from the key's AWS creation date) at which the key is replaced: a new key is
    /// created and written to the Secret. Default `90d` (CIS: rotate within 90 days).
    #[serde(default = "default_max_age")]
    #[schemars(length(min = 2, max = 32), pattern(DURATION_PATTERN))]
    pub max_age: String,

    /// How long the replaced key keeps working after the new one is written, so that
    /// programs can pick it up. Default `24h`; must be shorter than `maxAge`.
    #[serde(default = "default_grace_period")]
    #[schemars(length(min = 2, max = 32), pattern(DURATION_PATTERN))]
    pub rotation_grace_period: String,
}

/// A duration such as `90d`, `24h`, `1h30m` or `45s`.
pub const DURATION_PATTERN: &str = r"^([0-9]+(d|h|m|s))+$";

fn enabled() -> bool {
    true
}

fn default_max_age() -> String {
    "90d".into()
}

fn default_grace_period() -> String {
    "24h".into()
}

/// What rolecall last observed of the user in AWS. Never holds a password or a secret key.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IamUserStatus {
    #[serde(flatten)]
    pub common: CommonStatus,

    /// ARN of the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,

    /// IAM's stable identifier of the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,

    /// Names of the groups the user is in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,

    /// ARNs of the managed policies attached to the user directly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attached_policy_arns: Vec<String>,

    /// Whether the user has an MFA device (ListMFADevices).
    #[serde(default)]
    pub mfa_active: bool,

    /// The login profile, when the user has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_access: Option<ConsoleAccessStatus>,

    /// When the user last signed in with the password, as IAM reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_last_used: Option<Time>,

    /// The user's access keys, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_keys: Vec<AccessKeyStatus>,

    /// The Secret rolecall wrote the console password to: deleted when console access is
    /// turned off, when a new password goes to another Secret, or with the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<String>,

    /// The Secret rolecall wrote the access key to: deleted when programmatic access is
    /// turned off, when a new key goes to another Secret, or with the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_secret: Option<String>,
}

/// The user's login profile.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleAccessStatus {
    /// When the login profile (the password) was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Time>,

    /// Whether IAM still asks for a new password at the next sign-in.
    #[serde(default)]
    pub password_reset_required: bool,

    /// The value of the `rolecall.dev/reset-password` annotation last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_request: Option<String>,
}

/// One access key, without its secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessKeyStatus {
    /// The key's id (`AKIA...`).
    pub access_key_id: String,

    /// `Active` or `Inactive`.
    pub state: String,

    /// When AWS created the key; its age is counted from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Time>,

    /// When the key was last used (GetAccessKeyLastUsed), if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<Time>,

    /// Whether this is the key in the Secret; another key is a replaced one in its grace
    /// period.
    #[serde(default)]
    pub in_secret: bool,
}
