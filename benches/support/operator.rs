//! `rolecall run` as a child process, its /metrics, and its /proc figures.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Operator {
    child: Child,
    pub http: String,
    pub spawned: Instant,
}

impl Operator {
    /// Spawns `binary run` watching `namespace`; waits until it reports its HTTP address.
    pub fn spawn(binary: &str, namespace: &str, endpoint: &str, extra: &[String]) -> Self {
        let kubeconfig = std::env::var("KUBECONFIG").expect("KUBECONFIG (run scripts/bench.sh)");
        let spawned = Instant::now();
        let mut child = Command::new(binary)
            .args(["run", "--watch-namespaces", namespace])
            .args(["--http-address", "127.0.0.1:0", "--cluster-name", "bench"])
            .args(["--aws-endpoint-url", endpoint, "--region", "us-east-1"])
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {binary} run: {e}"));
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        // Keeps draining stdout so the operator never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(address) = line
                    .split("serving /metrics, /healthz and /readyz on http://")
                    .nth(1)
                {
                    let _ = address_tx.send(address.trim().to_owned());
                }
            }
        });
        let http = match address_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(address) => address,
            Err(_) => {
                let _ = child.kill();
                panic!("{binary} run did not report its HTTP address within 30s");
            }
        };
        Self {
            child,
            http,
            spawned,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The samples of /metrics: `name{labels}` → value.
    pub fn metrics(&self) -> BTreeMap<String, f64> {
        let body = http_get(&self.http, "/metrics").expect("scrape /metrics");
        parse_metrics(&body)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Resident bytes and CPU seconds (user + system) of `pid`, from /proc.
pub fn process_stats(pid: u32) -> (u64, f64) {
    let stats =
        rolecall::telemetry::ProcessStats::of(&pid.to_string()).expect("/proc of the operator");
    (stats.resident_bytes, stats.cpu_seconds)
}

/// Sum of the samples of `name` whose labels contain every `key="value"` of `labels`.
pub fn sum_matching(samples: &BTreeMap<String, f64>, name: &str, labels: &[&str]) -> f64 {
    samples
        .iter()
        .filter(|(key, _)| {
            let (sample_name, sample_labels) = key.split_once('{').unwrap_or((key, ""));
            sample_name == name && labels.iter().all(|label| sample_labels.contains(label))
        })
        .map(|(_, value)| value)
        .sum()
}

/// `rolecall_aws_calls_total` folded to `service:Operation` → (kind, count).
pub fn aws_calls(samples: &BTreeMap<String, f64>) -> BTreeMap<String, (String, f64)> {
    let mut calls = BTreeMap::<String, (String, f64)>::new();
    for (key, value) in samples {
        let Some(labels) = key.strip_prefix("rolecall_aws_calls_total{") else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(&format!("{name}=\""))
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or("?")
                .to_owned()
        };
        let entry = calls
            .entry(format!("{}:{}", label("service"), label("operation")))
            .or_insert((label("kind"), 0.0));
        entry.1 += value;
    }
    calls
}

fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            Some((key.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn http_get(address: &str, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default())
}
