//! Leader election on a coordination.k8s.io Lease (kube-lease-manager): only the holder
//! reconciles; the others stand by, ready to take over when the lease expires.

use std::future::Future;
use std::time::Duration;

use futures::FutureExt;
use futures::future::Shared;
use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;

use crate::telemetry::{Health, Leadership};

#[derive(clap::Args, Clone, Debug)]
pub struct LeaderArgs {
    /// Reconcile only while holding the leader Lease, so several replicas can run and one acts.
    #[arg(long, env = "ROLECALL_LEADER_ELECTION")]
    pub leader_election: bool,

    /// Namespace of the Lease (defaults to $POD_NAMESPACE, else `default`).
    #[arg(long, env = "ROLECALL_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,

    /// Name of the Lease.
    #[arg(
        long,
        env = "ROLECALL_LEADER_ELECTION_LEASE_NAME",
        default_value = "rolecall"
    )]
    pub leader_election_lease_name: String,

    /// How long a lease lasts without renewal: the longest a stand-by waits after the leader
    /// dies. The leader renews it a third of this before it runs out.
    #[arg(
        long,
        env = "ROLECALL_LEADER_ELECTION_LEASE_DURATION",
        default_value = "15s",
        value_parser = crate::cli::parse_duration
    )]
    pub leader_election_lease_duration: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("lost the leader lease; exiting so that a fresh process stands for election")]
    Lost,

    #[error("the leader election task stopped ({0}); exiting so that a fresh process stands")]
    Stopped(String),
}

/// This process's identity in the Lease: the pod (or host) name and a random suffix, so two
/// processes on one host never share one.
pub fn identity() -> String {
    let base = std::env::var("POD_NAME")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|name| name.trim().to_owned())
        })
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "rolecall".into());
    let mut suffix = [0u8; 4];
    getrandom::fill(&mut suffix).expect("random bytes");
    let suffix: String = suffix.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("{base}_{suffix}")
}

/// Waits for the lease, then runs `work` until `shutdown` or until the lease is lost (calling
/// `on_lost` the moment it is). Releases the lease on shutdown so a stand-by takes over at once.
pub async fn run_as_leader<W, Fut>(
    client: Client,
    args: &LeaderArgs,
    health: &Health,
    shutdown: Shared<impl Future<Output = ()> + Send + 'static>,
    on_lost: impl FnOnce() + Send + 'static,
    work: W,
) -> Result<(), LeaderError>
where
    W: FnOnce(futures::future::BoxFuture<'static, ()>) -> Fut,
    Fut: Future<Output = ()>,
{
    let namespace = args
        .leader_election_namespace
        .clone()
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .unwrap_or_else(|| "default".into());
    let identity = identity();
    let duration = args.leader_election_lease_duration.as_secs().max(3);
    health.set_leadership(Leadership::Starting);

    let manager = loop {
        let built = LeaseManagerBuilder::new(client.clone(), &args.leader_election_lease_name)
            .with_namespace(&namespace)
            .with_identity(&identity)
            .with_duration(duration)
            .with_grace((duration / 3).max(1))
            .build();
        let attempt = tokio::select! {
            () = shutdown.clone() => return Ok(()),
            built = built => built,
        };
        match attempt {
            Ok(manager) => break manager,
            Err(error) => {
                tracing::error!(%error, lease = %args.leader_election_lease_name, %namespace,
                    "cannot use the leader election Lease; retrying in 5s");
                tokio::select! {
                    () = shutdown.clone() => return Ok(()),
                    () = tokio::time::sleep(Duration::from_secs(5)) => {},
                }
            }
        }
    };
    let (mut leading, lease_task) = manager.watch().await;
    health.set_leadership(Leadership::StandingBy);
    tracing::info!(%identity, lease = %args.leader_election_lease_name, %namespace,
        "standing by for the leader lease");

    let acquired = tokio::select! {
        () = shutdown.clone() => None,
        changed = leading.wait_for(|leads| *leads) => Some(changed.is_ok()),
    };
    match acquired {
        None => {
            drop(leading);
            let _ = lease_task.await;
            return Ok(());
        }
        // The lease task closed the channel without being asked to: it ended on its own,
        // and this stand-by would otherwise wait forever, looking healthy.
        Some(false) => {
            let why = match lease_task.await {
                Ok(Ok(_)) => "ended".to_owned(),
                Ok(Err(error)) => error.to_string(),
                Err(error) => error.to_string(),
            };
            health.task_stopped("the leader election");
            return Err(LeaderError::Stopped(why));
        }
        Some(true) => {}
    }
    health.set_leadership(Leadership::Leading);
    tracing::info!(%identity, "acquired the leader lease: reconciling");

    let mut watch_lost = leading.clone();
    let lost = async move {
        let _ = watch_lost.wait_for(|leads| !*leads).await;
        // At once, not after in-flight reconciles finish: a stand-by may already lead.
        on_lost();
    }
    .shared();
    let stop = futures::future::select(Box::pin(shutdown.clone()), Box::pin(lost.clone()))
        .map(|_| ())
        .boxed();
    work(stop).await;

    if lost.clone().now_or_never().is_some() && shutdown.clone().now_or_never().is_none() {
        health.set_leadership(Leadership::StandingBy);
        return Err(LeaderError::Lost);
    }
    // Closing the channel makes the lease task release the lease.
    drop(leading);
    let _ = lease_task.await;
    tracing::info!("released the leader lease");
    Ok(())
}
