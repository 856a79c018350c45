//! The chart's RBAC rules are exactly enough: the operator, acting as a service account bound
//! to the chart's ClusterRole with one rule removed, visibly breaks (never gets a finalizer,
//! never Ready, records no Events), and with every rule it runs a policy and a role from
//! creation to deletion. The Lease rule is checked the same way on the `rolecall run` binary
//! with `--leader-election`, since only the binary elects a leader.
//!
//! Every reconcile test (operator_iam.rs, operator_ec2.rs, ...) also runs as the chart's
//! ClusterRole: `common::operator::Operator::start` impersonates it.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::operator::{Operator, Options};
use common::process::OperatorProcess;
use common::rbac;
use common::ready::Ready;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use rolecall::api::{IamPolicy, IamRole};
use serde_json::json;

/// How long a broken operator gets to show it works after all. The full rule set must pass the
/// same scenario within `WORKS`.
const BROKEN: Duration = Duration::from_secs(15);
const WORKS: Duration = Duration::from_secs(60);

/// The first step of the scenario that did not happen in time.
#[derive(Debug, PartialEq, Eq)]
enum Broken {
    NoFinalizer,
    NeverReady,
    NoEvents,
    DeletionStuck,
}

fn objects(namespace: &str) -> (IamPolicy, IamRole) {
    let policy = serde_json::from_value(json!({
        "apiVersion": "iam.rolecall.dev/v1alpha1",
        "kind": "IamPolicy",
        "metadata": { "name": "reader" },
        "spec": {
            "name": format!("{namespace}-reader"),
            "document": { "Version": "2012-10-17", "Statement": [{ "Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*" }] },
        },
    }))
    .expect("valid IamPolicy");
    let role = serde_json::from_value(json!({
        "apiVersion": "iam.rolecall.dev/v1alpha1",
        "kind": "IamRole",
        "metadata": { "name": "app" },
        "spec": {
            "name": format!("{namespace}-app"),
            "trustedServices": ["ec2.amazonaws.com"],
            "policyRefs": [{ "name": "reader" }],
        },
    }))
    .expect("valid IamRole");
    (policy, role)
}

/// Polls `check` until it holds or `timeout` passes.
async fn within<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn both_have_finalizers(policies: &Api<IamPolicy>, roles: &Api<IamRole>) -> bool {
    let has = |finalizers: &[String]| {
        finalizers
            .iter()
            .any(|f| f == rolecall::conditions::FINALIZER)
    };
    matches!(
        (policies.get("reader").await, roles.get("app").await),
        (Ok(p), Ok(r)) if has(p.finalizers()) && has(r.finalizers())
    )
}

async fn both_ready(policies: &Api<IamPolicy>, roles: &Api<IamRole>) -> bool {
    let ready = |state: Option<(String, String, String)>| state.is_some_and(|s| s.0 == "True");
    matches!(
        (policies.get("reader").await, roles.get("app").await),
        (Ok(p), Ok(r)) if ready(p.ready()) && ready(r.ready())
    )
}

async fn both_have_events(events: &Api<Event>) -> bool {
    let Ok(list) = events.list(&ListParams::default()).await else {
        return false;
    };
    let about = |kind: &str, name: &str| {
        list.items.iter().any(|event| {
            event
                .regarding
                .as_ref()
                .is_some_and(|r| r.kind.as_deref() == Some(kind) && r.name.as_deref() == Some(name))
        })
    };
    about("IamPolicy", "reader") && about("IamRole", "app")
}

async fn both_gone(policies: &Api<IamPolicy>, roles: &Api<IamRole>) -> bool {
    matches!(policies.get_opt("reader").await, Ok(None))
        && matches!(roles.get_opt("app").await, Ok(None))
}

