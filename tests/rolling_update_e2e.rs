//! Rolling updates of groups on the real apiserver with kube-controller-manager, the real
//! kube-scheduler and kwok's nodes (pods become Ready half a second after they start, as kwok's
//! stage for the pod annotation says): a new image on the bases reaches every copy, one group at
//! a time, without the ready groups, counted from the pods' own Ready conditions, dropping below
//! `replicas - maxUnavailable`.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::serving_floor::{serving_groups, ServingFloorMonitor};
use support::{apply, env_with, get_json, namespace, run_kubectl, wait_for, EnvOptions};

/// The test that SIGKILLs the shared rsg runs alone (write); the others share (read). A kill
/// in the middle of another test's scale-down could lose that decision's record, which rsg
/// writes after acting, and that test would wait for it in vain.
static KILLS: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn setup() -> &'static support::TestEnv {
    env_with(EnvOptions {
        cluster: true,
        ..EnvOptions::default()
    })
}

/// The targets of the RSG in this file.
const TARGETS: [&str; 2] = ["prefill", "decode"];

/// Bases `prefill` and `decode` (one replica each) with a Service each, in `ns`. Their pods
/// (and so their copies' pods) become Ready `ready_after` after kwok starts them.
fn bases(ns: &str, ready_after: &str) {
    for name in TARGETS {
        let mut base = rsg::fixtures::deployment(ns, name, 1);
        base["spec"]["template"]["metadata"]["annotations"] =
            serde_json::json!({"pod-ready.stage.kwok.x-k8s.io/delay": ready_after});
        apply(&base.to_string());
        apply(&support::fixtures::service(ns, name));
    }
}

fn rsg(ns: &str, replicas: i32, update_strategy: &str, drain_timeout: Option<&str>) -> String {
    let scale_down = drain_timeout
        .map(|t| format!("      scaleDown: {{drainTimeout: {t}}}\n"))
        .unwrap_or_default();
    support::fixtures::prefill_decode_rsg(
        ns,
        replicas,
        &format!("      updateStrategy: {update_strategy}\n{scale_down}"),
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

#[test]
fn a_new_image_reaches_every_group_one_at_a_time_and_survives_a_sigkill() {
    let _alone = KILLS.write().unwrap_or_else(|p| p.into_inner());
    let env = setup();
    let ns = namespace("rolling");
    bases(&ns, "500ms");
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

    // From before the new image on, the groups that serve are counted at every change of a
    // pod or Service: group 0's base Deployment keeps its one pod ready while it rolls (a
    // surge pod first), and with maxUnavailable 0 rsg takes no old group down before its
    // replacement serves, so there are never fewer than 4.
    wait_for(
        "every group serving before the image changes",
        Duration::from_secs(60),
        || (serving_groups(&ns, TARGETS.len()) == 4).then_some(()),
    );
    let monitor = ServingFloorMonitor::start(&ns, TARGETS.len(), 4);
    set_image(&ns, 2);
    // Mid-rollout (a first group replaced), rsg is killed and started again.
    wait_for(
        "a first group to be replaced",
        Duration::from_secs(120),
        || {
            let status = status(&ns);
            (status["updateRevision"] != old_revision.as_str()
                && status["updatedReplicas"].as_i64() >= Some(2))
            .then_some(())
        },
    );
    env.rsg.stop(libc::SIGKILL);
    // With rsg dead nothing changes the copies: the kill hit mid-rollout when some copy still
    // has the old image and some the new.
    let at_kill = copy_images(&ns);
    assert!(
        at_kill.iter().any(|(_, image)| image.ends_with(":1"))
            && at_kill.iter().any(|(_, image)| image.ends_with(":2")),
        "rsg was killed mid-rollout: {at_kill:?}"
    );
    env.rsg.restart();
    let after = wait_for(
        "the rollout to finish after the restart",
        Duration::from_secs(120),
        || Some(wait_settled(&ns, 4)).filter(|s| s["updateRevision"] != old_revision.as_str()),
    );
    let (lowest, samples) = monitor.finish();
    eprintln!("rollout: lowest serving groups {lowest} over {samples} samples");

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
        "serving groups dropped to {lowest} during the rollout (replicas 4, maxUnavailable 0; {samples} samples)"
    );
    // Each replaced group is told in an Event.
    let events = run_kubectl(&["get", "events", "-n", &ns, "-o", "json"]);
    assert!(events.contains("ReplacedGroup"), "no ReplacedGroup Event");
}

#[test]
fn a_paused_rollout_waits_and_scale_down_takes_old_groups_first() {
    let _shared = KILLS.read().unwrap_or_else(|p| p.into_inner());
    setup();
    let ns = namespace("rolling-paused");
    bases(&ns, "200ms");
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
    let down = wait_for(
        "the scale down and its decision",
        Duration::from_secs(60),
        || {
            let status = status(&ns);
            (status["currentReplicas"] == 3 && status["lastScaleDown"]["victims"].is_array())
                .then_some(status)
        },
    );
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
    let _shared = KILLS.read().unwrap_or_else(|p| p.into_inner());
    setup();
    let ns = namespace("on-delete");
    bases(&ns, "200ms");
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
    let _shared = KILLS.read().unwrap_or_else(|p| p.into_inner());
    setup();
    let ns = namespace("rolling-history");
    bases(&ns, "0s");
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

/// A base relabelled by hand as a copy (`rsg.io/group-id=7`) is cached without its pod spec,
/// as copies are: rsg reads such a base from the API server, so it takes no snapshot of a
/// template without containers and starts no rollout. It labels the base group 0 again.
#[test]
fn a_base_labelled_as_a_copy_by_hand_is_still_read_whole() {
    let _shared = KILLS.read().unwrap_or_else(|p| p.into_inner());
    setup();
    let ns = namespace("rolling-relabelled");
    bases(&ns, "0s");
    apply(&rsg(&ns, 2, "{type: RollingUpdate}", None));
    let before = wait_settled(&ns, 2)["updateRevision"].clone();
    let snapshots = || support::names("controllerrevisions", &ns, "rsg.io/name=llm");
    assert_eq!(snapshots().len(), 2);
    run_kubectl(&[
        "label",
        "deployment/prefill",
        "rsg.io/group-id=7",
        "--overwrite",
        "-n",
        &ns,
    ]);
    // rsg stores any snapshot before it labels the bases again: once the label is back,
    // every snapshot that reconcile took exists.
    wait_for(
        "the base labelled group 0 again",
        Duration::from_secs(60),
        || {
            let base = get_json("deployment", &ns, "prefill")?;
            (base["metadata"]["labels"]["rsg.io/group-id"] == "0").then_some(())
        },
    );
    assert_eq!(
        snapshots().len(),
        2,
        "no snapshot of a trimmed base: {:?}",
        snapshots()
    );
    for name in snapshots() {
        let snapshot = get_json("controllerrevision", &ns, &name).expect("the snapshot");
        let containers = &snapshot["data"]["spec"]["template"]["spec"]["containers"];
        assert!(
            containers.as_array().is_some_and(|c| !c.is_empty()),
            "snapshot {name} holds no containers: {snapshot}"
        );
    }
    assert_eq!(status(&ns)["updateRevision"], before, "no rollout started");
}
