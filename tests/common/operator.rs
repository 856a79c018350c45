//! Runs the operator in-process, watching one namespace, against the real API server and
//! moto, so each test has its own controllers and its own AWS call counts.

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use rolecall::aws::{AwsArgs, AwsClients, CallKind, CallLog};
use rolecall::context::{Context, Settings};
use rolecall::controllers::wiring::Controllers;
use rolecall::telemetry::Telemetry;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct Operator {
    pub ctx: Arc<Context>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

pub struct Options {
    pub resync: Duration,
    pub dry_run: bool,
    pub endpoint: Option<String>,
    /// More namespaces to watch, each as its own scope (as `--watch-namespaces a,b` does).
    pub also_watch: Vec<String>,
    /// `--aws-attempt-timeout` and `--aws-call-timeout`, when not the defaults.
    pub aws_timeouts: Option<(Duration, Duration)>,
    /// `--cluster-name`, when not `test`.
    pub cluster_name: Option<String>,
    /// `--bulk-drift-checks` (default on, as in the binary).
    pub bulk_drift_checks: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            resync: Duration::from_secs(3600),
            dry_run: false,
            endpoint: None,
            also_watch: vec![],
            aws_timeouts: None,
            cluster_name: None,
            bulk_drift_checks: true,
        }
    }
}

pub fn aws_args(endpoint: Option<String>) -> AwsArgs {
    AwsArgs {
        region: Some("us-east-1".into()),
        aws_endpoint_url: Some(endpoint.unwrap_or_else(super::aws_endpoint)),
        ..AwsArgs::default()
    }
}

pub async fn aws_clients() -> AwsClients {
    AwsClients::from_args(&aws_args(None)).await
}

impl Operator {
    /// Starts the controllers as the chart's service account (its ClusterRole bound to a test
    /// account, impersonated); `client` stays the test's admin client.
    pub async fn start(client: &Client, namespace: &str, options: Options) -> Self {
        let operator_client = super::rbac::chart_service_account_client(client).await;
        Self::start_as(client, operator_client, namespace, options).await
    }

    /// Starts the controllers with `operator_client` (for the RBAC tests' reduced rule sets).
    pub async fn start_as(
        _admin: &Client,
        operator_client: Client,
        namespace: &str,
        options: Options,
    ) -> Self {
        rolecall::run::init_logging(rolecall::run::LogFormat::Text);
        let mut args = aws_args(options.endpoint.clone());
        if let Some((attempt, call)) = options.aws_timeouts {
            args.aws_attempt_timeout = attempt;
            args.aws_call_timeout = call;
        }
        let aws = AwsClients::from_args(&args).await;
        let settings = Settings {
            cluster_name: options
                .cluster_name
                .clone()
                .unwrap_or_else(|| "test".into()),
            dry_run: options.dry_run,
            resync: options.resync,
            bulk_drift_checks: options.bulk_drift_checks,
        };
        // The account prefix comes from moto itself even when the operator's endpoint is a
        // dead one (for the AWS-unreachable tests).
        let identity_clients = AwsClients::from_args(&aws_args(None)).await;
        let prefix = rolecall::run::account_prefix(&identity_clients)
            .await
            .expect("the account from moto's STS");
        let scopes: Vec<Option<String>> = std::iter::once(namespace.to_owned())
            .chain(options.also_watch.iter().cloned())
            .map(Some)
            .collect();
        let controllers = Controllers::new(&operator_client, &scopes);
        let telemetry = Arc::new(Telemetry::new(Arc::new(CallLog::default())));
        let ctx = Arc::new(Context::new(
            operator_client,
            &aws,
            telemetry,
            settings,
            prefix,
            controllers.stores.clone(),
        ));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(controllers.run(ctx.clone(), 4, async {
            let _ = stopped.await;
        }));
        Self {
            ctx,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn writes(&self) -> u64 {
        self.ctx.calls.total(CallKind::Write)
    }

    pub fn reads(&self) -> u64 {
        self.ctx.calls.total(CallKind::Read)
    }

    /// `rolecall_reconciles_total{kind, result}` as `/metrics` would show it.
    pub fn reconciles(&self, kind: &str, result: &str) -> u64 {
        let series = format!("rolecall_reconciles_total{{kind=\"{kind}\",result=\"{result}\"}} ");
        self.ctx
            .telemetry
            .metrics
            .render(None)
            .lines()
            .find_map(|line| line.strip_prefix(&series))
            .map_or(0, |count| count.trim().parse().expect("a count"))
    }

    /// Stops the controllers, letting in-flight reconciles finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
