//! `IamGroup`: an IAM group and the permissions its members share.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    CommonStatus, DeletionPolicy, IAM_NAME_PATTERN, IAM_PATH_PATTERN, LocalObjectReference,
    POLICY_ARN_PATTERN, immutable_optional_rule,
};
use super::document::PolicyDocument;

/// IAM attaches at most 10 managed policies to a group (a fixed quota).
pub const MAX_GROUP_MANAGED_POLICIES: u32 = 10;

/// An IAM group: users in it get its managed and inline policies. The way an account gives
/// people permissions (the console's "use groups to assign permissions").
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "iam.rolecall.dev",
    version = "v1alpha1",
    kind = "IamGroup",
    plural = "iamgroups",
    namespaced,
    status = "IamGroupStatus",
    shortname = "iamgroup",
    category = "rolecall",
    category = "aws",
    doc = "An AWS IAM group, kept in the state its spec describes.",
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
        "rule": "(has(self.managedPolicyArns) ? size(self.managedPolicyArns) : 0) + (has(self.policyRefs) ? size(self.policyRefs) : 0) <= 10",
        "message": "a group can carry at most 10 managed policies (managedPolicyArns and policyRefs together)",
    },
    immutable_optional_rule("name"),
    immutable_optional_rule("path"),
]))]
pub struct IamGroupSpec {
    /// Name of the group in IAM (1 to 128 characters of `[A-Za-z0-9+=,.@_-]`). Defaults to
    /// `metadata.name`. Cannot be changed after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128), pattern(IAM_NAME_PATTERN))]
    pub name: Option<String>,

    /// IAM path of the group; the namespace's path by default. Cannot be changed after
    /// creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512), pattern(IAM_PATH_PATTERN))]
    pub path: Option<String>,

    /// ARNs of managed policies not managed by rolecall to attach, such as
    /// `arn:aws:iam::aws:policy/AdministratorAccess` (where the namespace's rules allow it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_GROUP_MANAGED_POLICIES), inner(pattern(POLICY_ARN_PATTERN), length(max = 2048)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub managed_policy_arns: Vec<String>,

    /// IamPolicy objects in this namespace to attach. The group waits until each is Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_GROUP_MANAGED_POLICIES))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub policy_refs: Vec<LocalObjectReference>,

    /// Inline policies embedded in the group, by policy name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 100, "x-kubernetes-validations" = [{
        "rule": "self.all(k, k.matches('^[A-Za-z0-9+=,.@_-]{1,128}$'))",
        "message": "inline policy names must be 1 to 128 characters of [A-Za-z0-9+=,.@_-]",
    }]))]
    pub inline_policies: BTreeMap<String, PolicyDocument>,

    /// `Delete` (default) removes the group from AWS when this object is deleted, after
    /// removing its members and its policies; `Retain` leaves it.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// What rolecall last observed of the group in AWS.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IamGroupStatus {
    #[serde(flatten)]
    pub common: CommonStatus,

    /// ARN of the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,

    /// IAM's stable identifier of the group. IAM groups carry no tags: this id, recorded when
    /// rolecall creates or adopts the group, is how rolecall knows the group is this object's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,

    /// Names of the IAM users in the group, as last observed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,

    /// ARNs of the managed policies attached to the group by its last successful reconcile.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attached_policy_arns: Vec<String>,
}
