//! The privilege-escalation lint: what an Allow statement grants that would let a tenant's
//! role reach beyond what the platform team granted (the set policy linters flag).

use crate::api::{Effect, PolicyDocument, Statement};
use crate::wildcard::wildcard_match;

/// IAM actions that let a principal widen its own or another principal's permissions when
/// allowed on any resource. `iam:Create*`, `iam:Put*` and `iam:Attach*` stand for the whole
/// families: a pattern matching any of these is flagged.
const WRITES_ON_ANY_RESOURCE: [&str; 14] = [
    "iam:createrole",
    "iam:createpolicy",
    "iam:createpolicyversion",
    "iam:createaccesskey",
    "iam:createloginprofile",
    "iam:createuser",
    "iam:putrolepolicy",
    "iam:putuserpolicy",
    "iam:putgrouppolicy",
    "iam:putrolepermissionsboundary",
    "iam:putuserpermissionsboundary",
    "iam:attachrolepolicy",
    "iam:attachuserpolicy",
    "iam:attachgrouppolicy",
];

/// The Allow statements of a document.
pub fn allows(document: &PolicyDocument) -> impl Iterator<Item = &Statement> {
    document
        .statement
        .iter()
        .filter(|statement| statement.effect == Effect::Allow)
}

/// What the document grants that the lint flags, in words, first finding first.
pub fn escalations(document: &PolicyDocument) -> Vec<String> {
    let mut found = Vec::new();
    for statement in allows(document) {
        if statement.not_action.is_some() {
            found.push("an Allow with NotAction (everything it does not name)".to_owned());
            continue;
        }
        let any_resource = statement.not_resource.is_some()
            || statement
                .resource
                .as_ref()
                .is_some_and(|resource| resource.values().iter().any(|r| r == "*"));
        let actions = statement
            .action
            .as_ref()
            .map(|a| a.values())
            .unwrap_or_default();
        for action in actions {
            if let Some(finding) = flag(&action.to_ascii_lowercase(), any_resource) {
                found.push(format!("{finding} ({action})"));
            }
        }
    }
    found
}

fn flag(action: &str, any_resource: bool) -> Option<&'static str> {
    let (service, name) = action.split_once(':').unwrap_or((action, ""));
    if action == "*" || (service == "*" && name.chars().all(|c| c == '*')) {
        return Some("every action");
    }
    let iam = wildcard_match(service, "iam");
    if iam && name.chars().all(|c| c == '*') {
        return Some("every IAM action");
    }
    if !any_resource {
        return None;
    }
    let matches = |target: &str| wildcard_match(action, target);
    if matches("iam:passrole") {
        return Some("iam:PassRole on any resource");
    }
    if matches("sts:assumerole") {
        return Some("sts:AssumeRole on any resource");
    }
    if WRITES_ON_ANY_RESOURCE.iter().any(|target| matches(target)) {
        return Some("IAM writes (Create*, Put*, Attach*) on any resource");
    }
    None
}
