//! One place that wires the controllers: a watch per kind and scope feeding a trimmed store,
//! the triggers between kinds (a dependency's readiness wakes its dependents; a holder's
//! change or deletion wakes what it holds), the per-kind gates, and the object counts.

use std::collections::hash_map::DefaultHasher;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use futures::future::Shared;
use futures::{FutureExt, Stream, StreamExt};
use kube::api::Api;
use kube::runtime::controller::{Action, Controller, Error as ControllerError};
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::{PredicateConfig, WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};

use super::gate::Gate;
use super::references::{self, Refers};
use super::rules_watch::{RulesWatch, Triggers, Wakers};
use super::shared_watch::SharedWatch;
use super::stores::{Scoped, Stores};
use super::watch_backoff::watch_backoff;
use super::{Managed, error_policy, gated, kind_name};
use crate::api::{
    AccountPasswordPolicy, Ec2InstanceBinding, IamGroup, IamPolicy, IamRole, IamUser,
    InstanceProfile,
};
use crate::conditions::READY;
use crate::context::Context;
use crate::error::Error;
use crate::telemetry::ReadyCounts;

/// Annotation kubectl keeps a full copy of the last applied object in: never read by rolecall.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The controllers of every watched scope, built but not yet running, and the stores they fill.
pub struct Controllers {
    scopes: Vec<Scope>,
    /// The shared watches the scopes' controllers follow.
    watching: Vec<futures::future::BoxFuture<'static, ()>>,
    pub stores: Stores,
    client: Client,
    rules: RulesWatch,
    wakers: Wakers,
    /// Watching every namespace: the cluster-scoped AccountSecurityReports run too.
    cluster_wide: bool,
    /// The cluster-scoped password policy's controller, when watching every namespace.
    password_policy: Option<Controller<AccountPasswordPolicy>>,
}

struct Scope {
    policies: Controller<IamPolicy>,
    roles: Controller<IamRole>,
    profiles: Controller<InstanceProfile>,
    bindings: Controller<Ec2InstanceBinding>,
    groups: Controller<IamGroup>,
    users: Controller<IamUser>,
}

/// A store and the writer that fills it, for one kind in one scope.
struct Reflector<K: Resource<DynamicType = ()> + Clone + 'static> {
    reader: Store<K>,
    writer: Writer<K>,
}

impl<K: Managed> Reflector<K> {
    fn new() -> Self {
        let (reader, writer) = reflector::store();
        Self { reader, writer }
    }
}

