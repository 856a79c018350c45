//! `IamGroup`: observe the group with its members and policies, plan the difference, apply it.
//!
//! IAM groups carry no tags, so rolecall cannot mark one as its own in AWS. A group is this
//! object's when its id is the one status records, or, before any is recorded, when IAM created
//! it no earlier than this object (this object's own create whose answer was lost); any other
//! group of that name is taken over only with the adopt annotation, where the rules allow it.

use std::collections::{BTreeMap, BTreeSet};

use kube::{Resource, ResourceExt};

use super::permissions::permission_changes;
use super::role::{check_attachable, inline_policies, resolve_policy_refs};
use super::{Managed, adopt_requested};
use crate::api::{DeletionPolicy, IamGroup, IamGroupStatus, PolicyDocument};
use crate::aws::iam::groups::ObservedGroup;
use crate::context::Context;
use crate::error::Error;
use crate::tenancy::{AwsKind, Rules};

/// IAM's limit on the combined size of a group's inline policies.
pub const GROUP_INLINE_POLICIES_MAX_CHARS: usize = 5120;

/// The group the spec asks for, with references resolved to ARNs.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub name: String,
    pub path: String,
    pub managed_policy_arns: BTreeSet<String>,
    pub inline_policies: BTreeMap<String, (PolicyDocument, String)>,
}

/// The group as IAM has it.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub group: ObservedGroup,
    pub attached: BTreeSet<String>,
    /// Inline policy name to raw (URL-encoded) document.
    pub inline: BTreeMap<String, String>,
}

/// Every write the IamGroup reconciler can make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupAction {
    Create,
    AttachPolicy { arn: String },
    DetachPolicy { arn: String },
    PutInlinePolicy { name: String },
    DeleteInlinePolicy { name: String },
}

pub type Plan = super::Plan<GroupAction, IamGroupStatus>;

/// Pure: the writes, and the status they leave (a group still to be created has its ARN and id
/// from CreateGroup).
pub fn plan(desired: &Desired, observed: Option<&Observed>) -> Plan {
    let mut actions = Vec::new();
    let none = (BTreeSet::new(), BTreeMap::new());
    let (attached, inline) = match observed {
        Some(observed) => (&observed.attached, &observed.inline),
        None => {
            actions.push(GroupAction::Create);
            (&none.0, &none.1)
        }
    };
    let changes = permission_changes(
        &desired.managed_policy_arns,
        &desired.inline_policies,
        attached,
        inline,
    );
    actions.extend(
        changes
            .attach
            .into_iter()
            .map(|arn| GroupAction::AttachPolicy { arn }),
    );
    actions.extend(
        changes
            .detach
            .into_iter()
            .map(|arn| GroupAction::DetachPolicy { arn }),
    );
    actions.extend(
        changes
            .put
            .into_iter()
            .map(|name| GroupAction::PutInlinePolicy { name }),
    );
    actions.extend(
        changes
            .delete
            .into_iter()
            .map(|name| GroupAction::DeleteInlinePolicy { name }),
    );
    let status = IamGroupStatus {
        arn: observed.map(|observed| observed.group.arn.clone()),
        group_id: observed.map(|observed| observed.group.group_id.clone()),
        members: observed
            .map(|observed| observed.group.members.clone())
            .unwrap_or_default(),
        attached_policy_arns: desired.managed_policy_arns.iter().cloned().collect(),
        ..Default::default()
    };
    let members = status.members.len();
    let message = format!(
        "group matches the spec; {members} member{}",
        if members == 1 { "" } else { "s" }
    );
    Plan::available(actions, status, message)
}

/// The IAM name of the group: `spec.name`, or the object's name.
pub fn group_name(group: &IamGroup) -> String {
    group.spec.name.clone().unwrap_or_else(|| group.name_any())
}

