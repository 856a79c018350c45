//! The fields of the checked-in CRDs' `openAPIV3Schema`, walked through objects and the items
//! of arrays, but not into maps (`additionalProperties`) or free-form documents
//! (`x-kubernetes-preserve-unknown-fields`), whose content the schema does not describe.
//! `tests/crds_generated.rs` includes this file on its own, without the rest of `common`.

#![allow(dead_code)] // each test binary uses a different subset

use serde_json::Value;

/// An object of a schema and its fields, as `kubectl explain <kind>.<path>` lists them.
pub struct ObjectNode {
    /// The lowercase kind, as `kubectl explain` takes it (`iamrole`).
    pub kind: String,
    /// Field names from the root; empty for the kind itself.
    pub path: Vec<String>,
    /// Each field's name and description (empty when the schema has none).
    pub fields: Vec<(String, String)>,
}

impl ObjectNode {
    /// `iamrole.spec.assumeRolePolicy`, the argument of `kubectl explain`.
    pub fn explain_path(&self) -> String {
        std::iter::once(self.kind.as_str())
            .chain(self.path.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(".")
    }
}

/// The `openAPIV3Schema` of each CRD in `crds/`, with its kind in lowercase.
pub fn checked_in_schemas() -> Vec<(String, Value)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/crds");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("crds/ exists")
        .map(|entry| entry.expect("readable crds/ entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).expect("readable CRD file");
            let crd: Value =
                serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let kind = crd["spec"]["names"]["kind"]
                .as_str()
                .expect("spec.names.kind")
                .to_lowercase();
            let versions = crd["spec"]["versions"].as_array().expect("spec.versions");
            assert_eq!(versions.len(), 1, "{}: one version", path.display());
            (kind, versions[0]["schema"]["openAPIV3Schema"].clone())
        })
        .collect()
}

/// Every object node of every checked-in CRD, the kind's root first.
pub fn object_nodes() -> Vec<ObjectNode> {
    let mut nodes = Vec::new();
    for (kind, schema) in checked_in_schemas() {
        walk(&kind, Vec::new(), &schema, &mut nodes);
    }
    nodes
}

fn walk(kind: &str, path: Vec<String>, schema: &Value, nodes: &mut Vec<ObjectNode>) {
    let Some(properties) = schema["properties"].as_object() else {
        return;
    };
    let mut fields = Vec::new();
    let mut children = Vec::new();
    for (name, field) in properties {
        let description = field["description"].as_str().unwrap_or_default();
        fields.push((name.clone(), description.to_string()));
        let mut child = path.clone();
        child.push(name.clone());
        // An array's fields are explained under the array's own name.
        let element = if field["type"] == "array" {
            &field["items"]
        } else {
            field
        };
        if element["x-kubernetes-preserve-unknown-fields"] != true {
            children.push((child, element));
        }
    }
    nodes.push(ObjectNode {
        kind: kind.to_string(),
        path,
        fields,
    });
    for (child, element) in children {
        walk(kind, child, element, nodes);
    }
}

/// Text with every run of whitespace made one space, since `kubectl explain` rewraps lines.
pub fn flatten(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
