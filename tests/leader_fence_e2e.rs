//! Never two writers: a leader cut off from the API server in the middle of a scale stops
//! writing before the standby takes over, and writes nothing once its network is back. Each
//! replica reaches the API server through its own pausable proxy and its own token, so the
//! API server's audit log tells their requests apart.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;
use support::control_plane::RSG_REPLICA_TOKENS;
use support::proxy::PausableProxy;
use support::rsg_process::RsgProcess;
use support::{
    apply, env_with, names, namespace, scale_rsg, wait_for, wait_rsg_converged, EnvOptions,
};

const GROUPS: i64 = 40;
const WRITES: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];

fn wait_holder(name: &str, timeout: Duration) {
    wait_for(&format!("{name} to hold the Lease"), timeout, || {
        (support::lease_holder().as_deref() == Some(name)).then_some(())
    });
}

fn wait_log(replica: &RsgProcess, line: &str) {
    wait_for(
        &format!("{} to log {line:?}", replica.name),
        Duration::from_secs(20),
        || {
            std::fs::read_to_string(&replica.log)
                .ok()?
                .contains(line)
                .then_some(())
        },
    );
}

/// Every write in the audit log by the replica whose token has `uid`: (received, verb, URI).
fn writes_of(audit: &str, uid: &str) -> Vec<(Timestamp, String, String)> {
    audit
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["user"]["uid"] == uid)
        .filter(|event| WRITES.contains(&event["verb"].as_str().unwrap_or_default()))
        .filter_map(|event| {
            let received = event["requestReceivedTimestamp"].as_str()?.parse().ok()?;
            Some((
                received,
                event["verb"].as_str()?.to_string(),
                event["requestURI"].as_str()?.to_string(),
            ))
        })
        .collect()
}

#[test]
fn a_leader_cut_off_mid_scale_writes_nothing_once_the_standby_writes() {
    let env = env_with(EnvOptions {
        rsg_args: support::rsg_process::FAST_LEASE_ARGS,
        ..EnvOptions::default()
    });
    // The RSG is admitted (and converged) while the shared replica serves the webhooks.
    let ns = namespace("fence");
    apply(&format!(
        "{}---\n{}---\n{}",
        support::fixtures::deployment(&ns, "engine", 1),
        support::fixtures::service(&ns, "engine"),
        support::fixtures::group_rsg(
            &ns,
            "fence",
            "engine",
            ("apps/v1", "Deployment", "engine"),
            "{groupName: g, replicas: 1}"
        ),
    ));
    wait_rsg_converged(&ns, "fence", 1);
    // The shared replica steps aside (SIGTERM releases the Lease); two proxied ones take over.
    env.rsg.stop(libc::SIGTERM);
    let start = |proxy: &PausableProxy, (token, _uid): (&str, &str), name: &str| {
        let kubeconfig =
            env.control_plane
                .rsg_kubeconfig_via(proxy.port, token, &format!("{name}-kubeconfig"));
        RsgProcess::start_with_certs(
            &env.dir,
            &kubeconfig,
            name,
            env.rsg.cert_dir.clone(),
            env.rsg.ca_bundle.clone(),
            support::rsg_process::FAST_LEASE_ARGS,
        )
    };
    let proxy_a = PausableProxy::start(env.control_plane.apiserver_port);
    let proxy_b = PausableProxy::start(env.control_plane.apiserver_port);
    let leader = start(&proxy_a, RSG_REPLICA_TOKENS[0], "replica-a");
    wait_holder("replica-a", Duration::from_secs(20));
    let standby = start(&proxy_b, RSG_REPLICA_TOKENS[1], "replica-b");

    wait_rsg_converged(&ns, "fence", 1);
    scale_rsg(&ns, "fence", GROUPS as i32);
    wait_for("the scale to be under way", Duration::from_secs(60), || {
        (names("deployments", &ns, "rsg.io/group-id,rsg.io/group-id!=0").len() >= 3).then_some(())
    });

    // Cut the leader off in the middle of its writes.
    proxy_a.cut();
    let cut = Instant::now();
    let copies_at_cut = names("deployments", &ns, "rsg.io/group-id,rsg.io/group-id!=0").len();
    wait_log(
        &leader,
        "could not renew the Lease in time; stopping the controllers",
    );
    let stepped_down = cut.elapsed();
    wait_holder("replica-b", Duration::from_secs(20));
    let taken_over = cut.elapsed();
    // The network comes back while the new leader works.
    proxy_a.heal();
    wait_log(&leader, "another replica leads");
    wait_rsg_converged(&ns, "fence", GROUPS);
    let copies = names("deployments", &ns, "rsg.io/group-id,rsg.io/group-id!=0");
    assert_eq!(
        copies.len() as i64,
        GROUPS - 1,
        "no duplicate or lost group"
    );

    leader.stop(libc::SIGTERM);
    standby.stop(libc::SIGTERM);
    let audit =
        std::fs::read_to_string(&env.control_plane.audit_log).expect("reading the audit log");
    let (_, uid_a) = RSG_REPLICA_TOKENS[0];
    let (_, uid_b) = RSG_REPLICA_TOKENS[1];
    let writes_a = writes_of(&audit, uid_a);
    let writes_b = writes_of(&audit, uid_b);
    assert!(
        writes_a
            .iter()
            .any(|(_, _, uri)| uri.contains("/deployments")),
        "the old leader was creating groups before the cut"
    );
    // The cut hit mid-scale: groups were still missing, and the new leader made some.
    assert!(
        copies_at_cut < GROUPS as usize - 1,
        "the scale had finished ({copies_at_cut} copies) before the cut"
    );
    assert!(
        writes_b
            .iter()
            .any(|(_, verb, uri)| verb == "create" && uri.contains("/deployments")),
        "the new leader created the groups the old one had not: {writes_b:?}"
    );
    let first_b = writes_b
        .iter()
        .map(|(at, _, _)| *at)
        .min()
        .expect("the new leader wrote");
    let late: Vec<_> = writes_a
        .iter()
        .filter(|(at, _, _)| *at >= first_b)
        .collect();
    assert!(
        late.is_empty(),
        "the old leader wrote after the new leader's first write ({first_b}): {late:?}"
    );
    eprintln!(
        "cut at 0: old leader stepped down after {stepped_down:?}, new leader held the Lease after {taken_over:?}; old leader's last write {:?} before the new leader's first",
        writes_a
            .iter()
            .map(|(at, _, _)| *at)
            .max()
            .map(|last| std::time::Duration::try_from(first_b.duration_since(last)).unwrap_or_default())
    );
}
