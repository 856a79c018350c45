//! The AccountSecurityReport controller: at start-up, on a spec or annotation change and then
//! on each report's interval it reads the account, runs the checks and writes status (one entry per check, `Ready`, `Compliant`), records a
//! Warning Event for each check that goes from Pass to Fail, and exports each check's result
//! as `rolecall_security_check_passing`. It writes nothing to AWS.

use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use futures::future::Shared;
use futures::{FutureExt, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{PredicateConfig, WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};

use super::checks::{self, Finding};
use super::{AccountSnapshot, read_snapshot};
use crate::api::report::{
    AccountSecurityReport, AccountSecurityReportStatus, COMPLIANT, CheckResult, CheckStatus,
};
use crate::conditions::{Readiness, reason, with_ready};
use crate::context::Context;
use crate::controllers::watch_backoff::watch_backoff;
use crate::telemetry::SecurityCheck;

pub const KIND: &str = "AccountSecurityReport";

/// Reports more often than this would only spend AWS calls: IAM's credential report changes
/// at most every 4 hours.
pub const MIN_INTERVAL: Duration = Duration::from_secs(60);

/// The Event reason of a check that went from Pass to Fail.
pub const CHECK_FAILED: &str = "CheckFailed";

pub mod compliant_reason {
    pub const ALL_PASS: &str = "AllChecksPass";
    pub const FAILING: &str = "ChecksFailing";
    pub const UNKNOWN: &str = "ChecksUnknown";
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("writing the status of AccountSecurityReport {name}: {source}")]
    Status {
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// Runs the controller until `shutdown`; it watches reports cluster-wide, so it runs only
/// with the cluster-wide install.
pub fn run<S>(ctx: Arc<Context>, shutdown: Shared<S>) -> impl Future<Output = ()>
where
    S: Future<Output = ()> + Send + 'static,
{
    run_selected(ctx, watcher::Config::default(), shutdown)
}

/// Runs the controller for the reports `selection` picks (tests pick their own by label).
pub fn run_selected<S>(
    ctx: Arc<Context>,
    selection: watcher::Config,
    shutdown: Shared<S>,
) -> impl Future<Output = ()>
where
    S: Future<Output = ()> + Send + 'static,
{
    let api: Api<AccountSecurityReport> = Api::all(ctx.client.clone());
    let (reader, writer) = reflector::store();
    export_checks(&ctx, reader.clone());
    let stream = watcher(api, selection)
        .backoff(watch_backoff())
        .reflect(writer)
        .applied_objects()
        .predicate_filter(run_trigger, PredicateConfig::default());
    let running = Controller::for_stream(stream, reader)
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "security report run failed; retrying");
            }
        });
    ctx.telemetry
        .health
        .supervise(format!("the {KIND} controller"), running, shutdown)
        .boxed()
}

/// What starts a run besides the interval: a spec change (generation) or an annotation
/// (`rolecall.dev/touched` asks for a run now). The controller's own status writes do not.
fn run_trigger(report: &AccountSecurityReport) -> Option<u64> {
    let mut hasher = DefaultHasher::new();
    (report.metadata.generation, &report.metadata.annotations).hash(&mut hasher);
    Some(hasher.finish())
}

fn export_checks(ctx: &Context, reports: Store<AccountSecurityReport>) {
    ctx.telemetry.metrics.count_security_checks(move || {
        let mut results = Vec::new();
        for report in reports.state() {
            let checks = report.status.iter().flat_map(|status| &status.checks);
            for check in checks {
                let passing = match check.result {
                    CheckResult::Pass => true,
                    CheckResult::Fail => false,
                    CheckResult::Unknown => continue,
                };
                results.push(SecurityCheck {
                    report: report.name_any(),
                    check: check.id.clone(),
                    passing,
                });
            }
        }
        results
    });
}

fn error_policy(_: Arc<AccountSecurityReport>, _: &ReportError, _: Arc<Context>) -> Action {
    Action::requeue(Duration::from_secs(30))
}

async fn reconcile(
    report: Arc<AccountSecurityReport>,
    ctx: Arc<Context>,
) -> Result<Action, ReportError> {
    let started = std::time::Instant::now();
    let outcome = run_report(&report, &ctx).await;
    ctx.telemetry
        .metrics
        .reconciled(KIND, outcome.is_ok(), started.elapsed());
    outcome
}

