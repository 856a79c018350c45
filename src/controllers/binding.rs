//! `Ec2InstanceBinding`: find the instances the spec names or selects, associate each with the
//! instance profile, and report per-instance state.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kube::api::Api;
use kube::{Resource, ResourceExt};

use super::{Converged, Managed, is_ready, log_planned};
use crate::api::binding::InstanceBindingState;
use crate::api::{
    DeletionPolicy, Ec2InstanceBinding, Ec2InstanceBindingSpec, Ec2InstanceBindingStatus,
    InstanceProfile,
};
use crate::aws::ec2::{Association, Instance};
use crate::conditions::{Readiness, reason};
use crate::context::Context;
use crate::error::Error;

/// How soon to look again while EC2 is still associating.
pub const ASSOCIATING_RETRY: Duration = Duration::from_secs(5);

/// Every write the Ec2InstanceBinding reconciler can make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindingAction {
    Associate {
        instance_id: String,
    },
    Replace {
        instance_id: String,
        association_id: String,
    },
}

/// The planned writes and the per-instance state to report once they are made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<BindingAction>,
    pub instances: Vec<InstanceBindingState>,
    /// Instance id to the binding that also claims it for another profile.
    pub conflicts: BTreeMap<String, String>,
}

/// EC2 filter wildcards: `*` any run of characters, `?` one character.
pub fn wildcard_match(pattern: &str, value: &str) -> bool {
    fn matches(pattern: &[char], value: &[char]) -> bool {
        match (pattern.first(), value.first()) {
            (None, None) => true,
            (Some('*'), _) => {
                matches(&pattern[1..], value)
                    || (!value.is_empty() && matches(pattern, &value[1..]))
            }
            (Some('?'), Some(_)) => matches(&pattern[1..], &value[1..]),
            (Some(p), Some(v)) if p == v => matches(&pattern[1..], &value[1..]),
            _ => false,
        }
    }
    let pattern: Vec<char> = pattern.chars().collect();
    let value: Vec<char> = value.chars().collect();
    matches(&pattern, &value)
}

/// Whether a binding's spec names or selects the instance.
pub fn selects(spec: &Ec2InstanceBindingSpec, instance: &Instance) -> bool {
    spec.instance_ids.contains(&instance.instance_id)
        || spec.instance_selector.as_ref().is_some_and(|selector| {
            selector.match_tags.iter().all(|(key, pattern)| {
                instance
                    .tags
                    .get(key)
                    .is_some_and(|value| wildcard_match(pattern, value))
            })
        })
}

/// Pure: what to do for each matched instance. `claims` maps an instance to another binding
/// wanting it for a different profile; such instances are left alone, never replaced.
pub fn plan(
    profile_arn: &str,
    instances: &[Instance],
    associations: &[Association],
    claims: &BTreeMap<String, String>,
) -> Plan {
    let by_instance: BTreeMap<&str, &Association> = associations
        .iter()
        .map(|association| (association.instance_id.as_str(), association))
        .collect();
    let mut plan = Plan {
        actions: vec![],
        instances: vec![],
        conflicts: BTreeMap::new(),
    };
    for instance in instances {
        let id = instance.instance_id.clone();
        let current = by_instance.get(id.as_str());
        if let Some(other) = claims.get(&id) {
            plan.conflicts.insert(id.clone(), other.clone());
            plan.instances.push(InstanceBindingState {
                instance_id: id,
                association_id: current.map(|a| a.association_id.clone()),
                state: "conflict".into(),
                message: Some(format!(
                    "also claimed by Ec2InstanceBinding {other} for another instance profile"
                )),
            });
            continue;
        }
        match current {
            Some(association) if association.profile_arn == profile_arn => {
                plan.instances.push(InstanceBindingState {
                    instance_id: id,
                    association_id: Some(association.association_id.clone()),
                    state: association.state.clone(),
                    message: None,
                });
            }
            Some(association) => {
                plan.actions.push(BindingAction::Replace {
                    instance_id: id.clone(),
                    association_id: association.association_id.clone(),
                });
                plan.instances.push(InstanceBindingState {
                    instance_id: id,
                    association_id: Some(association.association_id.clone()),
                    state: "replacing".into(),
                    message: Some(format!("associated with {}", association.profile_arn)),
                });
            }
            None => {
                plan.actions.push(BindingAction::Associate {
                    instance_id: id.clone(),
                });
                plan.instances.push(InstanceBindingState {
                    instance_id: id,
                    association_id: None,
                    state: "associating".into(),
                    message: None,
                });
            }
        }
    }
    plan
}

