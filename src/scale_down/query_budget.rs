//! Each RSG's bound on Prometheus queries: at most one query per RSG per interval, draining
//! polls included. A reconcile within the interval reuses the RSG's previous answer to the same
//! query; a different query (the spec changed) is sent at once. Pure: time is passed in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::prometheus::QueryError;
use super::values::QueryResponse;
use crate::bounded_map::make_room;

/// What an RSG was last answered.
#[derive(Clone, Debug)]
struct LastQuery {
    at: Instant,
    query: String,
    answer: Result<QueryResponse, QueryError>,
}

/// The last query of every RSG that queried within the interval.
#[derive(Debug)]
pub struct QueryBudget {
    interval: Duration,
    capacity: usize,
    last: HashMap<String, LastQuery>,
    /// When answers older than the interval were last dropped.
    pruned_at: Option<Instant>,
}

impl QueryBudget {
    /// A budget of one query per `interval` per RSG, remembering at most `capacity` RSGs.
    pub fn new(interval: Duration, capacity: usize) -> Self {
        Self {
            interval,
            capacity: capacity.max(1),
            last: HashMap::new(),
            pruned_at: None,
        }
    }

    /// The answer `rsg` got to `query` less than the interval before `now`, if any.
    pub fn reusable(
        &self,
        rsg: &str,
        query: &str,
        now: Instant,
    ) -> Option<Result<QueryResponse, QueryError>> {
        self.last
            .get(rsg)
            .filter(|last| last.query == query && now.duration_since(last.at) < self.interval)
            .map(|last| last.answer.clone())
    }

    /// Records the answer `rsg` got to `query` at `now`. Answers older than the interval are
    /// never reused, so they are dropped (at most once per interval, so recording stays cheap):
    /// only the answers of RSGs that queried lately are held. When still full, the oldest goes.
    pub fn record(
        &mut self,
        rsg: &str,
        query: &str,
        answer: Result<QueryResponse, QueryError>,
        now: Instant,
    ) {
        let prune_due = self
            .pruned_at
            .is_none_or(|at| now.duration_since(at) >= self.interval);
        let full = !self.last.contains_key(rsg) && self.last.len() >= self.capacity;
        if prune_due || full {
            let interval = self.interval;
            self.last
                .retain(|_, last| now.duration_since(last.at) < interval);
            self.pruned_at = Some(now);
        }
        make_room(&mut self.last, &rsg.to_string(), self.capacity, |last| {
            last.at
        });
        self.last.insert(
            rsg.to_string(),
            LastQuery {
                at: now,
                query: query.to_string(),
                answer,
            },
        );
    }

    /// How many RSGs are remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.last.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(text: &str) -> Result<QueryResponse, QueryError> {
        Err(QueryError::Request(text.to_string()))
    }

    #[test]
    fn one_query_per_interval_per_rsg_and_a_new_query_is_sent_at_once() {
        let start = Instant::now();
        let mut budget = QueryBudget::new(Duration::from_secs(5), 100);
        assert!(budget.reusable("ns/a", "q", start).is_none());
        budget.record("ns/a", "q", answer("first"), start);
        let later = start + Duration::from_secs(4);
        assert_eq!(budget.reusable("ns/a", "q", later), Some(answer("first")));
        assert!(budget.reusable("ns/b", "q", later).is_none(), "per RSG");
        assert!(
            budget.reusable("ns/a", "other", later).is_none(),
            "a changed query"
        );
        assert!(budget
            .reusable("ns/a", "q", start + Duration::from_secs(5))
            .is_none());
    }

    #[test]
    fn expired_answers_are_not_held_once_an_interval_has_passed() {
        let start = Instant::now();
        let mut budget = QueryBudget::new(Duration::from_secs(5), 100);
        budget.record("ns/a", "q", answer("a"), start);
        budget.record("ns/b", "q", answer("b"), start + Duration::from_secs(1));
        assert_eq!(budget.len(), 2);
        // Six seconds on, a and b have expired; the next answer recorded drops them.
        budget.record("ns/c", "q", answer("c"), start + Duration::from_secs(7));
        assert_eq!(budget.len(), 1);
        assert_eq!(
            budget.reusable("ns/c", "q", start + Duration::from_secs(8)),
            Some(answer("c"))
        );
    }

    #[test]
    fn a_full_budget_forgets_expired_answers_first_then_the_oldest() {
        let start = Instant::now();
        let mut budget = QueryBudget::new(Duration::from_secs(5), 2);
        budget.record("ns/a", "q", answer("a"), start);
        budget.record("ns/b", "q", answer("b"), start + Duration::from_secs(3));
        // a has expired by now: it goes, b stays.
        let now = start + Duration::from_secs(6);
        budget.record("ns/c", "q", answer("c"), now);
        assert_eq!(budget.len(), 2);
        assert!(budget.reusable("ns/a", "q", now).is_none());
        assert_eq!(budget.reusable("ns/b", "q", now), Some(answer("b")));
        // Nothing expired: the oldest (b) goes.
        let soon = now + Duration::from_secs(1);
        budget.record("ns/d", "q", answer("d"), soon);
        assert_eq!(budget.len(), 2);
        assert!(budget.reusable("ns/b", "q", soon).is_none());
        assert_eq!(budget.reusable("ns/c", "q", soon), Some(answer("c")));
        assert_eq!(budget.reusable("ns/d", "q", soon), Some(answer("d")));
    }
}
