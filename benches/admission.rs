//! Admission throughput and latency of rsg, beside the Kubernetes project's Go admission
//! webhook (agnhost `webhook`, `/custom-resource`), loaded by the same client over TLS with
//! keep-alive. rsg is measured with an empty cache and with 10,000 RSGs cached.
//!
//! Run: `cargo bench --bench admission` (RSG_BENCH_SECONDS sets the seconds per run).

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{bench_duration, invoked_as_benchmark, memory_mib, print_header, print_row, run_load};
use futures::StreamExt;
use kube::api::PostParams;
use kube::Api;
use rsg::api::ResourceScalingGroup;
use support::control_plane::{k8s_bin_dir, ControlPlane};
use support::kubectl::{install_rsg_prerequisites, kubectl_apply};
use support::processes::{free_port, scratch_dir, spawn_logged};
use support::rsg_process::{generate_certs, RsgProcess};
use support::wait_for;

const CACHED_RSGS: usize = 10_000;
const CONCURRENCY: [usize; 2] = [16, 64];

fn fixture(name: &str) -> Arc<Vec<u8>> {
    Arc::new(
        std::fs::read(format!(
            "{}/tests/fixtures/admission/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture"),
    )
}

const BASE_WORKLOADS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: production}
---
apiVersion: v1
kind: Namespace
metadata: {name: scaling-system}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: llm-prefill, namespace: production}
spec:
  selector: {matchLabels: {app: prefill}}
  template:
    metadata: {labels: {app: prefill}}
    spec: {containers: [{name: main, image: registry.local/llm:1}]}
---
apiVersion: v1
kind: Service
metadata: {name: llm-prefill, namespace: production}
spec: {selector: {app: prefill}, ports: [{port: 80}]}
"#;

async fn fill_cache(client: kube::Client, count: usize) {
    let started = Instant::now();
    let creates = futures::stream::iter(0..count).map(|i| {
        let client = client.clone();
        async move {
            let namespace = "scaling-system";
            let rsg: ResourceScalingGroup = serde_json::from_value(serde_json::json!({
                "apiVersion": "autoscaling.openfuyao.com/v1alpha1", "kind": "ResourceScalingGroup",
                "metadata": {"name": format!("bench-{i}"), "namespace": namespace},
                "spec": {
                    "targetResources": [
                        {"name": "prefill", "resourceRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": format!("prefill-{i}"), "namespace": "production"}},
                        {"name": "decode", "resourceRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": format!("decode-{i}"), "namespace": "production"}}
                    ],
                    "scalingStrategy": {"type": "GroupReplication", "groupConfig": {"groupName": format!("g{i}"), "replicas": 0}}
                }
            }))
            .expect("bench RSG");
            Api::<ResourceScalingGroup>::namespaced(client, namespace)
                .create(&PostParams::default(), &rsg)
                .await
                .map(|_| ())
        }
    });
    let failures = creates
        .buffer_unordered(32)
        .filter(|r| futures::future::ready(r.is_err()))
        .count()
        .await;
    assert_eq!(failures, 0, "some RSGs could not be created");
    eprintln!(
        "created {count} RSGs in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

struct Target<'a> {
    name: &'a str,
    url_base: String,
    pid: u32,
    validate_path: &'a str,
}

async fn measure(target: &Target<'_>, cache: &str, ca: &[u8], duration: Duration) {
    for (review, body) in [
        ("valid", fixture("create-valid.json")),
        ("invalid", fixture("create-invalid.json")),
    ] {
        for concurrency in CONCURRENCY {
            let url = format!("{}{}", target.url_base, target.validate_path);
            let calls_before = api_calls(target, ca).await;
            let result = run_load(
                &url,
                body.clone(),
                ca,
                concurrency,
                Duration::from_secs(1),
                duration,
            )
            .await;
            let (rss, _) = memory_mib(target.pid);
            let calls = match (calls_before, api_calls(target, ca).await) {
                (Some(before), Some(after)) if result.sent > 0 => {
                    Some((after - before) / result.sent as f64)
                }
                _ => None,
            };
            print_row(target.name, cache, review, concurrency, &result, rss, calls);
        }
    }
}

