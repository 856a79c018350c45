use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::api::tenancy::TenancySpec;

const ACCOUNT: &str = "123456789012";
const PREFIX: &str = "arn:aws:iam::123456789012:";

fn tenancy(name: &str, spec: serde_json::Value) -> Tenancy {
    let spec: TenancySpec = serde_json::from_value(spec).expect("a valid Tenancy spec");
    let mut tenancy = Tenancy::new(name, spec);
    tenancy.metadata.name = Some(name.into());
    tenancy
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn web() -> Rules {
    let tenancies = [tenancy(
        "web",
        json!({
            "namespaceSelector": { "matchLabels": { "team": "web" } },
            "path": "/rolecall/web/",
            "namePrefix": "web-",
            "permissionsBoundary": "arn:aws:iam::123456789012:policy/rolecall/boundary",
            "managedPolicies": ["arn:aws:iam::aws:policy/ReadOnlyAccess"],
            "trust": { "services": ["ec2.amazonaws.com"], "accounts": ["210987654321"],
                       "federated": ["arn:aws:iam::123456789012:oidc-provider/*"] },
            "references": { "roles": ["legacy-*"], "instanceProfiles": ["shared-?"] },
            "instances": { "matchTags": { "team": "web" } },
            "adopt": { "roles": ["web-old-*"] },
        }),
    )];
    Rules::for_namespace("shop", &labels(&[("team", "web")]), &tenancies).unwrap()
}

fn document(value: serde_json::Value) -> PolicyDocument {
    serde_json::from_value(value).expect("a valid document")
}

fn forbidden(result: Result<impl std::fmt::Debug, Error>) -> String {
    match result {
        Err(Error::Forbidden(message)) => message,
        other => panic!("expected Forbidden, got {other:?}"),
    }
}

#[test]
fn a_namespace_no_tenancy_selects_gets_the_defaults_on_its_own_path() {
    let tenancies = [tenancy(
        "web",
        json!({ "namespaceSelector": { "matchLabels": { "team": "web" } } }),
    )];
    let rules = Rules::for_namespace("shop", &labels(&[("team", "db")]), &tenancies).unwrap();
    assert_eq!(rules.path, "/rolecall/shop/");
    assert!(rules.source.contains("default rules"), "{}", rules.source);
    assert_eq!(rules.spec, TenancySpec::default());
}

#[test]
fn the_one_selecting_tenancy_applies_and_two_allow_nothing() {
    let one = tenancy(
        "web",
        json!({ "namespaceSelector": { "matchLabels": { "team": "web" } } }),
    );
    let every = tenancy("every", json!({ "namespaceSelector": {} }));
    let team = labels(&[("team", "web")]);
    let rules = Rules::for_namespace("shop", &team, [&one]).unwrap();
    assert_eq!(rules.source, "Tenancy web");
    assert_eq!(
        rules.path, "/rolecall/shop/",
        "no path set: the namespace's own"
    );
    let message = forbidden(Rules::for_namespace("shop", &team, [&one, &every]));
    assert!(message.contains("Tenancies every, web"), "{message}");
}

#[test]
fn match_expressions_select_too() {
    let tenancy = tenancy(
        "not-prod",
        json!({ "namespaceSelector": { "matchExpressions": [
            { "key": "env", "operator": "NotIn", "values": ["prod"] }
        ] } }),
    );
    assert!(
        Rules::for_namespace("a", &labels(&[("env", "dev")]), [&tenancy])
            .unwrap()
            .source
            .contains("Tenancy")
    );
    assert!(
        Rules::for_namespace("b", &labels(&[("env", "prod")]), [&tenancy])
            .unwrap()
            .source
            .contains("default")
    );
}

#[test]
fn paths_must_lie_under_the_namespace_path() {
    let rules = web();
    assert_eq!(rules.check_path(None).unwrap(), "/rolecall/web/");
    assert_eq!(
        rules.check_path(Some("/rolecall/web/app/")).unwrap(),
        "/rolecall/web/app/"
    );
    let message = forbidden(rules.check_path(Some("/")));
    assert!(message.contains("rule path"), "{message}");
    assert!(message.contains("Tenancy web"), "{message}");
    forbidden(rules.check_path(Some("/rolecall/webshop/")));
}

#[test]
fn arn_paths_are_read_from_the_arn() {
    assert_eq!(arn_path("arn:aws:iam::1:role/admin"), "/");
    assert_eq!(
        arn_path("arn:aws:iam::1:role/rolecall/web/app"),
        "/rolecall/web/"
    );
    assert_eq!(arn_path("arn:aws:iam::1:instance-profile/a/b"), "/a/");
}

#[test]
fn names_carry_the_prefix() {
    let rules = web();
    rules.check_name("web-app", "role").unwrap();
    let message = forbidden(rules.check_name("admin", "role"));
    assert!(message.contains("rule namePrefix"), "{message}");
}

#[test]
fn the_boundary_is_applied_and_cannot_be_changed() {
    let rules = web();
    let boundary = "arn:aws:iam::123456789012:policy/rolecall/boundary";
    assert_eq!(
        rules.check_boundary(None).unwrap().as_deref(),
        Some(boundary)
    );
    assert_eq!(
        rules.check_boundary(Some(boundary)).unwrap().as_deref(),
        Some(boundary)
    );
    let message =
        forbidden(rules.check_boundary(Some("arn:aws:iam::aws:policy/AdministratorAccess")));
    assert!(message.contains("rule permissionsBoundary"), "{message}");
    assert_eq!(Rules::defaults("a").check_boundary(None).unwrap(), None);
}

#[test]
fn managed_policies_are_the_own_path_or_listed() {
    let rules = web();
    rules
        .check_managed_policy("arn:aws:iam::aws:policy/ReadOnlyAccess", PREFIX)
        .unwrap();
    rules
        .check_managed_policy(
            "arn:aws:iam::123456789012:policy/rolecall/web/reader",
            PREFIX,
        )
        .unwrap();
    let message = forbidden(
        rules.check_managed_policy("arn:aws:iam::aws:policy/AdministratorAccess", PREFIX),
    );
    assert!(message.contains("rule managedPolicies"), "{message}");
    forbidden(
        Rules::defaults("web")
            .check_managed_policy("arn:aws:iam::aws:policy/ReadOnlyAccess", PREFIX),
    );
}

#[test]
fn the_escalation_lint_flags_each_listed_grant() {
    let flagged = [
        json!({ "Action": "*", "Resource": "*" }),
        json!({ "Action": "*:*", "Resource": "arn:aws:s3:::b" }),
        json!({ "Action": "iam:*", "Resource": "arn:aws:iam::1:role/x" }),
        json!({ "Action": "iam:PassRole", "Resource": "*" }),
        json!({ "Action": "iam:Pass*", "Resource": "*" }),
        json!({ "Action": "sts:AssumeRole", "Resource": "*" }),
        json!({ "Action": "iam:CreateRole", "Resource": "*" }),
        json!({ "Action": "iam:Put*", "Resource": "*" }),
        json!({ "Action": "IAM:attachrolepolicy", "Resource": "*" }),
        json!({ "Action": "iam:*Policy", "Resource": "*" }),
        json!({ "Action": "s3:GetObject", "NotResource": "arn:aws:s3:::b/*" , "Effect": "Allow"}),
        json!({ "NotAction": "s3:*", "Resource": "*" }),
    ];
    for statement in flagged {
        let mut statement = statement;
        statement["Effect"] = json!("Allow");
        let doc = document(json!({ "Version": "2012-10-17", "Statement": [statement.clone()] }));
        let found = lint::escalations(&doc);
        // NotResource with a harmless action is broad, not an escalation.
        if statement.get("NotResource").is_some() {
            assert!(found.is_empty(), "{statement}: {found:?}");
            continue;
        }
        assert!(!found.is_empty(), "{statement} not flagged");
        let message = forbidden(Rules::defaults("a").check_permissions(&doc, "document"));
        assert!(
            message.contains("rule allowPrivilegeEscalation"),
            "{message}"
        );
    }
}

#[test]
fn the_escalation_lint_leaves_ordinary_grants_and_denies_alone() {
    let doc = document(json!({ "Version": "2012-10-17", "Statement": [
        { "Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*" },
        { "Effect": "Allow", "Action": "iam:PassRole", "Resource": "arn:aws:iam::1:role/rolecall/web/*" },
        { "Effect": "Allow", "Action": "iam:Get*", "Resource": "*" },
        { "Effect": "Deny", "Action": "*", "Resource": "*" },
    ] }));
    assert_eq!(lint::escalations(&doc), Vec::<String>::new());
    let rules = Rules::defaults("a");
    rules.check_permissions(&doc, "document").unwrap();
    let admin = document(json!({ "Version": "2012-10-17", "Statement": [
        { "Effect": "Allow", "Action": "*", "Resource": "*" },
    ] }));
    let mut allowed = web();
    allowed.spec.allow_privilege_escalation = true;
    allowed.check_permissions(&admin, "document").unwrap();
}

fn trust(principal: serde_json::Value) -> PolicyDocument {
    document(json!({ "Version": "2012-10-17", "Statement": [
        { "Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole" },
    ] }))
}

#[test]
fn trust_never_reaches_anyone() {
    let mut rules = web();
    rules.spec.trust.accounts = vec!["*".into()];
    for principal in [
        json!("*"),
        json!({ "AWS": "*" }),
        json!({ "AWS": ["123456789012", "*"] }),
    ] {
        let message = forbidden(rules.check_trust(&trust(principal.clone()), ACCOUNT));
        assert!(message.contains("anyone"), "{principal}: {message}");
    }
    let not_principal = document(json!({ "Version": "2012-10-17", "Statement": [
        { "Effect": "Allow", "NotPrincipal": { "AWS": "arn:aws:iam::123456789012:root" }, "Action": "sts:AssumeRole" },
    ] }));
    forbidden(rules.check_trust(&not_principal, ACCOUNT));
}

#[test]
fn trust_defaults_to_services_and_this_account() {
    let rules = Rules::defaults("a");
    for ok in [
        json!({ "Service": "lambda.amazonaws.com" }),
        json!({ "AWS": "arn:aws:iam::123456789012:root" }),
        json!({ "AWS": "123456789012" }),
        json!({ "AWS": "arn:aws:iam::123456789012:role/ci" }),
    ] {
        rules
            .check_trust(&trust(ok.clone()), ACCOUNT)
            .unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    let message = forbidden(rules.check_trust(
        &trust(json!({ "AWS": "arn:aws:iam::210987654321:root" })),
        ACCOUNT,
    ));
    assert!(message.contains("rule trust.accounts"), "{message}");
    assert!(message.contains("210987654321"), "{message}");
    let message = forbidden(rules.check_trust(
        &trust(json!({ "Federated": "arn:aws:iam::123456789012:oidc-provider/x" })),
        ACCOUNT,
    ));
    assert!(message.contains("rule trust.federated"), "{message}");
    forbidden(rules.check_trust(&trust(json!({ "AWS": "AROAEXAMPLEID" })), ACCOUNT));
    forbidden(rules.check_trust(&trust(json!({ "CanonicalUser": "abc" })), ACCOUNT));
}

#[test]
fn a_tenancy_widens_trust_to_what_it_lists() {
    let rules = web();
    rules
        .check_trust(
            &trust(json!({ "AWS": "arn:aws:iam::210987654321:root" })),
            ACCOUNT,
        )
        .unwrap();
    rules
        .check_trust(
            &trust(json!({ "Federated": "arn:aws:iam::123456789012:oidc-provider/eks" })),
            ACCOUNT,
        )
        .unwrap();
    let message = forbidden(rules.check_trust(
        &trust(json!({ "Service": "lambda.amazonaws.com" })),
        ACCOUNT,
    ));
    assert!(message.contains("rule trust.services"), "{message}");
}

#[test]
fn references_are_to_objects_managed_here_or_listed() {
    let rules = web();
    rules.check_role_reference("legacy-app", false).unwrap();
    rules.check_role_reference("web-app", true).unwrap();
    let message = forbidden(rules.check_role_reference("admin", false));
    assert!(message.contains("rule references.roles"), "{message}");
    rules.check_profile_reference("shared-1", false).unwrap();
    forbidden(rules.check_profile_reference("shared-10", false));
    forbidden(Rules::defaults("a").check_profile_reference("admin", false));
}

#[test]
fn adoption_is_only_of_listed_names() {
    let rules = web();
    assert!(rules.may_adopt(AwsKind::Role, "web-old-api"));
    assert!(!rules.may_adopt(AwsKind::Policy, "web-old-api"));
    let message = forbidden(rules.check_adoption(AwsKind::Role, "admin", "role admin"));
    assert!(message.contains("rule adopt"), "{message}");
    assert!(!Rules::defaults("a").may_adopt(AwsKind::Role, "anything"));
}

#[test]
fn instances_must_carry_the_tenancy_tags_and_defaults_bind_none() {
    let rules = web();
    rules
        .check_instance("i-1", &labels(&[("team", "web"), ("app", "x")]))
        .unwrap();
    let message = forbidden(rules.check_instance("i-2", &labels(&[("team", "db")])));
    assert!(
        message.contains("i-2") && message.contains("team=web"),
        "{message}"
    );
    let message = forbidden(Rules::defaults("a").check_instance("i-1", &BTreeMap::new()));
    assert!(message.contains("rule instances"), "{message}");
}