/// Whether an existing group is this object's to manage (see the module's comment).
fn claim(
    group: &IamGroup,
    ctx: &Context,
    rules: &Rules,
    found: &ObservedGroup,
) -> Result<(), Error> {
    let name = group_name(group);
    let what = format!("group {name}");
    rules.check_arn_path(&found.arn, &what)?;
    let recorded = |object: &IamGroup| {
        object
            .status
            .as_ref()
            .and_then(|status| status.group_id.clone())
    };
    if let Some(other) = ctx.stores.groups.all().find(|other| {
        other.uid() != group.uid() && recorded(other).as_ref() == Some(&found.group_id)
    }) {
        return Err(Error::Conflict(format!(
            "{what} belongs to IamGroup {}/{}",
            other.namespace().unwrap_or_default(),
            other.name_any()
        )));
    }
    let created_by_this_object = group
        .meta()
        .creation_timestamp
        .as_ref()
        .is_some_and(|created| found.created >= created.0.as_second());
    match recorded(group) {
        Some(id) if id == found.group_id => return Ok(()),
        None if created_by_this_object => return Ok(()),
        _ => {}
    }
    if adopt_requested(group) {
        return rules.check_adoption(AwsKind::Group, &name, &what);
    }
    Err(Error::Conflict(format!(
        "{what} exists and was not created by this object (IAM groups carry no owner tag); \
         set the annotation rolecall.dev/adopt: \"true\" to manage it where the namespace's rules allow"
    )))
}