fn main() {
    if !invoked_as_benchmark() {
        println!("admission benchmark: run with `cargo bench --bench admission`");
        return;
    }
    let duration = bench_duration(5);
    let dir = scratch_dir();
    let plane = ControlPlane::start(&dir, false);
    install_rsg_prerequisites(&plane.kubeconfig);
    let out = kubectl_apply(&plane.kubeconfig, BASE_WORKLOADS, &[]);
    assert!(out.success, "{}", out.stderr);

    // Admission only: the reconcile loops would otherwise work on the 10,000 filler RSGs
    // (whose targets do not exist) while the webhook is measured.
    let cert_dir = dir.join("rsg-bench-certs");
    let ca_bundle = generate_certs(&cert_dir);
    let rsg = RsgProcess::start_with_certs(
        &dir,
        &plane.kubeconfig,
        "rsg-bench",
        cert_dir,
        ca_bundle,
        &["--run-controllers=false"],
    );
    let ca = std::fs::read(rsg.cert_dir.join("ca.crt")).expect("CA");
    let pure = RsgProcess::start_with_certs(
        &dir,
        &plane.kubeconfig,
        "rsg-bench-no-live-checks",
        rsg.cert_dir.clone(),
        rsg.ca_bundle.clone(),
        &[
            "--admission-live-checks=false",
            "--admission-access-reviews=false",
            "--run-controllers=false",
        ],
    );
    // The same checks without the SubjectAccessReviews: the difference is what they add.
    let no_sar = RsgProcess::start_with_certs(
        &dir,
        &plane.kubeconfig,
        "rsg-bench-no-access-reviews",
        rsg.cert_dir.clone(),
        rsg.ca_bundle.clone(),
        &[
            "--admission-access-reviews=false",
            "--run-controllers=false",
        ],
    );
    // Another build of rsg to compare with in the same run (e.g. the commit before a change).
    let baseline = std::env::var_os("RSG_BENCH_BASELINE_BIN").map(|binary| {
        RsgProcess::start_binary_with_certs(
            std::path::Path::new(&binary),
            &dir,
            &plane.kubeconfig,
            "rsg-bench-baseline",
            rsg.cert_dir.clone(),
            rsg.ca_bundle.clone(),
            &["--run-controllers=false"],
        )
    });
    let agnhost_certs = dir.join("agnhost-certs");
    generate_certs(&agnhost_certs);
    let agnhost_ca = std::fs::read(agnhost_certs.join("ca.crt")).expect("CA");
    let agnhost_port = free_port();
    let mut command = Command::new(k8s_bin_dir().join("agnhost"));
    command.args(["webhook", "--port", &agnhost_port.to_string()]);
    command.arg(format!(
        "--tls-cert-file={}",
        agnhost_certs.join("tls.crt").display()
    ));
    command.arg(format!(
        "--tls-private-key-file={}",
        agnhost_certs.join("tls.key").display()
    ));
    let mut agnhost = spawn_logged(command, &dir.join("agnhost.log"));
    wait_for("agnhost to listen", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", agnhost_port))
            .ok()
            .map(|_| ())
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        println!("\nAdmission benchmark: {}s per run after 1s warm-up; TLS, HTTP/1.1 keep-alive, one connection per worker.", duration.as_secs());
        println!("'valid' is allowed with warnings (rsg checks the requester's permissions with SubjectAccessReviews, and reads the targets, their Services and pod references from the apiserver); 'invalid' is denied with 2 problems.");
        println!("'rsg, no SAR' skips the SubjectAccessReviews; 'rsg, no live' skips every API call (SARs included).\n");
        print_header();
        measure(&target("rsg", &rsg), "empty", &ca, duration).await;
        measure(&target("rsg, no SAR", &no_sar), "empty", &ca, duration).await;
        measure(&target("rsg, no live", &pure), "empty", &ca, duration).await;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let with = uncached_latencies(&format!("{}/validate", target("rsg", &rsg).url_base), &ca, 500, "sar").await;
        let without = uncached_latencies(&format!("{}/validate", target("rsg, no SAR", &no_sar).url_base), &ca, 500, "no-sar").await;
        println!(
            "\nSubjectAccessReviews on valid reviews no cache answers (500, one at a time, each from another user; 5 reviews each):\n  with SARs p50 {:.2} ms, p99 {:.2} ms; without p50 {:.2} ms, p99 {:.2} ms; added p50 {:.2} ms, p99 {:.2} ms\n",
            ms(with.0), ms(with.1), ms(without.0), ms(without.1),
            ms(with.0.saturating_sub(without.0)), ms(with.1.saturating_sub(without.1))
        );
        compare_with_baseline(&rsg, baseline.as_ref(), &ca).await;
        let go_target = Target { name: "agnhost (Go)", url_base: format!("https://127.0.0.1:{agnhost_port}"), pid: agnhost.id(), validate_path: "/custom-resource" };
        measure(&go_target, "n/a", &agnhost_ca, duration).await;

        let kubeconfig = kube::config::Kubeconfig::read_from(&plane.kubeconfig).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.expect("config");
        fill_cache(kube::Client::try_from(config).expect("client"), CACHED_RSGS).await;
    });
    // A restarted rsg reports ready only after its cache holds every RSG.
    for process in [&rsg, &no_sar, &pure] {
        process.stop(libc::SIGTERM);
        process.restart();
    }
    runtime.block_on(async {
        measure(&target("rsg", &rsg), "10,000 RSGs", &ca, duration).await;
        measure(
            &target("rsg, no SAR", &no_sar),
            "10,000 RSGs",
            &ca,
            duration,
        )
        .await;
        measure(&target("rsg, no live", &pure), "10,000 RSGs", &ca, duration).await;
        let (rss, peak) = memory_mib(rsg.pid().expect("pid"));
        println!(
            "\nrsg memory with {CACHED_RSGS} RSGs cached: RSS {rss:.1} MiB, peak {peak:.1} MiB"
        );
    });
    let _ = agnhost.kill();
    let _ = agnhost.wait();
}

