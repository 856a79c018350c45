//! The permissions a principal (role, group) carries: which managed policies to attach or
//! detach and which inline policies to put or delete. Pure, shared by the kinds that have them.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::PolicyDocument;
use crate::equivalence;

/// Differences between the permissions asked for and those IAM has.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PermissionChanges {
    pub attach: Vec<String>,
    pub detach: Vec<String>,
    /// Inline policies missing or different in meaning.
    pub put: Vec<String>,
    pub delete: Vec<String>,
}

/// `inline` holds IAM's raw (URL-encoded) documents; they are compared by meaning.
pub fn permission_changes(
    managed_policy_arns: &BTreeSet<String>,
    inline_policies: &BTreeMap<String, (PolicyDocument, String)>,
    attached: &BTreeSet<String>,
    inline: &BTreeMap<String, String>,
) -> PermissionChanges {
    PermissionChanges {
        attach: managed_policy_arns.difference(attached).cloned().collect(),
        detach: attached.difference(managed_policy_arns).cloned().collect(),
        put: inline_policies
            .iter()
            .filter(|(name, (document, _))| {
                !inline
                    .get(*name)
                    .is_some_and(|raw| equivalence::document_matches(document, raw))
            })
            .map(|(name, _)| name.clone())
            .collect(),
        delete: inline
            .keys()
            .filter(|name| !inline_policies.contains_key(*name))
            .cloned()
            .collect(),
    }
}
