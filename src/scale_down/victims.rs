//! Choosing which groups to remove on scale down.
//!
//! Candidates are ranked by a value per group when every candidate has one (from
//! Prometheus, else from annotations); otherwise the highest group ids go first. Ties break
//! toward the higher id.

use std::cmp::Ordering;
use std::collections::BTreeMap;

/// Where the ranking came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecisionSource {
    /// A Prometheus query.
    Metric,
    /// The `autoscaling.rsg.metric.values` annotation.
    Annotation,
    /// No values: highest group id first.
    GroupId,
}

impl DecisionSource {
    /// The name written to status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Metric => "Metric",
            Self::Annotation => "Annotation",
            Self::GroupId => "GroupId",
        }
    }
}

/// Sort order of values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Smallest values are removed first.
    Ascending,
    /// Largest values are removed first.
    Descending,
}

impl Order {
    /// From the spec's string; anything but `descending` is ascending.
    pub fn parse(order: Option<&str>) -> Self {
        if order == Some("descending") {
            Self::Descending
        } else {
            Self::Ascending
        }
    }
}

/// A scale-down decision.
#[derive(Clone, Debug, PartialEq)]
pub struct VictimDecision {
    /// The groups to remove, in removal order.
    pub victims: Vec<i32>,
    /// What decided.
    pub source: DecisionSource,
    /// Why this source decided.
    pub reason: String,
    /// Every candidate with the value it was ranked by.
    pub candidates: Vec<(i32, Option<f64>)>,
}

/// Ranks `candidates` by `values` (removing `count`), or by id when `values` is `None`.
pub fn choose_victims(
    candidates: &[i32],
    count: usize,
    values: Option<&BTreeMap<i32, f64>>,
    order: Order,
    source: DecisionSource,
    reason: String,
) -> VictimDecision {
    let mut ranked: Vec<(i32, Option<f64>)> = candidates
        .iter()
        .map(|id| (*id, values.and_then(|v| v.get(id).copied())))
        .collect();
    let by_value = values.is_some() && ranked.iter().all(|(_, v)| v.is_some());
    ranked.sort_by(|(a_id, a), (b_id, b)| {
        let by_id = b_id.cmp(a_id);
        if !by_value {
            return by_id;
        }
        let (a, b) = (a.unwrap_or(f64::NAN), b.unwrap_or(f64::NAN));
        let by_value = match order {
            Order::Ascending => a.partial_cmp(&b),
            Order::Descending => b.partial_cmp(&a),
        };
        match by_value {
            Some(Ordering::Equal) | None => by_id,
            Some(ordering) => ordering,
        }
    });
    let mut candidates_with_values: Vec<(i32, Option<f64>)> = candidates
        .iter()
        .map(|id| (*id, values.and_then(|v| v.get(id).copied())))
        .collect();
    candidates_with_values.sort_by_key(|(id, _)| *id);
    VictimDecision {
        victims: ranked.iter().take(count).map(|(id, _)| *id).collect(),
        source: if by_value {
            source
        } else {
            DecisionSource::GroupId
        },
        reason,
        candidates: candidates_with_values,
    }
}

/// The decision when no values are available: highest ids first.
pub fn highest_ids_first(candidates: &[i32], count: usize, reason: String) -> VictimDecision {
    choose_victims(
        candidates,
        count,
        None,
        Order::Ascending,
        DecisionSource::GroupId,
        reason,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(i32, f64)]) -> BTreeMap<i32, f64> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn without_values_highest_ids_go_first() {
        let d = highest_ids_first(&[0, 1, 2, 3], 2, "no metric".into());
        assert_eq!(d.victims, vec![3, 2]);
        assert_eq!(d.source, DecisionSource::GroupId);
    }

    #[test]
    fn values_rank_in_both_orders_with_ties_toward_higher_ids() {
        let v = values(&[(0, 5.0), (1, 1.0), (2, 1.0), (3, 9.0)]);
        let asc = choose_victims(
            &[0, 1, 2, 3],
            2,
            Some(&v),
            Order::Ascending,
            DecisionSource::Metric,
            String::new(),
        );
        assert_eq!(asc.victims, vec![2, 1]);
        assert_eq!(asc.source, DecisionSource::Metric);
        let desc = choose_victims(
            &[0, 1, 2, 3],
            2,
            Some(&v),
            Order::Descending,
            DecisionSource::Metric,
            String::new(),
        );
        assert_eq!(desc.victims, vec![3, 0]);
        assert_eq!(
            asc.candidates,
            vec![
                (0, Some(5.0)),
                (1, Some(1.0)),
                (2, Some(1.0)),
                (3, Some(9.0))
            ]
        );
    }

    #[test]
    fn a_missing_value_falls_back_to_ids() {
        let v = values(&[(0, 5.0), (1, 1.0)]);
        let d = choose_victims(
            &[0, 1, 2],
            1,
            Some(&v),
            Order::Ascending,
            DecisionSource::Annotation,
            String::new(),
        );
        assert_eq!((d.victims, d.source), (vec![2], DecisionSource::GroupId));
    }
}
