//! The log lines the troubleshooting guide searches for (`target resource not found`,
//! `already exists`, `forbidden`, `requeue for convergence`): each names the RSG and the
//! object, and is written once per change, not on every retry.

mod support;

use std::time::Duration;

use support::{
    apply, env, fixtures, namespace, run_kubectl, wait_for, wait_rsg_converged, wait_rsg_reason,
};

fn rsg(ns: &str, name: &str, api_version: &str, kind: &str, target: &str) -> String {
    fixtures::group_rsg(
        ns,
        name,
        "main",
        (api_version, kind, target),
        "{groupName: g, replicas: 2}",
    )
}

fn log() -> String {
    std::fs::read_to_string(&env().rsg.log).expect("reading rsg's log")
}

/// Log lines of the reconciles of RSG `ns/name` (the reconcile span names it) that contain
/// every one of `words`.
fn lines_of(log: &str, ns: &str, name: &str, words: &[&str]) -> usize {
    let span = format!("reconcile{{namespace={ns} name={name}}}");
    log.lines()
        .filter(|line| line.contains(&span) && words.iter().all(|w| line.contains(w)))
        .count()
}

#[test]
fn each_problem_is_logged_once_with_the_rsg_and_the_object() {
    // A custom kind that rsg's ServiceAccount is not granted.
    support::crds::install(
        &support::crds::open_schema("serving.example.com", "Pool", "pools"),
        &["pools"],
    );
    let ns = namespace("logs");
    let rsg_field = |name: &str| format!("rsg={ns}/{name}");
    apply(&rsg(&ns, "missing", "apps/v1", "Deployment", "absent"));
    apply(&fixtures::deployment(&ns, "web", 1));
    apply(&fixtures::deployment(&ns, "g-web-1", 1));
    apply(&rsg(&ns, "taken", "apps/v1", "Deployment", "web"));
    apply(&format!(
        "apiVersion: serving.example.com/v1\nkind: Pool\nmetadata: {{name: pool, namespace: {ns}}}\nspec: {{replicas: 1}}\n"
    ));
    apply(&rsg(
        &ns,
        "denied",
        "serving.example.com/v1",
        "Pool",
        "pool",
    ));
    apply(&fixtures::deployment(&ns, "grow", 1));
    apply(&rsg(&ns, "growing", "apps/v1", "Deployment", "grow"));
    wait_rsg_reason(&ns, "missing", "TargetNotFound");
    wait_rsg_reason(&ns, "taken", "NameConflict");
    wait_rsg_reason(&ns, "denied", "Forbidden");
    // Its groups exist (they never become ready: no kubelet), so its status stops changing.
    wait_rsg_converged(&ns, "growing", 2);

    // (RSG, the words its line must have: the manual's phrase, the RSG, the object.)
    let expected: [(&str, Vec<String>); 4] = [
        (
            "missing",
            vec![
                "target resource not found".into(),
                rsg_field("missing"),
                format!("Deployment {ns}/absent not found"),
            ],
        ),
        (
            "taken",
            vec![
                "already exists".into(),
                rsg_field("taken"),
                format!("Deployment {ns}/g-web-1"),
            ],
        ),
        (
            "denied",
            vec!["forbidden".into(), rsg_field("denied"), "pools".into()],
        ),
        (
            "growing",
            vec![
                "requeue for convergence".into(),
                rsg_field("growing"),
                "groups have every workload ready".into(),
            ],
        ),
    ];
    let count = |log: &str, name: &str, words: &[String]| {
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        lines_of(log, &ns, name, &words)
    };
    let before = wait_for(
        "every troubleshooting line to be logged",
        Duration::from_secs(30),
        || {
            let log = log();
            let counts: Vec<usize> = expected
                .iter()
                .map(|(name, words)| count(&log, name, words))
                .collect();
            counts.iter().all(|n| *n >= 1).then_some(counts)
        },
    );
    for ((name, _), n) in expected.iter().zip(&before) {
        if *name != "growing" {
            assert_eq!(*n, 1, "{name}: one line for one problem");
        }
    }

    // Three more reconciles of each RSG with nothing changed log no line again.
    let reconciles = |log: &str, name: &str| lines_of(log, &ns, name, &["reconcile done"]);
    for round in 1..=3 {
        let log_now = log();
        let done_before: Vec<usize> = expected
            .iter()
            .map(|(name, _)| reconciles(&log_now, name))
            .collect();
        for (name, _) in &expected {
            run_kubectl(&[
                "annotate",
                "rsg",
                name,
                "-n",
                &ns,
                "--overwrite",
                &format!("example.com/poke={round}"),
            ]);
        }
        wait_for(
            &format!("reconcile round {round} of each RSG"),
            Duration::from_secs(30),
            || {
                let log = log();
                expected
                    .iter()
                    .zip(&done_before)
                    .all(|((name, _), done)| reconciles(&log, name) > *done)
                    .then_some(())
            },
        );
    }
    let log = log();
    for ((name, words), n) in expected.iter().zip(&before) {
        assert_eq!(
            count(&log, name, words),
            *n,
            "{name}: retries with no change log nothing new ({words:?})"
        );
    }
}
