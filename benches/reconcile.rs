//! Reconcile benchmark of a `rolecall` binary against a real kube-apiserver and moto:
//! start-up, apply→Ready latency of policy+role pairs and profile+binding chains, AWS calls per
//! created, resynced and deleted object (cross-checked with moto's request recording), memory
//! and CPU. Run it through `scripts/bench.sh`, which starts a private control plane and moto:
//!
//! `cargo bench --bench reconcile -- --binary target/release/rolecall [--baseline OTHER]
//!  [--sizes 10,100,1000] [--out bench-results.json] [--resync-period 30s]`
//!
//! Slow numbers never fail it; it fails only when objects do not converge within a deadline
//! scaled by their count.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::Client;
use serde_json::{Value, json};
use support::cluster::{self, KINDS, Key, ReadyLog};
use support::operator::{self, Operator, sum_matching};

/// An AMI moto ships.
const AMI: &str = "ami-03cf127a";
const MIB: f64 = 1024.0 * 1024.0;

struct Options {
    binary: String,
    baseline: Option<String>,
    sizes: Vec<usize>,
    out: String,
    resync: String,
}

fn parse_options(args: &[String]) -> Options {
    let mut options = Options {
        binary: "target/release/rolecall".into(),
        baseline: None,
        sizes: vec![10, 100, 1000],
        out: "bench-results.json".into(),
        resync: "30s".into(),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .cloned()
                .unwrap_or_else(|| panic!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--bench" => {}
            "--binary" => options.binary = value(),
            "--baseline" => options.baseline = Some(value()),
            "--out" => options.out = value(),
            "--resync-period" => options.resync = value(),
            "--sizes" => {
                options.sizes = value()
                    .split(',')
                    .map(|n| n.trim().parse().expect("--sizes takes numbers: 10,100"))
                    .collect()
            }
            other => panic!("unknown argument {other}"),
        }
    }
    options
}