/// Creates a policy and a role referring to it, then walks them to Ready (with a finalizer and
/// Events on the way) and through deletion, giving each step `timeout`.
async fn scenario(admin: &Client, namespace: &str, timeout: Duration) -> Result<(), Broken> {
    let policies: Api<IamPolicy> = Api::namespaced(admin.clone(), namespace);
    let roles: Api<IamRole> = Api::namespaced(admin.clone(), namespace);
    let events: Api<Event> = Api::namespaced(admin.clone(), namespace);
    let (policy, role) = objects(namespace);
    policies
        .create(&PostParams::default(), &policy)
        .await
        .expect("creating the policy");
    roles
        .create(&PostParams::default(), &role)
        .await
        .expect("creating the role");
    if !within(timeout, || both_have_finalizers(&policies, &roles)).await {
        return Err(Broken::NoFinalizer);
    }
    if !within(timeout, || both_ready(&policies, &roles)).await {
        return Err(Broken::NeverReady);
    }
    if !within(timeout, || both_have_events(&events)).await {
        return Err(Broken::NoEvents);
    }
    for deleted in [
        policies
            .delete("reader", &DeleteParams::default())
            .await
            .map(|_| ()),
        roles
            .delete("app", &DeleteParams::default())
            .await
            .map(|_| ()),
    ] {
        deleted.expect("deleting");
    }
    if !within(timeout, || both_gone(&policies, &roles)).await {
        return Err(Broken::DeletionStuck);
    }
    Ok(())
}

/// After a broken run: a fully privileged operator deletes what is left, in AWS too.
async fn clean_up(admin: &Client, namespace: &str) {
    let operator = Operator::start(admin, namespace, Options::default()).await;
    let policies: Api<IamPolicy> = Api::namespaced(admin.clone(), namespace);
    let roles: Api<IamRole> = Api::namespaced(admin.clone(), namespace);
    let _ = policies.delete("reader", &DeleteParams::default()).await;
    let _ = roles.delete("app", &DeleteParams::default()).await;
    assert!(
        within(WORKS, || both_gone(&policies, &roles)).await,
        "cleaning up {namespace} with the chart's rules"
    );
    operator.stop().await;
}

fn chart_rules() -> Vec<PolicyRule> {
    common::chart::cluster_role().rules.unwrap_or_default()
}

fn tenancy_reader_rules() -> Vec<PolicyRule> {
    common::chart::tenancy_reader_role()
        .rules
        .unwrap_or_default()
}

fn describe(rule: &PolicyRule) -> String {
    format!(
        "{:?} {:?} {:?}",
        rule.api_groups.clone().unwrap_or_default(),
        rule.resources.clone().unwrap_or_default(),
        rule.verbs
    )
}

/// Runs the scenario with an in-process operator acting as a service account bound (in a fresh
/// namespace) to exactly `rules`.
async fn run_with_rules(
    label: &str,
    rules: Vec<PolicyRule>,
    tenancy_reader: bool,
    timeout: Duration,
) -> Result<(), Broken> {
    let admin = common::kube_client().await;
    common::install_crds(&admin).await;
    let namespace = common::fresh_namespace(&admin, &format!("rbac-{label}")).await;
    let role_name = format!("{namespace}-operator");
    let reader_name = format!("{namespace}-tenancy-reader");
    let probe = rules[0].clone();
    rbac::apply_cluster_role(&admin, &role_name, rules).await;
    rbac::bind_in_namespace(&admin, &role_name, &namespace, &namespace, "rolecall").await;
    if tenancy_reader {
        rbac::apply_cluster_role(&admin, &reader_name, tenancy_reader_rules()).await;
        rbac::bind_cluster_wide(&admin, &reader_name, &namespace, "rolecall").await;
    }
    let operator_client =
        rbac::impersonating_client(&rbac::service_account_user(&namespace, "rolecall")).await;
    rbac::wait_until_allowed(
        &operator_client,
        Some(&namespace),
        &probe.api_groups.clone().unwrap_or_default()[0],
        &probe.resources.clone().unwrap_or_default()[0],
        &probe.verbs[0],
    )
    .await;
    let operator =
        Operator::start_as(&admin, operator_client, &namespace, Options::default()).await;
    let outcome = scenario(&admin, &namespace, timeout).await;
    operator.stop().await;
    if outcome.is_err() {
        clean_up(&admin, &namespace).await;
    }
    for name in [&role_name, &reader_name] {
        let _ = Api::<ClusterRole>::all(admin.clone())
            .delete(name, &DeleteParams::default())
            .await;
    }
    outcome
}