/// Latency of valid reviews that no cache answers: `count` requests one at a time, each from
/// another user (so each needs its own SubjectAccessReviews); returns (p50, p99).
async fn uncached_latencies(url: &str, ca: &[u8], count: usize, run: &str) -> (Duration, Duration) {
    percentiles(uncached_samples(url, ca, count, run).await)
}

/// (p50, p99) of `samples`.
fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let count = samples.len();
    let pick = |q: f64| samples[((count as f64 * q) as usize).min(count.saturating_sub(1))];
    (pick(0.50), pick(0.99))
}

/// The latency of each of `count` valid reviews no cache answers, sent one at a time.
async fn uncached_samples(url: &str, ca: &[u8], count: usize, run: &str) -> Vec<Duration> {
    let template: serde_json::Value =
        serde_json::from_slice(&fixture("create-valid.json")).expect("fixture");
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca).expect("CA"))
        .http1_only()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut latencies = Vec::with_capacity(count);
    for i in 0..count {
        let mut review = template.clone();
        review["request"]["uid"] = format!("{run}-{i}").into();
        review["request"]["userInfo"]["username"] = format!("bench-user-{run}-{i}").into();
        let body = serde_json::to_vec(&review).expect("JSON");
        let sent = Instant::now();
        let response = client
            .post(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("a response");
        let answer: serde_json::Value = response.json().await.expect("an AdmissionReview");
        assert_eq!(answer["response"]["allowed"], true, "{answer}");
        latencies.push(sent.elapsed());
    }
    latencies
}

/// Latency of each webhook one request at a time, this build beside the baseline build
/// (`RSG_BENCH_BASELINE_BIN`), measured in the same run: 10 rounds of 100 requests to each in
/// turn, so that a drift of the API server's speed during the run weighs on both alike.
async fn compare_with_baseline(rsg: &RsgProcess, baseline: Option<&RsgProcess>, ca: &[u8]) {
    const ROUNDS: usize = 10;
    const PER_ROUND: usize = 100;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let Some(baseline) = baseline else {
        println!("(set RSG_BENCH_BASELINE_BIN to another rsg build to compare each webhook's latency with it in this run)\n");
        return;
    };
    println!("Each webhook one request at a time ({} valid reviews to each, each from another user, in {ROUNDS} alternating rounds), this build beside RSG_BENCH_BASELINE_BIN:", ROUNDS * PER_ROUND);
    for path in ["/mutate", "/validate"] {
        let url = |p: &RsgProcess| format!("https://127.0.0.1:{}{path}", p.port);
        let run = path.trim_start_matches('/');
        let (mut now, mut before) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            now.extend(
                uncached_samples(&url(rsg), ca, PER_ROUND, &format!("{run}-now-{round}")).await,
            );
            before.extend(
                uncached_samples(
                    &url(baseline),
                    ca,
                    PER_ROUND,
                    &format!("{run}-before-{round}"),
                )
                .await,
            );
        }
        let (now, before) = (percentiles(now), percentiles(before));
        println!(
            "  {path}: p50 {:.2} ms, p99 {:.2} ms; baseline p50 {:.2} ms, p99 {:.2} ms; ratio p50 {:.2}, p99 {:.2}",
            ms(now.0), ms(now.1), ms(before.0), ms(before.1),
            now.0.as_secs_f64() / before.0.as_secs_f64(),
            now.1.as_secs_f64() / before.1.as_secs_f64(),
        );
    }
    println!();
}

/// rsg's count of API calls made by live checks (`None` for a server without that metric).
async fn api_calls(target: &Target<'_>, ca: &[u8]) -> Option<f64> {
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca).ok()?)
        .build()
        .ok()?;
    let body = client
        .get(format!("{}/metrics", target.url_base))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    body.lines().find_map(|line| {
        line.strip_prefix("rsg_admission_api_calls_total ")?
            .trim()
            .parse()
            .ok()
    })
}

fn target<'a>(name: &'a str, process: &RsgProcess) -> Target<'a> {
    Target {
        name,
        url_base: format!("https://127.0.0.1:{}", process.port),
        pid: process.pid().expect("pid"),
        validate_path: "/validate",
    }
}
