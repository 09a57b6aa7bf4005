//! Two rsg replicas against one apiserver: both serve admission, only the Lease holder
//! reconciles, and when the holder is killed mid-scale the other takes over after about the
//! lease duration (a claim is trusted for that long from when it was last seen to change, and
//! the Lease is tried every retry period) and finishes the scale.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::rsg_process::{generate_certs, RsgProcess};
use support::{apply, env_with, get_json, names, namespace, scale_rsg, wait_for, EnvOptions};

const LEASE_DURATION: Duration = Duration::from_secs(4);
const RETRY_PERIOD: Duration = Duration::from_millis(500);
const GROUPS: i64 = 40;
/// Copies carry their group id; the adopted base is group 0.
const COPIES: &str = "rsg.io/group-id,rsg.io/group-id!=0";

/// A Deployment with its Service, and an RSG of one group over them.
fn group_rsg(ns: &str) -> String {
    let deployment = support::fixtures::deployment(ns, "engine", 1);
    let service = support::fixtures::service(ns, "engine");
    format!(
        r#"{deployment}---
{service}---
apiVersion: autoscaling.openfuyao.com/v1alpha1
kind: ResourceScalingGroup
metadata: {{name: ha, namespace: {ns}}}
spec:
  targetResources:
  - {{name: engine, resourceRef: {{apiVersion: apps/v1, kind: Deployment, name: engine}}}}
  scalingStrategy:
    type: GroupReplication
    groupConfig: {{groupName: g, replicas: 1}}
"#
    )
}

