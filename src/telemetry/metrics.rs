//! Prometheus metrics: reconciles, their duration, AWS calls, objects by Ready state,
//! leadership and the process itself, encoded by `prometheus-client` in the Prometheus text
//! exposition format (0.0.4).

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, prometheus_text};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::aws::CallLog;

/// Upper bounds (seconds) of the reconcile duration histogram.
const DURATION_BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Labels as (name, value) pairs, in the order they are written.
type Labels<const N: usize> = [(&'static str, &'static str); N];

/// Objects of one kind by the status of their Ready condition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadyCounts {
    pub ready: u64,
    pub not_ready: u64,
    pub unknown: u64,
}

type ObjectCounter = Box<dyn Fn() -> ReadyCounts + Send + Sync>;

/// Reconciles waiting for a turn: (work, drift checks).
type QueueCounter = Box<dyn Fn() -> (usize, usize) + Send + Sync>;

/// One check of one AccountSecurityReport that passed or failed (Unknown ones are left out).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityCheck {
    pub report: String,
    pub check: String,
    pub passing: bool,
}

type CheckCounter = Box<dyn Fn() -> Vec<SecurityCheck> + Send + Sync>;

pub struct Metrics {
    /// The metrics rolecall updates as it goes: reconciles and their durations.
    registry: Registry,
    reconciles: Family<Labels<2>, Counter>,
    durations: Family<Labels<1>, Histogram>,
    drift_checks: Family<Labels<2>, Counter>,
    /// What is read at each scrape.
    live: Arc<Live>,
}