async fn run_report(
    report: &AccountSecurityReport,
    ctx: &Arc<Context>,
) -> Result<Action, ReportError> {
    let previous = report.status.clone().unwrap_or_default();
    let generation = report.metadata.generation;
    let interval = match interval(report) {
        Ok(interval) => interval,
        Err(message) => {
            let mut status = previous.clone();
            status.common.observed_generation = generation;
            status.common.conditions = with_ready(
                &previous.common.conditions,
                &Readiness::not_ready(reason::INVALID_SPEC, message),
                generation,
            );
            write_status(report, ctx, &previous, status).await?;
            return Ok(Action::await_change());
        }
    };
    let account = ctx.for_account(report.spec.account.as_ref()).await;
    let snapshot = read_snapshot(&account.iam).await;
    let findings = checks::evaluate(&snapshot);
    let status = next_status(
        &previous,
        &findings,
        &snapshot,
        generation,
        account.account(),
    );
    for finding in newly_failing(&previous, &findings) {
        // The check id as the action: kube's recorder folds Events with the same reason and
        // action into one series, and each check's failures are a series of their own.
        ctx.event(
            report,
            true,
            CHECK_FAILED,
            finding.id,
            format!(
                "{} now fails: {} ({})",
                finding.id, finding.verdict.reason, finding.title
            ),
        )
        .await;
    }
    tracing::info!(report = %report.name_any(), passed = status.passed, failed = status.failed,
        unknown = status.unknown, "security report ran");
    write_status(report, ctx, &previous, status).await?;
    Ok(Action::requeue(interval))
}

fn interval(report: &AccountSecurityReport) -> Result<Duration, String> {
    let text = report.spec.interval_text();
    let interval =
        crate::cli::parse_duration(text).map_err(|error| format!("interval: {error}"))?;
    if interval < MIN_INTERVAL {
        return Err(format!(
            "interval {text} is shorter than the minimum of {}s",
            MIN_INTERVAL.as_secs()
        ));
    }
    Ok(interval)
}

/// The checks that passed last run and fail now.
pub fn newly_failing<'a>(
    previous: &AccountSecurityReportStatus,
    findings: &'a [Finding],
) -> Vec<&'a Finding> {
    findings
        .iter()
        .filter(|finding| finding.verdict.result == CheckResult::Fail)
        .filter(|finding| {
            previous
                .checks
                .iter()
                .any(|old| old.id == finding.id && old.result == CheckResult::Pass)
        })
        .collect()
}

/// The status a run leads to: each check keeps its `since` while its result stays the same.
pub fn next_status(
    previous: &AccountSecurityReportStatus,
    findings: &[Finding],
    snapshot: &AccountSnapshot,
    generation: Option<i64>,
    account: &str,
) -> AccountSecurityReportStatus {
    let now = Time(snapshot.now);
    let checks: Vec<CheckStatus> = findings
        .iter()
        .map(|finding| {
            let since = previous
                .checks
                .iter()
                .find(|old| old.id == finding.id && old.result == finding.verdict.result)
                .map_or_else(|| now.clone(), |old| old.since.clone());
            CheckStatus {
                id: finding.id.into(),
                title: finding.title.into(),
                result: finding.verdict.result,
                reason: finding.verdict.reason.clone(),
                offenders: finding.verdict.offenders.clone(),
                since,
            }
        })
        .collect();
    let tally = |result: CheckResult| checks.iter().filter(|c| c.result == result).count() as u32;
    let (passed, failed, unknown) = (
        tally(CheckResult::Pass),
        tally(CheckResult::Fail),
        tally(CheckResult::Unknown),
    );
    let ready = match unreadable_everything(snapshot) {
        Some(why) => Readiness::not_ready(
            reason::AWS_ERROR,
            format!("the account could not be read: {why}"),
        ),
        None => Readiness::available(format!(
            "{} checks ran: {passed} passed, {failed} failed, {unknown} unknown",
            checks.len()
        )),
    };
    let failing: Vec<&str> = ids_with(&checks, CheckResult::Fail);
    let unknowns: Vec<&str> = ids_with(&checks, CheckResult::Unknown);
    let (compliant, compliant_reason, message) = if !failing.is_empty() {
        (
            "False",
            compliant_reason::FAILING,
            format!("failing: {}", failing.join(", ")),
        )
    } else if !unknowns.is_empty() {
        (
            "Unknown",
            compliant_reason::UNKNOWN,
            format!("no check fails; not evaluated: {}", unknowns.join(", ")),
        )
    } else {
        (
            "True",
            compliant_reason::ALL_PASS,
            "every check passes".to_string(),
        )
    };
    let conditions = with_ready(&previous.common.conditions, &ready, generation);
    let conditions = with_condition(
        &conditions,
        COMPLIANT,
        compliant,
        compliant_reason,
        message,
        generation,
    );
    let mut status = AccountSecurityReportStatus {
        last_run: Some(now),
        credential_report_generated: snapshot
            .credential_report
            .as_ref()
            .ok()
            .and_then(|report| report.generated)
            .map(Time),
        passed,
        failed,
        unknown,
        checks,
        ..AccountSecurityReportStatus::default()
    };
    status.common.observed_generation = generation;
    status.common.account = Some(account.to_owned());
    status.common.conditions = conditions;
    status
}

fn ids_with(checks: &[CheckStatus], result: CheckResult) -> Vec<&str> {
    checks
        .iter()
        .filter(|check| check.result == result)
        .map(|check| check.id.as_str())
        .collect()
}

