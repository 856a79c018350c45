//! `IamRole`: observe the role with its policies, plan the difference, apply it.

use std::collections::{BTreeMap, BTreeSet};

use kube::{Resource, ResourceExt};

use super::stores::Stores;
use super::tags::{Tags, desired_tags, tag_changes};
use super::{Managed, claim_existing, is_ready, left_to_its_owner, references};
use crate::api::{DeletionPolicy, IamRole, IamRoleSpec, IamRoleStatus, PolicyDocument};
use crate::aws::iam::snapshot::AccountSnapshot;
use crate::aws::iam::{NewRole, ObservedRole};
use crate::context::Context;
use crate::equivalence;
use crate::error::Error;
use crate::tenancy::{AwsKind, Rules};

/// IAM's default limit on a trust policy's size.
pub const TRUST_POLICY_MAX_CHARS: usize = 2048;
/// IAM's limit on the combined size of a role's inline policies.
pub const INLINE_POLICIES_MAX_CHARS: usize = 10240;
const DEFAULT_MAX_SESSION_DURATION: i32 = 3600;

/// The role the spec asks for, with references resolved to ARNs.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub name: String,
    pub path: String,
    pub trust: PolicyDocument,
    pub trust_json: String,
    pub description: String,
    pub max_session_duration: i32,
    pub permissions_boundary: Option<String>,
    pub managed_policy_arns: BTreeSet<String>,
    pub inline_policies: BTreeMap<String, (PolicyDocument, String)>,
    pub tags: Tags,
}

/// The role as IAM has it.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub role: ObservedRole,
    pub attached: BTreeSet<String>,
    /// Inline policy name to raw (URL-encoded) document.
    pub inline: BTreeMap<String, String>,
}

/// Every write the IamRole reconciler can make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoleAction {
    Create,
    UpdateTrustPolicy,
    UpdateRole {
        description: String,
        max_session_duration: i32,
    },
    PutPermissionsBoundary {
        arn: String,
    },
    DeletePermissionsBoundary,
    Tag {
        tags: Tags,
    },
    Untag {
        keys: Vec<String>,
    },
    AttachPolicy {
        arn: String,
    },
    DetachPolicy {
        arn: String,
    },
    PutInlinePolicy {
        name: String,
    },
    DeleteInlinePolicy {
        name: String,
    },
}

pub type Plan = super::Plan<RoleAction, IamRoleStatus>;

/// Pure: the writes, and the status they leave (the ARN and id of a role still to be created
/// come from CreateRole).
pub fn plan(desired: &Desired, observed: Option<&Observed>) -> Plan {
    let status = IamRoleStatus {
        arn: observed.map(|observed| observed.role.arn.clone()),
        role_id: observed.map(|observed| observed.role.role_id.clone()),
        attached_policy_arns: desired.managed_policy_arns.iter().cloned().collect(),
        ..Default::default()
    };
    Plan::available(actions(desired, observed), status, "role matches the spec")
}

