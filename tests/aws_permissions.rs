//! The operator's own AWS policies, checked against the code and against the tenancy model:
//!
//! - `deploy/aws-iam-policy.json`: every IAM write scoped to the `/rolecall/` paths (roles,
//!   policies, instance profiles), reads on the whole resource type (a same-named object made
//!   by someone else must be seen to report a Conflict), `iam:PassRole` only for roles under
//!   `/rolecall/` and only to EC2, EC2 association writes only on instances and only for
//!   profiles under `/rolecall/`.
//! - `deploy/aws-iam-policy-boundary.json`: the same, for installations where every role
//!   and user carries a permissions boundary under `policy/rolecall/boundaries/`: their permissions
//!   change only while it carries one, it cannot be removed, and the boundary policies
//!   themselves cannot be written.
//!
//! Both grant exactly the AWS actions the operator calls (every `CallLog::call(CallKind::_,
//! "Operation", ..)` in src/aws/<service>.rs and src/aws/<service>/*.rs, sts:GetCallerIdentity in src/run.rs, and
//! iam:PassRole for handing roles to EC2); the boundary variant leaves out
//! DeleteRolePermissionsBoundary and DeleteUserPermissionsBoundary. A small evaluator of IAM's policy language (Allow/Deny,
//! Action, Resource globs, the condition operators the files use) then shows that the requests
//! the operator must make are allowed, that the ones the model forbids are refused, and that
//! every statement is needed: without it, some request the code makes is refused (or, for a
//! Deny, some forbidden request goes through).
//!
//! moto cannot play this part: its IAM authorization (moto/iam/access_control.py) matches a
//! statement's Resource only against an existing role named by a `RoleName` parameter (every
//! other request is checked as Resource `*`, so a scoped statement never matches it) and
//! evaluates identity-policy conditions without any request values (so every condition holds).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{Value, json};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const PLAIN: &str = "deploy/aws-iam-policy.json";
const BOUNDED: &str = "deploy/aws-iam-policy-boundary.json";
const FILES: [&str; 2] = [PLAIN, BOUNDED];

/// The boundaries a bounded installation's tenancies may name.
const BOUNDARIES: &str = "arn:aws:iam::*:policy/rolecall/boundaries/*";
/// What the bounded variant never grants: a role or user losing its boundary.
const NOT_IN_BOUNDED: [&str; 2] = [
    "iam:DeleteRolePermissionsBoundary",
    "iam:DeleteUserPermissionsBoundary",
];
/// Role and user writes that change what the principal may do; in the bounded variant only
/// for principals carrying a rolecall boundary (IAM evaluates `iam:PermissionsBoundary` for
/// exactly these; for CreateRole/CreateUser and Put*PermissionsBoundary it is the boundary
/// being set).
const BOUNDED_ROLE_WRITES: [&str; 12] = [
    "iam:AttachRolePolicy",
    "iam:CreateRole",
    "iam:DeleteRolePolicy",
    "iam:DetachRolePolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:PutRolePolicy",
    "iam:AttachUserPolicy",
    "iam:CreateUser",
    "iam:DeleteUserPolicy",
    "iam:DetachUserPolicy",
    "iam:PutUserPermissionsBoundary",
    "iam:PutUserPolicy",
];