/// State read at scrape time: AWS call counts, object and queue counts, start-up time.
struct Live {
    calls: Arc<CallLog>,
    started: Instant,
    objects: Mutex<Vec<(&'static str, ObjectCounter)>>,
    queues: Mutex<Vec<(&'static str, QueueCounter)>>,
    security_checks: Mutex<Vec<CheckCounter>>,
    first_reconcile: OnceLock<Duration>,
}

impl fmt::Debug for Live {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Live")
            .field("first_reconcile", &self.first_reconcile)
            .finish_non_exhaustive()
    }
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

impl Metrics {
    pub fn new(calls: Arc<CallLog>) -> Self {
        let mut registry = Registry::default();
        let reconciles = Family::<Labels<2>, Counter>::default();
        // prometheus-client appends the `_total` suffix of counters and a final period to
        // help texts.
        registry.register(
            "rolecall_reconciles",
            "Reconciles finished, by kind and result",
            reconciles.clone(),
        );
        let durations = Family::<Labels<1>, Histogram>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        registry.register(
            "rolecall_reconcile_duration_seconds",
            "Time one reconcile takes, by kind",
            durations.clone(),
        );
        let drift_checks = Family::<Labels<2>, Counter>::default();
        registry.register(
            "rolecall_drift_checks",
            "Drift checks of converged objects, by kind and how they were answered: in_sync (the account snapshot matched, no per-object read), drift (the snapshot differed, then per-object reads) or per_object (no usable snapshot for the object)",
            drift_checks.clone(),
        );
        Self {
            registry,
            reconciles,
            durations,
            drift_checks,
            live: Arc::new(Live {
                calls,
                started: Instant::now(),
                objects: Mutex::default(),
                queues: Mutex::default(),
                security_checks: Mutex::default(),
                first_reconcile: OnceLock::new(),
            }),
        }
    }

    /// Records one finished reconcile of `kind`.
    pub fn reconciled(&self, kind: &'static str, success: bool, took: Duration) {
        let result = if success { "success" } else { "error" };
        self.reconciles
            .get_or_create(&[("kind", kind), ("result", result)])
            .inc();
        self.durations
            .get_or_create(&[("kind", kind)])
            .observe(took.as_secs_f64());
        let live = &self.live;
        live.first_reconcile.get_or_init(|| live.started.elapsed());
    }

    /// Records one drift check of `kind` answered as `result` (`in_sync`, `drift`, `per_object`).
    pub fn drift_checked(&self, kind: &'static str, result: &'static str) {
        self.drift_checks
            .get_or_create(&[("kind", kind), ("result", result)])
            .inc();
    }

    /// Time from process start to the end of the first reconcile, once there was one.
    pub fn first_reconcile(&self) -> Option<Duration> {
        self.live.first_reconcile.get().copied()
    }

    /// Adds a source of object counts for `kind` (one per watched scope; they are summed).
    pub fn count_objects(
        &self,
        kind: &'static str,
        counter: impl Fn() -> ReadyCounts + Send + Sync + 'static,
    ) {
        self.live
            .objects
            .lock()
            .expect("metrics lock")
            .push((kind, Box::new(counter)));
    }

    /// Adds a source of queue lengths for `kind` (one per watched scope; they are summed).
    pub fn count_waiting(
        &self,
        kind: &'static str,
        counter: impl Fn() -> (usize, usize) + Send + Sync + 'static,
    ) {
        self.live
            .queues
            .lock()
            .expect("metrics lock")
            .push((kind, Box::new(counter)));
    }

    /// Adds a source of security check results (the reports' status, read at each scrape,
    /// so a deleted report's checks go with it).
    pub fn count_security_checks(
        &self,
        counter: impl Fn() -> Vec<SecurityCheck> + Send + Sync + 'static,
    ) {
        self.live
            .security_checks
            .lock()
            .expect("metrics lock")
            .push(Box::new(counter));
    }

    /// The exposition text; `leader` is None when leader election is off.
    pub fn render(&self, leader: Option<bool>) -> String {
        // The scrape-time metrics go through a registry of this scrape only, so that the
        // leader flag is this call's and never shared between concurrent scrapes.
        let mut scrape = Registry::default();
        scrape.register_collector(Box::new(Scrape {
            live: self.live.clone(),
            leader: leader.unwrap_or(true),
        }));
        let mut text = String::new();
        prometheus_text::encode(&mut text, &self.registry)
            .and_then(|()| prometheus_text::encode(&mut text, &scrape))
            .expect("writing to a String cannot fail");
        text
    }
}

/// The metrics computed when scraped.
#[derive(Debug)]
struct Scrape {
    live: Arc<Live>,
    leader: bool,
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let live = &self.live;

        let mut calls = encoder.encode_descriptor(
            "rolecall_aws_calls",
            "AWS API calls, by service, operation, kind (read or write) and outcome.",
            None,
            MetricType::Counter,
        )?;
        for (key, count) in live.calls.counters() {
            let labels = [
                ("service", key.service),
                ("operation", key.operation),
                ("kind", key.kind.as_str()),
                ("outcome", key.outcome.as_str()),
            ];
            ConstCounter::new(count).encode(calls.encode_family(&labels)?)?;
        }

        let mut objects = std::collections::BTreeMap::<&str, ReadyCounts>::new();
        for (kind, counter) in live.objects.lock().expect("metrics lock").iter() {
            let counts = counter();
            let total = objects.entry(kind).or_default();
            total.ready += counts.ready;
            total.not_ready += counts.not_ready;
            total.unknown += counts.unknown;
        }
        let mut gauge = encoder.encode_descriptor(
            "rolecall_objects",
            "Objects in the watched scope, by kind and Ready condition status.",
            None,
            MetricType::Gauge,
        )?;
        for (kind, counts) in objects {
            for (ready, count) in [
                ("true", counts.ready),
                ("false", counts.not_ready),
                ("unknown", counts.unknown),
            ] {
                ConstGauge::new(count)
                    .encode(gauge.encode_family(&[("kind", kind), ("ready", ready)])?)?;
            }
        }

        let mut queues = std::collections::BTreeMap::<&str, (usize, usize)>::new();
        for (kind, counter) in live.queues.lock().expect("metrics lock").iter() {
            let (work, drift_checks) = counter();
            let total = queues.entry(kind).or_default();
            total.0 += work;
            total.1 += drift_checks;
        }
        let mut gauge = encoder.encode_descriptor(
            "rolecall_reconciles_waiting",
            "Reconciles queued for a turn, by kind and lane: work (new, changed, failing or \
             deleted objects) goes before drift_check (converged ones).",
            None,
            MetricType::Gauge,
        )?;
        for (kind, (work, drift_checks)) in queues {
            for (lane, count) in [("work", work), ("drift_check", drift_checks)] {
                ConstGauge::new(count)
                    .encode(gauge.encode_family(&[("kind", kind), ("lane", lane)])?)?;
            }
        }

        let counters = live.security_checks.lock().expect("metrics lock");
        if !counters.is_empty() {
            let mut gauge = encoder.encode_descriptor(
                "rolecall_security_check_passing",
                "1 while a check of an AccountSecurityReport passes, 0 while it fails (absent \
                 while Unknown), by report and check id.",
                None,
                MetricType::Gauge,
            )?;
            for result in counters.iter().flat_map(|counter| counter()) {
                let labels = [
                    ("report", result.report.as_str()),
                    ("check", result.check.as_str()),
                ];
                ConstGauge::new(i64::from(result.passing)).encode(gauge.encode_family(&labels)?)?;
            }
        }
        drop(counters);

        ConstGauge::new(i64::from(self.leader)).encode(encoder.encode_descriptor(
            "rolecall_leader",
            "1 while this process holds the leader lease (always 1 without leader election).",
            None,
            MetricType::Gauge,
        )?)?;

        let first = encoder.encode_descriptor(
            "rolecall_first_reconcile_seconds",
            "Seconds from process start to the end of the first reconcile.",
            None,
            MetricType::Gauge,
        )?;
        if let Some(first_reconcile) = live.first_reconcile.get() {
            ConstGauge::new(first_reconcile.as_secs_f64()).encode(first)?;
        }

        // An info metric: written as the gauge `rolecall_build_info{version} 1`.
        Info::new([("version", env!("CARGO_PKG_VERSION"))]).encode(encoder.encode_descriptor(
            "rolecall_build",
            "The running rolecall version.",
            None,
            MetricType::Info,
        )?)?;

        if let Some(process) = ProcessStats::read() {
            ConstGauge::new(process.resident_bytes).encode(encoder.encode_descriptor(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                None,
                MetricType::Gauge,
            )?)?;
            ConstCounter::new(process.cpu_seconds).encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time spent, in seconds.",
                None,
                MetricType::Counter,
            )?)?;
        }
        Ok(())
    }
}

