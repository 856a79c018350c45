//! AccountPasswordPolicy against the real API server and moto: every field reaches IAM, the
//! CIS defaults apply, drift is repaired, a converged policy costs no write, a second object
//! for the same account is a Conflict with no write, and deletion removes the policy (Retain
//! keeps it). Each test acts in an AWS account of its own (moto keeps one IAM per account id;
//! STS AssumeRole into a role ARN of any account answers for that account), so the account
//! password policy set here reaches no other test.

mod common;

use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use rolecall::api::AccountPasswordPolicy;
use rolecall::aws::{AwsClients, CallKind, CallLog};
use rolecall::context::{Context, Settings};
use rolecall::controllers::stores::Scoped;
use rolecall::controllers::wiring::{Controllers, password_policy_controller, run_alone};
use rolecall::telemetry::Telemetry;
use serde_json::json;
use tokio::sync::oneshot;

const WAIT: Duration = Duration::from_secs(60);
const TEST_LABEL: &str = "rolecall.dev/test-password-policy";

fn role_arn(account: &str) -> String {
    format!("arn:aws:iam::{account}:role/rolecall/operator")
}

/// The controller in-process, as the chart's service account, for this test's objects only.
struct Operator {
    ctx: Arc<Context>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Operator {
    async fn start(admin: &Client, label: &str) -> Self {
        rolecall::run::init_logging(rolecall::run::LogFormat::Text);
        let client = common::rbac::chart_service_account_client(admin).await;
        let aws = common::operator::aws_clients().await;
        let prefix = rolecall::run::account_prefix(&aws)
            .await
            .expect("the account from moto's STS");
        let selection = watcher::Config::default().labels(&format!("{TEST_LABEL}={label}"));
        let controller = password_policy_controller(&client, selection);
        let mut stores = Controllers::new(&client, &[None]).stores;
        stores.password_policies = Scoped::new(vec![controller.store()]);
        let settings = Settings {
            cluster_name: "test".into(),
            dry_run: false,
            resync: Duration::from_secs(2),
            bulk_drift_checks: true,
        };
        let telemetry = Arc::new(Telemetry::new(Arc::new(CallLog::default())));
        let ctx = Arc::new(Context::new(
            client, &aws, telemetry, settings, prefix, stores,
        ));
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async {
            let _ = stopped.await;
        };
        let task = tokio::spawn(run_alone(controller, ctx.clone(), 4, shutdown));
        Self {
            ctx,
            stop: Some(stop),
            task,
        }
    }

    fn writes(&self) -> u64 {
        self.ctx.calls.total(CallKind::Write)
    }

    fn reads(&self) -> u64 {
        self.ctx.calls.total(CallKind::Read)
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.task.await;
    }
}

async fn clients_in(account: &str) -> AwsClients {
    common::operator::aws_clients()
        .await
        .assuming(&role_arn(account), None)
        .await
}

fn policy(
    name: &str,
    label: &str,
    account: &str,
    spec: serde_json::Value,
) -> AccountPasswordPolicy {
    let mut spec = spec;
    spec["account"] = json!({ "roleArn": role_arn(account) });
    serde_json::from_value(json!({
        "apiVersion": "iam.rolecall.dev/v1alpha1", "kind": "AccountPasswordPolicy",
        "metadata": { "name": name, "labels": { TEST_LABEL: label } },
        "spec": spec,
    }))
    .unwrap()
}

async fn reason_of(api: &Api<AccountPasswordPolicy>, name: &str, reason: &str) -> String {
    common::wait_for(&format!("{name} to report {reason}"), WAIT, || async {
        let object = api.get(name).await.ok()?;
        let status = object.status.as_ref()?;
        if status.common.observed_generation != object.metadata.generation {
            return None;
        }
        let (_, found, message) = common::ready_condition(&status.common.conditions)?;
        (found == reason).then_some(message)
    })
    .await
}

async fn iam_policy(aws: &AwsClients) -> Option<aws_sdk_iam::types::PasswordPolicy> {
    common::found(
        "GetAccountPasswordPolicy",
        aws.iam.get_account_password_policy().send().await,
    )?
    .password_policy
}

#[tokio::test(flavor = "multi_thread")]
async fn the_password_policy_follows_its_spec_and_one_object_owns_an_account() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let account = common::fresh_account(400_000_000_000);
    let label = account.clone();
    let operator = Operator::start(&client, &label).await;
    let api: Api<AccountPasswordPolicy> = Api::all(client.clone());
    let aws = clients_in(&account).await;
    assert!(
        iam_policy(&aws).await.is_none(),
        "a fresh account has no policy"
    );

    // The CIS defaults.
    let name = format!("pw-{account}");
    api.create(
        &PostParams::default(),
        &policy(&name, &label, &account, json!({})),
    )
    .await
    .unwrap();
    reason_of(&api, &name, "Available").await;
    let set = iam_policy(&aws).await.expect("the policy is set");
    assert_eq!(set.minimum_password_length(), Some(14));
    assert_eq!(set.password_reuse_prevention(), Some(24));
    assert!(set.require_symbols() && set.require_numbers());
    assert!(set.require_uppercase_characters() && set.require_lowercase_characters());
    assert!(set.allow_users_to_change_password());
    assert_eq!(set.max_password_age().filter(|age| *age > 0), None);