fn actions(desired: &Desired, observed: Option<&Observed>) -> Vec<RoleAction> {
    let mut actions = Vec::new();
    let empty = Observed {
        role: ObservedRole {
            arn: String::new(),
            role_id: String::new(),
            assume_role_policy: String::new(),
            description: None,
            max_session_duration: DEFAULT_MAX_SESSION_DURATION,
            permissions_boundary: None,
            tags: Tags::new(),
        },
        attached: BTreeSet::new(),
        inline: BTreeMap::new(),
    };
    let observed = match observed {
        Some(observed) => {
            let role = &observed.role;
            if !equivalence::document_matches(&desired.trust, &role.assume_role_policy) {
                actions.push(RoleAction::UpdateTrustPolicy);
            }
            if desired.description != role.description.clone().unwrap_or_default()
                || desired.max_session_duration != role.max_session_duration
            {
                actions.push(RoleAction::UpdateRole {
                    description: desired.description.clone(),
                    max_session_duration: desired.max_session_duration,
                });
            }
            match (&desired.permissions_boundary, &role.permissions_boundary) {
                (Some(want), have) if Some(want) != have.as_ref() => {
                    actions.push(RoleAction::PutPermissionsBoundary { arn: want.clone() })
                }
                (None, Some(_)) => actions.push(RoleAction::DeletePermissionsBoundary),
                _ => {}
            }
            let (set, remove) = tag_changes(&desired.tags, &role.tags);
            if !set.is_empty() {
                actions.push(RoleAction::Tag { tags: set });
            }
            if !remove.is_empty() {
                actions.push(RoleAction::Untag { keys: remove });
            }
            observed
        }
        // CreateRole sets trust, description, session duration, boundary and tags at once.
        None => {
            actions.push(RoleAction::Create);
            &empty
        }
    };
    let changes = super::permissions::permission_changes(
        &desired.managed_policy_arns,
        &desired.inline_policies,
        &observed.attached,
        &observed.inline,
    );
    actions.extend(
        changes
            .attach
            .into_iter()
            .map(|arn| RoleAction::AttachPolicy { arn }),
    );
    actions.extend(
        changes
            .detach
            .into_iter()
            .map(|arn| RoleAction::DetachPolicy { arn }),
    );
    actions.extend(
        changes
            .put
            .into_iter()
            .map(|name| RoleAction::PutInlinePolicy { name }),
    );
    actions.extend(
        changes
            .delete
            .into_iter()
            .map(|name| RoleAction::DeleteInlinePolicy { name }),
    );
    actions
}

/// The IAM name of the role: `spec.name`, or the object's name.
pub fn role_name(role: &IamRole) -> String {
    role.spec.name.clone().unwrap_or_else(|| role.name_any())
}

/// The trust policy `trustedServices` stands for.
pub fn service_trust_policy(services: &[String]) -> PolicyDocument {
    serde_json::from_value(serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": services },
            "Action": "sts:AssumeRole",
        }],
    }))
    .expect("a valid trust policy")
}

/// The spec checked for what the schema cannot express, with `policyRefs` resolved.
pub fn desired(
    role: &IamRole,
    owner: &str,
    referenced_arns: BTreeSet<String>,
) -> Result<Desired, Error> {
    let spec = &role.spec;
    let trust = match (&spec.assume_role_policy, &spec.trusted_services) {
        (Some(document), None) => document.clone(),
        (None, Some(services)) => service_trust_policy(services),
        _ => {
            return Err(Error::InvalidSpec(
                "exactly one of assumeRolePolicy and trustedServices must be set".into(),
            ));
        }
    };
    equivalence::validate_for(&trust, equivalence::DocumentUse::Trust).map_err(|problems| {
        Error::InvalidSpec(format!("assumeRolePolicy: {}", problems.join("; ")))
    })?;
    equivalence::check_size(&trust, TRUST_POLICY_MAX_CHARS)
        .map_err(|problem| Error::InvalidSpec(format!("assumeRolePolicy: {problem}")))?;
    let inline_policies =
        inline_policies(&spec.inline_policies, INLINE_POLICIES_MAX_CHARS, "role")?;
    let mut managed_policy_arns: BTreeSet<String> =
        spec.managed_policy_arns.iter().cloned().collect();
    managed_policy_arns.extend(referenced_arns);
    Ok(Desired {
        name: role_name(role),
        path: spec.path.clone().unwrap_or_else(|| "/".into()),
        trust_json: equivalence::to_iam_json(&trust),
        trust,
        description: spec.description.clone().unwrap_or_default(),
        max_session_duration: spec
            .max_session_duration
            .unwrap_or(DEFAULT_MAX_SESSION_DURATION),
        permissions_boundary: spec.permissions_boundary.clone(),
        managed_policy_arns,
        inline_policies,
        tags: desired_tags(&spec.tags, owner),
    })
}

