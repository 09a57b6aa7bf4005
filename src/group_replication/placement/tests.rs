use super::*;
use crate::api::PLACEMENT_PREFERRED;

fn placement(mode: &str, spread: bool) -> CopyPlacement {
    CopyPlacement::of(&GroupPlacement {
        pack_domain: "topology.kubernetes.io/zone".into(),
        mode: Some(mode.into()),
        spread_groups: Some(spread),
    })
}

fn deployment_copy() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "g-prefill-2"},
        "spec": {"template": {"metadata": {"labels": {"app": "llm"}},
            "spec": {"containers": [{"name": "vllm", "image": "vllm:1"}]}}}})
}

fn base_pods() -> Vec<BasePods> {
    vec![BasePods {
        namespace: "production".into(),
        selector: [("app".to_string(), "llm".to_string())].into(),
    }]
}

#[test]
fn required_packs_the_group_with_hard_pod_affinity_on_its_own_labels() {
    let mut copy = deployment_copy();
    place_copy(&mut copy, "llm", 2, &placement("Required", false), &[]);
    let affinity = &copy["spec"]["template"]["spec"]["affinity"];
    assert_eq!(
        affinity["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"],
        json!([{
            "labelSelector": {"matchLabels": {"rsg.io/name": "llm", "rsg.io/group-id": "2"}},
            "topologyKey": "topology.kubernetes.io/zone",
        }])
    );
    assert!(
        affinity.get("podAntiAffinity").is_none(),
        "no spreading asked"
    );
    assert!(affinity["podAffinity"]
        .get("preferredDuringSchedulingIgnoredDuringExecution")
        .is_none());
}

#[test]
fn preferred_packs_with_a_weighted_preference() {
    let mut copy = deployment_copy();
    place_copy(
        &mut copy,
        "llm",
        1,
        &placement(PLACEMENT_PREFERRED, false),
        &[],
    );
    let affinity = &copy["spec"]["template"]["spec"]["affinity"]["podAffinity"];
    assert!(affinity
        .get("requiredDuringSchedulingIgnoredDuringExecution")
        .is_none());
    assert_eq!(
        affinity["preferredDuringSchedulingIgnoredDuringExecution"],
        json!([{"weight": 100, "podAffinityTerm": {
            "labelSelector": {"matchLabels": {"rsg.io/name": "llm", "rsg.io/group-id": "1"}},
            "topologyKey": "topology.kubernetes.io/zone",
        }}])
    );
}

#[test]
fn spreading_avoids_other_copy_groups_and_the_bases_pods() {
    let mut copy = deployment_copy();
    place_copy(
        &mut copy,
        "llm",
        3,
        &placement("Required", true),
        &base_pods(),
    );
    let spread = &copy["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
        ["preferredDuringSchedulingIgnoredDuringExecution"];
    assert_eq!(
        spread,
        &json!([
            {"weight": 100, "podAffinityTerm": {
                "labelSelector": {
                    "matchLabels": {"rsg.io/name": "llm"},
                    "matchExpressions": [{"key": "rsg.io/group-id", "operator": "NotIn", "values": ["3"]}],
                },
                "topologyKey": "topology.kubernetes.io/zone",
            }},
            {"weight": 100, "podAffinityTerm": {
                "labelSelector": {
                    "matchLabels": {"app": "llm"},
                    "matchExpressions": [{"key": "rsg.io/group-id", "operator": "DoesNotExist"}],
                },
                "namespaces": ["production"],
                "topologyKey": "topology.kubernetes.io/zone",
            }},
        ])
    );
}

#[test]
fn the_templates_own_affinity_is_kept() {
    let mut copy = deployment_copy();
    let own = json!({"labelSelector": {"matchLabels": {"cache": "kv"}}, "topologyKey": "kubernetes.io/hostname"});
    copy["spec"]["template"]["spec"]["affinity"] = json!({
        "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [own.clone()]},
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}},
    });
    place_copy(&mut copy, "llm", 1, &placement("Required", false), &[]);
    let affinity = &copy["spec"]["template"]["spec"]["affinity"];
    let required = affinity["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        .as_array()
        .expect("a list");
    assert_eq!(required.len(), 2);
    assert_eq!(required[0], own);
    assert!(affinity.get("nodeAffinity").is_some());
}

#[test]
fn every_pod_template_of_a_leader_worker_set_is_placed() {
    let mut copy = json!({"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
    "spec": {"leaderWorkerTemplate": {
        "leaderTemplate": {"spec": {"containers": []}},
        "workerTemplate": {"metadata": {}, "spec": {"containers": []}},
    }}});
    place_copy(&mut copy, "llm", 4, &placement("Required", false), &[]);
    for template in ["leaderTemplate", "workerTemplate"] {
        let terms = &copy["spec"]["leaderWorkerTemplate"][template]["spec"]["affinity"]
            ["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
        assert_eq!(
            terms[0]["labelSelector"]["matchLabels"]["rsg.io/group-id"], "4",
            "{template}"
        );
    }
}

#[test]
fn the_fingerprint_changes_with_every_field_and_defaults_to_required() {
    let defaulted = CopyPlacement::of(&GroupPlacement {
        pack_domain: "topology.kubernetes.io/zone".into(),
        mode: None,
        spread_groups: None,
    });
    assert_eq!(defaulted, placement("Required", false));
    let fingerprints = [
        placement("Required", false).fingerprint,
        placement(PLACEMENT_PREFERRED, false).fingerprint,
        placement("Required", true).fingerprint,
        CopyPlacement::of(&GroupPlacement {
            pack_domain: "kubernetes.io/hostname".into(),
            mode: None,
            spread_groups: None,
        })
        .fingerprint,
    ];
    let distinct: std::collections::BTreeSet<_> = fingerprints.iter().collect();
    assert_eq!(distinct.len(), fingerprints.len());
}