/// Why nothing at all could be read (a refused AssumeRole, no permission), if so.
fn unreadable_everything(snapshot: &AccountSnapshot) -> Option<String> {
    let errors = [
        snapshot.summary.as_ref().err(),
        snapshot.credential_report.as_ref().err(),
        snapshot.password_policy.as_ref().err(),
        snapshot.virtual_mfa_users.as_ref().err(),
        snapshot.authorization.as_ref().err(),
    ];
    if errors.iter().all(Option::is_some) {
        errors[0].cloned()
    } else {
        None
    }
}

/// `previous` with condition `type_` set, keeping its transition time while its status holds.
fn with_condition(
    previous: &[Condition],
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    generation: Option<i64>,
) -> Vec<Condition> {
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or_else(
            || Time(Timestamp::now()),
            |c| c.last_transition_time.clone(),
        );
    let mut conditions: Vec<Condition> = previous
        .iter()
        .filter(|c| c.type_ != type_)
        .cloned()
        .collect();
    conditions.push(Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time,
    });
    conditions
}

async fn write_status(
    report: &AccountSecurityReport,
    ctx: &Context,
    previous: &AccountSecurityReportStatus,
    status: AccountSecurityReportStatus,
) -> Result<(), ReportError> {
    let uid = report.uid().unwrap_or_default();
    let cached = crate::controllers::written::Cached {
        uid: &uid,
        resource_version: report.meta().resource_version.as_deref(),
        status: Some(previous),
    };
    if ctx.settings.dry_run || ctx.written.is_current(&cached, &status) {
        return Ok(());
    }
    let name = report.name_any();
    let api: Api<AccountSecurityReport> = Api::all(ctx.client.clone());
    let updated = api
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "status": status })),
        )
        .await
        .map_err(|source| ReportError::Status { name, source })?;
    ctx.written
        .wrote(&uid, updated.meta().resource_version.as_deref(), &status);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::iam::account::AccountSummary;
    use crate::conditions::READY;

    fn snapshot(mfa: bool) -> AccountSnapshot {
        AccountSnapshot {
            now: Timestamp::now(),
            summary: Ok(AccountSummary {
                root_mfa_enabled: mfa,
                users: 1,
                ..AccountSummary::default()
            }),
            credential_report: Err("denied".into()),
            password_policy: Err("denied".into()),
            virtual_mfa_users: Ok(vec![]),
            authorization: Err("denied".into()),
        }
    }

    fn result_of<'a>(status: &'a AccountSecurityReportStatus, id: &str) -> &'a CheckStatus {
        status.checks.iter().find(|c| c.id == id).unwrap()
    }

    #[test]
    fn a_result_keeps_its_since_until_it_changes_and_pass_to_fail_is_announced() {
        let first = snapshot(true);
        let findings = checks::evaluate(&first);
        let status = next_status(&Default::default(), &findings, &first, Some(1), "1");
        let since = result_of(&status, "iam_root_mfa_enabled").since.clone();
        assert!(newly_failing(&Default::default(), &findings).is_empty());

        let mut same = snapshot(true);
        same.now = Timestamp::from_second(first.now.as_second() + 3600).unwrap();
        let again = next_status(&status, &checks::evaluate(&same), &same, Some(1), "1");
        assert_eq!(result_of(&again, "iam_root_mfa_enabled").since, since);

        let mut lost = snapshot(false);
        lost.now = same.now;
        let findings = checks::evaluate(&lost);
        let failed = next_status(&again, &findings, &lost, Some(1), "1");
        assert_ne!(result_of(&failed, "iam_root_mfa_enabled").since, since);
        let announced: Vec<&str> = newly_failing(&again, &findings)
            .iter()
            .map(|f| f.id)
            .collect();
        assert!(announced.contains(&"iam_root_mfa_enabled"), "{announced:?}");
        // Unknown before, Fail now: not a Pass going to Fail.
        assert!(!announced.contains(&"iam_password_policy_exists"));
        let compliant = failed
            .common
            .conditions
            .iter()
            .find(|c| c.type_ == COMPLIANT)
            .unwrap();
        assert_eq!(compliant.status, "False");
        assert!(compliant.message.contains("iam_root_mfa_enabled"));
    }

    #[test]
    fn ready_says_the_report_ran_unless_nothing_could_be_read() {
        let partial = snapshot(true);
        let status = next_status(
            &Default::default(),
            &checks::evaluate(&partial),
            &partial,
            Some(1),
            "1",
        );
        let ready = status
            .common
            .conditions
            .iter()
            .find(|c| c.type_ == READY)
            .unwrap();
        assert_eq!(ready.status, "True");
        assert_eq!(
            status.passed + status.failed + status.unknown,
            checks::CHECKS.len() as u32
        );

        let mut nothing = snapshot(true);
        nothing.summary = Err("AssumeRole: AccessDenied".into());
        nothing.virtual_mfa_users = Err("AssumeRole: AccessDenied".into());
        let status = next_status(
            &Default::default(),
            &checks::evaluate(&nothing),
            &nothing,
            Some(1),
            "1",
        );
        let ready = status
            .common
            .conditions
            .iter()
            .find(|c| c.type_ == READY)
            .unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", reason::AWS_ERROR)
        );
        assert!(ready.message.contains("AccessDenied"));
    }
}