/// The resource type AWS authorizes each action against (Service Authorization Reference:
/// "Actions defined by AWS Identity and Access Management" / "... by Amazon EC2"); `*` for
/// actions without resource-level permissions. AddRoleToInstanceProfile is checked on the
/// profile, and the role inside needs iam:PassRole; EC2's association calls are checked on the
/// instance (the profile being attached is the `ec2:NewInstanceProfile` condition key).
fn resource_type(action: &str) -> &'static str {
    match action {
        "iam:CreatePolicy"
        | "iam:CreatePolicyVersion"
        | "iam:DeletePolicy"
        | "iam:DeletePolicyVersion"
        | "iam:GetPolicy"
        | "iam:GetPolicyVersion"
        | "iam:ListEntitiesForPolicy"
        | "iam:ListPolicyVersions"
        | "iam:TagPolicy"
        | "iam:UntagPolicy" => "policy",
        "iam:AttachRolePolicy"
        | "iam:CreateRole"
        | "iam:DeleteRole"
        | "iam:DeleteRolePermissionsBoundary"
        | "iam:DeleteRolePolicy"
        | "iam:DetachRolePolicy"
        | "iam:GetRole"
        | "iam:GetRolePolicy"
        | "iam:ListAttachedRolePolicies"
        | "iam:ListInstanceProfilesForRole"
        | "iam:ListRolePolicies"
        | "iam:PassRole"
        | "sts:AssumeRole"
        | "iam:PutRolePermissionsBoundary"
        | "iam:PutRolePolicy"
        | "iam:TagRole"
        | "iam:UntagRole"
        | "iam:UpdateAssumeRolePolicy"
        | "iam:UpdateRole" => "role",
        "iam:AddRoleToInstanceProfile"
        | "iam:CreateInstanceProfile"
        | "iam:DeleteInstanceProfile"
        | "iam:GetInstanceProfile"
        | "iam:RemoveRoleFromInstanceProfile"
        | "iam:TagInstanceProfile"
        | "iam:UntagInstanceProfile" => "instance-profile",
        "iam:AttachGroupPolicy"
        | "iam:CreateGroup"
        | "iam:DeleteGroup"
        | "iam:DeleteGroupPolicy"
        | "iam:DetachGroupPolicy"
        | "iam:GetGroup"
        | "iam:GetGroupPolicy"
        | "iam:ListAttachedGroupPolicies"
        | "iam:ListGroupPolicies"
        | "iam:PutGroupPolicy"
        | "iam:RemoveUserFromGroup"
        | "iam:AddUserToGroup" => "group",
        "iam:AttachUserPolicy"
        | "iam:CreateAccessKey"
        | "iam:CreateLoginProfile"
        | "iam:CreateUser"
        | "iam:DeactivateMFADevice"
        | "iam:DeleteAccessKey"
        | "iam:DeleteLoginProfile"
        | "iam:DeleteSSHPublicKey"
        | "iam:DeleteServiceSpecificCredential"
        | "iam:DeleteSigningCertificate"
        | "iam:DeleteUser"
        | "iam:DeleteUserPermissionsBoundary"
        | "iam:DeleteUserPolicy"
        | "iam:DetachUserPolicy"
        | "iam:GetAccessKeyLastUsed"
        | "iam:GetLoginProfile"
        | "iam:GetUser"
        | "iam:GetUserPolicy"
        | "iam:ListAccessKeys"
        | "iam:ListAttachedUserPolicies"
        | "iam:ListGroupsForUser"
        | "iam:ListMFADevices"
        | "iam:ListSSHPublicKeys"
        | "iam:ListServiceSpecificCredentials"
        | "iam:ListSigningCertificates"
        | "iam:ListUserPolicies"
        | "iam:PutUserPermissionsBoundary"
        | "iam:PutUserPolicy"
        | "iam:TagUser"
        | "iam:UntagUser"
        | "iam:UpdateLoginProfile" => "user",
        "ec2:AssociateIamInstanceProfile"
        | "ec2:DisassociateIamInstanceProfile"
        | "ec2:ReplaceIamInstanceProfileAssociation" => "instance",
        "ec2:DescribeIamInstanceProfileAssociations"
        | "ec2:DescribeInstances"
        | "iam:GenerateCredentialReport"
        | "iam:GetAccountAuthorizationDetails"
        | "iam:GetAccountPasswordPolicy"
        | "iam:GetAccountSummary"
        | "iam:DeleteAccountPasswordPolicy"
        | "iam:UpdateAccountPasswordPolicy"
        | "iam:GetCredentialReport"
        | "iam:ListRoles"
        | "iam:ListVirtualMFADevices"
        | "sts:GetCallerIdentity" => "*",
        other => panic!(
            "{other}: the operator calls it, but this test does not know the resource type AWS \
             authorizes it against; look it up in the Service Authorization Reference and add it"
        ),
    }
}

