//! `InstanceProfile`: observe the profile and the role it holds, plan the difference, apply it.

use kube::{Resource, ResourceExt};

use super::stores::Stores;
use super::tags::{Tags, desired_tags, tag_changes};
use super::{
    Converged, Managed, claim_existing, is_ready, left_to_its_owner, log_planned, references,
};
use crate::api::{DeletionPolicy, InstanceProfile, InstanceProfileStatus};
use crate::aws::iam::ObservedInstanceProfile;
use crate::conditions::Readiness;
use crate::context::Context;
use crate::error::Error;
use crate::tenancy::{AwsKind, Rules};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    pub name: String,
    pub path: String,
    pub role: String,
    pub tags: Tags,
}

/// Every write the InstanceProfile reconciler can make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProfileAction {
    Create,
    RemoveRole { role: String },
    AddRole { role: String },
    Tag { tags: Tags },
    Untag { keys: Vec<String> },
}

pub fn plan(desired: &Desired, observed: Option<&ObservedInstanceProfile>) -> Vec<ProfileAction> {
    let Some(observed) = observed else {
        return vec![
            ProfileAction::Create,
            ProfileAction::AddRole {
                role: desired.role.clone(),
            },
        ];
    };
    let mut actions = Vec::new();
    // A profile holds one role: the old one must leave before the new one can enter.
    for role in observed.roles.iter().filter(|role| **role != desired.role) {
        actions.push(ProfileAction::RemoveRole { role: role.clone() });
    }
    if !observed.roles.contains(&desired.role) {
        actions.push(ProfileAction::AddRole {
            role: desired.role.clone(),
        });
    }
    let (set, remove) = tag_changes(&desired.tags, &observed.tags);
    if !set.is_empty() {
        actions.push(ProfileAction::Tag { tags: set });
    }
    if !remove.is_empty() {
        actions.push(ProfileAction::Untag { keys: remove });
    }
    actions
}

/// The IAM name of the role the profile should hold, once a referenced IamRole is Ready
/// (read from the store; the wiring wakes this profile when the role changes).
fn resolve_role(profile: &InstanceProfile, ctx: &Context) -> Result<String, Error> {
    if let Some(name) = &profile.spec.role_name {
        return Ok(name.clone());
    }
    let Some(reference) = &profile.spec.role_ref else {
        return Err(Error::InvalidSpec(
            "exactly one of roleRef and roleName must be set".into(),
        ));
    };
    let namespace = profile.namespace().unwrap_or_default();
    let name = &reference.name;
    let Some(role) = ctx.stores.roles.get(&namespace, name) else {
        return Err(Error::DependencyNotReady(format!(
            "IamRole {name} does not exist in namespace {namespace}"
        )));
    };
    if role.meta().deletion_timestamp.is_some() {
        return Err(Error::DependencyNotReady(format!(
            "IamRole {name} is being deleted"
        )));
    }
    let ready = role
        .status
        .as_ref()
        .is_some_and(|status| is_ready(&status.common, role.meta().generation));
    if !ready {
        return Err(Error::DependencyNotReady(format!(
            "IamRole {name} is not Ready yet"
        )));
    }
    Ok(role.spec.name.clone().unwrap_or_else(|| role.name_any()))
}

/// The IAM name of the profile: `spec.name`, or the object's name.
pub fn profile_name(profile: &InstanceProfile) -> String {
    profile
        .spec
        .name
        .clone()
        .unwrap_or_else(|| profile.name_any())
}

impl Managed for InstanceProfile {
    type Status = InstanceProfileStatus;

    fn status_mut(status: &mut Self::Status) -> &mut crate::api::CommonStatus {
        &mut status.common
    }

    fn current_status(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }

    fn deletion_policy(&self) -> DeletionPolicy {
        self.spec.deletion_policy
    }

    fn admit(&self, rules: &Rules, ctx: &Context) -> Result<(), Error> {
        rules.check_name(&profile_name(self), "instance profile")?;
        rules.check_path(self.spec.path.as_deref())?;
        if let Some(name) = &self.spec.role_name {
            let namespace = self.namespace().unwrap_or_default();
            let managed_here = ctx
                .stores
                .roles
                .in_namespace(&namespace, |role| &super::role::role_name(role) == name)
                .next()
                .is_some();
            rules.check_role_reference(name, managed_here)?;
        }
        Ok(())
    }

