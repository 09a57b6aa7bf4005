//! Properties that hold for every input, checked by the fuzz targets in `fuzz/` (libFuzzer)
//! and by the property tests in `tests/properties.rs` (proptest, on stable). Each function
//! takes raw input, runs the real code on it, and panics when a property breaks:
//! - no panic anywhere in between;
//! - what comes out is bounded by what went in;
//! - the defaults patch applies and applying it again changes nothing;
//! - every validation error names a field path;
//! - the scale-down query keeps the user's expression inside its aggregation.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::admission::{decode, defaults_patch};
use crate::api::{ResourceScalingGroup, ScaleDownMetric};
use crate::scale_down::scope::{effective_aggregator, scoped_query};
use crate::scale_down::values::{present_values, values_from_response, QueryResponse};
use crate::validation::{invalid_object_message, parse_prometheus_duration, validate_rsg};

/// Bytes a message may add to the input it describes (prefixes, field paths, hints).
const MESSAGE_OVERHEAD: usize = 16 * 1024;

fn assert_bounded(what: &str, output: usize, input: usize) {
    assert!(
        output <= 4 * input + MESSAGE_OVERHEAD,
        "{what}: {output} bytes of output for {input} bytes of input"
    );
}

/// An AdmissionReview body through decode → defaults → validation.
pub fn admission_review(body: &[u8]) {
    let request = match decode(body) {
        Ok(request) => request,
        Err(err) => return assert_bounded("decode error", err.to_string().len(), body.len()),
    };
    let Some(object) = request.object.as_ref() else {
        return;
    };
    let Ok(mut value) = serde_json::to_value(object) else {
        return;
    };
    let namespace = request.namespace.clone().unwrap_or_default();
    let name = request.name.clone();

    // Defaults: the patch applies, and a second pass has nothing left to add.
    let first = defaults_patch(&value, &namespace, &name);
    json_patch::patch(&mut value, &json_patch::Patch(first))
        .unwrap_or_else(|err| panic!("the defaults patch does not apply: {err}"));
    let second = defaults_patch(&value, &namespace, &name);
    assert!(second.is_empty(), "defaults are not idempotent: {second:?}");

    // Validation: every error has a field path; the answer is bounded by the request.
    let Ok(rsg) = serde_json::from_value::<ResourceScalingGroup>(value) else {
        return;
    };
    let (errors, _) = validate_rsg(&name, &namespace, &rsg.spec);
    for error in &errors {
        assert!(
            error.path.starts_with("spec.") || error.path.starts_with("metadata."),
            "an error without a field path: {error}"
        );
    }
    if !errors.is_empty() {
        let message = invalid_object_message("ResourceScalingGroup", &name, &errors);
        assert_bounded("denial", message.len(), body.len());
    }
}

/// A Prometheus duration: parsing never panics and its error message stays short.
pub fn prometheus_duration(text: &str) {
    if let Err(err) = parse_prometheus_duration(text) {
        assert_bounded("duration error", err.to_string().len(), text.len());
    }
}

/// A Prometheus query response body: decoding and reading values never panic; values are
/// finite and only for the candidates asked about; errors stay bounded.
pub fn prometheus_response(body: &[u8], candidates: &[i32]) {
    let Ok(response) = serde_json::from_slice::<QueryResponse>(body) else {
        return;
    };
    match values_from_response(&response, candidates) {
        Ok(values) => {
            assert!(
                values.keys().all(|id| candidates.contains(id)),
                "{values:?}"
            );
            assert!(values.values().all(|v| v.is_finite()), "{values:?}");
        }
        Err(err) => assert_bounded("response error", err.to_string().len(), body.len()),
    }
    if let Some(values) = present_values(&response) {
        assert!(values.values().all(|v| v.is_finite()), "{values:?}");
    }
}

/// A scale-down metric: for every metric the validation accepts, a query confined to the
/// RSG's namespaces can be made, and it is the aggregation around the whole expression, with
/// nothing before or after it.
pub fn promql_query(expr: &str, type_: &str, window: Option<&str>, aggregator: Option<&str>) {
    let metric = ScaleDownMetric {
        expr: expr.to_string(),
        type_: type_.to_string(),
        window: window.map(str::to_string),
        aggregator: aggregator.map(str::to_string),
    };
    if !validation_accepts(&metric) {
        return;
    }
    let namespaces = std::collections::BTreeSet::from(["ns".to_string()]);
    let query = scoped_query(&metric, &namespaces)
        .unwrap_or_else(|err| panic!("validation accepts {metric:?}, but {err}"));
    let aggregator = effective_aggregator(&metric);
    let prefix = format!("{aggregator} by (group_id) (");
    let body = query
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("query {query:?} does not start with {prefix:?}"));
    assert_eq!(
        closing_bracket_of_first(body),
        Some(body.len() - 1),
        "the aggregation in {query:?} does not end at the end of the query"
    );
}

