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

/// One value per candidate from a query response; any gap is an error naming it.
pub fn values_from_response(
    response: &QueryResponse,
    candidates: &[i32],
) -> Result<BTreeMap<i32, f64>, String> {
    if response.status != "success" {
        return Err(format!(
            "Prometheus answered {}: {}",
            response.status,
            response.error.clone().unwrap_or_default()
        ));
    }
    let data = response
        .data
        .as_ref()
        .ok_or("Prometheus answered without data")?;
    if data.result_type != "vector" {
        return Err(format!(
            "expected a vector result, got {}",
            data.result_type
        ));
    }
    let wanted: BTreeSet<i32> = candidates.iter().copied().collect();
    let mut values = BTreeMap::new();
    for sample in &data.result {
        let Some(label) = sample.metric.get("group_id") else {
            continue;
        };
        // Label values never reach status or Events: only the ids of this RSG's groups do.
        let Ok(id) = label.trim().parse::<i32>() else {
            return Err("a series has a group_id that is not a group number".to_string());
        };
        if !wanted.contains(&id) {
            continue;
        }
        let Some(value) = numeric(&sample.value.1) else {
            return Err(format!(
                "group {id} has a value that is not a finite number"
            ));
        };
        if values.insert(id, value).is_some() {
            return Err(format!("group {id} has more than one series"));
        }
    }
    let gaps = missing(candidates, &values);
    if !gaps.is_empty() {
        return Err(format!("no value for groups {gaps:?}"));
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
) -> Result<BTreeMap<i32, f64>, String> {
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
                    return Err(format!(
                        "group {id} has the non-numeric annotation value {text:?}"
                    ))
                }
            },
        }
    }
    if gaps.is_empty() {
        Ok(values)
    } else {
        Err(format!("no annotation on groups {gaps:?}"))
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
                values_from_response(&response(json), &[0, 1]),
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
            values_from_annotations(&gap, &[0, 2]),
            Err("no annotation on groups [2]".into())
        );
        let bad = BTreeMap::from([(0, Some("lots".to_string()))]);
        assert!(values_from_annotations(&bad, &[0]).is_err());
    }
}
