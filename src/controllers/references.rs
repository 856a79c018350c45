//! Which object refers to which: the relations the triggers between kinds, dependency
//! resolution and in-use protection all read, stated once.

use std::collections::BTreeSet;

use kube::ResourceExt;

use super::stores::Scoped;
use crate::api::{Ec2InstanceBinding, IamGroup, IamPolicy, IamRole, IamUser, InstanceProfile};

/// A kind whose spec names objects of kind `T` in its own namespace.
pub trait Refers<T> {
    fn referenced_names(&self) -> Vec<&str>;
}

impl Refers<IamPolicy> for IamRole {
    fn referenced_names(&self) -> Vec<&str> {
        self.spec
            .policy_refs
            .iter()
            .map(|reference| reference.name.as_str())
            .collect()
    }
}

impl Refers<IamPolicy> for IamGroup {
    fn referenced_names(&self) -> Vec<&str> {
        self.spec
            .policy_refs
            .iter()
            .map(|reference| reference.name.as_str())
            .collect()
    }
}

impl Refers<IamPolicy> for IamUser {
    fn referenced_names(&self) -> Vec<&str> {
        self.spec
            .policy_refs
            .iter()
            .map(|reference| reference.name.as_str())
            .collect()
    }
}

impl Refers<IamGroup> for IamUser {
    fn referenced_names(&self) -> Vec<&str> {
        self.spec
            .group_refs
            .iter()
            .map(|reference| reference.name.as_str())
            .collect()
    }
}

impl Refers<IamRole> for InstanceProfile {
    fn referenced_names(&self) -> Vec<&str> {
        self.spec
            .role_ref
            .iter()
            .map(|reference| reference.name.as_str())
            .collect()
    }
}

impl Refers<InstanceProfile> for Ec2InstanceBinding {
    fn referenced_names(&self) -> Vec<&str> {
        self.spec
            .instance_profile_ref
            .iter()
            .map(|reference| reference.name.as_str())
            .collect()
    }
}

/// The objects of kind `H` (named `Kind name`) that refer to `target`: while any exists,
/// deleting `target` would pull AWS state out from under it.
pub fn holders<H, T>(holders: &Scoped<H>, target: &T) -> Vec<String>
where
    H: Refers<T> + kube::Resource<DynamicType = ()> + Clone + 'static,
    T: kube::Resource,
{
    let namespace = target.namespace().unwrap_or_default();
    let name = target.name_any();
    let mut found: Vec<String> = holders
        .in_namespace(&namespace, |holder| {
            holder.referenced_names().contains(&name.as_str())
        })
        .map(|holder| format!("{} {}", H::kind(&()), holder.name_any()))
        .collect();
    found.sort();
    found
}

/// Instances a binding reports as claimed by another binding for a different profile.
pub fn contested_instances(binding: &Ec2InstanceBinding) -> BTreeSet<String> {
    binding
        .status
        .iter()
        .flat_map(|status| status.instances.iter())
        .filter(|instance| instance.state == crate::api::binding::CONFLICT_STATE)
        .map(|instance| instance.instance_id.clone())
        .collect()
}

/// Instances a binding lists in its status, whatever their state.
pub fn claimed_instances(binding: &Ec2InstanceBinding) -> impl Iterator<Item = String> + '_ {
    binding
        .status
        .iter()
        .flat_map(|status| status.instances.iter())
        .map(|instance| instance.instance_id.clone())
}