/// The ARN of the instance profile the binding names, once it exists (and is Ready, for a
/// reference).
async fn resolve_profile(binding: &Ec2InstanceBinding, ctx: &Context) -> Result<String, Error> {
    if let Some(name) = &binding.spec.instance_profile_name {
        return match ctx.iam.get_instance_profile(name).await? {
            Some(profile) => Ok(profile.arn),
            None => Err(Error::Aws(crate::aws::AwsError {
                operation: "GetInstanceProfile",
                class: crate::aws::ErrorClass::NotFound,
                code: Some("NoSuchEntity".into()),
                message: format!("instance profile {name} does not exist"),
            })),
        };
    }
    let Some(reference) = &binding.spec.instance_profile_ref else {
        return Err(Error::InvalidSpec(
            "exactly one of instanceProfileRef and instanceProfileName must be set".into(),
        ));
    };
    let namespace = binding.namespace().unwrap_or_default();
    let api: Api<InstanceProfile> = Api::namespaced(ctx.client.clone(), &namespace);
    let name = &reference.name;
    let Some(profile) = api.get_opt(name).await? else {
        return Err(Error::DependencyNotReady(format!(
            "InstanceProfile {name} does not exist in namespace {namespace}"
        )));
    };
    let ready = profile
        .status
        .as_ref()
        .is_some_and(|status| is_ready(&status.common, profile.meta().generation));
    match profile
        .status
        .as_ref()
        .and_then(|status| status.arn.clone())
    {
        Some(arn) if ready && profile.meta().deletion_timestamp.is_none() => Ok(arn),
        _ => Err(Error::DependencyNotReady(format!(
            "InstanceProfile {name} is not Ready yet"
        ))),
    }
}

/// Instances named or selected by the spec: one DescribeInstances per source (ids, tags).
async fn matched_instances(
    spec: &Ec2InstanceBindingSpec,
    ctx: &Context,
) -> Result<Vec<Instance>, Error> {
    let mut instances = Vec::new();
    if !spec.instance_ids.is_empty() {
        instances.extend(
            ctx.ec2
                .describe_instances(vec![("instance-id".into(), spec.instance_ids.clone())])
                .await?,
        );
    }
    if let Some(selector) = &spec.instance_selector {
        let filters = selector
            .match_tags
            .iter()
            .map(|(key, value)| (format!("tag:{key}"), vec![value.clone()]))
            .collect();
        instances.extend(ctx.ec2.describe_instances(filters).await?);
    }
    instances.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
    instances.dedup_by(|a, b| a.instance_id == b.instance_id);
    Ok(instances)
}

/// Other bindings that select one of these instances for a different profile.
fn claims(
    binding: &Ec2InstanceBinding,
    profile_arn: &str,
    instances: &[Instance],
    ctx: &Context,
) -> BTreeMap<String, String> {
    let Some(store) = ctx.bindings.get() else {
        return BTreeMap::new();
    };
    let mut claims = BTreeMap::new();
    for other in store.state() {
        if other.uid() == binding.uid() || other.meta().deletion_timestamp.is_some() {
            continue;
        }
        let other_arn = other
            .status
            .as_ref()
            .and_then(|status| status.instance_profile_arn.as_deref());
        let same_profile = match other_arn {
            Some(arn) => arn == profile_arn,
            None => {
                other.namespace() == binding.namespace()
                    && other.spec.instance_profile_ref == binding.spec.instance_profile_ref
                    && other.spec.instance_profile_name == binding.spec.instance_profile_name
            }
        };
        if same_profile {
            continue;
        }
        for instance in instances
            .iter()
            .filter(|instance| selects(&other.spec, instance))
        {
            claims.insert(
                instance.instance_id.clone(),
                format!(
                    "{}/{}",
                    other.namespace().unwrap_or_default(),
                    other.name_any()
                ),
            );
        }
    }
    claims
}

/// Refuses a selector whose every value is only `*`: it would swap the profile of every
/// instance carrying those keys. Checked here because CEL's cost estimate for map lookups with
/// unbounded keys exceeds the API server's budget.
pub fn check_selector(spec: &Ec2InstanceBindingSpec) -> Result<(), Error> {
    let Some(selector) = &spec.instance_selector else {
        return Ok(());
    };
    let wildcard_only = |value: &String| !value.is_empty() && value.chars().all(|c| c == '*');
    if selector.match_tags.values().all(wildcard_only) {
        return Err(Error::InvalidSpec(
            "instanceSelector.matchTags: at least one value must be more than the wildcard *; \
             a selector of wildcards alone matches every instance with those tag keys"
                .into(),
        ));
    }
    Ok(())
}

