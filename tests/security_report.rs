//! The account security report against the real API server and moto: it runs and writes
//! every check, and its results follow the account as it changes (a console user without
//! MFA, the root user's access key and MFA device as the project's moto wrapper lets tests
//! set them, a password policy), a check going from Pass to Fail is announced by one Warning
//! Event, each result is exported as a gauge, and the report writes nothing to AWS.
//!
//! Each test reports on an account of its own: moto keeps one IAM per account id, and STS
//! AssumeRole into a role ARN of any account answers with credentials moto maps to that
//! account. So the password policy and root state set here reach no other test.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use rolecall::api::AccountSecurityReport;
use rolecall::api::report::{COMPLIANT, CheckResult, CheckStatus};
use rolecall::aws::{AwsClients, CallKind, CallLog};
use rolecall::context::{Context, Settings};
use rolecall::controllers::wiring::Controllers;
use rolecall::report::checks::CHECKS;
use rolecall::report::controller::CHECK_FAILED;
use rolecall::telemetry::Telemetry;
use tokio::sync::oneshot;

const DEADLINE: Duration = Duration::from_secs(60);
const TEST_LABEL: &str = "rolecall.dev/test-report";

fn role_arn(account: &str) -> String {
    format!("arn:aws:iam::{account}:role/rolecall/report")
}