/// The operation names that follow `marker` (`CallKind::Read,` / `CallKind::Write,`) in `text`.
fn operations_after(marker: &str, text: &str) -> Vec<String> {
    let mut found = Vec::new();
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
    found
}

/// `service:Operation` for every call the operator makes through `CallLog`, as reads and writes.
struct Calls {
    reads: BTreeSet<String>,
    writes: BTreeSet<String>,
}

impl Calls {
    fn all(&self) -> BTreeSet<String> {
        self.reads.union(&self.writes).cloned().collect()
    }
}

fn calls_in_source() -> Calls {
    let mut calls = Calls {
        reads: BTreeSet::new(),
        writes: BTreeSet::new(),
    };
    for (path, service) in aws_sources() {
        let text = std::fs::read_to_string(&path).expect("readable source");
        let reads = operations_after("CallKind::Read,", &text);
        let writes = operations_after("CallKind::Write,", &text);
        if reads.is_empty() && writes.is_empty() {
            continue;
        }
        let service = service.as_str();
        assert!(
            ["iam", "ec2", "sts"].contains(&service),
            "{} makes AWS calls but its name is not an AWS service prefix: \
             name the file after the service (iam.rs, ec2.rs) so the permission can be derived",
            path.display()
        );
        let action = |op: String| format!("{service}:{op}");
        calls.reads.extend(reads.into_iter().map(action));
        calls.writes.extend(writes.into_iter().map(action));
    }
    let run = std::fs::read_to_string(Path::new(ROOT).join("src/run.rs")).expect("src/run.rs");
    assert!(
        run.contains(".get_caller_identity()"),
        "src/run.rs no longer asks STS who it is: drop sts:GetCallerIdentity from the policy"
    );
    calls.reads.insert("sts:GetCallerIdentity".into());
    let config =
        std::fs::read_to_string(Path::new(ROOT).join("src/aws/config.rs")).expect("config.rs");
    assert!(
        config.contains("AssumeRoleProvider"),
        "src/aws/config.rs no longer assumes a Tenancy's account role: drop sts:AssumeRole"
    );
    // A Tenancy's account is reached through a role there, under the rolecall path.
    calls.writes.insert("sts:AssumeRole".into());
    assert!(
        calls.reads.is_disjoint(&calls.writes),
        "an operation is called both as a read and as a write: {:?}",
        calls.reads.intersection(&calls.writes).collect::<Vec<_>>()
    );
    calls
}

/// Every `.rs` file of src/aws/ with the service its calls belong to: its own name
/// (`iam.rs`), or for a file of a service's submodule folder (`iam/account.rs`), the folder's.
fn aws_sources() -> Vec<(std::path::PathBuf, String)> {
    let stem = |path: &Path| path.file_stem().unwrap().to_str().unwrap().to_owned();
    let mut sources = Vec::new();
    let dir = Path::new(ROOT).join("src/aws");
    for entry in std::fs::read_dir(&dir).expect("src/aws exists") {
        let path = entry.expect("readable entry").path();
        if path.is_dir() {
            // Not calls/: the call log's own tests, whose calls are not the operator's.
            if !["iam", "ec2", "sts"].contains(&stem(&path).as_str()) {
                continue;
            }
            for inner in std::fs::read_dir(&path).expect("readable folder") {
                let inner = inner.expect("readable entry").path();
                if inner.extension().is_some_and(|ext| ext == "rs") {
                    sources.push((inner, stem(&path)));
                }
            }
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let service = stem(&path);
            sources.push((path, service));
        }
    }
    sources
}

