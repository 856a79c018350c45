//! `IamRole`: an IAM role with its trust policy and permissions.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    CommonStatus, DeletionPolicy, IAM_NAME_PATTERN, IAM_PATH_PATTERN, LocalObjectReference,
    POLICY_ARN_PATTERN, Tags, immutable_optional_rule, tags_schema,
};
use super::document::PolicyDocument;

/// A service principal such as `ec2.amazonaws.com`.
pub const SERVICE_PRINCIPAL_PATTERN: &str = r"^[a-z0-9][a-z0-9.-]*\.amazonaws\.com(\.cn)?$";

/// IAM's character set for a role description: printable text, tab and line breaks.
pub const ROLE_DESCRIPTION_PATTERN: &str = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x84\x86-\x9F]*$";

/// IAM allows at most 20 managed policies per role (10 by default quota).
pub const MAX_MANAGED_POLICIES: u32 = 20;

/// An IAM role: who may assume it (the trust policy) and what it may do (managed and inline
/// policies).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "iam.rolecall.dev",
    version = "v1alpha1",
    kind = "IamRole",
    plural = "iamroles",
    namespaced,
    status = "IamRoleStatus",
    shortname = "iamrole",
    category = "rolecall",
    category = "aws",
    doc = "An AWS IAM role, kept in the state its spec describes.",
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
        "rule": "has(self.assumeRolePolicy) != has(self.trustedServices)",
        "message": "exactly one of assumeRolePolicy and trustedServices must be set",
    },
    {
        "rule": "(has(self.managedPolicyArns) ? size(self.managedPolicyArns) : 0) + (has(self.policyRefs) ? size(self.policyRefs) : 0) <= 20",
        "message": "a role can carry at most 20 managed policies (managedPolicyArns and policyRefs together)",
    },
    immutable_optional_rule("name"),
    immutable_optional_rule("path"),
]))]
pub struct IamRoleSpec {
    /// Name of the role in IAM (1 to 64 characters of `[A-Za-z0-9+=,.@_-]`). Defaults to
    /// `metadata.name`. Cannot be changed after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), pattern(IAM_NAME_PATTERN))]
    pub name: Option<String>,

    /// IAM path of the role, `/` by default. Cannot be changed after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512), pattern(IAM_PATH_PATTERN))]
    pub path: Option<String>,

    /// Description of the role: up to 1,000 characters, no control characters other than tab
    /// and line breaks (IAM refuses them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1000), pattern(ROLE_DESCRIPTION_PATTERN))]
    pub description: Option<String>,

    /// The trust policy: who may assume the role. Set this or `trustedServices`, not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assume_role_policy: Option<PolicyDocument>,

    /// Shorthand for a trust policy that lets these AWS services assume the role, for example
    /// `[ec2.amazonaws.com]` for a role used by EC2 instances. Set this or
    /// `assumeRolePolicy`, not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 20),
        inner(pattern(SERVICE_PRINCIPAL_PATTERN), length(max = 128))
    )]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub trusted_services: Option<Vec<String>>,

    /// Longest session, in seconds, that assuming the role grants: 3600 (the default) to
    /// 43200.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 3600, max = 43200))]
    pub max_session_duration: Option<i32>,

    /// ARN of a managed policy that bounds the role's permissions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(POLICY_ARN_PATTERN), length(max = 2048))]
    pub permissions_boundary: Option<String>,

    /// ARNs of managed policies not managed by rolecall to attach, such as
    /// `arn:aws:iam::aws:policy/ReadOnlyAccess`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_MANAGED_POLICIES), inner(pattern(POLICY_ARN_PATTERN), length(max = 2048)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub managed_policy_arns: Vec<String>,

    /// IamPolicy objects in this namespace to attach. The role waits until each is Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_MANAGED_POLICIES))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub policy_refs: Vec<LocalObjectReference>,

    /// Inline policies embedded in the role, by policy name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 100, "x-kubernetes-validations" = [{
        "rule": "self.all(k, k.matches('^[A-Za-z0-9+=,.@_-]{1,128}$'))",
        "message": "inline policy names must be 1 to 128 characters of [A-Za-z0-9+=,.@_-]",
    }]))]
    pub inline_policies: BTreeMap<String, PolicyDocument>,

    /// Tags on the role: at most 49, because IAM allows 50 and rolecall adds its own
    /// `rolecall.dev/owner` tag.
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    #[schemars(schema_with = "tags_schema")]
    pub tags: Tags,

    /// `Delete` (default) removes the role from AWS when this object is deleted, after
    /// detaching its policies and removing it from instance profiles; `Retain` leaves it.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// What rolecall last observed of the role in AWS.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IamRoleStatus {
    #[serde(flatten)]
    pub common: CommonStatus,

    /// ARN of the role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,

    /// IAM's stable identifier of the role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_id: Option<String>,

    /// ARNs of the managed policies attached to the role by its last successful reconcile.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attached_policy_arns: Vec<String>,
}
