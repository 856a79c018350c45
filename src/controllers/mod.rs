//! The reconcile driver every kind shares: the finalizer, dry-run, the tenancy hook (validate,
//! then admit against the namespace's rules, then converge in the namespace's account), in-use
//! protection, the single status write, Events once per change of Ready, metrics, and one
//! failure path with jittered backoff. The kinds live in their own modules; `wiring` builds the
//! controllers.

pub mod binding;
pub mod bulk;
pub mod gate;
pub mod group;
pub mod instance_profile;
pub mod password_policy;
pub mod permissions;
pub mod policy;
pub mod references;
pub mod role;
pub mod rules_watch;
#[cfg(test)]
mod scripted;
pub mod shared_watch;
pub mod stores;
pub mod tags;
pub mod user;
pub mod watch_backoff;
pub mod wiring;
pub mod written;

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{self, Event as FinalizerEvent};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::{CommonStatus, DeletionPolicy};
use crate::conditions::{ADOPT_ANNOTATION, FINALIZER, Readiness, reason, with_ready};
use crate::context::Context;
use crate::error::Error;
use crate::tenancy::Rules;
use gate::{Gate, Lane};
use stores::Stores;

/// Field manager for status writes.
const MANAGER: &str = "rolecall";

/// What a successful converge leaves behind.
pub struct Converged<S> {
    pub status: S,
    pub readiness: Readiness,
    /// AWS is still settling (an association in progress): look again soon, not at resync.
    pub retry_soon: bool,
}

/// A kind's plan: the writes that take AWS from what was observed to what the spec asks for,
/// and the status and readiness once they are made. Only what AWS assigns on a write (the id
/// of a created object, a new version's number) is left for `apply` to fill in.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan<A, S> {
    pub actions: Vec<A>,
    pub status: S,
    pub readiness: Readiness,
    /// AWS is still settling (an association in progress): look again soon, not at resync.
    pub retry_soon: bool,
}

impl<A, S> Plan<A, S> {
    /// A plan that reports Available with `message`.
    pub fn available(actions: Vec<A>, status: S, message: impl Into<String>) -> Self {
        Plan {
            actions,
            status,
            readiness: Readiness::available(message),
            retry_soon: false,
        }
    }
}