impl Controllers {
    /// Builds the controllers for `scopes` (`None`: all namespaces). Nothing is watched until
    /// [`Controllers::run`].
    pub fn new(client: &Client, scopes: &[Option<String>]) -> Self {
        let mut policies: Vec<SharedWatch<IamPolicy>> = watches(client, scopes);
        let mut roles: Vec<SharedWatch<IamRole>> = watches(client, scopes);
        let mut profiles: Vec<SharedWatch<InstanceProfile>> = watches(client, scopes);
        let mut bindings: Vec<SharedWatch<Ec2InstanceBinding>> = watches(client, scopes);
        let mut groups: Vec<SharedWatch<IamGroup>> = watches(client, scopes);
        let mut users: Vec<SharedWatch<IamUser>> = watches(client, scopes);
        // Cluster-scoped kinds are the platform team's: watched only cluster-wide, where the
        // chart grants them.
        let cluster_wide = scopes == [None];
        let password_policy: Option<Reflector<AccountPasswordPolicy>> =
            cluster_wide.then(Reflector::new);
        let (rules, tenancies, namespaces) = RulesWatch::new();
        let mut wakers = Wakers::default();
        let stores = Stores {
            policies: Scoped::new(policies.iter().map(SharedWatch::store).collect()),
            roles: Scoped::new(roles.iter().map(SharedWatch::store).collect()),
            profiles: Scoped::new(profiles.iter().map(SharedWatch::store).collect()),
            bindings: Scoped::new(bindings.iter().map(SharedWatch::store).collect()),
            groups: Scoped::new(groups.iter().map(SharedWatch::store).collect()),
            users: Scoped::new(users.iter().map(SharedWatch::store).collect()),
            password_policies: Scoped::new(
                password_policy.iter().map(|r| r.reader.clone()).collect(),
            ),
            tenancies,
            namespaces,
        };
        let mut built = Vec::new();
        for scope in 0..scopes.len() {
            let policy_store = policies[scope].store();
            let role_store = roles[scope].store();
            let profile_store = profiles[scope].store();
            let binding_store = bindings[scope].store();
            let group_store = groups[scope].store();
            let user_store = users[scope].store();

            // A role that goes (or stops naming a policy) may release a policy being deleted.
            let policy_triggers = wakers.policies.register(policy_store.clone());
            let role_triggers = wakers.roles.register(role_store.clone());
            let profile_triggers = wakers.profiles.register(profile_store.clone());
            let binding_triggers = wakers.bindings.register(binding_store.clone());
            let group_triggers = wakers.groups.register(group_store.clone());
            let user_triggers = wakers.users.register(user_store.clone());
            let policies_controller = primary(&mut policies[scope], policy_triggers)
                .watches_stream(secondary(&mut roles[scope]), held_by::<IamRole, _>())
                .watches_stream(secondary(&mut groups[scope]), held_by::<IamGroup, _>())
                .watches_stream(secondary(&mut users[scope]), held_by::<IamUser, _>());
            // A user that joins, leaves or goes wakes its groups: their members, and a group
            // being deleted that it held.
            let groups_controller = primary(&mut groups[scope], group_triggers)
                .watches_stream(
                    secondary(&mut policies[scope]),
                    dependents_of::<IamPolicy, _>(group_store),
                )
                .watches_stream(secondary(&mut users[scope]), held_by::<IamUser, _>());
            let users_controller = primary(&mut users[scope], user_triggers)
                .watches_stream(
                    secondary(&mut policies[scope]),
                    dependents_of::<IamPolicy, _>(user_store.clone()),
                )
                .watches_stream(
                    secondary(&mut groups[scope]),
                    dependents_of::<IamGroup, _>(user_store),
                )
                // A credentials Secret deleted or edited wakes its user.
                .watches_stream(
                    super::user::secrets::changes(client, &scopes[scope]),
                    super::user::secrets::owning_user,
                );
            let roles_controller = primary(&mut roles[scope], role_triggers)
                .watches_stream(
                    secondary(&mut policies[scope]),
                    dependents_of::<IamPolicy, _>(role_store),
                )
                .watches_stream(
                    secondary(&mut profiles[scope]),
                    held_by::<InstanceProfile, _>(),
                );
            let profiles_controller = primary(&mut profiles[scope], profile_triggers)
                .watches_stream(
                    secondary(&mut roles[scope]),
                    dependents_of::<IamRole, _>(profile_store),
                )
                .watches_stream(
                    secondary(&mut bindings[scope]),
                    held_by::<Ec2InstanceBinding, _>(),
                );
            let mut bindings_controller = primary(&mut bindings[scope], binding_triggers)
                .watches_stream(
                    secondary(&mut profiles[scope]),
                    dependents_of::<InstanceProfile, _>(binding_store.clone()),
                );
            // A binding anywhere the operator manages that finds a conflict wakes the bindings
            // it conflicts with, so both report it.
            for other_scope in &mut bindings {
                bindings_controller = bindings_controller.watches_stream(
                    secondary(other_scope),
                    contested_with(binding_store.clone()),
                );
            }
            built.push(Scope {
                policies: policies_controller,
                roles: roles_controller,
                profiles: profiles_controller,
                bindings: bindings_controller,
                groups: groups_controller,
                users: users_controller,
            });
        }
        let mut watching: Vec<futures::future::BoxFuture<'static, ()>> = Vec::new();
        watching.extend(policies.into_iter().map(|watch| watch.run(trim).boxed()));
        watching.extend(roles.into_iter().map(|watch| watch.run(trim).boxed()));
        watching.extend(profiles.into_iter().map(|watch| watch.run(trim).boxed()));
        watching.extend(bindings.into_iter().map(|watch| watch.run(trim).boxed()));
        watching.extend(groups.into_iter().map(|watch| watch.run(trim).boxed()));
        watching.extend(users.into_iter().map(|watch| watch.run(trim).boxed()));
        let password_policy = password_policy.map(|reflector| {
            let triggers = wakers.password_policies.register(reflector.reader.clone());
            primary_selected(
                Api::all(client.clone()),
                watcher::Config::default(),
                reflector,
            )
            .reconcile_all_on(triggers.every)
            .reconcile_on(triggers.some)
        });
        Self {
            scopes: built,
            watching,
            stores,
            client: client.clone(),
            rules,
            wakers,
            cluster_wide,
            password_policy,
        }
    }

