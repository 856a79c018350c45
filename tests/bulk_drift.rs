//! Bulk drift checks against the real API server and moto: converged roles and policies are
//! checked against one account snapshot per resync period with no read of their own, drift
//! made by hand is found by that check and repaired, and a failing snapshot read falls back
//! to per-object reads with every object staying Ready.

mod common;

use std::time::Duration;

use common::operator::{Operator, Options};
use common::pairs;
use rolecall::aws::CallKind;
use rolecall::faultproxy::{Fault, FaultProxy, Rule, Rules};

const WAIT: Duration = Duration::from_secs(90);
const RESYNC: Duration = Duration::from_secs(2);

/// The reads a drift check makes when it reads its own object.
const PER_OBJECT_READS: [&str; 7] = [
    "GetRole",
    "ListAttachedRolePolicies",
    "ListRolePolicies",
    "GetRolePolicy",
    "GetPolicy",
    "GetPolicyVersion",
    "ListPolicyVersions",
];
const SNAPSHOT_READS: [&str; 2] = ["GetAccountAuthorizationDetails", "ListRoles"];

/// `rolecall_drift_checks_total{result}` summed over kinds.
fn drift_checks(operator: &Operator, result: &str) -> u64 {
    let metrics = common::process::parse_metrics(&operator.ctx.telemetry.metrics.render(None));
    common::process::sum_matching(
        &metrics,
        "rolecall_drift_checks_total",
        &[&format!("result=\"{result}\"")],
    ) as u64
}

/// Successful and failed calls of `operations`.
fn calls(operator: &Operator, kind: CallKind, operations: &[&str]) -> u64 {
    operator
        .ctx
        .calls
        .snapshot()
        .iter()
        .filter(|((k, operation), _)| *k == kind && operations.contains(operation))
        .map(|(_, count)| count.ok + count.failed)
        .sum()
}

struct Window {
    checks: u64,
    in_sync: u64,
    per_object_reads: u64,
    snapshot_reads: u64,
    reads: u64,
    writes: u64,
}

