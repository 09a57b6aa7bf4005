//! Turning Prometheus answers and annotations into one value per candidate group, or the
//! reason there is none.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

/// An instant-query response (`/api/v1/query`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct QueryResponse {
    status: String,
    #[serde(default)]
    data: Option<QueryData>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
struct QueryData {
    #[serde(rename = "resultType")]
    result_type: String,
    #[serde(default)]
    result: Vec<VectorSample>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
struct VectorSample {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    value: (serde_json::Value, String),
}

fn numeric(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

fn missing(candidates: &[i32], found: &BTreeMap<i32, f64>) -> Vec<i32> {
    candidates
        .iter()
        .copied()
        .filter(|id| !found.contains_key(id))
        .collect()
}

/// Why per-group values cannot rank the groups. Only group numbers of the RSG's own groups
/// and values rsg parsed appear in the messages, never a label value of the answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RankingError {
    /// Prometheus gave no answer.
    #[error(transparent)]
    Query(#[from] super::QueryError),
    /// Prometheus answered with an error status.
    #[error("Prometheus answered {status}: {error}")]
    Failed {
        /// The answer's status.
        status: String,
        /// Prometheus' error text.
        error: String,
    },
    /// A successful answer without data.
    #[error("Prometheus answered without data")]
    NoData,
    /// Not an instant vector.
    #[error("expected a vector result, got {0}")]
    NotAVector(String),
    /// A `group_id` label that is not a number.
    #[error("a series has a group_id that is not a group number")]
    GroupIdNotANumber,
    /// A value that is not a finite number.
    #[error("group {0} has a value that is not a finite number")]
    NotFinite(i32),
    /// Two series for one group.
    #[error("group {0} has more than one series")]
    DuplicateSeries(i32),
    /// Groups the answer has no value for.
    #[error("no value for groups {0:?}")]
    MissingValues(Vec<i32>),
    /// An annotation value that is not a number.
    #[error("group {id} has the non-numeric annotation value {text:?}")]
    NonNumericAnnotation {
        /// The group.
        id: i32,
        /// The value found.
        text: String,
    },
    /// Groups whose copy has no annotation.
    #[error("no annotation on groups {0:?}")]
    MissingAnnotations(Vec<i32>),
}

/// One value per candidate from a query response; any gap is an error naming it.
pub fn values_from_response(
    response: &QueryResponse,
    candidates: &[i32],
) -> Result<BTreeMap<i32, f64>, RankingError> {
    if response.status != "success" {
        return Err(RankingError::Failed {
            status: response.status.clone(),
            error: response.error.clone().unwrap_or_default(),
        });
    }
    let data = response.data.as_ref().ok_or(RankingError::NoData)?;
    if data.result_type != "vector" {
        return Err(RankingError::NotAVector(data.result_type.clone()));
    }
    let wanted: BTreeSet<i32> = candidates.iter().copied().collect();
    let mut values = BTreeMap::new();
    for sample in &data.result {
        let Some(label) = sample.metric.get("group_id") else {
            continue;
        };
        // Label values never reach status or Events: only the ids of this RSG's groups do.
        let Ok(id) = label.trim().parse::<i32>() else {
            return Err(RankingError::GroupIdNotANumber);
        };
        if !wanted.contains(&id) {
            continue;
        }
        let Some(value) = numeric(&sample.value.1) else {
            return Err(RankingError::NotFinite(id));
        };
        if values.insert(id, value).is_some() {
            return Err(RankingError::DuplicateSeries(id));
        }
    }
    let gaps = missing(candidates, &values);
    if !gaps.is_empty() {
        return Err(RankingError::MissingValues(gaps));
    }
    Ok(values)
}

/// Every finite per-group value in a successful vector response, whatever groups it covers.
pub fn present_values(response: &QueryResponse) -> Option<BTreeMap<i32, f64>> {
    if response.status != "success" {
        return None;
    }
    let data = response
        .data
        .as_ref()
        .filter(|d| d.result_type == "vector")?;
    Some(
        data.result
            .iter()
            .filter_map(|s| {
                Some((
                    s.metric.get("group_id")?.trim().parse().ok()?,
                    numeric(&s.value.1)?,
                ))
            })
            .collect(),
    )
}

/// One value per candidate from the annotation on each group's copy of the first target.
pub fn values_from_annotations(
    annotations: &BTreeMap<i32, Option<String>>,
    candidates: &[i32],
) -> Result<BTreeMap<i32, f64>, RankingError> {
    let mut values = BTreeMap::new();
    let mut gaps = Vec::new();
    for id in candidates {
        match annotations.get(id).and_then(|a| a.as_deref()) {
            None => gaps.push(*id),
            Some(text) => match numeric(text) {
                Some(value) => {
                    values.insert(*id, value);
                }
                None => {
                    return Err(RankingError::NonNumericAnnotation {
                        id: *id,
                        text: text.to_string(),
                    })
                }
            },
        }
    }
    if gaps.is_empty() {
        Ok(values)
    } else {
        Err(RankingError::MissingAnnotations(gaps))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(json: &str) -> QueryResponse {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn complete_vectors_give_one_value_per_group() {
        let r = response(
            r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"group_id":"0"},"value":[1700000000.1,"4"]},
            {"metric":{"group_id":"1"},"value":[1700000000.1,"0.5"]},
            {"metric":{"group_id":"7"},"value":[1700000000.1,"9"]},
            {"metric":{},"value":[1700000000.1,"3"]}]}}"#,
        );
        assert_eq!(
            values_from_response(&r, &[0, 1]),
            Ok(BTreeMap::from([(0, 4.0), (1, 0.5)]))
        );
    }

    #[test]
    fn gaps_and_garbage_are_errors() {
        let cases = [
            (
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"group_id":"0"},"value":[1,"4"]}]}}"#,
                "no value for groups [1]",
            ),
            (
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"group_id":"0"},"value":[1,"NaN"]},{"metric":{"group_id":"1"},"value":[1,"1"]}]}}"#,
                "group 0 has a value that is not a finite number",
            ),
            (
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"group_id":"0"},"value":[1,"+Inf"]},{"metric":{"group_id":"1"},"value":[1,"1"]}]}}"#,
                "group 0 has a value that is not a finite number",
            ),
            (
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"group_id":"0","a":"x"},"value":[1,"1"]},{"metric":{"group_id":"0","a":"y"},"value":[1,"2"]},{"metric":{"group_id":"1"},"value":[1,"1"]}]}}"#,
                "group 0 has more than one series",
            ),
            (
                r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#,
                "Prometheus answered error: parse error",
            ),
            (
                r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#,
                "expected a vector result, got matrix",
            ),
            (
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"group_id":"abc"},"value":[1,"1"]}]}}"#,
                "a series has a group_id that is not a group number",
            ),
        ];
        for (json, expected) in cases {
            assert_eq!(
                values_from_response(&response(json), &[0, 1]).map_err(|e| e.to_string()),
                Err(expected.to_string()),
                "{json}"
            );
        }
    }

    #[test]
    fn annotations_must_cover_every_candidate_with_numbers() {
        let all = BTreeMap::from([(0, Some("3".to_string())), (2, Some(" 1.5 ".to_string()))]);
        assert_eq!(
            values_from_annotations(&all, &[0, 2]),
            Ok(BTreeMap::from([(0, 3.0), (2, 1.5)]))
        );
        let gap = BTreeMap::from([(0, Some("3".to_string())), (2, None)]);
        assert_eq!(
            values_from_annotations(&gap, &[0, 2]).map_err(|e| e.to_string()),
            Err("no annotation on groups [2]".into())
        );
        let bad = BTreeMap::from([(0, Some("lots".to_string()))]);
        assert!(values_from_annotations(&bad, &[0]).is_err());
    }
}