    /// Runs every controller until `shutdown` completes; each then finishes its in-flight work.
    /// `concurrency` reconciles run at once per kind, across scopes.
    pub async fn run(
        self,
        ctx: Arc<Context>,
        concurrency: u16,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) {
        let shutdown = shutdown.shared();
        let gates: [Arc<Gate>; 7] = std::array::from_fn(|_| Gate::new(concurrency.into()));
        tokio::spawn({
            let (gates, shutdown) = (gates.clone(), shutdown.clone());
            async move {
                shutdown.await;
                gates.iter().for_each(|gate| gate.close());
            }
        });
        let kinds = [
            kind_name::<IamPolicy>(),
            kind_name::<IamRole>(),
            kind_name::<InstanceProfile>(),
            kind_name::<Ec2InstanceBinding>(),
            kind_name::<IamGroup>(),
            kind_name::<AccountPasswordPolicy>(),
            kind_name::<IamUser>(),
        ];
        for (kind, gate) in kinds.into_iter().zip(&gates) {
            let gate = gate.clone();
            ctx.telemetry
                .metrics
                .count_waiting(kind, move || gate.waiting_by_lane());
        }
        let stores = self.stores.clone();
        count_objects(&ctx, stores.policies.clone());
        count_objects(&ctx, stores.roles.clone());
        count_objects(&ctx, stores.profiles.clone());
        count_objects(&ctx, stores.bindings.clone());
        count_objects(&ctx, stores.groups.clone());
        count_objects(&ctx, stores.users.clone());
        count_objects(&ctx, stores.password_policies.clone());
        report_synced(&ctx, stores);

        let [
            policy_gate,
            role_gate,
            profile_gate,
            binding_gate,
            group_gate,
            password_policy_gate,
            user_gate,
        ] = gates;
        let mut running = Vec::new();
        let rules = self.rules.run(self.client.clone(), self.wakers);
        let stop = shutdown.clone();
        running.push(
            async move {
                tokio::select! {
                    () = rules => tracing::warn!("the watch of the tenancy rules ended"),
                    () = stop => {}
                }
            }
            .boxed(),
        );
        if self.cluster_wide {
            running.push(crate::report::controller::run(ctx.clone(), shutdown.clone()).boxed());
        }
        let mut controllers = Vec::new();
        if let Some(controller) = self.password_policy {
            controllers.push(drive(
                controller,
                &password_policy_gate,
                &ctx,
                shutdown.clone(),
            ));
        }
        for scope in self.scopes {
            controllers.push(drive(scope.policies, &policy_gate, &ctx, shutdown.clone()));
            controllers.push(drive(scope.roles, &role_gate, &ctx, shutdown.clone()));
            controllers.push(drive(scope.profiles, &profile_gate, &ctx, shutdown.clone()));
            controllers.push(drive(scope.bindings, &binding_gate, &ctx, shutdown.clone()));
            controllers.push(drive(scope.groups, &group_gate, &ctx, shutdown.clone()));
            controllers.push(drive(scope.users, &user_gate, &ctx, shutdown.clone()));
        }
        // Every reconcile needs its namespace's rules. Started before they are read, each
        // object would say "waiting to read the Tenancies" for a moment at every start or
        // leader hand-over (an Event, and a Ready flapping to False for Argo CD and Flux).
        let rules_read = rules_read(self.stores.clone(), RULES_GRACE);
        let watching = self.watching;
        running.push(
            async move {
                tokio::select! {
                    () = rules_read => {}
                    () = shutdown => return,
                }
                // The watches run until every controller has finished its in-flight work.
                let mut controllers = futures::future::join_all(controllers);
                tokio::select! {
                    _ = &mut controllers => {}
                    _ = futures::future::join_all(watching) => {
                        // Not expected: a watch retries its errors. The controllers' triggers
                        // end with it, and they stop (failing /healthz).
                        tracing::error!("the watches of the managed kinds ended");
                        controllers.await;
                    }
                }
            }
            .boxed(),
        );
        futures::future::join_all(running).await;
    }
}

struct Apis {
    client: Client,
    namespace: Option<String>,
}

impl Apis {
    fn api<K>(&self) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        match &self.namespace {
            Some(namespace) => Api::namespaced(self.client.clone(), namespace),
            None => Api::all(self.client.clone()),
        }
    }
}

fn apis_for(client: &Client, scope: &Option<String>) -> Apis {
    Apis {
        client: client.clone(),
        namespace: scope.clone(),
    }
}

/// The controller of one kind in one scope, following the kind's shared watch. Only changes a
/// reconcile must act on trigger it: the spec (generation), deletion, finalizers and the adopt
/// annotation. Its own status writes do not wake it again.
fn primary<K: Managed>(watch: &mut SharedWatch<K>, rules: Triggers<K>) -> Controller<K> {
    let trigger = watch
        .applied()
        .predicate_filter(primary_trigger::<K>, PredicateConfig::default());
    // Unlimited here: the gates limit and order the work (see controllers::gate).
    Controller::for_stream(trigger, watch.store())
        // A Tenancy's change may concern any object; a namespace's labels, its objects.
        .reconcile_all_on(rules.every)
        .reconcile_on(rules.some)
}