/// Resident memory and CPU time of this process, from /proc (Linux).
#[derive(Clone, Copy, Debug)]
pub struct ProcessStats {
    pub resident_bytes: u64,
    pub cpu_seconds: f64,
}

impl ProcessStats {
    pub fn read() -> Option<Self> {
        Self::of("self")
    }

    /// Stats of process `pid` (`self` for this one).
    pub fn of(pid: &str) -> Option<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let resident_kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the parenthesised command name; utime and stime are the 14th and 15th
        // fields overall, in clock ticks (100 per second on Linux).
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some(Self {
            resident_bytes: resident_kib * 1024,
            cpu_seconds: ticks as f64 / 100.0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::error::ErrorClass;
    use crate::aws::{CallKey, CallKind, Outcome};

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf() {
        let metrics = Metrics::new(Arc::default());
        metrics.reconciled("IamRole", true, Duration::from_millis(20));
        metrics.reconciled("IamRole", false, Duration::from_secs(100));
        let text = metrics.render(None);
        assert!(text.contains(
            "rolecall_reconcile_duration_seconds_bucket{kind=\"IamRole\",le=\"0.01\"} 0\n"
        ));
        assert!(text.contains(
            "rolecall_reconcile_duration_seconds_bucket{kind=\"IamRole\",le=\"0.025\"} 1\n"
        ));
        assert!(text.contains(
            "rolecall_reconcile_duration_seconds_bucket{kind=\"IamRole\",le=\"60\"} 1\n"
        ));
        assert!(text.contains(
            "rolecall_reconcile_duration_seconds_bucket{kind=\"IamRole\",le=\"+Inf\"} 2\n"
        ));
        assert!(text.contains("rolecall_reconcile_duration_seconds_count{kind=\"IamRole\"} 2\n"));
        assert!(text.contains("rolecall_reconciles_total{kind=\"IamRole\",result=\"error\"} 1\n"));
        assert!(metrics.first_reconcile().is_some());
    }

    #[test]
    fn aws_calls_carry_service_operation_kind_and_outcome() {
        let calls = Arc::new(CallLog::default());
        calls.record(CallKey {
            service: "iam",
            kind: CallKind::Write,
            operation: "CreateRole",
            outcome: Outcome::Failed(ErrorClass::Throttled),
        });
        let text = Metrics::new(calls).render(Some(false));
        assert!(text.contains(
            "rolecall_aws_calls_total{service=\"iam\",operation=\"CreateRole\",kind=\"write\",outcome=\"throttled\"} 1\n"
        ));
        assert!(text.contains("rolecall_leader 0\n"));
    }

    #[test]
    fn object_counts_are_summed_across_scopes() {
        let metrics = Metrics::new(Arc::default());
        for _ in 0..2 {
            metrics.count_objects("IamPolicy", || ReadyCounts {
                ready: 2,
                not_ready: 1,
                unknown: 0,
            });
        }
        let text = metrics.render(None);
        assert!(text.contains("rolecall_objects{kind=\"IamPolicy\",ready=\"true\"} 4\n"));
        assert!(text.contains("rolecall_objects{kind=\"IamPolicy\",ready=\"false\"} 2\n"));
        assert!(text.contains("rolecall_leader 1\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        let calls = Arc::new(CallLog::default());
        calls.record(CallKey {
            service: "iam",
            kind: CallKind::Read,
            operation: "a\"b\\c\nd",
            outcome: Outcome::Ok,
        });
        let text = Metrics::new(calls).render(None);
        assert!(text.contains("operation=\"a\\\"b\\\\c\\nd\""), "{text}");
    }

    #[test]
    fn this_process_has_memory_and_cpu() {
        let stats = ProcessStats::read().expect("/proc/self");
        assert!(stats.resident_bytes > 0);
    }
}
