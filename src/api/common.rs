//! Types and schema pieces shared by the four kinds: references, tags, deletion policy,
//! conditions, and the IAM name and path grammars.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// IAM's character set for role, policy and instance profile names: `[\w+=,.@-]`.
pub const IAM_NAME_PATTERN: &str = r"^[A-Za-z0-9+=,.@_-]+$";

/// IAM paths: `/` alone, or `/segment/.../` made of printable ASCII.
pub const IAM_PATH_PATTERN: &str = r"^/([\x21-\x7E]{0,510}/)?$";

/// A managed policy ARN: AWS managed (`arn:aws:iam::aws:policy/...`) or customer managed.
pub const POLICY_ARN_PATTERN: &str = r"^arn:aws(-cn|-us-gov|-iso|-iso-b)?:iam::(aws|[0-9]{12}):policy/([\x21-\x7E]{0,510}/)?[A-Za-z0-9+=,.@_-]{1,128}$";

/// A Kubernetes object name (RFC 1123 subdomain). References are checked against it so that a
/// name cannot carry a `/` or `..` into the request path of another namespace.
pub const OBJECT_NAME_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// IAM's character set for tag keys and values: letters, digits, separators (spaces) and
/// `_.:/=+-@`. Zero-width, bidirectional-control and other invisible characters are refused.
pub const IAM_TAG_PATTERN: &str = r"^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$";

/// Tags a spec may hold: IAM's 50 per object, less rolecall's own `rolecall.dev/owner` tag.
pub const MAX_USER_TAGS: usize = 49;

/// What happens to the AWS object when the Kubernetes object is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Delete the AWS object (and what rolecall attached to it) with the Kubernetes object.
    #[default]
    Delete,
    /// Leave the AWS object in place; only the Kubernetes object goes.
    Retain,
}

/// A reference to another rolecall object in the same namespace.
#[derive(
    Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
pub struct LocalObjectReference {
    /// Name of the object, in the namespace of the referring object.
    #[schemars(length(min = 1, max = 253), pattern(OBJECT_NAME_PATTERN))]
    pub name: String,
}

/// Status fields every kind shares, in the kstatus shape Flux, Argo CD and `kubectl wait` read.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommonStatus {
    /// The `metadata.generation` that the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The AWS account the object lives in: its Tenancy's, or the operator's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,

    /// Standard conditions; `Ready` says whether AWS matches the spec.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
}

/// IAM allows 50 tags per object and rolecall always adds its `rolecall.dev/owner` tag, so a
/// spec may hold 49; keys 1..128 and values 0..256 characters of IAM's tag character set. The `rolecall.dev/` prefix is reserved for the ownership tag, `aws:` for
/// AWS. IAM compares keys ignoring case, so the reserved prefixes and duplicates are checked
/// ignoring case too (`Team` and `team` would be refused by IAM on the first write).
pub fn tags_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "maxProperties": MAX_USER_TAGS,
        "additionalProperties": { "type": "string", "maxLength": 256, "pattern": IAM_TAG_PATTERN },
        "x-kubernetes-validations": [
            {
                "rule": "self.all(k, size(k) >= 1 && size(k) <= 128)",
                "message": "tag keys must be 1 to 128 characters",
            },
            {
                "rule": format!("self.all(k, k.matches(r'{IAM_TAG_PATTERN}'))"),
                "message": "tag keys may hold only letters, digits, spaces and _.:/=+-@",
            },
            {
                "rule": "self.all(k, !k.lowerAscii().startsWith('rolecall.dev/') && !k.lowerAscii().startsWith('aws:'))",
                "message": "tag keys starting with rolecall.dev/ or aws: are reserved",
            },
            {
                "rule": "self.all(k, self.all(j, j == k || j.lowerAscii() != k.lowerAscii()))",
                "message": "tag keys must differ by more than letter case: IAM treats them as the same key",
            },
        ],
    })
}

fn conditions_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = Vec::<Condition>::json_schema(generator);
    schema.insert("x-kubernetes-list-type".into(), "map".into());
    schema.insert(
        "x-kubernetes-list-map-keys".into(),
        serde_json::json!(["type"]),
    );
    schema
}

/// Tags as written in a spec; absent and empty mean the same.
pub type Tags = BTreeMap<String, String>;

/// CEL rule making an optional field immutable once set, and impossible to add or remove
/// after creation. Placed on the struct holding the field.
pub fn immutable_optional_rule(field: &str) -> serde_json::Value {
    serde_json::json!({
        "rule": format!("has(self.{field}) == has(oldSelf.{field}) && (!has(self.{field}) || self.{field} == oldSelf.{field})"),
        "message": format!("{field} is immutable"),
        "fieldPath": format!(".{field}"),
    })
}