#[tokio::test(flavor = "multi_thread")]
async fn the_charts_rules_run_a_policy_and_role_from_creation_to_deletion() {
    assert_eq!(
        run_with_rules("all", chart_rules(), true, WORKS).await,
        Ok(())
    );
}

/// Without reading the Tenancies, no namespace's rules are known (one may be stricter than
/// the defaults), so nothing is reconciled: the controllers wait up to 30 s for the rules
/// before they start (then every object says it waits for them), longer than this test looks,
/// so not even the finalizer is added.
#[tokio::test(flavor = "multi_thread")]
async fn without_the_tenancy_reader_nothing_becomes_ready() {
    assert_eq!(
        run_with_rules("no-tenancy", chart_rules(), false, BROKEN).await,
        Err(Broken::NoFinalizer)
    );
}

/// Runs the scenario without the chart rule granting `resource` and returns what broke.
async fn without_rule_for(resource: &str) -> Result<(), Broken> {
    let rules = chart_rules();
    let before = rules.len();
    let remaining: Vec<PolicyRule> = rules
        .into_iter()
        .filter(|rule| {
            !rule
                .resources
                .clone()
                .unwrap_or_default()
                .iter()
                .any(|r| r == resource)
        })
        .collect();
    assert_eq!(
        remaining.len(),
        before - 1,
        "exactly one chart rule grants {resource}: {:?}",
        remaining.iter().map(describe).collect::<Vec<_>>()
    );
    run_with_rules(&resource.replace('/', "-"), remaining, true, BROKEN).await
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_rule_for_its_kinds_nothing_is_reconciled() {
    assert_eq!(
        without_rule_for("iampolicies").await,
        Err(Broken::NoFinalizer)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_rule_for_status_nothing_becomes_ready() {
    assert_eq!(
        without_rule_for("iampolicies/status").await,
        Err(Broken::NeverReady)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_rule_for_events_no_event_is_recorded() {
    assert_eq!(without_rule_for("events").await, Err(Broken::NoEvents));
}

#[test]
fn the_chart_has_exactly_the_rules_these_tests_remove() {
    let rules: Vec<String> = chart_rules().iter().map(describe).collect();
    assert_eq!(
        rules,
        vec![
            r#"["iam.rolecall.dev"] ["iampolicies", "iamroles", "instanceprofiles", "ec2instancebindings", "iamgroups", "iamusers"] ["get", "list", "watch", "patch"]"#,
            r#"["iam.rolecall.dev"] ["iampolicies/status", "iamroles/status", "instanceprofiles/status", "ec2instancebindings/status", "iamgroups/status", "iamusers/status"] ["patch"]"#,
            r#"["events.k8s.io"] ["events"] ["create", "patch"]"#,
            // The account security reports' (tests/security_report.rs runs as these rules and
            // removes the status one).
            r#"["iam.rolecall.dev"] ["accountsecurityreports"] ["list", "watch"]"#,
            r#"["iam.rolecall.dev"] ["accountsecurityreports/status"] ["patch"]"#,
            r#"["iam.rolecall.dev"] ["accountpasswordpolicies"] ["get", "list", "watch", "patch"]"#,
            r#"["iam.rolecall.dev"] ["accountpasswordpolicies/status"] ["patch"]"#,
        ],
        "a rule was added or changed: add a test above that removes it"
    );
    let reader: Vec<String> = tenancy_reader_rules().iter().map(describe).collect();
    assert_eq!(
        reader,
        vec![
            r#"["iam.rolecall.dev"] ["tenancies"] ["get", "list", "watch"]"#,
            r#"[""] ["namespaces"] ["get", "list", "watch"]"#,
        ],
        "the tenancy reader changed: it must stay read-only"
    );
}

/// The chart's leader-election Role rules (rendered with its default values).
fn lease_rules() -> Vec<PolicyRule> {
    let yaml = common::chart::render(
        "rolecall",
        "rolecall",
        &["--show-only", "templates/roles.yaml"],
    );
    let role = common::chart::documents(&yaml)
        .into_iter()
        .find(|document| document["kind"] == "Role")
        .expect("the chart renders the leader-election Role by default");
    let role: Role = serde_norway::from_value(role).expect("a valid Role");
    role.rules.unwrap_or_default()
}

/// A copy of `KUBECONFIG` whose users act as `user` (`as:`), for a child process.
fn impersonating_kubeconfig(user: &str, label: &str) -> PathBuf {
    let source = std::env::var("KUBECONFIG").expect("KUBECONFIG is set");
    let text = std::fs::read_to_string(&source).expect("readable KUBECONFIG");
    let mut config: serde_norway::Value = serde_norway::from_str(&text).expect("kubeconfig YAML");
    for entry in config["users"].as_sequence_mut().expect("kubeconfig users") {
        entry["user"]["as"] = user.into();
    }
    let path = std::env::temp_dir().join(format!(
        "rolecall-rbac-{label}-{}.kubeconfig",
        std::process::id()
    ));
    std::fs::write(&path, serde_norway::to_string(&config).unwrap()).expect("writing kubeconfig");
    path
}

/// `rolecall run --leader-election` as a child process, killed on drop.
/// The scenario against `rolecall run --leader-election` acting as a service account with the
/// chart's ClusterRole rules and, if `with_lease`, its leader-election Role.
async fn run_binary(label: &str, with_lease: bool, timeout: Duration) -> Result<(), Broken> {
    let admin = common::kube_client().await;
    common::install_crds(&admin).await;
    let namespace = common::fresh_namespace(&admin, &format!("rbac-{label}")).await;
    let role_name = format!("{namespace}-operator");
    let lease_role = format!("{namespace}-lease");
    let reader_name = format!("{namespace}-tenancy-reader");
    rbac::apply_cluster_role(&admin, &role_name, chart_rules()).await;
    rbac::bind_in_namespace(&admin, &role_name, &namespace, &namespace, "rolecall").await;
    rbac::apply_cluster_role(&admin, &reader_name, tenancy_reader_rules()).await;
    rbac::bind_cluster_wide(&admin, &reader_name, &namespace, "rolecall").await;
    let user = rbac::service_account_user(&namespace, "rolecall");
    let operator_client = rbac::impersonating_client(&user).await;
    if with_lease {
        rbac::apply_cluster_role(&admin, &lease_role, lease_rules()).await;
        rbac::bind_in_namespace(&admin, &lease_role, &namespace, &namespace, "rolecall").await;
        rbac::wait_until_allowed(
            &operator_client,
            Some(&namespace),
            "coordination.k8s.io",
            "leases",
            "create",
        )
        .await;
    }
    rbac::wait_until_allowed(
        &operator_client,
        Some(&namespace),
        "iam.rolecall.dev",
        "iampolicies",
        "watch",
    )
    .await;
    let kubeconfig = impersonating_kubeconfig(&user, label);
    let operator = OperatorProcess::start_on(
        kubeconfig.to_str().expect("utf-8 path"),
        env!("CARGO_BIN_EXE_rolecall"),
        &namespace,
        &common::aws_endpoint(),
        &[
            "--leader-election",
            "--leader-election-namespace",
            &namespace,
        ],
    );
    let outcome = scenario(&admin, &namespace, timeout).await;
    let log = operator.output();
    drop(operator);
    if outcome.is_err() {
        clean_up(&admin, &namespace).await;
    }
    for name in [&role_name, &lease_role, &reader_name] {
        let _ = Api::<ClusterRole>::all(admin.clone())
            .delete(name, &DeleteParams::default())
            .await;
    }
    if with_lease && outcome.is_err() {
        eprintln!("rolecall run log:\n{log}");
    }
    let _ = std::fs::remove_file(&kubeconfig);
    outcome
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_with_leader_election_reconciles_with_the_lease_rule() {
    assert_eq!(run_binary("lease", true, WORKS).await, Ok(()));
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_lease_rule_the_binary_never_reconciles() {
    assert_eq!(
        run_binary("no-lease", false, BROKEN).await,
        Err(Broken::NoFinalizer)
    );
}