/// What happens while `checks` more drift checks are made.
async fn window(operator: &Operator, checks: u64) -> Window {
    let total = || {
        ["in_sync", "drift", "per_object"]
            .iter()
            .map(|result| drift_checks(operator, result))
            .sum::<u64>()
    };
    let (checks_before, in_sync_before) = (total(), drift_checks(operator, "in_sync"));
    let per_object_before = calls(operator, CallKind::Read, &PER_OBJECT_READS);
    let snapshot_before = calls(operator, CallKind::Read, &SNAPSHOT_READS);
    let (reads_before, writes_before) = (operator.reads(), operator.writes());
    common::wait_for(&format!("{checks} drift checks"), WAIT, || async {
        (total() >= checks_before + checks).then_some(())
    })
    .await;
    Window {
        checks: total() - checks_before,
        in_sync: drift_checks(operator, "in_sync") - in_sync_before,
        per_object_reads: calls(operator, CallKind::Read, &PER_OBJECT_READS) - per_object_before,
        snapshot_reads: calls(operator, CallKind::Read, &SNAPSHOT_READS) - snapshot_before,
        reads: operator.reads() - reads_before,
        writes: operator.writes() - writes_before,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn converged_roles_and_policies_make_no_per_object_read_during_a_bulk_resync() {
    const PAIRS: usize = 10;
    const OBJECTS: u64 = 2 * PAIRS as u64;
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let namespace = common::fresh_namespace(&client, "bulk-quiet").await;
    let operator = Operator::start(
        &client,
        &namespace,
        Options {
            resync: RESYNC,
            ..Options::default()
        },
    )
    .await;
    pairs::apply(&client, &namespace, 0..PAIRS).await;
    pairs::wait_all_ready(&client, &namespace, PAIRS, WAIT).await;

    // An object reconciled after a snapshot was read takes its own reads once more; after
    // that every check is answered from the snapshot. Wait for a round with no other answer.
    common::wait_for(
        "a round of drift checks all answered by the snapshot",
        WAIT,
        || async {
            let round = window(&operator, OBJECTS).await;
            (round.in_sync == round.checks).then_some(())
        },
    )
    .await;

    // Two more rounds: every check answered from the snapshot, not one read of an object.
    let quiet = window(&operator, 2 * OBJECTS).await;
    let per_check = quiet.reads as f64 / quiet.checks as f64;
    eprintln!(
        "bulk: {} drift checks, {} in sync, {} reads ({} snapshot, {} per-object), {} writes: {per_check:.3} reads per object per resync",
        quiet.checks,
        quiet.in_sync,
        quiet.reads,
        quiet.snapshot_reads,
        quiet.per_object_reads,
        quiet.writes
    );
    assert_eq!(quiet.in_sync, quiet.checks, "every check from the snapshot");
    assert_eq!(
        quiet.per_object_reads,
        0,
        "{:?}",
        operator.ctx.calls.snapshot()
    );
    assert_eq!(quiet.writes, 0);
    assert_eq!(
        quiet.reads,
        quiet.snapshot_reads,
        "only snapshot reads: {:?}",
        operator.ctx.calls.snapshot()
    );
    // One snapshot (two reads here: one page of each call) per resync period, shared by all:
    // two rounds of checks span at most about three periods.
    assert!(
        quiet.snapshot_reads <= 2 * 4,
        "{} snapshot reads for two rounds",
        quiet.snapshot_reads
    );
    assert!(quiet.snapshot_reads >= 2, "the snapshot was read again");
    operator.stop().await;

    // The same objects, checked the old way, for comparison.
    let operator = Operator::start(
        &client,
        &namespace,
        Options {
            resync: RESYNC,
            bulk_drift_checks: false,
            ..Options::default()
        },
    )
    .await;
    let _ = window(&operator, OBJECTS).await;
    let old = window(&operator, 2 * OBJECTS).await;
    let per_check = old.reads as f64 / old.checks as f64;
    eprintln!(
        "per-object: {} drift checks, {} reads, {} writes: {per_check:.3} reads per object per resync",
        old.checks, old.reads, old.writes
    );
    assert_eq!(old.in_sync, 0);
    assert!(
        old.per_object_reads >= 2 * old.checks,
        "{}",
        old.per_object_reads
    );
    assert_eq!(old.writes, 0);
    pairs::delete_all(&client, &namespace, WAIT).await;
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn drift_found_by_the_bulk_check_is_repaired() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let namespace = common::fresh_namespace(&client, "bulk-drift").await;
    let aws = common::operator::aws_clients().await;
    let operator = Operator::start(
        &client,
        &namespace,
        Options {
            resync: RESYNC,
            ..Options::default()
        },
    )
    .await;
    pairs::apply(&client, &namespace, 0..1).await;
    pairs::wait_all_ready(&client, &namespace, 1, WAIT).await;
    common::wait_for("both objects answered by the snapshot", WAIT, || async {
        let round = window(&operator, 2).await;
        (round.in_sync == round.checks).then_some(())
    })
    .await;

    // By hand: the role loses its policy, its trust and its description; the policy gets a
    // new default version.
    let role = pairs::role_name(&namespace, 0);
    let policies: kube::Api<rolecall::api::IamPolicy> =
        kube::Api::namespaced(client.clone(), &namespace);
    let policy_arn = policies
        .get("p0")
        .await
        .unwrap()
        .status
        .and_then(|status| status.arn)
        .expect("the policy's ARN");
    aws.iam
        .detach_role_policy()
        .role_name(&role)
        .policy_arn(&policy_arn)
        .send()
        .await
        .unwrap();
    let lambda_trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    aws.iam
        .update_assume_role_policy()
        .role_name(&role)
        .policy_document(lambda_trust)
        .send()
        .await
        .unwrap();
    aws.iam
        .update_role()
        .role_name(&role)
        .description("tampered")
        .send()
        .await
        .unwrap();
    let wide = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
    aws.iam
        .create_policy_version()
        .policy_arn(&policy_arn)
        .policy_document(wide)
        .set_as_default(true)
        .send()
        .await
        .unwrap();
    let drift_before = drift_checks(&operator, "drift");

    common::wait_for("the drift repaired", WAIT, || async {
        let found = aws
            .iam
            .get_role()
            .role_name(&role)
            .send()
            .await
            .ok()?
            .role?;
        let trust =
            rolecall::equivalence::decode_iam_document(found.assume_role_policy_document()?)
                .ok()?;
        let attached = aws
            .iam
            .list_attached_role_policies()
            .role_name(&role)
            .send()
            .await
            .ok()?;
        let policy = aws
            .iam
            .get_policy()
            .policy_arn(&policy_arn)
            .send()
            .await
            .ok()?
            .policy?;
        let version = aws
            .iam
            .get_policy_version()
            .policy_arn(&policy_arn)
            .version_id(policy.default_version_id()?)
            .send()
            .await
            .ok()?
            .policy_version?;
        let document = rolecall::equivalence::decode_iam_document(version.document()?).ok()?;
        let repaired = trust.to_string().contains("ec2.amazonaws.com")
            && found.description().unwrap_or_default().is_empty()
            && attached
                .attached_policies()
                .iter()
                .any(|p| p.policy_arn() == Some(policy_arn.as_str()))
            && document.to_string().contains("s3:GetObject");
        repaired.then_some(())
    })
    .await;
    assert!(
        drift_checks(&operator, "drift") >= drift_before + 2,
        "both objects' drift was found by the bulk check: {} before, {} after",
        drift_before,
        drift_checks(&operator, "drift")
    );
    pairs::wait_all_ready(&client, &namespace, 1, WAIT).await;
    pairs::delete_all(&client, &namespace, WAIT).await;
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_snapshot_read_falls_back_to_per_object_reads_and_nothing_goes_not_ready() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let namespace = common::fresh_namespace(&client, "bulk-fails").await;
    let proxy = FaultProxy::start(&common::aws_endpoint())
        .await
        .expect("the fault proxy starts");
    let operator = Operator::start(
        &client,
        &namespace,
        Options {
            resync: RESYNC,
            endpoint: Some(proxy.endpoint()),
            ..Options::default()
        },
    )
    .await;
    pairs::apply(&client, &namespace, 0..2).await;
    pairs::wait_all_ready(&client, &namespace, 2, WAIT).await;
    common::wait_for("a round answered by the snapshot", WAIT, || async {
        let round = window(&operator, 4).await;
        (round.in_sync == round.checks).then_some(())
    })
    .await;

    proxy.set_rules(Rules::new(vec![Rule::new(
        &["GetAccountAuthorizationDetails"],
        Fault::InternalError,
    )]));
    let failed_before = operator
        .ctx
        .calls
        .snapshot()
        .get(&(CallKind::Read, "GetAccountAuthorizationDetails"))
        .map_or(0, |count| count.failed);
    let outage = window(&operator, 8).await;
    let failed = operator
        .ctx
        .calls
        .snapshot()
        .get(&(CallKind::Read, "GetAccountAuthorizationDetails"))
        .map_or(0, |count| count.failed)
        - failed_before;
    eprintln!(
        "outage: {} checks, {} in sync, {} per-object reads, {failed} failed snapshot reads",
        outage.checks, outage.in_sync, outage.per_object_reads
    );
    assert!(failed >= 1, "the snapshot was tried");
    assert!(outage.in_sync < outage.checks, "checks went on without it");
    assert!(outage.per_object_reads >= 3, "{}", outage.per_object_reads);
    assert_eq!(outage.writes, 0);
    assert!(
        pairs::not_ready(&client, &namespace).await.is_empty(),
        "{:?}",
        pairs::not_ready(&client, &namespace).await
    );
    proxy.clear();
    pairs::delete_all(&client, &namespace, WAIT).await;
    operator.stop().await;
}
