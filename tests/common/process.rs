//! `rolecall run` as a child process (the way it runs in a pod): its HTTP endpoints, its
//! metrics, SIGTERM and SIGKILL.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct OperatorProcess {
    child: Child,
    /// `127.0.0.1:<port>` of /metrics, /healthz and /readyz.
    pub http: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl OperatorProcess {
    /// Starts `rolecall run` watching `namespace` with the moto endpoint from the test
    /// environment, plus `extra` flags; waits until it serves HTTP.
    pub fn start(namespace: &str, extra: &[&str]) -> Self {
        let endpoint = super::aws_endpoint();
        Self::start_with(env!("CARGO_BIN_EXE_rolecall"), namespace, &endpoint, extra)
    }

    /// Starts `binary run` against the AWS endpoint `endpoint` (a fault proxy, say).
    pub fn start_with(binary: &str, namespace: &str, endpoint: &str, extra: &[&str]) -> Self {
        let kubeconfig = std::env::var("KUBECONFIG")
            .expect("KUBECONFIG is not set: run the tests through scripts/test.sh");
        Self::start_on(&kubeconfig, binary, namespace, endpoint, extra)
    }

    /// Starts `binary run` against the cluster of `kubeconfig`.
    pub fn start_on(
        kubeconfig: &str,
        binary: &str,
        namespace: &str,
        endpoint: &str,
        extra: &[&str],
    ) -> Self {
        Self::start_logging(
            kubeconfig,
            binary,
            namespace,
            endpoint,
            extra,
            &std::env::var("ROLECALL_TEST_OPERATOR_LOG")
                .unwrap_or_else(|_| "info,kube=warn".into()),
        )
    }

    /// As [`OperatorProcess::start_on`], logging at `rust_log` (`debug`, for a test that reads
    /// everything the operator says).
    pub fn start_logging(
        kubeconfig: &str,
        binary: &str,
        namespace: &str,
        endpoint: &str,
        extra: &[&str],
        rust_log: &str,
    ) -> Self {
        let mut child = Command::new(binary)
            .args(["run", "--watch-namespaces", namespace])
            .args(["--http-address", "127.0.0.1:0", "--cluster-name", "test"])
            .args(["--aws-endpoint-url", endpoint])
            .args(["--region", "us-east-1"])
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("RUST_LOG", rust_log)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start rolecall run");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(address) = line
                    .split("serving /metrics, /healthz and /readyz on http://")
                    .nth(1)
                {
                    let _ = address_tx.send(address.trim().to_owned());
                }
                lines.lock().expect("log lock").push(line);
            }
        });
        let http = match address_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(address) => address,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "rolecall run did not report its HTTP address within 30s; output:\n{}",
                    log.lock().expect("log lock").join("\n")
                );
            }
        };
        Self { child, http, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process printed so far.
    pub fn output(&self) -> String {
        self.log.lock().expect("log lock").join("\n")
    }

    /// `(status, body)` of a GET on the operator's HTTP address.
    pub fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        http_get(&self.http, path)
    }

    /// The samples of the metrics text: `name{labels}` → value.
    pub fn metrics(&self) -> BTreeMap<String, f64> {
        let (status, body) = self.get("/metrics").expect("scrape /metrics");
        assert_eq!(status, 200, "/metrics answered {status}: {body}");
        parse_metrics(&body)
    }

    /// Sum of every sample of `name` whose labels contain all of `labels` (`key="value"`).
    pub fn metric_sum(&self, name: &str, labels: &[&str]) -> f64 {
        sum_matching(&self.metrics(), name, labels)
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL: no chance to finish anything or release the lease.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit status (SIGKILL after 30 s).
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..300 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.kill();
        None
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

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

/// Parses Prometheus text exposition; panics on a malformed line so a format slip fails tests.
pub fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("malformed sample line {line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            value => value
                .parse()
                .unwrap_or_else(|_| panic!("malformed value in {line:?}")),
        };
        assert!(
            key.chars().next().is_some_and(|c| c.is_ascii_alphabetic()),
            "malformed metric name in {line:?}"
        );
        samples.insert(key.to_owned(), value);
    }
    samples
}

/// A plain HTTP/1.0 GET, enough for the operator's endpoints.
pub fn http_get(address: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad response {response:?}")))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}
