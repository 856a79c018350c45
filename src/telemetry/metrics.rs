//! Prometheus metrics: reconciles, their duration, AWS calls, objects by Ready state,
//! leadership and the process itself, rendered in the text exposition format (0.0.4).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::aws::CallLog;

/// Upper bounds (seconds) of the reconcile duration histogram.
const DURATION_BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Clone, Debug, Default)]
struct Histogram {
    /// Count per bucket (not cumulative); the last slot is +Inf.
    buckets: [u64; DURATION_BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        let slot = DURATION_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(DURATION_BUCKETS.len());
        self.buckets[slot] += 1;
        self.sum += seconds;
        self.count += 1;
    }
}

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

pub struct Metrics {
    calls: Arc<CallLog>,
    started: Instant,
    reconciles: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    durations: Mutex<BTreeMap<&'static str, Histogram>>,
    objects: Mutex<Vec<(&'static str, ObjectCounter)>>,
    queues: Mutex<Vec<(&'static str, QueueCounter)>>,
    first_reconcile: OnceLock<Duration>,
}

impl Metrics {
    pub fn new(calls: Arc<CallLog>) -> Self {
        Self {
            calls,
            started: Instant::now(),
            reconciles: Mutex::default(),
            durations: Mutex::default(),
            objects: Mutex::default(),
            queues: Mutex::default(),
            first_reconcile: OnceLock::new(),
        }
    }

    /// Records one finished reconcile of `kind`.
    pub fn reconciled(&self, kind: &'static str, success: bool, took: Duration) {
        let result = if success { "success" } else { "error" };
        *self
            .reconciles
            .lock()
            .expect("metrics lock")
            .entry((kind, result))
            .or_default() += 1;
        self.durations
            .lock()
            .expect("metrics lock")
            .entry(kind)
            .or_default()
            .observe(took.as_secs_f64());
        self.first_reconcile.get_or_init(|| self.started.elapsed());
    }

    /// Time from process start to the end of the first reconcile, once there was one.
    pub fn first_reconcile(&self) -> Option<Duration> {
        self.first_reconcile.get().copied()
    }

    /// Adds a source of object counts for `kind` (one per watched scope; they are summed).
    pub fn count_objects(
        &self,
        kind: &'static str,
        counter: impl Fn() -> ReadyCounts + Send + Sync + 'static,
    ) {
        self.objects
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
        self.queues
            .lock()
            .expect("metrics lock")
            .push((kind, Box::new(counter)));
    }

    /// The exposition text; `leader` is None when leader election is off.
    pub fn render(&self, leader: Option<bool>) -> String {
        let mut out = Exposition::default();

        out.family(
            "rolecall_reconciles_total",
            "counter",
            "Reconciles finished, by kind and result.",
        );
        for ((kind, result), count) in self.reconciles.lock().expect("metrics lock").iter() {
            out.sample(
                "rolecall_reconciles_total",
                &[("kind", kind), ("result", result)],
                *count as f64,
            );
        }

        out.family(
            "rolecall_reconcile_duration_seconds",
            "histogram",
            "Time one reconcile takes, by kind.",
        );
        for (kind, histogram) in self.durations.lock().expect("metrics lock").iter() {
            let mut cumulative = 0;
            for (bound, count) in DURATION_BUCKETS.iter().zip(histogram.buckets) {
                cumulative += count;
                out.sample(
                    "rolecall_reconcile_duration_seconds_bucket",
                    &[("kind", kind), ("le", &bound.to_string())],
                    cumulative as f64,
                );
            }
            out.sample(
                "rolecall_reconcile_duration_seconds_bucket",
                &[("kind", kind), ("le", "+Inf")],
                histogram.count as f64,
            );
            out.sample(
                "rolecall_reconcile_duration_seconds_sum",
                &[("kind", kind)],
                histogram.sum,
            );
            out.sample(
                "rolecall_reconcile_duration_seconds_count",
                &[("kind", kind)],
                histogram.count as f64,
            );
        }

        out.family(
            "rolecall_aws_calls_total",
            "counter",
            "AWS API calls, by service, operation, kind (read or write) and outcome.",
        );
        for (key, count) in self.calls.counters() {
            out.sample(
                "rolecall_aws_calls_total",
                &[
                    ("service", key.service),
                    ("operation", key.operation),
                    ("kind", key.kind.as_str()),
                    ("outcome", key.outcome.as_str()),
                ],
                count as f64,
            );
        }

        out.family(
            "rolecall_objects",
            "gauge",
            "Objects in the watched scope, by kind and Ready condition status.",
        );
        let mut objects = BTreeMap::<&str, ReadyCounts>::new();
        for (kind, counter) in self.objects.lock().expect("metrics lock").iter() {
            let counts = counter();
            let total = objects.entry(kind).or_default();
            total.ready += counts.ready;
            total.not_ready += counts.not_ready;
            total.unknown += counts.unknown;
        }
        for (kind, counts) in objects {
            for (ready, count) in [
                ("true", counts.ready),
                ("false", counts.not_ready),
                ("unknown", counts.unknown),
            ] {
                out.sample(
                    "rolecall_objects",
                    &[("kind", kind), ("ready", ready)],
                    count as f64,
                );
            }
        }

        out.family(
            "rolecall_reconciles_waiting",
            "gauge",
            "Reconciles queued for a turn, by kind and lane: work (new, changed, failing or \
             deleted objects) goes before drift_check (converged ones).",
        );
        let mut queues = BTreeMap::<&str, (usize, usize)>::new();
        for (kind, counter) in self.queues.lock().expect("metrics lock").iter() {
            let (work, drift_checks) = counter();
            let total = queues.entry(kind).or_default();
            total.0 += work;
            total.1 += drift_checks;
        }
        for (kind, (work, drift_checks)) in queues {
            for (lane, count) in [("work", work), ("drift_check", drift_checks)] {
                out.sample(
                    "rolecall_reconciles_waiting",
                    &[("kind", kind), ("lane", lane)],
                    count as f64,
                );
            }
        }

        out.family(
            "rolecall_leader",
            "gauge",
            "1 while this process holds the leader lease (always 1 without leader election).",
        );
        out.sample(
            "rolecall_leader",
            &[],
            f64::from(u8::from(leader.unwrap_or(true))),
        );

        out.family(
            "rolecall_first_reconcile_seconds",
            "gauge",
            "Seconds from process start to the end of the first reconcile.",
        );
        if let Some(first) = self.first_reconcile() {
            out.sample("rolecall_first_reconcile_seconds", &[], first.as_secs_f64());
        }

        out.family(
            "rolecall_build_info",
            "gauge",
            "The running rolecall version.",
        );
        out.sample(
            "rolecall_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1.0,
        );

        if let Some(process) = ProcessStats::read() {
            out.family(
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory size in bytes.",
            );
            out.sample(
                "process_resident_memory_bytes",
                &[],
                process.resident_bytes as f64,
            );
            out.family(
                "process_cpu_seconds_total",
                "counter",
                "User and system CPU time spent, in seconds.",
            );
            out.sample("process_cpu_seconds_total", &[], process.cpu_seconds);
        }
        out.text
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

/// Builder of exposition text.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            let labels: Vec<String> = labels
                .iter()
                .map(|(key, value)| format!("{key}=\"{}\"", escape(value)))
                .collect();
            let _ = write!(self.text, "{{{}}}", labels.join(","));
        }
        let _ = writeln!(self.text, " {value}");
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
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
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn this_process_has_memory_and_cpu() {
        let stats = ProcessStats::read().expect("/proc/self");
        assert!(stats.resident_bytes > 0);
    }
}