impl Managed for Ec2InstanceBinding {
    type Status = Ec2InstanceBindingStatus;

    fn status_mut(status: &mut Self::Status) -> &mut crate::api::CommonStatus {
        &mut status.common
    }

    fn current_status(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }

    fn deletion_policy(&self) -> DeletionPolicy {
        self.spec.deletion_policy
    }

    async fn converge(&self, ctx: &Context) -> Result<Converged<Self::Status>, Error> {
        check_selector(&self.spec)?;
        let profile_arn = resolve_profile(self, ctx).await?;
        let instances = matched_instances(&self.spec, ctx).await?;
        let ids: Vec<String> = instances
            .iter()
            .map(|instance| instance.instance_id.clone())
            .collect();
        let associations = if ids.is_empty() {
            vec![]
        } else {
            ctx.ec2.associations(&ids).await?
        };
        let claims = claims(self, &profile_arn, &instances, ctx);
        let mut plan = plan(&profile_arn, &instances, &associations, &claims);
        if ctx.settings.dry_run {
            log_planned(
                ctx,
                self,
                plan.actions.iter().map(|action| format!("{action:?}")),
            );
        } else {
            for action in &plan.actions {
                let (instance_id, result) = match action {
                    BindingAction::Associate { instance_id } => (
                        instance_id,
                        ctx.ec2.associate(instance_id, &profile_arn).await?,
                    ),
                    BindingAction::Replace {
                        instance_id,
                        association_id,
                    } => (
                        instance_id,
                        ctx.ec2
                            .replace(association_id, instance_id, &profile_arn)
                            .await?,
                    ),
                };
                ctx.event(
                    self,
                    false,
                    "Associated",
                    "Reconcile",
                    format!("associated {instance_id} with {profile_arn}"),
                )
                .await;
                if let Some(state) = plan
                    .instances
                    .iter_mut()
                    .find(|state| &state.instance_id == instance_id)
                {
                    state.association_id = Some(result.association_id);
                    state.state = result.state;
                    state.message = None;
                }
            }
        }
        let bound = plan
            .instances
            .iter()
            .filter(|state| state.state == "associated")
            .count();
        let matched = plan.instances.len();
        let readiness = if !plan.conflicts.is_empty() {
            let described: Vec<String> = plan
                .conflicts
                .iter()
                .map(|(instance, other)| format!("{instance} (also claimed by {other})"))
                .collect();
            let message = format!(
                "instances claimed by another binding for a different instance profile are left alone: {}",
                described.join(", ")
            );
            ctx.event(self, true, reason::CONFLICT, "Reconcile", message.clone())
                .await;
            Readiness::not_ready(reason::CONFLICT, message)
        } else if bound < matched {
            Readiness::not_ready(
                reason::RECONCILING,
                format!("{bound} of {matched} instances associated"),
            )
        } else {
            Readiness::available(format!(
                "{bound} of {matched} instances associated with {profile_arn}"
            ))
        };
        let retry_soon = bound < matched && plan.conflicts.is_empty();
        let status = Ec2InstanceBindingStatus {
            common: Default::default(),
            matched: matched as i32,
            bound: bound as i32,
            instance_profile_arn: Some(profile_arn),
            instances: plan.instances,
        };
        Ok(Converged {
            status,
            readiness,
            changes: plan.actions.len(),
            retry_soon,
        })
    }

