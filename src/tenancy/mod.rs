//! The rules a namespace's objects obey: its `Tenancy` (or the safe defaults when none
//! selects it), and the checks each kind runs against them before any AWS write.

pub mod lint;

use std::collections::BTreeMap;

use kube::core::{Selector, SelectorExt};

use crate::api::tenancy::{DEFAULT_PATH_ROOT, InstanceRules, Tenancy, TenancySpec};
use crate::api::{PolicyDocument, Principal};
use crate::error::Error;
use crate::wildcard::wildcard_match;

/// The rules in force for one namespace.
#[derive(Clone, Debug, PartialEq)]
pub struct Rules {
    /// Who set them, as messages name it.
    pub source: String,
    /// The IAM path everything of the namespace lives under, ending in `/`.
    pub path: String,
    pub spec: TenancySpec,
}

/// Which kind of AWS object a rule is about, for adoption.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AwsKind {
    Role,
    Policy,
    InstanceProfile,
    Group,
    User,
}

impl Rules {
    /// The rules of `namespace`, whose labels are `labels`: the one Tenancy selecting it, or
    /// the defaults. Two Tenancies selecting one namespace allow it nothing: neither can be
    /// said to be the platform team's intent.
    pub fn for_namespace<'a>(
        namespace: &str,
        labels: &BTreeMap<String, String>,
        tenancies: impl IntoIterator<Item = &'a Tenancy>,
    ) -> Result<Self, Error> {
        let mut selecting: Vec<&Tenancy> = tenancies
            .into_iter()
            .filter(|tenancy| selects(tenancy, labels))
            .collect();
        selecting.sort_by_key(|tenancy| tenancy.metadata.name.clone());
        match selecting.as_slice() {
            [] => Ok(Self::defaults(namespace)),
            [tenancy] => {
                let name = tenancy.metadata.name.clone().unwrap_or_default();
                Ok(Self {
                    source: format!("Tenancy {name}"),
                    path: tenancy
                        .spec
                        .path
                        .clone()
                        .unwrap_or_else(|| default_path(namespace)),
                    spec: tenancy.spec.clone(),
                })
            }
            several => {
                let names: Vec<String> = several
                    .iter()
                    .map(|tenancy| tenancy.metadata.name.clone().unwrap_or_default())
                    .collect();
                Err(Error::Forbidden(format!(
                    "namespace {namespace} is selected by Tenancies {}; rolecall acts for a \
                     namespace only when exactly one Tenancy selects it",
                    names.join(", ")
                )))
            }
        }
    }

    /// What a namespace no Tenancy selects may do: an empty spec is the safe defaults.
    pub fn defaults(namespace: &str) -> Self {
        Self {
            source: format!("the default rules (no Tenancy selects namespace {namespace})"),
            path: default_path(namespace),
            spec: TenancySpec::default(),
        }
    }

    /// The rules of a cluster-scoped object: only the platform team can write one, so no
    /// Tenancy applies; it acts in the operator's own account.
    pub fn platform() -> Self {
        Self {
            source: "the platform (a cluster-scoped object)".into(),
            path: "/".into(),
            spec: TenancySpec::default(),
        }
    }

    /// The IAM ARN prefix and id of the account the namespace lives in: its Tenancy's, or
    /// the operator's own (from `ctx`).
    pub fn account(&self, ctx: &crate::context::Context) -> (String, String) {
        match &self.spec.account {
            Some(access) => (access.iam_arn_prefix(), access.account_id().to_owned()),
            None => (ctx.iam_arn_prefix.clone(), ctx.account().to_owned()),
        }
    }

    /// The refusal of `rule`, naming who set it.
    pub fn refuse(&self, rule: &str, detail: impl std::fmt::Display) -> Error {
        Error::Forbidden(format!(
            "forbidden by {} (rule {rule}): {detail}",
            self.source
        ))
    }

    /// The IAM path to use: the spec's, which must lie under the namespace's path, or the
    /// namespace's path itself.
    pub fn check_path(&self, spec_path: Option<&str>) -> Result<String, Error> {
        match spec_path {
            None => Ok(self.path.clone()),
            Some(path) if path.starts_with(&self.path) => Ok(path.to_owned()),
            Some(path) => {
                Err(self.refuse("path", format!("path {path} is not under {}", self.path)))
            }
        }
    }

    /// An existing object's ARN (`...:role/<path><name>`) lies under the namespace's path.
    pub fn check_arn_path(&self, arn: &str, what: &str) -> Result<(), Error> {
        let path = arn_path(arn);
        if path.starts_with(&self.path) {
            return Ok(());
        }
        Err(self.refuse(
            "path",
            format!("{what} exists at path {path}, not under {}", self.path),
        ))
    }

    pub fn check_name(&self, name: &str, what: &str) -> Result<(), Error> {
        match &self.spec.name_prefix {
            Some(prefix) if !name.starts_with(prefix.as_str()) => Err(self.refuse(
                "namePrefix",
                format!("{what} name {name} does not start with {prefix}"),
            )),
            _ => Ok(()),
        }
    }

    /// The boundary a role carries: the Tenancy's, which the spec may repeat but not change.
    pub fn check_boundary(&self, spec_boundary: Option<&str>) -> Result<Option<String>, Error> {
        match (&self.spec.permissions_boundary, spec_boundary) {
            (None, spec) => Ok(spec.map(str::to_owned)),
            (Some(required), None) => Ok(Some(required.clone())),
            (Some(required), Some(spec)) if spec == required => Ok(Some(required.clone())),
            (Some(required), Some(spec)) => Err(self.refuse(
                "permissionsBoundary",
                format!("roles and users carry the boundary {required}, not {spec}"),
            )),
        }
    }

    /// A managed policy a role attaches by ARN: one on the namespace's own path, or one the
    /// Tenancy lists. `iam_arn_prefix` is `arn:<partition>:iam::<account>:`.
    pub fn check_managed_policy(&self, arn: &str, iam_arn_prefix: &str) -> Result<(), Error> {
        let own = format!("{iam_arn_prefix}policy{}", self.path);
        if arn.starts_with(&own) || self.spec.managed_policies.iter().any(|g| glob(g, arn)) {
            return Ok(());
        }
        Err(self.refuse(
            "managedPolicies",
            format!(
                "{arn} is neither on this namespace's path ({own}*) nor among the allowed managed policies"
            ),
        ))
    }

    /// A permissions document (an IamPolicy's, or a role's inline policy) grants nothing the
    /// privilege-escalation lint flags, unless the Tenancy allows it.
    pub fn check_permissions(&self, document: &PolicyDocument, field: &str) -> Result<(), Error> {
        if self.spec.allow_privilege_escalation {
            return Ok(());
        }
        match lint::escalations(document).first() {
            None => Ok(()),
            Some(finding) => Err(self.refuse(
                "allowPrivilegeEscalation",
                format!("{field} grants {finding}"),
            )),
        }
    }

    /// A trust policy names only principals the Tenancy allows; `account` is the operator's
    /// own account, which is always allowed.
    pub fn check_trust(&self, document: &PolicyDocument, account: &str) -> Result<(), Error> {
        let trust = &self.spec.trust;
        for statement in lint::allows(document) {
            if statement.not_principal.is_some() {
                return Err(self.refuse(
                    "trust",
                    "an Allow with NotPrincipal trusts everyone it does not name",
                ));
            }
            let typed = match &statement.principal {
                None => continue,
                Some(Principal::Typed(typed)) => typed,
                Some(_) => {
                    return Err(self.refuse("trust", "the principal \"*\" trusts anyone"));
                }
            };
            for (kind, values) in typed {
                for value in values.values() {
                    self.check_principal(kind, value, account, trust)?;
                }
            }
        }
        Ok(())
    }

    fn check_principal(
        &self,
        kind: &str,
        value: &str,
        account: &str,
        trust: &crate::api::tenancy::TrustRules,
    ) -> Result<(), Error> {
        if value == "*" {
            return Err(self.refuse("trust", format!("{kind} \"*\" trusts anyone")));
        }
        match kind {
            "Service" => {
                let allowed = match &trust.services {
                    None => true,
                    Some(globs) => globs.iter().any(|g| glob(g, value)),
                };
                if allowed {
                    return Ok(());
                }
                Err(self.refuse(
                    "trust.services",
                    format!("service {value} is not among the allowed services"),
                ))
            }
            "AWS" => match principal_account(value) {
                Some(found) if found == account || trust.accounts.iter().any(|a| a == found) => {
                    Ok(())
                }
                Some(found) => Err(self.refuse(
                    "trust.accounts",
                    format!("{value} is in account {found}, which this namespace may not trust"),
                )),
                None => Err(self.refuse(
                    "trust.accounts",
                    format!("{value} is not an account id or ARN whose account can be checked"),
                )),
            },
            "Federated" => {
                if trust.federated.iter().any(|g| glob(g, value)) {
                    return Ok(());
                }
                Err(self.refuse(
                    "trust.federated",
                    format!("federated principal {value} is not among the allowed providers"),
                ))
            }
            other => Err(self.refuse(
                "trust",
                format!("{other} principals cannot be trusted through rolecall"),
            )),
        }
    }

    /// An IAM role named by `roleName`: allowed when a role of this namespace manages it
    /// (`managed_here`) or the Tenancy lists it.
    pub fn check_role_reference(&self, name: &str, managed_here: bool) -> Result<(), Error> {
        if managed_here || self.spec.references.roles.iter().any(|g| glob(g, name)) {
            return Ok(());
        }
        Err(self.refuse(
            "references.roles",
            format!(
                "role {name} is not managed in this namespace and not among the roles it may reference"
            ),
        ))
    }

    /// An instance profile named by `instanceProfileName`, likewise.
    pub fn check_profile_reference(&self, name: &str, managed_here: bool) -> Result<(), Error> {
        if managed_here
            || self
                .spec
                .references
                .instance_profiles
                .iter()
                .any(|g| glob(g, name))
        {
            return Ok(());
        }
        Err(self.refuse(
            "references.instanceProfiles",
            format!(
                "instance profile {name} is not managed in this namespace and not among the profiles it may reference"
            ),
        ))
    }

    /// An IAM group named by `groupNames`: allowed when the Tenancy lists it.
    pub fn check_group_reference(&self, name: &str) -> Result<(), Error> {
        if self.spec.references.groups.iter().any(|g| glob(g, name)) {
            return Ok(());
        }
        Err(self.refuse(
            "references.groups",
            format!(
                "group {name} is not managed in this namespace and not among the groups it may join"
            ),
        ))
    }

    /// Whether an untagged AWS object of `kind` named `name` may be adopted.
    pub fn may_adopt(&self, kind: AwsKind, name: &str) -> bool {
        let adopt = &self.spec.adopt;
        let globs = match kind {
            AwsKind::Role => &adopt.roles,
            AwsKind::Policy => &adopt.policies,
            AwsKind::InstanceProfile => &adopt.instance_profiles,
            AwsKind::Group => &adopt.groups,
            AwsKind::User => &adopt.users,
        };
        globs.iter().any(|g| glob(g, name))
    }

    /// Refuses adoption the rules do not allow; `requested` is the adopt annotation.
    pub fn check_adoption(&self, kind: AwsKind, name: &str, what: &str) -> Result<(), Error> {
        if self.may_adopt(kind, name) {
            return Ok(());
        }
        let found = match kind {
            // IAM groups carry no tags: what marks one as rolecall's is the id in status.
            AwsKind::Group => "exists and was not created by this object",
            _ => "exists without a rolecall owner tag",
        };
        Err(self.refuse(
            "adopt",
            format!("{what} {found} and may not be adopted here"),
        ))
    }

    /// The instance rules, or the refusal when the namespace may bind no instance.
    pub fn instances(&self) -> Result<&InstanceRules, Error> {
        self.spec
            .instances
            .as_ref()
            .ok_or_else(|| self.refuse("instances", "this namespace may not bind EC2 instances"))
    }

    /// Refuses the first instance (id, tags) the instance rules do not allow.
    pub fn check_instance(
        &self,
        instance_id: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), Error> {
        let rules = self.instances()?;
        let allowed = rules.match_tags.iter().all(|(key, pattern)| {
            tags.get(key)
                .is_some_and(|value| wildcard_match(pattern, value))
        });
        if allowed {
            return Ok(());
        }
        let wanted: Vec<String> = rules
            .match_tags
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        Err(self.refuse(
            "instances",
            format!(
                "instance {instance_id} does not carry the tags {}",
                wanted.join(", ")
            ),
        ))
    }
}

