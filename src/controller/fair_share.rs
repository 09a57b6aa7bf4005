//! Fair shares of the reconcile workers between namespaces (tenants).
//!
//! One namespace may always hold its share of the workers (half of them). Past its share it
//! may take more only while a reserve stays free for other namespaces (a quarter of the
//! workers), so a lone namespace's fleet gets three quarters of the workers and a namespace
//! that arrives later still finds a worker at once. A reconcile of an RSG whose namespace
//! cannot take a turn does nothing: the RSG waits in its namespace's line and is woken when
//! one of that namespace's reconciles ends (first in, first woken; one woken but beaten to
//! the turn keeps its place at the front). A thousand RSGs of one tenant waiting on a slow
//! Prometheus keep that tenant's workers busy, and the others' RSGs still find a worker at
//! once; a waiting RSG costs nothing until its turn comes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::Duration;

/// Called with the namespace and name of an RSG whose turn may have come.
pub type Wake = Box<dyn Fn(&str, &str) + Send + Sync>;

/// Reconciles in flight per namespace, bounded, and the RSGs waiting for a turn.
pub struct NamespaceShares {
    state: Mutex<State>,
    per_namespace: usize,
    /// Past its share, a namespace takes a turn only while fewer than this many reconciles
    /// are in flight in all: the workers less the reserve kept for other namespaces.
    over_share_limit: usize,
    wake: Wake,
}

#[derive(Default)]
struct State {
    in_flight: HashMap<String, usize>,
    waiting: HashMap<String, Line>,
}

/// How many woken RSGs a line remembers, to put one beaten to its turn back at the front.
/// Bounded: one woken for an RSG deleted meanwhile never asks.
const WOKEN_REMEMBERED: usize = 64;

/// A namespace's RSGs waiting for a turn, in order; `woken`, the last ones told their turn
/// may have come.
#[derive(Default)]
struct Line {
    order: VecDeque<Box<str>>,
    waiting: HashSet<Box<str>>,
    woken: VecDeque<Box<str>>,
}

impl Line {
    /// Nothing waits and nobody woken is remembered: the line can go.
    fn is_empty(&self) -> bool {
        self.waiting.is_empty() && self.woken.is_empty()
    }

    /// `name` asks for a turn: it no longer waits. Returns where it stood in the line.
    fn arrived(&mut self, name: &str) -> Standing {
        if self.waiting.remove(name) {
            return Standing::Waiting;
        }
        match self.woken.iter().position(|woken| woken.as_ref() == name) {
            Some(at) => {
                self.woken.remove(at);
                Standing::Woken
            }
            None => Standing::New,
        }
    }

    /// `name`, standing where [`Line::arrived`] said, did not get a turn: it waits. One that
    /// was waiting keeps its place (it asked again on its own: an event, its requeue), one
    /// woken goes to the front, a newcomer to the back.
    fn wait(&mut self, name: &str, standing: Standing) {
        self.waiting.insert(name.into());
        match standing {
            Standing::Waiting => {}
            Standing::Woken => self.order.push_front(name.into()),
            Standing::New => self.order.push_back(name.into()),
        }
    }

    /// The first waiting RSG, now woken.
    fn wake_next(&mut self) -> Option<Box<str>> {
        while let Some(name) = self.order.pop_front() {
            // Names that got a turn meanwhile left the line without leaving the queue.
            if self.waiting.remove(&name) {
                if self.woken.len() == WOKEN_REMEMBERED {
                    self.woken.pop_front();
                }
                self.woken.push_back(name.clone());
                return Some(name);
            }
        }
        None
    }
}

/// Where an RSG asking for a turn stood in its namespace's line.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Standing {
    /// Not in the line.
    New,
    /// In the line: its place is still in `order`.
    Waiting,
    /// Woken from the line, its turn may have come.
    Woken,
}

/// A namespace's turn on a worker: held while the reconcile runs, given back on drop, which
/// wakes the namespace's next waiting RSG.
pub struct Turn<'a> {
    shares: &'a NamespaceShares,
    namespace: String,
}

