//! Faults of the control plane in the middle of a scale: the API server killed and started
//! again, etcd killed and started again, and rsg cut off from the API server long enough for
//! a watch to expire (410 Gone, listed again). After each, rsg converges with no duplicate,
//! orphan or lost group, and its readiness follows the outage.

mod support;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;
use support::control_plane::RSG_REPLICA_TOKENS;
use support::proxy::PausableProxy;
use support::rsg_process::RsgProcess;
use support::{
    apply, env, get_json, kubectl_apply, names, namespace, scale_rsg, wait_for, wait_rsg_converged,
};

/// The tests take turns: each takes the control plane or rsg down.
static SERIAL: Mutex<()> = Mutex::new(());

const COPIES: &str = "rsg.io/name=web,rsg.io/group-id!=0";

fn base_and_rsg(ns: &str) {
    apply(&format!(
        "{}---\n{}---\n{}",
        support::fixtures::deployment(ns, "web", 1),
        support::fixtures::service(ns, "web"),
        support::fixtures::group_rsg(
            ns,
            "web",
            "web",
            ("apps/v1", "Deployment", "web"),
            "{groupName: g, replicas: 1}"
        ),
    ));
    wait_rsg_converged(ns, "web", 1);
}

/// Waits until `rsg`'s /readyz says `ready`; returns how long that took.
fn wait_readiness(rsg: &RsgProcess, ready: bool) -> Duration {
    let since = Instant::now();
    wait_for(
        &format!("{}'s /readyz to say ready={ready}", rsg.name),
        Duration::from_secs(30),
        || {
            let answer = rsg.get("/readyz").ok().map(|(status, _)| status == 200);
            (answer == Some(ready)).then_some(())
        },
    );
    since.elapsed()
}

fn wait_rsg_readiness(ready: bool) -> Duration {
    wait_readiness(&env().rsg, ready)
}

/// Exactly the copies and Service copies of `groups` groups, each once.
fn assert_exact_groups(ns: &str, groups: usize) {
    let mut expected_copies: Vec<String> = (1..groups).map(|i| format!("g-web-{i}")).collect();
    let mut expected_services: Vec<String> = (1..groups).map(|i| format!("web-g-{i}")).collect();
    expected_copies.sort();
    expected_services.sort();
    assert_eq!(names("deployments", ns, COPIES), expected_copies);
    assert_eq!(names("services", ns, COPIES), expected_services);
    let base = get_json("deployment", ns, "web").expect("the base is never lost");
    assert_eq!(base["metadata"]["labels"]["rsg.io/group-id"], "0");
}

fn wait_copies(ns: &str, what: &str, done: impl Fn(usize) -> bool + Send + 'static) {
    support::wait_deployment_count(ns, COPIES, what, done);
}

/// How many `verb`s of copy Deployments in `ns` rsg's identity made at or after `since`, by
/// the audit log: work it still had to do when the fault hit.
fn copy_writes_since(ns: &str, verb: &str, since: Timestamp) -> usize {
    let audit = std::fs::read_to_string(&env().control_plane.audit_log).expect("the audit log");
    audit
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|e| e["user"]["username"] == support::control_plane::RSG_USER)
        .filter(|e| e["verb"] == verb && e["objectRef"]["resource"] == "deployments")
        .filter(|e| e["objectRef"]["namespace"] == ns)
        .filter(|e| {
            e["requestReceivedTimestamp"]
                .as_str()
                .and_then(|t| t.parse::<Timestamp>().ok())
                .is_some_and(|t| t >= since)
        })
        .count()
}