    async fn cleanup(&self, ctx: &Context) -> Result<(), Error> {
        let Some(profile_arn) = self
            .status
            .as_ref()
            .and_then(|status| status.instance_profile_arn.clone())
        else {
            return Ok(());
        };
        // Instances bound before a crash may be missing from status: look at both.
        let mut ids: BTreeSet<String> = self
            .status
            .iter()
            .flat_map(|status| status.instances.iter().map(|i| i.instance_id.clone()))
            .collect();
        ids.extend(
            matched_instances(&self.spec, ctx)
                .await?
                .into_iter()
                .map(|instance| instance.instance_id),
        );
        let ids: Vec<String> = ids.into_iter().collect();
        if ids.is_empty() {
            return Ok(());
        }
        for association in ctx.ec2.associations(&ids).await? {
            // Only associations still pointing at our profile are ours to remove.
            if association.profile_arn == profile_arn {
                ctx.ec2.disassociate(&association.association_id).await?;
                ctx.event(
                    self,
                    false,
                    "Disassociated",
                    "Delete",
                    format!(
                        "disassociated {} from {profile_arn}",
                        association.instance_id
                    ),
                )
                .await;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::binding::InstanceSelector;

    const PROFILE: &str = "arn:aws:iam::123456789012:instance-profile/web";

    #[test]
    fn a_selector_of_wildcards_alone_is_refused() {
        let spec = |tags: &[(&str, &str)]| Ec2InstanceBindingSpec {
            instance_profile_ref: None,
            instance_profile_name: Some("web".into()),
            instance_ids: vec![],
            instance_selector: Some(InstanceSelector {
                match_tags: tags
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }),
            deletion_policy: DeletionPolicy::Delete,
        };
        let Err(Error::InvalidSpec(message)) =
            check_selector(&spec(&[("Name", "*"), ("env", "**")]))
        else {
            panic!("a wildcard-only selector must be refused");
        };
        assert!(message.contains("more than the wildcard *"), "{message}");
        assert!(check_selector(&spec(&[("Name", "*"), ("app", "web")])).is_ok());
        assert!(check_selector(&spec(&[("app", "web-?")])).is_ok());
    }

    fn instance(id: &str, tags: &[(&str, &str)]) -> Instance {
        Instance {
            instance_id: id.into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn association(instance: &str, profile: &str) -> Association {
        Association {
            association_id: format!("iip-assoc-{instance}"),
            instance_id: instance.into(),
            profile_arn: profile.into(),
            state: "associated".into(),
        }
    }

    #[test]
    fn wildcards_follow_ec2_filters() {
        assert!(wildcard_match("web", "web"));
        assert!(wildcard_match("web-*", "web-1"));
        assert!(wildcard_match("w?b", "wab"));
        assert!(wildcard_match("*", ""));
        assert!(!wildcard_match("web", "web-1"));
        assert!(!wildcard_match("w?b", "wb"));
    }

    #[test]
    fn selectors_need_every_tag() {
        let spec = Ec2InstanceBindingSpec {
            instance_profile_ref: None,
            instance_profile_name: Some("web".into()),
            instance_ids: vec!["i-00000001".into()],
            instance_selector: Some(InstanceSelector {
                match_tags: [
                    ("app".to_string(), "web".to_string()),
                    ("env".to_string(), "prod*".to_string()),
                ]
                .into(),
            }),
            deletion_policy: DeletionPolicy::Delete,
        };
        assert!(selects(
            &spec,
            &instance("i-00000002", &[("app", "web"), ("env", "production")])
        ));
        assert!(!selects(&spec, &instance("i-00000003", &[("app", "web")])));
        assert!(
            selects(&spec, &instance("i-00000001", &[])),
            "named ids are always selected"
        );
    }

    #[test]
    fn unassociated_instances_are_associated_and_bound_ones_left_alone() {
        let instances = [instance("i-1", &[]), instance("i-2", &[])];
        let plan = plan(
            PROFILE,
            &instances,
            &[association("i-2", PROFILE)],
            &BTreeMap::new(),
        );
        assert_eq!(
            plan.actions,
            vec![BindingAction::Associate {
                instance_id: "i-1".into()
            }]
        );
        assert_eq!(plan.instances[1].state, "associated");
    }

    #[test]
    fn an_instance_with_another_profile_is_replaced() {
        let other = "arn:aws:iam::123456789012:instance-profile/old";
        let plan = plan(
            PROFILE,
            &[instance("i-1", &[])],
            &[association("i-1", other)],
            &BTreeMap::new(),
        );
        assert_eq!(
            plan.actions,
            vec![BindingAction::Replace {
                instance_id: "i-1".into(),
                association_id: "iip-assoc-i-1".into()
            }]
        );
    }

    #[test]
    fn an_instance_claimed_by_another_binding_is_never_replaced() {
        let other = "arn:aws:iam::123456789012:instance-profile/db";
        let claims: BTreeMap<String, String> = [("i-1".to_string(), "ns/db".to_string())].into();
        let plan = plan(
            PROFILE,
            &[instance("i-1", &[])],
            &[association("i-1", other)],
            &claims,
        );
        assert!(plan.actions.is_empty());
        assert_eq!(plan.instances[0].state, "conflict");
        assert_eq!(plan.conflicts["i-1"], "ns/db");
    }

    #[test]
    fn a_converged_binding_needs_no_write() {
        let plan = plan(
            PROFILE,
            &[instance("i-1", &[])],
            &[association("i-1", PROFILE)],
            &BTreeMap::new(),
        );
        assert!(plan.actions.is_empty());
    }
}
