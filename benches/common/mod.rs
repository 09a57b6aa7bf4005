//! Shared pieces of the benchmarks: a keep-alive HTTPS load generator and process memory.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one load run measured.
pub struct LoadResult {
    /// Successful responses.
    pub requests: usize,
    /// Failed requests (transport errors or non-200).
    pub errors: usize,
    /// Successful responses per second.
    pub per_second: f64,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// Every request sent, the warm-up's included.
    pub sent: usize,
}

/// POSTs `body` to `url` from `concurrency` workers, each on its own kept-alive HTTP/1.1
/// connection, for `warmup` (not measured) and then `duration`.
pub async fn run_load(
    url: &str,
    body: Arc<Vec<u8>>,
    ca_pem: &[u8],
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
) -> LoadResult {
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem).expect("CA"))
        .http1_only()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let started = Instant::now();
    let measure_from = started + warmup;
    let stop_at = measure_from + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, body, url) = (client.clone(), body.clone(), url.to_string());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0;
                let mut sent_total = 0usize;
                while Instant::now() < stop_at {
                    sent_total += 1;
                    let sent = Instant::now();
                    let outcome = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body.as_ref().clone())
                        .send()
                        .await;
                    let ok = match outcome {
                        Ok(response) => {
                            response.status().is_success() && response.bytes().await.is_ok()
                        }
                        Err(_) => false,
                    };
                    if sent >= measure_from {
                        if ok {
                            latencies.push(sent.elapsed());
                        } else {
                            errors += 1;
                        }
                    }
                }
                (latencies, errors, sent_total)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut sent = 0;
    for worker in workers {
        let (l, e, n) = worker.await.expect("worker");
        latencies.extend(l);
        errors += e;
        sent += n;
    }
    latencies.sort();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    LoadResult {
        requests: latencies.len(),
        errors,
        per_second: latencies.len() as f64 / duration.as_secs_f64(),
        p50: pick(0.50),
        p99: pick(0.99),
        sent,
    }
}

/// Resident and peak resident memory of a process, in MiB.
pub fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map(|kib| kib / 1024.0)
            .unwrap_or(f64::NAN)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU time (user and system) a process has used so far, in seconds; NaN when it is gone.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces, inside parentheses): utime and
    // stime are the 12th and 13th, in clock ticks of 1/100 s.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) / 100.0,
        _ => f64::NAN,
    }
}

/// Duration from `RSG_BENCH_SECONDS` (default `default_secs`).
pub fn bench_duration(default_secs: u64) -> Duration {
    Duration::from_secs(env_number("RSG_BENCH_SECONDS", default_secs))
}

/// True when run by `cargo bench` (which passes `--bench`); `cargo test` builds benches too.
pub fn invoked_as_benchmark() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Creates the namespaces `names`.
pub async fn create_namespaces(client: &kube::Client, names: &[&str]) {
    for name in names {
        let namespace: k8s_openapi::api::core::v1::Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))
                .expect("a namespace");
        kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
            .create(&kube::api::PostParams::default(), &namespace)
            .await
            .expect("namespace");
    }
}

/// The sum of every sample of the metric `name` (all its label sets) in a `/metrics` body.
pub fn metric_sum(body: &str, name: &str) -> f64 {
    metric_sum_where(body, name, "")
}

/// The sum of the samples of the metric `name` whose label set contains `labels`.
pub fn metric_sum_where(body: &str, name: &str, labels: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with(name) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The number in the environment variable `name`, else `default`.
pub fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One row of a results table.
pub fn print_row(
    server: &str,
    cache: &str,
    review: &str,
    concurrency: usize,
    result: &LoadResult,
    rss: f64,
    api_calls_per_request: Option<f64>,
) {
    let calls = api_calls_per_request
        .map(|c| format!("{c:.3}"))
        .unwrap_or_else(|| "n/a".into());
    println!(
        "| {server:<14} | {cache:<12} | {review:<7} | {concurrency:>4} | {:>9.0} | {:>8.2} | {:>8.2} | {:>6} | {rss:>8.1} | {calls:>9} |",
        result.per_second,
        ms(result.p50),
        ms(result.p99),
        result.errors
    );
}

/// The header of the results table.
pub fn print_header() {
    println!("| server         | cache        | review  | conc |     req/s | p50 (ms) | p99 (ms) | errors | RSS (MiB) | API calls/req |");
    println!("|----------------|--------------|---------|------|-----------|----------|----------|--------|-----------|---------------|");
}

/// The prefill and decode base Deployments (one replica, `image`) of the GroupReplication
/// benchmarks, each with a headless Service (the rounds would exhaust the test apiserver's
/// /24 of Service IPs otherwise).
pub fn base_objects(ns: &str, image: &str) -> Vec<serde_json::Value> {
    rsg::fixtures::prefill_decode_bases(ns, image)
}

/// Copy group `id` of `bases` as rsg builds it (group name `pd`), for a plain client to create.
pub fn copy_group(
    bases: &[serde_json::Value],
    ns: &str,
    rsg_name: &str,
    id: i32,
    renames: &std::collections::BTreeMap<String, String>,
) -> Vec<serde_json::Value> {
    use rsg::group_replication::baseline::Replicas;
    use rsg::group_replication::copy_objects::{
        build_service_copy, build_workload_copy, CopySpec, ServiceCopySpec,
    };
    bases
        .iter()
        .map(|base| {
            let name = base["metadata"]["name"].as_str().unwrap_or_default();
            if base["kind"] == "Service" {
                build_service_copy(
                    base,
                    &ServiceCopySpec {
                        rsg_name,
                        rsg_namespace: ns,
                        copy_name: &format!("{name}-pd-{id}"),
                        group_id: id,
                        keep_external_type: false,
                    },
                )
            } else {
                build_workload_copy(
                    base,
                    &CopySpec {
                        rsg_name,
                        rsg_namespace: ns,
                        target_name: name,
                        copy_name: &format!("pd-{name}-{id}"),
                        group_id: id,
                        replicas: &Replicas::Count(1),
                        service_renames: renames,
                        revision: "r1",
                        placement: None,
                    },
                )
            }
        })
        .collect()
}
