//! Group placement on the real kube-scheduler with kwok's nodes in 3 zones × 2 racks (64 CPUs
//! each): every copy group's pods in one zone, groups spread across zones, a group without
//! room in its zone reported with the scheduler's reason, group 0 (the bases, which rsg never
//! changes, so the scheduler spreads their pods as it likes) never touched, and turning
//! placement on replacing groups one at a time under RollingUpdate (new groups only under
//! OnDelete).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};
use support::fixtures::prefill_decode_rsg;
use support::serving_floor::{serving_groups, ServingFloorMonitor};
use support::{apply, env_with, get_json, namespace, run_kubectl, wait_for, EnvOptions};

/// The tests of this file take turns: some fill the nodes' CPUs, which would steer where
/// another test's pods go.
static NODES: Mutex<()> = Mutex::new(());

const ZONE: &str = "topology.kubernetes.io/zone";
const TARGETS: [&str; 2] = ["prefill", "decode"];

fn setup() -> std::sync::MutexGuard<'static, ()> {
    env_with(EnvOptions {
        cluster: true,
        ..EnvOptions::default()
    });
    NODES.lock().unwrap_or_else(|p| p.into_inner())
}

/// How the bases of a test look.
struct Bases<'a> {
    /// Replicas of prefill and decode.
    replicas: (i32, i32),
    /// CPUs each pod requests.
    cpu: Option<&'a str>,
}

/// Bases `prefill` and `decode` with a Service each; their pods become Ready 300 ms after
/// kwok starts them.
fn bases(ns: &str, bases: &Bases<'_>) {
    for (name, replicas) in TARGETS.iter().zip([bases.replicas.0, bases.replicas.1]) {
        let mut base = rsg::fixtures::deployment(ns, name, replicas);
        let template = &mut base["spec"]["template"];
        template["metadata"]["annotations"] =
            json!({"pod-ready.stage.kwok.x-k8s.io/delay": "300ms"});
        if let Some(cpu) = bases.cpu {
            template["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": cpu}});
        }
        apply(&base.to_string());
        apply(&support::fixtures::service(ns, name));
    }
}

fn status(ns: &str) -> Value {
    get_json("rsg", ns, "llm").expect("the RSG")["status"].clone()
}

fn condition(status: &Value, type_: &str) -> Option<(String, String, String)> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| {
            let text = |key: &str| c[key].as_str().unwrap_or_default().to_string();
            (text("status"), text("reason"), text("message"))
        })
}

/// Waits until `groups` groups are active, ready and at the update revision, none draining,
/// and (with `placed`) the Placement condition says every group's pods are scheduled.
fn wait_settled(ns: &str, groups: i64, placed: bool) -> Value {
    wait_for(
        &format!("{groups} ready, updated groups in {ns}"),
        Duration::from_secs(120),
        || {
            let status = status(ns);
            let reconciled = condition(&status, "Ready").is_some_and(|c| c.1 == "Reconciled");
            let placement = condition(&status, "Placement");
            let settled = status["currentReplicas"] == groups
                && status["readyReplicas"] == groups
                && status["updatedReplicas"] == groups
                && reconciled
                && status["groups"]
                    .as_array()
                    .is_some_and(|g| g.iter().all(|g| g["state"] == "Active"))
                && (!placed || placement.is_some_and(|c| c.1 == "Placed"));
            settled.then_some(status)
        },
    )
}

