//! Liveness and readiness: ready once every watched scope's caches are synced, or while
//! standing by for the leader lease.

use std::sync::Mutex;

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
}

impl Default for Health {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                leadership: Leadership::Disabled,
                scopes: 1,
                synced: 0,
            }),
        }
    }
}

impl Health {
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

#[cfg(test)]
mod tests {
    use super::*;

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
