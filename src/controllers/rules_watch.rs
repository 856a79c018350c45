//! The platform team's side of the wiring: Tenancies and namespaces' labels, followed into
//! the stores every reconcile reads its rules from, and the wake-ups their changes send. A
//! Tenancy's change may concern any object (tightened or loosened rules are enforced at
//! once); a namespace's new labels concern only the objects in it.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};

use super::Managed;
use super::watch_backoff::watch_backoff;
use crate::api::Tenancy;

/// Sends wake-ups to the controllers of one kind, one per scope.
pub struct KindWakers<K: Managed> {
    every: Vec<UnboundedSender<()>>,
    scoped: Vec<(Store<K>, UnboundedSender<ObjectRef<K>>)>,
}

impl<K: Managed> Default for KindWakers<K> {
    fn default() -> Self {
        Self {
            every: vec![],
            scoped: vec![],
        }
    }
}

/// The trigger streams one controller listens to.
pub struct Triggers<K: Managed> {
    pub every: UnboundedReceiver<()>,
    pub some: UnboundedReceiver<ObjectRef<K>>,
}

impl<K: Managed> KindWakers<K> {
    /// Registers one scope's controller, reading `store`.
    pub fn register(&mut self, store: Store<K>) -> Triggers<K> {
        let (every_tx, every) = unbounded();
        let (some_tx, some) = unbounded();
        self.every.push(every_tx);
        self.scoped.push((store, some_tx));
        Triggers { every, some }
    }

    fn wake_every(&self) {
        for sender in &self.every {
            let _ = sender.unbounded_send(());
        }
    }

    fn wake_namespace(&self, namespace: &str) {
        for (store, sender) in &self.scoped {
            for object in store.state() {
                if object.namespace().as_deref() == Some(namespace) {
                    let _ = sender.unbounded_send(ObjectRef::from_obj(object.as_ref()));
                }
            }
        }
    }
}

/// Wake-ups for every kind.
#[derive(Default)]
pub struct Wakers {
    pub policies: KindWakers<crate::api::IamPolicy>,
    pub roles: KindWakers<crate::api::IamRole>,
    pub profiles: KindWakers<crate::api::InstanceProfile>,
    pub bindings: KindWakers<crate::api::Ec2InstanceBinding>,
    pub groups: KindWakers<crate::api::IamGroup>,
    pub users: KindWakers<crate::api::IamUser>,
    pub password_policies: KindWakers<crate::api::AccountPasswordPolicy>,
}

impl Wakers {
    fn wake_every(&self) {
        self.policies.wake_every();
        self.roles.wake_every();
        self.profiles.wake_every();
        self.bindings.wake_every();
        self.groups.wake_every();
        self.users.wake_every();
        self.password_policies.wake_every();
    }

    fn wake_namespace(&self, namespace: &str) {
        self.policies.wake_namespace(namespace);
        self.roles.wake_namespace(namespace);
        self.profiles.wake_namespace(namespace);
        self.bindings.wake_namespace(namespace);
        self.groups.wake_namespace(namespace);
        self.users.wake_namespace(namespace);
    }
}

/// The writers of the rules' stores, until `run` follows them.
pub struct RulesWatch {
    tenancies: Writer<Tenancy>,
    namespaces: Writer<PartialObjectMeta<Namespace>>,
}

impl RulesWatch {
    pub fn new() -> (Self, Store<Tenancy>, Store<PartialObjectMeta<Namespace>>) {
        let (tenancy_reader, tenancies) = reflector::store();
        let (namespace_reader, namespaces) = reflector::store();
        (
            Self {
                tenancies,
                namespaces,
            },
            tenancy_reader,
            namespace_reader,
        )
    }

    /// Follows Tenancies and namespaces until the streams end, waking what each change
    /// concerns.
    pub async fn run(self, client: Client, wakers: Wakers) {
        let tenancies = watcher(Api::<Tenancy>::all(client.clone()), Default::default())
            .backoff(watch_backoff())
            .modify(|tenancy: &mut Tenancy| tenancy.meta_mut().managed_fields = None);
        // Metadata only: a namespace's labels are all the rules read of it.
        let namespaces = watcher(
            Api::<PartialObjectMeta<Namespace>>::all(client),
            Default::default(),
        )
        .backoff(watch_backoff())
        .modify(|namespace: &mut PartialObjectMeta<Namespace>| {
            namespace.metadata.managed_fields = None;
            namespace.metadata.annotations = None;
        });
        let tenancy_changes = follow(tenancies, self.tenancies, |tenancy: &Tenancy| {
            // The spec (generation) is what the rules come from.
            hash_of(tenancy.meta().generation)
        });
        let namespace_changes = follow(
            namespaces,
            self.namespaces,
            |namespace: &PartialObjectMeta<Namespace>| hash_of(&namespace.metadata.labels),
        );
        let mut changes = futures::stream::select(
            tenancy_changes.map(|seen| (true, seen)).boxed(),
            namespace_changes.map(|seen| (false, seen)).boxed(),
        );
        let mut listed = 0;
        while let Some((tenancy, seen)) = changes.next().await {
            match seen {
                // Reconciles that came before both lists waited for them; now they can run.
                Seen::Listed => {
                    listed += 1;
                    if listed == 2 {
                        wakers.wake_every();
                    }
                }
                Seen::Changed(name) if tenancy => {
                    tracing::info!(tenancy = %name, "tenancy changed: every object is checked again");
                    wakers.wake_every();
                }
                Seen::Changed(name) => wakers.wake_namespace(&name),
            }
        }
    }
}

/// What following one kind reports.
enum Seen {
    /// The first full list is in the store.
    Listed,
    /// The object of this name appeared, changed or went.
    Changed(String),
}

fn hash_of(value: impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// Feeds `writer` from `events` and reports the first full list, then each object that
/// appeared, changed (by `fingerprint`) or went. The objects of the first list are not
/// reported one by one: every controller reconciles everything when it starts.
fn follow<K, S>(
    events: S,
    writer: Writer<K>,
    fingerprint: impl Fn(&K) -> u64 + Send + 'static,
) -> impl Stream<Item = Seen> + Send
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
{
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut listed: HashSet<String> = HashSet::new();
    let mut synced = false;
    events
        .reflect(writer)
        .map(move |event| {
            let mut changed = Vec::new();
            let mut note = |seen: &mut HashMap<String, u64>, object: &K| {
                let name = object.name_any();
                let print = fingerprint(object);
                if seen.insert(name.clone(), print) != Some(print) && synced {
                    changed.push(Seen::Changed(name));
                }
            };
            match event {
                Ok(watcher::Event::Apply(object)) => note(&mut seen, &object),
                Ok(watcher::Event::Delete(object)) => {
                    let name = object.name_any();
                    seen.remove(&name);
                    changed.push(Seen::Changed(name));
                }
                Ok(watcher::Event::Init) => listed.clear(),
                Ok(watcher::Event::InitApply(object)) => {
                    listed.insert(object.name_any());
                    note(&mut seen, &object);
                }
                Ok(watcher::Event::InitDone) => {
                    // A relist after a broken watch: what it no longer holds went meanwhile.
                    let gone: Vec<String> = seen
                        .keys()
                        .filter(|name| !listed.contains(*name))
                        .cloned()
                        .collect();
                    for name in gone {
                        seen.remove(&name);
                        changed.push(Seen::Changed(name));
                    }
                    if !synced {
                        changed.push(Seen::Listed);
                    }
                    synced = true;
                }
                Err(error) => tracing::warn!(%error, "watch of the tenancy rules failed; retrying"),
            }
            futures::stream::iter(changed)
        })
        .flatten()
}