/// Whether rsg's validation accepts `metric` in an otherwise valid spec.
fn validation_accepts(metric: &ScaleDownMetric) -> bool {
    let spec = serde_json::json!({
        "targetResources": [{"name": "prefill", "resourceRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "prefill", "namespace": "ns"}}],
        "scalingStrategy": {"type": "GroupReplication", "groupConfig": {"groupName": "pd", "replicas": 1, "scaleDown": {"metric": metric}}},
    });
    match serde_json::from_value(spec) {
        Ok(spec) => validate_rsg("rsg", "ns", &spec).0.is_empty(),
        Err(_) => false,
    }
}

/// Where the bracket opened just before `text` closes, skipping PromQL string literals, or
/// `None` when it never does (a comment or an open string counts as never).
fn closing_bracket_of_first(text: &str) -> Option<usize> {
    let mut depth = 1usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' && q != '`' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => quote = Some(c),
            '#' | '\n' | '\r' => return None,
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Candidate groups from fuzz input: a few small ids.
pub fn candidates_from(bytes: &[u8]) -> Vec<i32> {
    let ids: BTreeMap<i32, ()> = bytes
        .iter()
        .take(8)
        .map(|b| (i32::from(*b % 16), ()))
        .collect();
    ids.into_keys().collect()
}

/// Splits fuzz input into the four fields of a metric (separated by NUL bytes).
pub fn metric_fields(text: &str) -> (String, String, Option<String>, Option<String>) {
    let mut parts = text.split('\0');
    let expr = parts.next().unwrap_or_default().to_string();
    let type_ = parts.next().unwrap_or("Gauge").to_string();
    let window = parts.next().map(str::to_string).filter(|w| !w.is_empty());
    let aggregator = parts.next().map(str::to_string).filter(|a| !a.is_empty());
    (expr, type_, window, aggregator)
}

/// Turns an arbitrary JSON value into an AdmissionReview body carrying it as an RSG, so that
/// property tests reach validation and defaults with structured input.
pub fn review_body_around(object: &Value) -> Vec<u8> {
    review_body(object, "fuzz", serde_json::json!({}))
}

/// The AdmissionReview the API server sends for creating `object` in `namespace`, asked by
/// the user `user_info` (an `authentication.k8s.io/v1` UserInfo).
pub fn review_body(object: &Value, namespace: &str, user_info: Value) -> Vec<u8> {
    serde_json::to_vec(&review(object, None, namespace, user_info)).unwrap_or_default()
}

/// The AdmissionReview the API server sends for creating `object` in `namespace` (or, with
/// `old`, for updating `old` to `object`), asked by the user `user_info`.
pub fn review(object: &Value, old: Option<&Value>, namespace: &str, user_info: Value) -> Value {
    let name = object["metadata"]["name"].as_str().unwrap_or("fuzz");
    serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "00000000-0000-0000-0000-000000000000",
            "kind": {"group": "autoscaling.openfuyao.com", "version": "v1alpha1", "kind": "ResourceScalingGroup"},
            "resource": {"group": "autoscaling.openfuyao.com", "version": "v1alpha1", "resource": "resourcescalinggroups"},
            "operation": if old.is_some() { "UPDATE" } else { "CREATE" },
            "name": name,
            "namespace": namespace,
            "userInfo": user_info,
            "object": object,
            "oldObject": old,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_check_finds_an_escaped_aggregation() {
        assert_eq!(closing_bracket_of_first("up)"), Some(2));
        assert_eq!(closing_bracket_of_first("up) or vector(1)"), Some(2));
        assert_eq!(closing_bracket_of_first(r#"up{a=")"})"#), Some(9));
        assert_eq!(closing_bracket_of_first("up # )"), None);
    }

    #[test]
    fn a_valid_metric_keeps_its_expression_inside() {
        promql_query("vllm:num_requests_running", "Gauge", None, Some("avg"));
        promql_query(r#"rate(x{a=")"}[1m])"#, "Counter", Some("2m"), None);
        // Refused by validation, so not checked.
        promql_query("up) or vector(1", "Gauge", None, None);
    }
}
