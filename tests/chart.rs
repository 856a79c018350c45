//! The Helm chart: `helm lint` passes, the values schema rejects wrong values naming the field,
//! and `helm template` output for three value sets (defaults, `ci/namespaced-ha-values.yaml`,
//! `ci/irsa-json-values.yaml`) is applied for real (server-side apply) to the API server, whose
//! RBAC then grants the service account exactly what the chart says. The ServiceMonitor is
//! applied too, against a trimmed ServiceMonitor CRD installed from tests/fixtures (the
//! Prometheus operator is not part of the test environment). The chart's crds/ matching the
//! top-level crds/ is checked by tests/crds_generated.rs.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::chart::{CHART, documents, render, run, run_ok};
use serde_norway::Value;

fn ci_values(name: &str) -> String {
    format!("{CHART}/ci/{name}")
}

#[test]
fn helm_lint_passes_for_every_value_set() {
    run_ok("helm", &["lint", "--strict", CHART], None);
    for values in ["namespaced-ha-values.yaml", "irsa-json-values.yaml"] {
        run_ok(
            "helm",
            &["lint", "--strict", CHART, "-f", &ci_values(values)],
            None,
        );
    }
}

#[test]
fn the_values_schema_rejects_wrong_values_naming_the_field() {
    let cases: &[(&[&str], &str)] = &[
        (&["--set", "logFormat=xml"], "/logFormat"),
        (&["--set", "concurrency=0"], "/concurrency"),
        (&["--set", "replicas=two"], "/replicas"),
        (&["--set", "resyncPeriod=ten minutes"], "/resyncPeriod"),
        (&["--set", "region=Europe"], "/region"),
        (
            &["--set", "awsEndpointUrl=localhost:4566"],
            "/awsEndpointUrl",
        ),
        (&["--set", "clusterName=prod/eu"], "/clusterName"),
        (
            &["--set-json", r#"watchNamespaces="team-a""#],
            "/watchNamespaces",
        ),
        (
            &["--set-json", r#"watchNamespaces=["Team_A"]"#],
            "/watchNamespaces/0",
        ),
        (
            &["--set", "leaderElection.enabled=maybe"],
            "/leaderElection/enabled",
        ),
        (
            &["--set", "leaderElection.leaseDuration=15 seconds"],
            "/leaderElection/leaseDuration",
        ),
        (
            &["--set", "metrics.service.type=Ingress"],
            "/metrics/service/type",
        ),
        (
            &["--set", "image.pullPolicy=Sometimes"],
            "/image/pullPolicy",
        ),
        (&["--set", "httpPort=80800"], "/httpPort"),
        (&["--set", "replica=2"], "'replica' not allowed"),
        (
            &["--set", "serviceAccount.annotation.x=y"],
            "'annotation' not allowed",
        ),
    ];
    for (args, field) in cases {
        let mut full = vec!["template", "rc", CHART];
        full.extend_from_slice(args);
        let output = run("helm", &full, None);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "helm accepted {args:?}");
        assert!(
            stderr.contains("schema") && stderr.contains(field),
            "helm rejected {args:?} without naming {field}: {stderr}"
        );
    }
}

fn kinds(documents: &[Value]) -> BTreeSet<String> {
    documents
        .iter()
        .map(|d| {
            d["kind"]
                .as_str()
                .expect("every object has a kind")
                .to_string()
        })
        .collect()
}

fn find<'a>(documents: &'a [Value], kind: &str) -> &'a Value {
    documents
        .iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} rendered"))
}

