//! Two `rolecall run --leader-election` processes against the real API server: only the
//! lease holder reconciles, the other stands by (ready, not leading); SIGKILL the leader and
//! the other takes over within the lease duration, and every AWS write of the whole run is
//! made exactly once (counted at a recording proxy in front of moto).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::pairs;
use common::process::OperatorProcess;
use common::{aws_endpoint, fresh_namespace, install_crds, kube_client, wait_for};
use rolecall::faultproxy::FaultProxy;

const LEASE_SECONDS: u64 = 6;

fn start(namespace: &str, endpoint: &str) -> OperatorProcess {
    let duration = format!("{LEASE_SECONDS}s");
    OperatorProcess::start_with(
        env!("CARGO_BIN_EXE_rolecall"),
        namespace,
        endpoint,
        &[
            "--leader-election",
            "--leader-election-namespace",
            namespace,
            "--leader-election-lease-duration",
            &duration,
        ],
    )
}

fn leading(operator: &OperatorProcess) -> Option<bool> {
    let (status, body) = operator.get("/metrics").ok()?;
    (status == 200).then_some(())?;
    let metrics = common::process::parse_metrics(&body);
    Some(metrics.get("rolecall_leader").copied()? == 1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_reconciles_and_a_standby_takes_over_after_sigkill() {
    let client = kube_client().await;
    install_crds(&client).await;
    let namespace = fresh_namespace(&client, "leader").await;
    let recorder = FaultProxy::start(&aws_endpoint()).await.expect("proxy");

    let mut first = start(&namespace, &recorder.endpoint());
    wait_for(
        "the first process to lead",
        Duration::from_secs(30),
        || async { leading(&first).filter(|leads| *leads) },
    )
    .await;
    let second = start(&namespace, &recorder.endpoint());
    let standby = wait_for(
        "the second process to stand by",
        Duration::from_secs(30),
        || async {
            second
                .get("/readyz")
                .ok()
                .filter(|(status, _)| *status == 200)
        },
    )
    .await;
    assert!(
        standby.1.contains("standing by"),
        "the second process says {:?}\nfirst:\n{}\nsecond:\n{}",
        standby.1,
        first.output(),
        second.output()
    );
    assert_eq!(leading(&second), Some(false));

    pairs::apply(&client, &namespace, 0..5).await;
    pairs::wait_all_ready(&client, &namespace, 5, Duration::from_secs(60)).await;
    let idle = second.metrics();
    assert_eq!(
        common::process::sum_matching(&idle, "rolecall_reconciles_total", &[]),
        0.0,
        "the standby reconciled"
    );
    assert_eq!(
        common::process::sum_matching(&idle, "rolecall_aws_calls_total", &[]),
        0.0
    );

    // New work arrives, and the leader dies while it may be in the middle of it.
    pairs::apply(&client, &namespace, 5..10).await;
    first.kill();
    let killed = Instant::now();
    wait_for(
        "the standby to take over",
        Duration::from_secs(LEASE_SECONDS * 3),
        || async { leading(&second).filter(|leads| *leads) },
    )
    .await;
    let takeover = killed.elapsed();
    println!("takeover after SIGKILL: {takeover:?} (lease {LEASE_SECONDS}s)");
    // The lease may have been renewed just before the kill; a poll interval and the library's
    // random back-off (up to 1 s) come on top.
    assert!(
        takeover <= Duration::from_secs(LEASE_SECONDS + 3),
        "took {takeover:?} with a {LEASE_SECONDS}s lease"
    );
    pairs::wait_all_ready(&client, &namespace, 10, Duration::from_secs(90)).await;
    // The new leader reconciled nothing before it knew the namespace's rules.
    let waits = pairs::waits_for_the_rules(&client, &namespace).await;
    assert!(waits.is_empty(), "objects waited for the rules: {waits:?}");

    // Every write reached AWS once: no create, attach or failed duplicate during the hand-over.
    let mut writes = BTreeMap::<(String, String), usize>::new();
    for entry in recorder.log() {
        // Not counted: calls moto never answered (the proxy could not reach it); the SDK
        // retries those, and the retry is the write that counts.
        if entry.upstream_status.is_none()
            || ["Get", "List", "Describe"]
                .iter()
                .any(|read| entry.operation.starts_with(read))
        {
            continue;
        }
        let name = entry.names.values().cloned().collect::<Vec<_>>().join(",");
        *writes.entry((entry.operation.clone(), name)).or_default() += 1;
    }
    let duplicates: Vec<_> = writes.iter().filter(|(_, count)| **count > 1).collect();
    assert!(
        duplicates.is_empty(),
        "written twice: {duplicates:?}\nthe calls on those objects: {:#?}",
        recorder
            .log()
            .into_iter()
            .filter(|entry| duplicates.iter().any(|((_, names), _)| {
                entry
                    .names
                    .values()
                    .any(|name| names.contains(name.as_str()))
            }))
            .collect::<Vec<_>>()
    );
    let total: usize = writes.values().sum();
    assert_eq!(
        total,
        10 * pairs::WRITES_PER_PAIR,
        "writes other than one CreatePolicy, CreateRole and AttachRolePolicy per pair: {writes:?}"
    );

    pairs::delete_all(&client, &namespace, Duration::from_secs(60)).await;
    drop(second);
}
