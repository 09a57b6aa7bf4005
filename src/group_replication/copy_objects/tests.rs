use std::collections::BTreeMap;

use serde_json::json;

use super::*;

fn live_deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {
            "name": "llm-prefill", "namespace": "production", "uid": "u", "resourceVersion": "42",
            "generation": 3, "creationTimestamp": "2026-01-01T00:00:00Z", "managedFields": [{}],
            "labels": {"app": "llm", "rsg.io/name": "old", "rsg.io/group-id": "0"},
            "annotations": {"deployment.kubernetes.io/revision": "3", "team": "inference"}
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "llm"}},
            "template": {"metadata": {"labels": {"app": "llm"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
        },
        "status": {"replicas": 2}
    })
}

#[test]
fn snapshots_drop_runtime_fields_and_keep_the_authors_intent() {
    let snapshot = strip_runtime_fields(&live_deployment());
    assert!(snapshot.get("status").is_none());
    let meta = &snapshot["metadata"];
    for gone in [
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
    ] {
        assert!(meta.get(gone).is_none(), "{gone} kept");
    }
    assert_eq!(meta["annotations"], json!({"team": "inference"}));
    assert_eq!(meta["labels"], json!({"app": "llm"}));
    assert_eq!(snapshot["spec"]["replicas"], 2);
}

#[test]
fn workload_copies_get_names_labels_selectors_and_replicas() {
    let renames = BTreeMap::new();
    let copy = build_workload_copy(
        &strip_runtime_fields(&live_deployment()),
        &CopySpec {
            rsg_name: "llm-pd-group",
            rsg_namespace: "scaling-system",
            target_name: "prefill",
            copy_name: "pd-llm-prefill-2",
            group_id: 2,
            replicas: &Replicas::Count(3),
            service_renames: &renames,
            revision: "r1",
            placement: None,
        },
    );
    assert_eq!(copy["metadata"]["name"], "pd-llm-prefill-2");
    assert_eq!(copy["metadata"]["namespace"], "scaling-system");
    assert_eq!(
        copy["metadata"]["labels"],
        json!({"app": "llm", "rsg.io/name": "llm-pd-group", "rsg.io/group-id": "2", "rsg.io/target": "prefill", "rsg.io/managed": "true", "rsg.io/revision": "r1"})
    );
    assert_eq!(copy["spec"]["replicas"], 3);
    assert_eq!(
        copy["spec"]["selector"]["matchLabels"],
        json!({"app": "llm", "rsg.io/group-id": "2"})
    );
    assert_eq!(
        copy["spec"]["template"]["metadata"]["labels"],
        json!({"app": "llm", "rsg.io/name": "llm-pd-group", "rsg.io/group-id": "2"})
    );
    assert!(
        copy["spec"]["template"]["spec"].get("affinity").is_none(),
        "no placement asked"
    );
}

#[test]
fn placed_copies_carry_the_placement_and_its_fingerprint() {
    let renames = BTreeMap::new();
    let placement = crate::group_replication::placement::CopyPlacement::of(
        &serde_json::from_value(json!({"packDomain": "topology.rsg.test/rack"}))
            .expect("a placement"),
    );
    let copy = build_workload_copy(
        &strip_runtime_fields(&live_deployment()),
        &CopySpec {
            rsg_name: "llm-pd-group",
            rsg_namespace: "scaling-system",
            target_name: "prefill",
            copy_name: "pd-llm-prefill-2",
            group_id: 2,
            replicas: &Replicas::Count(3),
            service_renames: &renames,
            revision: "r1",
            placement: Some((&placement, &[])),
        },
    );
    assert_eq!(
        copy["metadata"]["labels"]["rsg.io/placement"],
        placement.fingerprint.as_str()
    );
    assert_eq!(
        copy["spec"]["template"]["spec"]["affinity"]["podAffinity"]
            ["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"],
        "topology.rsg.test/rack"
    );
    assert_eq!(
        copy["metadata"]["labels"]["rsg.io/revision"], "r1",
        "the snapshot's revision is kept: placement has a label of its own"
    );
}