impl Managed for IamGroup {
    type Status = IamGroupStatus;
    type Desired = Desired;
    type Observed = Option<Observed>;
    type Action = GroupAction;

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
        inline_policies(
            &self.spec.inline_policies,
            GROUP_INLINE_POLICIES_MAX_CHARS,
            "group",
        )
        .map(drop)
    }

    fn admit(&self, rules: &Rules, ctx: &Context) -> Result<(), Error> {
        rules.check_name(&group_name(self), "group")?;
        rules.check_path(self.spec.path.as_deref())?;
        let (prefix, _) = rules.account(ctx);
        for arn in &self.spec.managed_policy_arns {
            rules.check_managed_policy(arn, &prefix)?;
        }
        for (name, document) in &self.spec.inline_policies {
            rules.check_permissions(document, &format!("inlinePolicies.{name}"))?;
        }
        Ok(())
    }

    fn desired(&self, ctx: &Context, rules: &Rules) -> Result<Desired, Error> {
        let spec = &self.spec;
        check_attachable(&spec.managed_policy_arns, None, &ctx.iam_arn_prefix)?;
        let namespace = self.namespace().unwrap_or_default();
        let mut managed_policy_arns: BTreeSet<String> =
            spec.managed_policy_arns.iter().cloned().collect();
        managed_policy_arns.extend(resolve_policy_refs(&namespace, &spec.policy_refs, ctx)?);
        Ok(Desired {
            name: group_name(self),
            path: rules.check_path(spec.path.as_deref())?,
            managed_policy_arns,
            inline_policies: inline_policies(
                &spec.inline_policies,
                GROUP_INLINE_POLICIES_MAX_CHARS,
                "group",
            )?,
        })
    }

    async fn observe(
        &self,
        ctx: &Context,
        rules: &Rules,
        desired: &Desired,
    ) -> Result<Option<Observed>, Error> {
        let Some(group) = ctx.iam.get_group(&desired.name).await? else {
            return Ok(None);
        };
        claim(self, ctx, rules, &group)?;
        let attached = ctx
            .iam
            .list_attached_group_policies(&desired.name)
            .await?
            .into_iter()
            .collect();
        let inline = ctx.iam.inline_group_policies(&desired.name).await?;
        Ok(Some(Observed {
            group,
            attached,
            inline,
        }))
    }

    fn plan(&self, desired: &Desired, observed: &Option<Observed>) -> Plan {
        plan(desired, observed.as_ref())
    }

    async fn apply(
        &self,
        ctx: &Context,
        desired: &Desired,
        action: &GroupAction,
        status: &mut IamGroupStatus,
    ) -> Result<String, Error> {
        let iam = &ctx.iam;
        let name = desired.name.as_str();
        Ok(match action {
            GroupAction::Create => {
                let group = iam.create_group(name, &desired.path).await?;
                status.group_id = Some(group.group_id);
                let note = format!("created group {}", group.arn);
                status.arn = Some(group.arn);
                note
            }
            GroupAction::AttachPolicy { arn } => {
                iam.attach_group_policy(name, arn).await?;
                format!("attached {arn}")
            }
            GroupAction::DetachPolicy { arn } => {
                iam.detach_group_policy(name, arn).await?;
                format!("detached {arn}")
            }
            GroupAction::PutInlinePolicy { name: policy_name } => {
                let (_, json) = &desired.inline_policies[policy_name];
                iam.put_group_policy(name, policy_name, json).await?;
                format!("put inline policy {policy_name}")
            }
            GroupAction::DeleteInlinePolicy { name: policy_name } => {
                iam.delete_group_policy(name, policy_name).await?;
                format!("deleted inline policy {policy_name}")
            }
        })
    }

    fn holders(&self, stores: &super::stores::Stores) -> Vec<String> {
        super::references::holders(&stores.users, self)
    }

    async fn cleanup(&self, ctx: &Context) -> Result<(), Error> {
        let name = group_name(self);
        let Some(group) = ctx.iam.get_group(&name).await? else {
            return Ok(());
        };
        let recorded = self.status.as_ref().and_then(|s| s.group_id.as_deref());
        if recorded != Some(group.group_id.as_str()) {
            let note = format!(
                "left group {name} in AWS: it is not the group this object made or adopted"
            );
            ctx.event(self, false, "Retained", "Delete", note).await;
            return Ok(());
        }
        // IAM refuses DeleteGroup while the group has members or policies.
        for user in &group.members {
            ctx.iam.remove_user_from_group(&name, user).await?;
            let note = format!("removed user {user} from group {name}");
            ctx.event(self, false, "RemovedMember", "Delete", note)
                .await;
        }
        for arn in ctx.iam.list_attached_group_policies(&name).await? {
            ctx.iam.detach_group_policy(&name, &arn).await?;
        }
        for policy_name in ctx.iam.inline_group_policies(&name).await?.keys() {
            ctx.iam.delete_group_policy(&name, policy_name).await?;
        }
        ctx.iam.delete_group(&name).await?;
        let note = format!("deleted group {}", group.arn);
        ctx.event(self, false, "Deleted", "Delete", note).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(action: &str) -> (PolicyDocument, String) {
        let document: PolicyDocument = serde_json::from_value(serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{ "Effect": "Allow", "Action": action, "Resource": "*" }],
        }))
        .unwrap();
        let json = crate::equivalence::to_iam_json(&document);
        (document, json)
    }

    fn desired() -> Desired {
        Desired {
            name: "admin".into(),
            path: "/".into(),
            managed_policy_arns: ["arn:aws:iam::aws:policy/AdministratorAccess".to_string()].into(),
            inline_policies: [("mfa".to_string(), document("iam:ListMFADevices"))].into(),
        }
    }

    fn converged(desired: &Desired) -> Observed {
        Observed {
            group: ObservedGroup {
                arn: "arn:aws:iam::123456789012:group/admin".into(),
                group_id: "AGPA".into(),
                path: "/".into(),
                created: 0,
                members: vec!["administrator".into()],
            },
            attached: desired.managed_policy_arns.clone(),
            inline: desired
                .inline_policies
                .iter()
                .map(|(name, (_, json))| (name.clone(), json.clone()))
                .collect(),
        }
    }

    #[test]
    fn a_missing_group_is_created_then_given_its_policies() {
        let plan = plan(&desired(), None);
        assert_eq!(
            plan.actions,
            vec![
                GroupAction::Create,
                GroupAction::AttachPolicy {
                    arn: "arn:aws:iam::aws:policy/AdministratorAccess".into()
                },
                GroupAction::PutInlinePolicy { name: "mfa".into() },
            ]
        );
        assert_eq!(plan.status.group_id, None);
    }

    #[test]
    fn a_converged_group_needs_no_write_and_reports_its_members() {
        let desired = desired();
        let plan = plan(&desired, Some(&converged(&desired)));
        assert!(plan.actions.is_empty(), "{:?}", plan.actions);
        assert_eq!(plan.status.members, vec!["administrator".to_string()]);
        assert_eq!(plan.status.group_id.as_deref(), Some("AGPA"));
        assert_eq!(plan.readiness.message, "group matches the spec; 1 member");
    }

    #[test]
    fn drifted_policies_are_put_back_and_strays_removed() {
        let desired = desired();
        let mut observed = converged(&desired);
        observed.attached = ["arn:aws:iam::aws:policy/ReadOnlyAccess".to_string()].into();
        observed.inline.insert("mfa".into(), document("s3:*").1);
        observed.inline.insert("stray".into(), document("ec2:*").1);
        assert_eq!(
            plan(&desired, Some(&observed)).actions,
            vec![
                GroupAction::AttachPolicy {
                    arn: "arn:aws:iam::aws:policy/AdministratorAccess".into()
                },
                GroupAction::DetachPolicy {
                    arn: "arn:aws:iam::aws:policy/ReadOnlyAccess".into()
                },
                GroupAction::PutInlinePolicy { name: "mfa".into() },
                GroupAction::DeleteInlinePolicy {
                    name: "stray".into()
                },
            ]
        );
    }
}
