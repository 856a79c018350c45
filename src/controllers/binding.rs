//! `Ec2InstanceBinding`: find the instances the spec names or selects, associate each with the
//! instance profile, and report per-instance state.

use std::collections::{BTreeMap, BTreeSet};

use kube::{Resource, ResourceExt};

use super::{Managed, is_ready};
use crate::api::binding::{CONFLICT_STATE, InstanceBindingState};
use crate::api::{
    DeletionPolicy, Ec2InstanceBinding, Ec2InstanceBindingSpec, Ec2InstanceBindingStatus,
};
use crate::aws::ec2::{Association, Instance};
use crate::conditions::{Readiness, reason};
use crate::context::Context;
use crate::error::Error;
use crate::tenancy::Rules;
pub use crate::wildcard::wildcard_match;

/// Instance ids per DescribeInstances call (as per DescribeIamInstanceProfileAssociations).
pub const INSTANCE_IDS_PER_CALL: usize = 100;

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
    /// The instance left the spec (its id removed, its tags no longer matching): it loses
    /// this binding's profile.
    Disassociate {
        instance_id: String,
        association_id: String,
    },
}

/// Where the profile to associate comes from: a Ready InstanceProfile object (its ARN from
/// its status) or a name looked up in IAM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProfileSource {
    Arn(String),
    Named(String),
}

/// What EC2 and IAM have for the instances this binding names or selects.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    pub profile_arn: String,
    pub instances: Vec<Instance>,
    /// Instances this binding reported bound before.
    pub previously: BTreeSet<String>,
    pub associations: Vec<Association>,
    /// Instance id to another binding that claims it for a different profile.
    pub claims: BTreeMap<String, String>,
    /// Profile ARN to whose it is, for profiles this binding may not replace.
    pub unowned: BTreeMap<String, String>,
}

pub type Plan = super::Plan<BindingAction, Ec2InstanceBindingStatus>;

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

/// Pure: what to do for each matched instance, and for each instance this binding bound
/// before that it no longer matches, with the per-instance state once done. An instance
/// another binding claims for a different profile, or associated with a profile this binding
/// may not replace, is left alone and reported as a conflict.
pub fn plan(observed: &Observed) -> Plan {
    let Observed {
        profile_arn,
        instances,
        previously,
        associations,
        claims,
        unowned,
    } = observed;
    let profile_arn = profile_arn.as_str();
    let by_instance: BTreeMap<&str, &Association> = associations
        .iter()
        .map(|association| (association.instance_id.as_str(), association))
        .collect();
    let mut actions = Vec::new();
    let mut states = Vec::new();
    for instance in instances {
        let id = instance.instance_id.clone();
        let current = by_instance.get(id.as_str());
        let conflict = match (claims.get(&id), current) {
            (Some(other), _) => Some(format!(
                "also claimed by Ec2InstanceBinding {other} for another instance profile"
            )),
            (None, Some(association)) => unowned.get(&association.profile_arn).map(|owner| {
                format!(
                    "associated with {}, {owner}; rolecall will not replace it",
                    association.profile_arn
                )
            }),
            (None, None) => None,
        };
        if let Some(message) = conflict {
            states.push(InstanceBindingState {
                instance_id: id,
                association_id: current.map(|a| a.association_id.clone()),
                state: CONFLICT_STATE.into(),
                message: Some(message),
            });
            continue;
        }
        match current {
            Some(association) if association.profile_arn == profile_arn => {
                states.push(InstanceBindingState {
                    instance_id: id,
                    association_id: Some(association.association_id.clone()),
                    state: association.state.clone(),
                    message: None,
                });
            }
            Some(association) => {
                actions.push(BindingAction::Replace {
                    instance_id: id.clone(),
                    association_id: association.association_id.clone(),
                });
                states.push(InstanceBindingState {
                    instance_id: id,
                    association_id: Some(association.association_id.clone()),
                    state: "replacing".into(),
                    message: Some(format!("associated with {}", association.profile_arn)),
                });
            }
            None => {
                actions.push(BindingAction::Associate {
                    instance_id: id.clone(),
                });
                states.push(InstanceBindingState {
                    instance_id: id,
                    association_id: None,
                    state: "associating".into(),
                    message: None,
                });
            }
        }
    }
    let matched: BTreeSet<&str> = instances.iter().map(|i| i.instance_id.as_str()).collect();
    for id in previously
        .iter()
        .filter(|id| !matched.contains(id.as_str()))
    {
        // Only an association with this binding's profile is ours to remove; one made since by
        // someone else stays.
        if let Some(association) = by_instance
            .get(id.as_str())
            .filter(|association| association.profile_arn == profile_arn)
        {
            actions.push(BindingAction::Disassociate {
                instance_id: id.clone(),
                association_id: association.association_id.clone(),
            });
        }
    }
    let mut status = Ec2InstanceBindingStatus {
        instance_profile_arn: Some(profile_arn.to_owned()),
        instances: states,
        ..Default::default()
    };
    let (readiness, retry_soon) = assess(&mut status);
    Plan {
        actions,
        status,
        readiness,
        retry_soon,
    }
}

