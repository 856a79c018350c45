//! The reflector stores of every watched scope, by kind: how a reconcile reads the objects it
//! references (and the objects that reference it) without a live GET.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;
use kube::Resource;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};

use crate::api::{
    AccountPasswordPolicy, Ec2InstanceBinding, IamGroup, IamPolicy, IamRole, IamUser,
    InstanceProfile, Tenancy,
};

/// The stores of one kind, one per watched scope (all namespaces, or each `--watch-namespaces`
/// entry).
#[derive(Clone)]
pub struct Scoped<K: Resource<DynamicType = ()> + 'static>(Vec<Store<K>>);

impl<K> Scoped<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    pub fn new(stores: Vec<Store<K>>) -> Self {
        Self(stores)
    }

    /// The object `namespace/name`, from whichever scope holds it.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        let key = ObjectRef::new(name).within(namespace);
        self.0.iter().find_map(|store| store.get(&key))
    }

    /// Every object of this kind the operator manages, across scopes.
    pub fn all(&self) -> impl Iterator<Item = Arc<K>> + '_ {
        self.0.iter().flat_map(|store| store.state())
    }

    /// Whether every scope's store has listed its objects once.
    pub fn synced(&self) -> bool {
        self.0.iter().all(ready)
    }

    /// Objects in `namespace` for which `pick` holds.
    pub fn in_namespace<'a>(
        &'a self,
        namespace: &'a str,
        mut pick: impl FnMut(&K) -> bool + 'a,
    ) -> impl Iterator<Item = Arc<K>> + 'a {
        self.all()
            .filter(move |object| object.meta().namespace.as_deref() == Some(namespace))
            .filter(move |object| pick(object))
    }
}

/// Every store the controllers keep, shared by all reconciles of one process.
#[derive(Clone)]
pub struct Stores {
    pub policies: Scoped<IamPolicy>,
    pub roles: Scoped<IamRole>,
    pub profiles: Scoped<InstanceProfile>,
    pub bindings: Scoped<Ec2InstanceBinding>,
    pub groups: Scoped<IamGroup>,
    pub users: Scoped<IamUser>,
    /// Cluster-scoped, watched only when the operator watches every namespace (else empty).
    pub password_policies: Scoped<AccountPasswordPolicy>,
    /// The platform team's rules, cluster-wide.
    pub tenancies: Store<Tenancy>,
    /// Namespaces' metadata, for the labels Tenancies select by.
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
}

impl Stores {
    pub fn synced(&self) -> bool {
        self.policies.synced()
            && self.roles.synced()
            && self.bindings.synced()
            && self.profiles.synced()
            && self.groups.synced()
            && self.users.synced()
            && self.password_policies.synced()
            && ready(&self.tenancies)
            && ready(&self.namespaces)
    }

    /// Whether the rules' stores have listed once: until then no namespace's rules are known.
    pub fn rules_synced(&self) -> bool {
        ready(&self.tenancies) && ready(&self.namespaces)
    }

    /// The labels of `namespace`, as last seen (none while unknown: the defaults apply).
    pub fn namespace_labels(&self, namespace: &str) -> std::collections::BTreeMap<String, String> {
        self.namespaces
            .get(&ObjectRef::new(namespace))
            .and_then(|meta| meta.metadata.labels.clone())
            .unwrap_or_default()
    }

    /// Stores that stay empty: for contexts that run no controller (tools, tests of pure steps).
    pub fn empty() -> Self {
        fn none<K: Resource<DynamicType = ()> + Clone + 'static>() -> Scoped<K> {
            Scoped::new(vec![])
        }
        Self {
            policies: none(),
            roles: none(),
            profiles: none(),
            bindings: none(),
            groups: none(),
            users: none(),
            password_policies: none(),
            tenancies: listed_empty(),
            namespaces: listed_empty(),
        }
    }
}

fn ready<K: Resource<DynamicType = ()> + Clone + 'static>(store: &Store<K>) -> bool {
    use futures::FutureExt;
    matches!(store.wait_until_ready().now_or_never(), Some(Ok(())))
}

/// A store that has listed nothing, and says so.
fn listed_empty<K>() -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let (reader, mut writer) = reflector::store();
    writer.apply_watcher_event(&kube::runtime::watcher::Event::Init);
    writer.apply_watcher_event(&kube::runtime::watcher::Event::InitDone);
    reader
}
