//! `Ec2InstanceBinding`: which EC2 instances carry which instance profile.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CommonStatus, DeletionPolicy, IAM_NAME_PATTERN, LocalObjectReference};

/// The per-instance state of an instance another binding claims for a different profile.
pub const CONFLICT_STATE: &str = "conflict";

/// An EC2 instance id such as `i-0123456789abcdef0`.
pub const INSTANCE_ID_PATTERN: &str = r"^i-([0-9a-f]{8}|[0-9a-f]{17})$";

/// Associates an instance profile with EC2 instances named by id or selected by tags.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "iam.rolecall.dev",
    version = "v1alpha1",
    kind = "Ec2InstanceBinding",
    plural = "ec2instancebindings",
    namespaced,
    status = "Ec2InstanceBindingStatus",
    shortname = "ec2ib",
    category = "rolecall",
    category = "aws",
    doc = "Associates an IAM instance profile with EC2 instances and keeps them associated.",
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
    printcolumn(name = "Matched", type_ = "integer", json_path = ".status.matched"),
    printcolumn(name = "Bound", type_ = "integer", json_path = ".status.bound"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.instanceProfileRef) != has(self.instanceProfileName)",
        "message": "exactly one of instanceProfileRef and instanceProfileName must be set",
    },
    {
        "rule": "(has(self.instanceIds) && size(self.instanceIds) > 0) || has(self.instanceSelector)",
        "message": "at least one of instanceIds and instanceSelector must be set",
    },
]))]
pub struct Ec2InstanceBindingSpec {
    /// The InstanceProfile object in this namespace to associate. The binding waits until it
    /// is Ready. Set this or `instanceProfileName`, not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_profile_ref: Option<LocalObjectReference>,

    /// Name of an instance profile not managed by rolecall to associate. Set this or
    /// `instanceProfileRef`, not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128), pattern(IAM_NAME_PATTERN))]
    pub instance_profile_name: Option<String>,

    /// EC2 instance ids to bind, such as `i-0123456789abcdef0`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000), inner(pattern(INSTANCE_ID_PATTERN)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub instance_ids: Vec<String>,

    /// Binds every running or stopped instance whose tags match; newly launched matching
    /// instances are picked up on the next resync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_selector: Option<InstanceSelector>,

    /// `Delete` (default) disassociates the instances that still carry this binding's profile
    /// when the binding is deleted; `Retain` leaves the associations in place.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// EC2 tag filters; an instance matches when it has every listed tag.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceSelector {
    /// Tag key to value; every entry must match. Values may use EC2's filter wildcards `*`
    /// (any characters) and `?` (one character), but at least one value must be more than `*`
    /// (the operator reports InvalidSpec otherwise): a selector of wildcards alone would hand
    /// this profile to every instance carrying the keys, which is almost never meant.
    #[schemars(extend(
        "minProperties" = 1,
        "maxProperties" = 50,
        // schemars' `inner(length)` does not reach map values, so the limit is spelt out.
        "additionalProperties" = { "type": "string", "maxLength": 256 },
        "x-kubernetes-validations" = [{
            "rule": "self.all(k, size(k) >= 1 && size(k) <= 128)",
            "message": "tag keys must be 1 to 128 characters",
        }],
    ))]
    pub match_tags: BTreeMap<String, String>,
}

/// What rolecall last observed of the bound instances.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Ec2InstanceBindingStatus {
    #[serde(flatten)]
    pub common: CommonStatus,

    /// Number of non-terminated instances the spec names or selects.
    #[serde(default)]
    pub matched: i32,

    /// Number of those instances associated with the instance profile.
    #[serde(default)]
    pub bound: i32,

    /// ARN of the instance profile being associated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_profile_arn: Option<String>,

    /// One entry per matched instance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["instanceId"]))]
    pub instances: Vec<InstanceBindingState>,
}

/// The association state of one instance.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceBindingState {
    /// The EC2 instance id.
    pub instance_id: String,

    /// Id of the instance profile association, once one exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub association_id: Option<String>,

    /// Association state as EC2 reports it (`associating`, `associated`, ...), or `conflict`
    /// when another binding claims the instance.
    pub state: String,

    /// Why the instance is not bound, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
