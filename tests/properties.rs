//! Property tests (proptest, on the stable toolchain) of the properties in
//! `rsg::invariants`, which the fuzz targets in `fuzz/` check with libFuzzer too: no panic,
//! output bounded by the input, idempotent defaults, a field path on every error, and the
//! scale-down query keeping the expression inside its aggregation.

use proptest::prelude::*;
use rsg::invariants;
use serde_json::{json, Value};

/// Text made of what PromQL, durations and names are made of, brackets and quotes included.
fn tricky_text(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            proptest::char::range('a', 'z'),
            proptest::char::range('0', '9'),
            proptest::sample::select(vec![
                '(', ')', '[', ']', '{', '}', '"', '\'', '`', '\\', '#', '=', '~', ',', ':', ' ',
                '\n', '.', '-', '_', 'é',
            ]),
        ],
        0..max,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

fn one_of(values: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(values).prop_map(str::to_string),
        tricky_text(12),
    ]
}

/// A target entry: mostly well-formed, sometimes not.
fn target() -> impl Strategy<Value = Value> {
    (
        one_of(&["prefill", "decode", "gateway"]),
        one_of(&[
            "apps/v1",
            "leaderworkerset.x-k8s.io/v1",
            "workloads.x-k8s.io/v1alpha1",
            "v1",
        ]),
        one_of(&[
            "Deployment",
            "StatefulSet",
            "LeaderWorkerSet",
            "RoleBasedGroup",
            "Service",
        ]),
        one_of(&["llm-prefill", "llm-decode"]),
        proptest::option::of(one_of(&["production", ""])),
    )
        .prop_map(|(name, api_version, kind, workload, namespace)| {
            let mut reference = json!({"apiVersion": api_version, "kind": kind, "name": workload});
            if let Some(namespace) = namespace {
                reference["namespace"] = json!(namespace);
            }
            json!({"name": name, "resourceRef": reference})
        })
}

fn scale_down() -> impl Strategy<Value = Value> {
    (
        tricky_text(40),
        one_of(&["Gauge", "Counter", "Histogram", "guage"]),
        proptest::option::of(one_of(&["2m", "30s", "1h30m", "0s"])),
        proptest::option::of(one_of(&["sum", "avg", "max", "min"])),
        proptest::option::of(one_of(&["ascending", "descending"])),
        proptest::option::of(one_of(&["90s", "0s"])),
    )
        .prop_map(|(expr, type_, window, aggregator, order, drain)| {
            let mut metric = json!({"expr": expr, "type": type_});
            if let Some(window) = window {
                metric["window"] = json!(window);
            }
            if let Some(aggregator) = aggregator {
                metric["aggregator"] = json!(aggregator);
            }
            let mut scale_down = json!({"metric": metric});
            if let Some(order) = order {
                scale_down["order"] = json!(order);
            }
            if let Some(drain) = drain {
                scale_down["drainTimeout"] = json!(drain);
            }
            scale_down
        })
}

/// An RSG object of either strategy, with fields right, wrong or missing.
fn rsg_object() -> impl Strategy<Value = Value> {
    (
        proptest::collection::vec(target(), 0..6),
        one_of(&["GroupReplication", "InplaceScaling"]),
        proptest::option::of(one_of(&["pd", "Bad_Name", ""])),
        proptest::option::of(-3i64..3000),
        proptest::option::of(scale_down()),
        proptest::option::of((
            one_of(&["prefill", "decode"]),
            proptest::collection::vec((one_of(&["decode", "gateway"]), -2i64..5), 0..5),
        )),
    )
        .prop_map(
            |(targets, type_, group_name, replicas, scale_down, leader_follower)| {
                let mut strategy = json!({"type": type_});
                if type_ == "GroupReplication" || leader_follower.is_none() {
                    let mut config = json!({});
                    if let Some(group_name) = group_name {
                        config["groupName"] = json!(group_name);
                    }
                    if let Some(replicas) = replicas {
                        config["replicas"] = json!(replicas);
                    }
                    if let Some(scale_down) = scale_down {
                        config["scaleDown"] = scale_down;
                    }
                    strategy["groupConfig"] = config;
                }
                if let Some((leader, followers)) = leader_follower {
                    let followers: Vec<Value> = followers
                        .into_iter()
                        .map(|(name, ratio)| json!({"resourceName": name, "followRatio": ratio}))
                        .collect();
                    strategy["leaderFollowerConfig"] =
                        json!({"leader": {"resourceName": leader}, "follower": followers});
                }
                json!({
                    "apiVersion": "autoscaling.openfuyao.com/v1alpha1",
                    "kind": "ResourceScalingGroup",
                    "metadata": {"name": "fuzz", "namespace": "fuzz"},
                    "spec": {"targetResources": targets, "scalingStrategy": strategy},
                })
            },
        )
}

fn query_response() -> impl Strategy<Value = Vec<u8>> {
    let sample = (
        one_of(&["0", "1", "2", "-1", "x"]),
        one_of(&["1.5", "NaN", "+Inf", "1e309", "2"]),
    )
        .prop_map(|(group, value)| json!({"metric": {"group_id": group}, "value": [1.0, value]}));
    (
        one_of(&["success", "error"]),
        one_of(&["vector", "matrix"]),
        proptest::collection::vec(sample, 0..6),
        proptest::option::of(tricky_text(30)),
    )
        .prop_map(|(status, result_type, result, error)| {
            let mut response =
                json!({"status": status, "data": {"resultType": result_type, "result": result}});
            if let Some(error) = error {
                response["error"] = json!(error);
            }
            serde_json::to_vec(&response).unwrap_or_default()
        })
}

proptest! {
    #[test]
    fn any_bytes_as_an_admission_review(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
        invariants::admission_review(&body);
    }

    #[test]
    fn any_rsg_through_defaults_and_validation(object in rsg_object()) {
        invariants::admission_review(&invariants::review_body_around(&object));
    }

    #[test]
    fn any_text_as_a_prometheus_duration(text in prop_oneof![tricky_text(24), "[0-9]{1,25}[a-z]{1,3}"]) {
        invariants::prometheus_duration(&text);
    }

    #[test]
    fn any_prometheus_response(body in prop_oneof![
        query_response(),
        proptest::collection::vec(any::<u8>(), 0..512),
    ], ids in proptest::collection::vec(any::<u8>(), 0..8)) {
        invariants::prometheus_response(&body, &invariants::candidates_from(&ids));
    }

    #[test]
    fn any_metric_as_a_scale_down_query(
        expr in tricky_text(48),
        type_ in one_of(&["Gauge", "Counter", "Histogram"]),
        window in proptest::option::of(one_of(&["2m", "0s", "1h"])),
        aggregator in proptest::option::of(one_of(&["sum", "avg", "max", "min"])),
    ) {
        invariants::promql_query(&expr, &type_, window.as_deref(), aggregator.as_deref());
    }
}