/// A kind rolecall reconciles. The driver runs, in order: `validate`, the namespace's rules
/// (`admit`), then in the namespace's account `desired` → `observe` → `plan` → `apply` for
/// each planned action; on deletion, `cleanup`.
pub trait Managed:
    Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Serialize + Send + Sync + 'static
{
    type Status: Serialize + Clone + PartialEq + Default + Debug + Send + Sync;
    /// The spec under the namespace's rules, references resolved.
    type Desired: Send + Sync;
    /// What AWS has, as far as the plan needs it.
    type Observed: Send + Sync;
    /// One AWS write.
    type Action: Debug + Send + Sync;

    fn status_mut(status: &mut Self::Status) -> &mut CommonStatus;
    fn current_status(&self) -> Option<&Self::Status>;
    fn deletion_policy(&self) -> DeletionPolicy;

    /// The API this object is read and written through: its namespace's ([`namespaced`]), or
    /// the cluster's for a cluster-scoped kind.
    fn api(client: kube::Client, namespace: &str) -> Api<Self>;

    /// The rules the object is held to: its namespace's Tenancy, or the defaults.
    fn rules(&self, ctx: &Context) -> Result<Rules, Error> {
        ctx.rules_for(&self.namespace().unwrap_or_default())
    }

    /// The spec checked for what the schema cannot express, before the rules: a malformed
    /// spec is reported as InvalidSpec whatever the rules would say of it.
    fn validate(&self, _ctx: &Context) -> Result<(), Error> {
        Ok(())
    }

    /// The namespace's rules checked against the spec alone, before any AWS call: the hook
    /// where tenancy is enforced. Checks that need AWS state (adoption, an instance's tags,
    /// whose association a binding would replace) run in `observe`, still before any write.
    fn admit(&self, rules: &Rules, ctx: &Context) -> Result<(), Error>;

    /// The spec with the rules' path and boundary applied and references resolved from the
    /// reflector stores (a reference not Ready is DependencyNotReady). No AWS call.
    fn desired(&self, ctx: &Context, rules: &Rules) -> Result<Self::Desired, Error>;

    /// Every AWS read the plan needs, and the checks on what is found there (whose it is,
    /// whether the rules allow touching it). No AWS write.
    fn observe(
        &self,
        ctx: &Context,
        rules: &Rules,
        desired: &Self::Desired,
    ) -> impl Future<Output = Result<Self::Observed, Error>> + Send;

    /// Pure: the writes to make and the status and readiness they leave.
    fn plan(
        &self,
        desired: &Self::Desired,
        observed: &Self::Observed,
    ) -> Plan<Self::Action, Self::Status>;

    /// The only code that writes to AWS: makes one planned action, records in the projected
    /// status what AWS assigned, and returns what was done, in words, for its Event.
    fn apply(
        &self,
        ctx: &Context,
        desired: &Self::Desired,
        action: &Self::Action,
        status: &mut Self::Status,
    ) -> impl Future<Output = Result<String, Error>> + Send;

    /// After the writes: readiness judged again from what AWS answered, for a kind whose
    /// writes can complete at once or later (an association). Most kinds keep the plan's.
    fn reassess(&self, _plan: &mut Plan<Self::Action, Self::Status>) {}

    fn cleanup(&self, ctx: &Context) -> impl Future<Output = Result<(), Error>> + Send;

    /// Whether a converged object of this kind is checked against the account snapshot
    /// ([`bulk`]) rather than its own reads.
    const BULK_CHECKED: bool = false;

    /// For what the snapshot lacks (a policy's tags): the object still takes the per-object
    /// path once this many resync periods have passed since its last one.
    const FULL_READ_EVERY: Option<u32> = None;

    /// What `observe` would read, taken from the account snapshot; `None` when the snapshot
    /// cannot answer for this object (a path it does not cover).
    fn observe_bulk(
        &self,
        _snapshot: &crate::aws::iam::snapshot::AccountSnapshot,
        _desired: &Self::Desired,
    ) -> Option<Self::Observed> {
        None
    }

    /// The checks `observe` makes on what it found (whose it is, what the rules allow), for
    /// an observation taken from the snapshot.
    fn claim(
        &self,
        _ctx: &Context,
        _rules: &Rules,
        _desired: &Self::Desired,
        _observed: &Self::Observed,
    ) -> Result<(), Error> {
        Ok(())
    }

    /// The objects that still refer to this one (`Kind name`): its AWS object is not deleted
    /// while any exists.
    fn holders(&self, _stores: &Stores) -> Vec<String> {
        vec![]
    }
}

/// desired → observe → plan → apply: each planned write made in order (logged, not made, in
/// dry-run), one Event each. A converged object's drift check is first compared against the
/// account snapshot ([`bulk`]); only a difference, or a snapshot that cannot answer for the
/// object, leads to its own reads.
async fn converge<K: Managed>(
    object: &K,
    ctx: &Context,
    rules: &Rules,
    drift_check: bool,
) -> Result<Converged<K::Status>, Error> {
    let desired = object.desired(ctx, rules)?;
    let key = object_key(object);
    if drift_check {
        let verdict = if ctx.settings.bulk_drift_checks && K::BULK_CHECKED {
            bulk::check(object, ctx, rules, &desired, &key).await
        } else {
            bulk::Verdict::Unusable
        };
        bulk::count::<K>(ctx, verdict.label());
        if let bulk::Verdict::InSync(converged) = verdict {
            return Ok(converged);
        }
    }
    let observed = object.observe(ctx, rules, &desired).await?;
    let mut plan = object.plan(&desired, &observed);
    if ctx.settings.dry_run {
        log_planned(
            ctx,
            object,
            plan.actions.iter().map(|action| format!("{action:?}")),
        );
    } else if !plan.actions.is_empty() {
        for action in &plan.actions {
            let note = object
                .apply(ctx, &desired, action, &mut plan.status)
                .await?;
            ctx.event(object, false, &action_reason(action), "Reconcile", note)
                .await;
        }
        object.reassess(&mut plan);
    }
    ctx.converges.record(&key, object);
    Ok(Converged {
        status: plan.status,
        readiness: plan.readiness,
        retry_soon: plan.retry_soon,
    })
}

/// [`Managed::api`] for a namespaced kind.
pub fn namespaced<K>(client: kube::Client, namespace: &str) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>,
{
    Api::namespaced(client, namespace)
}

/// Whether a dependency's status says Ready for its current generation.
pub fn is_ready(status: &CommonStatus, generation: Option<i64>) -> bool {
    status.observed_generation == generation
        && status.conditions.iter().any(|condition| {
            condition.type_ == crate::conditions::READY && condition.status == "True"
        })
}

