//! Rendering the Helm chart (`charts/rolecall`) with the helm CLI, and running kubectl, for the
//! tests that check what the chart installs.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use k8s_openapi::api::rbac::v1::ClusterRole;
use serde::Deserialize;

pub const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/rolecall");

/// Runs `program args` with `stdin`, returning its output whatever the exit status.
pub fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{program} not found on PATH ({e}); run `eval \"$(scripts/cluster.sh env)\"` \
                 (scripts/cluster.sh install builds kubectl and helm)"
            )
        });
    let mut input = child.stdin.take().expect("piped stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("writing stdin");
    }
    drop(input);
    child.wait_with_output().expect("waiting for the child")
}

/// Runs `program args` and returns stdout; fails the test with stderr when it fails.
pub fn run_ok(program: &str, args: &[&str], stdin: Option<&str>) -> String {
    let output = run(program, args, stdin);
    assert!(
        output.status.success(),
        "{program} {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// `helm template RELEASE charts/rolecall --namespace NAMESPACE EXTRA...`.
pub fn render(release: &str, namespace: &str, extra: &[&str]) -> String {
    let mut args = vec!["template", release, CHART, "--namespace", namespace];
    args.extend_from_slice(extra);
    run_ok("helm", &args, None)
}

/// The documents of a multi-document YAML stream, without the empty ones.
pub fn documents(yaml: &str) -> Vec<serde_norway::Value> {
    serde_norway::Deserializer::from_str(yaml)
        .map(|document| serde_norway::Value::deserialize(document).expect("valid YAML"))
        .filter(|value| !value.is_null())
        .collect()
}

/// The ClusterRole the chart grants with its default values.
pub fn cluster_role() -> ClusterRole {
    rendered_cluster_role("templates/clusterrole.yaml")
}

/// The ClusterRole the chart grants with `extra` values (`--set rbac.userSecrets=true`).
pub fn cluster_role_with(extra: &[&str]) -> ClusterRole {
    rendered_cluster_role_with("templates/clusterrole.yaml", extra)
}

/// The ClusterRole `template` renders with the chart's default values.
fn rendered_cluster_role(template: &str) -> ClusterRole {
    rendered_cluster_role_with(template, &[])
}

fn rendered_cluster_role_with(template: &str, extra: &[&str]) -> ClusterRole {
    let mut args = vec!["--show-only", template];
    args.extend_from_slice(extra);
    let yaml = render("rolecall", "rolecall", &args);
    let role = documents(&yaml)
        .into_iter()
        .find(|document| document["kind"] == "ClusterRole")
        .unwrap_or_else(|| panic!("{template} renders a ClusterRole"));
    serde_norway::from_value(role).expect("a valid ClusterRole")
}

/// The chart's read-only ClusterRole for Tenancies and namespaces (rendered with its
/// default values), bound cluster-wide in every watch mode.
pub fn tenancy_reader_role() -> ClusterRole {
    rendered_cluster_role("templates/clusterrole-tenancy.yaml")
}
