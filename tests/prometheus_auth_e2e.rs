//! rsg's Prometheus authentication used for real: Prometheus serves only TLS (its own
//! `--web.config.file`, a certificate of a CA of the test's), behind an authenticating front
//! that admits only the bearer token (`tests/support/token_front.rs`). rsg is started with the
//! chart's settings for that: an https URL, `--prometheus-ca-file` and
//! `--prometheus-bearer-token-file`. Its scale-down decision comes from the metric; with the
//! token file changed to a wrong token (read on every query) the front refuses it and rsg falls
//! back, saying why; with a CA that did not sign the front's certificate it falls back too.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::prometheus::Prometheus;
use support::rsg_process::{generate_certs, RsgProcess};
use support::token_front::TokenFront;
use support::{env, get_json, namespace, scale_rsg, wait_for, wait_rsg_converged};

const METRIC: &str = "vllm:num_requests_running_auth";
const TOKEN: &str = "prometheus-reader-token-1";

fn rsg_with_groups(ns: &str, groups: i32) {
    support::scale_down_rsg(
        ns,
        groups,
        &format!("        metric: {{expr: \"{METRIC}\", type: Gauge}}\n        order: ascending"),
    );
}

/// Pushes the groups' values for `ns`, scales `ns/web` from 3 groups to 2 and returns the
/// decision.
fn scale_down_decision(prometheus: &Prometheus, ns: &str) -> Value {
    for (group, value) in [(0, 5.0), (1, 1.0), (2, 9.0)] {
        prometheus.push("auth", METRIC, "gauge", ns, group, value);
    }
    prometheus.wait_query(
        &format!("avg by (group_id) ({METRIC}{{namespace=\"{ns}\"}})"),
        &[(0, 5.0), (1, 1.0), (2, 9.0)],
    );
    rsg_with_groups(ns, 3);
    scale_rsg(ns, "web", 2);
    wait_rsg_converged(ns, "web", 2);
    get_json("rsg", ns, "web").expect("the RSG")["status"]["lastScaleDown"].clone()
}

#[test]
fn an_authenticated_tls_prometheus_is_queried_with_the_token_and_the_ca() {
    let env = env();
    let certs = env.dir.join("prometheus-certs");
    generate_certs(&certs);
    let prometheus = Prometheus::start_with_tls(&env.dir, &certs);
    let front = TokenFront::start(&certs, &prometheus.url, TOKEN);
    let token_file = env.dir.join("prometheus-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("writing the token");

    // The shared replica steps aside for one set up as the chart sets it up for Prometheus.
    env.rsg.stop(libc::SIGTERM);
    // Each replacement serves the webhooks too, so the RSGs it decides for are admitted.
    let start = |name: &str, ca: &std::path::Path| {
        let rsg = RsgProcess::start_with_certs(
            &env.dir,
            &env.rsg_kubeconfig,
            name,
            env.rsg.cert_dir.clone(),
            env.rsg.ca_bundle.clone(),
            &[
                "--prometheus-url",
                &front.url,
                "--prometheus-bearer-token-file",
                &token_file.display().to_string(),
                "--prometheus-ca-file",
                &ca.display().to_string(),
                "--prometheus-timeout",
                "2s",
            ],
        );
        support::rsg_process::register_webhooks(&env.kubeconfig, &rsg);
        rsg
    };
    let rsg = start("rsg-prometheus-auth", &certs.join("ca.crt"));

    let ns = namespace("auth-ok");
    let decision = scale_down_decision(&prometheus, &ns);
    assert_eq!(decision["source"], "Metric", "{decision}");
    assert_eq!(decision["victims"], serde_json::json!([1]), "{decision}");
    assert!(front.allowed() > 0, "rsg's queries reached Prometheus");
    assert_eq!(front.refused(), 0, "every query of rsg carried the token");

    // A wrong token (the file is read on every query): refused, and rsg says so.
    std::fs::write(&token_file, "not-the-token\n").expect("writing the token");
    let ns = namespace("auth-wrong-token");
    let decision = scale_down_decision(&prometheus, &ns);
    assert_ne!(decision["source"], "Metric", "{decision}");
    assert!(
        decision["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("401"),
        "{decision}"
    );
    assert!(front.refused() > 0);
    rsg.stop(libc::SIGTERM);

    // A CA that did not sign the front's certificate: no query is answered.
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("writing the token");
    let other_ca = env.dir.join("other-ca");
    generate_certs(&other_ca);
    let allowed_before = front.allowed();
    let rsg = start("rsg-prometheus-wrong-ca", &other_ca.join("ca.crt"));
    let ns = namespace("auth-wrong-ca");
    let decision = scale_down_decision(&prometheus, &ns);
    assert_ne!(decision["source"], "Metric", "{decision}");
    assert_eq!(
        front.allowed(),
        allowed_before,
        "no query passed an untrusted TLS handshake"
    );
    rsg.stop(libc::SIGTERM);

    env.rsg.restart();
    wait_for("the shared replica back", Duration::from_secs(30), || {
        env.rsg.pid().map(|_| ())
    });
    support::rsg_process::register_webhooks(&env.kubeconfig, &env.rsg);
}
