//! `IamPolicy`: observe the managed policy, plan the difference, apply it.

use kube::ResourceExt;

use super::stores::Stores;
use super::tags::{Tags, desired_tags, tag_changes};
use super::{Managed, claim_existing, left_to_its_owner, references};
use crate::api::{DeletionPolicy, IamPolicy, IamPolicyStatus, PolicyDocument};
use crate::aws::iam::snapshot::{AccountSnapshot, SnapshotPolicy};
use crate::aws::iam::{ObservedPolicy, PolicyVersion};
use crate::context::Context;
use crate::equivalence;
use crate::error::Error;
use crate::tenancy::{AwsKind, Rules};

/// IAM keeps at most five versions of a managed policy.
pub const MAX_POLICY_VERSIONS: usize = 5;

/// The policy the spec asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub name: String,
    pub path: String,
    pub arn: String,
    pub description: Option<String>,
    pub document: PolicyDocument,
    pub document_json: String,
    pub tags: Tags,
}

/// The policy as IAM has it.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub policy: ObservedPolicy,
    /// Raw document of the default version (IAM URL-encodes it).
    pub document: String,
    pub versions: Vec<PolicyVersion>,
}

/// Every write the IamPolicy reconciler can make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyAction {
    Create,
    /// Frees a slot: IAM refuses a sixth version.
    DeleteVersion {
        version_id: String,
    },
    CreateDefaultVersion,
    Tag {
        tags: Tags,
    },
    Untag {
        keys: Vec<String>,
    },
}

pub type Plan = super::Plan<PolicyAction, IamPolicyStatus>;

/// Pure: the writes, and the status they leave. A difference IAM cannot apply (the
/// description, set only at creation) is said in the Ready message.
pub fn plan(desired: &Desired, observed: Option<&Observed>) -> Plan {
    let mut status = IamPolicyStatus {
        arn: Some(desired.arn.clone()),
        ..Default::default()
    };
    let Some(observed) = observed else {
        return Plan::available(vec![PolicyAction::Create], status, "policy created");
    };
    status.policy_id = Some(observed.policy.policy_id.clone());
    status.default_version_id = Some(observed.policy.default_version_id.clone());
    let mut actions = Vec::new();
    if !equivalence::document_matches(&desired.document, &observed.document) {
        if observed.versions.len() >= MAX_POLICY_VERSIONS {
            // Versions come oldest first.
            if let Some(oldest) = observed.versions.iter().find(|version| !version.is_default) {
                actions.push(PolicyAction::DeleteVersion {
                    version_id: oldest.version_id.clone(),
                });
            }
        }
        actions.push(PolicyAction::CreateDefaultVersion);
    }
    let (set, remove) = tag_changes(&desired.tags, &observed.policy.tags);
    if !set.is_empty() {
        actions.push(PolicyAction::Tag { tags: set });
    }
    if !remove.is_empty() {
        actions.push(PolicyAction::Untag { keys: remove });
    }
    let observed_description = observed.policy.description.as_deref().unwrap_or_default();
    let message = if desired.description.as_deref().unwrap_or_default() != observed_description {
        format!(
            "description differs from IAM's ({observed_description:?}); IAM sets a policy's description only at creation, \
             so it stays until the policy is recreated"
        )
    } else {
        "policy matches the spec".to_owned()
    };
    Plan::available(actions, status, message)
}

/// The spec, checked for what the CRD schema cannot express, with defaults filled in.
pub fn desired(
    policy: &IamPolicy,
    owner: &str,
    iam_arn_prefix: &str,
    path: &str,
) -> Result<Desired, Error> {
    let spec = &policy.spec;
    let document = &spec.document;
    equivalence::validate_for(document, equivalence::DocumentUse::Permissions)
        .map_err(|problems| Error::InvalidSpec(format!("document: {}", problems.join("; "))))?;
    equivalence::check_size(document, equivalence::MANAGED_POLICY_MAX_CHARS)
        .map_err(|problem| Error::InvalidSpec(format!("document: {problem}")))?;
    let name = policy_name(policy);
    let path = path.to_owned();
    Ok(Desired {
        arn: format!("{iam_arn_prefix}policy{path}{name}"),
        name,
        path,
        description: spec.description.clone(),
        document: document.clone(),
        document_json: equivalence::to_iam_json(document),
        tags: desired_tags(&spec.tags, owner),
    })
}

