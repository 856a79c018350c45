//! Bulk drift checks: a converged object's periodic check compared against one account
//! snapshot (GetAccountAuthorizationDetails and ListRoles, shared by every object of the
//! account and read at most once per resync period) instead of its own reads. Only an
//! object the snapshot fully answers for, in a snapshot read after this process last
//! reconciled it with its own reads, is checked this way; any difference, and anything the
//! snapshot cannot vouch for, takes the per-object path, whose reads decide.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::{Resource, ResourceExt};

use super::{Converged, Managed, kind_name};
use crate::api::CommonStatus;
use crate::api::tenancy::DEFAULT_PATH_ROOT;
use crate::aws::iam::snapshot::{AccountSnapshot, covering_prefixes};
use crate::conditions::READY;
use crate::context::Context;
use crate::tenancy::Rules;

/// After a failed snapshot read, drift checks use their own reads for this long (or the
/// resync period, if shorter) before the snapshot is tried again.
const RETRY_FAILED_SNAPSHOT: Duration = Duration::from_secs(60);

/// An account's snapshot, fetched on demand by the first drift check that finds it missing
/// or older than the resync period; concurrent checks wait for that one read.
#[derive(Default)]
pub struct SnapshotCell {
    slot: tokio::sync::Mutex<Option<Fetch>>,
}

enum Fetch {
    Read {
        snapshot: Arc<AccountSnapshot>,
        /// When the read began: anything written before then is in it.
        started: Instant,
    },
    Failed {
        at: Instant,
    },
}

/// A snapshot and the instant its read began.
pub type Taken = (Arc<AccountSnapshot>, Instant);

impl SnapshotCell {
    /// The account's snapshot, read now if there is none younger than the resync period;
    /// `None` while reading it fails.
    pub async fn get(&self, ctx: &Context) -> Option<Taken> {
        let period = ctx.settings.resync;
        let mut slot = self.slot.lock().await;
        match &*slot {
            Some(Fetch::Read { snapshot, started }) if started.elapsed() < period => {
                return Some((snapshot.clone(), *started));
            }
            Some(Fetch::Failed { at }) if at.elapsed() < period.min(RETRY_FAILED_SNAPSHOT) => {
                return None;
            }
            _ => {}
        }
        let started = Instant::now();
        match ctx.iam.account_snapshot(&prefixes(ctx)).await {
            Ok(snapshot) => {
                tracing::debug!(
                    roles = snapshot.roles.len(),
                    policies = snapshot.policies.len(),
                    took = ?started.elapsed(),
                    "read the account snapshot"
                );
                let snapshot = Arc::new(snapshot);
                *slot = Some(Fetch::Read {
                    snapshot: snapshot.clone(),
                    started,
                });
                Some((snapshot, started))
            }
            Err(error) => {
                tracing::warn!(%error, "could not read the account snapshot: drift checks read each object instead");
                *slot = Some(Fetch::Failed { at: Instant::now() });
                None
            }
        }
    }
}

/// The IAM paths rolecall's objects live under: `/rolecall/` and every Tenancy's path.
fn prefixes(ctx: &Context) -> Vec<String> {
    let tenancies = ctx.stores.tenancies.state();
    covering_prefixes(
        std::iter::once(DEFAULT_PATH_ROOT.to_owned())
            .chain(tenancies.iter().filter_map(|t| t.spec.path.clone())),
    )
}

/// This process's last reconcile of each object with its own reads.
#[derive(Default)]
pub struct Converges(Mutex<HashMap<String, Converge>>);

#[derive(Clone, Copy, Debug)]
struct Converge {
    at: Instant,
    /// The object's annotations then: touching one asks for a real look.
    annotations: u64,
}

impl Converges {
    pub fn record<K: Resource>(&self, key: &str, object: &K) {
        let converge = Converge {
            at: Instant::now(),
            annotations: annotations_hash(object),
        };
        self.0
            .lock()
            .expect("converges lock")
            .insert(key.to_owned(), converge);
    }

    pub fn forget(&self, key: &str) {
        self.0.lock().expect("converges lock").remove(key);
    }

    fn get(&self, key: &str) -> Option<Converge> {
        self.0.lock().expect("converges lock").get(key).copied()
    }
}

fn annotations_hash<K: Resource>(object: &K) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    object.annotations().hash(&mut hasher);
    hasher.finish()
}

/// What a bulk check found.
pub enum Verdict<S> {
    /// AWS matches the spec and the status: nothing to read or write.
    InSync(Converged<S>),
    /// The snapshot differs from the spec or the status: the per-object path decides.
    Drift,
    /// The snapshot cannot vouch for the object (none, failed, older than its last
    /// reconcile, outside its paths, a kind or field it lacks): the per-object path.
    Unusable,
}

impl<S> Verdict<S> {
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::InSync(_) => "in_sync",
            Verdict::Drift => "drift",
            Verdict::Unusable => "per_object",
        }
    }
}

/// A converged object's drift check against the account snapshot.
pub async fn check<K: Managed>(
    object: &K,
    ctx: &Context,
    rules: &Rules,
    desired: &K::Desired,
    key: &str,
) -> Verdict<K::Status> {
    let Some(last) = ctx.converges.get(key) else {
        return Verdict::Unusable;
    };
    if last.annotations != annotations_hash(object) {
        return Verdict::Unusable;
    }
    if let Some(periods) = K::FULL_READ_EVERY
        && last.at.elapsed() >= ctx.settings.resync.saturating_mul(periods)
    {
        return Verdict::Unusable;
    }
    let Some((snapshot, started)) = ctx.snapshot.get(ctx).await else {
        return Verdict::Unusable;
    };
    if started <= last.at {
        return Verdict::Unusable;
    }
    let Some(observed) = object.observe_bulk(&snapshot, desired) else {
        return Verdict::Unusable;
    };
    if object.claim(ctx, rules, desired, &observed).is_err() {
        return Verdict::Drift;
    }
    let plan = object.plan(desired, &observed);
    if !plan.actions.is_empty() || plan.retry_soon {
        return Verdict::Drift;
    }
    let Some(current) = object.current_status() else {
        return Verdict::Drift;
    };
    if !same_status::<K>(current, &plan.status) || !same_ready::<K>(current, &plan.readiness) {
        return Verdict::Drift;
    }
    Verdict::InSync(Converged {
        status: plan.status,
        readiness: plan.readiness,
        retry_soon: false,
    })
}

/// The kind's own status fields equal (the common ones are the driver's).
fn same_status<K: Managed>(current: &K::Status, planned: &K::Status) -> bool {
    let (mut current, mut planned) = (current.clone(), planned.clone());
    *K::status_mut(&mut current) = CommonStatus::default();
    *K::status_mut(&mut planned) = CommonStatus::default();
    current == planned
}

fn same_ready<K: Managed>(current: &K::Status, readiness: &crate::conditions::Readiness) -> bool {
    let mut current = current.clone();
    K::status_mut(&mut current)
        .conditions
        .iter()
        .find(|condition| condition.type_ == READY)
        .is_some_and(|condition| {
            (condition.status == "True") == readiness.ready
                && condition.reason == readiness.reason
                && condition.message == readiness.message
        })
}

/// Counts one drift check by how it was answered.
pub fn count<K: Managed>(ctx: &Context, verdict: &'static str) {
    ctx.telemetry
        .metrics
        .drift_checked(kind_name::<K>(), verdict);
}
