//! Rolling updates of groups on the real apiserver with kube-controller-manager, pods made
//! ready by the readiness simulator: a new image on the bases reaches every copy, one group
//! at a time, without the ready groups dropping below `replicas - maxUnavailable`.

mod support;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use support::readiness::ReadinessSimulator;
use support::{apply, env_with, get_json, namespace, run_kubectl, wait_for, EnvOptions};

fn setup() -> &'static support::TestEnv {
    env_with(EnvOptions {
        controller_manager: true,
        ..EnvOptions::default()
    })
}

/// Bases `prefill` and `decode` (one replica each) with a Service each, in `ns`.
fn bases(ns: &str) {
    for name in ["prefill", "decode"] {
        apply(&support::fixtures::deployment(ns, name, 1));
        apply(&support::fixtures::service(ns, name));
    }
}

fn rsg(ns: &str, replicas: i32, update_strategy: &str, drain_timeout: Option<&str>) -> String {
    let scale_down = drain_timeout
        .map(|t| format!("\n      scaleDown: {{drainTimeout: {t}}}"))
        .unwrap_or_default();
    format!(
        r#"apiVersion: autoscaling.openfuyao.com/v1alpha1
kind: ResourceScalingGroup
metadata: {{name: llm, namespace: {ns}}}
spec:
  targetResources:
  - {{name: prefill, resourceRef: {{apiVersion: apps/v1, kind: Deployment, name: prefill}}}}
  - {{name: decode, resourceRef: {{apiVersion: apps/v1, kind: Deployment, name: decode}}}}
  scalingStrategy:
    type: GroupReplication
    groupConfig:
      groupName: g
      replicas: {replicas}
      updateStrategy: {update_strategy}{scale_down}
"#
    )
}

fn status(ns: &str) -> Value {
    get_json("rsg", ns, "llm").expect("the RSG")["status"].clone()
}