/// The zone of every node.
fn node_zones() -> BTreeMap<String, String> {
    let nodes: Value =
        serde_json::from_str(&run_kubectl(&["get", "nodes", "-o", "json"])).expect("JSON");
    nodes["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| {
            Some((
                n["metadata"]["name"].as_str()?.to_string(),
                n["metadata"]["labels"][ZONE].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// The pods of `ns` that are not terminating, by group (`0` for the bases').
fn pods_by_group(ns: &str) -> BTreeMap<String, Vec<Value>> {
    let pods: Value =
        serde_json::from_str(&run_kubectl(&["get", "pods", "-n", ns, "-o", "json"])).expect("JSON");
    let mut by_group: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for pod in pods["items"].as_array().into_iter().flatten() {
        if pod["metadata"]["deletionTimestamp"].is_string() {
            continue;
        }
        let group = pod["metadata"]["labels"]["rsg.io/group-id"]
            .as_str()
            .unwrap_or("0")
            .to_string();
        by_group.entry(group).or_default().push(pod.clone());
    }
    by_group
}

/// The zones each group's pods run in.
fn zones_by_group(ns: &str) -> BTreeMap<String, BTreeSet<String>> {
    let zones = node_zones();
    pods_by_group(ns)
        .into_iter()
        .map(|(group, pods)| {
            let used = pods
                .iter()
                .map(|p| {
                    let node = p["spec"]["nodeName"].as_str().unwrap_or("unscheduled");
                    zones.get(node).cloned().unwrap_or_else(|| node.to_string())
                })
                .collect();
            (group, used)
        })
        .collect()
}

/// Each base's generation and its pods' UIDs.
fn group0(ns: &str) -> (Vec<Value>, BTreeSet<String>) {
    let generations = TARGETS
        .iter()
        .map(|name| {
            get_json("deployment", ns, name).expect("a base")["metadata"]["generation"].clone()
        })
        .collect();
    let uids = pods_by_group(ns)
        .get("0")
        .into_iter()
        .flatten()
        .filter_map(|p| p["metadata"]["uid"].as_str().map(str::to_string))
        .collect();
    (generations, uids)
}

/// Gives the RSG of `ns` a placement by zone (defaults for the rest).
fn turn_placement_on(ns: &str) {
    let patch =
        json!({"spec": {"scalingStrategy": {"groupConfig": {"placement": {"packDomain": ZONE}}}}});
    run_kubectl(&[
        "patch",
        "rsg",
        "llm",
        "-n",
        ns,
        "--type=merge",
        "-p",
        &patch.to_string(),
    ]);
}

/// Deletes the RSG and bases of `ns` and waits until their pods are gone, so the CPUs they
/// requested are free for the next test.
fn free_the_nodes(ns: &str) {
    run_kubectl(&[
        "delete",
        "rsg,deployment,service",
        "--all",
        "-n",
        ns,
        "--wait=true",
    ]);
    wait_for(
        &format!("the pods of {ns} to go"),
        Duration::from_secs(60),
        || pods_by_group(ns).is_empty().then_some(()),
    );
}

fn wait_bases_ready(ns: &str, pods: usize) {
    wait_for("the bases' pods", Duration::from_secs(60), || {
        let running = pods_by_group(ns).get("0").map_or(0, |p| {
            p.iter()
                .filter(|p| p["spec"]["nodeName"].is_string())
                .count()
        });
        let ready = TARGETS.iter().all(|name| {
            get_json("deployment", ns, name)
                .is_some_and(|d| d["status"]["readyReplicas"] == d["spec"]["replicas"])
        });
        (running == pods && ready).then_some(())
    });
}

#[test]
fn groups_are_packed_into_one_zone_and_spread_while_group_0_is_untouched() {
    let _turn = setup();
    let ns = namespace("packed");
    bases(
        &ns,
        &Bases {
            replicas: (2, 2),
            cpu: None,
        },
    );
    wait_bases_ready(&ns, 4);
    let before = group0(&ns);
    apply(&prefill_decode_rsg(
        &ns,
        4,
        &format!("      placement: {{packDomain: {ZONE}, spreadGroups: true}}\n"),
    ));
    let settled = wait_settled(&ns, 4, true);

    let zones = zones_by_group(&ns);
    assert_eq!(
        zones.keys().cloned().collect::<Vec<_>>(),
        ["0", "1", "2", "3"],
        "{zones:?}"
    );
    for (group, used) in zones.iter().filter(|(group, _)| *group != "0") {
        assert_eq!(used.len(), 1, "copy group {group} in one zone: {zones:?}");
    }
    let distinct: BTreeSet<&String> = zones.values().flatten().collect();
    assert!(distinct.len() >= 3, "4 spread groups in 3 zones: {zones:?}");
    for group in settled["groups"].as_array().expect("groups") {
        let id = group["id"].to_string();
        let used: Vec<&str> = zones[&id].iter().map(String::as_str).collect();
        assert_eq!(group["domain"], used.join("+").as_str(), "{group}");
        assert!(group.get("unschedulable").is_none(), "{group}");
    }
    assert_eq!(
        pods_by_group(&ns)
            .values()
            .map(Vec::len)
            .collect::<Vec<_>>(),
        [4, 4, 4, 4],
        "every group runs 2 prefill and 2 decode pods"
    );
    let wide = run_kubectl(&["get", "rsg", "llm", "-n", &ns, "-o", "wide"]);
    let domains: Vec<&str> = settled["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter_map(|g| g["domain"].as_str())
        .collect();
    assert_eq!(settled["groupDomains"], domains.join(",").as_str());
    assert!(
        wide.contains("DOMAINS") && wide.contains(&domains.join(",")),
        "kubectl get -o wide shows the domains: {wide}"
    );

    // Group 0 is the owner's: same generations, same pods, no affinity added.
    assert_eq!(group0(&ns), before, "group 0 was changed");
    for name in TARGETS {
        let base = get_json("deployment", &ns, name).expect("a base");
        assert!(
            base["spec"]["template"]["spec"].get("affinity").is_none(),
            "{name}: {}",
            base["spec"]["template"]
        );
    }
}

#[test]
fn a_group_without_room_in_its_zone_reports_why_and_preferred_spills_over() {
    let _turn = setup();
    // 30 CPUs a pod: two fit on a node, four in a zone; a group of 5 never fits in one zone.
    let room = Bases {
        replicas: (1, 4),
        cpu: Some("30"),
    };
    let ns = namespace("no-room");
    bases(&ns, &room);
    wait_bases_ready(&ns, 5);
    apply(&prefill_decode_rsg(
        &ns,
        2,
        &format!("      placement: {{packDomain: {ZONE}}}\n"),
    ));
    let stuck = wait_for(
        "group 1 to report that it cannot be placed",
        Duration::from_secs(90),
        || {
            let status = status(&ns);
            let message = status["groups"].as_array()?.iter().find(|g| g["id"] == 1)?
                ["unschedulable"]
                .as_str()?
                .to_string();
            Some((status, message))
        },
    );
    let (status, message) = stuck;
    assert!(
        message.contains("nodes are available") && message.starts_with("g-"),
        "the scheduler's own message, with the pod: {message}"
    );
    let (placed, reason, text) = condition(&status, "Placement").expect("a Placement condition");
    assert_eq!(
        (placed.as_str(), reason.as_str()),
        ("False", "Unschedulable")
    );
    assert!(text.contains("group 1:"), "{text}");
    let zones = zones_by_group(&ns);
    let scheduled: BTreeSet<&String> = zones["1"]
        .iter()
        .filter(|z| z.starts_with("zone-"))
        .collect();
    assert_eq!(
        scheduled.len(),
        1,
        "the placed pods stay in one zone: {zones:?}"
    );
    wait_for("an Unschedulable Event", Duration::from_secs(30), || {
        run_kubectl(&["get", "events", "-n", &ns, "-o", "json"])
            .contains("\"reason\": \"Unschedulable\"")
            .then_some(())
    });

    // Preferred: the same group spills over into a second zone and every pod runs.
    free_the_nodes(&ns);
    let ns = namespace("spill-over");
    bases(&ns, &room);
    wait_bases_ready(&ns, 5);
    apply(&prefill_decode_rsg(
        &ns,
        2,
        &format!("      placement: {{packDomain: {ZONE}, mode: Preferred}}\n"),
    ));
    let settled = wait_settled(&ns, 2, true);
    let group1 = &settled["groups"][1];
    let domain = group1["domain"].as_str().expect("a domain");
    assert!(
        domain.contains('+'),
        "5 pods of 30 CPUs need two zones: {group1}"
    );
    free_the_nodes(&ns);
}

#[test]
fn turning_placement_on_rolls_group_by_group_without_losing_a_serving_group() {
    let _turn = setup();
    let ns = namespace("place-rolling");
    bases(
        &ns,
        &Bases {
            replicas: (1, 1),
            cpu: None,
        },
    );
    apply(&prefill_decode_rsg(
        &ns,
        4,
        "      updateStrategy: {type: RollingUpdate, maxSurge: 1, maxUnavailable: 0}\n      scaleDown: {drainTimeout: 2s}\n",
    ));
    let before = wait_settled(&ns, 4, false);
    assert!(condition(&before, "Placement").is_none(), "{before}");
    let generations = group0(&ns).0;
    wait_for(
        "every group serving before placement is turned on",
        Duration::from_secs(60),
        || (serving_groups(&ns, TARGETS.len()) == 4).then_some(()),
    );
    let monitor = ServingFloorMonitor::start(&ns, TARGETS.len(), 4);
    turn_placement_on(&ns);
    let after = wait_for(
        "every copy group replaced with the placement",
        Duration::from_secs(180),
        || {
            Some(wait_settled(&ns, 4, true))
                .filter(|s| s["updateRevision"] != before["updateRevision"])
        },
    );
    let (lowest, samples) = monitor.finish();
    eprintln!("placement rollout: lowest serving groups {lowest} over {samples} samples");
    assert!(
        lowest >= 4,
        "serving groups dropped to {lowest} while placement rolled out (replicas 4, maxUnavailable 0; {samples} samples)"
    );
    let copies: Value = serde_json::from_str(&run_kubectl(&[
        "get",
        "deployments",
        "-n",
        &ns,
        "-l",
        "rsg.io/name=llm,rsg.io/group-id!=0",
        "-o",
        "json",
    ]))
    .expect("JSON");
    let copies = copies["items"].as_array().expect("copies");
    assert_eq!(copies.len(), 6, "3 copy groups of 2 targets");
    for copy in copies {
        assert!(
            copy["metadata"]["labels"]["rsg.io/placement"].is_string()
                && copy["spec"]["template"]["spec"]["affinity"]["podAffinity"].is_object(),
            "{}",
            copy["metadata"]["name"]
        );
    }
    for (group, used) in zones_by_group(&ns).iter().filter(|(g, _)| *g != "0") {
        assert_eq!(used.len(), 1, "group {group}: {used:?}");
    }
    assert_eq!(group0(&ns).0, generations, "group 0 is not rolled");
    assert_eq!(after["currentRevision"], after["updateRevision"]);
}

#[test]
fn under_on_delete_placement_reaches_new_groups_only_and_says_so() {
    let _turn = setup();
    let ns = namespace("place-on-delete");
    bases(
        &ns,
        &Bases {
            replicas: (1, 1),
            cpu: None,
        },
    );
    apply(&prefill_decode_rsg(&ns, 2, ""));
    wait_settled(&ns, 2, false);
    let copy_generation = || {
        get_json("deployment", &ns, "g-prefill-1").expect("a copy")["metadata"]["generation"]
            .clone()
    };
    let generation = copy_generation();
    turn_placement_on(&ns);
    let said = wait_for("the Placement condition", Duration::from_secs(60), || {
        condition(&status(&ns), "Placement").filter(|c| c.1 == "NewGroupsOnly")
    });
    assert!(said.2.contains("OnDelete: 1;"), "{said:?}");
    support::scale_rsg(&ns, "llm", 3);
    wait_for("group 2", Duration::from_secs(60), || {
        let status = status(&ns);
        (status["currentReplicas"] == 3 && status["readyReplicas"] == 3).then_some(())
    });
    let placed = get_json("deployment", &ns, "g-prefill-2").expect("group 2");
    assert!(placed["metadata"]["labels"]["rsg.io/placement"].is_string());
    let old = get_json("deployment", &ns, "g-prefill-1").expect("group 1");
    assert!(old["metadata"]["labels"].get("rsg.io/placement").is_none());
    assert_eq!(copy_generation(), generation, "group 1 was not touched");
}