fn actions_in_source() -> BTreeSet<String> {
    calls_in_source().all()
}

/// What a policy file must grant: every call, plus iam:PassRole (EC2 checks it when
/// associating a profile, IAM when adding a role to a profile).
fn needed(file: &str) -> BTreeSet<String> {
    let mut needed = actions_in_source();
    needed.insert("iam:PassRole".into());
    if file == BOUNDED {
        for action in NOT_IN_BOUNDED {
            needed.remove(action);
        }
    }
    needed
}

fn policy(file: &str) -> Value {
    let text = std::fs::read_to_string(Path::new(ROOT).join(file))
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file} is not JSON: {e}"))
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

fn allows(statement: &Value) -> bool {
    match statement["Effect"].as_str() {
        Some("Allow") => true,
        Some("Deny") => false,
        other => panic!("Effect is Allow or Deny, got {other:?}"),
    }
}

// ---- a small evaluator of IAM's policy language, enough for these files ----

/// `*` matches any run of characters, `?` one, as in IAM's Action, Resource and *Like.
fn glob(pattern: &str, value: &str) -> bool {
    let (p, v): (Vec<char>, Vec<char>) = (pattern.chars().collect(), value.chars().collect());
    // matches[j]: p[..i] matches v[..j]
    let mut matches = vec![false; v.len() + 1];
    matches[0] = true;
    for &pc in &p {
        let mut next = vec![false; v.len() + 1];
        for j in 0..=v.len() {
            next[j] = match pc {
                '*' => matches[j] || (j > 0 && next[j - 1]),
                '?' => j > 0 && matches[j - 1],
                c => j > 0 && matches[j - 1] && v[j - 1] == c,
            };
        }
        matches = next;
    }
    matches[v.len()]
}

#[derive(Clone, Debug)]
struct Request {
    action: String,
    resource: String,
    context: BTreeMap<String, String>,
}