/// The report controller in-process, as the chart's service account, for the reports
/// carrying this test's label only (other tests' and examples' reports are not its).
struct ReportController {
    ctx: Arc<Context>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl ReportController {
    async fn start(admin: &Client, label: &str) -> Self {
        Self::start_as(
            common::rbac::chart_service_account_client(admin).await,
            label,
        )
        .await
    }

    async fn start_as(operator_client: Client, label: &str) -> Self {
        rolecall::run::init_logging(rolecall::run::LogFormat::Text);
        let aws = common::operator::aws_clients().await;
        let prefix = rolecall::run::account_prefix(&aws)
            .await
            .expect("the account from moto's STS");
        let stores = Controllers::new(&operator_client, &[None]).stores;
        let settings = Settings {
            cluster_name: "test".into(),
            dry_run: false,
            resync: Duration::from_secs(3600),
            bulk_drift_checks: true,
        };
        let telemetry = Arc::new(Telemetry::new(Arc::new(CallLog::default())));
        let ctx = Arc::new(Context::new(
            operator_client,
            &aws,
            telemetry,
            settings,
            prefix,
            stores,
        ));
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async {
            let _ = stopped.await;
        }
        .boxed()
        .shared();
        let selection = watcher::Config::default().labels(&format!("{TEST_LABEL}={label}"));
        let task = tokio::spawn(rolecall::report::controller::run_selected(
            ctx.clone(),
            selection,
            shutdown,
        ));
        Self {
            ctx,
            stop: Some(stop),
            task,
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(30), &mut self.task).await;
    }
}

/// `rolecall_reconciles_total{kind="AccountSecurityReport", result}`, as `/metrics` shows it.
fn reconciles(controller: &ReportController, result: &str) -> u64 {
    let series =
        format!("rolecall_reconciles_total{{kind=\"AccountSecurityReport\",result=\"{result}\"}} ");
    controller
        .ctx
        .telemetry
        .metrics
        .render(None)
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .map_or(0, |count| count.trim().parse().expect("a count"))
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

/// The test's own clients, acting in `account`.
async fn clients_in(account: &str) -> AwsClients {
    common::operator::aws_clients()
        .await
        .assuming(&role_arn(account), None)
        .await
}

async fn create_report(client: &Client, name: &str, account: &str, label: &str) {
    let report: AccountSecurityReport = serde_json::from_value(serde_json::json!({
        "apiVersion": "iam.rolecall.dev/v1alpha1",
        "kind": "AccountSecurityReport",
        "metadata": { "name": name, "labels": { TEST_LABEL: label } },
        "spec": { "interval": "1h", "account": { "roleArn": role_arn(account) } },
    }))
    .unwrap();
    Api::<AccountSecurityReport>::all(client.clone())
        .create(&PostParams::default(), &report)
        .await
        .unwrap_or_else(|e| panic!("creating AccountSecurityReport {name}: {e}"));
}

/// Asks for a run now, the way a user would: `kubectl annotate ... rolecall.dev/touched=N`.
async fn touch(client: &Client, name: &str, n: u32) {
    let patch =
        serde_json::json!({"metadata": {"annotations": {"rolecall.dev/touched": n.to_string()}}});
    Api::<AccountSecurityReport>::all(client.clone())
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// Waits until the report's check `id` satisfies `accept`.
async fn wait_check(
    client: &Client,
    name: &str,
    id: &str,
    what: &str,
    accept: impl Fn(&CheckStatus) -> bool,
) -> AccountSecurityReport {
    let api = Api::<AccountSecurityReport>::all(client.clone());
    common::wait_for(&format!("{name}: {id} {what}"), DEADLINE, || {
        let api = api.clone();
        let accept = &accept;
        async move {
            let report = api.get(name).await.ok()?;
            let check = report
                .status
                .as_ref()?
                .checks
                .iter()
                .find(|check| check.id == id)?
                .clone();
            accept(&check).then_some(report)
        }
    })
    .await
}

fn check<'a>(report: &'a AccountSecurityReport, id: &str) -> &'a CheckStatus {
    report
        .status
        .as_ref()
        .and_then(|status| status.checks.iter().find(|check| check.id == id))
        .unwrap_or_else(|| panic!("{}: no check {id}", report.name_any()))
}

/// The CheckFailed Events of report `name` about check `id`.
async fn check_failed_events(client: &Client, name: &str, id: &str) -> Vec<Event> {
    // A cluster-scoped object's Events live in the default namespace.
    common::ec2::events_about(client, "default", name)
        .await
        .into_iter()
        .filter(|event| event.reason.as_deref() == Some(CHECK_FAILED))
        .filter(|event| event.note.as_deref().unwrap_or_default().starts_with(id))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_report_follows_the_account_as_it_changes() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let account = common::fresh_account(300_000_000_000);
    let name = format!("report-{account}");
    set_root(&account, Some("hardware"), 0);
    let controller = ReportController::start(&client, &account).await;
    create_report(&client, &name, &account, &account).await;

    // The first run: every check is written, with words for each.
    let report = wait_check(&client, &name, "iam_password_policy_exists", "Fail", |c| {
        c.result == CheckResult::Fail
    })
    .await;
    let status = report.status.as_ref().unwrap();
    let ids: Vec<&str> = status.checks.iter().map(|c| c.id.as_str()).collect();
    let expected: Vec<&str> = CHECKS.iter().map(|c| c.id).collect();
    assert_eq!(ids, expected);
    assert!(
        status
            .checks
            .iter()
            .all(|c| !c.reason.is_empty() && !c.title.is_empty())
    );
    assert_eq!(status.common.account.as_deref(), Some(account.as_str()));
    let ready = common::ready_condition(&status.common.conditions).unwrap();
    assert_eq!(ready.0, "True", "{ready:?}");
    let compliant = status
        .common
        .conditions
        .iter()
        .find(|c| c.type_ == COMPLIANT)
        .unwrap();
    assert_eq!(compliant.status, "False");
    assert_eq!(
        status.passed + status.failed + status.unknown,
        CHECKS.len() as u32
    );
    for id in [
        "iam_no_root_access_key",
        "iam_root_mfa_enabled",
        "iam_root_hardware_mfa_enabled",
    ] {
        assert_eq!(check(&report, id).result, CheckResult::Pass, "{id}");
    }
    assert_eq!(
        check(&report, "iam_individual_users_exist").result,
        CheckResult::Fail
    );

    // A console user without MFA.
    let aws = clients_in(&account).await;
    aws.iam
        .create_user()
        .user_name("carol")
        .send()
        .await
        .unwrap();
    aws.iam
        .create_login_profile()
        .user_name("carol")
        .password("Correct-Horse-Battery-9")
        .password_reset_required(true)
        .send()
        .await
        .unwrap();
    touch(&client, &name, 1).await;
    let report = wait_check(
        &client,
        &name,
        "iam_user_mfa_enabled_console_access",
        "names carol",
        |c| c.result == CheckResult::Fail && c.offenders == ["carol"],
    )
    .await;
    assert_eq!(
        check(&report, "iam_individual_users_exist").result,
        CheckResult::Pass
    );
    // It passed while no user had a console password: a Pass going to Fail.
    let mfa_id = "iam_user_mfa_enabled_console_access";
    assert_eq!(check_failed_events(&client, &name, mfa_id).await.len(), 1);

    // The root user gets an access key: Pass to Fail, announced once.
    assert!(
        check_failed_events(&client, &name, "iam_no_root_access_key")
            .await
            .is_empty()
    );
    set_root(&account, Some("hardware"), 1);
    touch(&client, &name, 2).await;
    let report = wait_check(&client, &name, "iam_no_root_access_key", "Fail", |c| {
        c.result == CheckResult::Fail
    })
    .await;
    let root_key = check(&report, "iam_no_root_access_key");
    assert_eq!(root_key.offenders, ["<root_account>"]);
    assert!(
        root_key.reason.contains("only the root user"),
        "{root_key:?}"
    );
    let events = check_failed_events(&client, &name, "iam_no_root_access_key").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].type_.as_deref(), Some("Warning"));
    // Still failing is not announced again.
    assert_eq!(check_failed_events(&client, &name, mfa_id).await.len(), 1);
    let metrics = controller.ctx.telemetry.metrics.render(None);
    let series = |id: &str, value: u8| {
        format!("rolecall_security_check_passing{{report=\"{name}\",check=\"{id}\"}} {value}")
    };
    assert!(
        metrics.contains(&series("iam_no_root_access_key", 0)),
        "{metrics}"
    );
    assert!(
        metrics.contains(&series("iam_root_mfa_enabled", 1)),
        "{metrics}"
    );

    // A virtual MFA device for root fails the hardware check; a hardware one passes again.
    set_root(&account, Some("virtual"), 0);
    touch(&client, &name, 3).await;
    let report = wait_check(
        &client,
        &name,
        "iam_root_hardware_mfa_enabled",
        "Fail",
        |c| c.result == CheckResult::Fail,
    )
    .await;
    assert!(
        check(&report, "iam_root_hardware_mfa_enabled")
            .reason
            .contains("virtual")
    );
    assert_eq!(
        check(&report, "iam_no_root_access_key").result,
        CheckResult::Pass
    );
    set_root(&account, Some("hardware"), 0);
    touch(&client, &name, 4).await;
    wait_check(
        &client,
        &name,
        "iam_root_hardware_mfa_enabled",
        "Pass",
        |c| c.result == CheckResult::Pass,
    )
    .await;

    // A CIS password policy passes the three password checks.
    aws.iam
        .update_account_password_policy()
        .minimum_password_length(14)
        .password_reuse_prevention(24)
        .send()
        .await
        .unwrap();
    touch(&client, &name, 5).await;
    let report = wait_check(
        &client,
        &name,
        "iam_password_policy_reuse_24",
        "Pass",
        |c| c.result == CheckResult::Pass,
    )
    .await;
    for id in [
        "iam_password_policy_exists",
        "iam_password_policy_minimum_length_14",
    ] {
        assert_eq!(check(&report, id).result, CheckResult::Pass, "{id}");
    }

    // Six runs, and not one AWS write: only reads (GenerateCredentialReport among them, the
    // one call that asks IAM to do something: refresh its report).
    let calls = controller.ctx.calls.snapshot();
    assert_eq!(controller.ctx.calls.total(CallKind::Write), 0, "{calls:?}");
    // Six reads a run (every answer here fits one page).
    let runs = reconciles(&controller, "success");
    assert_eq!(runs, 6, "{calls:?}");
    assert_eq!(
        controller.ctx.calls.total(CallKind::Read),
        6 * runs,
        "{calls:?}"
    );
    let operations: BTreeSet<&str> = calls.keys().map(|(_, operation)| *operation).collect();
    assert_eq!(
        operations,
        BTreeSet::from([
            "GenerateCredentialReport",
            "GetAccountAuthorizationDetails",
            "GetAccountPasswordPolicy",
            "GetAccountSummary",
            "GetCredentialReport",
            "ListVirtualMFADevices",
        ])
    );
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn policies_of_users_and_administrator_policies_are_named() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let account = common::fresh_account(300_000_000_000);
    let name = format!("report-{account}");
    let aws = clients_in(&account).await;
    let admin_document =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    let policy = aws
        .iam
        .create_policy()
        .policy_name("everything")
        .policy_document(admin_document)
        .send()
        .await
        .unwrap()
        .policy
        .unwrap();
    aws.iam
        .create_group()
        .group_name("admins")
        .send()
        .await
        .unwrap();
    aws.iam
        .attach_group_policy()
        .group_name("admins")
        .policy_arn(policy.arn().unwrap())
        .send()
        .await
        .unwrap();
    aws.iam
        .create_user()
        .user_name("dave")
        .send()
        .await
        .unwrap();
    aws.iam
        .put_user_policy()
        .user_name("dave")
        .policy_name("own")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    let controller = ReportController::start(&client, &account).await;
    create_report(&client, &name, &account, &account).await;
    let report = wait_check(
        &client,
        &name,
        "iam_customer_attached_policy_no_administrative_privileges",
        "names everything",
        |c| c.result == CheckResult::Fail && c.offenders == ["everything"],
    )
    .await;
    let direct = check(&report, "iam_policy_attached_only_to_group_or_roles");
    assert_eq!(
        (direct.result, direct.offenders.as_slice()),
        (CheckResult::Fail, ["dave".to_string()].as_slice())
    );
    assert_eq!(
        check(&report, "iam_groups_assign_permissions").result,
        CheckResult::Pass
    );
    // moto's users have no last-use dates and were just made: nothing is unused or old.
    for id in [
        "iam_user_console_access_unused",
        "iam_user_accesskey_unused",
        "iam_rotate_access_key_90_days",
    ] {
        assert_eq!(check(&report, id).result, CheckResult::Pass, "{id}");
    }
    controller.stop().await;
}

