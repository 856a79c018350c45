//! One account's roles and customer managed policies under given IAM paths, read in bulk for
//! drift checks: GetAccountAuthorizationDetails (trust, boundary, tags, attached and inline
//! policies; every policy's versions) and ListRoles (description and maximum session
//! duration, which the first leaves out). Only what the comparison needs is kept, indexed by
//! role name and policy ARN.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_iam::types::EntityType;

use super::{Iam, ObservedPolicy, ObservedRole, from_tags};
use crate::aws::calls::CallKind;
use crate::aws::error::AwsError;

/// IAM's largest page (its default is 100).
const PAGE_ITEMS: i32 = 1000;

/// A role as the snapshot holds it: what `GetRole`, `ListAttachedRolePolicies` and the
/// inline policy reads would have answered.
#[derive(Clone, Debug, PartialEq)]
pub struct SnapshotRole {
    pub role: ObservedRole,
    pub attached: BTreeSet<String>,
    /// Inline policy name to raw (URL-encoded) document.
    pub inline: BTreeMap<String, String>,
}

/// A customer managed policy as the snapshot holds it. IAM's bulk answer carries no policy
/// tags, so `policy.tags` is empty and says nothing.
#[derive(Clone, Debug, PartialEq)]
pub struct SnapshotPolicy {
    pub policy: ObservedPolicy,
    /// Raw document of the default version.
    pub document: String,
}

/// The roles and policies under `prefixes`. An object under a prefix that is not here did
/// not exist in the account when the snapshot was read (or was made while it was read).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AccountSnapshot {
    pub prefixes: Vec<String>,
    pub roles: HashMap<String, SnapshotRole>,
    pub policies: HashMap<String, SnapshotPolicy>,
}

impl AccountSnapshot {
    /// Whether the snapshot holds everything under `path`.
    pub fn covers(&self, path: &str) -> bool {
        self.prefixes.iter().any(|prefix| path.starts_with(prefix))
    }
}

/// The shortest prefixes that cover all of `paths` (`/a/` covers `/a/b/`).
pub fn covering_prefixes(paths: impl IntoIterator<Item = String>) -> Vec<String> {
    let paths: BTreeSet<String> = paths.into_iter().collect();
    let mut kept: Vec<String> = Vec::new();
    for path in paths {
        if !kept.iter().any(|prefix| path.starts_with(prefix.as_str())) {
            kept.push(path);
        }
    }
    kept
}

/// Description and maximum session duration, from ListRoles.
struct RoleSettings {
    description: Option<String>,
    max_session_duration: i32,
}

impl Iam {
    /// Every role and customer managed policy under `prefixes`, a page at a time.
    pub async fn account_snapshot(&self, prefixes: &[String]) -> Result<AccountSnapshot, AwsError> {
        let under = |path: Option<&str>| {
            path.is_some_and(|path| prefixes.iter().any(|prefix| path.starts_with(prefix)))
        };
        let mut snapshot = AccountSnapshot {
            prefixes: prefixes.to_vec(),
            ..AccountSnapshot::default()
        };
        let mut trusts = Vec::new();
        self.calls
            .pages(
                CallKind::Read,
                "GetAccountAuthorizationDetails",
                self.client
                    .get_account_authorization_details()
                    .filter(EntityType::Role)
                    .filter(EntityType::LocalManagedPolicy)
                    .max_items(PAGE_ITEMS)
                    .into_paginator()
                    .send(),
                |output| {
                    for role in output.role_detail_list() {
                        let (Some(name), Some(arn)) = (role.role_name(), role.arn()) else {
                            continue;
                        };
                        if !under(role.path()) {
                            continue;
                        }
                        let observed = ObservedRole {
                            arn: arn.to_owned(),
                            role_id: role.role_id().unwrap_or_default().to_owned(),
                            assume_role_policy: role
                                .assume_role_policy_document()
                                .unwrap_or_default()
                                .to_owned(),
                            description: None,
                            max_session_duration: 0,
                            permissions_boundary: role
                                .permissions_boundary()
                                .and_then(|boundary| boundary.permissions_boundary_arn())
                                .map(str::to_owned),
                            tags: from_tags(role.tags()),
                        };
                        let attached = role
                            .attached_managed_policies()
                            .iter()
                            .filter_map(|policy| policy.policy_arn().map(str::to_owned))
                            .collect();
                        let inline = role
                            .role_policy_list()
                            .iter()
                            .filter_map(|policy| {
                                Some((
                                    policy.policy_name()?.to_owned(),
                                    policy.policy_document()?.to_owned(),
                                ))
                            })
                            .collect();
                        trusts.push((
                            name.to_owned(),
                            SnapshotRole {
                                role: observed,
                                attached,
                                inline,
                            },
                        ));
                    }
                    for policy in output.policies() {
                        let Some(arn) = policy.arn() else { continue };
                        // Without its id the snapshot could not give the status a per-object
                        // read would; such a policy is left to the per-object path.
                        let Some(policy_id) = policy.policy_id().filter(|id| !id.is_empty()) else {
                            continue;
                        };
                        if !under(policy.path()) {
                            continue;
                        }
                        let default = policy
                            .policy_version_list()
                            .iter()
                            .find(|version| version.is_default_version());
                        let Some(document) = default.and_then(|version| version.document()) else {
                            continue;
                        };
                        snapshot.policies.insert(
                            arn.to_owned(),
                            SnapshotPolicy {
                                policy: ObservedPolicy {
                                    arn: arn.to_owned(),
                                    policy_id: policy_id.to_owned(),
                                    default_version_id: policy
                                        .default_version_id()
                                        .unwrap_or_default()
                                        .to_owned(),
                                    description: policy
                                        .description()
                                        .filter(|d| !d.is_empty())
                                        .map(str::to_owned),
                                    tags: Default::default(),
                                },
                                document: document.to_owned(),
                            },
                        );
                    }
                },
            )
            .await?;
        let mut settings = HashMap::new();
        for prefix in prefixes {
            self.calls
                .pages(
                    CallKind::Read,
                    "ListRoles",
                    self.client
                        .list_roles()
                        .path_prefix(prefix)
                        .max_items(PAGE_ITEMS)
                        .into_paginator()
                        .send(),
                    |output| {
                        for role in output.roles() {
                            settings.insert(
                                role.arn().to_owned(),
                                RoleSettings {
                                    description: role
                                        .description()
                                        .filter(|d| !d.is_empty())
                                        .map(str::to_owned),
                                    max_session_duration: role
                                        .max_session_duration()
                                        .unwrap_or(3600),
                                },
                            );
                        }
                    },
                )
                .await?;
        }
        // A role missing from either answer (made or deleted between them) is left out: the
        // per-object path reads it.
        for (name, mut role) in trusts {
            let Some(found) = settings.remove(&role.role.arn) else {
                continue;
            };
            role.role.description = found.description;
            role.role.max_session_duration = found.max_session_duration;
            snapshot.roles.insert(name, role);
        }
        Ok(snapshot)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn covering_prefixes_keep_only_the_outermost() {
        let prefixes = super::covering_prefixes(
            ["/rolecall/a/", "/rolecall/", "/team/x/", "/team/x/y/"]
                .into_iter()
                .map(String::from),
        );
        assert_eq!(prefixes, vec!["/rolecall/", "/team/x/"]);
    }
}
