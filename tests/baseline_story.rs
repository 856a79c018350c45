//! The second story end to end (issue 13): hygiene right after an account is created. The
//! account security report first fails the IAM console's five recommendations (the root
//! user's access keys, root MFA, individual users, groups, a password policy); the platform
//! team applies `examples/account-baseline/` (the admin group, the administrator user, the
//! password policy) and the root user deletes its access key; the report then passes them all
//! but root MFA, which only the root user can enable, and says so in words.
//!
//! Against the real API server and moto, in an AWS account of the test's own (moto keeps one
//! IAM per account id; STS AssumeRole into a role ARN of any account answers for that
//! account): the namespace's Tenancy names that account, and the cluster-scoped password
//! policy and report carry it in `spec.account` and a label of the test's own, which their
//! controllers here select. So no other test's users, groups, policy or root state reach the
//! report, and this one's reach no other test.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use rolecall::api::report::{CheckResult, CheckStatus};
use rolecall::api::{AccountPasswordPolicy, AccountSecurityReport, IamGroup, IamUser};
use rolecall::aws::CallLog;
use rolecall::context::{Context, Settings};
use rolecall::controllers::stores::Scoped;
use rolecall::controllers::wiring::{Controllers, password_policy_controller, run_alone};
use rolecall::telemetry::Telemetry;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::oneshot;

const WAIT: Duration = Duration::from_secs(60);
const TEST_LABEL: &str = "rolecall.dev/test-baseline-story";

/// The console's five recommendations, as the report's check ids.
const ROOT_ACCESS_KEY: &str = "iam_no_root_access_key";
const ROOT_MFA: &str = "iam_root_mfa_enabled";
const INDIVIDUAL_USERS: &str = "iam_individual_users_exist";
const GROUPS: &str = "iam_groups_assign_permissions";
const PASSWORD_POLICY: &str = "iam_password_policy_exists";

fn role_arn(account: &str) -> String {
    format!("arn:aws:iam::{account}:role/rolecall/operator")
}

fn example(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/account-baseline")
        .join(file)
}

/// The example's documents of `kind`, as JSON.
fn example_documents(file: &str, kind: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(example(file)).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|document| serde_json::Value::deserialize(document).unwrap())
        .filter(|document| document["kind"] == kind)
        .collect()
}

