//! Bulk drift checks: a converged object's periodic check compared against one account
//! snapshot (GetAccountAuthorizationDetails and ListRoles, shared by every object of the
//! account and read at most once per resync period) instead of its own reads. Only an
//! object the snapshot fully answers for, in a snapshot read after this process last
//! reconciled it with its own reads, is checked this way; any difference, and anything the
//! snapshot cannot vouch for, takes the per-object path, whose reads decide.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::{Resource, ResourceExt};

use super::{Converged, Managed, kind_name};
use crate::api::CommonStatus;
use crate::api::tenancy::DEFAULT_PATH_ROOT;
use crate::aws::iam::snapshot::{AccountSnapshot, covering_prefixes};
use crate::conditions::READY;
use crate::context::Context;
use crate::tenancy::Rules;

/// After a failed snapshot read, drift checks use their own reads for this long (or the
/// resync period, if shorter) before the snapshot is tried again.
const RETRY_FAILED_SNAPSHOT: Duration = Duration::from_secs(60);

/// An account's snapshot, fetched on demand by the first drift check that finds it missing
/// or older than the resync period; concurrent checks wait for that one read.
#[derive(Default)]
pub struct SnapshotCell {
    slot: tokio::sync::Mutex<Option<Fetch>>,
}

enum Fetch {
    Read {
        snapshot: Arc<AccountSnapshot>,
        /// When the read began: anything written before then is in it.
        started: Instant,
    },
    Failed {
        at: Instant,
    },
}

/// A snapshot and the instant its read began.
pub type Taken = (Arc<AccountSnapshot>, Instant);

impl SnapshotCell {
    /// The account's snapshot, read now if there is none younger than the resync period;
    /// `None` while reading it fails.
    pub async fn get(&self, ctx: &Context) -> Option<Taken> {
        let period = ctx.settings.resync;
        let mut slot = self.slot.lock().await;
        match &*slot {
            Some(Fetch::Read { snapshot, started }) if started.elapsed() < period => {
                return Some((snapshot.clone(), *started));
            }
            Some(Fetch::Failed { at }) if at.elapsed() < period.min(RETRY_FAILED_SNAPSHOT) => {
                return None;
            }
            _ => {}
        }
        let started = Instant::now();
        match ctx.iam.account_snapshot(&prefixes(ctx)).await {
            Ok(snapshot) => {
                tracing::debug!(
                    roles = snapshot.roles.len(),
                    policies = snapshot.policies.len(),
                    took = ?started.elapsed(),
                    "read the account snapshot"
                );
                let snapshot = Arc::new(snapshot);
                *slot = Some(Fetch::Read {
                    snapshot: snapshot.clone(),
                    started,
                });
                Some((snapshot, started))
            }
            Err(error) => {
                tracing::warn!(%error, "could not read the account snapshot: drift checks read each object instead");
                *slot = Some(Fetch::Failed { at: Instant::now() });
                None
            }
        }
    }
}

/// The IAM paths rolecall's objects live under: `/rolecall/` and every Tenancy's path.
fn prefixes(ctx: &Context) -> Vec<String> {
    let tenancies = ctx.stores.tenancies.state();
    covering_prefixes(
        std::iter::once(DEFAULT_PATH_ROOT.to_owned())
            .chain(tenancies.iter().filter_map(|t| t.spec.path.clone())),
    )
}

/// This process's last reconcile of each object with its own reads.
#[derive(Default)]
pub struct Converges(Mutex<HashMap<String, Converge>>);

#[derive(Clone, Copy, Debug)]
struct Converge {
    at: Instant,
    /// The object's annotations then: touching one asks for a real look.
    annotations: u64,
}

impl Converges {
    pub fn record<K: Resource>(&self, key: &str, object: &K) {
        let converge = Converge {
            at: Instant::now(),
            annotations: annotations_hash(object),
        };
        self.0
            .lock()
            .expect("converges lock")
            .insert(key.to_owned(), converge);
    }

    pub fn forget(&self, key: &str) {
        self.0.lock().expect("converges lock").remove(key);
    }

    fn get(&self, key: &str) -> Option<Converge> {
        self.0.lock().expect("converges lock").get(key).copied()
    }
}