/// The IAM name of the policy: `spec.name`, or the object's name.
pub fn policy_name(policy: &IamPolicy) -> String {
    policy
        .spec
        .name
        .clone()
        .unwrap_or_else(|| policy.name_any())
}

/// A policy's tags are the one thing the account snapshot lacks (IAM's
/// GetAccountAuthorizationDetails returns none for managed policies): a converged policy takes
/// the per-object path once every this many resync periods (12 h at the default 10 min), so
/// tags changed by hand are repaired within that; everything else within one period.
pub const POLICY_TAGS_READ_EVERY: u32 = 72;

/// The policy as the snapshot has it. Its tags are taken as the spec's: the snapshot cannot
/// say otherwise, and `POLICY_TAGS_READ_EVERY` bounds how long that may go unchecked.
/// Versions are left out: they matter only when the document differs, which is drift the
/// per-object path handles.
pub fn bulk_observed(found: &SnapshotPolicy, desired: &Desired) -> Observed {
    Observed {
        policy: ObservedPolicy {
            tags: desired.tags.clone(),
            ..found.policy.clone()
        },
        document: found.document.clone(),
        versions: Vec::new(),
    }
}

async fn read(ctx: &Context, arn: &str) -> Result<Option<Observed>, Error> {
    let Some(policy) = ctx.iam.get_policy(arn).await? else {
        return Ok(None);
    };
    let versions = ctx.iam.list_policy_versions(arn).await?;
    let document = ctx
        .iam
        .get_policy_version(arn, &policy.default_version_id)
        .await?;
    Ok(Some(Observed {
        policy,
        document,
        versions,
    }))
}

impl Managed for IamPolicy {
    type Status = IamPolicyStatus;
    type Desired = Desired;
    type Observed = Option<Observed>;
    type Action = PolicyAction;

    fn status_mut(status: &mut Self::Status) -> &mut crate::api::CommonStatus {
        &mut status.common
    }

    fn current_status(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }

    fn deletion_policy(&self) -> DeletionPolicy {
        self.spec.deletion_policy
    }

    fn api(client: kube::Client, namespace: &str) -> kube::Api<Self> {
        super::namespaced(client, namespace)
    }

    fn validate(&self, _ctx: &Context) -> Result<(), Error> {
        desired(self, "", "", "/").map(drop)
    }

    fn admit(&self, rules: &Rules, _ctx: &Context) -> Result<(), Error> {
        rules.check_name(&policy_name(self), "policy")?;
        rules.check_path(self.spec.path.as_deref())?;
        rules.check_permissions(&self.spec.document, "document")
    }

    fn desired(&self, ctx: &Context, rules: &Rules) -> Result<Desired, Error> {
        let path = rules.check_path(self.spec.path.as_deref())?;
        let desired = desired(self, &ctx.owner_tag_value(self), &ctx.iam_arn_prefix, &path)?;
        // A policy is found by its ARN, so a Tenancy that moved the namespace's path would
        // otherwise make a second copy: the first stays, and so does the refusal.
        let recorded = self.status.as_ref().and_then(|s| s.arn.as_deref());
        if let Some(old) = recorded.filter(|old| *old != desired.arn) {
            return Err(rules.refuse(
                "path",
                format!(
                    "this policy exists as {old}, not at {} where the rules now place it; rolecall leaves it as it is",
                    desired.arn
                ),
            ));
        }
        Ok(desired)
    }

    async fn observe(
        &self,
        ctx: &Context,
        rules: &Rules,
        desired: &Desired,
    ) -> Result<Option<Observed>, Error> {
        let observed = read(ctx, &desired.arn).await?;
        self.claim(ctx, rules, desired, &observed)?;
        Ok(observed)
    }

    const BULK_CHECKED: bool = true;

    /// IAM's bulk answer has no policy tags: they are read again at least this often.
    const FULL_READ_EVERY: Option<u32> = Some(POLICY_TAGS_READ_EVERY);

    fn observe_bulk(
        &self,
        snapshot: &AccountSnapshot,
        desired: &Desired,
    ) -> Option<Option<Observed>> {
        if !snapshot.covers(&desired.path) {
            return None;
        }
        Some(
            snapshot
                .policies
                .get(&desired.arn)
                .map(|found| bulk_observed(found, desired)),
        )
    }

    fn claim(
        &self,
        ctx: &Context,
        rules: &Rules,
        desired: &Desired,
        observed: &Option<Observed>,
    ) -> Result<(), Error> {
        let Some(observed) = observed else {
            return Ok(());
        };
        claim_existing(
            self,
            rules,
            AwsKind::Policy,
            &desired.name,
            &observed.policy.tags,
            &ctx.owner_tag_value(self),
            &format!("policy {}", desired.arn),
        )
    }