/// The Event reason for an applied action: its variant name (`CreateDefaultVersion`,
/// `AttachPolicy`, ...). Distinct reasons keep the recorder from folding different changes
/// into one event series.
pub fn action_reason(action: &impl Debug) -> String {
    let text = format!("{action:?}");
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or("Updated")
        .to_owned()
}

/// Cleanup guard: true (after recording why) when the AWS object is not ours to delete.
pub async fn left_to_its_owner<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    object: &K,
    observed: &tags::Tags,
    owner: &str,
    what: &str,
) -> bool {
    if tags::ownership(observed, owner, false) == tags::Ownership::Ours {
        return false;
    }
    let note = format!("left {what} in AWS: rolecall does not own it");
    ctx.event(object, false, "Retained", "Delete", note).await;
    true
}

/// An existing AWS object may be acted on when it is ours, or untagged with the adopt
/// annotation and the rules allow adopting `name`; otherwise Conflict (someone else's) or
/// Forbidden (adoption not allowed).
pub fn claim_existing<K: Resource>(
    object: &K,
    rules: &Rules,
    kind: crate::tenancy::AwsKind,
    name: &str,
    observed: &tags::Tags,
    owner: &str,
    what: &str,
) -> Result<(), Error> {
    let adopt = adopt_requested(object);
    if adopt && tags::ownership(observed, owner, true) == tags::Ownership::Adopt {
        rules.check_adoption(kind, name, what)?;
    }
    tags::ensure_ours(observed, owner, adopt, what)
}

pub fn adopt_requested<K: Resource>(object: &K) -> bool {
    object
        .annotations()
        .get(ADOPT_ANNOTATION)
        .is_some_and(|value| value == "true")
}

/// Dry-run: log each planned write and keep it for inspection; nothing is sent to AWS.
fn log_planned<K: Resource>(ctx: &Context, object: &K, actions: impl Iterator<Item = String>) {
    let name = format!(
        "{}/{}",
        object.namespace().unwrap_or_default(),
        object.name_any()
    );
    let mut planned = ctx.planned.lock().expect("planned lock");
    for action in actions {
        tracing::info!(object = %name, %action, "dry run: would apply");
        remember(&mut planned, format!("{name}: {action}"));
    }
}

/// Dry-run keeps this many planned actions, the newest, for inspection: a long dry run must
/// not grow without bound.
pub const PLANNED_KEPT: usize = 1000;

fn remember(planned: &mut std::collections::VecDeque<String>, line: String) {
    if planned.len() >= PLANNED_KEPT {
        planned.pop_front();
    }
    planned.push_back(line);
}

fn object_key<K: Resource<DynamicType = ()>>(object: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        object.namespace().unwrap_or_default(),
        object.name_any()
    )
}

/// `period` scaled by a random factor in `1 ± spread`, so that objects created (or failed)
/// together are not retried together.
pub fn jittered(period: Duration, spread: f64) -> Duration {
    let unit = (getrandom::u64().unwrap_or(0) >> 11) as f64 / (1u64 << 53) as f64;
    period.mul_f64(1.0 - spread + 2.0 * spread * unit)
}

/// How soon to look again after acting on a stale cached copy.
pub const STALE_CACHE_RETRY: Duration = Duration::from_millis(500);

/// Drift checks spread ±10% around the resync period.
const RESYNC_SPREAD: f64 = 0.1;
/// Retries spread ±25% around their backoff step: after an outage, objects do not come back
/// in lockstep.
const BACKOFF_SPREAD: f64 = 0.25;

/// How soon to look again while AWS is still settling (an association in progress): 2 s,
/// doubling to a minute.
pub fn settling_delay(attempts: u32) -> Duration {
    let factor = 1u64 << attempts.saturating_sub(1).min(5);
    Duration::from_secs((2 * factor).min(60))
}

