//! rsg killed mid-work and the API server restarted under it: it converges with nothing
//! duplicated, orphaned or lost. These tests disturb the shared processes, so they run one
//! at a time.

mod support;

use std::sync::Mutex;

use support::{apply, env, get_json, names, namespace, scale_rsg, wait_rsg_converged};

static SERIAL: Mutex<()> = Mutex::new(());

fn base_and_rsg(ns: &str) {
    apply(&support::fixtures::deployment(ns, "web", 0));
    apply(&support::fixtures::service(ns, "web"));
    apply(&support::fixtures::group_rsg(
        ns,
        "web",
        "web",
        ("apps/v1", "Deployment", "web"),
        "{groupName: g, replicas: 1}",
    ));
    wait_rsg_converged(ns, "web", 1);
}

#[test]
fn killed_while_creating_groups_it_converges_without_duplicates_or_orphans() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let ns = namespace("sigkill");
    base_and_rsg(&ns);
    const GROUPS: usize = 40;
    scale_rsg(&ns, "web", GROUPS as i32);
    let created_at_kill = support::wait_deployment_count(
        &ns,
        "rsg.io/name=web,rsg.io/group-id!=0",
        "group creation to be under way",
        |made| made >= 3,
    );
    env().rsg.stop(libc::SIGKILL);
    let after_kill = names("deployments", &ns, "rsg.io/name=web,rsg.io/group-id!=0").len();
    assert!(
        after_kill < GROUPS - 1,
        "rsg must be killed half-way (found {after_kill} of {} copies)",
        GROUPS - 1
    );
    env().rsg.restart();
    wait_rsg_converged(&ns, "web", GROUPS as i64);
    let deployments = names("deployments", &ns, "rsg.io/name=web,rsg.io/group-id!=0");
    let services = names("services", &ns, "rsg.io/name=web,rsg.io/group-id!=0");
    let mut expected_deployments: Vec<String> = (1..GROUPS).map(|i| format!("g-web-{i}")).collect();
    let mut expected_services: Vec<String> = (1..GROUPS).map(|i| format!("web-g-{i}")).collect();
    expected_deployments.sort();
    expected_services.sort();
    assert_eq!(
        deployments, expected_deployments,
        "killed after {created_at_kill} copies"
    );
    assert_eq!(services, expected_services);
    let base = get_json("deployment", &ns, "web").expect("the base is never lost");
    assert_eq!(base["metadata"]["labels"]["rsg.io/group-id"], "0");
}

#[test]
fn a_restarted_api_server_is_survived() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let ns = namespace("restart");
    base_and_rsg(&ns);
    env().control_plane.restart_apiserver();
    scale_rsg(&ns, "web", 3);
    wait_rsg_converged(&ns, "web", 3);
    assert_eq!(
        names("deployments", &ns, "rsg.io/name=web,rsg.io/group-id!=0"),
        ["g-web-1", "g-web-2"]
    );
    // Readiness follows the API server's own probe (every second): it comes back within a
    // few seconds of the restart, whenever the reconcile happened to finish.
    support::wait_for(
        "rsg ready again after the API server restart",
        std::time::Duration::from_secs(10),
        || {
            env()
                .rsg
                .get("/readyz")
                .ok()
                .filter(|(status, _)| *status == 200)
        },
    );
}