fn annotations_hash<K: Resource>(object: &K) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    object.annotations().hash(&mut hasher);
    hasher.finish()
}

/// What a bulk check found.
pub enum Verdict<S> {
    /// AWS matches the spec and the status: nothing to read or write.
    InSync(Converged<S>),
    /// The snapshot differs from the spec or the status: the per-object path decides.
    Drift,
    /// The snapshot cannot vouch for the object (none, failed, older than its last
    /// reconcile, outside its paths, a kind or field it lacks): the per-object path.
    Unusable,
}

impl<S> Verdict<S> {
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::InSync(_) => "in_sync",
            Verdict::Drift => "drift",
            Verdict::Unusable => "per_object",
        }
    }
}

/// A converged object's drift check against the account snapshot.
pub async fn check<K: Managed>(
    object: &K,
    ctx: &Context,
    rules: &Rules,
    desired: &K::Desired,
    key: &str,
) -> Verdict<K::Status> {
    let Some(last) = ctx.converges.get(key) else {
        return Verdict::Unusable;
    };
    if last.annotations != annotations_hash(object) {
        return Verdict::Unusable;
    }
    if let Some(periods) = K::FULL_READ_EVERY
        && last.at.elapsed() >= ctx.settings.resync.saturating_mul(periods)
    {
        return Verdict::Unusable;
    }
    let Some((snapshot, started)) = ctx.snapshot.get(ctx).await else {
        return Verdict::Unusable;
    };
    if started <= last.at {
        return Verdict::Unusable;
    }
    let Some(observed) = object.observe_bulk(&snapshot, desired) else {
        return Verdict::Unusable;
    };
    if object.claim(ctx, rules, desired, &observed).is_err() {
        return Verdict::Drift;
    }
    let plan = object.plan(desired, &observed);
    if !plan.actions.is_empty() || plan.retry_soon {
        return Verdict::Drift;
    }
    let Some(current) = object.current_status() else {
        return Verdict::Drift;
    };
    if !same_status::<K>(current, &plan.status) || !same_ready::<K>(current, &plan.readiness) {
        return Verdict::Drift;
    }
    Verdict::InSync(Converged {
        status: plan.status,
        readiness: plan.readiness,
        retry_soon: false,
    })
}

/// The kind's own status fields equal (the common ones are the driver's).
fn same_status<K: Managed>(current: &K::Status, planned: &K::Status) -> bool {
    let (mut current, mut planned) = (current.clone(), planned.clone());
    *K::status_mut(&mut current) = CommonStatus::default();
    *K::status_mut(&mut planned) = CommonStatus::default();
    current == planned
}

fn same_ready<K: Managed>(current: &K::Status, readiness: &crate::conditions::Readiness) -> bool {
    let mut current = current.clone();
    K::status_mut(&mut current)
        .conditions
        .iter()
        .find(|condition| condition.type_ == READY)
        .is_some_and(|condition| {
            (condition.status == "True") == readiness.ready
                && condition.reason == readiness.reason
                && condition.message == readiness.message
        })
}

