//! The Argo CD health check (deploy/argocd/health.lua) run as Argo CD runs it: in gopher-lua
//! (tools/argocd-lua, built by scripts/argocd-lua.sh) over sample objects of each state, and
//! the argocd-cm snippet carrying the same script for each of the AWS kinds.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const KINDS: [&str; 8] = [
    "IamPolicy",
    "IamRole",
    "InstanceProfile",
    "Ec2InstanceBinding",
    "IamGroup",
    "IamUser",
    "AccountPasswordPolicy",
    "AccountSecurityReport",
];

fn runner() -> String {
    let output = Command::new(Path::new(ROOT).join("scripts/argocd-lua.sh"))
        .arg("path")
        .output()
        .expect("running scripts/argocd-lua.sh");
    assert!(
        output.status.success(),
        "the Argo CD Lua runner is not built: run `scripts/argocd-lua.sh install` \
         (scripts/test.sh does): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// (status, message) of the health check for `object`.
fn health(object: &Value) -> (String, String) {
    let script = Path::new(ROOT).join("deploy/argocd/health.lua");
    let mut child = Command::new(runner())
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting argocd-lua");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(object.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "health.lua failed on {object}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_slice(&output.stdout).expect("JSON from the runner");
    (
        result["status"].as_str().unwrap().to_string(),
        result["message"].as_str().unwrap().to_string(),
    )
}

/// An IamRole at `generation` whose status observed `observed` with Ready as given.
fn role(generation: i64, observed: Option<i64>, ready: Option<(&str, &str, &str)>) -> Value {
    let mut object = json!({
        "apiVersion": "iam.rolecall.dev/v1alpha1",
        "kind": "IamRole",
        "metadata": { "name": "web", "namespace": "team", "generation": generation },
        "spec": { "trustedServices": ["ec2.amazonaws.com"] },
    });
    if let Some(observed) = observed {
        let conditions: Vec<Value> = ready
            .into_iter()
            .map(|(status, reason, message)| {
                json!({
                    "type": "Ready", "status": status, "reason": reason, "message": message,
                    "observedGeneration": observed,
                    "lastTransitionTime": "2026-11-23T10:00:00Z",
                })
            })
            .collect();
        object["status"] = json!({ "observedGeneration": observed, "conditions": conditions });
    }
    object
}

fn assert_health(object: Value, status: &str, message: &str) {
    let (got_status, got_message) = health(&object);
    assert_eq!(
        (got_status.as_str(), got_message.as_str()),
        (status, message),
        "for {object}"
    );
}

#[test]
fn a_new_object_is_progressing() {
    assert_health(
        role(1, None, None),
        "Progressing",
        "Waiting for rolecall to report the Ready condition",
    );
}

#[test]
fn a_converging_object_is_progressing_with_its_reason() {
    assert_health(
        role(
            1,
            Some(1),
            Some(("False", "Reconciling", "creating the role")),
        ),
        "Progressing",
        "Reconciling: creating the role",
    );
    assert_health(
        role(
            1,
            Some(1),
            Some(("False", "DependencyNotReady", "IamPolicy s3 is not Ready")),
        ),
        "Progressing",
        "DependencyNotReady: IamPolicy s3 is not Ready",
    );
    assert_health(
        role(1, Some(1), Some(("Unknown", "Reconciling", ""))),
        "Progressing",
        "Reconciling",
    );
}

#[test]
fn a_ready_object_is_healthy() {
    assert_health(
        role(
            2,
            Some(2),
            Some(("True", "Available", "role web matches the spec")),
        ),
        "Healthy",
        "role web matches the spec",
    );
}

#[test]
fn ready_for_an_older_generation_is_still_progressing() {
    assert_health(
        role(
            3,
            Some(2),
            Some(("True", "Available", "role web matches the spec")),
        ),
        "Progressing",
        "Waiting for rolecall to observe generation 3",
    );
}

#[test]
fn an_invalid_spec_or_a_conflict_is_degraded_with_the_message() {
    assert_health(
        role(
            1,
            Some(1),
            Some((
                "False",
                "InvalidSpec",
                "invalid spec: Statement[0] has no Effect",
            )),
        ),
        "Degraded",
        "InvalidSpec: invalid spec: Statement[0] has no Effect",
    );
    assert_health(
        role(
            1,
            Some(1),
            Some((
                "False",
                "Conflict",
                "role web exists without the rolecall.dev/owner tag",
            )),
        ),
        "Degraded",
        "Conflict: role web exists without the rolecall.dev/owner tag",
    );
    assert_health(
        role(
            1,
            Some(1),
            Some((
                "False",
                "AwsError",
                "CreateRole: AccessDenied: not authorized",
            )),
        ),
        "Degraded",
        "AwsError: CreateRole: AccessDenied: not authorized",
    );
    // Only a person can say whether to reset a lost password.
    assert_health(
        role(
            1,
            Some(1),
            Some((
                "False",
                "PasswordSecretMissing",
                "the login profile exists but Secret p holds no password",
            )),
        ),
        "Degraded",
        "PasswordSecretMissing: the login profile exists but Secret p holds no password",
    );
}

#[test]
fn an_aws_error_being_retried_is_progressing() {
    assert_health(
        role(
            1,
            Some(1),
            Some((
                "False",
                "Reconciling",
                "retrying after CreateRole: Throttling: Rate exceeded",
            )),
        ),
        "Progressing",
        "Reconciling: retrying after CreateRole: Throttling: Rate exceeded",
    );
}

#[test]
fn a_deleting_object_is_progressing_with_the_cleanup_reason() {
    let mut object = role(
        1,
        Some(1),
        Some(("False", "Deleting", "cannot delete yet: AWS unreachable")),
    );
    object["metadata"]["deletionTimestamp"] = json!("2026-11-23T10:05:00Z");
    assert_health(
        object,
        "Progressing",
        "Deleting: cannot delete yet: AWS unreachable",
    );
    let mut object = role(1, Some(1), Some(("True", "Available", "ok")));
    object["metadata"]["deletionTimestamp"] = json!("2026-11-23T10:05:00Z");
    assert_health(
        object,
        "Progressing",
        "Deleting: waiting for rolecall to clean up AWS",
    );
}

#[test]
fn the_argocd_cm_snippet_carries_the_script_for_every_kind() {
    let script = std::fs::read_to_string(Path::new(ROOT).join("deploy/argocd/health.lua")).unwrap();
    let text =
        std::fs::read_to_string(Path::new(ROOT).join("deploy/argocd/argocd-cm.yaml")).unwrap();
    let config: serde_norway::Value =
        serde_norway::from_str(&text).expect("argocd-cm.yaml is YAML");
    assert_eq!(config["metadata"]["name"], "argocd-cm");
    let data = config["data"].as_mapping().expect("data");
    assert_eq!(data.len(), KINDS.len());
    for kind in KINDS {
        let key = format!("resource.customizations.health.iam.rolecall.dev_{kind}");
        assert_eq!(
            data.get(key.as_str()).and_then(|v| v.as_str()),
            Some(script.as_str()),
            "{key} must hold deploy/argocd/health.lua verbatim"
        );
    }
}
