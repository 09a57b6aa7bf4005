//! Topology placement of copy groups (pure): the pod affinity that packs every pod of one
//! group into one domain, the anti-affinity that spreads groups across domains, and the
//! fingerprint that makes a placement change a change of the copies.
//!
//! Only copies are placed. Group 0 is the user's base workloads and is never changed; the
//! spreading terms keep copies away from its pods too.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::revision::short_hash;
use crate::api::{
    GroupPlacement, LABEL_GROUP_ID, LABEL_NAME, PLACEMENT_PREFERRED, PLACEMENT_REQUIRED,
};
use crate::workload::template_pointers;

/// Weight of the preferred terms (the most the scheduler allows).
const PREFERRED_WEIGHT: i32 = 100;

/// The placement copies get, resolved from `groupConfig.placement`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyPlacement {
    /// The node label key that names a domain.
    pub pack_domain: String,
    /// A hard constraint (`Required`) rather than a preference.
    pub required: bool,
    /// Whether groups prefer different domains.
    pub spread_groups: bool,
    /// A short hash of the three above, carried by copies as `rsg.io/placement`.
    pub fingerprint: String,
}

impl CopyPlacement {
    /// The placement of `placement`, with its defaults applied.
    pub fn of(placement: &GroupPlacement) -> Self {
        let required = placement.is_required();
        let spread_groups = placement.spreads_groups();
        let mode = mode_name(required);
        let fingerprint = short_hash(&format!(
            "packDomain={}\nmode={mode}\nspreadGroups={spread_groups}\n",
            placement.pack_domain
        ));
        Self {
            pack_domain: placement.pack_domain.clone(),
            required,
            spread_groups,
            fingerprint,
        }
    }

    /// The mode's name as the spec spells it.
    pub fn mode(&self) -> &'static str {
        mode_name(self.required)
    }
}

fn mode_name(required: bool) -> &'static str {
    if required {
        PLACEMENT_REQUIRED
    } else {
        PLACEMENT_PREFERRED
    }
}

/// The pods of one target's group 0 (its base workload), which spreading keeps copies from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BasePods {
    /// Namespace of the base workload.
    pub namespace: String,
    /// Labels that select the base's pods.
    pub selector: BTreeMap<String, String>,
}

fn pack_term(rsg_name: &str, group_id: i32, topology_key: &str) -> Value {
    json!({
        "labelSelector": {"matchLabels": {LABEL_NAME: rsg_name, LABEL_GROUP_ID: group_id.to_string()}},
        "topologyKey": topology_key,
    })
}

/// Terms matching the pods of every other group: this RSG's other copy groups, and the
/// bases' pods (which carry no group label).
fn other_group_terms(
    rsg_name: &str,
    group_id: i32,
    topology_key: &str,
    base_pods: &[BasePods],
) -> Vec<Value> {
    let copies = json!({
        "labelSelector": {
            "matchLabels": {LABEL_NAME: rsg_name},
            "matchExpressions": [{"key": LABEL_GROUP_ID, "operator": "NotIn", "values": [group_id.to_string()]}],
        },
        "topologyKey": topology_key,
    });
    let bases = base_pods
        .iter()
        .filter(|base| !base.selector.is_empty())
        .map(|base| {
            json!({
                "labelSelector": {
                    "matchLabels": base.selector,
                    "matchExpressions": [{"key": LABEL_GROUP_ID, "operator": "DoesNotExist"}],
                },
                "namespaces": [base.namespace],
                "topologyKey": topology_key,
            })
        });
    std::iter::once(copies).chain(bases).collect()
}

fn preferred(term: Value) -> Value {
    json!({"weight": PREFERRED_WEIGHT, "podAffinityTerm": term})
}

/// Appends `terms` to the list `field` of the map at `affinity.<kind>`, creating what is
/// missing and keeping the terms the template had.
fn append_terms(affinity: &mut Map<String, Value>, kind: &str, field: &str, terms: Vec<Value>) {
    if terms.is_empty() {
        return;
    }
    let entry = affinity
        .entry(kind.to_string())
        .or_insert_with(|| json!({}));
    if !entry.is_object() {
        *entry = json!({});
    }
    let Some(map) = entry.as_object_mut() else {
        return;
    };
    let list = map.entry(field.to_string()).or_insert_with(|| json!([]));
    if !list.is_array() {
        *list = json!([]);
    }
    if let Some(list) = list.as_array_mut() {
        list.extend(terms);
    }
}

/// The `affinity` of one pod spec with the placement of group `group_id` added.
fn place_pod_spec(
    pod_spec: &mut Map<String, Value>,
    rsg_name: &str,
    group_id: i32,
    placement: &CopyPlacement,
    base_pods: &[BasePods],
) {
    let affinity = pod_spec
        .entry("affinity".to_string())
        .or_insert_with(|| json!({}));
    if !affinity.is_object() {
        *affinity = json!({});
    }
    let Some(affinity) = affinity.as_object_mut() else {
        return;
    };
    let pack = pack_term(rsg_name, group_id, &placement.pack_domain);
    if placement.required {
        append_terms(
            affinity,
            "podAffinity",
            "requiredDuringSchedulingIgnoredDuringExecution",
            vec![pack],
        );
    } else {
        append_terms(
            affinity,
            "podAffinity",
            "preferredDuringSchedulingIgnoredDuringExecution",
            vec![preferred(pack)],
        );
    }
    if placement.spread_groups {
        let spread = other_group_terms(rsg_name, group_id, &placement.pack_domain, base_pods)
            .into_iter()
            .map(preferred)
            .collect();
        append_terms(
            affinity,
            "podAntiAffinity",
            "preferredDuringSchedulingIgnoredDuringExecution",
            spread,
        );
    }
}

/// Adds the placement of group `group_id` to every pod template of `copy`.
///
/// A `Required` pack is pod affinity to the group's own pods: the scheduler lets the first
/// pod of a group go anywhere (it matches its own term) and every later pod only into the
/// domain that pod landed in.
pub fn place_copy(
    copy: &mut Value,
    rsg_name: &str,
    group_id: i32,
    placement: &CopyPlacement,
    base_pods: &[BasePods],
) {
    for pointer in template_pointers(copy) {
        let Some(template) = copy.pointer_mut(&pointer).and_then(Value::as_object_mut) else {
            continue;
        };
        let spec = template
            .entry("spec".to_string())
            .or_insert_with(|| json!({}));
        if let Some(spec) = spec.as_object_mut() {
            place_pod_spec(spec, rsg_name, group_id, placement, base_pods);
        }
    }
}

#[cfg(test)]
mod tests;
