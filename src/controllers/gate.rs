//! A fair limit on the reconciles of one kind running at once, with work ahead of drift checks.
//!
//! kube-runtime's own limit (`controller::Config::concurrency`) parks due objects in a hash set
//! and takes them out in hash order: while the queue never drains (a thousand converged objects
//! resyncing against a slow or throttling AWS) the same objects keep winning and others are
//! never reconciled, new ones included. So rolecall runs the controller unlimited and queues
//! here instead: first come, first served within a lane, and objects that need work (new,
//! changed, failing, being deleted) before converged ones that only check for drift.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// Which queue a reconcile waits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// New, changed, failing or deleted: someone is waiting for it.
    Work,
    /// Converged at its generation: a periodic look for drift.
    DriftCheck,
}

#[derive(Debug)]
enum Turn {
    Go,
    Closed,
}

#[derive(Default)]
struct State {
    free: usize,
    closed: bool,
    work: VecDeque<oneshot::Sender<Turn>>,
    drift_checks: VecDeque<oneshot::Sender<Turn>>,
}

impl State {
    fn next_waiter(&mut self) -> Option<oneshot::Sender<Turn>> {
        self.work
            .pop_front()
            .or_else(|| self.drift_checks.pop_front())
    }

    fn waiting(&self) -> usize {
        self.work.len() + self.drift_checks.len()
    }
}

pub struct Gate {
    state: Mutex<State>,
}

/// The right to run one reconcile; handed to the next waiter when dropped.
pub struct Permit {
    gate: Arc<Gate>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.gate.release();
    }
}

/// A queued `enter`: if it is dropped after being handed a permit but before taking it, the
/// permit goes on to the next waiter instead of being lost.
struct Waiting {
    gate: Arc<Gate>,
    turn: Option<oneshot::Receiver<Turn>>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(mut turn) = self.turn.take() {
            turn.close();
            if let Ok(Turn::Go) = turn.try_recv() {
                self.gate.release();
            }
        }
    }
}

impl Gate {
    pub fn new(permits: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                free: permits.max(1),
                ..State::default()
            }),
        })
    }

    /// Waits for a turn; `None` once the gate is closed (shutting down).
    pub async fn enter(self: &Arc<Self>, lane: Lane) -> Option<Permit> {
        let turn = {
            let mut state = self.state.lock().expect("gate lock");
            if state.closed {
                return None;
            }
            if state.free > 0 && state.waiting() == 0 {
                state.free -= 1;
                return Some(Permit { gate: self.clone() });
            }
            let (sender, receiver) = oneshot::channel();
            match lane {
                Lane::Work => state.work.push_back(sender),
                Lane::DriftCheck => state.drift_checks.push_back(sender),
            }
            receiver
        };
        let mut waiting = Waiting {
            gate: self.clone(),
            turn: Some(turn),
        };
        let turn = waiting.turn.as_mut().expect("receiver").await;
        waiting.turn = None;
        match turn {
            Ok(Turn::Go) => Some(Permit { gate: self.clone() }),
            Ok(Turn::Closed) | Err(_) => None,
        }
    }

    /// Turns every waiter away and refuses new ones; running reconciles finish.
    pub fn close(&self) {
        let mut state = self.state.lock().expect("gate lock");
        state.closed = true;
        while let Some(waiter) = state.next_waiter() {
            let _ = waiter.send(Turn::Closed);
        }
    }

    /// Reconciles queued for a turn.
    pub fn waiting(&self) -> usize {
        self.state.lock().expect("gate lock").waiting()
    }

    /// Reconciles queued for a turn: (work, drift checks).
    pub fn waiting_by_lane(&self) -> (usize, usize) {
        let state = self.state.lock().expect("gate lock");
        (state.work.len(), state.drift_checks.len())
    }

    fn release(&self) {
        let mut state = self.state.lock().expect("gate lock");
        // A waiter that went away refuses the turn; the next one gets it.
        while let Some(waiter) = state.next_waiter() {
            if waiter.send(Turn::Go).is_ok() {
                return;
            }
        }
        state.free += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn never_more_than_the_permits_at_once() {
        let gate = Gate::new(3);
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let (gate, running, most) = (gate.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    let lane = if i % 2 == 0 {
                        Lane::Work
                    } else {
                        Lane::DriftCheck
                    };
                    let _permit = gate.enter(lane).await.expect("open");
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 3);
        assert!(gate.enter(Lane::Work).now_or_never().flatten().is_some());
    }

    #[tokio::test]
    async fn work_goes_before_drift_checks_and_each_lane_in_arrival_order() {
        let gate = Gate::new(1);
        let holder = gate.enter(Lane::Work).await.expect("open");
        let lanes = [
            Lane::DriftCheck,
            Lane::DriftCheck,
            Lane::Work,
            Lane::DriftCheck,
            Lane::Work,
        ];
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (index, lane) in lanes.into_iter().enumerate() {
            let (queued, order) = (gate.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = queued.enter(lane).await.expect("open");
                order.lock().unwrap().push(index);
            }));
            // Each is queued before the next one asks.
            while gate.waiting() < index + 1 {
                tokio::task::yield_now().await;
            }
        }
        drop(holder);
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [2, 4, 0, 1, 3]);
    }

    #[tokio::test]
    async fn a_waiter_dropped_after_its_turn_came_passes_the_permit_on() {
        let gate = Gate::new(1);
        let holder = gate.enter(Lane::Work).await.expect("open");
        let mut abandoned = Box::pin(gate.enter(Lane::Work));
        assert!(futures::poll!(&mut abandoned).is_pending());
        assert_eq!(gate.waiting(), 1);
        drop(holder); // the turn goes to `abandoned`, which never looks at it
        drop(abandoned);
        assert!(
            gate.enter(Lane::DriftCheck)
                .now_or_never()
                .flatten()
                .is_some(),
            "the permit was lost with the abandoned waiter"
        );
    }

    #[tokio::test]
    async fn closing_turns_waiters_away_and_refuses_new_ones() {
        let gate = Gate::new(1);
        let _holder = gate.enter(Lane::Work).await.expect("open");
        let waiter = tokio::spawn({
            let gate = gate.clone();
            async move { gate.enter(Lane::Work).await.is_some() }
        });
        while gate.waiting() < 1 {
            tokio::task::yield_now().await;
        }
        gate.close();
        assert!(!waiter.await.unwrap(), "a waiter got a turn after close");
        assert!(gate.enter(Lane::Work).await.is_none());
    }
}
