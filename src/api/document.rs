//! The structured IAM policy document shared by every kind (permission and trust policies).
//!
//! Field names follow IAM's JSON grammar (`Version`, `Statement`, `Effect`, ...) so that a
//! document copied from AWS documentation converts to YAML unchanged.

use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// The only policy language versions IAM accepts.
pub const POLICY_VERSIONS: [&str; 2] = ["2012-10-17", "2008-10-17"];

/// Largest statement count the schema admits. A managed policy is limited to 6,144
/// characters, so even minimal statements cannot exceed this in practice.
pub const MAX_STATEMENTS: u32 = 100;

/// An IAM policy document, written as structured YAML rather than a JSON string.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyDocument {
    /// Policy language version: `2012-10-17` (the current one, and what rolecall writes when
    /// this is left out) or the legacy `2008-10-17`, which lacks policy variables. A copy in
    /// AWS without Version is read by IAM as `2008-10-17`, so rolecall repairs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = POLICY_VERSIONS))]
    pub version: Option<String>,

    /// Optional identifier of the document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub id: Option<String>,

    /// The statements of the policy; a request is allowed when some statement allows it and
    /// none denies it.
    #[schemars(length(min = 1, max = MAX_STATEMENTS))]
    pub statement: Vec<Statement>,
}

/// One statement of a policy document. Action/NotAction, Resource/NotResource and
/// Principal/NotPrincipal are each exclusive; the operator checks that before any AWS call,
/// because CEL cannot see fields whose schema keeps unknown content.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub struct Statement {
    /// Optional statement identifier, unique within the document (letters and digits only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128), pattern("^[A-Za-z0-9]+$"))]
    pub sid: Option<String>,

    /// Whether the statement allows or denies the matching requests.
    pub effect: Effect,

    /// The actions the statement covers, as one string or a list (`s3:GetObject`, `s3:*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "one_or_many_schema")]
    pub action: Option<OneOrMany>,

    /// Every action except these, as one string or a list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "one_or_many_schema")]
    pub not_action: Option<OneOrMany>,

    /// The resources the statement covers, as one ARN or a list. Omit it in trust policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "one_or_many_schema")]
    pub resource: Option<OneOrMany>,

    /// Every resource except these, as one ARN or a list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "one_or_many_schema")]
    pub not_resource: Option<OneOrMany>,

    /// Who the statement applies to: `"*"` or a map from principal type (`AWS`, `Service`,
    /// `Federated`, `CanonicalUser`) to one value or a list. Used in trust policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "principal_schema")]
    pub principal: Option<Principal>,

    /// Everyone except these principals; same shape as `Principal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "principal_schema")]
    pub not_principal: Option<Principal>,

    /// Conditions under which the statement applies: operator (`StringEquals`, `IpAddress`,
    /// ...) to a map of condition key to one value or a list of values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "condition_schema")]
    pub condition: Option<BTreeMap<String, BTreeMap<String, serde_json::Value>>>,
}

/// Allow or Deny.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum Effect {
    Allow,
    Deny,
}

/// IAM's "a string or a list of strings".
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
    /// Any other JSON the schema let through (these fields keep unknown content). Kept rather
    /// than refused by serde, because one object that fails to deserialize would break the
    /// operator's list and watch of its whole kind; validation reports it as InvalidSpec.
    Malformed(serde_json::Value),
}

impl OneOrMany {
    /// The values as a slice, whichever form was written; empty when malformed.
    pub fn values(&self) -> &[String] {
        match self {
            OneOrMany::One(value) => std::slice::from_ref(value),
            OneOrMany::Many(values) => values,
            OneOrMany::Malformed(_) => &[],
        }
    }
}

/// A statement principal: the wildcard `"*"` or a map of principal type to values.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(untagged)]
pub enum Principal {
    Wildcard(String),
    Typed(BTreeMap<String, OneOrMany>),
    /// Any other JSON the schema let through; reported by validation (see `OneOrMany`).
    Malformed(serde_json::Value),
}

// A string-or-list cannot be expressed in a structural schema (a node has one type), so these
// fields keep unknown content and the operator checks their shape before any AWS call.
fn one_or_many_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
}

fn principal_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
}

fn condition_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "additionalProperties": {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
        },
    })
}