/// How soon a waiting RSG is looked at again should its wake-up be lost (the controller
/// restarting, say): half a minute, spread over up to another half by its name.
pub fn retry_after_deferral(namespace: &str, name: &str) -> Duration {
    let mut hasher = DefaultHasher::new();
    (namespace, name).hash(&mut hasher);
    Duration::from_millis(30_000 + hasher.finish() % 30_000)
}

impl NamespaceShares {
    /// Shares of `per_namespace` reconciles in flight for each namespace among `workers`;
    /// beyond it a namespace may use idle workers up to `workers - reserve` in flight in all.
    /// `wake` asks for a reconcile of an RSG whose turn may have come.
    pub fn new(workers: usize, per_namespace: usize, reserve: usize, wake: Wake) -> Self {
        let per_namespace = per_namespace.max(1);
        Self {
            state: Mutex::new(State::default()),
            per_namespace,
            over_share_limit: workers.saturating_sub(reserve).max(per_namespace),
            wake,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A turn for the RSG `name` of `namespace`, or `None` when its namespace's share is in
    /// use and the idle workers are down to the reserve: it then waits in its namespace's line.
    pub fn try_enter(&self, namespace: &str, name: &str) -> Option<Turn<'_>> {
        let mut state = self.state();
        let standing = match state.waiting.get_mut(namespace) {
            Some(line) => line.arrived(name),
            None => Standing::New,
        };
        let total: usize = state.in_flight.values().sum();
        let count = state.in_flight.get(namespace).copied().unwrap_or_default();
        if count >= self.per_namespace && total >= self.over_share_limit {
            state
                .waiting
                .entry(namespace.to_string())
                .or_default()
                .wait(name, standing);
            return None;
        }
        *state.in_flight.entry(namespace.to_string()).or_default() += 1;
        if state.waiting.get(namespace).is_some_and(Line::is_empty) {
            state.waiting.remove(namespace);
        }
        Some(Turn {
            shares: self,
            namespace: namespace.to_string(),
        })
    }

    /// Reconciles of `namespace` in flight.
    #[cfg(test)]
    pub fn in_flight(&self, namespace: &str) -> usize {
        self.state()
            .in_flight
            .get(namespace)
            .copied()
            .unwrap_or_default()
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let next = {
            let mut state = self.shares.state();
            if let Some(count) = state.in_flight.get_mut(&self.namespace) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    state.in_flight.remove(&self.namespace);
                }
            }
            state
                .waiting
                .get_mut(&self.namespace)
                .and_then(Line::wake_next)
        };
        // Outside the lock: waking sends a reconcile request.
        if let Some(name) = next {
            (self.shares.wake)(&self.namespace, &name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Shares whose wake-ups are recorded, as `namespace/name`.
    fn shares(
        workers: usize,
        per_namespace: usize,
        reserve: usize,
    ) -> (NamespaceShares, Arc<Mutex<Vec<String>>>) {
        let woken = Arc::new(Mutex::new(Vec::new()));
        let record = woken.clone();
        let wake: Wake = Box::new(move |namespace, name| {
            record
                .lock()
                .expect("not poisoned")
                .push(format!("{namespace}/{name}"))
        });
        (
            NamespaceShares::new(workers, per_namespace, reserve, wake),
            woken,
        )
    }

    fn taken(woken: &Mutex<Vec<String>>) -> Vec<String> {
        std::mem::take(&mut *woken.lock().expect("not poisoned"))
    }

    #[test]
    fn a_namespace_past_its_share_with_the_rest_busy_waits_and_others_still_get_turns() {
        // Four workers, shares of two, no reserve: past its share only while workers idle.
        let (shares, _) = shares(4, 2, 0);
        let neighbour = [
            shares.try_enter("neighbour", "n1"),
            shares.try_enter("neighbour", "n2"),
        ];
        let first = shares.try_enter("busy", "b1");
        let second = shares.try_enter("busy", "b2");
        assert!(first.is_some() && second.is_some());
        assert!(
            shares.try_enter("busy", "b3").is_none(),
            "over its share, no worker idle"
        );
        drop(neighbour);
        let other = shares.try_enter("quiet", "q1");
        assert!(other.is_some(), "another namespace is not held back");
        drop(first);
        assert_eq!(shares.in_flight("busy"), 1);
        assert!(
            shares.try_enter("busy", "b3").is_some(),
            "a turn given back is free again"
        );
        drop(other);
        assert_eq!(shares.in_flight("quiet"), 0);
    }

    #[test]
    fn a_lone_namespace_uses_idle_workers_but_leaves_the_reserve_to_others() {
        // Eight workers, shares of four, a reserve of two.
        let (shares, _) = shares(8, 4, 2);
        let busy: Vec<_> = (0..6)
            .map(|i| shares.try_enter("busy", &format!("b{i}")))
            .collect();
        assert!(
            busy.iter().all(Option::is_some),
            "past its share into idle workers"
        );
        assert!(
            shares.try_enter("busy", "b6").is_none(),
            "the reserve stays free"
        );
        let quiet = [
            shares.try_enter("quiet", "q1"),
            shares.try_enter("quiet", "q2"),
        ];
        assert!(quiet.iter().all(Option::is_some), "others find the reserve");
        assert!(
            shares.try_enter("quiet", "q3").is_some(),
            "and their own share, the busy one being past its"
        );
        drop(busy);
        assert_eq!(shares.in_flight("busy"), 0);
    }

    #[test]
    fn a_waiting_rsg_is_woken_when_a_turn_of_its_namespace_ends_first_in_first_woken() {
        // Three workers, shares of one, no reserve.
        let (shares, woken) = shares(3, 1, 0);
        let quiet = shares.try_enter("quiet", "q1");
        let busy = shares.try_enter("busy", "b1");
        let other = shares.try_enter("other", "o1");
        assert!(quiet.is_some() && busy.is_some() && other.is_some());
        for name in ["b2", "b3"] {
            assert!(shares.try_enter("busy", name).is_none(), "{name} waits");
        }
        drop(other);
        assert_eq!(
            taken(&woken),
            Vec::<String>::new(),
            "another namespace's turn wakes none of busy's"
        );
        let other = shares.try_enter("other", "o2");
        assert!(other.is_some());
        drop(busy);
        assert_eq!(taken(&woken), ["busy/b2"], "the first in line, once");
        // Beaten to the turn by b3 (asking on its own), b2 keeps the front of the line,
        // ahead of b4, which came before b2 asked again.
        let b3 = shares.try_enter("busy", "b3");
        assert!(b3.is_some());
        assert!(shares.try_enter("busy", "b4").is_none());
        assert!(shares.try_enter("busy", "b2").is_none());
        drop(b3);
        assert_eq!(taken(&woken), ["busy/b2"]);
        let b2 = shares.try_enter("busy", "b2");
        assert!(b2.is_some(), "woken, its turn has come");
        drop(b2);
        assert_eq!(
            taken(&woken),
            ["busy/b4"],
            "b3 left the line when it got its turn"
        );
    }

    #[test]
    fn a_waiting_rsg_that_asks_again_keeps_its_place_once() {
        // Two workers, shares of one, no reserve.
        let (shares, woken) = shares(2, 1, 0);
        let quiet = shares.try_enter("quiet", "q1");
        let busy = shares.try_enter("busy", "b1");
        assert!(quiet.is_some() && busy.is_some());
        for name in ["b2", "b3", "b2", "b2"] {
            assert!(shares.try_enter("busy", name).is_none(), "{name} waits");
        }
        let queued = shares.state().waiting["busy"].order.len();
        assert_eq!(queued, 2, "b2 asking again takes no second place");
        drop(busy);
        assert_eq!(taken(&woken), ["busy/b2"], "b2 kept the front");
    }

    #[test]
    fn a_waiting_rsg_is_looked_at_again_within_a_minute_should_its_wake_up_be_lost() {
        let delays: Vec<Duration> = (0..50)
            .map(|i| retry_after_deferral("busy", &format!("rsg-{i}")))
            .collect();
        assert!(delays
            .iter()
            .all(|d| (Duration::from_secs(30)..Duration::from_secs(60)).contains(d)));
        assert!(delays.iter().any(|d| *d != delays[0]), "{delays:?}");
        assert_eq!(
            retry_after_deferral("busy", "rsg-1"),
            retry_after_deferral("busy", "rsg-1")
        );
    }
}