/// Inline policies validated, each with its IAM JSON, within IAM's total size for one
/// `principal` (role, group, user).
pub fn inline_policies(
    documents: &BTreeMap<String, PolicyDocument>,
    max_total: usize,
    principal: &str,
) -> Result<BTreeMap<String, (PolicyDocument, String)>, Error> {
    let mut inline_policies = BTreeMap::new();
    let mut inline_size = 0;
    for (name, document) in documents {
        equivalence::validate_for(document, equivalence::DocumentUse::Permissions).map_err(
            |problems| {
                Error::InvalidSpec(format!("inlinePolicies.{name}: {}", problems.join("; ")))
            },
        )?;
        let json = equivalence::to_iam_json(document);
        inline_size += json.len();
        inline_policies.insert(name.clone(), (document.clone(), json));
    }
    if inline_size > max_total {
        return Err(Error::InvalidSpec(format!(
            "inlinePolicies total {inline_size} characters; IAM allows {max_total} per {principal}"
        )));
    }
    Ok(inline_policies)
}

/// Refuses managed policy ARNs (and a permissions boundary) that no role of this account can
/// carry: IAM attaches only AWS managed policies and this account's own, in its partition.
/// The schema cannot know the account, and IAM would refuse only after the role was created.
pub fn check_policy_arns(spec: &IamRoleSpec, iam_arn_prefix: &str) -> Result<(), Error> {
    check_attachable(
        &spec.managed_policy_arns,
        spec.permissions_boundary.as_deref(),
        iam_arn_prefix,
    )
}

/// As [`check_policy_arns`], for any principal's managed policy ARNs and boundary.
pub fn check_attachable(
    managed_policy_arns: &[String],
    permissions_boundary: Option<&str>,
    iam_arn_prefix: &str,
) -> Result<(), Error> {
    let partition = iam_arn_prefix.split(':').nth(1).unwrap_or("aws");
    let aws_managed = format!("arn:{partition}:iam::aws:");
    let unattachable =
        |arn: &str| !arn.starts_with(iam_arn_prefix) && !arn.starts_with(&aws_managed);
    let mut problems: Vec<String> = managed_policy_arns
        .iter()
        .filter(|arn| unattachable(arn))
        .map(|arn| format!("managedPolicyArns: {arn}"))
        .collect();
    problems.extend(
        permissions_boundary
            .iter()
            .filter(|arn| unattachable(arn))
            .map(|arn| format!("permissionsBoundary: {arn}")),
    );
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::InvalidSpec(format!(
        "{} is neither an AWS managed policy ({aws_managed}policy/...) nor a policy of this account ({iam_arn_prefix}policy/...)",
        problems.join(", ")
    )))
}

/// ARNs of the referenced IamPolicy objects in `namespace`, once each is Ready for its current
/// generation, read from the store (the wiring wakes the referring object when one changes).
pub fn resolve_policy_refs(
    namespace: &str,
    refs: &[crate::api::LocalObjectReference],
    ctx: &Context,
) -> Result<BTreeSet<String>, Error> {
    let mut arns = BTreeSet::new();
    for reference in refs {
        let name = &reference.name;
        let Some(policy) = ctx.stores.policies.get(namespace, name) else {
            return Err(Error::DependencyNotReady(format!(
                "IamPolicy {name} does not exist in namespace {namespace}"
            )));
        };
        if policy.meta().deletion_timestamp.is_some() {
            return Err(Error::DependencyNotReady(format!(
                "IamPolicy {name} is being deleted"
            )));
        }
        let status = policy.status.as_ref();
        let ready = status.is_some_and(|status| is_ready(&status.common, policy.meta().generation));
        match status.and_then(|status| status.arn.clone()) {
            Some(arn) if ready => {
                arns.insert(arn);
            }
            _ => {
                return Err(Error::DependencyNotReady(format!(
                    "IamPolicy {name} is not Ready yet"
                )));
            }
        }
    }
    Ok(arns)
}

async fn read(ctx: &Context, name: &str) -> Result<Option<Observed>, Error> {
    let Some(role) = ctx.iam.get_role(name).await? else {
        return Ok(None);
    };
    let attached = ctx
        .iam
        .list_attached_role_policies(name)
        .await?
        .into_iter()
        .collect();
    let inline = ctx.iam.inline_role_policies(name).await?;
    Ok(Some(Observed {
        role,
        attached,
        inline,
    }))
}

impl Managed for IamRole {
    type Status = IamRoleStatus;
    type Desired = Desired;
    type Observed = Option<Observed>;
    type Action = RoleAction;

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