#[test]
fn statefulset_copies_point_at_their_copied_headless_service() {
    let sts = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "ns"},
        "spec": {"serviceName": "db-headless", "replicas": 1, "selector": {"matchLabels": {"app": "db"}},
                 "template": {"metadata": {"labels": {"app": "db"}}, "spec": {}}}});
    let renames = BTreeMap::from([("db-headless".to_string(), "db-headless-g-1".to_string())]);
    let copy = build_workload_copy(
        &sts,
        &CopySpec {
            rsg_name: "r",
            rsg_namespace: "ns",
            target_name: "db",
            copy_name: "g-db-1",
            group_id: 1,
            replicas: &Replicas::Count(1),
            service_renames: &renames,
            revision: "r1",
            placement: None,
        },
    );
    assert_eq!(copy["spec"]["serviceName"], "db-headless-g-1");
}

#[test]
fn leader_worker_set_labels_go_into_existing_templates_only() {
    let lws = json!({"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet", "metadata": {"name": "lws", "namespace": "ns"},
        "spec": {"replicas": 2, "leaderWorkerTemplate": {"size": 4, "workerTemplate": {"spec": {"containers": []}}}}});
    let renames = BTreeMap::new();
    let copy = build_workload_copy(
        &lws,
        &CopySpec {
            rsg_name: "r",
            rsg_namespace: "ns",
            target_name: "w",
            copy_name: "g-lws-1",
            group_id: 1,
            replicas: &Replicas::Count(2),
            service_renames: &renames,
            revision: "r1",
            placement: None,
        },
    );
    assert_eq!(
        copy["spec"]["leaderWorkerTemplate"]["workerTemplate"]["metadata"]["labels"],
        json!({"rsg.io/name": "r", "rsg.io/group-id": "1"})
    );
    assert!(
        copy["spec"]["leaderWorkerTemplate"]
            .get("leaderTemplate")
            .is_none(),
        "no leaderTemplate may be invented"
    );
    assert!(copy["spec"].get("selector").is_none());

    let mut with_leader = lws.clone();
    with_leader["spec"]["leaderWorkerTemplate"]["leaderTemplate"] =
        json!({"metadata": {"labels": {"role": "leader"}}, "spec": {}});
    let copy = build_workload_copy(
        &with_leader,
        &CopySpec {
            rsg_name: "r",
            rsg_namespace: "ns",
            target_name: "w",
            copy_name: "g-lws-1",
            group_id: 1,
            replicas: &Replicas::Count(2),
            service_renames: &renames,
            revision: "r1",
            placement: None,
        },
    );
    assert_eq!(
        copy["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["metadata"]["labels"],
        json!({"role": "leader", "rsg.io/name": "r", "rsg.io/group-id": "1"})
    );
}

#[test]
fn external_service_copies_become_cluster_ip_unless_the_operator_opted_in() {
    let base = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "gw", "namespace": "tenant-a"},
        "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 31000,
                 "loadBalancerSourceRanges": ["10.0.0.0/8"], "allocateLoadBalancerNodePorts": true,
                 "selector": {"app": "gw"}, "ports": [{"port": 80, "nodePort": 30080}]}});
    let copy_with = |keep_external_type| {
        build_service_copy(
            &base,
            &ServiceCopySpec {
                rsg_name: "g",
                rsg_namespace: "tenant-a",
                copy_name: "gw-g-1",
                group_id: 1,
                keep_external_type,
            },
        )
    };
    let copy = copy_with(false);
    assert_eq!(
        copy["spec"],
        json!({"type": "ClusterIP", "selector": {"app": "gw", "rsg.io/name": "g", "rsg.io/group-id": "1"}, "ports": [{"port": 80}]})
    );
    let kept = copy_with(true);
    assert_eq!(kept["spec"]["type"], "LoadBalancer");
    assert_eq!(kept["spec"]["externalTrafficPolicy"], "Local");
}

