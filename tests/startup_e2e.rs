//! Start-up: readiness and the first reconciles follow the initial lists at once. A lost
//! wake-up used to hold `/readyz` (and the controller) for 15 s in about half the starts.

mod support;

use std::time::{Duration, Instant};

use support::{env, get_json, kubectl_apply, namespace, wait_for};

const STARTS: usize = 50;
/// What a start may take: the initial lists take tens of milliseconds; the defect took 15 s.
const BOUND: Duration = Duration::from_secs(1);

#[test]
fn every_start_is_ready_and_reconciling_within_a_second() {
    let env = env();
    let ns = namespace("startup");
    let mut ready_times = Vec::new();
    let mut reconcile_times = Vec::new();
    for start in 0..STARTS {
        // SIGTERM: rsg releases the Lease, so the next start leads at once.
        env.rsg.stop(libc::SIGTERM);
        let started = Instant::now();
        env.rsg.restart();
        let ready = started.elapsed();
        assert!(
            ready < BOUND,
            "start {start}: ready after {ready:?} (log {})",
            env.rsg.log.display()
        );
        ready_times.push(ready);

        // An RSG created in the first second is reconciled within a second.
        let name = format!("start-{start}");
        let created = Instant::now();
        let out = kubectl_apply(
            &env.kubeconfig,
            &support::fixtures::group_rsg(
                &ns,
                &name,
                "main",
                ("apps/v1", "Deployment", &name),
                "{replicas: 1}",
            ),
            &[],
        );
        assert!(out.success, "{}", out.stderr);
        wait_for(
            &format!("start {start}: RSG {name} to be reconciled"),
            BOUND,
            || {
                let status = get_json("rsg", &ns, &name)?["status"].clone();
                (status["observedGeneration"] == 1).then_some(())
            },
        );
        reconcile_times.push(created.elapsed());
    }
    ready_times.sort_unstable();
    reconcile_times.sort_unstable();
    eprintln!(
        "{STARTS} starts: ready p50 {:?} max {:?}; RSG created after ready reconciled p50 {:?} max {:?}",
        ready_times[STARTS / 2],
        ready_times[STARTS - 1],
        reconcile_times[STARTS / 2],
        reconcile_times[STARTS - 1]
    );
}