fn kubectl(args: &[&str]) -> String {
    let output = std::process::Command::new("kubectl")
        .args(args)
        .output()
        .expect("kubectl on PATH");
    assert!(
        output.status.success(),
        "kubectl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Sets the root user of `account` in the project's moto (tools/moto/server.py).
fn set_root(account: &str, mfa: Option<&str>, access_keys: u32) {
    let endpoint = common::aws_endpoint();
    let address = endpoint
        .strip_prefix("http://")
        .expect("moto's endpoint is http://host:port");
    let body =
        serde_json::json!({"account": account, "mfa": mfa, "accessKeys": access_keys}).to_string();
    let mut stream = std::net::TcpStream::connect(address).expect("moto answers");
    write!(
        stream,
        "POST /rolecall-moto/root HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"),
        "moto refused the root state (is it started through tools/moto/server.py?): {answer}"
    );
}

/// The cluster-scoped controllers (password policy, security report) in-process, as the
/// chart's service account, for the objects carrying this test's label only.
struct AccountControllers {
    stop: Option<oneshot::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl AccountControllers {
    async fn start(admin: &Client, label: &str) -> Self {
        rolecall::run::init_logging(rolecall::run::LogFormat::Text);
        let client = common::rbac::chart_service_account_client(admin).await;
        let aws = common::operator::aws_clients().await;
        let prefix = rolecall::run::account_prefix(&aws)
            .await
            .expect("the account from moto's STS");
        let selection = watcher::Config::default().labels(&format!("{TEST_LABEL}={label}"));
        let password_policies = password_policy_controller(&client, selection.clone());
        let mut stores = Controllers::new(&client, &[None]).stores;
        stores.password_policies = Scoped::new(vec![password_policies.store()]);
        let settings = Settings {
            cluster_name: "test".into(),
            dry_run: false,
            resync: Duration::from_secs(3600),
            bulk_drift_checks: true,
        };
        let telemetry = Arc::new(Telemetry::new(Arc::new(CallLog::default())));
        let ctx = Arc::new(Context::new(
            client, &aws, telemetry, settings, prefix, stores,
        ));
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async {
            let _ = stopped.await;
        }
        .boxed()
        .shared();
        let tasks = vec![
            tokio::spawn(run_alone(
                password_policies,
                ctx.clone(),
                4,
                shutdown.clone(),
            )),
            tokio::spawn(rolecall::report::controller::run_selected(
                ctx, selection, shutdown,
            )),
        ];
        Self {
            stop: Some(stop),
            tasks,
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        for task in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
    }
}

/// The report's check `id`.
fn check<'a>(report: &'a AccountSecurityReport, id: &str) -> &'a CheckStatus {
    report
        .status
        .as_ref()
        .and_then(|status| status.checks.iter().find(|check| check.id == id))
        .unwrap_or_else(|| panic!("{}: no check {id}", report.name_any()))
}

/// Waits until every check in `want` has its result.
async fn wait_results(
    reports: &Api<AccountSecurityReport>,
    name: &str,
    want: &[(&str, CheckResult)],
) -> AccountSecurityReport {
    common::wait_for(&format!("{name}: {want:?}"), WAIT, || async {
        let report = reports.get(name).await.ok()?;
        let checks = &report.status.as_ref()?.checks;
        want.iter()
            .all(|(id, result)| {
                checks
                    .iter()
                    .any(|check| check.id == *id && check.result == *result)
            })
            .then_some(report)
    })
    .await
}

async fn wait_available<K>(api: &Api<K>, name: &str) -> K
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + serde::Serialize,
{
    common::wait_for(&format!("{name} Ready"), WAIT, || async {
        let object = api.get(name).await.ok()?;
        let value = serde_json::to_value(&object).ok()?;
        let conditions: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> =
            serde_json::from_value(value["status"]["conditions"].clone()).ok()?;
        let (status, _, _) = common::ready_condition(&conditions)?;
        (status == "True").then_some(object)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_baseline_passes_the_console_checks_but_root_mfa_which_the_report_leaves_to_root() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let account = common::fresh_account(500_000_000_000);

    // A new account: nobody in it yet, and a root user with an access key (made before the
    // account was handed to the platform team) and no MFA.
    set_root(&account, None, 1);

    // The platform team's namespace for the account's people, under the example's Tenancy,
    // reaching this test's account.
    let namespace = format!("baseline-{account}");
    let ns: Namespace = serde_json::from_value(json!({
        "metadata": { "name": namespace, "labels": { TEST_LABEL: account } }
    }))
    .unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let mut tenancy = example_documents("platform.yaml", "Tenancy").remove(0);
    tenancy["metadata"] = json!({ "name": namespace });
    tenancy["spec"]["namespaceSelector"] = json!({ "matchLabels": { TEST_LABEL: account } });
    tenancy["spec"]["account"] = json!({ "roleArn": role_arn(&account) });
    let tenancies: Api<kube::api::DynamicObject> = Api::all_with(
        client.clone(),
        &kube::api::ApiResource::erase::<rolecall::api::Tenancy>(&()),
    );
    tenancies
        .patch(
            &namespace,
            &PatchParams::apply("baseline-story"),
            &Patch::Apply(&tenancy),
        )
        .await
        .unwrap();

    let operator = common::operator::Operator::start(&client, &namespace, Default::default()).await;
    let account_controllers = AccountControllers::start(&client, &account).await;

    // The report, as the example has it, in this account and under this test's label.
    let reports: Api<AccountSecurityReport> = Api::all(client.clone());
    let name = format!("baseline-{account}");
    let mut report = example_documents("report.yaml", "AccountSecurityReport").remove(0);
    report["metadata"] = json!({ "name": name, "labels": { TEST_LABEL: account } });
    report["spec"]["account"] = json!({ "roleArn": role_arn(&account) });
    reports
        .create(
            &PostParams::default(),
            &serde_json::from_value(report).unwrap(),
        )
        .await
        .unwrap();

    // 1. The report first shows the failures: every one of the console's five.
    let first = wait_results(
        &reports,
        &name,
        &[
            (ROOT_ACCESS_KEY, CheckResult::Fail),
            (ROOT_MFA, CheckResult::Fail),
            (INDIVIDUAL_USERS, CheckResult::Fail),
            (GROUPS, CheckResult::Fail),
            (PASSWORD_POLICY, CheckResult::Fail),
        ],
    )
    .await;
    assert_eq!(
        first.status.as_ref().unwrap().common.account.as_deref(),
        Some(account.as_str())
    );
    for id in [ROOT_ACCESS_KEY, ROOT_MFA] {
        let root = check(&first, id);
        assert_eq!(root.offenders, ["<root_account>"], "{root:?}");
        assert!(
            root.reason.contains("only the root user can"),
            "{id}: {root:?}"
        );
    }

    // 2. kubectl apply: the admin group, the administrator in it, the password policy.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), &namespace);
    for file in ["admin-group.yaml", "administrator-user.yaml"] {
        kubectl(&[
            "apply",
            "-n",
            &namespace,
            "-f",
            example(file).to_str().unwrap(),
        ]);
    }
    let policies: Api<AccountPasswordPolicy> = Api::all(client.clone());
    let mut policy = example_documents("password-policy.yaml", "AccountPasswordPolicy").remove(0);
    let policy_name = format!("baseline-{account}");
    policy["metadata"] = json!({ "name": policy_name, "labels": { TEST_LABEL: account } });
    policy["spec"]["account"] = json!({ "roleArn": role_arn(&account) });
    policies
        .create(
            &PostParams::default(),
            &serde_json::from_value(policy).unwrap(),
        )
        .await
        .unwrap();
    let groups: Api<IamGroup> = Api::namespaced(client.clone(), &namespace);
    let users: Api<IamUser> = Api::namespaced(client.clone(), &namespace);
    wait_available(&groups, "admin").await;
    let administrator = wait_available(&users, "administrator").await;
    wait_available(&policies, &policy_name).await;
    let arn = administrator.status.unwrap().arn.unwrap();
    assert!(
        arn.starts_with(&format!("arn:aws:iam::{account}:user/rolecall/accounts/")),
        "the administrator lives in the new account: {arn}"
    );
    assert!(
        secrets
            .get("administrator-console-password")
            .await
            .unwrap()
            .data
            .unwrap()
            .contains_key("password")
    );

    // 3. The root user signs in and deletes its access key (rolecall cannot: only root can).
    set_root(&account, None, 0);

    // 4. The report, asked to run now, passes the five but root MFA, and says why in words.
    let touch = json!({"metadata": {"annotations": {"rolecall.dev/touched": "1"}}});
    reports
        .patch(&name, &PatchParams::default(), &Patch::Merge(&touch))
        .await
        .unwrap();
    let after = wait_results(
        &reports,
        &name,
        &[
            (ROOT_ACCESS_KEY, CheckResult::Pass),
            (INDIVIDUAL_USERS, CheckResult::Pass),
            (GROUPS, CheckResult::Pass),
            (PASSWORD_POLICY, CheckResult::Pass),
        ],
    )
    .await;
    let root_mfa = check(&after, ROOT_MFA);
    assert_eq!(root_mfa.result, CheckResult::Fail, "{root_mfa:?}");
    assert_eq!(root_mfa.offenders, ["<root_account>"]);
    assert!(
        root_mfa.reason.contains("only the root user can"),
        "{root_mfa:?}"
    );
    for id in [
        "iam_password_policy_minimum_length_14",
        "iam_password_policy_reuse_24",
    ] {
        assert_eq!(check(&after, id).result, CheckResult::Pass, "{id}");
    }

    // The story's objects go; the account's password policy stays (Retain).
    users
        .delete("administrator", &DeleteParams::default())
        .await
        .unwrap();
    groups
        .delete("admin", &DeleteParams::default())
        .await
        .unwrap();
    common::wait_for("the administrator and admin deleted", WAIT, || async {
        let gone = users.get_opt("administrator").await.ok()?.is_none()
            && groups.get_opt("admin").await.ok()?.is_none();
        gone.then_some(())
    })
    .await;
    let _ = policies
        .delete(&policy_name, &DeleteParams::default())
        .await;
    let _ = reports.delete(&name, &DeleteParams::default()).await;
    account_controllers.stop().await;
    operator.stop().await;
    let _ = tenancies.delete(&namespace, &DeleteParams::default()).await;
}
