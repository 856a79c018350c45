//! Liveness and readiness: live while every long-running task (controllers, lease, HTTP
//! server) runs; ready once every watched scope's caches are synced, or while standing by for
//! the leader lease.

use std::future::Future;
use std::sync::Mutex;

use futures::FutureExt;
use futures::future::Shared;
use tokio::sync::watch;

/// Where this process stands in leader election.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Leadership {
    /// Leader election is off: this process always reconciles.
    Disabled,
    /// Leader election is on and the lease has not been looked at yet.
    Starting,
    /// Another process holds the lease; this one waits to take over.
    StandingBy,
    Leading,
}

#[derive(Debug)]
struct State {
    leadership: Leadership,
    scopes: usize,
    synced: usize,
}

#[derive(Debug)]
pub struct Health {
    state: Mutex<State>,
    /// The first long-running task that stopped before shutdown, by name.
    stopped: watch::Sender<Option<String>>,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                leadership: Leadership::Disabled,
                scopes: 1,
                synced: 0,
            }),
            stopped: watch::Sender::new(None),
        }
    }
}

impl Health {
    /// Records that a task which should run until shutdown has stopped: `/healthz` fails from
    /// now on, and [`Health::stopped`] completes. The first one named is kept.
    pub fn task_stopped(&self, task: impl Into<String>) {
        mark_stopped(&self.stopped, task.into());
    }

    /// Runs `task`, a future that should live until `shutdown`; if it ends earlier, it is
    /// recorded as stopped under `name`.
    pub fn supervise<T, S>(
        &self,
        name: impl Into<String>,
        task: T,
        shutdown: Shared<S>,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        T: Future<Output = ()> + Send + 'static,
        S: Future<Output = ()> + Send + 'static,
    {
        let (name, stopped) = (name.into(), self.stopped.clone());
        async move {
            task.await;
            if shutdown.now_or_never().is_none() {
                tracing::error!(task = %name, "stopped before shutdown");
                mark_stopped(&stopped, name);
            }
        }
    }

    /// Completes once a long-running task has stopped before shutdown.
    pub fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stopped = self.stopped.subscribe();
        async move {
            // The sender lives in `self`; while it does, the wait ends only on a stop.
            if stopped.wait_for(Option::is_some).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Whether `/healthz` answers 200, and the words it answers with.
    pub fn liveness(&self) -> (bool, String) {
        match self.stopped.borrow().as_deref() {
            None => (true, "ok".into()),
            Some(task) => (false, format!("{task} stopped")),
        }
    }

    /// The task that stopped before shutdown, if one did.
    pub fn stopped_task(&self) -> Option<String> {
        self.stopped.borrow().clone()
    }

    /// How many watched scopes (namespaces, or the whole cluster) must sync before ready.
    pub fn expect_scopes(&self, scopes: usize) {
        self.state.lock().expect("health lock").scopes = scopes;
    }

    /// One scope's four caches hold their first full list.
    pub fn scope_synced(&self) {
        self.state.lock().expect("health lock").synced += 1;
    }

    pub fn set_leadership(&self, leadership: Leadership) {
        self.state.lock().expect("health lock").leadership = leadership;
    }

    /// `None` when leader election is off, else whether this process leads.
    pub fn leading(&self) -> Option<bool> {
        match self.state.lock().expect("health lock").leadership {
            Leadership::Disabled => None,
            Leadership::Leading => Some(true),
            Leadership::Starting | Leadership::StandingBy => Some(false),
        }
    }

    /// Whether `/readyz` answers 200, and the words it answers with.
    pub fn readiness(&self) -> (bool, String) {
        let state = self.state.lock().expect("health lock");
        match state.leadership {
            Leadership::Starting => (false, "waiting for the leader election lease".into()),
            Leadership::StandingBy => (true, "standing by: another replica leads".into()),
            Leadership::Disabled | Leadership::Leading if state.synced >= state.scopes => {
                (true, "ok: caches synced".into())
            }
            Leadership::Disabled | Leadership::Leading => (
                false,
                format!(
                    "caches syncing: {} of {} scopes listed",
                    state.synced, state.scopes
                ),
            ),
        }
    }
}

fn mark_stopped(stopped: &watch::Sender<Option<String>>, task: String) {
    stopped.send_if_modified(|first| {
        let unset = first.is_none();
        if unset {
            *first = Some(task);
        }
        unset
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_ends_before_shutdown_fails_liveness_and_is_reported() {
        let health = Health::default();
        assert_eq!(health.liveness(), (true, "ok".into()));
        let stopped = health.stopped();
        let never = std::future::pending::<()>().shared();
        health
            .supervise("the IamRole controller", async {}, never.clone())
            .await;
        assert_eq!(
            health.liveness(),
            (false, "the IamRole controller stopped".into())
        );
        tokio::time::timeout(std::time::Duration::from_secs(1), stopped)
            .await
            .expect("stopped() completes once a task stopped");
        // The first one stays named.
        health.supervise("the HTTP server", async {}, never).await;
        assert_eq!(
            health.stopped_task().as_deref(),
            Some("the IamRole controller")
        );
    }

    #[tokio::test]
    async fn a_task_that_ends_at_shutdown_is_no_failure() {
        let health = Health::default();
        let shutdown = std::future::ready(()).shared();
        health
            .supervise("the IamPolicy controller", async {}, shutdown)
            .await;
        assert_eq!(health.liveness(), (true, "ok".into()));
        assert!(health.stopped().now_or_never().is_none());
    }

    #[test]
    fn ready_after_every_scope_synced() {
        let health = Health::default();
        health.expect_scopes(2);
        assert!(!health.readiness().0);
        health.scope_synced();
        assert_eq!(
            health.readiness(),
            (false, "caches syncing: 1 of 2 scopes listed".into())
        );
        health.scope_synced();
        assert!(health.readiness().0);
        assert_eq!(health.leading(), None);
    }

    #[test]
    fn a_standby_is_ready_and_a_new_leader_waits_for_its_caches() {
        let health = Health::default();
        health.set_leadership(Leadership::Starting);
        assert!(!health.readiness().0);
        health.set_leadership(Leadership::StandingBy);
        assert!(health.readiness().0);
        assert_eq!(health.leading(), Some(false));
        health.set_leadership(Leadership::Leading);
        assert!(!health.readiness().0);
        health.scope_synced();
        assert!(health.readiness().0);
        assert_eq!(health.leading(), Some(true));
    }
}
