//! Defaults, as a JSON patch computed from the raw object (unknown fields are never
//! touched). Applying the patch and computing it again yields an empty patch.

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation};
use serde_json::Value;

use crate::api::{PLACEMENT_REQUIRED, STRATEGY_GROUP_REPLICATION};

fn add(tokens: &[&str], value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation {
        path: PointerBuf::from_tokens(tokens.iter().copied()),
        value,
    })
}

fn missing_or_empty(object: &Value, key: &str) -> bool {
    match object.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(_) => false,
    }
}

/// The patch that fills in defaults: `resourceRef.namespace`, `groupName`, `replicas`,
/// `placement.mode` and `placement.spreadGroups`, `scaleDown.order` and
/// `scaleDown.metric.aggregator`.
pub fn defaults_patch(object: &Value, rsg_namespace: &str, rsg_name: &str) -> Vec<PatchOperation> {
    let mut ops = Vec::new();
    let Some(spec) = object.get("spec") else {
        return ops;
    };
    if let Some(targets) = spec.get("targetResources").and_then(Value::as_array) {
        for (i, target) in targets.iter().enumerate() {
            let index = i.to_string();
            if let Some(reference) = target.get("resourceRef").filter(|r| r.is_object()) {
                if missing_or_empty(reference, "namespace") && !rsg_namespace.is_empty() {
                    ops.push(add(
                        &[
                            "spec",
                            "targetResources",
                            &index,
                            "resourceRef",
                            "namespace",
                        ],
                        Value::from(rsg_namespace),
                    ));
                }
            }
        }
    }
    let Some(strategy) = spec.get("scalingStrategy") else {
        return ops;
    };
    if strategy.get("type").and_then(Value::as_str) != Some(STRATEGY_GROUP_REPLICATION) {
        return ops;
    }
    let Some(config) = strategy.get("groupConfig").filter(|c| c.is_object()) else {
        return ops;
    };
    let base = ["spec", "scalingStrategy", "groupConfig"];
    fn at<'a>(base: &[&'a str], rest: &[&'a str]) -> Vec<&'a str> {
        base.iter().chain(rest).copied().collect()
    }
    if missing_or_empty(config, "groupName") && !rsg_name.is_empty() {
        ops.push(add(&at(&base, &["groupName"]), Value::from(rsg_name)));
    }
    if config.get("replicas").is_none_or(Value::is_null) {
        ops.push(add(&at(&base, &["replicas"]), Value::from(1)));
    }
    if let Some(placement) = config.get("placement").filter(|p| p.is_object()) {
        if missing_or_empty(placement, "mode") {
            ops.push(add(
                &at(&base, &["placement", "mode"]),
                Value::from(PLACEMENT_REQUIRED),
            ));
        }
        if placement.get("spreadGroups").is_none_or(Value::is_null) {
            ops.push(add(
                &at(&base, &["placement", "spreadGroups"]),
                Value::from(false),
            ));
        }
    }
    let Some(scale_down) = config.get("scaleDown").filter(|s| s.is_object()) else {
        return ops;
    };
    if missing_or_empty(scale_down, "order") {
        ops.push(add(
            &at(&base, &["scaleDown", "order"]),
            Value::from("ascending"),
        ));
    }
    if let Some(metric) = scale_down.get("metric").filter(|m| m.is_object()) {
        let aggregator = match metric.get("type").and_then(Value::as_str) {
            Some("Gauge") => Some("avg"),
            Some("Counter" | "Histogram") => Some("sum"),
            _ => None,
        };
        if let Some(aggregator) = aggregator.filter(|_| missing_or_empty(metric, "aggregator")) {
            ops.push(add(
                &at(&base, &["scaleDown", "metric", "aggregator"]),
                Value::from(aggregator),
            ));
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        json!({"metadata": {"name": "g"}, "spec": {
            "targetResources": [
                {"name": "a", "resourceRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "a"}},
                {"name": "b", "resourceRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "b", "namespace": "prod"}}
            ],
            "scalingStrategy": {"type": "GroupReplication", "groupConfig": {
                "scaleDown": {"metric": {"expr": "m", "type": "Counter", "window": "1m"}},
                "placement": {"packDomain": "topology.kubernetes.io/zone"}
            }, "futureField": {"kept": true}}
        }})
    }

    #[test]
    fn fills_every_default() {
        let mut object = sample();
        let ops = defaults_patch(&object, "ns", "g");
        json_patch::patch(&mut object, &ops).unwrap();
        let spec = &object["spec"];
        assert_eq!(spec["targetResources"][0]["resourceRef"]["namespace"], "ns");
        assert_eq!(
            spec["targetResources"][1]["resourceRef"]["namespace"],
            "prod"
        );
        let config = &spec["scalingStrategy"]["groupConfig"];
        assert_eq!(config["groupName"], "g");
        assert_eq!(config["replicas"], 1);
        assert_eq!(config["scaleDown"]["order"], "ascending");
        assert_eq!(config["scaleDown"]["metric"]["aggregator"], "sum");
        assert_eq!(config["placement"]["mode"], "Required");
        assert_eq!(config["placement"]["spreadGroups"], false);
        assert_eq!(spec["scalingStrategy"]["futureField"]["kept"], true);
    }

    #[test]
    fn is_idempotent() {
        let mut object = sample();
        let ops = defaults_patch(&object, "ns", "g");
        json_patch::patch(&mut object, &ops).unwrap();
        assert!(defaults_patch(&object, "ns", "g").is_empty());
    }

    #[test]
    fn gauge_defaults_to_avg_and_set_values_are_kept() {
        let mut object = sample();
        object["spec"]["scalingStrategy"]["groupConfig"] = json!({
            "groupName": "pd", "replicas": 0,
            "scaleDown": {"order": "descending", "metric": {"expr": "m", "type": "Gauge"}},
            "placement": {"packDomain": "rack", "mode": "Preferred", "spreadGroups": true}
        });
        let ops = defaults_patch(&object, "ns", "g");
        json_patch::patch(&mut object, &ops).unwrap();
        let config = &object["spec"]["scalingStrategy"]["groupConfig"];
        assert_eq!(config["groupName"], "pd");
        assert_eq!(config["replicas"], 0);
        assert_eq!(config["scaleDown"]["order"], "descending");
        assert_eq!(config["scaleDown"]["metric"]["aggregator"], "avg");
        assert_eq!(
            config["placement"],
            json!({"packDomain": "rack", "mode": "Preferred", "spreadGroups": true})
        );
    }

    #[test]
    fn inplace_scaling_gets_only_namespace_defaults() {
        let object = json!({"spec": {
            "targetResources": [{"name": "a", "resourceRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "a"}}],
            "scalingStrategy": {"type": "InplaceScaling", "groupConfig": {}}
        }});
        let ops = defaults_patch(&object, "ns", "g");
        assert_eq!(ops.len(), 1);
    }

    #[test]
    fn malformed_objects_get_no_patch() {
        assert!(defaults_patch(
            &json!({"spec": {"targetResources": "x", "scalingStrategy": 3}}),
            "ns",
            "g"
        )
        .is_empty());
        assert!(defaults_patch(&json!(null), "ns", "g").is_empty());
    }
}