/// The reconciler handed to kube's `Controller` for every kind: waits for a turn at the kind's
/// gate, then reconciles the object as it is now (it may have changed while it waited).
pub fn gated<K: Managed>(
    gate: Arc<Gate>,
    store: Store<K>,
) -> impl FnMut(Arc<K>, Arc<Context>) -> BoxFuture<'static, Result<Action, Error>> {
    move |object, ctx| {
        let (gate, store) = (gate.clone(), store.clone());
        async move {
            let lane = if settled(object.as_ref()) {
                Lane::DriftCheck
            } else {
                Lane::Work
            };
            let Some(_permit) = gate.enter(lane).await else {
                return Ok(Action::await_change()); // shutting down
            };
            let Some(latest) = store.get(&ObjectRef::from_obj(object.as_ref())) else {
                return Ok(Action::await_change()); // gone while it waited
            };
            // Boxed so a queued reconcile stays small: only running ones hold the whole state.
            Box::pin(reconcile(latest, ctx)).await
        }
        .boxed()
    }
}

/// Converged at its current generation and not being deleted: its next reconcile only looks
/// for drift.
fn settled<K: Managed>(object: &K) -> bool {
    object.meta().deletion_timestamp.is_none()
        && object.current_status().is_some_and(|status| {
            let mut status = status.clone();
            is_ready(K::status_mut(&mut status), object.meta().generation)
        })
}

/// Which step of a reconcile failed: the Ready condition says so differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Converge,
    Cleanup,
}

/// One reconcile of one object, counted and timed. Converge and cleanup failures take the
/// same path: counted once, reported once per change of the Ready condition, and retried
/// with a jittered backoff.
pub async fn reconcile<K: Managed>(object: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let key = object_key(object.as_ref());
    let result = reconcile_once(object.clone(), &ctx).await;
    let succeeded = result.is_ok();
    let action = match result {
        Ok(action) => {
            ctx.clear_failures(&key);
            action
        }
        Err((phase, error)) => failed(object.as_ref(), phase, error, &ctx).await,
    };
    ctx.telemetry
        .metrics
        .reconciled(kind_name::<K>(), succeeded, started.elapsed());
    Ok(action)
}

/// The kind's name as a `'static` label value.
pub fn kind_name<K: Resource<DynamicType = ()>>() -> &'static str {
    match K::kind(&()).as_ref() {
        "IamPolicy" => "IamPolicy",
        "IamRole" => "IamRole",
        "InstanceProfile" => "InstanceProfile",
        "Ec2InstanceBinding" => "Ec2InstanceBinding",
        "IamGroup" => "IamGroup",
        "IamUser" => "IamUser",
        "AccountPasswordPolicy" => "AccountPasswordPolicy",
        _ => "Other",
    }
}

async fn reconcile_once<K: Managed>(
    object: Arc<K>,
    ctx: &Arc<Context>,
) -> Result<Action, (Phase, Error)> {
    let api = K::api(ctx.client.clone(), &object.namespace().unwrap_or_default());
    if ctx.settings.dry_run {
        // Dry-run writes nowhere, not even a finalizer or a status.
        admitted_converge(object.as_ref(), ctx)
            .await
            .map_err(|error| (Phase::Converge, error))?;
        return Ok(Action::requeue(jittered(
            ctx.settings.resync,
            RESYNC_SPREAD,
        )));
    }
    let result = finalizer::finalizer(&api, FINALIZER, object, |event| async {
        match event {
            FinalizerEvent::Apply(object) => apply(&api, &object, ctx).await,
            FinalizerEvent::Cleanup(object) => cleanup(object.as_ref(), ctx).await,
        }
    })
    .await;
    // The finalizer patch tests the finalizers it saw: a 422 means this reconcile ran on a
    // cached copy older than its own earlier write, whose watch event is on its way.
    if let Err(finalizer::Error::AddFinalizer(kube::Error::Api(status))) = &result
        && status.code == 422
    {
        return Ok(Action::requeue(STALE_CACHE_RETRY));
    }
    result.map_err(|error| match error {
        finalizer::Error::ApplyFailed(error) => (Phase::Converge, error),
        finalizer::Error::CleanupFailed(error) => (Phase::Cleanup, error),
        finalizer::Error::AddFinalizer(error) => (Phase::Converge, Error::Kube(error)),
        finalizer::Error::RemoveFinalizer(error) => (Phase::Cleanup, Error::Kube(error)),
        other => (Phase::Converge, Error::InvalidSpec(other.to_string())),
    })
}

