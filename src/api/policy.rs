//! `IamPolicy`: a customer managed IAM policy.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    CommonStatus, DeletionPolicy, IAM_NAME_PATTERN, IAM_PATH_PATTERN, Tags,
    immutable_optional_rule, tags_schema,
};
use super::document::PolicyDocument;

/// A customer managed IAM policy. Editing `document` publishes a new default policy version,
/// which changes the permissions of every role the policy is attached to.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "iam.rolecall.dev",
    version = "v1alpha1",
    kind = "IamPolicy",
    plural = "iampolicies",
    namespaced,
    status = "IamPolicyStatus",
    shortname = "iampol",
    category = "rolecall",
    category = "aws",
    doc = "A customer managed AWS IAM policy, kept in the state its spec describes.",
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
    immutable_optional_rule("name"),
    immutable_optional_rule("path"),
]))]
pub struct IamPolicySpec {
    /// Name of the policy in IAM (1 to 128 characters of `[A-Za-z0-9+=,.@_-]`). Defaults to
    /// `metadata.name`. Cannot be changed after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128), pattern(IAM_NAME_PATTERN))]
    pub name: Option<String>,

    /// IAM path of the policy, `/` by default (for example `/platform/`). Cannot be changed
    /// after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512), pattern(IAM_PATH_PATTERN))]
    pub path: Option<String>,

    /// Description of the policy. IAM sets it only when the policy is created; a later change
    /// is reported in the Ready condition rather than applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1000))]
    pub description: Option<String>,

    /// The permissions the policy grants or denies.
    pub document: PolicyDocument,

    /// Tags on the policy: at most 49, because IAM allows 50 and rolecall adds its own
    /// `rolecall.dev/owner` tag.
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    #[schemars(schema_with = "tags_schema")]
    pub tags: Tags,

    /// `Delete` (default) removes the policy from AWS when this object is deleted, detaching
    /// it from the roles rolecall attached it to; `Retain` leaves it in AWS.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// What rolecall last observed of the policy in AWS.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IamPolicyStatus {
    #[serde(flatten)]
    pub common: CommonStatus,

    /// ARN of the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,

    /// IAM's stable identifier of the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_id: Option<String>,

    /// The policy version in force (`v1`, `v2`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_version_id: Option<String>,
}
