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
    if !rsg_namespace.is_empty() {
        target_namespace_defaults(spec, rsg_namespace, &mut ops);
    }
    let Some(strategy) = spec.get("scalingStrategy") else {
        return ops;
    };
    if strategy.get("type").and_then(Value::as_str) != Some(STRATEGY_GROUP_REPLICATION) {
        return ops;
    }
    if let Some(config) = strategy.get("groupConfig").filter(|c| c.is_object()) {
        group_config_defaults(config, rsg_name, &mut ops);
    }
    ops
}

/// `resourceRef.namespace` of each target: the RSG's namespace.
fn target_namespace_defaults(spec: &Value, rsg_namespace: &str, ops: &mut Vec<PatchOperation>) {
    let Some(targets) = spec.get("targetResources").and_then(Value::as_array) else {
        return;
    };
    for (i, target) in targets.iter().enumerate() {
        let index = i.to_string();
        let reference = target.get("resourceRef").filter(|r| r.is_object());
        if reference.is_some_and(|r| missing_or_empty(r, "namespace")) {
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

/// The path `spec.scalingStrategy.groupConfig.<rest>`.
fn in_group_config<'a>(rest: &[&'a str]) -> Vec<&'a str> {
    ["spec", "scalingStrategy", "groupConfig"]
        .into_iter()
        .chain(rest.iter().copied())
        .collect()
}

/// `groupName`, `replicas`, `placement.mode` and `placement.spreadGroups`, and the
/// scale-down defaults.
fn group_config_defaults(config: &Value, rsg_name: &str, ops: &mut Vec<PatchOperation>) {
    if missing_or_empty(config, "groupName") && !rsg_name.is_empty() {
        ops.push(add(&in_group_config(&["groupName"]), Value::from(rsg_name)));
    }
    if config.get("replicas").is_none_or(Value::is_null) {
        ops.push(add(&in_group_config(&["replicas"]), Value::from(1)));
    }
    if let Some(placement) = config.get("placement").filter(|p| p.is_object()) {
        if missing_or_empty(placement, "mode") {
            ops.push(add(
                &in_group_config(&["placement", "mode"]),
                Value::from(PLACEMENT_REQUIRED),
            ));
        }
        if placement.get("spreadGroups").is_none_or(Value::is_null) {
            ops.push(add(
                &in_group_config(&["placement", "spreadGroups"]),
                Value::from(false),
            ));
        }
    }
    if let Some(scale_down) = config.get("scaleDown").filter(|s| s.is_object()) {
        scale_down_defaults(scale_down, ops);
    }
}

/// `scaleDown.order`, and `scaleDown.metric.aggregator` from the metric's type.
fn scale_down_defaults(scale_down: &Value, ops: &mut Vec<PatchOperation>) {
    if missing_or_empty(scale_down, "order") {
        ops.push(add(
            &in_group_config(&["scaleDown", "order"]),
            Value::from("ascending"),
        ));
    }
    let Some(metric) = scale_down.get("metric").filter(|m| m.is_object()) else {
        return;
    };
    let aggregator = match metric.get("type").and_then(Value::as_str) {
        Some("Gauge") => Some("avg"),
        Some("Counter" | "Histogram") => Some("sum"),
        _ => None,
    };
    if let Some(aggregator) = aggregator.filter(|_| missing_or_empty(metric, "aggregator")) {
        ops.push(add(
            &in_group_config(&["scaleDown", "metric", "aggregator"]),
            Value::from(aggregator),
        ));
    }
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