#[test]
fn service_copies_select_their_group_and_reallocate_addresses() {
    let base = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "llm-prefill", "namespace": "production", "uid": "u", "labels": {"app": "llm"}},
        "spec": {"clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7"], "type": "NodePort",
                 "selector": {"app": "llm", "role": "prefill"},
                 "ports": [{"port": 8000, "nodePort": 30080}]},
        "status": {"loadBalancer": {}}});
    let copy = build_service_copy(
        &base,
        &ServiceCopySpec {
            rsg_name: "g",
            rsg_namespace: "scaling-system",
            copy_name: "llm-prefill-pd-1",
            group_id: 1,
            keep_external_type: true,
        },
    );
    assert_eq!(copy["metadata"]["name"], "llm-prefill-pd-1");
    assert_eq!(copy["metadata"]["namespace"], "scaling-system");
    assert_eq!(
        copy["metadata"]["labels"],
        json!({"app": "llm", "rsg.io/name": "g", "rsg.io/group-id": "1"})
    );
    assert_eq!(
        copy["spec"]["selector"],
        json!({"app": "llm", "role": "prefill", "rsg.io/name": "g", "rsg.io/group-id": "1"})
    );
    assert!(copy["spec"].get("clusterIP").is_none());
    assert!(copy["spec"].get("clusterIPs").is_none());
    assert!(copy["spec"]["ports"][0].get("nodePort").is_none());
    assert!(copy.get("status").is_none());

    // A base Service with no selector (a StatefulSet's governing Service) selects only this
    // RSG's group, not group 1 of every RSG in the namespace.
    let governing = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "gov", "namespace": "ns"},
        "spec": {"clusterIP": "None", "ports": [{"port": 80}]}});
    let copy = build_service_copy(
        &governing,
        &ServiceCopySpec {
            rsg_name: "g",
            rsg_namespace: "ns",
            copy_name: "gov-g-1",
            group_id: 1,
            keep_external_type: false,
        },
    );
    assert_eq!(
        copy["spec"]["selector"],
        json!({"rsg.io/name": "g", "rsg.io/group-id": "1"})
    );

    let headless = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": "ns"},
        "spec": {"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 5432}]}});
    let copy = build_service_copy(
        &headless,
        &ServiceCopySpec {
            rsg_name: "g",
            rsg_namespace: "ns",
            copy_name: "db-g-1",
            group_id: 1,
            keep_external_type: false,
        },
    );
    assert_eq!(copy["spec"]["clusterIP"], "None");
}

#[test]
fn a_role_based_group_copy_labels_every_role_template_and_takes_replicas_per_role() {
    let base = json!({
        "apiVersion": "workloads.x-k8s.io/v1alpha1", "kind": "RoleBasedGroup",
        "metadata": {"name": "pd", "namespace": "production", "resourceVersion": "9"},
        "spec": {
            "roles": [
                {"name": "prefill", "replicas": 2,
                 "template": {"metadata": {"labels": {"role": "prefill"}}, "spec": {"containers": []}}},
                {"name": "decode", "replicas": 4, "templateRef": {"name": "engine"}},
                {"name": "router", "replicas": 1, "template": {"spec": {"containers": []}}}
            ],
            "roleTemplates": [{"name": "engine", "template": {"spec": {"containers": []}}}]
        },
        "status": {"roleStatuses": []}
    });
    let renames = BTreeMap::new();
    let replicas = Replicas::PerRole(BTreeMap::from([
        ("prefill".into(), 3),
        ("decode".into(), 1),
        ("router".into(), 1),
    ]));
    let copy = build_workload_copy(
        &base,
        &CopySpec {
            rsg_name: "g",
            rsg_namespace: "scaling-system",
            target_name: "engine",
            copy_name: "pd-pd-1",
            group_id: 1,
            replicas: &replicas,
            service_renames: &renames,
            revision: "r1",
            placement: None,
        },
    );
    let group = json!({"rsg.io/name": "g", "rsg.io/group-id": "1"});
    assert_eq!(
        copy["spec"]["roles"][0]["template"]["metadata"]["labels"],
        json!({"role": "prefill", "rsg.io/name": "g", "rsg.io/group-id": "1"})
    );
    assert_eq!(
        copy["spec"]["roles"][2]["template"]["metadata"]["labels"],
        group
    );
    assert_eq!(
        copy["spec"]["roleTemplates"][0]["template"]["metadata"]["labels"], group,
        "roles that use a shared template get the labels through it"
    );
    assert!(
        copy["spec"]["roles"][1].get("template").is_none(),
        "templateRef stays a reference"
    );
    let role_replicas: Vec<&Value> = (0..3)
        .map(|i| &copy["spec"]["roles"][i]["replicas"])
        .collect();
    assert_eq!(role_replicas, [&json!(3), &json!(1), &json!(1)]);
    assert!(
        copy["spec"].get("replicas").is_none(),
        "a RoleBasedGroup has no single count"
    );
    assert!(copy["spec"].get("selector").is_none());
    assert!(copy.get("status").is_none());
    assert_eq!(copy["metadata"]["name"], "pd-pd-1");
}