/// The operator container's environment as name -> literal value.
fn env(deployment: &Value) -> std::collections::BTreeMap<String, String> {
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_sequence()
        .expect("env list")
        .iter()
        .filter_map(|e| {
            Some((
                e["name"].as_str()?.to_string(),
                e["value"].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// Asks the API server (SubjectAccessReview via `kubectl auth can-i --as`) whether the chart's
/// service account may do `args`; polls for "yes" since bindings take a moment to apply.
/// Asserts that `user` may do each of `allowed` and none of `denied`. `kubectl auth can-i --as`
/// answers "no" for an identity that is misspelled or holds nothing, so a denial proves something
/// only beside a grant to the same identity: the grants are checked first, and required.
fn can_but_not(user: &str, allowed: &[&[&str]], denied: &[&[&str]]) {
    assert!(
        !allowed.is_empty(),
        "denials of {user} need a grant to {user} beside them"
    );
    for args in allowed {
        can_i(user, args, true);
    }
    for args in denied {
        can_i(user, args, false);
    }
}

fn can_i(user: &str, args: &[&str], expected: bool) {
    let mut full = vec!["auth", "can-i"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["--as", user]);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let output = run("kubectl", &full, None);
        let answer = String::from_utf8_lossy(&output.stdout).trim().to_string();
        if (answer == "yes") == expected {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "kubectl {}: {answer:?}, expected {}",
            full.join(" "),
            if expected { "yes" } else { "no" }
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

struct Applied {
    namespace: String,
    user: String,
    documents: Vec<Value>,
    rendered: String,
}

/// Renders the chart into a fresh release namespace (the release named after it, so
/// cluster-scoped names are unique) and applies it server-side for real.
async fn apply_chart(prefix: &str, values: &[&str]) -> Applied {
    let admin = common::kube_client().await;
    // kubectl auth can-i resolves the rolecall resources through discovery.
    common::install_crds(&admin).await;
    let namespace = common::fresh_namespace(&admin, prefix).await;
    // The admission policy is cluster-wide by default; scoped to this release's namespace it
    // cannot refuse what other tests, running alongside, send the operator to refuse.
    let scope = format!(
        r#"admissionPolicy.namespaceSelector={{"matchLabels":{{"kubernetes.io/metadata.name":"{namespace}"}}}}"#
    );
    let mut values = values.to_vec();
    values.extend(["--set-json", scope.as_str()]);
    let rendered = render(&namespace, &namespace, &values);
    run_ok(
        "kubectl",
        &[
            "apply",
            "--server-side",
            "--field-manager=rolecall-chart-test",
            "-f",
            "-",
        ],
        Some(&rendered),
    );
    Applied {
        user: format!("system:serviceaccount:{namespace}:{namespace}-rolecall"),
        documents: documents(&rendered),
        namespace,
        rendered,
    }
}

impl Drop for Applied {
    /// Deletes what the chart created (the namespaces stay: without kube-controller-manager
    /// they cannot finish terminating).
    fn drop(&mut self) {
        let _ = run(
            "kubectl",
            &["delete", "--ignore-not-found", "--wait=false", "-f", "-"],
            Some(&self.rendered),
        );
    }
}

fn check_security_and_probes(deployment: &Value) {
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"][0], "ALL");
    assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["port"], "http");
    assert_eq!(container["ports"][0]["name"], "http");
    assert_eq!(env(deployment)["ROLECALL_HTTP_ADDRESS"], "0.0.0.0:8080");
}

#[tokio::test(flavor = "multi_thread")]
async fn default_values_apply_and_grant_the_cluster_wide_rules() {
    let applied = apply_chart("chart-default", &[]).await;
    let expected: BTreeSet<String> = [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]
    .map(String::from)
    .into();
    assert_eq!(kinds(&applied.documents), expected);
    let deployment = find(&applied.documents, "Deployment");
    check_security_and_probes(deployment);
    let env = env(deployment);
    assert_eq!(env["ROLECALL_LEADER_ELECTION"], "true");
    assert_eq!(env["ROLECALL_CLUSTER_NAME"], "default");
    assert!(!env.contains_key("ROLECALL_WATCH_NAMESPACES"));
    assert!(!env.contains_key("ROLECALL_DRY_RUN"));

    // What the API server now grants the chart's service account.
    let user = &applied.user;
    let ns = applied.namespace.as_str();
    can_but_not(
        user,
        &[
            &["watch", "iamroles.iam.rolecall.dev", "--all-namespaces"],
            &[
                "patch",
                "ec2instancebindings.iam.rolecall.dev/status",
                "-n",
                "default",
            ],
            &["create", "events.events.k8s.io", "-n", "default"],
            &["patch", "leases.coordination.k8s.io", "-n", ns],
            // The cluster-scoped reports, in the cluster-wide install only.
            &["watch", "accountsecurityreports.iam.rolecall.dev"],
            &[
                "patch",
                "accountsecurityreports.iam.rolecall.dev",
                "--subresource",
                "status",
            ],
        ],
        &[
            &["create", "leases.coordination.k8s.io", "-n", "default"],
            &["patch", "accountsecurityreports.iam.rolecall.dev"],
            &["delete", "iamroles.iam.rolecall.dev", "-n", "default"],
            &[
                "update",
                "iamroles.iam.rolecall.dev/status",
                "-n",
                "default",
            ],
            &["list", "secrets", "-n", ns],
            // IamUser's Secrets only with rbac.userSecrets.
            &["get", "secrets", "-n", "default"],
            &["create", "secrets", "-n", "default"],
        ],
    );
    let stored = run_ok(
        "kubectl",
        &[
            "get",
            "deployment",
            "-n",
            ns,
            &format!("{ns}-rolecall"),
            "-o",
            "jsonpath={.spec.replicas}",
        ],
        None,
    );
    assert_eq!(stored, "1");
}

/// rbac.userSecrets grants what IamUsers need of Secrets (get, create, patch; list and watch
/// for the watch of rolecall's labelled Secrets; delete for those no access uses any more), in
/// the watched namespaces only, and no update.
#[tokio::test(flavor = "multi_thread")]
async fn user_secrets_are_granted_only_when_asked_and_only_in_watched_namespaces() {
    let admin = common::kube_client().await;
    let team = common::fresh_namespace(&admin, "chart-user-secrets").await;
    let other = common::fresh_namespace(&admin, "chart-no-secrets").await;
    let watched = format!(r#"watchNamespaces=["{team}"]"#);
    let applied = apply_chart(
        "chart-secrets",
        &["--set", "rbac.userSecrets=true", "--set-json", &watched],
    )
    .await;
    can_but_not(
        &applied.user,
        &[
            &["get", "secrets", "-n", &team],
            &["create", "secrets", "-n", &team],
            &["patch", "secrets", "-n", &team],
            &["list", "secrets", "-n", &team],
            &["watch", "secrets", "-n", &team],
            &["delete", "secrets", "-n", &team],
            &["watch", "iamusers.iam.rolecall.dev", "-n", &team],
        ],
        &[
            &["update", "secrets", "-n", &team],
            &["get", "secrets", "-n", &other],
            &["create", "secrets", "-n", &other],
            &["list", "secrets", "-n", &other],
            &["watch", "secrets", "-n", &other],
            &["delete", "secrets", "-n", &other],
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn watched_namespaces_get_roles_and_three_replicas_elect_a_leader() {
    let admin = common::kube_client().await;
    let team_a = common::fresh_namespace(&admin, "chart-team-a").await;
    let team_b = common::fresh_namespace(&admin, "chart-team-b").await;
    let watched = format!(r#"watchNamespaces=["{team_a}","{team_b}"]"#);
    let applied = apply_chart(
        "chart-ha",
        &[
            "-f",
            &ci_values("namespaced-ha-values.yaml"),
            "--set-json",
            &watched,
        ],
    )
    .await;
    let found = kinds(&applied.documents);
    assert!(found.contains("PodDisruptionBudget"), "{found:?}");
    assert!(!found.contains("ServiceMonitor"), "{found:?}");
    // Watching some namespaces grants nothing cluster-wide but reading the Tenancies and the
    // namespaces' labels, which no namespace may be trusted to hold.
    let cluster_roles: Vec<&str> = applied
        .documents
        .iter()
        .filter(|d| d["kind"] == "ClusterRole")
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        cluster_roles,
        vec![format!("{}-rolecall-tenancy-reader", applied.namespace)],
        "{found:?}"
    );
    let roles: Vec<&str> = applied
        .documents
        .iter()
        .filter(|d| d["kind"] == "Role")
        .map(|d| d["metadata"]["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        [team_a.as_str(), team_b.as_str(), applied.namespace.as_str()]
    );
    let deployment = find(&applied.documents, "Deployment");
    check_security_and_probes(deployment);
    assert_eq!(deployment["spec"]["replicas"], 3);
    let env = env(deployment);
    assert_eq!(
        env["ROLECALL_WATCH_NAMESPACES"],
        format!("{team_a},{team_b}")
    );
    // leaderElection.enabled is false in the values file: more than one replica forces it on.
    assert_eq!(env["ROLECALL_LEADER_ELECTION"], "true");

    let user = &applied.user;
    can_but_not(
        user,
        &[
            &["list", "iampolicies.iam.rolecall.dev", "-n", &team_a],
            &[
                "patch",
                "iampolicies.iam.rolecall.dev/status",
                "-n",
                &team_b,
            ],
            &[
                "create",
                "leases.coordination.k8s.io",
                "-n",
                &applied.namespace,
            ],
        ],
        &[
            &["list", "iampolicies.iam.rolecall.dev", "--all-namespaces"],
            &[
                "list",
                "iampolicies.iam.rolecall.dev",
                "-n",
                &applied.namespace,
            ],
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn irsa_json_logs_and_a_service_monitor_apply() {
    // The ServiceMonitor needs its CRD; install the trimmed fixture and wait until served.
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/servicemonitor-crd.yaml"
    );
    run_ok(
        "kubectl",
        &[
            "apply",
            "--server-side",
            "--field-manager=rolecall-chart-test",
            "-f",
            fixture,
        ],
        None,
    );
    run_ok(
        "kubectl",
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=30s",
            "crd/servicemonitors.monitoring.coreos.com",
        ],
        None,
    );
    let applied = apply_chart("chart-irsa", &["-f", &ci_values("irsa-json-values.yaml")]).await;
    let found = kinds(&applied.documents);
    assert!(found.contains("ServiceMonitor"), "{found:?}");
    assert!(
        !found.contains("Role"),
        "no leader election, no lease Role: {found:?}"
    );
    let deployment = find(&applied.documents, "Deployment");
    check_security_and_probes(deployment);
    let env = env(deployment);
    assert_eq!(env["ROLECALL_LOG_FORMAT"], "json");
    assert_eq!(env["ROLECALL_AWS_ENDPOINT_URL"], "http://127.0.0.1:4566");
    assert_eq!(env["AWS_REGION"], "eu-west-1");
    assert_eq!(env["ROLECALL_DRY_RUN"], "true");
    assert_eq!(env["AWS_STS_REGIONAL_ENDPOINTS"], "regional");
    assert!(!env.contains_key("ROLECALL_LEADER_ELECTION"));

    let ns = applied.namespace.as_str();
    let annotation = run_ok(
        "kubectl",
        &[
            "get",
            "serviceaccount",
            "-n",
            ns,
            &format!("{ns}-rolecall"),
            "-o",
            r"jsonpath={.metadata.annotations.eks\.amazonaws\.com/role-arn}",
        ],
        None,
    );
    assert_eq!(annotation, "arn:aws:iam::123456789012:role/rolecall");
    let port = run_ok(
        "kubectl",
        &[
            "get",
            "servicemonitor",
            "-n",
            ns,
            &format!("{ns}-rolecall"),
            "-o",
            "jsonpath={.spec.endpoints[0].port}",
        ],
        None,
    );
    assert_eq!(port, "http");
    can_but_not(
        &applied.user,
        &[&["watch", "iamroles.iam.rolecall.dev", "--all-namespaces"]],
        &[&["create", "leases.coordination.k8s.io", "-n", ns]],
    );
}

/// The Deployment's arguments and environment, as `rolecall run` parses them: the binary must
/// get past flag parsing and stop only at the missing cluster (no kubeconfig, no in-cluster
/// service account). Catches a value wired to a flag or variable the binary does not know.
#[test]
fn the_binary_accepts_the_deployments_flags_and_environment() {
    let value_sets: [&[&str]; 3] = [
        &[],
        &["-f", &ci_values("namespaced-ha-values.yaml")],
        &["-f", &ci_values("irsa-json-values.yaml")],
    ];
    for values in value_sets {
        let rendered = documents(&render("rc", "rolecall", values));
        let container = &find(&rendered, "Deployment")["spec"]["template"]["spec"]["containers"][0];
        let args: Vec<&str> = container["args"]
            .as_sequence()
            .expect("args")
            .iter()
            .map(|arg| arg.as_str().expect("string args"))
            .collect();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_rolecall"));
        command
            .args(&args)
            .env_clear()
            .envs(env(find(&rendered, "Deployment")))
            .env("POD_NAME", "rc-rolecall-0")
            .env("POD_NAMESPACE", "rolecall")
            // Loopback only, and nothing to reach: the run must end at the Kubernetes config.
            .env("ROLECALL_HTTP_ADDRESS", "127.0.0.1:0")
            .env("ROLECALL_AWS_ENDPOINT_URL", "http://127.0.0.1:1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("KUBECONFIG", "/nonexistent/kubeconfig")
            .env("HOME", "/nonexistent");
        let output = command.output().expect("running rolecall");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success()
                && output.status.code() != Some(2)
                && !stderr.contains("Usage:"),
            "rolecall {args:?} with the chart's environment ({values:?}) did not get past its \
             flags: {:?} {stderr}",
            output.status
        );
        assert!(
            stderr.contains("kubeconfig"),
            "expected a Kubernetes config error: {stderr}"
        );
    }
}

/// What no Tenancy can allow is refused at `kubectl apply` by the chart's admission policy,
/// before the operator sees it; an ordinary trust policy passes.
#[tokio::test(flavor = "multi_thread")]
async fn the_admission_policy_refuses_trusting_anyone_at_apply() {
    let applied = apply_chart("chart-vap", &[]).await;
    let role = |name: &str, principal: serde_json::Value| {
        serde_json::json!({
            "apiVersion": "iam.rolecall.dev/v1alpha1",
            "kind": "IamRole",
            "metadata": { "name": name, "namespace": applied.namespace },
            "spec": { "assumeRolePolicy": { "Version": "2012-10-17", "Statement": [
                { "Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole" },
            ] } },
        })
        .to_string()
    };
    // Server-side dry run: admission runs, nothing is stored for an operator to act on.
    let apply = |manifest: String| {
        run(
            "kubectl",
            &["apply", "--dry-run=server", "-f", "-"],
            Some(&manifest),
        )
    };
    // The binding takes effect a moment after it is written: poll until the first refusal.
    let refused = common::wait_for(
        "the admission policy to refuse Principal \"*\"",
        Duration::from_secs(30),
        || {
            let output = apply(role("anyone", serde_json::json!("*")));
            async move { (!output.status.success()).then_some(output) }
        },
    )
    .await;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("trusts anyone"), "{stderr}");
    for principal in [
        serde_json::json!({ "AWS": "*" }),
        serde_json::json!({ "AWS": ["arn:aws:iam::123456789012:root", "*"] }),
    ] {
        let output = apply(role("anyone-aws", principal.clone()));
        assert!(!output.status.success(), "{principal} was accepted");
    }
    let not_principal = serde_json::json!({
        "apiVersion": "iam.rolecall.dev/v1alpha1",
        "kind": "IamRole",
        "metadata": { "name": "not-principal", "namespace": applied.namespace },
        "spec": { "assumeRolePolicy": { "Version": "2012-10-17", "Statement": [
            { "Effect": "Allow", "NotPrincipal": { "AWS": "arn:aws:iam::123456789012:root" }, "Action": "sts:AssumeRole" },
        ] } },
    });
    let output = apply(not_principal.to_string());
    assert!(!output.status.success(), "NotPrincipal was accepted");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("NotPrincipal"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let ok = apply(role(
        "same-account",
        serde_json::json!({ "AWS": "arn:aws:iam::123456789012:root" }),
    ));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}
