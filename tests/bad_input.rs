//! Hostile and malformed objects. Each is either refused by the API server (schema or CEL,
//! created with `fieldValidation=Strict`) with a message naming the field or rule, or accepted
//! and then reported by the operator as Ready=False `InvalidSpec` with an Event and no AWS
//! write, while the same operator keeps serving the valid objects beside them.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::operator::{Operator, Options};
use common::ready::{Ready, wait_reason};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::{Client, Resource};
use rolecall::api::{Ec2InstanceBinding, IamPolicy, IamRole, InstanceProfile};
use rolecall::aws::CallKind;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(90);

/// What must happen to a case.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Refused by the API server with this HTTP status; the message contains the text.
    Refused(u16, &'static str),
    /// Accepted, then reported Ready=False InvalidSpec with a message containing the text.
    InvalidSpec(&'static str),
}

struct Case {
    what: &'static str,
    kind: &'static str,
    spec: Value,
    expect: Expect,
}

use Expect::{InvalidSpec, Refused};

fn case(what: &'static str, kind: &'static str, spec: Value, expect: Expect) -> Case {
    Case {
        what,
        kind,
        spec,
        expect,
    }
}

fn statement(fields: Value) -> Value {
    json!({ "Version": "2012-10-17", "Statement": [fields] })
}

fn s3_read() -> Value {
    statement(json!({ "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*" }))
}

/// A permissions policy whose single statement has `count` actions (about 29 characters each).
fn actions(count: usize) -> Value {
    let list: Vec<String> = (0..count)
        .map(|index| format!("s3:GetObjectVersion{index:07}"))
        .collect();
    statement(json!({ "Effect": "Allow", "Action": list, "Resource": "*" }))
}

fn ec2_trust() -> Value {
    json!(["ec2.amazonaws.com"])
}

fn trust(fields: Value) -> Value {
    json!({ "assumeRolePolicy": statement(fields) })
}

fn many_tags(count: usize) -> Value {
    Value::Object(
        (0..count)
            .map(|index| (format!("key{index}"), json!("value")))
            .collect(),
    )
}

fn cases() -> Vec<Case> {
    let long_value = "v".repeat(10_000);
    vec![
        // Sizes.
        case(
            "managed policy document over IAM's 6,144 characters",
            "IamPolicy",
            json!({ "document": actions(400) }),
            InvalidSpec("more than the 6144 IAM allows"),
        ),
        case(
            "1.3 MB document, just under etcd's 1.5 MiB request limit",
            "IamPolicy",
            json!({ "document": actions(45_000) }),
            InvalidSpec("more than the 6144 IAM allows"),
        ),
        case(
            "2 MB document, over etcd's request limit",
            "IamPolicy",
            json!({ "document": actions(70_000) }),
            Refused(500, "etcdserver: request is too large"),
        ),
        case(
            "4 MB document, over the API server's 3 MiB body limit",
            "IamPolicy",
            json!({ "document": actions(140_000) }),
            Refused(413, "too large"),
        ),
        case(
            "5,000 statements",
            "IamPolicy",
            json!({ "document": { "Statement": vec![json!({ "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*" }); 5000] } }),
            Refused(422, "spec.document.Statement: Too many: 5000"),
        ),
        case(
            "trust policy over IAM's 2,048 characters",
            "IamRole",
            trust(json!({
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Principal": { "AWS": (0..100).map(|i| format!("arn:aws:iam::{:012}:root", 100_000_000_000u64 + i)).collect::<Vec<_>>() },
            })),
            InvalidSpec("more than the 2048 IAM allows"),
        ),
        case(
            "inline policies over IAM's 10,240 characters per role",
            "IamRole",
            json!({ "trustedServices": ec2_trust(), "inlinePolicies": { "a": actions(140), "b": actions(140), "c": actions(140) } }),
            InvalidSpec("IAM allows 10240 per role"),
        ),
        // Wrong types.
        case(
            "string where a list belongs (trustedServices)",
            "IamRole",
            json!({ "trustedServices": "ec2.amazonaws.com" }),
            Refused(422, "spec.trustedServices: Invalid value: \"string\""),
        ),
        case(
            "number where a string belongs (name)",
            "IamPolicy",
            json!({ "name": 42, "document": s3_read() }),
            Refused(422, "spec.name: Invalid value: \"integer\""),
        ),
        case(
            "object where an array belongs (managedPolicyArns)",
            "IamRole",
            json!({ "trustedServices": ec2_trust(), "managedPolicyArns": {} }),
            Refused(422, "spec.managedPolicyArns: Invalid value: \"object\""),
        ),
        case(
            "boolean where an integer belongs (maxSessionDuration)",
            "IamRole",
            json!({ "trustedServices": ec2_trust(), "maxSessionDuration": true }),
            Refused(422, "spec.maxSessionDuration: Invalid value: \"boolean\""),
        ),
        case(
            "document as a JSON string, as IAM's API takes it (and invalid JSON at that)",
            "IamPolicy",
            json!({ "document": "{\"Version\": \"2012-10-17\", \"Statement\": [" }),
            Refused(422, "spec.document: Invalid value: \"string\""),
        ),
        case(
            "Statement as an object instead of a list",
            "IamPolicy",
            json!({ "document": { "Statement": { "Effect": "Allow", "Action": "s3:*", "Resource": "*" } } }),
            // Strict decoding names the statement's fields as unknown before the type check.
            Refused(400, "unknown field \"spec.document.Statement.Effect\""),
        ),
        case(
            "Action as a number",
            "IamPolicy",
            json!({ "document": statement(json!({ "Effect": "Allow", "Action": 5, "Resource": "*" })) }),
            InvalidSpec("Statement[0].Action: must be a string or a list of strings, not a number"),
        ),
        case(
            "Action as a map",
            "IamPolicy",
            json!({ "document": statement(json!({ "Effect": "Allow", "Action": { "s3": "GetObject" }, "Resource": "*" })) }),
            InvalidSpec("Statement[0].Action: must be a string or a list of strings, not a map"),
        ),
        case(
            "Action as a boolean",
            "IamPolicy",
            json!({ "document": statement(json!({ "Effect": "Allow", "Action": true, "Resource": "*" })) }),
            InvalidSpec(
                "Statement[0].Action: must be a string or a list of strings, not a boolean",
            ),
        ),
        case(
            "Action list holding numbers",
            "IamPolicy",
            json!({ "document": statement(json!({ "Effect": "Allow", "Action": ["s3:GetObject", 1, 2], "Resource": "*" })) }),
            InvalidSpec("Statement[0].Action: must be a string or a list of strings"),
        ),
        case(
            "Principal as a number in a trust policy",
            "IamRole",
            trust(json!({ "Effect": "Allow", "Action": "sts:AssumeRole", "Principal": 7 })),
            InvalidSpec("Statement[0].Principal: must be \"*\" or a map"),
        ),
        case(
            "Condition value that is a nested map",
            "IamPolicy",
            json!({ "document": statement(json!({ "Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": { "StringEquals": { "aws:username": { "nested": 1 } } } })) }),
            InvalidSpec(
                "Statement[0].Condition.StringEquals.aws:username: must be a string, number or boolean",
            ),
        ),
        case(
            "Effect as a boolean",
            "IamPolicy",
            json!({ "document": statement(json!({ "Effect": true, "Action": "s3:*", "Resource": "*" })) }),
            Refused(422, "spec.document.Statement[0].Effect"),
        ),
        // Missing required fields.
        case(
            "policy without a document",
            "IamPolicy",
            json!({ "description": "nothing in it" }),
            Refused(422, "spec.document: Required value"),
        ),
        case(
            "statement without Effect",
            "IamPolicy",
            json!({ "document": statement(json!({ "Action": "s3:*", "Resource": "*" })) }),
            Refused(422, "spec.document.Statement[0].Effect: Required value"),
        ),
        case(
            "policy reference without a name",
            "IamRole",
            json!({ "trustedServices": ec2_trust(), "policyRefs": [{}] }),
            Refused(422, "spec.policyRefs[0].name: Required value"),
        ),
        case(
            "statement without Action or NotAction",
            "IamPolicy",
            json!({ "document": statement(json!({ "Effect": "Allow", "Resource": "*" })) }),
            InvalidSpec("Statement[0]: one of Action or NotAction is required"),
        ),
        case(
            "permissions statement without Resource",
            "IamPolicy",
            json!({ "document": statement(json!({ "Effect": "Allow", "Action": "s3:*" })) }),
            InvalidSpec("Statement[0]: one of Resource or NotResource is required"),
        ),
        case(
            "trust statement without Principal",
            "IamRole",
            trust(json!({ "Effect": "Allow", "Action": "sts:AssumeRole" })),
            InvalidSpec(
                "Statement[0]: one of Principal or NotPrincipal is required in a trust policy",
            ),
        ),
        // Unknown fields (Strict field validation).
        case(
            "misspelt field (documnet)",
            "IamPolicy",
            json!({ "document": s3_read(), "documnet": s3_read() }),
            Refused(400, "unknown field \"spec.documnet\""),
        ),
        case(
            "misspelt statement field (Actions)",
            "IamPolicy",
            json!({ "document": statement(json!({ "Effect": "Allow", "Action": "s3:*", "Actions": "iam:*", "Resource": "*" })) }),
            Refused(400, "unknown field \"spec.document.Statement[0].Actions\""),
        ),
        case(
            "policy reference into another namespace",
            "IamRole",
            json!({ "trustedServices": ec2_trust(), "policyRefs": [{ "name": "admin", "namespace": "kube-system" }] }),
            Refused(400, "unknown field \"spec.policyRefs[0].namespace\""),
        ),
        case(
            "role reference into another namespace",
            "InstanceProfile",
            json!({ "roleRef": { "name": "admin", "namespace": "kube-system" } }),
            Refused(400, "unknown field \"spec.roleRef.namespace\""),
        ),
        case(
            "profile reference into another namespace",
            "Ec2InstanceBinding",
            json!({ "instanceProfileRef": { "name": "admin", "namespace": "kube-system" }, "instanceIds": ["i-0123456789abcdef0"] }),
            Refused(400, "unknown field \"spec.instanceProfileRef.namespace\""),
        ),
        case(
            "policy reference smuggling a path into another namespace",
            "IamRole",
            json!({ "trustedServices": ec2_trust(), "policyRefs": [{ "name": "../../kube-system/iampolicies/admin" }] }),
            Refused(422, "spec.policyRefs[0].name in body should match"),
        ),
        // Unicode tricks in IAM names, paths and tag keys.
        case(
            "Cyrillic homoglyph in a policy name",
            "IamPolicy",
            json!({ "name": "w\u{0435}b-reader", "document": s3_read() }),
            Refused(422, "spec.name in body should match"),
        ),
        case(
            "zero-width space in a role name",
            "IamRole",
            json!({ "name": "web\u{200B}role", "trustedServices": ec2_trust() }),
            Refused(422, "spec.name in body should match"),
        ),
        case(
            "right-to-left override in a policy path",
            "IamPolicy",
            json!({ "path": "/team\u{202E}/", "document": s3_read() }),
            Refused(422, "spec.path in body should match"),
        ),
        case(
            "NUL in an instance profile name",
            "InstanceProfile",
            json!({ "name": "web\u{0}", "roleName": "web" }),
            Refused(422, "spec.name in body should match"),
        ),
        case(
            "emoji in a role path",
            "IamRole",
            json!({ "path": "/\u{1F680}/", "trustedServices": ec2_trust() }),
            Refused(422, "spec.path in body should match"),
        ),
        case(
            "full-width letters in a policy name",
            "IamPolicy",
            json!({ "name": "\u{FF57}\u{FF45}\u{FF42}", "document": s3_read() }),
            Refused(422, "spec.name in body should match"),
        ),
        case(
            "Cyrillic homoglyph in a policy reference",
            "IamRole",
            json!({ "trustedServices": ec2_trust(), "policyRefs": [{ "name": "w\u{0435}b" }] }),
            Refused(422, "spec.policyRefs[0].name in body should match"),
        ),
        case(
            "zero-width space in a tag key",
            "IamPolicy",
            json!({ "document": s3_read(), "tags": { "team\u{200B}": "web" } }),
            Refused(
                422,
                "tag keys may hold only letters, digits, spaces and _.:/=+-@",
            ),
        ),
        case(
            "right-to-left override in a tag key",
            "IamRole",
            json!({ "trustedServices": ec2_trust(), "tags": { "\u{202E}maet": "web" } }),
            Refused(
                422,
                "tag keys may hold only letters, digits, spaces and _.:/=+-@",
            ),
        ),
        case(
            "NUL in a tag key",
            "InstanceProfile",
            json!({ "roleName": "web", "tags": { "team\u{0}": "web" } }),
            Refused(
                422,
                "tag keys may hold only letters, digits, spaces and _.:/=+-@",
            ),
        ),
        case(
            "emoji tag value",
            "IamPolicy",
            json!({ "document": s3_read(), "tags": { "team": "\u{1F680}" } }),
            Refused(422, "spec.tags.team in body should match"),
        ),
        case(
            "homoglyph in an action name",
            "IamPolicy",
            json!({ "document": statement(json!({ "Effect": "Allow", "Action": "s3:Get\u{041E}bject", "Resource": "*" })) }),
            InvalidSpec("is not an action of the form service:Action"),
        ),
        // Document grammar.
        case(
            "empty Statement list",
            "IamPolicy",
            json!({ "document": { "Statement": [] } }),
            Refused(422, "spec.document.Statement: Invalid value: 0"),
        ),
        case(
            "bad Version",
            "IamPolicy",
            json!({ "document": { "Version": "2024-01-01", "Statement": s3_read()["Statement"] } }),
            Refused(
                422,
                "spec.document.Version: Unsupported value: \"2024-01-01\"",
            ),
        ),
        case(
            "Effect other than Allow or Deny",
            "IamPolicy",
            json!({ "document": statement(json!({ "Effect": "Permit", "Action": "s3:*", "Resource": "*" })) }),
            Refused(
                422,
                "spec.document.Statement[0].Effect: Unsupported value: \"Permit\"",
            ),
        ),
        case(
            "Action and NotAction together",
            "IamPolicy",
            json!({ "document": statement(json!({ "Effect": "Allow", "Action": "s3:*", "NotAction": "iam:*", "Resource": "*" })) }),
            InvalidSpec("Statement[0]: Action and NotAction cannot both be set"),
        ),
        case(
            "empty Action list",
            "IamPolicy",
            json!({ "document": statement(json!({ "Effect": "Allow", "Action": [], "Resource": "*" })) }),
            InvalidSpec("Statement[0].Action: the list must not be empty"),
        ),
        case(
            "Principal in a permissions policy",
            "IamPolicy",
            json!({ "document": statement(json!({ "Effect": "Allow", "Action": "s3:*", "Resource": "*", "Principal": "*" })) }),
            InvalidSpec("a permissions policy cannot name a Principal"),
        ),
        case(
            "Resource in a trust policy",
            "IamRole",
            trust(
                json!({ "Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*", "Principal": { "Service": "ec2.amazonaws.com" } }),
            ),
            InvalidSpec("a trust policy cannot name a Resource"),
        ),
        case(
            "unknown principal type",
            "IamRole",
            trust(
                json!({ "Effect": "Allow", "Action": "sts:AssumeRole", "Principal": { "Everyone": "*" } }),
            ),
            InvalidSpec("Statement[0].Principal.Everyone: unknown principal type"),
        ),
        case(
            "Resource that is neither an ARN nor *",
            "IamPolicy",
            json!({ "document": statement(json!({ "Effect": "Allow", "Action": "s3:*", "Resource": "my-bucket" })) }),
            InvalidSpec("Statement[0].Resource: \"my-bucket\" is neither an ARN"),
        ),
        case(
            "duplicate Sid",
            "IamPolicy",
            json!({ "document": { "Statement": [
                { "Sid": "Same", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*" },
                { "Sid": "Same", "Effect": "Deny", "Action": "s3:PutObject", "Resource": "*" },
            ] } }),
            InvalidSpec("Statement[1].Sid: \"Same\" is already used by Statement[0]"),
        ),
        case(
            "inline policy with a Principal",
            "IamRole",
            json!({ "trustedServices": ec2_trust(), "inlinePolicies": { "logs": statement(json!({ "Effect": "Allow", "Action": "logs:*", "Resource": "*", "Principal": "*" })) } }),
            InvalidSpec(
                "inlinePolicies.logs: Statement[0]: a permissions policy cannot name a Principal",
            ),
        ),
        // Policy ARNs.
        case(
            "managed policy of another account",
            "IamRole",
            json!({ "trustedServices": ec2_trust(), "managedPolicyArns": ["arn:aws:iam::210987654321:policy/theirs"] }),
            InvalidSpec(
                "managedPolicyArns: arn:aws:iam::210987654321:policy/theirs is neither an AWS managed policy",
            ),
        ),
        case(
            "AWS managed policy of another partition",
            "IamRole",
            json!({ "trustedServices": ec2_trust(), "managedPolicyArns": ["arn:aws-cn:iam::aws:policy/ReadOnlyAccess"] }),
            InvalidSpec("managedPolicyArns: arn:aws-cn:iam::aws:policy/ReadOnlyAccess is neither"),
        ),
        case(
            "permissions boundary of another account",
            "IamRole",
            json!({ "trustedServices": ec2_trust(), "permissionsBoundary": "arn:aws:iam::210987654321:policy/boundary" }),
            InvalidSpec(
                "permissionsBoundary: arn:aws:iam::210987654321:policy/boundary is neither",
            ),
        ),
        case(
            "malformed policy ARN (11-digit account)",
            "IamRole",
            json!({ "trustedServices": ec2_trust(), "managedPolicyArns": ["arn:aws:iam::12345678901:policy/x"] }),
            Refused(422, "spec.managedPolicyArns[0] in body should match"),
        ),
        case(
            "a role ARN where a policy ARN belongs",
            "IamRole",
            json!({ "trustedServices": ec2_trust(), "managedPolicyArns": ["arn:aws:iam::aws:role/Admin"] }),
            Refused(422, "spec.managedPolicyArns[0] in body should match"),
        ),
        case(
            "duplicate managed policy ARNs",
            "IamRole",
            json!({ "trustedServices": ec2_trust(), "managedPolicyArns": ["arn:aws:iam::aws:policy/ReadOnlyAccess", "arn:aws:iam::aws:policy/ReadOnlyAccess"] }),
            Refused(422, "spec.managedPolicyArns[1]: Duplicate value"),
        ),
        case(
            "duplicate policy references",
            "IamRole",
            json!({ "trustedServices": ec2_trust(), "policyRefs": [{ "name": "web" }, { "name": "web" }] }),
            Refused(422, "spec.policyRefs[1]: Duplicate value"),
        ),
        case(
            "more than 20 managed policies in all",
            "IamRole",
            json!({
                "trustedServices": ec2_trust(),
                "managedPolicyArns": (0..12).map(|i| format!("arn:aws:iam::aws:policy/P{i}")).collect::<Vec<_>>(),
                "policyRefs": (0..12).map(|i| json!({ "name": format!("p{i}") })).collect::<Vec<_>>(),
            }),
            Refused(422, "a role can carry at most 20 managed policies"),
        ),
        // Selectors and instance ids.
        case(
            "empty selector (would match every instance)",
            "Ec2InstanceBinding",
            json!({ "instanceProfileName": "web", "instanceSelector": { "matchTags": {} } }),
            Refused(422, "spec.instanceSelector.matchTags: Invalid value: 0"),
        ),
        case(
            "selector of 1,000 tags",
            "Ec2InstanceBinding",
            json!({ "instanceProfileName": "web", "instanceSelector": { "matchTags": many_tags(1000) } }),
            Refused(422, "spec.instanceSelector.matchTags: Too many: 1000"),
        ),
        case(
            "selector of wildcard-only values",
            "Ec2InstanceBinding",
            json!({ "instanceProfileName": "web", "instanceSelector": { "matchTags": { "Name": "*", "env": "**" } } }),
            InvalidSpec("at least one value must be more than the wildcard *"),
        ),
        case(
            "selector with a 10,000-character value",
            "Ec2InstanceBinding",
            json!({ "instanceProfileName": "web", "instanceSelector": { "matchTags": { "app": long_value } } }),
            Refused(422, "spec.instanceSelector.matchTags.app: Too long"),
        ),
        case(
            "neither instanceIds nor instanceSelector",
            "Ec2InstanceBinding",
            json!({ "instanceProfileName": "web", "instanceIds": [] }),
            Refused(
                422,
                "at least one of instanceIds and instanceSelector must be set",
            ),
        ),
        case(
            "both instanceProfileRef and instanceProfileName",
            "Ec2InstanceBinding",
            json!({ "instanceProfileRef": { "name": "web" }, "instanceProfileName": "web", "instanceIds": ["i-0123456789abcdef0"] }),
            Refused(
                422,
                "exactly one of instanceProfileRef and instanceProfileName",
            ),
        ),
        case(
            "malformed instance id (upper case)",
            "Ec2InstanceBinding",
            json!({ "instanceProfileName": "web", "instanceIds": ["i-0123456789ABCDEF0"] }),
            Refused(422, "spec.instanceIds[0] in body should match"),
        ),
        case(
            "malformed instance id (full-width digits and a zero-width space)",
            "Ec2InstanceBinding",
            json!({ "instanceProfileName": "web", "instanceIds": ["i-0123456789abcdef0", "i-\u{FF10}123456789abcdef\u{200B}"] }),
            Refused(422, "spec.instanceIds[1] in body should match"),
        ),
        case(
            "1,001 instance ids",
            "Ec2InstanceBinding",
            json!({ "instanceProfileName": "web", "instanceIds": (0..1001).map(|i| format!("i-{i:017x}")).collect::<Vec<_>>() }),
            Refused(422, "spec.instanceIds: Too many: 1001"),
        ),
        // Tags.
        case(
            "50 tags: with rolecall's owner tag, one more than IAM's 50",
            "IamRole",
            json!({ "trustedServices": ec2_trust(), "tags": many_tags(50) }),
            Refused(422, "spec.tags: Too many: 50"),
        ),
        case(
            "tag value of 257 characters",
            "IamPolicy",
            json!({ "document": s3_read(), "tags": { "team": "v".repeat(257) } }),
            Refused(422, "spec.tags.team: Too long"),
        ),
        case(
            "tag key of 129 characters",
            "InstanceProfile",
            json!({ "roleName": "web", "tags": { "k".repeat(129): "v" } }),
            Refused(422, "tag keys must be 1 to 128 characters"),
        ),
        case(
            "reserved aws: tag prefix",
            "IamRole",
            json!({ "trustedServices": ec2_trust(), "tags": { "AWS:cloudformation:stack-name": "x" } }),
            Refused(
                422,
                "tag keys starting with rolecall.dev/ or aws: are reserved",
            ),
        ),
        case(
            "the rolecall owner tag set by the user",
            "IamPolicy",
            json!({ "document": s3_read(), "tags": { "rolecall.dev/owner": "other/ns/name" } }),
            Refused(
                422,
                "tag keys starting with rolecall.dev/ or aws: are reserved",
            ),
        ),
        case(
            "the rolecall owner tag in other letter case (IAM ignores case)",
            "IamRole",
            json!({ "trustedServices": ec2_trust(), "tags": { "RoleCall.dev/Owner": "other/ns/name" } }),
            Refused(
                422,
                "tag keys starting with rolecall.dev/ or aws: are reserved",
            ),
        ),
        case(
            "two tag keys differing only in case",
            "IamPolicy",
            json!({ "document": s3_read(), "tags": { "Team": "a", "team": "b" } }),
            Refused(422, "tag keys must differ by more than letter case"),
        ),
        // Names, paths and numbers.
        case(
            "role name of 65 characters",
            "IamRole",
            json!({ "name": "r".repeat(65), "trustedServices": ec2_trust() }),
            Refused(422, "spec.name: Too long"),
        ),
        case(
            "policy name of 129 characters",
            "IamPolicy",
            json!({ "name": "p".repeat(129), "document": s3_read() }),
            Refused(422, "spec.name: Too long"),
        ),
        case(
            "instance profile name of 129 characters",
            "InstanceProfile",
            json!({ "name": "i".repeat(129), "roleName": "web" }),
            Refused(422, "spec.name: Too long"),
        ),
        case(
            "empty name",
            "IamRole",
            json!({ "name": "", "trustedServices": ec2_trust() }),
            Refused(422, "spec.name"),
        ),
        case(
            "path without the leading slash",
            "IamPolicy",
            json!({ "path": "platform/", "document": s3_read() }),
            Refused(422, "spec.path in body should match"),
        ),
        case(
            "path without the trailing slash",
            "IamRole",
            json!({ "path": "/platform", "trustedServices": ec2_trust() }),
            Refused(422, "spec.path in body should match"),
        ),
        case(
            "maxSessionDuration below one hour",
            "IamRole",
            json!({ "trustedServices": ec2_trust(), "maxSessionDuration": 3599 }),
            Refused(422, "spec.maxSessionDuration: Invalid value: 3599"),
        ),
        case(
            "maxSessionDuration above twelve hours",
            "IamRole",
            json!({ "trustedServices": ec2_trust(), "maxSessionDuration": 43201 }),
            Refused(422, "spec.maxSessionDuration: Invalid value: 43201"),
        ),
        case(
            "role description with a NUL",
            "IamRole",
            json!({ "trustedServices": ec2_trust(), "description": "web\u{0}fleet" }),
            Refused(422, "spec.description in body should match"),
        ),
        case(
            "trusted service that is not an AWS service host",
            "IamRole",
            json!({ "trustedServices": ["ec2.amazonaws.com.evil.example"] }),
            Refused(422, "spec.trustedServices[0] in body should match"),
        ),
    ]
}

fn resource(kind: &str) -> kube::api::ApiResource {
    fn of<K: Resource<DynamicType = ()>>() -> kube::api::ApiResource {
        kube::api::ApiResource::erase::<K>(&())
    }
    match kind {
        "IamPolicy" => of::<IamPolicy>(),
        "IamRole" => of::<IamRole>(),
        "InstanceProfile" => of::<InstanceProfile>(),
        "Ec2InstanceBinding" => of::<Ec2InstanceBinding>(),
        other => panic!("unknown kind {other}"),
    }
}

/// Creates with `fieldValidation=Strict`, so unknown fields are refused rather than pruned.
async fn create_strict(
    client: &Client,
    namespace: &str,
    kind: &str,
    name: &str,
    spec: &Value,
) -> Result<DynamicObject, kube::Error> {
    let resource = resource(kind);
    let object = json!({
        "apiVersion": resource.api_version,
        "kind": kind,
        "metadata": { "name": name },
        "spec": spec,
    });
    let path = format!(
        "/apis/{}/namespaces/{namespace}/{}",
        resource.api_version, resource.plural
    );
    let mut request = kube::core::Request::new(&path)
        .create(
            &PostParams::default(),
            serde_json::to_vec(&object).expect("JSON"),
        )
        .expect("a create request");
    *request.uri_mut() = format!("{path}?fieldValidation=Strict")
        .parse()
        .expect("a valid URI");
    client.request::<DynamicObject>(request).await
}

/// (status, reason, message) of Ready once it reports `reason`, for any of the four kinds.
async fn wait_ready_reason(
    client: &Client,
    namespace: &str,
    kind: &str,
    name: &str,
    reason: &str,
) -> (String, String, String) {
    async fn wait<K>(
        client: &Client,
        namespace: &str,
        name: &str,
        reason: &str,
    ) -> Option<(String, String, String)>
    where
        K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug
            + Ready,
    {
        let api: Api<K> = Api::namespaced(client.clone(), namespace);
        wait_reason(&api, name, reason).await.ready()
    }
    match kind {
        "IamPolicy" => wait::<IamPolicy>(client, namespace, name, reason).await,
        "IamRole" => wait::<IamRole>(client, namespace, name, reason).await,
        "InstanceProfile" => wait::<InstanceProfile>(client, namespace, name, reason).await,
        "Ec2InstanceBinding" => wait::<Ec2InstanceBinding>(client, namespace, name, reason).await,
        other => panic!("unknown kind {other}"),
    }
    .expect("a Ready condition")
}

/// Names of the AWS objects (policies, roles, instance profiles) whose names start with `prefix`.
async fn aws_names_with_prefix(prefix: &str) -> BTreeSet<String> {
    let aws = common::operator::aws_clients().await;
    let mut names = BTreeSet::new();
    let policies = aws
        .iam
        .list_policies()
        .scope(aws_sdk_iam::types::PolicyScopeType::Local)
        .into_paginator()
        .items()
        .send()
        .collect::<Vec<_>>()
        .await;
    for policy in policies {
        names.insert(format!(
            "policy {}",
            policy
                .expect("ListPolicies")
                .policy_name()
                .unwrap_or_default()
        ));
    }
    let roles = aws
        .iam
        .list_roles()
        .into_paginator()
        .items()
        .send()
        .collect::<Vec<_>>()
        .await;
    for role in roles {
        names.insert(format!("role {}", role.expect("ListRoles").role_name()));
    }
    let profiles = aws
        .iam
        .list_instance_profiles()
        .into_paginator()
        .items()
        .send()
        .collect::<Vec<_>>()
        .await;
    for profile in profiles {
        names.insert(format!(
            "instance-profile {}",
            profile
                .expect("ListInstanceProfiles")
                .instance_profile_name()
        ));
    }
    names
        .into_iter()
        .filter(|name| {
            name.split_once(' ')
                .is_some_and(|(_, name)| name.starts_with(prefix))
        })
        .collect()
}

#[test]
fn the_table_holds_at_least_thirty_cases_of_each_outcome_mix() {
    let cases = cases();
    let refused = cases
        .iter()
        .filter(|c| matches!(c.expect, Refused(..)))
        .count();
    let invalid = cases.len() - refused;
    assert!(cases.len() >= 30, "{} cases", cases.len());
    assert!(
        refused >= 10 && invalid >= 10,
        "{refused} refused, {invalid} InvalidSpec"
    );
}

#[tokio::test]
async fn bad_input_is_refused_or_reported_invalid_without_aws_writes() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let namespace = common::fresh_namespace(&client, "bad-input").await;
    // AWS names are the object names: unique per run, since moto is shared.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let run = format!("bi{:08x}", (nanos as u32) ^ std::process::id());
    let run = run.as_str();

    // 1. The API server: refusals must name the field or rule; the rest must be accepted.
    let mut accepted = Vec::new();
    let mut wrong = Vec::new();
    for (index, case) in cases().into_iter().enumerate() {
        let name = format!("{run}-{index:02}");
        let result = create_strict(&client, &namespace, case.kind, &name, &case.spec).await;
        match (case.expect, result) {
            (Refused(code, text), Err(kube::Error::Api(status))) => {
                if status.code != code || !status.message.contains(text) {
                    wrong.push(format!(
                        "#{index} {} ({}): expected {code} naming {text:?}, got {}: {}",
                        case.what,
                        case.kind,
                        status.code,
                        truncate(&status.message)
                    ));
                }
            }
            (Refused(_, text), Ok(_)) => wrong.push(format!(
                "#{index} {} ({}): accepted, expected a refusal naming {text:?}",
                case.what, case.kind
            )),
            (InvalidSpec(text), Ok(_)) => accepted.push((name, case.kind, case.what, text)),
            (InvalidSpec(_), Err(error)) => wrong.push(format!(
                "#{index} {} ({}): refused ({}), but the operator should see it",
                case.what,
                case.kind,
                truncate(&error.to_string())
            )),
            (_, Err(error)) => wrong.push(format!("#{index} {}: {error}", case.what)),
        }
    }
    assert!(
        wrong.is_empty(),
        "API server outcomes differ:\n{}",
        wrong.join("\n")
    );

    // 2. Valid objects beside them: a policy and a role using it.
    let valid_policy = format!("{run}-valid-policy");
    let valid_role = format!("{run}-valid-role");
    create_strict(
        &client,
        &namespace,
        "IamPolicy",
        &valid_policy,
        &json!({ "document": s3_read() }),
    )
    .await
    .expect("a valid policy");
    create_strict(
        &client,
        &namespace,
        "IamRole",
        &valid_role,
        &json!({ "trustedServices": ec2_trust(), "policyRefs": [{ "name": valid_policy }] }),
    )
    .await
    .expect("a valid role");

    // 3. One operator for all of them.
    let operator = Operator::start(&client, &namespace, Options::default()).await;
    let policies: Api<IamPolicy> = Api::namespaced(client.clone(), &namespace);
    let roles: Api<IamRole> = Api::namespaced(client.clone(), &namespace);
    wait_reason(&policies, &valid_policy, "Available").await;
    wait_reason(&roles, &valid_role, "Available").await;

    let events: Api<Event> = Api::namespaced(client.clone(), &namespace);
    let mut problems = Vec::new();
    for (name, kind, what, text) in &accepted {
        let (status, _, message) =
            wait_ready_reason(&client, &namespace, kind, name, "InvalidSpec").await;
        if status != "False" || !message.contains(text) {
            problems.push(format!(
                "{what} ({kind} {name}): Ready={status}, message {:?} lacks {text:?}",
                truncate(&message)
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "InvalidSpec messages differ:\n{}",
        problems.join("\n")
    );
    common::wait_for(
        "an InvalidSpec Event on every accepted case",
        WAIT,
        || async {
            let list = events.list(&Default::default()).await.ok()?;
            let with_event: BTreeSet<&str> = list
                .items
                .iter()
                .filter(|event| event.reason.as_deref() == Some("InvalidSpec"))
                .filter(|event| event.note.as_deref().is_some_and(|note| note.len() > 20))
                .filter_map(|event| event.regarding.as_ref()?.name.as_deref())
                .collect();
            accepted
                .iter()
                .all(|(name, ..)| with_event.contains(name.as_str()))
                .then_some(())
        },
    )
    .await;

    // 4. AWS saw exactly the valid objects' writes, and holds nothing of the invalid ones.
    let writes: BTreeMap<&str, u64> = operator
        .ctx
        .calls
        .snapshot()
        .into_iter()
        .filter(|((kind, _), _)| *kind == CallKind::Write)
        .map(|((_, operation), count)| (operation, count.ok + count.failed))
        .collect();
    assert_eq!(
        writes,
        BTreeMap::from([
            ("AttachRolePolicy", 1),
            ("CreatePolicy", 1),
            ("CreateRole", 1)
        ]),
        "AWS writes beyond the valid policy and role"
    );
    assert_eq!(operator.writes(), 3);
    assert_eq!(
        aws_names_with_prefix(run).await,
        BTreeSet::from([
            format!("policy {valid_policy}"),
            format!("role {valid_role}")
        ]),
        "moto holds objects of this run other than the valid ones"
    );

    // The valid objects go again, so moto keeps nothing of this run.
    roles
        .delete(&valid_role, &DeleteParams::default())
        .await
        .unwrap();
    policies
        .delete(&valid_policy, &DeleteParams::default())
        .await
        .unwrap();
    common::wait_for("the valid objects deleted from AWS", WAIT, || async {
        aws_names_with_prefix(run).await.is_empty().then_some(())
    })
    .await;
    operator.stop().await;
}

fn truncate(text: &str) -> String {
    if text.chars().count() <= 400 {
        text.to_string()
    } else {
        format!("{}...", text.chars().take(400).collect::<String>())
    }
}
