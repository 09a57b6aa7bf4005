//! A Prometheus that is down, slow, answers garbage or an error never blocks a scale-down:
//! the decision falls back (annotation, then group id) within the query timeout. And each RSG
//! queries at most once per the minimum interval, however often it is reconciled.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rsg::api::{ScaleDown, ScaleDownMetric};
use rsg::metrics::Metrics;
use rsg::scale_down::{decide, read_metric, DecisionInputs, PrometheusClient, PrometheusConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const TIMEOUT: Duration = Duration::from_millis(500);

/// Serves every connection with `response` after `delay` (never, if `None`).
async fn fake_prometheus(response: &'static str, delay: Option<Duration>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let _ = socket.read(&mut buffer).await;
                match delay {
                    None => std::future::pending::<()>().await,
                    Some(delay) => tokio::time::sleep(delay).await,
                }
                let reply = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{response}", response.len());
                let _ = socket.write_all(reply.as_bytes()).await;
            });
        }
    });
    url
}

/// A well-formed answer of 5 MiB: one series per group, far more groups than any RSG has.
fn oversized_answer() -> &'static str {
    let series: Vec<String> = (0..60_000)
        .map(|i| format!(r#"{{"metric":{{"group_id":"{i}","pod":"padding-padding-padding"}},"value":[1,"1"]}}"#))
        .collect();
    let body = format!(
        r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
        series.join(",")
    );
    assert!(body.len() > 4 * 1024 * 1024);
    Box::leak(body.into_boxed_str())
}

#[test]
fn a_bearer_token_is_never_sent_over_plain_http() {
    let config = |url: &str| PrometheusConfig {
        url: url.into(),
        bearer_token_file: Some("/var/run/secrets/prometheus/token".into()),
        ca_file: None,
        timeout: TIMEOUT,
        min_query_interval: Duration::ZERO,
    };
    let refused = PrometheusClient::new(config("HTTP://prometheus.monitoring:9090"));
    assert!(
        matches!(
            refused,
            Err(rsg::scale_down::PrometheusError::TokenOverPlainHttp)
        ),
        "a token over http must be refused"
    );
    assert!(PrometheusClient::new(config("https://prometheus.monitoring:9090")).is_ok());
}

fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

fn scale_down() -> ScaleDown {
    ScaleDown {
        metric: Some(ScaleDownMetric {
            expr: "vllm:num_requests_running".into(),
            type_: "Gauge".into(),
            window: None,
            aggregator: None,
        }),
        order: Some("ascending".into()),
        drain_timeout: None,
    }
}

async fn decide_with(
    url: &str,
    annotations: BTreeMap<i32, Option<String>>,
) -> (rsg::scale_down::victims::VictimDecision, Duration) {
    let client = PrometheusClient::new(PrometheusConfig {
        url: url.into(),
        bearer_token_file: None,
        ca_file: None,
        timeout: TIMEOUT,
        min_query_interval: Duration::ZERO,
    })
    .unwrap();
    let metrics = Metrics::default();
    let scale_down = scale_down();
    let started = Instant::now();
    let namespaces = std::collections::BTreeSet::from(["team".to_string()]);
    let reading = read_metric(
        Some(&client),
        &metrics,
        "team/llm",
        Some(&scale_down),
        &namespaces,
    )
    .await;
    let decision = decide(
        DecisionInputs {
            scale_down: Some(&scale_down),
            candidates: &[0, 1, 2],
            count: 1,
            annotations,
        },
        &reading,
    );
    (decision, started.elapsed())
}

fn annotated() -> BTreeMap<i32, Option<String>> {
    BTreeMap::from([
        (0, Some("5".into())),
        (1, Some("1".into())),
        (2, Some("3".into())),
    ])
}

#[tokio::test]
async fn every_failure_falls_back_within_the_timeout() {
    let cases = [
        ("down", closed_port_url(), "querying"),
        ("slow", fake_prometheus("{}", None).await, "no answer from"),
        ("garbage", fake_prometheus("<html>proxy error</html>", Some(Duration::ZERO)).await, "not a Prometheus response"),
        ("error", fake_prometheus(r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#, Some(Duration::ZERO)).await, "Prometheus answered error: parse error"),
        (
            "partial",
            fake_prometheus(
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"group_id":"0"},"value":[1,"2"]}]}}"#,
                Some(Duration::ZERO),
            )
            .await,
            "no value for groups [1, 2]",
        ),
        (
            "oversized",
            fake_prometheus(oversized_answer(), Some(Duration::ZERO)).await,
            "Prometheus answered more than 4194304 bytes",
        ),
    ];
    for (name, url, cause) in cases {
        let (decision, took) = decide_with(&url, annotated()).await;
        assert_eq!(
            decision.source.as_str(),
            "Annotation",
            "{name}: {decision:?}"
        );
        assert_eq!(decision.victims, vec![1], "{name}");
        assert!(
            decision.reason.contains(cause),
            "{name}: {}",
            decision.reason
        );
        // The reason reaches status and Events: it names Prometheus, never its address.
        let address = url.trim_start_matches("http://");
        assert!(
            !decision.reason.contains(address),
            "{name}: {}",
            decision.reason
        );
        assert!(
            took < TIMEOUT + Duration::from_secs(1),
            "{name} took {took:?}"
        );

        let (decision, _) = decide_with(&url, BTreeMap::new()).await;
        assert_eq!(
            (decision.source.as_str(), decision.victims.clone()),
            ("GroupId", vec![2]),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_complete_answer_decides_by_metric() {
    let url = fake_prometheus(
        r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"group_id":"0"},"value":[1,"2"]},{"metric":{"group_id":"1"},"value":[1,"7"]},{"metric":{"group_id":"2"},"value":[1,"0"]}]}}"#,
        Some(Duration::ZERO),
    )
    .await;
    let (decision, _) = decide_with(&url, BTreeMap::new()).await;
    assert_eq!(
        (decision.source.as_str(), decision.victims),
        ("Metric", vec![2])
    );
}

#[tokio::test]
async fn each_rsg_queries_at_most_once_per_interval() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let _ = socket.read(&mut buffer).await;
                let body = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"group_id":"1"},"value":[1,"2"]}]}}"#;
                let reply = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                let _ = socket.write_all(reply.as_bytes()).await;
            });
        }
    });
    let client = PrometheusClient::new(PrometheusConfig {
        url,
        bearer_token_file: None,
        ca_file: None,
        timeout: TIMEOUT,
        min_query_interval: Duration::from_secs(60),
    })
    .unwrap();
    let metrics = Metrics::default();
    let namespaces = std::collections::BTreeSet::from(["team".to_string()]);
    let mut other = scale_down();
    if let Some(metric) = other.metric.as_mut() {
        metric.expr = "vllm:num_requests_waiting".into();
    }
    let read = |rsg: &'static str, scale_down: ScaleDown| {
        let (client, metrics, namespaces) = (&client, &metrics, &namespaces);
        async move { read_metric(Some(client), metrics, rsg, Some(&scale_down), namespaces).await }
    };
    let count = || requests.load(std::sync::atomic::Ordering::SeqCst);
    let first = read("team/a", scale_down()).await;
    for _ in 0..5 {
        assert_eq!(
            read("team/a", scale_down()).await,
            first,
            "the answer is reused"
        );
    }
    assert_eq!(count(), 1, "one query for six reconciles of one RSG");
    read("team/b", scale_down()).await;
    assert_eq!(count(), 2, "each RSG has its own bound");
    read("team/a", other).await;
    assert_eq!(count(), 3, "a changed query is sent at once");
}