/// As [`primary`], for the objects `selection` picks, without the rules' wake-ups.
fn primary_selected<K: Managed>(
    api: Api<K>,
    selection: watcher::Config,
    reflector: Reflector<K>,
) -> Controller<K> {
    let stream = watcher(api, selection)
        .backoff(watch_backoff())
        .modify(trim)
        .reflect(reflector.writer)
        .applied_objects()
        .predicate_filter(primary_trigger::<K>, PredicateConfig::default());
    // Unlimited here: the gates limit and order the work (see controllers::gate).
    Controller::for_stream(stream, reflector.reader)
}

/// The AccountPasswordPolicy controller alone, over the objects `selection` picks: for tests
/// that must not touch other tests' cluster-scoped objects. Its store is `controller.store()`;
/// run it with [`run_alone`].
pub fn password_policy_controller(
    client: &Client,
    selection: watcher::Config,
) -> Controller<AccountPasswordPolicy> {
    primary_selected(Api::all(client.clone()), selection, Reflector::new())
}

/// Runs one controller with a gate of its own until `shutdown`.
pub async fn run_alone<K: Managed>(
    controller: Controller<K>,
    ctx: Arc<Context>,
    concurrency: u16,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    drive(
        controller,
        &Gate::new(concurrency.into()),
        &ctx,
        shutdown.shared(),
    )
    .await
}

/// Another kind's changes, as far as they matter to the objects that refer to it or that it
/// refers to: spec, readiness, deletion, and the final removal.
fn secondary<K: Managed>(
    watch: &mut SharedWatch<K>,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + use<K> {
    watch
        .touched()
        .predicate_filter(secondary_trigger::<K>, PredicateConfig::default())
}

/// One shared watch of `K` per scope.
fn watches<K>(client: &Client, scopes: &[Option<String>]) -> Vec<SharedWatch<K>>
where
    K: Managed + Resource<Scope = kube::core::NamespaceResourceScope>,
{
    scopes
        .iter()
        .map(|scope| SharedWatch::new(apis_for(client, scope).api()))
        .collect()
}

/// Drops what no reconcile reads: managed fields and kubectl's last-applied copy are often
/// larger than the object itself.
fn trim<K: Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
    if let Some(annotations) = object.meta_mut().annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

fn hash_of(value: impl Hash) -> Option<u64> {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    Some(hasher.finish())
}

/// What makes an object's own reconcile due: its spec (generation; the API server bumps it
/// when deletion starts too), its finalizers (kube's finalizer helper waits for the event of
/// its own finalizer write) and its annotations (the adopt annotation, and a touched
/// annotation as the way to ask for a reconcile now). Status writes change none of these.
pub fn primary_trigger<K: Resource>(object: &K) -> Option<u64> {
    let meta = object.meta();
    hash_of((
        meta.generation,
        &meta.finalizers,
        meta.deletion_timestamp.is_some(),
        &meta.annotations,
    ))
}

/// What makes another object's reconcile due when this object changes: its spec, its Ready
/// condition, and its deletion (the last event of a deleted object carries a new
/// resourceVersion, so deletion passes even when nothing else changed).
pub fn secondary_trigger<K: Managed>(object: &K) -> Option<u64> {
    let meta = object.meta();
    let ready = object.current_status().cloned().map(|mut status| {
        let common = K::status_mut(&mut status);
        let condition = common
            .conditions
            .iter()
            .find(|condition| condition.type_ == READY)
            .map(|condition| (condition.status.clone(), condition.reason.clone()));
        (common.observed_generation, condition)
    });
    let deleting = meta
        .deletion_timestamp
        .as_ref()
        .map(|_| meta.resource_version.clone());
    hash_of((meta.generation, ready, deleting))
}

/// Maps a changed `D` to the objects of the controller's kind in its namespace that refer to
/// it (a policy to the roles naming it in `policyRefs`, ...).
fn dependents_of<D, K>(store: Store<K>) -> impl Fn(D) -> Vec<ObjectRef<K>> + Send + Sync
where
    D: Resource,
    K: Managed + Refers<D>,
{
    move |dependency: D| {
        let namespace = dependency.namespace();
        let name = dependency.name_any();
        store
            .state()
            .into_iter()
            .filter(|object| object.namespace() == namespace)
            .filter(|object| object.referenced_names().contains(&name.as_str()))
            .map(|object| ObjectRef::from_obj(object.as_ref()))
            .collect()
    }
}

/// Maps a changed holder `H` to the objects it refers to, which may be waiting for it to go
/// before they can be deleted.
fn held_by<H, K>() -> impl Fn(H) -> Vec<ObjectRef<K>> + Send + Sync
where
    H: Refers<K> + Resource,
    K: Managed,
{
    move |holder: H| {
        let namespace = holder.namespace().unwrap_or_default();
        holder
            .referenced_names()
            .into_iter()
            .map(|name| ObjectRef::new(name).within(&namespace))
            .collect()
    }
}

/// Maps a binding with conflicting instances to the bindings in `store` that hold them.
fn contested_with(
    store: Store<Ec2InstanceBinding>,
) -> impl Fn(Ec2InstanceBinding) -> Vec<ObjectRef<Ec2InstanceBinding>> + Send + Sync {
    move |changed| {
        let contested = references::contested_instances(&changed);
        if contested.is_empty() {
            return vec![];
        }
        store
            .state()
            .into_iter()
            .filter(|other| other.uid() != changed.uid())
            .filter(|other| references::claimed_instances(other).any(|id| contested.contains(&id)))
            .map(|other| ObjectRef::from_obj(other.as_ref()))
            .collect()
    }
}

fn drive<K: Managed, S: Future<Output = ()> + Send + 'static>(
    controller: Controller<K>,
    gate: &Arc<Gate>,
    ctx: &Arc<Context>,
    shutdown: Shared<S>,
) -> futures::future::BoxFuture<'static, ()> {
    let store = controller.store();
    let running = controller
        .graceful_shutdown_on(shutdown.clone())
        .run(gated(gate.clone(), store), error_policy::<K>, ctx.clone())
        .for_each(log_result::<K>);
    // A controller that ends before shutdown fails /healthz and stops `rolecall run`.
    let name = format!("the {} controller", kind_name::<K>());
    ctx.telemetry
        .health
        .supervise(name, running, shutdown)
        .boxed()
}