struct Env {
    client: Client,
    ec2: aws_sdk_ec2::Client,
    endpoint: String,
    recording: String,
    resync: String,
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo test --all-targets` runs bench targets without `--bench`: nothing to measure then.
    if !args.iter().any(|arg| arg == "--bench") {
        println!("reconcile benchmark: runs under `cargo bench` only (use scripts/bench.sh)");
        return;
    }
    let options = parse_options(&args);
    let how = "run the benchmark through scripts/bench.sh";
    let endpoint = std::env::var("ROLECALL_TEST_AWS_ENDPOINT")
        .unwrap_or_else(|_| panic!("ROLECALL_TEST_AWS_ENDPOINT is not set: {how}"));
    let recording = std::env::var("ROLECALL_TEST_MOTO_RECORDING")
        .unwrap_or_else(|_| panic!("ROLECALL_TEST_MOTO_RECORDING is not set: {how}"));
    let client = Client::try_default()
        .await
        .unwrap_or_else(|e| panic!("no cluster ({e}): {how}"));
    cluster::install_crds(&client).await;
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    let env = Env {
        client,
        ec2: aws_sdk_ec2::Client::new(&sdk),
        endpoint,
        recording,
        resync: options.resync.clone(),
    };

    let mut binaries = vec![("binary", options.binary.clone())];
    if let Some(baseline) = &options.baseline {
        binaries.push(("baseline", baseline.clone()));
    }
    let started = Instant::now();
    let mut runs = Vec::new();
    let mut failure = None;
    'sizes: for &n in &options.sizes {
        for (role, binary) in &binaries {
            eprintln!("bench: {role} {binary}, N={n}");
            match run(&env, role, binary, n).await {
                Ok(run) => runs.push(run),
                Err(error) => {
                    failure = Some(format!("{role} {binary} N={n}: {error}"));
                    break 'sizes;
                }
            }
        }
    }
    let report = json!({
        "machine": machine(),
        "binaries": binaries.iter().map(|(role, binary)| json!({
            "role": role, "path": binary, "version": version(binary),
        })).collect::<Vec<_>>(),
        "git_commit": git_commit(),
        "resync_period": options.resync,
        "total_seconds": started.elapsed().as_secs_f64(),
        "runs": runs,
        "failure": failure,
    });
    std::fs::write(
        &options.out,
        serde_json::to_string_pretty(&report).expect("JSON") + "\n",
    )
    .unwrap_or_else(|e| panic!("write {}: {e}", options.out));
    println!("{}", table(&runs));
    println!("figures: {}", options.out);
    if let Some(failure) = failure {
        eprintln!("bench: did not converge: {failure}");
        std::process::exit(1);
    }
}

/// One binary at one size, in a fresh namespace; cleans up whether it converged or not.
async fn run(env: &Env, role: &str, binary: &str, n: usize) -> Result<Value, String> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let namespace = format!("bench-{role}-{n}-{stamp}");
    cluster::create_namespace(&env.client, &namespace).await;
    let (ready, watches) = ReadyLog::watch(&env.client, &namespace);
    let instances = run_instances(&env.ec2, n).await;
    reset_recording(&env.endpoint);
    let result = measure(env, &namespace, binary, n, &instances, &ready).await;
    for watch in watches {
        watch.abort();
    }
    cluster::remove_leftovers(&env.client, &namespace).await;
    terminate_instances(&env.ec2, &instances).await;
    result.map(|mut figures| {
        figures["role"] = json!(role);
        figures["binary"] = json!(binary);
        figures["n"] = json!(n);
        figures["namespace"] = json!(namespace);
        figures
    })
}

fn deadline_for(objects: usize) -> Duration {
    Duration::from_secs(60) + Duration::from_millis(500 * objects as u64)
}

async fn measure(
    env: &Env,
    namespace: &str,
    binary: &str,
    n: usize,
    instances: &[String],
    ready: &ReadyLog,
) -> Result<Value, String> {
    // Start-up: one object waiting before the operator exists.
    let startup = cluster::manifest(
        "IamPolicy",
        "startup",
        json!({ "name": format!("{namespace}-startup"), "document": document("startup") }),
    );
    cluster::apply(&env.client, namespace, &startup).await;
    let resync = ["--resync-period".to_owned(), env.resync.clone()];
    let mut op = Operator::spawn(binary, namespace, &env.endpoint, &resync);
    let startup_key: Key = ("IamPolicy", "startup".into());
    ready
        .wait_all(std::slice::from_ref(&startup_key), Duration::from_secs(60))
        .await
        .map_err(|_| "the start-up policy never became Ready".to_owned())?;
    let startup_external = ready
        .get(&startup_key)
        .expect("ready")
        .duration_since(op.spawned);
    let startup_own = sum_matching(&op.metrics(), "rolecall_first_reconcile_seconds", &[]);

    let pairs: Vec<Value> = (0..n)
        .flat_map(|i| {
            [
                cluster::manifest(
                    "IamPolicy",
                    &format!("p{i}"),
                    json!({ "name": format!("{namespace}-p{i}"), "document": document(&i.to_string()) }),
                ),
                cluster::manifest(
                    "IamRole",
                    &format!("r{i}"),
                    json!({
                        "name": format!("{namespace}-r{i}"),
                        "trustedServices": ["ec2.amazonaws.com"],
                        "policyRefs": [{ "name": format!("p{i}") }],
                    }),
                ),
            ]
        })
        .collect();
    let pairs = phase(env, &op, namespace, ready, pairs).await?;

    let chains: Vec<Value> = instances
        .iter()
        .enumerate()
        .flat_map(|(i, instance)| {
            [
                cluster::manifest(
                    "InstanceProfile",
                    &format!("ip{i}"),
                    json!({ "name": format!("{namespace}-ip{i}"), "roleRef": { "name": format!("r{i}") } }),
                ),
                cluster::manifest(
                    "Ec2InstanceBinding",
                    &format!("b{i}"),
                    json!({ "instanceProfileRef": { "name": format!("ip{i}") }, "instanceIds": [instance] }),
                ),
            ]
        })
        .collect();
    let chains = phase(env, &op, namespace, ready, chains).await?;
    let (rss_converged, _) = operator::process_stats(op.pid());

    let objects = 4 * n + 1;
    let resync = resync_figures(&op, objects).await;
    if resync["writes"].as_f64() != Some(0.0) {
        eprintln!(
            "bench: converged objects made write calls on resync: {}",
            resync["aws_calls"]
        );
    }

    // Deletion: everything, dependents first; the finalizers clean up AWS.
    let before = operator::aws_calls(&op.metrics());
    let deleting = Instant::now();
    cluster::delete_all(&env.client, namespace).await;
    let deadline = Instant::now() + deadline_for(objects);
    loop {
        if cluster::count_objects(&env.client, namespace).await == 0 {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "objects left in {namespace} after {:?}",
                deadline_for(objects)
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deletion_seconds = deleting.elapsed().as_secs_f64();
    let deleted = call_delta(&before, &operator::aws_calls(&op.metrics()));
    let (rss_end, cpu_end) = operator::process_stats(op.pid());
    let cross_check = cross_check(&op, &env.recording);
    op.kill();

    Ok(json!({
        "startup": {
            "spawn_to_first_ready_seconds": startup_external.as_secs_f64(),
            "own_first_reconcile_seconds": startup_own,
        },
        "pairs": pairs,
        "chains": chains,
        "resync": resync,
        "deletion": {
            "objects": objects,
            "seconds": deletion_seconds,
            "aws_calls": deleted,
            "writes_per_object": total(&deleted, "write") / objects as f64,
            "reads_per_object": total(&deleted, "read") / objects as f64,
        },
        "operator": {
            "rss_mib_converged": rss_converged as f64 / MIB,
            "rss_mib_end": rss_end as f64 / MIB,
            "cpu_seconds_end": cpu_end,
        },
        "moto_cross_check": cross_check,
    }))
}

/// Applies `objects` one by one while the watches note when each becomes Ready.
async fn phase(
    env: &Env,
    op: &Operator,
    namespace: &str,
    ready: &ReadyLog,
    objects: Vec<Value>,
) -> Result<Value, String> {
    let before = operator::aws_calls(&op.metrics());
    let keys: Vec<Key> = objects.iter().map(key_of).collect();
    let applied = Arc::new(Mutex::new(HashMap::<Key, Instant>::new()));
    let start = Instant::now();
    let applier = {
        let (client, namespace, applied) =
            (env.client.clone(), namespace.to_owned(), applied.clone());
        tokio::spawn(async move {
            for object in objects {
                let at = Instant::now();
                cluster::apply(&client, &namespace, &object).await;
                applied.lock().expect("applied").insert(key_of(&object), at);
            }
        })
    };
    let waited = ready.wait_all(&keys, deadline_for(keys.len())).await;
    applier.await.map_err(|e| format!("applying: {e}"))?;
    if let Err(missing) = waited {
        return Err(format!(
            "{} of {} objects not Ready after {:?}, e.g. {:?}",
            missing.len(),
            keys.len(),
            deadline_for(keys.len()),
            &missing[..missing.len().min(5)]
        ));
    }
    let applied = applied.lock().expect("applied");
    let ready_at: Vec<Instant> = keys.iter().map(|k| ready.get(k).expect("ready")).collect();
    let all_ready = ready_at
        .iter()
        .max()
        .expect("objects")
        .duration_since(start)
        .as_secs_f64();
    let mut latencies: Vec<f64> = keys
        .iter()
        .zip(&ready_at)
        .map(|(key, at)| at.saturating_duration_since(applied[key]).as_secs_f64())
        .collect();
    latencies.sort_by(f64::total_cmp);
    let calls = call_delta(&before, &operator::aws_calls(&op.metrics()));
    let count = keys.len() as f64;
    let all_calls = total(&calls, "write") + total(&calls, "read");
    Ok(json!({
        "objects": keys.len(),
        "apply_to_ready_seconds": {
            "p50": percentile(&latencies, 0.50),
            "p95": percentile(&latencies, 0.95),
            "max": latencies.last(),
        },
        "all_ready_seconds": all_ready,
        "aws_calls": calls,
        "writes_per_object": total(&calls, "write") / count,
        "reads_per_object": total(&calls, "read") / count,
        "aws_calls_per_second": all_calls / all_ready,
    }))
}

/// Waits (with a deadline) until every converged object was reconciled again, then reports the
/// calls that took: writes should be zero.
async fn resync_figures(op: &Operator, objects: usize) -> Value {
    let reconciles = |op: &Operator| sum_matching(&op.metrics(), "rolecall_reconciles_total", &[]);
    let before_calls = operator::aws_calls(&op.metrics());
    let before = reconciles(op);
    let waiting = Instant::now();
    let deadline = waiting + Duration::from_secs(90) + deadline_for(objects);
    let mut completed = false;
    while Instant::now() < deadline {
        if reconciles(op) - before >= objects as f64 {
            completed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let reconciled = reconciles(op) - before;
    let calls = call_delta(&before_calls, &operator::aws_calls(&op.metrics()));
    json!({
        "completed": completed,
        "seconds": waiting.elapsed().as_secs_f64(),
        "reconciles": reconciled,
        "aws_calls": calls,
        "writes": total(&calls, "write"),
        "reads_per_reconcile": total(&calls, "read") / reconciled.max(1.0),
    })
}

/// The operator's own counts (whole process) against moto's recording (since the reset before
/// the operator started). STS GetCallerIdentity at start-up is not in the operator's metrics.
fn cross_check(op: &Operator, recording: &str) -> Value {
    let ours: BTreeMap<String, f64> = operator::aws_calls(&op.metrics())
        .into_iter()
        .map(|(operation, (_, count))| (operation, count))
        .collect();
    let output = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tools/moto/count_calls.py"
        ))
        .arg(recording)
        .output()
        .expect("run tools/moto/count_calls.py");
    let moto: BTreeMap<String, f64> = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "count_calls.py output ({e}): {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let mut operations: Vec<&String> = ours.keys().chain(moto.keys()).collect();
    operations.sort();
    operations.dedup();
    let mut rows = serde_json::Map::new();
    let mut matches = true;
    for operation in operations {
        let (a, b) = (
            ours.get(operation).copied().unwrap_or(0.0),
            moto.get(operation).copied().unwrap_or(0.0),
        );
        if a != b && operation != "sts:GetCallerIdentity" {
            matches = false;
        }
        rows.insert(operation.clone(), json!({ "operator": a, "moto": b }));
    }
    json!({ "matches": matches, "by_operation": rows })
}

fn key_of(object: &Value) -> Key {
    let kind = object["kind"].as_str().expect("kind");
    let kind = KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .expect("a rolecall kind")
        .0;
    (
        kind,
        object["metadata"]["name"]
            .as_str()
            .expect("name")
            .to_owned(),
    )
}

fn document(tag: &str) -> Value {
    json!({ "Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "s3:GetObject",
        "Resource": format!("arn:aws:s3:::bench-{tag}/*"),
    }] })
}

type Calls = BTreeMap<String, (String, f64)>;

fn call_delta(before: &Calls, after: &Calls) -> Value {
    let mut delta = serde_json::Map::new();
    for (operation, (kind, count)) in after {
        let change = count - before.get(operation).map_or(0.0, |b| b.1);
        if change != 0.0 {
            delta.insert(operation.clone(), json!({ "kind": kind, "count": change }));
        }
    }
    Value::Object(delta)
}

fn total(calls: &Value, kind: &str) -> f64 {
    calls
        .as_object()
        .expect("calls")
        .values()
        .filter(|call| call["kind"] == kind)
        .filter_map(|call| call["count"].as_f64())
        // Not `sum()`: the empty f64 sum is -0.0, which the table would print as "-0".
        .fold(0.0, |sum, count| sum + count)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

async fn run_instances(ec2: &aws_sdk_ec2::Client, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    while ids.len() < n {
        let batch = (n - ids.len()).min(100) as i32;
        let output = ec2
            .run_instances()
            .image_id(AMI)
            .min_count(batch)
            .max_count(batch)
            .send()
            .await
            .unwrap_or_else(|e| panic!("RunInstances in moto: {e:?}"));
        ids.extend(
            output
                .instances()
                .iter()
                .filter_map(|i| i.instance_id().map(str::to_owned)),
        );
    }
    ids
}

async fn terminate_instances(ec2: &aws_sdk_ec2::Client, ids: &[String]) {
    for batch in ids.chunks(100) {
        let _ = ec2
            .terminate_instances()
            .set_instance_ids(Some(batch.to_vec()))
            .send()
            .await;
    }
}

fn reset_recording(endpoint: &str) {
    let status = Command::new("curl")
        .args(["-sf", "--noproxy", "*", "--max-time", "10", "-X", "POST"])
        .arg(format!("{endpoint}/moto-api/recorder/reset-recording"))
        .status()
        .expect("run curl");
    assert!(status.success(), "resetting moto's recording failed");
}

fn machine() -> Value {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let meminfo = read("/proc/meminfo");
    let memory_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned());
    json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": model,
        "memory_gib": memory_kib as f64 / 1024.0 / 1024.0,
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "load_average_at_end": read("/proc/loadavg").trim(),
    })
}

fn version(binary: &str) -> String {
    Command::new(binary)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn git_commit() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let commit = git(&["rev-parse", "--short", "HEAD"]);
    let dirty = !git(&["status", "--porcelain", "--untracked-files=no"]).is_empty();
    format!("{commit}{}", if dirty { " (tree modified)" } else { "" })
}

/// One Markdown row per size and binary; with a baseline, a ratio row (binary ÷ baseline).
fn table(runs: &[Value]) -> String {
    let header = "| N | binary | start→Ready s (own) | pairs p50/p95/all s | chains p50/p95/all s \
        | writes/obj pair,chain | reads/obj pair,chain | resync writes | reads/resync \
        | calls/deleted obj | moto = metrics | RSS MiB conv/end | CPU s |\n\
        |---|---|---|---|---|---|---|---|---|---|---|---|---|";
    let mut lines = vec![header.to_owned()];
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    for run in runs {
        let (p, c, d) = (&run["pairs"], &run["chains"], &run["deletion"]);
        lines.push(format!(
            "| {} | {} | {:.2} ({:.2}) | {:.2}/{:.2}/{:.1} | {:.2}/{:.2}/{:.1} | {:.1}, {:.1} | {:.1}, {:.1} | {} | {:.2} | {:.1} | {} | {:.1}/{:.1} | {:.1} |",
            run["n"],
            run["role"].as_str().unwrap_or("?"),
            f(&run["startup"]["spawn_to_first_ready_seconds"]),
            f(&run["startup"]["own_first_reconcile_seconds"]),
            f(&p["apply_to_ready_seconds"]["p50"]),
            f(&p["apply_to_ready_seconds"]["p95"]),
            f(&p["all_ready_seconds"]),
            f(&c["apply_to_ready_seconds"]["p50"]),
            f(&c["apply_to_ready_seconds"]["p95"]),
            f(&c["all_ready_seconds"]),
            f(&p["writes_per_object"]),
            f(&c["writes_per_object"]),
            f(&p["reads_per_object"]),
            f(&c["reads_per_object"]),
            run["resync"]["writes"],
            f(&run["resync"]["reads_per_reconcile"]),
            f(&d["writes_per_object"]) + f(&d["reads_per_object"]),
            if run["moto_cross_check"]["matches"] == true { "yes" } else { "no" },
            f(&run["operator"]["rss_mib_converged"]),
            f(&run["operator"]["rss_mib_end"]),
            f(&run["operator"]["cpu_seconds_end"]),
        ));
    }
    let sizes: std::collections::BTreeSet<u64> =
        runs.iter().filter_map(|r| r["n"].as_u64()).collect();
    for n in sizes {
        let of = |role: &str| runs.iter().find(|r| r["n"] == n && r["role"] == role);
        let (Some(a), Some(b)) = (of("binary"), of("baseline")) else {
            continue;
        };
        let ratio = |path: &[&str]| {
            let get = |run: &Value| path.iter().fold(run, |v, k| &v[*k]).as_f64();
            match (get(a), get(b)) {
                (Some(x), Some(y)) if y != 0.0 => format!("{:.2}×", x / y),
                _ => "–".into(),
            }
        };
        lines.push(format!(
            "| {n} | ratio | {} | {}/{}/{} | {}/{}/{} | | | | | | | {}/{} | {} |",
            ratio(&["startup", "spawn_to_first_ready_seconds"]),
            ratio(&["pairs", "apply_to_ready_seconds", "p50"]),
            ratio(&["pairs", "apply_to_ready_seconds", "p95"]),
            ratio(&["pairs", "all_ready_seconds"]),
            ratio(&["chains", "apply_to_ready_seconds", "p50"]),
            ratio(&["chains", "apply_to_ready_seconds", "p95"]),
            ratio(&["chains", "all_ready_seconds"]),
            ratio(&["operator", "rss_mib_converged"]),
            ratio(&["operator", "rss_mib_end"]),
            ratio(&["operator", "cpu_seconds_end"]),
        ));
    }
    lines.join("\n")
}
