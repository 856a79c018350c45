//! What every reconcile shares: clients, settings, the event recorder, and per-object failure
//! counts for backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};

use crate::api::Ec2InstanceBinding;
use crate::aws::{AwsClients, CallLog, Ec2, Iam};
use crate::telemetry::Telemetry;

/// Operator settings that reconciles read.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Cluster name written into ownership tags.
    pub cluster_name: String,
    /// Observe and plan only; log the planned writes instead of making them.
    pub dry_run: bool,
    /// Period of the drift-repairing resync (jittered per object).
    pub resync: Duration,
    /// Watch only this namespace; all namespaces when `None`.
    pub namespace: Option<String>,
}

pub struct Context {
    pub client: Client,
    pub iam: Iam,
    pub ec2: Ec2,
    pub calls: Arc<CallLog>,
    /// Metrics and health, shared by every watched scope of one process.
    pub telemetry: Arc<Telemetry>,
    pub settings: Settings,
    /// `arn:<partition>:iam::<account>:`, the prefix of customer managed ARNs.
    pub iam_arn_prefix: String,
    recorder: Recorder,
    failures: Mutex<HashMap<String, u32>>,
    /// Every binding in the watched scope, to find two bindings claiming one instance.
    pub bindings: OnceLock<Store<Ec2InstanceBinding>>,
    /// Actions planned in dry-run mode, as logged; kept for inspection.
    pub planned: Mutex<Vec<String>>,
}

impl Context {
    pub fn new(
        client: Client,
        aws: &AwsClients,
        calls: Arc<CallLog>,
        settings: Settings,
        iam_arn_prefix: String,
    ) -> Self {
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
            telemetry: Arc::new(Telemetry::new(calls.clone())),
            calls,
            settings,
            iam_arn_prefix,
            recorder,
            failures: Mutex::default(),
            bindings: OnceLock::new(),
            planned: Mutex::default(),
        }
    }

    /// Reports into `telemetry` (shared with other scopes) instead of a telemetry of its own.
    pub fn with_telemetry(mut self, telemetry: Arc<Telemetry>) -> Self {
        self.telemetry = telemetry;
        self
    }

    pub fn owner_tag_value<K: Resource>(&self, object: &K) -> String {
        crate::conditions::owner_value(
            &self.settings.cluster_name,
            &object.namespace().unwrap_or_default(),
            &object.name_any(),
        )
    }

    /// Records one more failure in a row for `key`; returns the count.
    pub fn record_failure(&self, key: &str) -> u32 {
        let mut failures = self.failures.lock().expect("failures lock");
        let count = failures.entry(key.to_owned()).or_default();
        *count += 1;
        *count
    }

    pub fn clear_failures(&self, key: &str) {
        self.failures.lock().expect("failures lock").remove(key);
    }

    /// Publishes an Event on `object`; a failure to publish is logged, never fatal.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        warning: bool,
        reason: &str,
        action: &str,
        note: String,
    ) {
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
