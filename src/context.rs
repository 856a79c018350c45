//! What every reconcile shares: clients, settings, the stores, the event recorder, and
//! per-object attempt counts for backoff.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Resource, ResourceExt};

use crate::api::tenancy::AccountAccess;
use crate::aws::{AwsClients, CallLog, Ec2, Iam};
use crate::controllers::stores::Stores;
use crate::telemetry::Telemetry;
use crate::tenancy::Rules;

/// Operator settings that reconciles read.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Cluster name written into ownership tags.
    pub cluster_name: String,
    /// Observe and plan only; log the planned writes instead of making them.
    pub dry_run: bool,
    /// Period of the drift-repairing resync (jittered per object).
    pub resync: Duration,
    /// Check converged objects against one account snapshot per resync period instead of
    /// each object's own reads (see `controllers::bulk`).
    pub bulk_drift_checks: bool,
}

pub struct Context {
    pub client: Client,
    pub iam: Iam,
    pub ec2: Ec2,
    pub calls: Arc<CallLog>,
    /// Metrics and health.
    pub telemetry: Arc<Telemetry>,
    pub settings: Settings,
    /// `arn:<partition>:iam::<account>:`, the prefix of customer managed ARNs.
    pub iam_arn_prefix: String,
    /// Every object the operator manages, across its watched scopes.
    pub stores: Stores,
    recorder: Recorder,
    /// Failed reconciles in a row, per object.
    failures: Arc<Streaks>,
    /// Reconciles in a row that found AWS still settling (an association in progress).
    settling: Arc<Streaks>,
    /// Status writes the stores have not shown yet.
    pub written: Arc<crate::controllers::written::WrittenStatuses>,
    /// The newest actions planned in dry-run mode, as logged; kept for inspection.
    pub planned: Arc<Mutex<VecDeque<String>>>,
    /// This account's snapshot for bulk drift checks.
    pub snapshot: Arc<crate::controllers::bulk::SnapshotCell>,
    /// Each object's last reconcile with its own reads, in any account.
    pub converges: Arc<crate::controllers::bulk::Converges>,
    /// The operator's own clients, from which other accounts' roles are assumed.
    aws: AwsClients,
    /// The contexts of other accounts (a Tenancy's `account`), built on first use.
    accounts: Arc<Mutex<HashMap<AccountAccess, Arc<Context>>>>,
}

/// Counts of consecutive outcomes per object key.
#[derive(Default)]
struct Streaks(Mutex<HashMap<String, u32>>);

impl Streaks {
    fn record(&self, key: &str) -> u32 {
        let mut counts = self.0.lock().expect("streaks lock");
        let count = counts.entry(key.to_owned()).or_default();
        *count += 1;
        *count
    }

    fn clear(&self, key: &str) {
        self.0.lock().expect("streaks lock").remove(key);
    }
}

impl Context {
    pub fn new(
        client: Client,
        aws: &AwsClients,
        telemetry: Arc<Telemetry>,
        settings: Settings,
        iam_arn_prefix: String,
        stores: Stores,
    ) -> Self {
        let calls = telemetry.calls.clone();
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "rolecall".into(),
                instance: None,
            },
        );
        Self {
            iam: Iam::new(aws.iam.clone(), calls.clone()),
            ec2: Ec2::new(aws.ec2.clone(), calls.clone()),
            client,
            telemetry,
            calls,
            settings,
            iam_arn_prefix,
            stores,
            recorder,
            failures: Arc::default(),
            settling: Arc::default(),
            written: Arc::default(),
            planned: Arc::default(),
            snapshot: Arc::default(),
            converges: Arc::default(),
            aws: aws.clone(),
            accounts: Arc::default(),
        }
    }

    /// The context acting in the account `access` names (the same one for `None`): the same
    /// stores, counters and recorder, with clients that assume the account's role.
    pub async fn for_account(self: &Arc<Self>, access: Option<&AccountAccess>) -> Arc<Context> {
        let Some(access) = access else {
            return self.clone();
        };
        if let Some(found) = self.accounts.lock().expect("accounts lock").get(access) {
            return found.clone();
        }
        let clients = self
            .aws
            .assuming(&access.role_arn, access.external_id.as_deref())
            .await;
        let context = Arc::new(Context {
            client: self.client.clone(),
            iam: Iam::new(clients.iam.clone(), self.calls.clone()),
            ec2: Ec2::new(clients.ec2.clone(), self.calls.clone()),
            calls: self.calls.clone(),
            telemetry: self.telemetry.clone(),
            settings: self.settings.clone(),
            iam_arn_prefix: access.iam_arn_prefix(),
            stores: self.stores.clone(),
            recorder: self.recorder.clone(),
            failures: self.failures.clone(),
            settling: self.settling.clone(),
            written: self.written.clone(),
            planned: self.planned.clone(),
            snapshot: Arc::default(),
            converges: self.converges.clone(),
            aws: clients,
            accounts: self.accounts.clone(),
        });
        self.accounts
            .lock()
            .expect("accounts lock")
            .entry(access.clone())
            .or_insert(context)
            .clone()
    }

    pub fn owner_tag_value<K: Resource>(&self, object: &K) -> String {
        crate::conditions::owner_value(
            &self.settings.cluster_name,
            &object.namespace().unwrap_or_default(),
            &object.name_any(),
        )
    }

    /// The rules in force for `namespace`: its Tenancy's, or the defaults.
    pub fn rules_for(&self, namespace: &str) -> Result<Rules, crate::error::Error> {
        // A Tenancy may be stricter than the defaults: no rules are known until both lists
        // have been read.
        if !self.stores.rules_synced() {
            return Err(crate::error::Error::DependencyNotReady(
                "waiting to read the Tenancies and namespaces (the operator needs list and watch on both, cluster-wide)".into(),
            ));
        }
        let tenancies = self.stores.tenancies.state();
        Rules::for_namespace(
            namespace,
            &self.stores.namespace_labels(namespace),
            tenancies.iter().map(|tenancy| tenancy.as_ref()),
        )
    }

    /// The operator's AWS account, from the ARN prefix.
    pub fn account(&self) -> &str {
        self.iam_arn_prefix.split(':').nth(4).unwrap_or_default()
    }

    /// Records one more failure in a row for `key`; returns the count.
    pub fn record_failure(&self, key: &str) -> u32 {
        self.failures.record(key)
    }

    pub fn clear_failures(&self, key: &str) {
        self.failures.clear(key);
    }

    /// Records one more look in a row at AWS still settling for `key`; returns the count.
    pub fn record_settling(&self, key: &str) -> u32 {
        self.settling.record(key)
    }

    pub fn clear_settling(&self, key: &str) {
        self.settling.clear(key);
    }

    /// Publishes an Event on `object`; a failure to publish is logged, never fatal. Dry-run
    /// promises no Kubernetes writes, so it publishes nothing.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        warning: bool,
        reason: &str,
        action: &str,
        note: String,
    ) {
        if self.settings.dry_run {
            return;
        }
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, &object.object_ref(&())).await {
            tracing::warn!(%error, "could not publish event");
        }
    }
}