/// Counts one drift check by how it was answered.
pub fn count<K: Managed>(ctx: &Context, verdict: &'static str) {
    ctx.telemetry
        .metrics
        .drift_checked(kind_name::<K>(), verdict);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::api::{IamPolicy, IamRole};
    use crate::aws::iam::snapshot::{SnapshotPolicy, SnapshotRole};
    use crate::aws::iam::{ObservedPolicy, ObservedRole};
    use crate::controllers::policy::PolicyAction;
    use crate::controllers::role::RoleAction;
    use crate::controllers::{policy, role};

    const OWNER: &str = "c/ns/web";
    const POLICY_ARN: &str = "arn:aws:iam::123456789012:policy/rolecall/ns/p";

    fn role_object() -> IamRole {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "iam.rolecall.dev/v1alpha1", "kind": "IamRole",
            "metadata": { "name": "web", "namespace": "ns" },
            "spec": {
                "path": "/rolecall/ns/", "description": "web fleet",
                "trustedServices": ["ec2.amazonaws.com"],
                "managedPolicyArns": [POLICY_ARN],
                "inlinePolicies": { "logs": { "Version": "2012-10-17", "Statement": [{ "Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": "*" }] } },
            },
        }))
        .unwrap()
    }

    fn policy_object() -> IamPolicy {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "iam.rolecall.dev/v1alpha1", "kind": "IamPolicy",
            "metadata": { "name": "p", "namespace": "ns" },
            "spec": { "path": "/rolecall/ns/", "document": { "Version": "2012-10-17", "Statement": [{ "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*" }] } },
        }))
        .unwrap()
    }

    fn percent_encode(text: &str) -> String {
        text.bytes()
            .map(|byte| match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (byte as char).to_string()
                }
                _ => format!("%{byte:02X}"),
            })
            .collect()
    }

    /// The account as GetAccountAuthorizationDetails and ListRoles describe it when it
    /// matches both objects: documents reordered and URL-encoded, as IAM answers.
    fn matching_snapshot(role: &role::Desired, policy: &policy::Desired) -> AccountSnapshot {
        let trust = r#"{"Statement":[{"Action":"sts:AssumeRole","Principal":{"Service":"ec2.amazonaws.com"},"Effect":"Allow"}],"Version":"2012-10-17"}"#;
        let inline = r#"{"Version":"2012-10-17","Statement":{"Resource":"*","Action":["logs:PutLogEvents"],"Effect":"Allow"}}"#;
        let document = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:getobject","Resource":["*"]}]}"#;
        AccountSnapshot {
            prefixes: vec!["/rolecall/".into()],
            roles: [(
                role.name.clone(),
                SnapshotRole {
                    role: ObservedRole {
                        arn: format!("arn:aws:iam::123456789012:role/rolecall/ns/{}", role.name),
                        role_id: "AROA1".into(),
                        assume_role_policy: percent_encode(trust),
                        description: Some("web fleet".into()),
                        max_session_duration: 3600,
                        permissions_boundary: None,
                        tags: role.tags.clone(),
                    },
                    attached: [POLICY_ARN.to_owned()].into(),
                    inline: [("logs".to_owned(), percent_encode(inline))].into(),
                },
            )]
            .into(),
            policies: [(
                policy.arn.clone(),
                SnapshotPolicy {
                    policy: ObservedPolicy {
                        arn: policy.arn.clone(),
                        policy_id: "ANPA1".into(),
                        default_version_id: "v1".into(),
                        description: None,
                        tags: Default::default(),
                    },
                    document: percent_encode(document),
                },
            )]
            .into(),
        }
    }

    fn desired() -> (IamRole, role::Desired, IamPolicy, policy::Desired) {
        let role_object = role_object();
        let mut role = role::desired(&role_object, OWNER, BTreeSet::new()).unwrap();
        role.path = "/rolecall/ns/".into();
        let policy_object = policy_object();
        let policy = policy::desired(
            &policy_object,
            OWNER,
            "arn:aws:iam::123456789012:",
            "/rolecall/ns/",
        )
        .unwrap();
        assert_eq!(policy.arn, POLICY_ARN);
        (role_object, role, policy_object, policy)
    }

    fn role_actions(
        object: &IamRole,
        desired: &role::Desired,
        snapshot: &AccountSnapshot,
    ) -> Vec<RoleAction> {
        let observed = object.observe_bulk(snapshot, desired).expect("covered");
        object.plan(desired, &observed).actions
    }

    fn policy_actions(
        object: &IamPolicy,
        desired: &policy::Desired,
        snapshot: &AccountSnapshot,
    ) -> Vec<PolicyAction> {
        let observed = object.observe_bulk(snapshot, desired).expect("covered");
        object.plan(desired, &observed).actions
    }

    #[test]
    fn a_snapshot_matching_by_meaning_plans_nothing() {
        let (role_object, role, policy_object, policy) = desired();
        let snapshot = matching_snapshot(&role, &policy);
        assert_eq!(role_actions(&role_object, &role, &snapshot), vec![]);
        assert_eq!(policy_actions(&policy_object, &policy, &snapshot), vec![]);
    }

    #[test]
    fn every_role_field_the_snapshot_holds_is_compared() {
        let (object, desired, _, policy) = desired();
        let base = matching_snapshot(&desired, &policy);
        let name = desired.name.clone();
        let changed = |change: &dyn Fn(&mut SnapshotRole)| {
            let mut snapshot = base.clone();
            change(snapshot.roles.get_mut(&name).unwrap());
            role_actions(&object, &desired, &snapshot)
        };
        assert_eq!(
            changed(&|r| r.attached.clear()),
            vec![RoleAction::AttachPolicy {
                arn: POLICY_ARN.into()
            }]
        );
        assert_eq!(
            changed(&|r| r.role.assume_role_policy = percent_encode(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#
            )),
            vec![RoleAction::UpdateTrustPolicy]
        );
        assert_eq!(
            changed(&|r| r.role.description = Some("tampered".into())),
            vec![RoleAction::UpdateRole {
                description: "web fleet".into(),
                max_session_duration: 3600
            }]
        );
        assert_eq!(
            changed(&|r| r.role.max_session_duration = 7200),
            vec![RoleAction::UpdateRole {
                description: "web fleet".into(),
                max_session_duration: 3600
            }]
        );
        assert_eq!(
            changed(&|r| r.role.permissions_boundary = Some(POLICY_ARN.into())),
            vec![RoleAction::DeletePermissionsBoundary]
        );
        assert_eq!(
            changed(&|r| {
                r.inline.insert("extra".into(), "%7B%7D".into());
            }),
            vec![RoleAction::DeleteInlinePolicy {
                name: "extra".into()
            }]
        );
        assert_eq!(
            changed(&|r| {
                r.role.tags.insert("team".into(), "x".into());
            }),
            vec![RoleAction::Untag {
                keys: vec!["team".into()]
            }]
        );
    }

    #[test]
    fn a_role_missing_from_a_snapshot_covering_its_path_is_drift() {
        let (object, desired, _, policy) = desired();
        let mut snapshot = matching_snapshot(&desired, &policy);
        snapshot.roles.clear();
        let actions = role_actions(&object, &desired, &snapshot);
        assert_eq!(actions.first(), Some(&RoleAction::Create), "{actions:?}");
    }

    #[test]
    fn a_path_outside_the_snapshot_is_left_to_the_per_object_path() {
        let (role_object, role, policy_object, policy) = desired();
        let mut snapshot = matching_snapshot(&role, &policy);
        snapshot.prefixes = vec!["/other/".into()];
        assert!(role_object.observe_bulk(&snapshot, &role).is_none());
        assert!(policy_object.observe_bulk(&snapshot, &policy).is_none());
    }

    #[test]
    fn a_new_default_policy_version_is_drift() {
        let (_, role, object, desired) = desired();
        let mut snapshot = matching_snapshot(&role, &desired);
        let found = snapshot.policies.get_mut(POLICY_ARN).unwrap();
        found.document = percent_encode(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#,
        );
        found.policy.default_version_id = "v2".into();
        assert_eq!(
            policy_actions(&object, &desired, &snapshot),
            vec![PolicyAction::CreateDefaultVersion]
        );
    }

    #[test]
    fn a_policy_whose_default_version_moved_has_a_different_status() {
        let (_, role, object, desired) = desired();
        let snapshot = matching_snapshot(&role, &desired);
        let observed = object.observe_bulk(&snapshot, &desired).unwrap();
        let plan = object.plan(&desired, &observed);
        let mut current = plan.status.clone();
        current.default_version_id = Some("v3".into());
        // Same document under another version id: no write, but not in sync with the status.
        assert!(plan.actions.is_empty());
        assert!(!same_status::<IamPolicy>(&current, &plan.status));
        current.default_version_id = plan.status.default_version_id.clone();
        current.common.account = Some("123456789012".into());
        assert!(same_status::<IamPolicy>(&current, &plan.status));
    }

    #[test]
    fn the_ready_condition_must_say_what_the_plan_says() {
        let readiness = crate::conditions::Readiness::available("role matches the spec");
        let mut status = crate::api::IamRoleStatus::default();
        status.common.conditions = crate::conditions::with_ready(&[], &readiness, Some(1));
        assert!(same_ready::<IamRole>(&status, &readiness));
        let other = crate::conditions::Readiness::available("something else");
        assert!(!same_ready::<IamRole>(&status, &other));
        assert!(!same_ready::<IamRole>(
            &crate::api::IamRoleStatus::default(),
            &readiness
        ));
    }
}