/// Counts matched and bound instances into the status and judges readiness from the
/// per-instance states: conflicts first, then an empty fleet, then associations still in
/// progress (looked at again soon).
fn assess(status: &mut Ec2InstanceBindingStatus) -> (Readiness, bool) {
    let matched = status.instances.len();
    let bound = status
        .instances
        .iter()
        .filter(|state| state.state == "associated")
        .count();
    status.matched = matched as i32;
    status.bound = bound as i32;
    let profile_arn = status.instance_profile_arn.clone().unwrap_or_default();
    let conflicts: Vec<String> = status
        .instances
        .iter()
        .filter(|state| state.state == CONFLICT_STATE)
        .map(|state| {
            format!(
                "{} ({})",
                state.instance_id,
                state.message.as_deref().unwrap_or_default()
            )
        })
        .collect();
    if !conflicts.is_empty() {
        let message = format!("instances left alone: {}", conflicts.join("; "));
        (Readiness::not_ready(reason::CONFLICT, message), false)
    } else if matched == 0 {
        // An empty fleet is a valid state (scaled to zero, not launched yet), but it is said.
        let readiness = Readiness {
            ready: true,
            reason: reason::NO_INSTANCES,
            message: format!(
                "no live instance matches instanceIds or instanceSelector; {profile_arn} is associated with none"
            ),
        };
        (readiness, false)
    } else if bound < matched {
        let message = format!("{bound} of {matched} instances associated");
        (Readiness::not_ready(reason::RECONCILING, message), true)
    } else {
        let message = format!("{bound} of {matched} instances associated with {profile_arn}");
        (Readiness::available(message), false)
    }
}

/// The profile the binding names: a referenced InstanceProfile once Ready (read from the
/// store; the wiring wakes this binding when it changes), or a name to look up in IAM.
fn profile_source(binding: &Ec2InstanceBinding, ctx: &Context) -> Result<ProfileSource, Error> {
    if let Some(name) = &binding.spec.instance_profile_name {
        return Ok(ProfileSource::Named(name.clone()));
    }
    let Some(reference) = &binding.spec.instance_profile_ref else {
        return Err(Error::InvalidSpec(
            "exactly one of instanceProfileRef and instanceProfileName must be set".into(),
        ));
    };
    let namespace = binding.namespace().unwrap_or_default();
    let name = &reference.name;
    let Some(profile) = ctx.stores.profiles.get(&namespace, name) else {
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
        Some(arn) if ready && profile.meta().deletion_timestamp.is_none() => {
            Ok(ProfileSource::Arn(arn))
        }
        _ => Err(Error::DependencyNotReady(format!(
            "InstanceProfile {name} is not Ready yet"
        ))),
    }
}

/// The profile's ARN; a named profile must exist in IAM.
async fn profile_arn(source: &ProfileSource, ctx: &Context) -> Result<String, Error> {
    match source {
        ProfileSource::Arn(arn) => Ok(arn.clone()),
        ProfileSource::Named(name) => match ctx.iam.get_instance_profile(name).await? {
            Some(profile) => Ok(profile.arn),
            None => Err(Error::Aws(crate::aws::AwsError {
                operation: "GetInstanceProfile",
                class: crate::aws::ErrorClass::NotFound,
                code: Some("NoSuchEntity".into()),
                message: format!("instance profile {name} does not exist"),
            })),
        },
    }
}