/// The spec validated, the namespace's rules checked against it, then the kind's converge in
/// the namespace's account.
async fn admitted_converge<K: Managed>(
    object: &K,
    ctx: &Arc<Context>,
) -> Result<Converged<K::Status>, Error> {
    object.validate(ctx)?;
    let rules = object.rules(ctx)?;
    object.admit(&rules, ctx)?;
    let ctx = ctx.for_account(rules.spec.account.as_ref()).await;
    let mut converged = converge(object, &ctx, &rules, settled(object)).await?;
    K::status_mut(&mut converged.status).account = Some(ctx.account().to_owned());
    Ok(converged)
}

async fn apply<K: Managed>(api: &Api<K>, object: &K, ctx: &Arc<Context>) -> Result<Action, Error> {
    let converged = admitted_converge(object, ctx).await?;
    announce(ctx, object, &converged.readiness).await;
    write_status(api, object, converged.status, &converged.readiness, ctx).await?;
    let key = object_key(object);
    if converged.retry_soon {
        let attempts = ctx.record_settling(&key);
        return Ok(Action::requeue(jittered(
            settling_delay(attempts),
            BACKOFF_SPREAD,
        )));
    }
    ctx.clear_settling(&key);
    Ok(Action::requeue(jittered(
        ctx.settings.resync,
        RESYNC_SPREAD,
    )))
}

async fn cleanup<K: Managed>(object: &K, ctx: &Arc<Context>) -> Result<Action, Error> {
    if object.deletion_policy() == DeletionPolicy::Retain {
        ctx.event(
            object,
            false,
            "Retained",
            "Delete",
            "deletionPolicy is Retain: the AWS object stays".into(),
        )
        .await;
        return Ok(Action::await_change());
    }
    // In-use protection: deleting the AWS object now would take it from under an object that
    // still refers to it (instances would lose their credentials before their own binding
    // goes). The holder's removal wakes us through the wiring's triggers.
    let holders = object.holders(&ctx.stores);
    if !holders.is_empty() {
        return Err(Error::InUse(format!(
            "waiting for {} to be deleted first: still referenced",
            holders.join(", ")
        )));
    }
    // Cleanup acts in the account the namespace's rules name now; an object made in another
    // (its Tenancy's account changed or went) is not looked for in the wrong one.
    let rules = object.rules(ctx)?;
    let ctx = ctx.for_account(rules.spec.account.as_ref()).await;
    let created_in = object
        .current_status()
        .cloned()
        .and_then(|mut status| K::status_mut(&mut status).account.take());
    if let Some(created_in) = created_in.filter(|account| account != ctx.account()) {
        return Err(Error::Conflict(format!(
            "created in AWS account {created_in}, but the namespace's rules now reach account {}; \
             restore the Tenancy's account to delete it there, or remove the finalizer to leave it",
            ctx.account()
        )));
    }
    object.cleanup(&ctx).await?;
    ctx.written.forget(&object.uid().unwrap_or_default());
    ctx.converges.forget(&object_key(object));
    Ok(Action::await_change())
}

/// Reports a failed reconcile and picks the next attempt.
async fn failed<K: Managed>(object: &K, phase: Phase, error: Error, ctx: &Context) -> Action {
    let key = object_key(object);
    let failures = ctx.record_failure(&key);
    let readiness = match (phase, &error) {
        (Phase::Cleanup, Error::InUse(message)) => {
            Readiness::not_ready(reason::DELETING, message.clone())
        }
        (Phase::Cleanup, error) => {
            Readiness::not_ready(reason::DELETING, format!("cannot delete yet: {error}"))
        }
        (Phase::Converge, error) => error.readiness(),
    };
    if error.is_expected() {
        tracing::info!(object = %key, %error, "waiting");
    } else {
        tracing::warn!(object = %key, %error, failures, "reconcile failed");
    }
    announce(ctx, object, &readiness).await;
    if !ctx.settings.dry_run {
        let api = K::api(ctx.client.clone(), &object.namespace().unwrap_or_default());
        let previous = object.current_status().cloned().unwrap_or_default();
        if let Err(error) = write_status(&api, object, previous, &readiness, ctx).await {
            tracing::warn!(object = %key, %error, "could not write the failure to status");
        }
    }
    error
        .retry_after(failures)
        .map(|delay| jittered(delay, BACKOFF_SPREAD))
        .map_or_else(Action::await_change, Action::requeue)
}

