//! `deploy/aws-iam-policy.json` grants exactly the AWS actions the operator calls: every
//! `CallLog::call(CallKind::_, "Operation", ..)` in src/aws/<service>.rs, sts:GetCallerIdentity
//! (src/run.rs), and iam:PassRole for handing roles to EC2. A new call without its permission,
//! or a permission nothing calls, fails here.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The operation names that follow `CallKind::Read,` / `CallKind::Write,` in `text`.
fn operations_after_call_kinds(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for marker in ["CallKind::Read,", "CallKind::Write,"] {
        for (at, _) in text.match_indices(marker) {
            let rest = text[at + marker.len()..].trim_start();
            let operation = rest
                .strip_prefix('"')
                .and_then(|rest| rest.split_once('"'))
                .map(|(name, _)| name)
                .unwrap_or_else(|| {
                    panic!(
                        "{marker} not followed by an operation name literal: {:.60}",
                        rest
                    )
                });
            found.push(operation.to_string());
        }
    }
    found
}

/// `service:Operation` for every call the operator makes through `CallLog`.
fn actions_in_source() -> BTreeSet<String> {
    let mut actions = BTreeSet::new();
    let dir = Path::new(ROOT).join("src/aws");
    for entry in std::fs::read_dir(&dir).expect("src/aws exists") {
        let path = entry.expect("readable entry").path();
        if path.extension().is_none_or(|ext| ext != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable source");
        let operations = operations_after_call_kinds(&text);
        if operations.is_empty() {
            continue;
        }
        let service = path.file_stem().unwrap().to_str().unwrap();
        assert!(
            ["iam", "ec2", "sts"].contains(&service),
            "{} makes AWS calls but its name is not an AWS service prefix: \
             name the file after the service (iam.rs, ec2.rs) so the permission can be derived",
            path.display()
        );
        actions.extend(operations.into_iter().map(|op| format!("{service}:{op}")));
    }
    let run = std::fs::read_to_string(Path::new(ROOT).join("src/run.rs")).expect("src/run.rs");
    assert!(
        run.contains(".get_caller_identity()"),
        "src/run.rs no longer asks STS who it is: drop sts:GetCallerIdentity from the policy"
    );
    actions.insert("sts:GetCallerIdentity".into());
    actions
}

fn policy() -> Value {
    let text = std::fs::read_to_string(Path::new(ROOT).join("deploy/aws-iam-policy.json"))
        .expect("deploy/aws-iam-policy.json exists");
    serde_json::from_str(&text).expect("the policy is JSON")
}

fn statements(policy: &Value) -> &Vec<Value> {
    policy["Statement"].as_array().expect("Statement is a list")
}

fn one_or_many(value: &Value) -> Vec<String> {
    match value {
        Value::String(one) => vec![one.clone()],
        Value::Array(many) => many
            .iter()
            .map(|v| v.as_str().expect("strings").to_string())
            .collect(),
        other => panic!("expected a string or a list, got {other}"),
    }
}

#[test]
fn the_source_makes_the_calls_this_test_expects_to_find() {
    let actions = actions_in_source();
    // A guard against the extraction silently finding nothing after a refactor.
    assert!(
        actions.len() >= 30,
        "only {} actions found: {actions:?}",
        actions.len()
    );
    for known in [
        "iam:CreatePolicy",
        "iam:AttachRolePolicy",
        "ec2:AssociateIamInstanceProfile",
    ] {
        assert!(actions.contains(known), "{known} not found in {actions:?}");
    }
}

#[test]
fn the_policy_grants_exactly_the_actions_the_code_calls() {
    let policy = policy();
    let mut granted = BTreeSet::new();
    for statement in statements(&policy) {
        assert_eq!(statement["Effect"], "Allow");
        for action in one_or_many(&statement["Action"]) {
            assert!(!action.contains('*'), "no wildcard actions: {action}");
            assert!(granted.insert(action.clone()), "{action} granted twice");
        }
    }
    let mut needed = actions_in_source();
    // EC2 needs to pass the role inside a profile (Associate/Replace), and IAM needs it to put a
    // role into an instance profile.
    needed.insert("iam:PassRole".into());
    let missing: Vec<_> = needed.difference(&granted).collect();
    let unused: Vec<_> = granted.difference(&needed).collect();
    assert!(
        missing.is_empty() && unused.is_empty(),
        "deploy/aws-iam-policy.json is out of date: missing {missing:?}, not called {unused:?}"
    );
}

#[test]
fn iam_actions_are_scoped_to_their_resource_type_and_pass_role_to_ec2_only() {
    let policy = policy();
    for statement in statements(&policy) {
        let actions = one_or_many(&statement["Action"]);
        let resources = one_or_many(&statement["Resource"]);
        if actions.iter().any(|a| a.starts_with("iam:")) {
            assert!(
                resources.iter().all(|r| {
                    ["policy/*", "role/*", "instance-profile/*"]
                        .iter()
                        .any(|kind| r.starts_with("arn:aws:iam::") && r.ends_with(kind))
                }),
                "IAM statement {} is not scoped to a resource type: {resources:?}",
                statement["Sid"]
            );
        }
        if actions.contains(&"iam:PassRole".to_string()) {
            assert_eq!(
                actions.len(),
                1,
                "PassRole stands alone, with its condition"
            );
            assert_eq!(
                statement["Condition"]["StringEquals"]["iam:PassedToService"],
                "ec2.amazonaws.com"
            );
        }
    }
}