#[test]
fn the_api_server_and_etcd_go_down_mid_scale_and_rsg_converges_exactly() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let env = env();

    // The API server killed in the middle of a 1 -> 30 scale.
    let ns = namespace("apiserver-down");
    base_and_rsg(&ns);
    scale_rsg(&ns, "web", 30);
    wait_copies(&ns, "the scale to be under way", |copies| copies >= 3);
    env.control_plane.kill_apiserver();
    let unready_after = wait_rsg_readiness(false);
    let restarted = Timestamp::now();
    env.control_plane.start_apiserver();
    let back = Instant::now();
    wait_rsg_converged(&ns, "web", 30);
    let converged_after = back.elapsed();
    let ready_after = wait_rsg_readiness(true);
    assert_exact_groups(&ns, 30);
    let after_fault = copy_writes_since(&ns, "create", restarted);
    assert!(
        after_fault > 0,
        "the API server went down mid-scale: rsg created no copy after it came back"
    );
    eprintln!(
        "API server down mid-scale: rsg unready {unready_after:?} after the kill; after the restart, converged on 30 groups in {converged_after:?} and ready in {ready_after:?}"
    );

    // etcd killed in the middle of a scale down, 30 -> 10.
    scale_rsg(&ns, "web", 10);
    wait_copies(&ns, "the scale down to be under way", |copies| copies < 29);
    env.control_plane.kill_etcd();
    let unready_after = wait_rsg_readiness(false);
    let restarted = Timestamp::now();
    env.control_plane.start_etcd();
    let back = Instant::now();
    wait_rsg_converged(&ns, "web", 10);
    let converged_after = back.elapsed();
    let ready_after = wait_rsg_readiness(true);
    assert_exact_groups(&ns, 10);
    assert!(
        copy_writes_since(&ns, "delete", restarted) > 0,
        "etcd went down mid-scale: rsg deleted no copy after it came back"
    );
    eprintln!(
        "etcd down mid-scale: rsg unready {unready_after:?} after the kill; after the restart, converged on 10 groups in {converged_after:?} and ready in {ready_after:?}"
    );
}

/// Starts the shared rsg again when dropped, so a failing test leaves it running for the next.
struct RestartSharedRsg;

impl Drop for RestartSharedRsg {
    fn drop(&mut self) {
        if env().rsg.pid().is_none() {
            env().rsg.restart();
        }
    }
}

#[test]
fn watches_that_expired_while_cut_off_are_listed_again() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let env = env();
    // The RSG is admitted while the shared rsg still serves the webhooks.
    let ns = namespace("expiry");
    base_and_rsg(&ns);
    // An rsg of its own that reaches the API server through a proxy that can cut it off; the
    // shared one steps aside (SIGTERM releases the Lease).
    env.rsg.stop(libc::SIGTERM);
    let _restart_shared = RestartSharedRsg;
    let proxy = PausableProxy::start(env.control_plane.apiserver_port);
    let kubeconfig = env.control_plane.rsg_kubeconfig_via(
        proxy.port,
        RSG_REPLICA_TOKENS[0].0,
        "expiry-kubeconfig",
    );
    let rsg = RsgProcess::start_with_certs(
        &env.dir,
        &kubeconfig,
        "rsg-expiry",
        env.rsg.cert_dir.clone(),
        env.rsg.ca_bundle.clone(),
        &[],
    );
    wait_rsg_converged(&ns, "web", 1);

    proxy.cut();
    let unready_after = wait_readiness(&rsg, false);
    // While rsg cannot see them: writes it does not watch, a scale, and an API server restart,
    // whose fresh watch cache starts past every version rsg's watches saw.
    let elsewhere = namespace("unwatched");
    let config_maps: Vec<String> = (0..20)
        .map(|i| format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}, namespace: {elsewhere}}}\n"))
        .collect();
    let out = kubectl_apply(&env.kubeconfig, &config_maps.join("---\n"), &[]);
    assert!(out.success, "{}", out.stderr);
    scale_rsg(&ns, "web", 5);
    env.control_plane.restart_apiserver();
    proxy.heal();
    let healed = Instant::now();
    wait_rsg_converged(&ns, "web", 5);
    let converged_after = healed.elapsed();
    let ready_after = wait_readiness(&rsg, true);
    assert_exact_groups(&ns, 5);
    let log = std::fs::read_to_string(&rsg.log).unwrap_or_default();
    let expired: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("too old resource version"))
        .collect();
    assert!(
        expired.iter().any(|l| l.contains("kind=ConfigMap")),
        "rsg's watches expired (410) and were listed again: {expired:?}"
    );
    eprintln!(
        "cut off: rsg unready {unready_after:?} after the cut; after healing ({} watches expired, 410), converged on 5 groups in {converged_after:?}, ready in {ready_after:?}",
        expired.len()
    );
    rsg.stop(libc::SIGTERM);
}