/// The chart's rule for the reports' status is needed: without it a run fails to write its
/// results (counted as a failed reconcile, retried) and the report shows none.
#[tokio::test(flavor = "multi_thread")]
async fn without_the_status_rule_no_result_is_written() {
    use k8s_openapi::api::rbac::v1::ClusterRole;
    use kube::api::DeleteParams;

    let admin = common::kube_client().await;
    common::install_crds(&admin).await;
    let account = common::fresh_account(300_000_000_000);
    let name = format!("report-{account}");
    let namespace = common::fresh_namespace(&admin, "report-rbac").await;
    let rules = common::chart::cluster_role().rules.unwrap_or_default();
    let before = rules.len();
    let rules: Vec<_> = rules
        .into_iter()
        .filter(|rule| {
            !rule
                .resources
                .iter()
                .flatten()
                .any(|r| r == "accountsecurityreports/status")
        })
        .collect();
    assert_eq!(
        rules.len(),
        before - 1,
        "one chart rule grants the reports' status"
    );
    let role = format!("{namespace}-report");
    common::rbac::apply_cluster_role(&admin, &role, rules).await;
    common::rbac::bind_cluster_wide(&admin, &role, &namespace, "rolecall").await;
    let operator_client = common::rbac::impersonating_client(&common::rbac::service_account_user(
        &namespace, "rolecall",
    ))
    .await;
    common::rbac::wait_until_allowed(
        &operator_client,
        None,
        "iam.rolecall.dev",
        "accountsecurityreports",
        "watch",
    )
    .await;
    let controller = ReportController::start_as(operator_client, &account).await;
    create_report(&admin, &name, &account, &account).await;
    common::wait_for("a run that cannot write its status", DEADLINE, || {
        let failed = reconciles(&controller, "error");
        async move { (failed > 0).then_some(()) }
    })
    .await;
    let report = Api::<AccountSecurityReport>::all(admin.clone())
        .get(&name)
        .await
        .unwrap();
    assert!(report.status.is_none(), "{:?}", report.status);
    controller.stop().await;
    let _ = Api::<ClusterRole>::all(admin.clone())
        .delete(&role, &DeleteParams::default())
        .await;
}