    fn plan(&self, desired: &Desired, observed: &Option<Observed>) -> Plan {
        plan(desired, observed.as_ref())
    }

    async fn apply(
        &self,
        ctx: &Context,
        desired: &Desired,
        action: &PolicyAction,
        status: &mut IamPolicyStatus,
    ) -> Result<String, Error> {
        let iam = &ctx.iam;
        let arn = desired.arn.as_str();
        Ok(match action {
            PolicyAction::Create => {
                let created = iam
                    .create_policy(
                        &desired.name,
                        &desired.path,
                        desired.description.as_deref(),
                        &desired.document_json,
                        &desired.tags,
                    )
                    .await?;
                status.policy_id = Some(created.policy_id);
                status.default_version_id = Some(created.default_version_id);
                format!("created policy {}", created.arn)
            }
            PolicyAction::DeleteVersion { version_id } => {
                iam.delete_policy_version(arn, version_id).await?;
                format!(
                    "deleted old version {version_id} (IAM keeps at most {MAX_POLICY_VERSIONS})"
                )
            }
            PolicyAction::CreateDefaultVersion => {
                let version = iam
                    .create_policy_version(arn, &desired.document_json)
                    .await?;
                let note = format!("published the document as default version {version}");
                status.default_version_id = Some(version);
                note
            }
            PolicyAction::Tag { tags } => {
                iam.tag_policy(arn, tags).await?;
                format!(
                    "set tags {}",
                    tags.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            }
            PolicyAction::Untag { keys } => {
                iam.untag_policy(arn, keys).await?;
                format!("removed tags {}", keys.join(", "))
            }
        })
    }

    fn holders(&self, stores: &Stores) -> Vec<String> {
        let mut holders = references::holders(&stores.roles, self);
        holders.extend(references::holders(&stores.groups, self));
        holders.extend(references::holders(&stores.users, self));
        holders
    }

    async fn cleanup(&self, ctx: &Context) -> Result<(), Error> {
        let owner = ctx.owner_tag_value(self);
        let arn = match self.status.as_ref().and_then(|status| status.arn.clone()) {
            Some(arn) => arn,
            // Never written to status (a crash right after creating it): where converge puts it.
            None => {
                let namespace = self.namespace().unwrap_or_default();
                let path = match &self.spec.path {
                    Some(path) => path.clone(),
                    None => ctx
                        .rules_for(&namespace)
                        .map_or_else(|_| crate::tenancy::default_path(&namespace), |r| r.path),
                };
                format!("{}policy{path}{}", ctx.iam_arn_prefix, policy_name(self))
            }
        };
        let Some(policy) = ctx.iam.get_policy(&arn).await? else {
            return Ok(());
        };
        if left_to_its_owner(ctx, self, &policy.tags, &owner, &arn).await {
            return Ok(());
        }
        let entities = ctx.iam.list_entities_for_policy(&arn).await?;
        let cluster_prefix = format!("{}/", ctx.settings.cluster_name);
        let mut held = Vec::new();
        for role in &entities.roles {
            let managed_by_us = ctx.iam.get_role(role).await?.is_some_and(|observed| {
                observed
                    .tags
                    .get(crate::conditions::OWNER_TAG)
                    .is_some_and(|o| o.starts_with(&cluster_prefix))
            });
            if managed_by_us {
                ctx.iam.detach_role_policy(role, &arn).await?;
                ctx.event(
                    self,
                    false,
                    "Detached",
                    "Delete",
                    format!("detached {arn} from role {role}"),
                )
                .await;
            } else {
                held.push(format!("role {role}"));
            }
        }
        held.extend(entities.users.iter().map(|user| format!("user {user}")));
        held.extend(entities.groups.iter().map(|group| format!("group {group}")));
        if !held.is_empty() {
            return Err(Error::Conflict(format!(
                "policy {arn} is still attached to {} not managed by rolecall; detach it there or set deletionPolicy: Retain",
                held.join(", ")
            )));
        }
        for version in ctx.iam.list_policy_versions(&arn).await? {
            if !version.is_default {
                ctx.iam
                    .delete_policy_version(&arn, &version.version_id)
                    .await?;
            }
        }
        ctx.iam.delete_policy(&arn).await?;
        ctx.event(
            self,
            false,
            "Deleted",
            "Delete",
            format!("deleted policy {arn}"),
        )
        .await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conditions::OWNER_TAG;
    use crate::conditions::Readiness;

    fn document(action: &str) -> PolicyDocument {
        serde_json::from_value(serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{ "Effect": "Allow", "Action": action, "Resource": "*" }],
        }))
        .unwrap()
    }

    fn desired_with(action: &str) -> Desired {
        let document = document(action);
        Desired {
            name: "p".into(),
            path: "/".into(),
            arn: "arn:aws:iam::123456789012:policy/p".into(),
            description: Some("d".into()),
            document_json: equivalence::to_iam_json(&document),
            document,
            tags: [(OWNER_TAG.to_string(), "c/ns/p".to_string())].into(),
        }
    }

    fn version(id: &str, is_default: bool, created: i64) -> PolicyVersion {
        PolicyVersion {
            version_id: id.into(),
            is_default,
            created,
        }
    }

    fn observed_from(desired: &Desired, versions: Vec<PolicyVersion>) -> Observed {
        Observed {
            policy: ObservedPolicy {
                arn: "arn:aws:iam::123456789012:policy/p".into(),
                policy_id: "ANPA".into(),
                default_version_id: "v1".into(),
                description: desired.description.clone(),
                tags: desired.tags.clone(),
            },
            // IAM answers with URL-encoded JSON.
            document: desired
                .document_json
                .replace('{', "%7B")
                .replace('}', "%7D")
                .replace('"', "%22"),
            versions,
        }
    }

    #[test]
    fn a_missing_policy_is_created() {
        assert_eq!(
            plan(&desired_with("s3:GetObject"), None).actions,
            vec![PolicyAction::Create]
        );
    }

    #[test]
    fn a_converged_policy_needs_no_write() {
        let desired = desired_with("s3:GetObject");
        let observed = observed_from(&desired, vec![version("v1", true, 1)]);
        let plan = plan(&desired, Some(&observed));
        assert!(plan.actions.is_empty(), "{:?}", plan.actions);
        assert_eq!(
            plan.readiness,
            Readiness::available("policy matches the spec")
        );
        assert_eq!(plan.status.policy_id.as_deref(), Some("ANPA"));
    }

    #[test]
    fn a_changed_document_publishes_a_new_default_version() {
        let old = desired_with("s3:GetObject");
        let observed = observed_from(&old, vec![version("v1", true, 1)]);
        let actions = plan(&desired_with("s3:PutObject"), Some(&observed)).actions;
        assert_eq!(actions, vec![PolicyAction::CreateDefaultVersion]);
    }

    #[test]
    fn with_five_versions_the_oldest_non_default_is_pruned_first() {
        let old = desired_with("s3:GetObject");
        let versions = vec![
            version("v1", true, 1),
            version("v2", false, 2),
            version("v3", false, 3),
            version("v4", false, 4),
            version("v5", false, 5),
        ];
        let actions = plan(
            &desired_with("s3:PutObject"),
            Some(&observed_from(&old, versions)),
        )
        .actions;
        assert_eq!(
            actions,
            vec![
                PolicyAction::DeleteVersion {
                    version_id: "v2".into()
                },
                PolicyAction::CreateDefaultVersion
            ]
        );
    }

    #[test]
    fn tag_drift_is_repaired_with_only_the_difference() {
        let desired = desired_with("s3:GetObject");
        let mut observed = observed_from(&desired, vec![version("v1", true, 1)]);
        observed.policy.tags.insert("stray".into(), "x".into());
        let mut wanted = desired.clone();
        wanted.tags.insert("team".into(), "web".into());
        let actions = plan(&wanted, Some(&observed)).actions;
        assert_eq!(
            actions,
            vec![
                PolicyAction::Tag {
                    tags: [("team".to_string(), "web".to_string())].into()
                },
                PolicyAction::Untag {
                    keys: vec!["stray".into()]
                },
            ]
        );
    }

    #[test]
    fn a_description_change_is_reported_not_applied() {
        let desired = desired_with("s3:GetObject");
        let observed = observed_from(&desired, vec![version("v1", true, 1)]);
        let mut changed = desired.clone();
        changed.description = Some("new".into());
        let plan = plan(&changed, Some(&observed));
        assert!(plan.actions.is_empty());
        assert!(plan.readiness.ready);
        assert!(
            plan.readiness.message.contains("only at creation"),
            "{}",
            plan.readiness.message
        );
    }
}