    async fn converge(
        &self,
        ctx: &Context,
        rules: &Rules,
    ) -> Result<Converged<Self::Status>, Error> {
        let owner = ctx.owner_tag_value(self);
        let desired = Desired {
            name: profile_name(self),
            path: rules.check_path(self.spec.path.as_deref())?,
            role: resolve_role(self, ctx)?,
            tags: desired_tags(&self.spec.tags, &owner),
        };
        let observed = ctx.iam.get_instance_profile(&desired.name).await?;
        if let Some(observed) = &observed {
            let what = format!("instance profile {}", desired.name);
            claim_existing(
                self,
                rules,
                AwsKind::InstanceProfile,
                &desired.name,
                &observed.tags,
                &owner,
                &what,
            )?;
            rules.check_arn_path(&observed.arn, &what)?;
        }
        let actions = plan(&desired, observed.as_ref());
        let mut state = observed;
        if ctx.settings.dry_run {
            log_planned(
                ctx,
                self,
                actions.iter().map(|action| format!("{action:?}")),
            );
        } else {
            for action in &actions {
                state = Some(self.apply(ctx, &desired, state, action).await?);
            }
        }
        let status = InstanceProfileStatus {
            common: Default::default(),
            arn: state.as_ref().map(|profile| profile.arn.clone()),
            instance_profile_id: state
                .as_ref()
                .map(|profile| profile.instance_profile_id.clone()),
            role_name: state
                .as_ref()
                .and_then(|profile| profile.roles.first().cloned()),
        };
        Ok(Converged {
            status,
            readiness: Readiness::available(format!(
                "instance profile holds role {}",
                desired.role
            )),
            changes: actions.len(),
            retry_soon: false,
        })
    }

    fn holders(&self, stores: &Stores) -> Vec<String> {
        references::holders(&stores.bindings, self)
    }

    async fn cleanup(&self, ctx: &Context) -> Result<(), Error> {
        let owner = ctx.owner_tag_value(self);
        let name = profile_name(self);
        let Some(profile) = ctx.iam.get_instance_profile(&name).await? else {
            return Ok(());
        };
        if left_to_its_owner(
            ctx,
            self,
            &profile.tags,
            &owner,
            &format!("instance profile {name}"),
        )
        .await
        {
            return Ok(());
        }
        for role in &profile.roles {
            ctx.iam
                .remove_role_from_instance_profile(&name, role)
                .await?;
        }
        ctx.iam.delete_instance_profile(&name).await?;
        ctx.event(
            self,
            false,
            "Deleted",
            "Delete",
            format!("deleted instance profile {}", profile.arn),
        )
        .await;
        Ok(())
    }
}

impl InstanceProfile {
    async fn apply(
        &self,
        ctx: &Context,
        desired: &Desired,
        state: Option<ObservedInstanceProfile>,
        action: &ProfileAction,
    ) -> Result<ObservedInstanceProfile, Error> {
        let iam = &ctx.iam;
        let name = desired.name.as_str();
        let (state, note) = match (action, state) {
            (ProfileAction::Create, _) => {
                let created = iam
                    .create_instance_profile(name, &desired.path, &desired.tags)
                    .await?;
                let note = format!("created instance profile {}", created.arn);
                (created, note)
            }
            (ProfileAction::RemoveRole { role }, Some(mut state)) => {
                iam.remove_role_from_instance_profile(name, role).await?;
                state.roles.retain(|held| held != role);
                (state, format!("removed role {role}"))
            }
            (ProfileAction::AddRole { role }, Some(mut state)) => {
                iam.add_role_to_instance_profile(name, role).await?;
                state.roles.push(role.clone());
                (state, format!("added role {role}"))
            }
            (ProfileAction::Tag { tags }, Some(mut state)) => {
                iam.tag_instance_profile(name, tags).await?;
                state.tags.extend(tags.clone());
                (
                    state,
                    format!(
                        "set tags {}",
                        tags.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                )
            }
            (ProfileAction::Untag { keys }, Some(mut state)) => {
                iam.untag_instance_profile(name, keys).await?;
                state.tags.retain(|key, _| !keys.contains(key));
                (state, format!("removed tags {}", keys.join(", ")))
            }
            (action, None) => unreachable!("plan only yields {action:?} for an existing profile"),
        };
        ctx.event(
            self,
            false,
            &super::action_reason(action),
            "Reconcile",
            note,
        )
        .await;
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conditions::OWNER_TAG;

    fn desired(role: &str) -> Desired {
        Desired {
            name: "web".into(),
            path: "/".into(),
            role: role.into(),
            tags: [(OWNER_TAG.to_string(), "c/ns/web".to_string())].into(),
        }
    }

    fn observed(roles: &[&str], desired: &Desired) -> ObservedInstanceProfile {
        ObservedInstanceProfile {
            arn: "arn:aws:iam::123456789012:instance-profile/web".into(),
            instance_profile_id: "AIPA".into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            tags: desired.tags.clone(),
        }
    }

    #[test]
    fn a_missing_profile_is_created_with_its_role() {
        assert_eq!(
            plan(&desired("web"), None),
            vec![
                ProfileAction::Create,
                ProfileAction::AddRole { role: "web".into() }
            ]
        );
    }

    #[test]
    fn a_converged_profile_needs_no_write() {
        let desired = desired("web");
        assert_eq!(plan(&desired, Some(&observed(&["web"], &desired))), vec![]);
    }

    #[test]
    fn a_changed_role_is_swapped_old_out_first() {
        let desired = desired("new");
        assert_eq!(
            plan(&desired, Some(&observed(&["old"], &desired))),
            vec![
                ProfileAction::RemoveRole { role: "old".into() },
                ProfileAction::AddRole { role: "new".into() }
            ]
        );
    }

    #[test]
    fn an_empty_profile_gets_its_role_back() {
        let desired = desired("web");
        assert_eq!(
            plan(&desired, Some(&observed(&[], &desired))),
            vec![ProfileAction::AddRole { role: "web".into() }]
        );
    }
}