/// For cleanup: the ARN of the profile this binding may have associated, from status or, when
/// a crash came before status was written, from the spec and IAM. `None`: no such profile, so
/// no association of it can exist.
async fn profile_to_release(
    binding: &Ec2InstanceBinding,
    ctx: &Context,
) -> Result<Option<String>, Error> {
    if let Some(arn) = binding
        .status
        .as_ref()
        .and_then(|status| status.instance_profile_arn.clone())
    {
        return Ok(Some(arn));
    }
    let name = match (
        &binding.spec.instance_profile_name,
        &binding.spec.instance_profile_ref,
    ) {
        (Some(name), _) => name.clone(),
        (None, Some(reference)) => {
            let namespace = binding.namespace().unwrap_or_default();
            match ctx.stores.profiles.get(&namespace, &reference.name) {
                Some(profile) => {
                    if let Some(arn) = profile.status.as_ref().and_then(|s| s.arn.clone()) {
                        return Ok(Some(arn));
                    }
                    super::instance_profile::profile_name(&profile)
                }
                None => reference.name.clone(),
            }
        }
        (None, None) => return Ok(None),
    };
    Ok(ctx
        .iam
        .get_instance_profile(&name)
        .await?
        .map(|profile| profile.arn))
}

/// Instances named or selected by the spec: one DescribeInstances per source (ids, tags).
async fn matched_instances(
    spec: &Ec2InstanceBindingSpec,
    ctx: &Context,
) -> Result<Vec<Instance>, Error> {
    let mut instances = Vec::new();
    // EC2 caps the values of one filter, so long id lists go in chunks.
    for chunk in spec.instance_ids.chunks(INSTANCE_IDS_PER_CALL) {
        instances.extend(
            ctx.ec2
                .describe_instances(vec![("instance-id".into(), chunk.to_vec())])
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
    let mut claims = BTreeMap::new();
    // Every binding this operator manages, whichever watched namespace it is in.
    for other in ctx.stores.bindings.all() {
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

/// Profiles (by ARN) that matched instances are associated with and that this binding may
/// not replace, with who owns them: any profile not owned by rolecall in this namespace,
/// unless the rules allow replacing associations made outside it.
async fn unowned_profiles(
    binding: &Ec2InstanceBinding,
    profile_arn: &str,
    instances: &[Instance],
    associations: &[Association],
    rules: &Rules,
    ctx: &Context,
) -> Result<BTreeMap<String, String>, Error> {
    let mut unowned = BTreeMap::new();
    if rules.instances()?.replace_unowned_associations {
        return Ok(unowned);
    }
    let ours = format!(
        "{}/{}/",
        ctx.settings.cluster_name,
        binding.namespace().unwrap_or_default()
    );
    let matched: BTreeSet<&str> = instances.iter().map(|i| i.instance_id.as_str()).collect();
    let others: BTreeSet<&str> = associations
        .iter()
        .filter(|association| matched.contains(association.instance_id.as_str()))
        .map(|association| association.profile_arn.as_str())
        .filter(|arn| *arn != profile_arn)
        .collect();
    for arn in others {
        let name = arn.rsplit('/').next().unwrap_or_default();
        let owner = ctx
            .iam
            .get_instance_profile(name)
            .await?
            .filter(|profile| profile.arn == arn)
            .and_then(|profile| profile.tags.get(crate::conditions::OWNER_TAG).cloned());
        match owner {
            Some(owner) if owner.starts_with(&ours) => {}
            Some(owner) => {
                unowned.insert(arn.to_owned(), format!("which belongs to {owner}"));
            }
            None => {
                unowned.insert(arn.to_owned(), "which was set outside rolecall".to_owned());
            }
        }
    }
    Ok(unowned)
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
    type Desired = ProfileSource;
    type Observed = Observed;
    type Action = BindingAction;

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
        check_selector(&self.spec)
    }

    fn admit(&self, rules: &Rules, ctx: &Context) -> Result<(), Error> {
        rules.instances()?;
        if let Some(name) = &self.spec.instance_profile_name {
            let namespace = self.namespace().unwrap_or_default();
            let managed_here = ctx
                .stores
                .profiles
                .in_namespace(&namespace, |profile| {
                    &super::instance_profile::profile_name(profile) == name
                })
                .next()
                .is_some();
            rules.check_profile_reference(name, managed_here)?;
        }
        Ok(())
    }

    fn desired(&self, ctx: &Context, _rules: &Rules) -> Result<ProfileSource, Error> {
        check_selector(&self.spec)?;
        profile_source(self, ctx)
    }

    async fn observe(
        &self,
        ctx: &Context,
        rules: &Rules,
        desired: &ProfileSource,
    ) -> Result<Observed, Error> {
        let profile_arn = profile_arn(desired, ctx).await?;
        let instances = matched_instances(&self.spec, ctx).await?;
        for instance in &instances {
            rules.check_instance(&instance.instance_id, &instance.tags)?;
        }
        let previously: BTreeSet<String> = self
            .status
            .iter()
            .flat_map(|status| status.instances.iter())
            .map(|instance| instance.instance_id.clone())
            .collect();
        let ids: BTreeSet<String> = instances
            .iter()
            .map(|instance| instance.instance_id.clone())
            .chain(previously.iter().cloned())
            .collect();
        let associations = if ids.is_empty() {
            vec![]
        } else {
            ctx.ec2
                .associations(&ids.into_iter().collect::<Vec<_>>())
                .await?
        };
        let claims = claims(self, &profile_arn, &instances, ctx);
        let unowned =
            unowned_profiles(self, &profile_arn, &instances, &associations, rules, ctx).await?;
        Ok(Observed {
            profile_arn,
            instances,
            previously,
            associations,
            claims,
            unowned,
        })
    }

    fn plan(&self, _desired: &ProfileSource, observed: &Observed) -> Plan {
        plan(observed)
    }

    /// Makes one write and records EC2's answer in the per-instance state.
    async fn apply(
        &self,
        ctx: &Context,
        _desired: &ProfileSource,
        action: &BindingAction,
        status: &mut Ec2InstanceBindingStatus,
    ) -> Result<String, Error> {
        let profile_arn = status.instance_profile_arn.clone().unwrap_or_default();
        let (instance_id, outcome, note) = match action {
            BindingAction::Associate { instance_id } => (
                instance_id,
                Some(ctx.ec2.associate(instance_id, &profile_arn).await?),
                format!("associated {instance_id} with {profile_arn}"),
            ),
            BindingAction::Replace {
                instance_id,
                association_id,
            } => (
                instance_id,
                Some(
                    ctx.ec2
                        .replace(association_id, instance_id, &profile_arn)
                        .await?,
                ),
                format!("associated {instance_id} with {profile_arn}"),
            ),
            BindingAction::Disassociate {
                instance_id,
                association_id,
            } => {
                ctx.ec2.disassociate(association_id).await?;
                (
                    instance_id,
                    None,
                    format!(
                        "disassociated {instance_id} from {profile_arn}: it no longer matches the spec"
                    ),
                )
            }
        };
        match outcome {
            Some(association) => {
                if let Some(state) = status
                    .instances
                    .iter_mut()
                    .find(|state| &state.instance_id == instance_id)
                {
                    state.association_id = Some(association.association_id);
                    state.state = association.state;
                    state.message = None;
                }
            }
            None => status
                .instances
                .retain(|state| &state.instance_id != instance_id),
        }
        Ok(note)
    }

    /// EC2 answers an association with its state: already `associated`, or still on its way.
    fn reassess(&self, plan: &mut Plan) {
        (plan.readiness, plan.retry_soon) = assess(&mut plan.status);
    }

    async fn cleanup(&self, ctx: &Context) -> Result<(), Error> {
        let Some(profile_arn) = profile_to_release(self, ctx).await? else {
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

    /// The plan for these observations, with its per-instance states and conflicts at hand.
    struct Planned {
        actions: Vec<BindingAction>,
        instances: Vec<InstanceBindingState>,
        conflicts: BTreeMap<String, String>,
        readiness: Readiness,
    }

    fn plan(
        profile_arn: &str,
        instances: &[Instance],
        previously: &BTreeSet<String>,
        associations: &[Association],
        claims: &BTreeMap<String, String>,
        unowned: &BTreeMap<String, String>,
    ) -> Planned {
        let plan = super::plan(&Observed {
            profile_arn: profile_arn.into(),
            instances: instances.to_vec(),
            previously: previously.clone(),
            associations: associations.to_vec(),
            claims: claims.clone(),
            unowned: unowned.clone(),
        });
        let conflicts = plan
            .status
            .instances
            .iter()
            .filter(|state| state.state == CONFLICT_STATE)
            .map(|state| {
                (
                    state.instance_id.clone(),
                    state.message.clone().unwrap_or_default(),
                )
            })
            .collect();
        Planned {
            actions: plan.actions,
            instances: plan.status.instances,
            conflicts,
            readiness: plan.readiness,
        }
    }

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
            &BTreeSet::new(),
            &[association("i-2", PROFILE)],
            &BTreeMap::new(),
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
            &BTreeSet::new(),
            &[association("i-1", other)],
            &BTreeMap::new(),
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
    fn an_association_rolecall_does_not_own_is_never_replaced() {
        let other = "arn:aws:iam::123456789012:instance-profile/admin";
        let unowned: BTreeMap<String, String> = [(
            other.to_string(),
            "which was set outside rolecall".to_string(),
        )]
        .into();
        let plan = plan(
            PROFILE,
            &[instance("i-1", &[])],
            &BTreeSet::new(),
            &[association("i-1", other)],
            &BTreeMap::new(),
            &unowned,
        );
        assert!(plan.actions.is_empty());
        assert_eq!(plan.instances[0].state, "conflict");
        assert!(
            plan.conflicts["i-1"]
                .contains("instance-profile/admin, which was set outside rolecall")
        );
    }

    #[test]
    fn an_instance_claimed_by_another_binding_is_never_replaced() {
        let other = "arn:aws:iam::123456789012:instance-profile/db";
        let claims: BTreeMap<String, String> = [("i-1".to_string(), "ns/db".to_string())].into();
        let plan = plan(
            PROFILE,
            &[instance("i-1", &[])],
            &BTreeSet::new(),
            &[association("i-1", other)],
            &claims,
            &BTreeMap::new(),
        );
        assert!(plan.actions.is_empty());
        assert_eq!(plan.instances[0].state, "conflict");
        assert!(plan.conflicts["i-1"].contains("Ec2InstanceBinding ns/db"));
    }

    #[test]
    fn a_converged_binding_needs_no_write() {
        let plan = plan(
            PROFILE,
            &[instance("i-1", &[])],
            &BTreeSet::new(),
            &[association("i-1", PROFILE)],
            &BTreeMap::new(),
            &BTreeMap::new(),
        );
        assert!(plan.actions.is_empty());
    }

    #[test]
    fn an_instance_that_left_the_spec_loses_only_this_bindings_profile() {
        let other = "arn:aws:iam::123456789012:instance-profile/other";
        let previously: BTreeSet<String> = ["i-1", "i-2", "i-3"].map(String::from).into();
        let plan = plan(
            PROFILE,
            &[instance("i-1", &[])],
            &previously,
            &[
                association("i-1", PROFILE),
                association("i-2", PROFILE),
                association("i-3", other),
            ],
            &BTreeMap::new(),
            &BTreeMap::new(),
        );
        assert_eq!(
            plan.actions,
            vec![BindingAction::Disassociate {
                instance_id: "i-2".into(),
                association_id: "iip-assoc-i-2".into()
            }],
            "i-3 now holds someone else's profile and is left alone"
        );
        let listed: Vec<&str> = plan
            .instances
            .iter()
            .map(|i| i.instance_id.as_str())
            .collect();
        assert_eq!(listed, vec!["i-1"], "only matched instances stay in status");
    }

    #[test]
    fn wildcards_with_many_stars_match_in_polynomial_time() {
        // Exponential backtracking never finishes this; the linear-resume matcher takes
        // milliseconds. Run on a thread so a regression fails instead of hanging the suite.
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let value = "a".repeat(5_000);
            let pattern = format!("{}x", "*".repeat(40));
            let _ = done.send((
                wildcard_match(&pattern, &value),
                wildcard_match(&format!("{}a", "*?".repeat(20)), &value),
            ));
        });
        let outcome = finished.recv_timeout(std::time::Duration::from_secs(60));
        assert_eq!(outcome, Ok((false, true)));
    }

    #[test]
    fn wildcards_resume_after_the_last_star() {
        assert!(wildcard_match("*b*c", "abxbyc"));
        assert!(wildcard_match("a*b?d", "axxbcd"));
        assert!(!wildcard_match("a*b?d", "axxbd"));
        assert!(wildcard_match("**", "anything"));
        assert!(!wildcard_match("*x", ""));
        assert!(wildcard_match("", ""));
        assert!(!wildcard_match("", "a"));
    }

    #[test]
    fn a_new_association_is_reconciling_until_ec2_says_associated() {
        let planned = plan(
            PROFILE,
            &[instance("i-1", &[])],
            &BTreeSet::new(),
            &[],
            &BTreeMap::new(),
            &BTreeMap::new(),
        );
        assert_eq!(planned.readiness.reason, reason::RECONCILING);
        let mut status = Ec2InstanceBindingStatus {
            instance_profile_arn: Some(PROFILE.into()),
            instances: planned.instances,
            ..Default::default()
        };
        status.instances[0].state = "associated".into();
        let (readiness, retry_soon) = assess(&mut status);
        assert!(readiness.ready && !retry_soon, "{readiness:?}");
        assert_eq!((status.matched, status.bound), (1, 1));
    }
}