/// `/rolecall/<namespace>/`.
pub fn default_path(namespace: &str) -> String {
    format!("{DEFAULT_PATH_ROOT}{namespace}/")
}

fn selects(tenancy: &Tenancy, labels: &BTreeMap<String, String>) -> bool {
    match Selector::try_from(tenancy.spec.namespace_selector.clone()) {
        Ok(selector) => selector.matches(labels),
        // An unparsable selector grants nothing.
        Err(error) => {
            tracing::warn!(tenancy = ?tenancy.metadata.name, %error, "invalid namespaceSelector");
            false
        }
    }
}

/// Globs as IAM writes them: `*` and `?`, case-sensitive.
pub fn glob(pattern: &str, value: &str) -> bool {
    wildcard_match(pattern, value)
}

/// The path part of an IAM ARN: `arn:aws:iam::1:role/a/b/name` → `/a/b/`.
pub fn arn_path(arn: &str) -> String {
    let resource = arn.splitn(6, ':').nth(5).unwrap_or_default();
    let after_type = resource.split_once('/').map_or("", |(_, rest)| rest);
    match after_type.rfind('/') {
        Some(end) => format!("/{}", &after_type[..=end]),
        None => "/".into(),
    }
}

/// The account of an `AWS` principal: a bare account id, or an IAM or STS ARN.
fn principal_account(value: &str) -> Option<&str> {
    let is_account = |s: &str| s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit());
    if is_account(value) {
        return Some(value);
    }
    let parts: Vec<&str> = value.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", _, "iam" | "sts", "", account, _] if is_account(account) => Some(account),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