    // The ARNs' account is checked in converge, against the namespace's account.
    fn validate(&self, _ctx: &Context) -> Result<(), Error> {
        desired(self, "", BTreeSet::new()).map(drop)
    }

    fn admit(&self, rules: &Rules, ctx: &Context) -> Result<(), Error> {
        let spec = &self.spec;
        rules.check_name(&role_name(self), "role")?;
        rules.check_path(spec.path.as_deref())?;
        rules.check_boundary(spec.permissions_boundary.as_deref())?;
        let (prefix, account) = rules.account(ctx);
        for arn in &spec.managed_policy_arns {
            rules.check_managed_policy(arn, &prefix)?;
        }
        for (name, document) in &spec.inline_policies {
            rules.check_permissions(document, &format!("inlinePolicies.{name}"))?;
        }
        match (&spec.assume_role_policy, &spec.trusted_services) {
            (Some(document), _) => rules.check_trust(document, &account),
            (None, Some(services)) => rules.check_trust(&service_trust_policy(services), &account),
            (None, None) => Ok(()),
        }
    }

    fn desired(&self, ctx: &Context, rules: &Rules) -> Result<Desired, Error> {
        check_policy_arns(&self.spec, &ctx.iam_arn_prefix)?;
        let namespace = self.namespace().unwrap_or_default();
        let referenced = resolve_policy_refs(&namespace, &self.spec.policy_refs, ctx)?;
        let mut desired = desired(self, &ctx.owner_tag_value(self), referenced)?;
        desired.path = rules.check_path(self.spec.path.as_deref())?;
        desired.permissions_boundary =
            rules.check_boundary(self.spec.permissions_boundary.as_deref())?;
        Ok(desired)
    }

    async fn observe(
        &self,
        ctx: &Context,
        rules: &Rules,
        desired: &Desired,
    ) -> Result<Option<Observed>, Error> {
        let observed = read(ctx, &desired.name).await?;
        self.claim(ctx, rules, desired, &observed)?;
        Ok(observed)
    }

    const BULK_CHECKED: bool = true;

    fn observe_bulk(
        &self,
        snapshot: &AccountSnapshot,
        desired: &Desired,
    ) -> Option<Option<Observed>> {
        if !snapshot.covers(&desired.path) {
            return None;
        }
        Some(snapshot.roles.get(&desired.name).map(|found| Observed {
            role: found.role.clone(),
            attached: found.attached.clone(),
            inline: found.inline.clone(),
        }))
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
        let what = format!("role {}", desired.name);
        claim_existing(
            self,
            rules,
            AwsKind::Role,
            &desired.name,
            &observed.role.tags,
            &ctx.owner_tag_value(self),
            &what,
        )?;
        rules.check_arn_path(&observed.role.arn, &what)
    }

    fn plan(&self, desired: &Desired, observed: &Option<Observed>) -> Plan {
        plan(desired, observed.as_ref())
    }

