//! `InstanceProfile`: observe the profile and the role it holds, plan the difference, apply it.

use kube::{Resource, ResourceExt};

use super::stores::Stores;
use super::tags::{Tags, desired_tags, tag_changes};
use super::{Managed, claim_existing, is_ready, left_to_its_owner, references};
use crate::api::{DeletionPolicy, InstanceProfile, InstanceProfileStatus};
use crate::aws::iam::ObservedInstanceProfile;
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

pub type Plan = super::Plan<ProfileAction, InstanceProfileStatus>;

/// Pure: the writes, and the status they leave (a profile still to be created has its ARN and
/// id from CreateInstanceProfile).
pub fn plan(desired: &Desired, observed: Option<&ObservedInstanceProfile>) -> Plan {
    let status = InstanceProfileStatus {
        arn: observed.map(|profile| profile.arn.clone()),
        instance_profile_id: observed.map(|profile| profile.instance_profile_id.clone()),
        role_name: Some(desired.role.clone()),
        ..Default::default()
    };
    Plan::available(
        actions(desired, observed),
        status,
        format!("instance profile holds role {}", desired.role),
    )
}

fn actions(desired: &Desired, observed: Option<&ObservedInstanceProfile>) -> Vec<ProfileAction> {
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
    type Desired = Desired;
    type Observed = Option<ObservedInstanceProfile>;
    type Action = ProfileAction;

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

    fn desired(&self, ctx: &Context, rules: &Rules) -> Result<Desired, Error> {
        Ok(Desired {
            name: profile_name(self),
            path: rules.check_path(self.spec.path.as_deref())?,
            role: resolve_role(self, ctx)?,
            tags: desired_tags(&self.spec.tags, &ctx.owner_tag_value(self)),
        })
    }

    async fn observe(
        &self,
        ctx: &Context,
        rules: &Rules,
        desired: &Desired,
    ) -> Result<Option<ObservedInstanceProfile>, Error> {
        let observed = ctx.iam.get_instance_profile(&desired.name).await?;
        if let Some(observed) = &observed {
            let what = format!("instance profile {}", desired.name);
            claim_existing(
                self,
                rules,
                AwsKind::InstanceProfile,
                &desired.name,
                &observed.tags,
                &ctx.owner_tag_value(self),
                &what,
            )?;
            rules.check_arn_path(&observed.arn, &what)?;
        }
        Ok(observed)
    }

    fn plan(&self, desired: &Desired, observed: &Option<ObservedInstanceProfile>) -> Plan {
        plan(desired, observed.as_ref())
    }

    async fn apply(
        &self,
        ctx: &Context,
        desired: &Desired,
        action: &ProfileAction,
        status: &mut InstanceProfileStatus,
    ) -> Result<String, Error> {
        let iam = &ctx.iam;
        let name = desired.name.as_str();
        Ok(match action {
            ProfileAction::Create => {
                let created = iam
                    .create_instance_profile(name, &desired.path, &desired.tags)
                    .await?;
                status.instance_profile_id = Some(created.instance_profile_id);
                let note = format!("created instance profile {}", created.arn);
                status.arn = Some(created.arn);
                note
            }
            ProfileAction::RemoveRole { role } => {
                iam.remove_role_from_instance_profile(name, role).await?;
                format!("removed role {role}")
            }
            ProfileAction::AddRole { role } => {
                iam.add_role_to_instance_profile(name, role).await?;
                format!("added role {role}")
            }
            ProfileAction::Tag { tags } => {
                iam.tag_instance_profile(name, tags).await?;
                format!(
                    "set tags {}",
                    tags.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            }
            ProfileAction::Untag { keys } => {
                iam.untag_instance_profile(name, keys).await?;
                format!("removed tags {}", keys.join(", "))
            }
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
            actions(&desired("web"), None),
            vec![
                ProfileAction::Create,
                ProfileAction::AddRole { role: "web".into() }
            ]
        );
    }

    #[test]
    fn a_converged_profile_needs_no_write() {
        let desired = desired("web");
        assert_eq!(
            actions(&desired, Some(&observed(&["web"], &desired))),
            vec![]
        );
    }

    #[test]
    fn a_changed_role_is_swapped_old_out_first() {
        let desired = desired("new");
        assert_eq!(
            actions(&desired, Some(&observed(&["old"], &desired))),
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
            actions(&desired, Some(&observed(&[], &desired))),
            vec![ProfileAction::AddRole { role: "web".into() }]
        );
    }

    #[test]
    fn a_swap_projects_the_new_role_and_keeps_the_profile_id() {
        let desired = desired("new");
        let plan = plan(&desired, Some(&observed(&["old"], &desired)));
        assert_eq!(plan.status.role_name.as_deref(), Some("new"));
        assert_eq!(plan.status.instance_profile_id.as_deref(), Some("AIPA"));
        assert_eq!(plan.readiness.message, "instance profile holds role new");
    }
}
