//! `AccountPasswordPolicy`: observe the account's password policy, plan the difference, apply
//! it. An account has one policy and IAM cannot tag it, so one object owns it: the oldest in
//! the cluster for that account; any other is a Conflict and writes nothing.

use kube::{Resource, ResourceExt};

use super::Managed;
use crate::api::{
    AccountPasswordPolicy, AccountPasswordPolicySpec, AccountPasswordPolicyStatus, DeletionPolicy,
};
use crate::aws::iam::account::PasswordPolicy;
use crate::context::Context;
use crate::error::Error;
use crate::tenancy::Rules;

/// The one write: UpdateAccountPasswordPolicy sets every field at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PasswordPolicyAction {
    UpdatePasswordPolicy,
}

pub type Plan = super::Plan<PasswordPolicyAction, AccountPasswordPolicyStatus>;

/// The spec in IAM's terms (a reuse prevention of 0 is IAM's "not set").
pub fn desired(spec: &AccountPasswordPolicySpec) -> PasswordPolicy {
    PasswordPolicy {
        minimum_length: Some(spec.minimum_password_length),
        reuse_prevention: Some(spec.password_reuse_prevention).filter(|n| *n > 0),
        require_symbols: spec.require_symbols,
        require_numbers: spec.require_numbers,
        require_uppercase: spec.require_uppercase_characters,
        require_lowercase: spec.require_lowercase_characters,
        allow_users_to_change_password: spec.allow_users_to_change_password,
        max_password_age: spec.max_password_age,
        // IAM keeps hard expiry only with an expiry.
        hard_expiry: spec.hard_expiry && spec.max_password_age.is_some(),
    }
}

/// Pure: one update when IAM's policy is missing or differs in any field.
pub fn plan(desired: &PasswordPolicy, observed: Option<&PasswordPolicy>) -> Plan {
    let (actions, message) = match observed {
        Some(observed) if observed == desired => (vec![], "password policy matches the spec"),
        Some(_) => (
            vec![PasswordPolicyAction::UpdatePasswordPolicy],
            "password policy updated to the spec",
        ),
        None => (
            vec![PasswordPolicyAction::UpdatePasswordPolicy],
            "password policy set",
        ),
    };
    Plan::available(actions, AccountPasswordPolicyStatus::default(), message)
}

/// The object that owns the policy of `object`'s account: the oldest for that account (then
/// first by name), so a second one can never take it over; it stays the owner while it is
/// being deleted.
fn owner(
    ctx: &Context,
    object: &AccountPasswordPolicy,
) -> Option<std::sync::Arc<AccountPasswordPolicy>> {
    ctx.stores
        .password_policies
        .all()
        .filter(|other| other.spec.account == object.spec.account)
        .min_by_key(|object| (object.meta().creation_timestamp.clone(), object.name_any()))
}

impl Managed for AccountPasswordPolicy {
    type Status = AccountPasswordPolicyStatus;
    type Desired = PasswordPolicy;
    type Observed = Option<PasswordPolicy>;
    type Action = PasswordPolicyAction;

    fn status_mut(status: &mut Self::Status) -> &mut crate::api::CommonStatus {
        &mut status.common
    }

    fn current_status(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }

    fn deletion_policy(&self) -> DeletionPolicy {
        self.spec.deletion_policy
    }

    fn api(client: kube::Client, _namespace: &str) -> kube::Api<Self> {
        kube::Api::all(client)
    }

    fn rules(&self, _ctx: &Context) -> Result<Rules, Error> {
        let mut rules = Rules::platform();
        rules.spec.account = self.spec.account.clone();
        Ok(rules)
    }

    fn admit(&self, _rules: &Rules, ctx: &Context) -> Result<(), Error> {
        match owner(ctx, self) {
            Some(owner) if owner.uid() != self.uid() => Err(Error::Conflict(format!(
                "the account's password policy belongs to AccountPasswordPolicy {}; an account has one \
                 password policy, so one object in one cluster owns it",
                owner.name_any()
            ))),
            _ => Ok(()),
        }
    }

    fn desired(&self, _ctx: &Context, _rules: &Rules) -> Result<PasswordPolicy, Error> {
        Ok(desired(&self.spec))
    }

    async fn observe(
        &self,
        ctx: &Context,
        _rules: &Rules,
        _desired: &PasswordPolicy,
    ) -> Result<Option<PasswordPolicy>, Error> {
        Ok(ctx.iam.password_policy().await?)
    }

    fn plan(&self, desired: &PasswordPolicy, observed: &Option<PasswordPolicy>) -> Plan {
        plan(desired, observed.as_ref())
    }

    async fn apply(
        &self,
        ctx: &Context,
        desired: &PasswordPolicy,
        action: &PasswordPolicyAction,
        _status: &mut AccountPasswordPolicyStatus,
    ) -> Result<String, Error> {
        match action {
            PasswordPolicyAction::UpdatePasswordPolicy => {
                ctx.iam.update_password_policy(desired).await?;
                Ok(format!(
                    "set the account's password policy: at least {} characters, {}",
                    desired.minimum_length.unwrap_or_default(),
                    match desired.reuse_prevention {
                        Some(n) => format!("the last {n} passwords not reused"),
                        None => "reuse allowed".into(),
                    }
                ))
            }
        }
    }

    async fn cleanup(&self, ctx: &Context) -> Result<(), Error> {
        // Only the owner removes the account's policy; a refused second object leaves it.
        if owner(ctx, self).is_some_and(|owner| owner.uid() != self.uid()) {
            return Ok(());
        }
        let refused = self.status.as_ref().is_some_and(|status| {
            status.common.conditions.iter().any(|c| {
                c.type_ == crate::conditions::READY
                    && c.reason == crate::conditions::reason::CONFLICT
            })
        });
        if refused {
            return Ok(());
        }
        ctx.iam.delete_password_policy().await?;
        ctx.event(
            self,
            false,
            "Deleted",
            "Delete",
            "deleted the account's password policy".into(),
        )
        .await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(value: serde_json::Value) -> AccountPasswordPolicySpec {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn the_defaults_meet_cis() {
        let policy = desired(&spec(serde_json::json!({})));
        assert_eq!(policy.minimum_length, Some(14));
        assert_eq!(policy.reuse_prevention, Some(24));
        assert!(policy.require_symbols && policy.require_numbers);
        assert!(policy.require_uppercase && policy.require_lowercase);
        assert!(policy.allow_users_to_change_password);
        assert_eq!(policy.max_password_age, None);
        assert!(!policy.hard_expiry);
    }

    #[test]
    fn a_missing_or_different_policy_is_written_once_and_a_matching_one_not_at_all() {
        let wanted = desired(&spec(serde_json::json!({})));
        assert_eq!(
            plan(&wanted, None).actions,
            vec![PasswordPolicyAction::UpdatePasswordPolicy]
        );
        assert!(plan(&wanted, Some(&wanted)).actions.is_empty());
        let weaker = PasswordPolicy {
            minimum_length: Some(8),
            ..wanted.clone()
        };
        assert_eq!(plan(&wanted, Some(&weaker)).actions.len(), 1);
    }

    #[test]
    fn reuse_zero_and_hard_expiry_without_expiry_mean_not_set() {
        let policy = desired(&spec(
            serde_json::json!({ "passwordReusePrevention": 0, "hardExpiry": true }),
        ));
        assert_eq!(policy.reuse_prevention, None);
        assert!(!policy.hard_expiry);
    }
}
