//! `rolecall run`: the operator process. Builds the clients and the controllers (see
//! `controllers::wiring`), stands for the lease when asked, and stops cleanly (in-flight
//! reconciles finish) on SIGTERM or Ctrl-C, or with an error when a long-running task
//! (a controller, the lease, the HTTP server) stops on its own.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use kube::Client;

use crate::aws::{AwsArgs, AwsClients, CallLog};
use crate::context::{Context, Settings};
use crate::controllers::wiring::Controllers;
use crate::leader::LeaderArgs;
use crate::telemetry::Telemetry;

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(clap::Args, Clone, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub aws: AwsArgs,

    /// Name of this cluster, written into the rolecall.dev/owner tag of every AWS object
    /// (`<cluster>/<namespace>/<name>`). Give each cluster sharing an AWS account its own.
    #[arg(long, env = "ROLECALL_CLUSTER_NAME", default_value = "default")]
    pub cluster_name: String,

    /// How often every object is re-observed in AWS to repair drift (jittered ±10%), such as
    /// `600s`, `10m` or `1h`.
    #[arg(long, env = "ROLECALL_RESYNC_PERIOD", default_value = "10m", value_parser = crate::cli::parse_duration)]
    pub resync_period: Duration,

    /// Check converged IamRoles and IamPolicies for drift against one account snapshot per
    /// resync period (GetAccountAuthorizationDetails, ListRoles) instead of three reads per
    /// object; `false` reads every object on every resync.
    #[arg(long, env = "ROLECALL_BULK_DRIFT_CHECKS", default_value_t = true, action = clap::ArgAction::Set)]
    pub bulk_drift_checks: bool,

    /// Reconciles run at once per kind.
    #[arg(long, env = "ROLECALL_CONCURRENCY", default_value_t = 4)]
    pub concurrency: u16,

    /// Watch only these namespaces, comma-separated (all namespaces when empty).
    #[arg(
        long,
        env = "ROLECALL_WATCH_NAMESPACES",
        value_delimiter = ',',
        alias = "namespace"
    )]
    pub watch_namespaces: Vec<String>,

    /// Observe and plan, log every AWS write that would be made, and make none (no Kubernetes
    /// writes either: no finalizers, no status).
    #[arg(long, env = "ROLECALL_DRY_RUN")]
    pub dry_run: bool,

    /// Log format.
    #[arg(long, env = "ROLECALL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter: a level (`info`, `debug`) or per-module directives
    /// (`info,rolecall=debug`). RUST_LOG, when set, wins.
    #[arg(long, env = "ROLECALL_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Address serving /metrics, /healthz and /readyz (port 0 picks a free port; the address
    /// is logged). In a pod, use 0.0.0.0:8080 so the kubelet's probes reach it.
    #[arg(long, env = "ROLECALL_HTTP_ADDRESS", default_value = "127.0.0.1:8080")]
    pub http_address: std::net::SocketAddr,

    #[command(flatten)]
    pub leader: LeaderArgs,
}

pub fn init_logging(format: LogFormat) {
    init_logging_with(format, "info");
}

/// Sets up logging to stdout; RUST_LOG overrides `level`. kube's own chatter stays at warn
/// unless asked for.
pub fn init_logging_with(format: LogFormat, level: &str) {
    let directives = if level.contains("kube") {
        level.to_owned()
    } else {
        format!("{level},kube=warn")
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(directives));
    // Colour codes only for a person at a terminal, never into files or pipes.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// The binary's entry point for `rolecall run`.
pub async fn main(args: RunArgs) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    init_logging_with(args.log_format, &args.log_level);
    let calls = Arc::new(CallLog::default());
    let telemetry = Arc::new(Telemetry::new(calls.clone()));
    if args.leader.leader_election {
        // Before /metrics is served: it must never say "leader" for a replica that has not won.
        telemetry
            .health
            .set_leadership(crate::telemetry::Leadership::Starting);
    }
    let signal = shutdown_signal().shared();

    let (address, server) =
        crate::telemetry::bind(args.http_address, telemetry.clone(), signal.clone())
            .await
            .map_err(|error| format!("cannot listen on {}: {error}", args.http_address))?;
    tracing::info!("serving /metrics, /healthz and /readyz on http://{address}");
    let serving = tokio::spawn(server);
    // Spawned apart from the server, so that a panic in it is seen here too.
    let server = tokio::spawn(telemetry.health.supervise(
        "the HTTP server",
        async move {
            match serving.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::error!(%error, "the HTTP server failed"),
                Err(error) => tracing::error!(%error, "the HTTP server panicked"),
            }
        },
        signal.clone(),
    ));
    // The controllers and the lease stop on a signal, or when any long-running task has
    // stopped on its own (then the process exits non-zero, so Kubernetes restarts it).
    let shutdown = {
        let stopped = telemetry.health.stopped();
        let signal = signal.clone();
        async move {
            tokio::select! {
                () = signal => {},
                () = stopped => {},
            }
        }
        .boxed()
        .shared()
    };

    let client = Client::try_default().await?;
    let aws = AwsClients::from_args(&args.aws).await;
    let prefix = account_prefix(&aws).await?;
    let scopes: Vec<Option<String>> = if args.watch_namespaces.is_empty() {
        vec![None]
    } else {
        args.watch_namespaces.iter().cloned().map(Some).collect()
    };
    let controllers = Controllers::new(&client, &scopes);
    let settings = Settings {
        cluster_name: args.cluster_name.clone(),
        dry_run: args.dry_run,
        resync: args.resync_period,
        bulk_drift_checks: args.bulk_drift_checks,
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        &aws,
        telemetry.clone(),
        settings,
        prefix,
        controllers.stores.clone(),
    ));
    tracing::info!(cluster = %args.cluster_name, dry_run = args.dry_run,
        namespaces = ?args.watch_namespaces, "rolecall starting");

    let concurrency = args.concurrency;
    let run_all = move |stop: futures::future::BoxFuture<'static, ()>| {
        controllers.run(ctx, concurrency, stop)
    };
    let outcome = if args.leader.leader_election {
        crate::leader::run_as_leader(
            client,
            &args.leader,
            &telemetry.health,
            shutdown.clone(),
            {
                let calls = calls.clone();
                move || calls.fence_writes()
            },
            run_all,
        )
        .await
    } else {
        run_all(shutdown.clone().boxed()).await;
        Ok(())
    };
    if let Err(error) = outcome {
        tracing::error!(%error, "stopping");
        return Err(error.into());
    }
    if let Some(task) = telemetry.health.stopped_task() {
        tracing::error!(%task, "stopped on its own; exiting");
        return Err(format!("{task} stopped before shutdown").into());
    }
    // The HTTP server drains its connections on the same signal.
    let _ = server.await;
    tracing::info!("rolecall stopped");
    Ok(())
}

/// `arn:<partition>:iam::<account>:`, from STS: the prefix of customer managed ARNs.
pub async fn account_prefix(
    aws: &AwsClients,
) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let identity = aws
        .sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|error| {
            format!(
                "cannot determine the AWS account (sts:GetCallerIdentity): {}",
                aws_sdk_sts::error::DisplayErrorContext(error)
            )
        })?;
    let partition = identity
        .arn()
        .and_then(|arn| arn.split(':').nth(1))
        .unwrap_or("aws");
    let account = identity
        .account()
        .ok_or("sts:GetCallerIdentity returned no account")?;
    Ok(format!("arn:{partition}:iam::{account}:"))
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: letting in-flight reconciles finish");
}
