//! `rolecall run` serves /metrics, /healthz and /readyz: a scrape after a policy and a role
//! converge shows reconciles, their durations, the AWS calls they made, the objects by Ready
//! state and the process; readiness follows the caches; SIGTERM stops it cleanly.

mod common;

use std::time::Duration;

use common::process::OperatorProcess;
use common::{fresh_namespace, install_crds, kube_client, pairs, wait_for};

#[tokio::test]
async fn metrics_and_health_describe_a_converged_pair() {
    let client = kube_client().await;
    install_crds(&client).await;
    let namespace = fresh_namespace(&client, "metrics").await;
    let mut operator = OperatorProcess::start(&namespace, &[]);

    assert_eq!(
        operator.get("/healthz").expect("GET /healthz"),
        (200, "ok\n".into())
    );
    let (status, body) = operator.get("/nowhere").expect("GET /nowhere");
    assert_eq!(status, 404, "{body}");
    let ready = wait_for("/readyz to answer 200", Duration::from_secs(30), || async {
        operator
            .get("/readyz")
            .ok()
            .filter(|(status, _)| *status == 200)
    })
    .await;
    assert_eq!(ready.1, "ok: caches synced\n");

    pairs::apply(&client, &namespace, 0..1).await;
    pairs::wait_all_ready(&client, &namespace, 1, Duration::from_secs(60)).await;

    // The status write that makes the objects Ready ends the reconcile a moment later.
    let metrics = wait_for(
        "reconciles of both kinds in /metrics",
        Duration::from_secs(30),
        || async {
            let metrics = operator.metrics();
            let done = |kind: &str| {
                common::process::sum_matching(
                    &metrics,
                    "rolecall_reconciles_total",
                    &[&format!("kind=\"{kind}\""), "result=\"success\""],
                ) >= 1.0
            };
            (done("IamPolicy") && done("IamRole")).then_some(metrics)
        },
    )
    .await;
    let sum = |name: &str, labels: &[&str]| common::process::sum_matching(&metrics, name, labels);

    for (operation, service) in [
        ("CreatePolicy", "iam"),
        ("CreateRole", "iam"),
        ("AttachRolePolicy", "iam"),
    ] {
        assert_eq!(
            sum(
                "rolecall_aws_calls_total",
                &[
                    &format!("service=\"{service}\""),
                    &format!("operation=\"{operation}\""),
                    "kind=\"write\"",
                    "outcome=\"ok\"",
                ],
            ),
            1.0,
            "{operation} once"
        );
    }
    assert_eq!(
        sum("rolecall_aws_calls_total", &["kind=\"write\""]),
        pairs::WRITES_PER_PAIR as f64,
        "no other write"
    );
    assert!(sum("rolecall_aws_calls_total", &["kind=\"read\""]) >= 1.0);
    for kind in ["IamPolicy", "IamRole"] {
        let label = format!("kind=\"{kind}\"");
        assert_eq!(
            sum("rolecall_objects", &[&label, "ready=\"true\""]),
            1.0,
            "{kind} Ready"
        );
        assert_eq!(sum("rolecall_objects", &[&label, "ready=\"false\""]), 0.0);
        let count = sum("rolecall_reconcile_duration_seconds_count", &[&label]);
        assert!(count >= 1.0, "{kind} durations observed");
        assert_eq!(
            sum(
                "rolecall_reconcile_duration_seconds_bucket",
                &[&label, "le=\"+Inf\""]
            ),
            count,
            "+Inf bucket holds every observation"
        );
    }
    assert_eq!(
        sum("rolecall_leader", &[]),
        1.0,
        "without election it always leads"
    );
    assert!(sum("rolecall_first_reconcile_seconds", &[]) > 0.0);
    assert!(sum("process_resident_memory_bytes", &[]) > 1e6);
    assert!(metrics.contains_key("process_cpu_seconds_total"));

    pairs::delete_all(&client, &namespace, Duration::from_secs(60)).await;
    let status = operator.terminate().expect("rolecall exits on SIGTERM");
    assert!(
        status.success(),
        "exit status {status}: {}",
        operator.output()
    );
    assert!(operator.output().contains("rolecall stopped"));
    // The log went to a pipe: no terminal colour codes in it.
    assert!(
        !operator.output().contains('\u{1b}'),
        "ANSI escapes in piped logs: {:.300}",
        operator.output()
    );
}
