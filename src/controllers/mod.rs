//! The reconcile machinery every kind shares (finalizer, status, events, backoff, resync),
//! and the wiring of one `Controller` per kind.

pub mod binding;
pub mod gate;
pub mod instance_profile;
pub mod policy;
pub mod role;
pub mod tags;

use std::fmt::Debug;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
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
use gate::{Gate, Lane};

/// Field manager for status writes.
const MANAGER: &str = "rolecall";

/// What a successful converge leaves behind.
pub struct Converged<S> {
    pub status: S,
    pub readiness: Readiness,
    /// Number of AWS writes made (or planned, in dry-run).
    pub changes: usize,
    /// AWS is still settling (an association in progress): look again soon, not at resync.
    pub retry_soon: bool,
}

/// A kind rolecall reconciles: observe → plan → apply in `converge`, teardown in `cleanup`.
pub trait Managed:
    Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
    + Clone
    + Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + 'static
{
    type Status: Serialize + Clone + PartialEq + Default + Debug + Send + Sync;

    fn status_mut(status: &mut Self::Status) -> &mut CommonStatus;
    fn current_status(&self) -> Option<&Self::Status>;
    fn deletion_policy(&self) -> DeletionPolicy;
    fn converge(
        &self,
        ctx: &Context,
    ) -> impl Future<Output = Result<Converged<Self::Status>, Error>> + Send;
    fn cleanup(&self, ctx: &Context) -> impl Future<Output = Result<(), Error>> + Send;
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

pub fn adopt_requested<K: Resource>(object: &K) -> bool {
    object
        .annotations()
        .get(ADOPT_ANNOTATION)
        .is_some_and(|value| value == "true")
}

/// Dry-run: log each planned write and keep it for inspection; nothing is sent to AWS.
pub fn log_planned<K: Resource>(ctx: &Context, object: &K, actions: impl Iterator<Item = String>) {
    let name = format!(
        "{}/{}",
        object.namespace().unwrap_or_default(),
        object.name_any()
    );
    let mut planned = ctx.planned.lock().expect("planned lock");
    for action in actions {
        tracing::info!(object = %name, %action, "dry run: would apply");
        planned.push(format!("{name}: {action}"));
    }
}

fn object_key<K: Resource<DynamicType = ()>>(object: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        object.namespace().unwrap_or_default(),
        object.name_any()
    )
}

/// The resync period with ±10% jitter, so objects created together do not resync together.
fn jittered(period: Duration) -> Duration {
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let fraction = 0.9 + (random % 2001) as f64 / 10_000.0;
    period.mul_f64(fraction)
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

/// Counts and times one reconcile.
pub async fn reconcile<K: Managed>(object: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let result = reconcile_once(object, &ctx).await;
    ctx.telemetry
        .metrics
        .reconciled(kind_name::<K>(), result.is_ok(), started.elapsed());
    result
}

/// The kind's name as a `'static` label value.
pub fn kind_name<K: Resource<DynamicType = ()>>() -> &'static str {
    match K::kind(&()).as_ref() {
        "IamPolicy" => "IamPolicy",
        "IamRole" => "IamRole",
        "InstanceProfile" => "InstanceProfile",
        "Ec2InstanceBinding" => "Ec2InstanceBinding",
        _ => "Other",
    }
}

async fn reconcile_once<K: Managed>(object: Arc<K>, ctx: &Arc<Context>) -> Result<Action, Error> {
    let namespace = object.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
    if ctx.settings.dry_run {
        // Dry-run writes nowhere, not even a finalizer or a status.
        object.converge(ctx).await?;
        return Ok(Action::requeue(jittered(ctx.settings.resync)));
    }
    finalizer::finalizer(&api, FINALIZER, object, |event| async {
        match event {
            FinalizerEvent::Apply(object) => apply(&api, &object, ctx).await,
            FinalizerEvent::Cleanup(object) => cleanup(&api, &object, ctx).await,
        }
    })
    .await
    .map_err(|error| match error {
        finalizer::Error::ApplyFailed(error) | finalizer::Error::CleanupFailed(error) => error,
        finalizer::Error::AddFinalizer(error) | finalizer::Error::RemoveFinalizer(error) => {
            Error::Kube(error)
        }
        other => Error::InvalidSpec(other.to_string()),
    })
}

async fn apply<K: Managed>(api: &Api<K>, object: &K, ctx: &Context) -> Result<Action, Error> {
    let key = object_key(object);
    match object.converge(ctx).await {
        Ok(converged) => {
            ctx.clear_failures(&key);
            write_status(api, object, converged.status, &converged.readiness).await?;
            if converged.retry_soon {
                return Ok(Action::requeue(binding::ASSOCIATING_RETRY));
            }
            Ok(Action::requeue(jittered(ctx.settings.resync)))
        }
        Err(error) => {
            let failures = ctx.record_failure(&key);
            let readiness = error.readiness();
            if matches!(error, Error::DependencyNotReady(_)) {
                tracing::info!(object = %key, %error, "waiting for a dependency");
            } else {
                tracing::warn!(object = %key, %error, failures, "reconcile failed");
            }
            ctx.event(
                object,
                true,
                readiness.reason,
                "Reconcile",
                readiness.message.clone(),
            )
            .await;
            let previous = object.current_status().cloned().unwrap_or_default();
            write_status(api, object, previous, &readiness).await?;
            Ok(error
                .retry_after(failures)
                .map_or_else(Action::await_change, Action::requeue))
        }
    }
}

async fn cleanup<K: Managed>(api: &Api<K>, object: &K, ctx: &Context) -> Result<Action, Error> {
    let key = object_key(object);
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
    match object.cleanup(ctx).await {
        Ok(()) => {
            ctx.clear_failures(&key);
            Ok(Action::await_change())
        }
        Err(error) => {
            // error_policy counts the failure and picks the backoff.
            let message = format!("cannot delete yet: {error}");
            tracing::warn!(object = %key, %error, "cleanup failed");
            ctx.event(object, true, reason::DELETING, "Delete", message.clone())
                .await;
            let previous = object.current_status().cloned().unwrap_or_default();
            write_status(
                api,
                object,
                previous,
                &Readiness::not_ready(reason::DELETING, message),
            )
            .await?;
            Err(error)
        }
    }
}

/// Writes status with server-side apply, skipping the write when nothing changed.
async fn write_status<K: Managed>(
    api: &Api<K>,
    object: &K,
    mut status: K::Status,
    readiness: &Readiness,
) -> Result<(), Error> {
    let previous_conditions = object
        .current_status()
        .cloned()
        .map(|mut previous| std::mem::take(&mut K::status_mut(&mut previous).conditions))
        .unwrap_or_default();
    let common = K::status_mut(&mut status);
    common.observed_generation = object.meta().generation;
    common.conditions = with_ready(&previous_conditions, readiness, object.meta().generation);
    if object.current_status() == Some(&status) {
        return Ok(());
    }
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &object.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// `error_policy` for kube's `Controller`: errors that escape `reconcile` (finalizer and
/// cleanup failures) retry with the same backoff as everything else.
pub fn error_policy<K: Managed>(object: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action {
    let failures = ctx.record_failure(&object_key(object.as_ref())).max(1);
    error
        .retry_after(failures)
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
    fn event_reasons_are_action_names() {
        assert_eq!(super::action_reason(&Example::Create), "Create");
        assert_eq!(
            super::action_reason(&Example::AttachPolicy { arn: "a".into() }),
            "AttachPolicy"
        );
    }
}
