//! `rolecall run`: the operator process. Builds the clients, starts one controller per kind,
//! and stops them cleanly (in-flight reconciles finish) on SIGTERM or Ctrl-C.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use kube::api::Api;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use crate::api::{Ec2InstanceBinding, IamPolicy, IamRole, InstanceProfile};
use crate::aws::{AwsArgs, AwsClients, CallLog};
use crate::context::{Context, Settings};
use crate::controllers::gate::Gate;
use crate::controllers::{Managed, error_policy, gated, kind_name};
use crate::leader::LeaderArgs;
use crate::telemetry::{ReadyCounts, Telemetry};

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
    #[arg(long, env = "ROLECALL_RESYNC_PERIOD", default_value = "10m", value_parser = parse_duration)]
    pub resync_period: Duration,

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

/// Parses `90s`, `10m`, `1h` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let value: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 10m or 1h"))?;
    let seconds = match unit {
        "" | "s" => value,
        "m" => value * 60,
        "h" => value * 3600,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (use s, m or h)")),
    };
    if seconds == 0 {
        return Err("the period must be positive".into());
    }
    Ok(Duration::from_secs(seconds))
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
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
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
    let shutdown = shutdown_signal().shared();

    let (address, server) =
        crate::telemetry::bind(args.http_address, telemetry.clone(), shutdown.clone())
            .await
            .map_err(|error| format!("cannot listen on {}: {error}", args.http_address))?;
    tracing::info!("serving /metrics, /healthz and /readyz on http://{address}");
    let server = tokio::spawn(server);

    let client = Client::try_default().await?;
    let aws = AwsClients::from_args(&args.aws).await;
    let prefix = account_prefix(&aws).await?;
    let scopes: Vec<Option<String>> = if args.watch_namespaces.is_empty() {
        vec![None]
    } else {
        args.watch_namespaces.iter().cloned().map(Some).collect()
    };
    telemetry.health.expect_scopes(scopes.len());
    let contexts: Vec<Arc<Context>> = scopes
        .into_iter()
        .map(|namespace| {
            let settings = Settings {
                cluster_name: args.cluster_name.clone(),
                dry_run: args.dry_run,
                resync: args.resync_period,
                namespace,
            };
            let context = Context::new(
                client.clone(),
                &aws,
                calls.clone(),
                settings,
                prefix.clone(),
            );
            Arc::new(context.with_telemetry(telemetry.clone()))
        })
        .collect();
    tracing::info!(cluster = %args.cluster_name, dry_run = args.dry_run,
        namespaces = ?args.watch_namespaces, "rolecall starting");

    let concurrency = args.concurrency;
    let run_all = move |stop: futures::future::BoxFuture<'static, ()>| {
        let stop = stop.shared();
        futures::future::join_all(
            contexts
                .into_iter()
                .map(move |ctx| run_controllers(ctx, concurrency, stop.clone())),
        )
        .map(|_| ())
    };
    let outcome = if args.leader.leader_election {
        crate::leader::run_as_leader(
            client,
            &args.leader,
            &telemetry.health,
            shutdown.clone(),
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

/// Builds the shared context; asks STS who we are to know the account's ARN prefix.
pub async fn context(
    client: Client,
    aws: &AwsClients,
    settings: Settings,
) -> Result<Arc<Context>, Box<dyn std::error::Error + Send + Sync>> {
    let prefix = account_prefix(aws).await?;
    Ok(Arc::new(Context::new(
        client,
        aws,
        Arc::new(CallLog::default()),
        settings,
        prefix,
    )))
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

fn api<K>(ctx: &Context) -> Api<K>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    match &ctx.settings.namespace {
        Some(namespace) => Api::namespaced(ctx.client.clone(), namespace),
        None => Api::all(ctx.client.clone()),
    }
}

/// Runs every controller until `shutdown` completes; each then finishes its in-flight work.
pub async fn run_controllers(
    ctx: Arc<Context>,
    concurrency: u16,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let shutdown = shutdown.shared();
    // Unlimited here: the gates limit and order the work (see controllers::gate).
    let config = ControllerConfig::default();
    let gates: [Arc<Gate>; 4] = std::array::from_fn(|_| Gate::new(concurrency.into()));
    tokio::spawn({
        let (gates, shutdown) = (gates.clone(), shutdown.clone());
        async move {
            shutdown.await;
            gates.iter().for_each(|gate| gate.close());
        }
    });
    let kinds = [
        kind_name::<IamPolicy>(),
        kind_name::<IamRole>(),
        kind_name::<InstanceProfile>(),
        kind_name::<Ec2InstanceBinding>(),
    ];
    for (kind, gate) in kinds.into_iter().zip(&gates) {
        let gate = gate.clone();
        ctx.telemetry
            .metrics
            .count_waiting(kind, move || gate.waiting_by_lane());
    }
    let [policy_gate, role_gate, profile_gate, binding_gate] = gates;
    let watch = watcher::Config::default();

    let policies =
        Controller::new(api::<IamPolicy>(&ctx), watch.clone()).with_config(config.clone());
    let policy_store = policies.store();
    let policies = policies
        .graceful_shutdown_on(shutdown.clone())
        .run(
            gated(policy_gate, policy_store.clone()),
            error_policy::<IamPolicy>,
            ctx.clone(),
        )
        .for_each(log_result::<IamPolicy>);

    let roles = Controller::new(api::<IamRole>(&ctx), watch.clone()).with_config(config.clone());
    let role_store = roles.store();
    let roles_seen = role_store.clone();
    // A policy becoming Ready (or changing ARN) re-triggers the roles that reference it at once.
    let roles = roles
        .watches(
            api::<IamPolicy>(&ctx),
            watch.clone(),
            move |policy: IamPolicy| {
                let namespace = policy.namespace();
                let name = policy.name_any();
                role_store
                    .state()
                    .into_iter()
                    .filter(|role| {
                        role.namespace() == namespace
                            && role.spec.policy_refs.iter().any(|r| r.name == name)
                    })
                    .map(|role| ObjectRef::from_obj(role.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(shutdown.clone())
        .run(
            gated(role_gate, roles_seen.clone()),
            error_policy::<IamRole>,
            ctx.clone(),
        )
        .for_each(log_result::<IamRole>);

    let profiles =
        Controller::new(api::<InstanceProfile>(&ctx), watch.clone()).with_config(config.clone());
    let profile_store = profiles.store();
    let profiles_seen = profile_store.clone();
    let profiles = profiles
        .watches(api::<IamRole>(&ctx), watch.clone(), move |role: IamRole| {
            let namespace = role.namespace();
            let name = role.name_any();
            profile_store
                .state()
                .into_iter()
                .filter(|profile| {
                    profile.namespace() == namespace
                        && profile
                            .spec
                            .role_ref
                            .as_ref()
                            .is_some_and(|r| r.name == name)
                })
                .map(|profile| ObjectRef::from_obj(profile.as_ref()))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(shutdown.clone())
        .run(
            gated(profile_gate, profiles_seen.clone()),
            error_policy::<InstanceProfile>,
            ctx.clone(),
        )
        .for_each(log_result::<InstanceProfile>);

    let bindings =
        Controller::new(api::<Ec2InstanceBinding>(&ctx), watch.clone()).with_config(config);
    let binding_store = bindings.store();
    let bindings_seen = binding_store.clone();
    let _ = ctx.bindings.set(binding_store.clone());
    let by_profile = binding_store.clone();
    let bindings = bindings
        .watches(
            api::<InstanceProfile>(&ctx),
            watch.clone(),
            move |profile: InstanceProfile| {
                let namespace = profile.namespace();
                let name = profile.name_any();
                by_profile
                    .state()
                    .into_iter()
                    .filter(|binding| {
                        binding.namespace() == namespace
                            && binding
                                .spec
                                .instance_profile_ref
                                .as_ref()
                                .is_some_and(|r| r.name == name)
                    })
                    .map(|binding| ObjectRef::from_obj(binding.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        // A binding that finds a conflict wakes the bindings it conflicts with, so both report it.
        .watches(
            api::<Ec2InstanceBinding>(&ctx),
            watch,
            move |changed: Ec2InstanceBinding| {
                let contested: Vec<String> = changed
                    .status
                    .iter()
                    .flat_map(|status| status.instances.iter())
                    .filter(|instance| instance.state == "conflict")
                    .map(|instance| instance.instance_id.clone())
                    .collect();
                binding_store
                    .state()
                    .into_iter()
                    .filter(|other| other.uid() != changed.uid())
                    .filter(|other| {
                        other
                            .status
                            .iter()
                            .flat_map(|s| s.instances.iter())
                            .any(|i| contested.contains(&i.instance_id))
                    })
                    .map(|other| ObjectRef::from_obj(other.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(shutdown)
        .run(
            gated(binding_gate, bindings_seen.clone()),
            error_policy::<Ec2InstanceBinding>,
            ctx.clone(),
        )
        .for_each(log_result::<Ec2InstanceBinding>);

    count_objects(&ctx, policy_store.clone());
    count_objects(&ctx, roles_seen.clone());
    count_objects(&ctx, profiles_seen.clone());
    count_objects(&ctx, bindings_seen.clone());
    let telemetry = ctx.telemetry.clone();
    // Polled rather than awaited: a store's readiness wakes only its last waiter, and the
    // controller waits on it too (kube-runtime's DelayedInit keeps a single waker).
    tokio::spawn(async move {
        loop {
            let synced = [
                policy_store.wait_until_ready().now_or_never(),
                roles_seen.wait_until_ready().now_or_never(),
                profiles_seen.wait_until_ready().now_or_never(),
                bindings_seen.wait_until_ready().now_or_never(),
            ];
            if synced.iter().all(|ready| matches!(ready, Some(Ok(())))) {
                telemetry.health.scope_synced();
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });

    futures::join!(policies, roles, profiles, bindings);
}

/// Lets `/metrics` count the objects in `store` by Ready state.
fn count_objects<K: Managed>(ctx: &Context, store: Store<K>) {
    ctx.telemetry
        .metrics
        .count_objects(kind_name::<K>(), move || ready_counts(&store.state()));
}

fn ready_counts<K: Managed>(objects: &[Arc<K>]) -> ReadyCounts {
    let mut counts = ReadyCounts::default();
    for object in objects {
        let mut status = object.current_status().cloned().unwrap_or_default();
        let ready = K::status_mut(&mut status)
            .conditions
            .iter()
            .find(|condition| condition.type_ == crate::conditions::READY)
            .map(|condition| condition.status.clone());
        match ready.as_deref() {
            Some("True") => counts.ready += 1,
            Some("False") => counts.not_ready += 1,
            _ => counts.unknown += 1,
        }
    }
    counts
}

async fn log_result<K: Managed>(
    result: Result<
        (ObjectRef<K>, kube::runtime::controller::Action),
        kube::runtime::controller::Error<crate::error::Error, watcher::Error>,
    >,
) {
    match result {
        Ok((object, _)) => tracing::debug!(%object, "reconciled"),
        Err(kube::runtime::controller::Error::ReconcilerFailed(error, object)) => {
            tracing::debug!(%object, %error, "reconcile failed; retrying with backoff")
        }
        // A deleted object still queued: nothing to do.
        Err(kube::runtime::controller::Error::ObjectNotFound(object)) => {
            tracing::debug!(%object, "object gone before its reconcile")
        }
        Err(error) => tracing::warn!(%error, "controller error"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("42"), Ok(Duration::from_secs(42)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5 days").is_err());
    }
}