/// Lets `/metrics` count the objects of a kind by Ready state.
fn count_objects<K: Managed>(ctx: &Context, objects: Scoped<K>) {
    ctx.telemetry
        .metrics
        .count_objects(kind_name::<K>(), move || ready_counts(objects.all()));
}

fn ready_counts<K: Managed>(objects: impl Iterator<Item = Arc<K>>) -> ReadyCounts {
    let mut counts = ReadyCounts::default();
    for object in objects {
        let mut status = object.current_status().cloned().unwrap_or_default();
        let ready = K::status_mut(&mut status)
            .conditions
            .iter()
            .find(|condition| condition.type_ == READY)
            .map(|condition| condition.status.clone());
        match ready.as_deref() {
            Some("True") => counts.ready += 1,
            Some("False") => counts.not_ready += 1,
            _ => counts.unknown += 1,
        }
    }
    counts
}

/// How long the controllers wait for the Tenancies and namespaces before they start anyway;
/// then each object reports what it waits for (the operator may lack list on either).
const RULES_GRACE: Duration = Duration::from_secs(30);

/// Completes once the rules' stores have listed, or after `grace`.
async fn rules_read(stores: Stores, grace: Duration) {
    let deadline = tokio::time::Instant::now() + grace;
    // Polled: see `report_synced`.
    while !stores.rules_synced() {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                "the Tenancies and namespaces are not read after {grace:?}: reconciling anyway, \
                 every object waits for them in its Ready condition"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Marks the process synced for `/readyz` once every store has listed its objects.
fn report_synced(ctx: &Context, stores: Stores) {
    let telemetry = ctx.telemetry.clone();
    // Polled rather than awaited: a store's readiness wakes only its last waiter, and the
    // controller waits on it too (kube-runtime's DelayedInit keeps a single waker).
    tokio::spawn(async move {
        loop {
            if stores.synced() {
                telemetry.health.scope_synced();
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}

async fn log_result<K: Managed>(
    result: Result<(ObjectRef<K>, Action), ControllerError<Error, watcher::Error>>,
) {
    match result {
        Ok((object, _)) => tracing::debug!(%object, "reconciled"),
        Err(ControllerError::ReconcilerFailed(error, object)) => {
            tracing::debug!(%object, %error, "reconcile failed; retrying with backoff")
        }
        // A deleted object still queued: nothing to do.
        Err(ControllerError::ObjectNotFound(object)) => {
            tracing::debug!(%object, "object gone before its reconcile")
        }
        Err(error) => tracing::warn!(%error, "controller error"),
    }
}
