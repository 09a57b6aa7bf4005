//! Choosing scale-down victims with a real Prometheus (fed through a pushgateway) and the
//! real kube-apiserver: metric in both orders, Gauge and Counter; the annotation when a
//! group's series is missing; the highest ids when nothing else decides.

mod support;

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use support::prometheus::Prometheus;
use support::{
    apply, env, env_with, get_json, names, namespace, run_kubectl, scale_rsg, wait_for,
    wait_rsg_converged, EnvOptions,
};

fn prometheus() -> &'static Prometheus {
    env_with(EnvOptions {
        prometheus: true,
        ..EnvOptions::default()
    })
    .prometheus
    .as_ref()
    .expect("prometheus")
}

/// A base Deployment and an RSG with `groups` groups and the given `scaleDown`.
fn rsg_with_groups(ns: &str, groups: i32, scale_down: &str) {
    support::scale_down_rsg(ns, groups, scale_down);
}

fn last_scale_down(ns: &str) -> Value {
    get_json("rsg", ns, "web").expect("rsg")["status"]["lastScaleDown"].clone()
}

fn copies(ns: &str) -> Vec<String> {
    names("deployments", ns, "rsg.io/name=web,rsg.io/group-id!=0")
}

#[test]
fn gauge_values_choose_the_victims_in_both_orders() {
    let prometheus = prometheus();
    let (ascending, descending) = (namespace("asc"), namespace("desc"));
    for ns in [&ascending, &descending] {
        for (group, value) in [(0, 5.0), (1, 1.0), (2, 9.0), (3, 0.5)] {
            prometheus.push(
                "gauge-test",
                "vllm:num_requests_running_gauge",
                "gauge",
                ns,
                group,
                value,
            );
        }
    }
    prometheus.wait_query(
        "avg by (group_id) (vllm:num_requests_running_gauge)",
        &[(0, 5.0), (1, 1.0), (2, 9.0), (3, 0.5)],
    );

    rsg_with_groups(&ascending, 4, "        metric: {expr: \"vllm:num_requests_running_gauge\", type: Gauge}\n        order: ascending");
    scale_rsg(&ascending, "web", 2);
    wait_rsg_converged(&ascending, "web", 2);
    let decision = last_scale_down(&ascending);
    assert_eq!(decision["source"], "Metric", "{decision}");
    assert_eq!(decision["victims"], serde_json::json!([3, 1]));
    let candidates: Vec<(i64, f64)> = decision["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["groupId"].as_i64().unwrap(), c["value"].as_f64().unwrap()))
        .collect();
    assert_eq!(candidates, [(0, 5.0), (1, 1.0), (2, 9.0), (3, 0.5)]);
    assert_eq!(copies(&ascending), ["g-web-2"]);

    rsg_with_groups(&descending, 4, "        metric: {expr: \"vllm:num_requests_running_gauge\", type: Gauge, aggregator: max}\n        order: descending");
    scale_rsg(&descending, "web", 2);
    wait_rsg_converged(&descending, "web", 2);
    let decision = last_scale_down(&descending);
    assert_eq!(
        (decision["source"].clone(), decision["victims"].clone()),
        ("Metric".into(), serde_json::json!([2, 0])),
        "{decision}"
    );
    assert_eq!(copies(&descending), ["g-web-1", "g-web-3"]);
    assert_eq!(
        get_json("deployment", &descending, "web").unwrap()["spec"]["replicas"],
        0,
        "group 0 is scaled to zero, not deleted"
    );

    let events = run_kubectl(&[
        "get",
        "events",
        "-n",
        &descending,
        "--field-selector",
        "involvedObject.name=web",
        "-o",
        "json",
    ]);
    assert!(
        events.contains("ScaleDownDecision") && events.contains("decided by Metric"),
        "{events}"
    );
    let (_, metrics) = env().rsg.get("/metrics").expect("metrics");
    assert!(
        metrics.contains(r#"rsg_scale_down_decisions_total{source="Metric"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"rsg_prometheus_queries_total{result="success"}"#),
        "{metrics}"
    );
}

#[test]
fn counter_rates_choose_the_victims() {
    let prometheus = prometheus();
    let ns = namespace("counter");
    for group in 0..4 {
        prometheus.push(
            "counter-test",
            "vllm:request_success_total",
            "counter",
            &ns,
            group,
            0.0,
        );
    }
    prometheus.wait_query(
        "sum by (group_id) (vllm:request_success_total)",
        &[(0, 0.0), (1, 0.0), (2, 0.0), (3, 0.0)],
    );
    std::thread::sleep(Duration::from_secs(2)); // a second scrape of the zeros
    for (group, total) in [(0, 10.0), (1, 100.0), (2, 50.0), (3, 1.0)] {
        prometheus.push(
            "counter-test",
            "vllm:request_success_total",
            "counter",
            &ns,
            group,
            total,
        );
    }
    let query = "sum by (group_id) (rate(vllm:request_success_total[1m]))";
    wait_for(
        "the rates to rank the groups 3 < 0 < 2 < 1",
        Duration::from_secs(30),
        || {
            let found = prometheus.query_values(query);
            let ranked = found.len() == 4
                && found[3].1 < found[0].1
                && found[0].1 < found[2].1
                && found[2].1 < found[1].1
                && found[3].1 > 0.0;
            ranked.then_some(())
        },
    );
    rsg_with_groups(
        &ns,
        4,
        "        metric: {expr: \"vllm:request_success_total\", type: Counter, window: 1m}",
    );
    scale_rsg(&ns, "web", 2);
    wait_rsg_converged(&ns, "web", 2);
    let decision = last_scale_down(&ns);
    assert_eq!(
        (decision["source"].clone(), decision["victims"].clone()),
        ("Metric".into(), serde_json::json!([3, 0])),
        "{decision}"
    );
    // The query rsg sent reads only the RSG's namespace.
    assert_eq!(
        decision["reason"],
        format!("ranked by Prometheus query sum by (group_id) (rate(vllm:request_success_total{{namespace=\"{ns}\"}}[1m]))")
    );
}

#[test]
fn a_group_without_a_series_hands_the_decision_to_the_annotation() {
    let prometheus = prometheus();
    let ns = namespace("annotation");
    for (group, value) in [(0, 1.0), (1, 2.0), (3, 4.0)] {
        prometheus.push(
            "partial-test",
            "vllm:partial_gauge",
            "gauge",
            &ns,
            group,
            value,
        );
    }
    prometheus.wait_query(
        "avg by (group_id) (vllm:partial_gauge)",
        &[(0, 1.0), (1, 2.0), (3, 4.0)],
    );
    rsg_with_groups(
        &ns,
        4,
        "        metric: {expr: \"vllm:partial_gauge\", type: Gauge}",
    );
    for (deployment, value) in [
        ("web", "6"),
        ("g-web-1", "7"),
        ("g-web-2", "3"),
        ("g-web-3", "8"),
    ] {
        run_kubectl(&[
            "annotate",
            "deployment",
            deployment,
            "-n",
            &ns,
            &format!("autoscaling.rsg.metric.values={value}"),
        ]);
    }
    scale_rsg(&ns, "web", 2);
    wait_rsg_converged(&ns, "web", 2);
    let decision = last_scale_down(&ns);
    assert_eq!(
        (decision["source"].clone(), decision["victims"].clone()),
        ("Annotation".into(), serde_json::json!([2, 0])),
        "{decision}"
    );
    let reason = decision["reason"].as_str().unwrap();
    assert!(reason.contains("no value for groups [2]"), "{reason}");
    assert!(env().rsg.log_tail(400).contains("fallback to annotation"));
}

#[test]
fn without_values_the_highest_group_ids_go() {
    prometheus();
    let ns = namespace("groupid");
    rsg_with_groups(
        &ns,
        4,
        "        metric: {expr: \"vllm:never_pushed\", type: Gauge}",
    );
    scale_rsg(&ns, "web", 1);
    wait_rsg_converged(&ns, "web", 1);
    let decision = last_scale_down(&ns);
    assert_eq!(
        (decision["source"].clone(), decision["victims"].clone()),
        ("GroupId".into(), serde_json::json!([3, 2, 1])),
        "{decision}"
    );
    assert!(
        decision["reason"]
            .as_str()
            .unwrap()
            .contains("no annotation on groups"),
        "{decision}"
    );
    assert!(copies(&ns).is_empty());
    assert!(env().rsg.log_tail(400).contains("fallback to max group-id"));
}

/// Three groups with a Service each, draining for `timeout`, ranked by `metric`.
fn draining_rsg(ns: &str, metric: &str, timeout: &str) {
    // The base and its Service live in the RSG's namespace.
    apply(&support::fixtures::service(ns, "web"));
    rsg_with_groups(
        ns,
        3,
        &format!(
            "        metric: {{expr: \"{metric}\", type: Gauge}}\n        drainTimeout: {timeout}"
        ),
    );
    assert!(get_json("service", ns, "web-g-2").is_some());
}

fn group_state(ns: &str, id: i64) -> Option<String> {
    let rsg = get_json("rsg", ns, "web")?;
    rsg["status"]["groups"]
        .as_array()?
        .iter()
        .find(|g| g["id"] == id)?["state"]
        .as_str()
        .map(str::to_string)
}

fn start_draining_group_2(prometheus: &Prometheus, ns: &str, metric: &str, job: &str) {
    for (group, value) in [(0, 5.0), (1, 3.0), (2, 1.0)] {
        prometheus.push(job, metric, "gauge", ns, group, value);
    }
    prometheus.wait_query(
        &format!("avg by (group_id) ({metric})"),
        &[(0, 5.0), (1, 3.0), (2, 1.0)],
    );
    scale_rsg(ns, "web", 2);
    wait_rsg_converged(ns, "web", 2);
    assert_eq!(group_state(ns, 2).as_deref(), Some("Draining"));
    assert!(
        get_json("service", ns, "web-g-2").is_none(),
        "routing to a draining group stops first"
    );
    let copy =
        get_json("deployment", ns, "g-web-2").expect("the draining group's workloads stay for now");
    assert!(copy["metadata"]["annotations"]["rsg.io/draining-since"].is_string());
}

#[test]
fn a_draining_group_goes_as_soon_as_its_metric_reads_zero() {
    let prometheus = prometheus();
    let ns = namespace("drain-zero");
    draining_rsg(&ns, "vllm:drain_zero", "10m");
    start_draining_group_2(prometheus, &ns, "vllm:drain_zero", "drain-zero");
    prometheus.push("drain-zero", "vllm:drain_zero", "gauge", &ns, 2, 0.0);
    wait_for(
        "the drained group to be deleted",
        Duration::from_secs(30),
        || {
            get_json("deployment", &ns, "g-web-2")
                .is_none()
                .then_some(())
        },
    );
    // The status written after the delete drops the group.
    wait_for(
        "the status without group 2",
        Duration::from_secs(10),
        || group_state(&ns, 2).is_none().then_some(()),
    );
    assert!(get_json("deployment", &ns, "g-web-1").is_some());
}

#[test]
fn a_draining_group_goes_at_the_timeout_when_its_metric_stays_up() {
    let prometheus = prometheus();
    let ns = namespace("drain-timeout");
    draining_rsg(&ns, "vllm:drain_stuck", "8s");
    start_draining_group_2(prometheus, &ns, "vllm:drain_stuck", "drain-stuck");
    // The timeout runs from the moment rsg marked the group draining (its annotation).
    let since: Timestamp = get_json("deployment", &ns, "g-web-2").expect("the draining copy")
        ["metadata"]["annotations"]["rsg.io/draining-since"]
        .as_str()
        .expect("rsg.io/draining-since")
        .parse()
        .expect("an RFC 3339 time");
    let gone_at = wait_for(
        "the timeout to remove the group",
        Duration::from_secs(40),
        || {
            get_json("deployment", &ns, "g-web-2")
                .is_none()
                .then(Timestamp::now)
        },
    );
    let drained_for = gone_at.duration_since(since);
    assert!(
        drained_for >= SignedDuration::from_secs(8),
        "removed {drained_for:?} after it started draining, before the 8 s timeout"
    );
    let events = run_kubectl(&[
        "get",
        "events",
        "-n",
        &ns,
        "--field-selector",
        "involvedObject.name=web",
        "-o",
        "json",
    ]);
    assert!(events.contains("the drain timeout passed"), "{events}");
    assert!(
        events.contains("the base's Services in this namespace (web) select every group's pods and still route to it"),
        "the drain Event says routing through the base's Service does not stop: {events}"
    );
}

#[test]
fn rising_demand_reuses_a_draining_group() {
    let prometheus = prometheus();
    let ns = namespace("drain-reuse");
    draining_rsg(&ns, "vllm:drain_reuse", "10m");
    start_draining_group_2(prometheus, &ns, "vllm:drain_reuse", "drain-reuse");
    let uid = get_json("deployment", &ns, "g-web-2").unwrap()["metadata"]["uid"].clone();
    scale_rsg(&ns, "web", 3);
    wait_rsg_converged(&ns, "web", 3);
    let copy = get_json("deployment", &ns, "g-web-2").expect("reused");
    assert_eq!(
        copy["metadata"]["uid"], uid,
        "the same workloads serve again"
    );
    assert!(copy["metadata"]["annotations"]
        .get("rsg.io/draining-since")
        .is_none());
    assert!(
        get_json("service", &ns, "web-g-2").is_some(),
        "its Service is back"
    );
    assert!(
        get_json("deployment", &ns, "g-web-3").is_none(),
        "no new group was needed"
    );
    assert_eq!(group_state(&ns, 2).as_deref(), Some("Active"));
}

#[test]
fn a_query_reads_only_the_rsgs_namespaces_and_echoes_no_label_value() {
    let prometheus = prometheus();
    let ns = namespace("scoped");
    let other = namespace("other-team");
    // Another team's series, whose label values must not leak.
    const SECRET: &str = "other-teams-secret-name";
    for group in 0..3 {
        prometheus.push_series(
            "other-team",
            "gauge",
            &other,
            group,
            &format!("kube_secret_info{{secret=\"{SECRET}\"}} 1"),
        );
    }
    prometheus.wait_query(
        &format!("sum by (group_id) (kube_secret_info{{namespace=\"{other}\"}})"),
        &[(0, 1.0), (1, 1.0), (2, 1.0)],
    );
    // The query names the other namespace and turns its label values into group ids.
    let expr = format!(
        r#"label_replace(topk(1, kube_secret_info{{namespace="{other}"}}), "group_id", "$1", "secret", "(.*)")"#
    );
    rsg_with_groups(
        &ns,
        3,
        &format!(
            "        metric: {{expr: {}, type: Gauge}}",
            serde_json::to_string(&expr).expect("a YAML string")
        ),
    );
    scale_rsg(&ns, "web", 2);
    wait_rsg_converged(&ns, "web", 2);
    let decision = last_scale_down(&ns);
    assert_ne!(decision["source"], "Metric", "{decision}");
    // Prometheus ran the query with the RSG's namespace ANDed to every selector.
    let queries = std::fs::read_to_string(&prometheus.query_log).expect("the query log");
    let scoped = format!(r#"namespace=\"{ns}\""#);
    assert!(
        queries
            .lines()
            .any(|l| l.contains("kube_secret_info") && l.contains(&scoped)),
        "no scoped query in Prometheus' query log"
    );
    assert!(
        !queries.lines().any(|l| l.contains("kube_secret_info")
            && l.contains("label_replace")
            && !l.contains(&scoped)),
        "an unscoped query reached Prometheus"
    );
    // Neither the status, the Events nor rsg's log show the other team's label values.
    let rsg = run_kubectl(&["get", "rsg", "web", "-n", &ns, "-o", "json"]);
    let events = run_kubectl(&["get", "events", "-n", &ns, "-o", "json"]);
    for (what, text) in [
        ("status", rsg),
        ("Events", events),
        ("rsg's log", env().rsg.log_tail(2000)),
    ] {
        assert!(
            !text.contains(SECRET),
            "{what} show another team's label value"
        );
    }
}