    async fn apply(
        &self,
        ctx: &Context,
        desired: &Desired,
        action: &RoleAction,
        status: &mut IamRoleStatus,
    ) -> Result<String, Error> {
        let iam = &ctx.iam;
        let name = desired.name.as_str();
        Ok(match action {
            RoleAction::Create => {
                let role = iam
                    .create_role(&NewRole {
                        name,
                        path: &desired.path,
                        assume_role_policy: &desired.trust_json,
                        description: Some(desired.description.as_str()).filter(|d| !d.is_empty()),
                        max_session_duration: Some(desired.max_session_duration),
                        permissions_boundary: desired.permissions_boundary.as_deref(),
                        tags: &desired.tags,
                    })
                    .await?;
                status.role_id = Some(role.role_id);
                let note = format!("created role {}", role.arn);
                status.arn = Some(role.arn);
                note
            }
            RoleAction::UpdateTrustPolicy => {
                iam.update_assume_role_policy(name, &desired.trust_json)
                    .await?;
                "updated the trust policy".to_string()
            }
            RoleAction::UpdateRole {
                description,
                max_session_duration,
            } => {
                iam.update_role(name, description, *max_session_duration)
                    .await?;
                "updated description and maximum session duration".to_string()
            }
            RoleAction::PutPermissionsBoundary { arn } => {
                iam.put_role_permissions_boundary(name, arn).await?;
                format!("set permissions boundary {arn}")
            }
            RoleAction::DeletePermissionsBoundary => {
                iam.delete_role_permissions_boundary(name).await?;
                "removed the permissions boundary".to_string()
            }
            RoleAction::Tag { tags } => {
                iam.tag_role(name, tags).await?;
                format!(
                    "set tags {}",
                    tags.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            }
            RoleAction::Untag { keys } => {
                iam.untag_role(name, keys).await?;
                format!("removed tags {}", keys.join(", "))
            }
            RoleAction::AttachPolicy { arn } => {
                iam.attach_role_policy(name, arn).await?;
                format!("attached {arn}")
            }
            RoleAction::DetachPolicy { arn } => {
                iam.detach_role_policy(name, arn).await?;
                format!("detached {arn}")
            }
            RoleAction::PutInlinePolicy { name: policy_name } => {
                let (_, json) = &desired.inline_policies[policy_name];
                iam.put_role_policy(name, policy_name, json).await?;
                format!("put inline policy {policy_name}")
            }
            RoleAction::DeleteInlinePolicy { name: policy_name } => {
                iam.delete_role_policy(name, policy_name).await?;
                format!("deleted inline policy {policy_name}")
            }
        })
    }

    fn holders(&self, stores: &Stores) -> Vec<String> {
        references::holders(&stores.profiles, self)
    }

    async fn cleanup(&self, ctx: &Context) -> Result<(), Error> {
        let owner = ctx.owner_tag_value(self);
        let name = role_name(self);
        let Some(role) = ctx.iam.get_role(&name).await? else {
            return Ok(());
        };
        if left_to_its_owner(ctx, self, &role.tags, &owner, &format!("role {name}")).await {
            return Ok(());
        }
        // IAM refuses DeleteRole while anything hangs off the role.
        for arn in ctx.iam.list_attached_role_policies(&name).await? {
            ctx.iam.detach_role_policy(&name, &arn).await?;
        }
        for policy_name in ctx.iam.inline_role_policies(&name).await?.keys() {
            ctx.iam.delete_role_policy(&name, policy_name).await?;
        }
        // Only a profile rolecall owns in this cluster gives the role up; one made outside
        // rolecall keeps it, and the deletion waits until its owner removes it.
        let cluster_prefix = format!("{}/", ctx.settings.cluster_name);
        let mut foreign = Vec::new();
        let mut owned = Vec::new();
        for profile in ctx.iam.instance_profiles_for_role(&name).await? {
            let ours = ctx
                .iam
                .get_instance_profile(&profile)
                .await?
                .is_some_and(|observed| {
                    observed
                        .tags
                        .get(crate::conditions::OWNER_TAG)
                        .is_some_and(|owner| owner.starts_with(&cluster_prefix))
                });
            if ours {
                owned.push(profile);
            } else {
                foreign.push(profile);
            }
        }
        if !foreign.is_empty() {
            // Conflict, not InUse: nothing in the cluster will wake this, so it backs off.
            return Err(Error::Conflict(format!(
                "instance profile {} still holds role {name}; rolecall does not own it, so it will not remove the role from it",
                foreign.join(", ")
            )));
        }
        for profile in owned {
            ctx.iam
                .remove_role_from_instance_profile(&profile, &name)
                .await?;
        }
        ctx.iam.delete_role(&name).await?;
        ctx.event(
            self,
            false,
            "Deleted",
            "Delete",
            format!("deleted role {}", role.arn),
        )
        .await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conditions::OWNER_TAG;

    fn inline(action: &str) -> (PolicyDocument, String) {
        let document: PolicyDocument = serde_json::from_value(serde_json::json!({
            "Statement": [{ "Effect": "Allow", "Action": action, "Resource": "*" }],
        }))
        .unwrap();
        let json = equivalence::to_iam_json(&document);
        (document, json)
    }

    fn desired() -> Desired {
        let trust = service_trust_policy(&["ec2.amazonaws.com".into()]);
        Desired {
            name: "web".into(),
            path: "/".into(),
            trust_json: equivalence::to_iam_json(&trust),
            trust,
            description: "web fleet".into(),
            max_session_duration: 3600,
            permissions_boundary: None,
            managed_policy_arns: ["arn:aws:iam::123456789012:policy/a".to_string()].into(),
            inline_policies: [("logs".to_string(), inline("logs:PutLogEvents"))].into(),
            tags: [(OWNER_TAG.to_string(), "c/ns/web".to_string())].into(),
        }
    }

    fn converged(desired: &Desired) -> Observed {
        Observed {
            role: ObservedRole {
                arn: "arn:aws:iam::123456789012:role/web".into(),
                role_id: "AROA".into(),
                // IAM reformats the trust policy; meaning is what counts.
                assume_role_policy: r#"{"Statement":[{"Action":"sts:AssumeRole","Principal":{"Service":"ec2.amazonaws.com"},"Effect":"Allow"}],"Version":"2012-10-17"}"#.into(),
                description: Some(desired.description.clone()),
                max_session_duration: 3600,
                permissions_boundary: None,
                tags: desired.tags.clone(),
            },
            attached: desired.managed_policy_arns.clone(),
            inline: desired.inline_policies.iter().map(|(name, (_, json))| (name.clone(), json.clone())).collect(),
        }
    }

    #[test]
    fn a_missing_role_is_created_then_given_its_policies() {
        assert_eq!(
            actions(&desired(), None),
            vec![
                RoleAction::Create,
                RoleAction::AttachPolicy {
                    arn: "arn:aws:iam::123456789012:policy/a".into()
                },
                RoleAction::PutInlinePolicy {
                    name: "logs".into()
                },
            ]
        );
    }

    #[test]
    fn only_aws_managed_and_own_account_policy_arns_are_attachable() {
        let spec = |arns: &[&str], boundary: Option<&str>| -> IamRoleSpec {
            serde_json::from_value(serde_json::json!({
                "trustedServices": ["ec2.amazonaws.com"],
                "managedPolicyArns": arns,
                "permissionsBoundary": boundary,
            }))
            .unwrap()
        };
        let prefix = "arn:aws:iam::123456789012:";
        let fine = spec(
            &[
                "arn:aws:iam::aws:policy/ReadOnlyAccess",
                "arn:aws:iam::123456789012:policy/team/a",
            ],
            Some("arn:aws:iam::123456789012:policy/boundary"),
        );
        assert!(check_policy_arns(&fine, prefix).is_ok());
        for (arns, boundary, named) in [
            (
                &["arn:aws:iam::210987654321:policy/theirs"][..],
                None,
                "managedPolicyArns: arn:aws:iam::210987654321:policy/theirs",
            ),
            (
                &["arn:aws-cn:iam::aws:policy/ReadOnlyAccess"][..],
                None,
                "managedPolicyArns: arn:aws-cn:iam::aws:policy/ReadOnlyAccess",
            ),
            (
                &[][..],
                Some("arn:aws-us-gov:iam::123456789012:policy/b"),
                "permissionsBoundary: arn:aws-us-gov",
            ),
        ] {
            let Err(Error::InvalidSpec(message)) = check_policy_arns(&spec(arns, boundary), prefix)
            else {
                panic!("{arns:?} {boundary:?} must be refused");
            };
            assert!(message.contains(named), "{message}");
            assert!(
                message.contains("neither an AWS managed policy"),
                "{message}"
            );
        }
    }

    #[test]
    fn a_converged_role_needs_no_write() {
        let desired = desired();
        assert_eq!(actions(&desired, Some(&converged(&desired))), vec![]);
    }

    #[test]
    fn the_plan_projects_the_status_the_writes_leave() {
        let desired = desired();
        let mut observed = converged(&desired);
        observed.attached.clear();
        let plan = plan(&desired, Some(&observed));
        assert_eq!(plan.actions.len(), 1);
        assert_eq!(
            plan.status.arn.as_deref(),
            Some("arn:aws:iam::123456789012:role/web")
        );
        assert_eq!(plan.status.role_id.as_deref(), Some("AROA"));
        // What the attach leaves, not what IAM had before it.
        assert_eq!(
            plan.status.attached_policy_arns,
            vec!["arn:aws:iam::123456789012:policy/a".to_string()]
        );
        assert!(plan.readiness.ready);
        // A role still to be created has its ARN from CreateRole.
        assert_eq!(super::plan(&desired, None).status.arn, None);
    }

    #[test]
    fn a_changed_trust_policy_is_updated() {
        let desired = desired();
        let mut observed = converged(&desired);
        observed.role.assume_role_policy =
            equivalence::to_iam_json(&service_trust_policy(&["lambda.amazonaws.com".into()]));
        assert_eq!(
            actions(&desired, Some(&observed)),
            vec![RoleAction::UpdateTrustPolicy]
        );
    }

    #[test]
    fn description_and_session_duration_change_in_one_update() {
        let desired = desired();
        let mut observed = converged(&desired);
        observed.role.max_session_duration = 7200;
        assert_eq!(
            actions(&desired, Some(&observed)),
            vec![RoleAction::UpdateRole {
                description: "web fleet".into(),
                max_session_duration: 3600
            }]
        );
    }

    #[test]
    fn permissions_boundary_is_set_and_removed() {
        let mut desired = desired();
        let observed = converged(&desired);
        desired.permissions_boundary = Some("arn:aws:iam::aws:policy/PowerUserAccess".into());
        assert_eq!(
            actions(&desired, Some(&observed)),
            vec![RoleAction::PutPermissionsBoundary {
                arn: "arn:aws:iam::aws:policy/PowerUserAccess".into()
            }]
        );
        let mut bounded = converged(&desired);
        bounded.role.permissions_boundary = desired.permissions_boundary.take();
        assert_eq!(
            actions(&desired, Some(&bounded)),
            vec![RoleAction::DeletePermissionsBoundary]
        );
    }

    #[test]
    fn only_the_difference_in_managed_policies_is_attached_and_detached() {
        let mut desired = desired();
        let observed = converged(&desired);
        desired.managed_policy_arns = ["arn:aws:iam::aws:policy/ReadOnlyAccess".to_string()].into();
        assert_eq!(
            actions(&desired, Some(&observed)),
            vec![
                RoleAction::AttachPolicy {
                    arn: "arn:aws:iam::aws:policy/ReadOnlyAccess".into()
                },
                RoleAction::DetachPolicy {
                    arn: "arn:aws:iam::123456789012:policy/a".into()
                },
            ]
        );
    }

    #[test]
    fn only_changed_or_removed_inline_policies_are_written() {
        let mut desired = desired();
        let observed = converged(&desired);
        desired
            .inline_policies
            .insert("logs".into(), inline("logs:CreateLogStream"));
        desired
            .inline_policies
            .insert("new".into(), inline("s3:ListBucket"));
        let mut observed_extra = observed.clone();
        observed_extra
            .inline
            .insert("stale".into(), inline("ec2:*").1);
        assert_eq!(
            actions(&desired, Some(&observed_extra)),
            vec![
                RoleAction::PutInlinePolicy {
                    name: "logs".into()
                },
                RoleAction::PutInlinePolicy { name: "new".into() },
                RoleAction::DeleteInlinePolicy {
                    name: "stale".into()
                },
            ]
        );
    }

    #[test]
    fn adopting_adds_the_owner_tag() {
        let desired = desired();
        let mut observed = converged(&desired);
        observed.role.tags.clear();
        assert_eq!(
            actions(&desired, Some(&observed)),
            vec![RoleAction::Tag {
                tags: desired.tags.clone()
            }]
        );
    }

    #[test]
    fn trusted_services_expand_to_a_service_trust_policy() {
        let document = service_trust_policy(&["ec2.amazonaws.com".into()]);
        let json: serde_json::Value =
            serde_json::from_str(&equivalence::to_iam_json(&document)).unwrap();
        assert_eq!(
            json["Statement"][0]["Principal"]["Service"][0],
            "ec2.amazonaws.com"
        );
        assert_eq!(json["Statement"][0]["Action"], "sts:AssumeRole");
    }
}
