//! `InstanceProfile`: the IAM container that lets EC2 instances take a role.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    CommonStatus, DeletionPolicy, IAM_NAME_PATTERN, IAM_PATH_PATTERN, LocalObjectReference, Tags,
    immutable_optional_rule, tags_schema,
};

/// An IAM instance profile wrapping one role, so EC2 instances can be given that role.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "iam.rolecall.dev",
    version = "v1alpha1",
    kind = "InstanceProfile",
    plural = "instanceprofiles",
    namespaced,
    status = "InstanceProfileStatus",
    shortname = "iamip",
    category = "rolecall",
    category = "aws",
    doc = "An AWS IAM instance profile holding one role, kept in the state its spec describes.",
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
    printcolumn(name = "Role", type_ = "string", json_path = ".status.roleName"),
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
        "rule": "has(self.roleRef) != has(self.roleName)",
        "message": "exactly one of roleRef and roleName must be set",
    },
    immutable_optional_rule("name"),
    immutable_optional_rule("path"),
]))]
pub struct InstanceProfileSpec {
    /// Name of the instance profile in IAM (1 to 128 characters of `[A-Za-z0-9+=,.@_-]`).
    /// Defaults to `metadata.name`. Cannot be changed after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128), pattern(IAM_NAME_PATTERN))]
    pub name: Option<String>,

    /// IAM path of the instance profile, `/` by default. Cannot be changed after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512), pattern(IAM_PATH_PATTERN))]
    pub path: Option<String>,

    /// The IamRole object in this namespace whose role the profile holds. The profile waits
    /// until the role is Ready. Set this or `roleName`, not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_ref: Option<LocalObjectReference>,

    /// Name of an IAM role not managed by rolecall for the profile to hold. Set this or
    /// `roleRef`, not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), pattern(IAM_NAME_PATTERN))]
    pub role_name: Option<String>,

    /// Tags on the instance profile: at most 49, because IAM allows 50 and rolecall adds its own
    /// `rolecall.dev/owner` tag.
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    #[schemars(schema_with = "tags_schema")]
    pub tags: Tags,

    /// `Delete` (default) removes the instance profile from AWS when this object is deleted;
    /// `Retain` leaves it.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// What rolecall last observed of the instance profile in AWS.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceProfileStatus {
    #[serde(flatten)]
    pub common: CommonStatus,

    /// ARN of the instance profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,

    /// IAM's stable identifier of the instance profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_profile_id: Option<String>,

    /// Name of the role the profile holds, as last observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_name: Option<String>,
}