/// The `reportingInstance` of every Event rsg wrote about the RSG.
fn event_reporters(ns: &str) -> Vec<String> {
    let out = support::run_kubectl(&["get", "events.v1.events.k8s.io", "-n", ns, "-o", "json"]);
    let events: serde_json::Value = serde_json::from_str(&out).expect("events JSON");
    events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["regarding"]["name"] == "ha")
        .filter_map(|e| e["reportingInstance"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn both_replicas_answer_admission_one_reconciles_and_the_standby_takes_over_a_scale() {
    let env = env_with(EnvOptions {
        rsg_args: support::rsg_process::FAST_LEASE_ARGS,
        ..EnvOptions::default()
    });
    let leader = &env.rsg;
    let standby_certs = env.dir.join("standby-certs");
    let ca_bundle = generate_certs(&standby_certs);
    let standby = RsgProcess::start_with_certs(
        &env.dir,
        &env.rsg_kubeconfig,
        "rsg-standby",
        standby_certs,
        ca_bundle,
        support::rsg_process::FAST_LEASE_ARGS,
    );
    wait_for(
        "the first replica to hold the Lease",
        Duration::from_secs(30),
        || (support::lease_holder().as_deref() == Some("rsg")).then_some(()),
    );

    // Both serve the validating webhook.
    let review = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/admission/create-invalid.json"
    ))
    .expect("fixture");
    for replica in [leader, &standby] {
        let (status, body) = replica
            .post("/validate", &review)
            .expect("admission answer");
        assert_eq!(status, 200, "{body}");
        let answer: serde_json::Value = serde_json::from_str(&body).expect("review JSON");
        assert_eq!(answer["response"]["allowed"], false, "{body}");
    }

    // Only the holder reconciles and writes.
    let ns = namespace("ha");
    apply(&group_rsg(&ns));
    support::wait_rsg_converged(&ns, "ha", 1);
    assert_eq!(leader.metric("rsg_leader"), Some(1.0));
    assert_eq!(standby.metric("rsg_leader"), Some(0.0));
    let standby_metrics = standby.get("/metrics").expect("metrics").1;
    assert!(
        !standby_metrics.contains("rsg_reconciles_total{"),
        "the standby reconciled:\n{standby_metrics}"
    );
    let reporters = event_reporters(&ns);
    assert!(!reporters.is_empty());
    assert!(reporters.iter().all(|r| r == "rsg"), "{reporters:?}");

    // Kill the holder as soon as the first object of a large scale appears.
    let mut watch = Command::new(support::kubectl::kubectl_binary())
        .args([
            "get",
            "deployments",
            "-n",
            &ns,
            "-l",
            COPIES,
            "-w",
            "-o",
            "name",
        ])
        .env("KUBECONFIG", &env.kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl watch");
    let mut lines = BufReader::new(watch.stdout.take().expect("watch output")).lines();
    scale_rsg(&ns, "ha", GROUPS as i32);
    let first = lines.next().expect("a copy appears").expect("watch line");
    leader.stop(libc::SIGKILL);
    let killed_at = Instant::now();
    let _ = watch.kill();
    let _ = watch.wait();
    let copies_at_kill = names("deployments", &ns, COPIES).len() as i64;
    assert!(
        (1..GROUPS - 1).contains(&copies_at_kill),
        "the scale finished before the kill ({first}); nothing was in flight"
    );

    wait_for(
        "the standby to hold the Lease",
        Duration::from_secs(30),
        || (support::lease_holder().as_deref() == Some("rsg-standby")).then_some(()),
    );
    let takeover = killed_at.elapsed();
    println!(
        "takeover after SIGKILL: {} ms (lease duration {} ms, retry period {} ms); copies at kill: {copies_at_kill} of {}",
        takeover.as_millis(),
        LEASE_DURATION.as_millis(),
        RETRY_PERIOD.as_millis(),
        GROUPS - 1
    );
    assert!(
        takeover <= LEASE_DURATION + 2 * RETRY_PERIOD + Duration::from_secs(1),
        "took {takeover:?}"
    );

    let rsg = support::wait_rsg_converged(&ns, "ha", GROUPS);
    assert_eq!(
        rsg["status"]["groups"].as_array().map(Vec::len),
        Some(GROUPS as usize)
    );
    let mut expected: Vec<String> = (1..GROUPS).map(|id| format!("g-engine-{id}")).collect();
    expected.sort();
    assert_eq!(names("deployments", &ns, COPIES), expected);
    assert_eq!(names("services", &ns, COPIES).len() as i64, GROUPS - 1);
    assert!(
        event_reporters(&ns).iter().any(|r| r == "rsg-standby"),
        "the new leader recorded its work"
    );
    assert_eq!(standby.metric("rsg_leader"), Some(1.0));

    // A graceful stop releases the Lease: the other replica leads without waiting it out.
    leader.restart();
    let stopping = Instant::now();
    let status = standby.stop(libc::SIGTERM).expect("standby was running");
    assert!(status.success(), "exited with {status}");
    wait_for(
        "the restarted replica to lead",
        Duration::from_secs(10),
        || (support::lease_holder().as_deref() == Some("rsg")).then_some(()),
    );
    let handover = stopping.elapsed();
    println!("handover after SIGTERM: {} ms", handover.as_millis());
    assert!(handover < LEASE_DURATION, "took {handover:?}");
}

#[test]
fn a_replica_that_may_not_use_its_lease_says_why_and_never_reconciles() {
    let env = env_with(EnvOptions {
        rsg_args: support::rsg_process::FAST_LEASE_ARGS,
        ..EnvOptions::default()
    });
    let certs = env.dir.join("misplaced-certs");
    let ca_bundle = generate_certs(&certs);
    // The Role for the Lease exists only in rsg-system.
    let mut args = support::rsg_process::FAST_LEASE_ARGS.to_vec();
    args.extend(["--leader-election-namespace", "default"]);
    let replica = RsgProcess::start_with_certs(
        &env.dir,
        &env.rsg_kubeconfig,
        "rsg-misplaced",
        certs,
        ca_bundle,
        &args,
    );
    let line = wait_for(
        "the Lease error in the log",
        Duration::from_secs(30),
        || {
            replica
                .log_tail(50)
                .lines()
                .find(|l| l.contains("Lease try failed") && l.contains("forbidden"))
                .map(str::to_string)
        },
    );
    assert!(line.contains("WARN"), "{line}");
    assert_eq!(replica.metric("rsg_leader"), Some(0.0));
    assert!(get_json("lease", "default", "rsg-leader").is_none());
}