fn ready_reason(status: &Value) -> (String, String) {
    status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready")
        .map(|c| {
            (
                c["reason"].as_str().unwrap_or_default().to_string(),
                c["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .unwrap_or_default()
}

/// Waits until `groups` groups exist, all ready and at one revision, and none is still
/// draining; returns the status.
fn wait_settled(ns: &str, groups: i64) -> Value {
    wait_for(
        &format!("{groups} ready groups, all at the update revision, in {ns}"),
        Duration::from_secs(120),
        || {
            let status = status(ns);
            let settled = status["currentReplicas"] == groups
                && status["readyReplicas"] == groups
                && status["updatedReplicas"] == groups
                && ready_reason(&status).0 == "Reconciled"
                && status["groups"]
                    .as_array()
                    .is_some_and(|g| g.iter().all(|g| g["state"] == "Active"));
            settled.then_some(status)
        },
    )
}

/// The image of every copy of each target, by copy name.
fn copy_images(ns: &str) -> Vec<(String, String)> {
    let out = run_kubectl(&[
        "get",
        "deployments",
        "-n",
        ns,
        "-l",
        "rsg.io/name=llm,rsg.io/group-id!=0",
        "-o",
        "json",
    ]);
    let list: Value = serde_json::from_str(&out).expect("JSON");
    let mut images: Vec<(String, String)> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            (
                d["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                d["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    images.sort();
    images
}

fn set_image(ns: &str, version: u32) {
    for name in ["prefill", "decode"] {
        run_kubectl(&[
            "set",
            "image",
            &format!("deployment/{name}"),
            &format!("{name}=registry.local/{name}:{version}"),
            "-n",
            ns,
        ]);
    }
}

/// Samples `readyReplicas` every 100 ms while the rollout runs; the lowest value seen.
struct ReadyFloorMonitor {
    stop: Arc<AtomicBool>,
    lowest: Arc<AtomicI64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ReadyFloorMonitor {
    fn start(ns: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let lowest = Arc::new(AtomicI64::new(i64::MAX));
        let (ns, running, low) = (ns.to_string(), stop.clone(), lowest.clone());
        let thread = std::thread::spawn(move || {
            while !running.load(Ordering::Relaxed) {
                if let Some(ready) = status(&ns)["readyReplicas"].as_i64() {
                    low.fetch_min(ready, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Self {
            stop,
            lowest,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> i64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.lowest.load(Ordering::Relaxed)
    }
}

#[test]
fn a_new_image_reaches_every_group_one_at_a_time_and_survives_a_sigkill() {
    let env = setup();
    let ns = namespace("rolling");
    let simulator = ReadinessSimulator::start(&ns, "", Duration::from_millis(500));
    bases(&ns);
    apply(&rsg(
        &ns,
        4,
        "{type: RollingUpdate, maxSurge: 1, maxUnavailable: 0}",
        Some("2s"),
    ));
    let before = wait_settled(&ns, 4);
    let old_revision = before["updateRevision"]
        .as_str()
        .expect("a revision")
        .to_string();
    assert!(copy_images(&ns)
        .iter()
        .all(|(_, image)| image.ends_with(":1")));

    set_image(&ns, 2);
    // Group 0 is the base itself: the Deployment controller rolls it, and while its new pod is
    // not ready it is not a ready group. That dip is not rsg's doing, and with
    // maxUnavailable 0 rsg takes no old group down before every group, group 0 included, is
    // ready: from then on, the ready groups must never drop below 4.
    wait_for(
        "the bases rolled by their Deployments",
        Duration::from_secs(60),
        || {
            ["prefill", "decode"]
                .iter()
                .all(|name| {
                    let base = get_json("deployment", &ns, name).expect("a base");
                    base["status"]["observedGeneration"] == base["metadata"]["generation"]
                        && base["status"]["updatedReplicas"] == 1
                        && base["status"]["readyReplicas"] == 1
                        && base["status"]["replicas"] == 1
                })
                .then_some(())
        },
    );
    wait_for(
        "group 0 ready at the new template",
        Duration::from_secs(60),
        || {
            let status = status(&ns);
            let group0 = &status["groups"][0];
            (group0["ready"] == true
                && group0["revision"] == status["updateRevision"]
                && status["updateRevision"] != old_revision.as_str())
            .then_some(())
        },
    );
    let monitor = ReadyFloorMonitor::start(&ns);
    // Mid-rollout (a first group replaced), rsg is killed and started again.
    wait_for(
        "a first group to be replaced",
        Duration::from_secs(120),
        || {
            let status = status(&ns);
            (status["updatedReplicas"].as_i64() >= Some(2)).then_some(())
        },
    );
    env.rsg.stop(libc::SIGKILL);
    env.rsg.restart();
    let after = wait_settled(&ns, 4);
    let lowest = monitor.finish();

    let new_revision = after["updateRevision"].as_str().expect("a revision");
    assert_ne!(new_revision, old_revision);
    assert_eq!(after["currentRevision"], after["updateRevision"]);
    let images = copy_images(&ns);
    assert_eq!(
        images.len(),
        6,
        "3 copies of each target, no duplicate group: {images:?}"
    );
    assert!(
        images.iter().all(|(_, image)| image.ends_with(":2")),
        "every copy at the new template: {images:?}"
    );
    for group in after["groups"].as_array().expect("groups") {
        assert_eq!(group["revision"], new_revision, "{group}");
    }
    assert!(
        lowest >= 4,
        "ready groups dropped to {lowest} during the rollout (replicas 4, maxUnavailable 0)"
    );
    // Each replaced group is told in an Event.
    let events = run_kubectl(&["get", "events", "-n", &ns, "-o", "json"]);
    assert!(events.contains("ReplacedGroup"), "no ReplacedGroup Event");
    assert!(simulator.marked() > 0);
}

#[test]
fn a_paused_rollout_waits_and_scale_down_takes_old_groups_first() {
    setup();
    let ns = namespace("rolling-paused");
    let _simulator = ReadinessSimulator::start(&ns, "", Duration::from_millis(200));
    bases(&ns);
    apply(&rsg(&ns, 3, "{type: RollingUpdate, paused: true}", None));
    let before = wait_settled(&ns, 3);
    set_image(&ns, 2);
    let paused = wait_for(
        "the paused rollout to show",
        Duration::from_secs(60),
        || {
            let status = status(&ns);
            let (reason, message) = ready_reason(&status);
            (reason == "RollingUpdate"
                && message.contains("paused")
                && status["updateRevision"] != before["updateRevision"])
                .then_some(status)
        },
    );
    assert_eq!(
        paused["updatedReplicas"], 1,
        "only group 0, the base: {paused}"
    );
    assert!(copy_images(&ns)
        .iter()
        .all(|(_, image)| image.ends_with(":1")));

    // Scale up while paused: the new group gets the new revision.
    support::scale_rsg(&ns, "llm", 4);
    let scaled = wait_for("a new-revision group", Duration::from_secs(60), || {
        let status = status(&ns);
        (status["currentReplicas"] == 4 && status["updatedReplicas"] == 2).then_some(status)
    });
    let new_revision = scaled["updateRevision"].clone();
    // Scale down: an old group goes, not the new one.
    support::scale_rsg(&ns, "llm", 3);
    let down = wait_for("the scale down", Duration::from_secs(60), || {
        let status = status(&ns);
        (status["currentReplicas"] == 3).then_some(status)
    });
    assert_eq!(
        down["updatedReplicas"], 2,
        "the new-revision groups stay: {down}"
    );
    let decision = &down["lastScaleDown"];
    let victim = decision["victims"][0].as_i64().expect("a victim");
    assert!(
        victim < 4,
        "an old group (1-3) went, not the new group 4: {decision}"
    );

    // Resume: the remaining old group is replaced.
    run_kubectl(&[
        "patch",
        "rsg",
        "llm",
        "-n",
        &ns,
        "--type=merge",
        "-p",
        r#"{"spec":{"scalingStrategy":{"groupConfig":{"updateStrategy":{"paused":false}}}}}"#,
    ]);
    let after = wait_settled(&ns, 3);
    assert_eq!(after["updateRevision"], new_revision);
    assert!(copy_images(&ns)
        .iter()
        .all(|(_, image)| image.ends_with(":2")));
}

#[test]
fn on_delete_leaves_existing_groups_as_they_are() {
    setup();
    let ns = namespace("on-delete");
    let _simulator = ReadinessSimulator::start(&ns, "", Duration::from_millis(200));
    bases(&ns);
    apply(&rsg(&ns, 2, "{type: OnDelete}", None));
    let before = wait_settled(&ns, 2);
    let generations = || -> Vec<Value> {
        ["g-prefill-1", "g-decode-1"]
            .iter()
            .map(|name| {
                get_json("deployment", &ns, name).expect("a copy")["metadata"]["generation"].clone()
            })
            .collect()
    };
    let copy_generations = generations();
    // Every write of rsg carries its one field manager: the copy it made, the RSG's status
    // (server-side applied). (manager, operation, the top-level fields it owns)
    let managers = |kind: &str, name: &str| -> Vec<(String, String, String)> {
        let out = run_kubectl(&[
            "get",
            kind,
            name,
            "-n",
            &ns,
            "-o",
            "json",
            "--show-managed-fields",
        ]);
        let object: Value = serde_json::from_str(&out).expect("JSON");
        object["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| {
                let mut owned: Vec<&String> = f["fieldsV1"]
                    .as_object()
                    .map(|o| o.keys().collect())
                    .unwrap_or_default();
                owned.sort();
                let owned: Vec<&str> = owned.iter().map(|k| k.as_str()).collect();
                (
                    f["manager"].as_str().unwrap_or_default().to_string(),
                    f["operation"].as_str().unwrap_or_default().to_string(),
                    owned.join(","),
                )
            })
            .collect()
    };
    let copy_managers = managers("deployment", "g-prefill-1");
    assert!(
        copy_managers.contains(&(
            "rsg".to_string(),
            "Update".to_string(),
            "f:metadata,f:spec".to_string()
        )),
        "{copy_managers:?}"
    );
    let rsg_managers = managers("rsg", "llm");
    assert!(
        rsg_managers.contains(&(
            "rsg".to_string(),
            "Apply".to_string(),
            "f:status".to_string()
        )),
        "{rsg_managers:?}"
    );
    set_image(&ns, 2);
    // rsg sees the base change (group 0's revision moves) and replaces nothing.
    let after = wait_for(
        "group 0 at the new template",
        Duration::from_secs(60),
        || {
            let status = status(&ns);
            let group0 = status["groups"][0]["revision"].clone();
            (group0 != before["groups"][0]["revision"] && status["readyReplicas"] == 2)
                .then_some(status)
        },
    );
    assert_eq!(
        after["updateRevision"], before["updateRevision"],
        "new groups still use the snapshot"
    );
    assert_eq!(ready_reason(&after).0, "Reconciled");
    assert!(copy_images(&ns)
        .iter()
        .all(|(_, image)| image.ends_with(":1")));
    assert_eq!(
        generations(),
        copy_generations,
        "the copies' specs were not touched"
    );
}

#[test]
fn snapshots_no_group_uses_are_pruned_to_a_short_history() {
    setup();
    let ns = namespace("rolling-history");
    bases(&ns);
    // Group 0 only: every template change takes a snapshot, none is used by a copy.
    apply(&rsg(&ns, 1, "{type: RollingUpdate}", None));
    let snapshots = || support::names("controllerrevisions", &ns, "rsg.io/name=llm");
    wait_for("the first snapshots", Duration::from_secs(60), || {
        (snapshots().len() == 2).then_some(())
    });
    let mut last_revision = status(&ns)["updateRevision"].clone();
    for version in 2..=6 {
        set_image(&ns, version);
        last_revision = wait_for("a new update revision", Duration::from_secs(60), || {
            let status = status(&ns);
            let revision = status["updateRevision"].clone();
            let both = status["groups"][0]["revision"] == revision;
            (revision != last_revision && both).then_some(revision)
        });
    }
    // 2 targets x (3 newest); rsg ran as the ServiceAccount of manifests/install, so the
    // deletes were allowed by exactly that RBAC.
    wait_for(
        "snapshots pruned to 3 per target",
        Duration::from_secs(60),
        || {
            let left = snapshots();
            (left.len() == 6).then_some(())
        },
    );
}