    // Every field changed reaches IAM in one write.
    let writes = operator.writes();
    let patch = json!({ "spec": {
        "minimumPasswordLength": 20, "passwordReusePrevention": 5, "requireSymbols": false,
        "requireNumbers": false, "requireUppercaseCharacters": false,
        "requireLowercaseCharacters": false, "allowUsersToChangePassword": false,
        "maxPasswordAge": 90, "hardExpiry": true,
    }});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    common::wait_for("the changed policy in IAM", WAIT, || async {
        let set = iam_policy(&aws).await?;
        (set.minimum_password_length() == Some(20)).then_some(set)
    })
    .await;
    let set = iam_policy(&aws).await.unwrap();
    assert_eq!(set.password_reuse_prevention(), Some(5));
    assert!(!set.require_symbols() && !set.require_numbers());
    assert!(!set.require_uppercase_characters() && !set.require_lowercase_characters());
    assert!(!set.allow_users_to_change_password());
    assert_eq!(set.max_password_age(), Some(90));
    assert_eq!(set.hard_expiry(), Some(true));
    reason_of(&api, &name, "Available").await;
    assert_eq!(operator.writes(), writes + 1);

    // Drift (someone weakens it in the console) is put back on resync.
    aws.iam
        .update_account_password_policy()
        .minimum_password_length(6)
        .send()
        .await
        .unwrap();
    common::wait_for("the drift repaired", WAIT, || async {
        let set = iam_policy(&aws).await?;
        (set.minimum_password_length() == Some(20) && set.max_password_age() == Some(90))
            .then_some(())
    })
    .await;

    // Converged: resyncs read, never write.
    let writes = operator.writes();
    let reads = operator.reads();
    common::wait_for("three more resyncs", WAIT, || async {
        (operator.reads() >= reads + 3).then_some(())
    })
    .await;
    assert_eq!(operator.writes(), writes, "a converged policy was written");

    // A second object for the same account is refused, and writes nothing.
    let second = format!("pw2-{account}");
    api.create(
        &PostParams::default(),
        &policy(
            &second,
            &label,
            &account,
            json!({ "minimumPasswordLength": 8 }),
        ),
    )
    .await
    .unwrap();
    let message = reason_of(&api, &second, "Conflict").await;
    assert!(message.contains(&name), "{message}");
    assert_eq!(operator.writes(), writes);
    // Deleting the refused one leaves the account's policy as it is.
    api.delete(&second, &DeleteParams::default()).await.unwrap();
    common::wait_for("the second object gone", WAIT, || async {
        api.get_opt(&second).await.ok()?.is_none().then_some(())
    })
    .await;
    assert_eq!(
        iam_policy(&aws).await.unwrap().minimum_password_length(),
        Some(20)
    );

    // Deleting the owner removes the policy.
    api.delete(&name, &DeleteParams::default()).await.unwrap();
    common::wait_for("the policy removed", WAIT, || async {
        let gone = api.get_opt(&name).await.ok()?.is_none() && iam_policy(&aws).await.is_none();
        gone.then_some(())
    })
    .await;
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn retain_leaves_the_policy_when_the_object_goes() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let account = common::fresh_account(400_000_000_000);
    let operator = Operator::start(&client, &account).await;
    let api: Api<AccountPasswordPolicy> = Api::all(client.clone());
    let aws = clients_in(&account).await;
    let name = format!("pw-retain-{account}");
    let spec = json!({ "minimumPasswordLength": 16, "deletionPolicy": "Retain" });
    api.create(
        &PostParams::default(),
        &policy(&name, &account, &account, spec),
    )
    .await
    .unwrap();
    reason_of(&api, &name, "Available").await;
    let object = api.get(&name).await.unwrap();
    assert!(
        object
            .finalizers()
            .iter()
            .any(|f| f == "iam.rolecall.dev/cleanup")
    );
    api.delete(&name, &DeleteParams::default()).await.unwrap();
    common::wait_for("the object gone", WAIT, || async {
        api.get_opt(&name).await.ok()?.is_none().then_some(())
    })
    .await;
    assert_eq!(
        iam_policy(&aws).await.map(|p| p.minimum_password_length()),
        Some(Some(16)),
        "Retain must leave the policy"
    );
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_account_baseline_example_sets_the_cis_policy_and_keeps_it() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let account = common::fresh_account(400_000_000_000);
    let operator = Operator::start(&client, &account).await;
    let api: Api<AccountPasswordPolicy> = Api::all(client.clone());
    let aws = clients_in(&account).await;
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/account-baseline/password-policy.yaml");
    let text = std::fs::read_to_string(&file).expect("the example");
    let mut example: serde_json::Value = serde_norway::from_str(&text).expect("YAML");
    // The example as written, in this test's account and under this test's label.
    let name = format!("baseline-{account}");
    example["metadata"] = json!({ "name": name, "labels": { TEST_LABEL: account } });
    example["spec"]["account"] = json!({ "roleArn": role_arn(&account) });
    let example: AccountPasswordPolicy = serde_json::from_value(example).unwrap();
    api.create(&PostParams::default(), &example).await.unwrap();
    reason_of(&api, &name, "Available").await;
    let set = iam_policy(&aws).await.expect("the policy is set");
    assert_eq!(set.minimum_password_length(), Some(14));
    assert_eq!(set.password_reuse_prevention(), Some(24));
    assert!(set.require_symbols() && set.require_numbers());
    assert!(set.require_uppercase_characters() && set.require_lowercase_characters());
    assert!(set.allow_users_to_change_password());
    api.delete(&name, &DeleteParams::default()).await.unwrap();
    common::wait_for("the example object gone", WAIT, || async {
        api.get_opt(&name).await.ok()?.is_none().then_some(())
    })
    .await;
    assert_eq!(
        iam_policy(&aws).await.map(|p| p.minimum_password_length()),
        Some(Some(14)),
        "the example retains the account's policy"
    );
    operator.stop().await;
}