/// One Event when the Ready condition changes to something a user should hear about: every
/// not-ready outcome, and a Ready with a reason other than plain `Available` (such as a
/// binding with no instances). The same outcome on the next resync says nothing.
async fn announce<K: Managed>(ctx: &Context, object: &K, readiness: &Readiness) {
    if readiness.ready && readiness.reason == reason::AVAILABLE {
        return;
    }
    let previous = object.current_status().cloned().and_then(|mut status| {
        K::status_mut(&mut status)
            .conditions
            .iter()
            .find(|condition| condition.type_ == crate::conditions::READY)
            .cloned()
    });
    let warning = matches!(
        readiness.reason,
        reason::CONFLICT | reason::AWS_ERROR | reason::INVALID_SPEC | reason::FORBIDDEN
    );
    // A wait that only changes its words ("does not exist" to "not Ready yet") is the same
    // wait; a failure with new words is news.
    let unchanged = previous.is_some_and(|condition| {
        condition.status == if readiness.ready { "True" } else { "False" }
            && condition.reason == readiness.reason
            && (condition.message == readiness.message || !warning)
            && condition.observed_generation == object.meta().generation
    });
    if unchanged {
        return;
    }
    let action = if object.meta().deletion_timestamp.is_some() {
        "Delete"
    } else {
        "Reconcile"
    };
    ctx.event(
        object,
        warning,
        readiness.reason,
        action,
        readiness.message.clone(),
    )
    .await;
}

/// Writes status with server-side apply, skipping the write when the object has that status
/// already (by the store's copy, or by this process's own newer write: see `written`).
async fn write_status<K: Managed>(
    api: &Api<K>,
    object: &K,
    mut status: K::Status,
    readiness: &Readiness,
    ctx: &Context,
) -> Result<(), Error> {
    let previous_conditions = object
        .current_status()
        .cloned()
        .map(|mut previous| std::mem::take(&mut K::status_mut(&mut previous).conditions))
        .unwrap_or_default();
    let common = K::status_mut(&mut status);
    common.observed_generation = object.meta().generation;
    common.conditions = with_ready(&previous_conditions, readiness, object.meta().generation);
    let uid = object.uid().unwrap_or_default();
    let cached = written::Cached {
        uid: &uid,
        resource_version: object.meta().resource_version.as_deref(),
        status: object.current_status(),
    };
    if ctx.written.is_current(&cached, &status) {
        return Ok(());
    }
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    let updated = api
        .patch_status(
            &object.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    ctx.written
        .wrote(&uid, updated.meta().resource_version.as_deref(), &status);
    Ok(())
}

/// `error_policy` for kube's `Controller`. `reconcile` handles its own failures, so this only
/// sees what kube itself reports; it retries with the same backoff as everything else.
pub fn error_policy<K: Managed>(object: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action {
    let failures = ctx.record_failure(&object_key(object.as_ref())).max(1);
    error
        .retry_after(failures)
        .map(|delay| jittered(delay, BACKOFF_SPREAD))
        .map_or_else(Action::await_change, Action::requeue)
}

#[cfg(test)]
mod tests {
    #[derive(Debug)]
    #[allow(dead_code)]
    enum Example {
        Create,
        AttachPolicy { arn: String },
    }

    #[test]
    fn dry_run_keeps_only_the_newest_planned_actions() {
        let mut planned = std::collections::VecDeque::new();
        for n in 0..super::PLANNED_KEPT + 10 {
            super::remember(&mut planned, format!("ns/p: action {n}"));
        }
        assert_eq!(planned.len(), super::PLANNED_KEPT);
        assert_eq!(planned.front().map(String::as_str), Some("ns/p: action 10"));
    }

    #[test]
    fn retries_are_spread_not_in_lockstep() {
        let step = std::time::Duration::from_secs(8);
        let delays: std::collections::BTreeSet<_> = (0..50)
            .map(|_| super::jittered(step, super::BACKOFF_SPREAD))
            .collect();
        assert!(delays.len() > 40, "only {} distinct delays", delays.len());
        for delay in delays {
            assert!(
                delay >= step.mul_f64(0.75) && delay <= step.mul_f64(1.25),
                "{delay:?}"
            );
        }
    }

    #[test]
    fn settling_looks_again_sooner_first_then_backs_off() {
        let delays: Vec<u64> = (1..=8)
            .map(|n| super::settling_delay(n).as_secs())
            .collect();
        assert_eq!(delays, vec![2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn event_reasons_are_action_names() {
        assert_eq!(super::action_reason(&Example::Create), "Create");
        assert_eq!(
            super::action_reason(&Example::AttachPolicy { arn: "a".into() }),
            "AttachPolicy"
        );
    }
}