fn request(action: &str, resource: &str, context: &[(&str, &str)]) -> Request {
    Request {
        action: action.into(),
        resource: resource.into(),
        context: context
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn conditions_hold(statement: &Value, request: &Request) -> bool {
    let Some(conditions) = statement.get("Condition") else {
        return true;
    };
    conditions
        .as_object()
        .expect("Condition is an object")
        .iter()
        .all(|(operator, keys)| {
            keys.as_object()
                .expect("a condition operator maps keys to values")
                .iter()
                .all(|(key, expected)| {
                    // Without IfExists, a key the request lacks fails the condition.
                    let Some(actual) = request.context.get(key) else {
                        return false;
                    };
                    one_or_many(expected)
                        .iter()
                        .any(|expected| match operator.as_str() {
                            "StringEquals" | "ArnEquals" => expected == actual,
                            "StringLike" | "ArnLike" => glob(expected, actual),
                            other => panic!("the evaluator does not know {other}: teach it"),
                        })
                })
        })
}

fn statement_applies(statement: &Value, request: &Request) -> bool {
    for unsupported in ["NotAction", "NotResource", "NotPrincipal", "Principal"] {
        assert!(
            statement.get(unsupported).is_none(),
            "the evaluator does not know {unsupported}: teach it"
        );
    }
    one_or_many(&statement["Action"])
        .iter()
        .any(|a| glob(&a.to_lowercase(), &request.action.to_lowercase()))
        && one_or_many(&statement["Resource"])
            .iter()
            .any(|r| glob(r, &request.resource))
        && conditions_hold(statement, request)
}

/// IAM's rule: an explicit Deny wins, then any Allow; nothing is an implicit deny.
fn allowed(statements: &[&Value], request: &Request) -> bool {
    let applying: Vec<_> = statements
        .iter()
        .filter(|s| statement_applies(s, request))
        .collect();
    !applying.is_empty() && applying.iter().all(|s| allows(s))
}

fn all_statements(policy: &Value) -> Vec<&Value> {
    statements(policy).iter().collect()
}

// ---- the requests the model needs, and the ones it forbids ----

const ACCOUNT: &str = "123456789012";
/// Paths rolecall writes under: the default `/rolecall/<namespace>/`, and a deeper one a
/// tenancy may set.
const OURS: [&str; 2] = ["/rolecall/team-a/", "/rolecall/platform/payments/"];
/// Paths of objects made outside rolecall, which it must read but never write.
const THEIRS: [&str; 4] = ["/", "/terraform/", "/rolecallx/", "/team-a/rolecall/"];
const INSTANCE: &str = "arn:aws:ec2:eu-west-1:123456789012:instance/i-0123456789abcdef0";
const OUR_BOUNDARY: &str = "arn:aws:iam::123456789012:policy/rolecall/boundaries/team-a";

fn arn(kind: &str, path: &str, name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:{kind}{path}{name}")
}

/// The context IAM gives a write, in the installation `file` is for: the bounded one's roles
/// and users carry a rolecall boundary, and every profile rolecall associates is one of its own.
fn write_context(file: &str, action: &str) -> Vec<(&'static str, String)> {
    let mut context = Vec::new();
    if file == BOUNDED && ["role", "user"].contains(&resource_type(action)) {
        context.push(("iam:PermissionsBoundary", OUR_BOUNDARY.to_string()));
    }
    if action == "iam:PassRole" {
        context.push(("iam:PassedToService", "ec2.amazonaws.com".to_string()));
    }
    if action.starts_with("ec2:") {
        context.push((
            "ec2:NewInstanceProfile",
            arn("instance-profile", OURS[0], "web"),
        ));
    }
    context
}

fn with_context(action: &str, resource: &str, context: &[(&'static str, String)]) -> Request {
    let pairs: Vec<(&str, &str)> = context.iter().map(|(k, v)| (*k, v.as_str())).collect();
    request(action, resource, &pairs)
}

/// Every request the operator makes that `file` must allow.
fn must_allow(file: &str) -> Vec<Request> {
    let calls = calls_in_source();
    let mut writes = calls.writes.clone();
    writes.insert("iam:PassRole".into());
    let mut requests = Vec::new();
    for action in &calls.reads {
        match resource_type(action) {
            "*" => requests.push(request(action, "*", &[])),
            kind => {
                // Reads reach everything of their type: a same-named role made by someone
                // else must be seen to report a Conflict.
                for path in OURS.iter().chain(&THEIRS) {
                    requests.push(request(action, &arn(kind, path, "web"), &[]));
                }
            }
        }
    }
    for action in writes
        .iter()
        .filter(|a| !(file == BOUNDED && NOT_IN_BOUNDED.contains(&a.as_str())))
    {
        let context = write_context(file, action);
        match resource_type(action) {
            "instance" => requests.push(with_context(action, INSTANCE, &context)),
            "*" => requests.push(with_context(action, "*", &context)),
            kind => {
                for path in OURS {
                    requests.push(with_context(action, &arn(kind, path, "web"), &context));
                    if file == PLAIN {
                        // Without a required boundary, roles may carry one or not.
                        let mut bounded = context.clone();
                        bounded.push(("iam:PermissionsBoundary", OUR_BOUNDARY.to_string()));
                        requests.push(with_context(action, &arn(kind, path, "web"), &bounded));
                    }
                }
            }
        }
    }
    requests
}

/// Requests the model forbids: `file` alone must refuse them.
fn must_refuse(file: &str) -> Vec<Request> {
    let calls = calls_in_source();
    let mut requests = Vec::new();
    for action in calls
        .writes
        .iter()
        // Account-level writes (the password policy) have no resource to scope by path.
        .filter(|a| a.starts_with("iam:") && resource_type(a) != "*")
        .chain(std::iter::once(&"iam:PassRole".to_string()))
    {
        let context = write_context(file, action);
        for path in THEIRS {
            let resource = arn(resource_type(action), path, "admin");
            requests.push(with_context(action, &resource, &context));
        }
    }
    let ours = arn("role", OURS[0], "web");
    requests.push(request(
        "iam:PassRole",
        &ours,
        &[("iam:PassedToService", "lambda.amazonaws.com")],
    ));
    requests.push(request("iam:PassRole", &ours, &[]));
    for action in [
        "ec2:AssociateIamInstanceProfile",
        "ec2:ReplaceIamInstanceProfileAssociation",
    ] {
        for profile in THEIRS.map(|path| arn("instance-profile", path, "admin")) {
            requests.push(request(
                action,
                INSTANCE,
                &[("ec2:NewInstanceProfile", profile.as_str())],
            ));
        }
        requests.push(request(action, INSTANCE, &[]));
    }
    if file == BOUNDED {
        for action in BOUNDED_ROLE_WRITES {
            let ours = arn(resource_type(action), OURS[0], "web");
            requests.push(request(action, &ours, &[]));
            for boundary in [
                arn("policy", OURS[0], "my-own-boundary"),
                arn("policy", "/boundaries/", "team-a"),
                "arn:aws:iam::aws:policy/AdministratorAccess".to_string(),
            ] {
                requests.push(request(
                    action,
                    &ours,
                    &[("iam:PermissionsBoundary", boundary.as_str())],
                ));
            }
        }
        requests.extend(refused_beside_any_grant(file));
    }
    requests
}

/// Requests the bounded variant refuses even when another policy attached to the operator
/// would allow them (explicit Denies).
fn refused_beside_any_grant(file: &str) -> Vec<Request> {
    if file != BOUNDED {
        return Vec::new();
    }
    let mut requests = Vec::new();
    for action in NOT_IN_BOUNDED {
        for path in OURS.iter().chain(&THEIRS) {
            requests.push(request(
                action,
                &arn(resource_type(action), path, "web"),
                &[("iam:PermissionsBoundary", OUR_BOUNDARY)],
            ));
        }
    }
    for action in calls_in_source()
        .writes
        .iter()
        .filter(|a| resource_type(a) == "policy")
    {
        requests.push(request(action, OUR_BOUNDARY, &[]));
    }
    requests
}

fn admin() -> Value {
    json!({"Effect": "Allow", "Action": "*", "Resource": "*"})
}

// ---- the tests ----

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
    let calls = calls_in_source();
    assert!(calls.reads.contains("iam:GetRole") && calls.writes.contains("iam:CreateRole"));
}

#[test]
fn the_policies_grant_exactly_the_actions_the_code_calls() {
    for file in FILES {
        let policy = policy(file);
        let mut granted = BTreeSet::new();
        for statement in statements(&policy) {
            if !allows(statement) {
                continue;
            }
            for action in one_or_many(&statement["Action"]) {
                assert!(
                    !action.contains('*'),
                    "{file}: no wildcard actions: {action}"
                );
                assert!(
                    granted.insert(action.clone()),
                    "{file}: {action} granted twice"
                );
            }
        }
        let needed = needed(file);
        let missing: Vec<_> = needed.difference(&granted).collect();
        let unused: Vec<_> = granted.difference(&needed).collect();
        assert!(
            missing.is_empty() && unused.is_empty(),
            "{file} is out of date: missing {missing:?}, not called {unused:?}"
        );
    }
}

#[test]
fn writes_are_scoped_to_the_rolecall_paths_reads_to_their_resource_type() {
    let calls = calls_in_source();
    for file in FILES {
        let policy = policy(file);
        for statement in statements(&policy) {
            let sid = &statement["Sid"];
            let actions = one_or_many(&statement["Action"]);
            let resources = one_or_many(&statement["Resource"]);
            let kinds: BTreeSet<_> = actions.iter().map(|a| resource_type(a)).collect();
            assert_eq!(
                kinds.len(),
                1,
                "{file} {sid}: one resource type per statement, got {kinds:?}"
            );
            let kind = *kinds.first().unwrap();
            let writes = actions
                .iter()
                .any(|a| calls.writes.contains(a) || a == "iam:PassRole");
            let reads = actions.iter().any(|a| calls.reads.contains(a));
            assert!(
                !(writes && reads),
                "{file} {sid}: reads and writes in one statement cannot share a scope"
            );
            let expected = match (kind, writes || !allows(statement)) {
                ("*", _) => vec!["*".to_string()],
                ("instance", _) => vec!["arn:aws:ec2:*:*:instance/*".to_string()],
                (kind, false) => vec![format!("arn:aws:iam::*:{kind}/*")],
                (kind, true) if !allows(statement) && kind == "policy" => {
                    vec![BOUNDARIES.to_string()]
                }
                (kind, true) if !allows(statement) => vec![format!("arn:aws:iam::*:{kind}/*")],
                (kind, true) => vec![format!("arn:aws:iam::*:{kind}/rolecall/*")],
            };
            assert_eq!(
                resources, expected,
                "{file} {sid}: {actions:?} must be scoped to {expected:?}"
            );
            if actions.contains(&"iam:PassRole".to_string()) {
                assert_eq!(
                    actions.len(),
                    1,
                    "{file}: PassRole stands alone, with its condition"
                );
                assert_eq!(
                    statement["Condition"],
                    json!({"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}),
                    "{file}: PassRole only to EC2"
                );
            }
            if actions.iter().any(|a| {
                a == "ec2:AssociateIamInstanceProfile"
                    || a == "ec2:ReplaceIamInstanceProfileAssociation"
            }) {
                assert_eq!(
                    statement["Condition"],
                    json!({"ArnLike": {"ec2:NewInstanceProfile": "arn:aws:iam::*:instance-profile/rolecall/*"}}),
                    "{file} {sid}: EC2 attaches only rolecall's profiles"
                );
            }
        }
    }
}

#[test]
fn the_bounded_variant_creates_and_changes_roles_and_users_only_within_a_rolecall_boundary() {
    let policy = policy(BOUNDED);
    let mut bounded = BTreeSet::new();
    for statement in statements(&policy).iter().filter(|s| allows(s)) {
        let actions = one_or_many(&statement["Action"]);
        let conditioned =
            statement["Condition"] == json!({"ArnLike": {"iam:PermissionsBoundary": BOUNDARIES}});
        for action in &actions {
            if BOUNDED_ROLE_WRITES.contains(&action.as_str()) {
                assert!(
                    conditioned,
                    "{BOUNDED} {}: {action} needs the iam:PermissionsBoundary condition",
                    statement["Sid"]
                );
                bounded.insert(action.clone());
            }
        }
        for action in NOT_IN_BOUNDED {
            assert!(
                !actions.contains(&action.to_string()),
                "{BOUNDED} must not allow {action}"
            );
        }
    }
    let expected: BTreeSet<String> = BOUNDED_ROLE_WRITES.iter().map(|a| a.to_string()).collect();
    assert_eq!(bounded, expected);
    let denied: Vec<_> = statements(&policy)
        .iter()
        .filter(|s| !allows(s))
        .flat_map(|s| one_or_many(&s["Action"]))
        .collect();
    for action in NOT_IN_BOUNDED {
        assert!(
            denied.contains(&action.to_string()),
            "{BOUNDED} denies {action} outright, so no other policy can grant it"
        );
    }
    // The plain variant has no Deny: it is a grant to add to, not a fence.
    let plain = self::policy(PLAIN);
    assert!(statements(&plain).iter().all(allows));
}

#[test]
fn the_operators_requests_are_allowed_and_the_forbidden_ones_refused() {
    for file in FILES {
        let policy = policy(file);
        let statements = all_statements(&policy);
        let refused: Vec<_> = must_allow(file)
            .into_iter()
            .filter(|r| !allowed(&statements, r))
            .collect();
        assert!(
            refused.is_empty(),
            "{file} refuses what the operator needs: {refused:#?}"
        );
        let let_through: Vec<_> = must_refuse(file)
            .into_iter()
            .filter(|r| allowed(&statements, r))
            .collect();
        assert!(
            let_through.is_empty(),
            "{file} allows what the model forbids: {let_through:#?}"
        );
        let admin = admin();
        let beside_admin: Vec<&Value> = statements.iter().copied().chain([&admin]).collect();
        let lifted: Vec<_> = refused_beside_any_grant(file)
            .into_iter()
            .filter(|r| allowed(&beside_admin, r))
            .collect();
        assert!(
            lifted.is_empty(),
            "{file}: another policy can lift these: {lifted:#?}"
        );
    }
}

#[test]
fn every_statement_is_needed() {
    for file in FILES {
        let policy = policy(file);
        let all = all_statements(&policy);
        let admin = admin();
        for (index, statement) in all.iter().enumerate() {
            let without: Vec<&Value> = all
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != index)
                .map(|(_, s)| *s)
                .collect();
            let sid = &statement["Sid"];
            if allows(statement) {
                let lost: Vec<_> = must_allow(file)
                    .into_iter()
                    .filter(|r| !allowed(&without, r))
                    .map(|r| format!("{} on {}", r.action, r.resource))
                    .collect();
                assert!(
                    !lost.is_empty(),
                    "{file} {sid}: nothing the operator does needs this statement"
                );
            } else {
                // A Deny is needed when, without it, a forbidden request goes through: with
                // this file alone, or beside another policy that allows everything.
                let full_beside_admin: Vec<&Value> = all.iter().copied().chain([&admin]).collect();
                let beside_admin: Vec<&Value> = without.iter().copied().chain([&admin]).collect();
                let forbidden: Vec<_> = must_refuse(file)
                    .into_iter()
                    .chain(refused_beside_any_grant(file))
                    .collect();
                let gained = forbidden.iter().any(|r| {
                    (!allowed(&all, r) && allowed(&without, r))
                        || (!allowed(&full_beside_admin, r) && allowed(&beside_admin, r))
                });
                assert!(
                    gained,
                    "{file} {sid}: this Deny refuses nothing that would be allowed"
                );
            }
        }
    }
}

#[test]
fn the_evaluator_matches_like_iam() {
    assert!(glob(
        "arn:aws:iam::*:role/rolecall/*",
        "arn:aws:iam::1:role/rolecall/a/b"
    ));
    assert!(!glob(
        "arn:aws:iam::*:role/rolecall/*",
        "arn:aws:iam::1:role/rolecallx/b"
    ));
    assert!(!glob(
        "arn:aws:iam::*:role/rolecall/*",
        "arn:aws:iam::1:role/web"
    ));
    assert!(glob("i-?b", "i-ab") && !glob("i-?b", "i-abb"));
    let deny = json!({"Effect": "Deny", "Action": "iam:CreateRole", "Resource": "*"});
    let allow = json!({"Effect": "Allow", "Action": "IAM:createrole", "Resource": "*",
        "Condition": {"StringEquals": {"k": ["a", "b"]}}});
    assert!(allowed(
        &[&allow],
        &request("iam:CreateRole", "x", &[("k", "b")])
    ));
    assert!(!allowed(
        &[&allow],
        &request("iam:CreateRole", "x", &[("k", "c")])
    ));
    assert!(!allowed(&[&allow], &request("iam:CreateRole", "x", &[])));
    assert!(!allowed(
        &[&allow, &deny],
        &request("iam:CreateRole", "x", &[("k", "a")])
    ));
    assert!(!allowed(&[], &request("iam:CreateRole", "x", &[])));
}
