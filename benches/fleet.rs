//! A fleet of RSGs on one rsg: N RSGs, each over one base Deployment with a headless Service,
//! at 3 groups (2 copies of each), on an API server with no node, so groups stay not ready
//! (as pods loading a model do for minutes). Side by side in one run:
//!
//! * `kubectl apply` of the N RSGs through both webhooks while another holder owns rsg's
//!   Lease (rsg serves the webhooks and reconciles nothing: the admission cost alone), of N
//!   plain Deployments, and of the N RSGs with no webhook registered and rsg not running (the
//!   API server's own cost for the custom resource), with rsg's own time per admission;
//! * the controller from a standing start: the Lease released with the N RSGs stored, rsg's
//!   time until every copy and Service copy exists (seen through a label-selected watch),
//!   beside two plain clients, 8 requests at a time, before rsg starts: one writing the same
//!   2N Deployments and 2N Services, one making every write the manual asks of rsg for N
//!   RSGs (`common/same_writes.rs`), deleted again before rsg starts so that its caches
//!   hold the fleet alone; the API server's CPU in each; what rsg wrote meanwhile
//!   (audit log), how many reconciles it ran and how long they took;
//! * rsg's RSS once converged;
//! * a restart of the converged fleet: time to ready, then, until every RSG was reconciled
//!   once, rsg's API requests (from the API server's audit log of its identity) per
//!   reconcile, and its writes.
//!
//! Run: `cargo bench --bench fleet` (RSG_FLEET_RSGS sets N, default 1000).

mod common;
#[path = "common/same_writes.rs"]
mod same_writes;
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{cpu_seconds, invoked_as_benchmark, memory_mib};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::ListParams;
use kube::{Api, Client};
use serde_json::{json, Value};
use support::control_plane::{ControlPlane, RSG_USER};
use support::kubectl::{install_rsg_prerequisites, kubectl, kubectl_apply};
use support::processes::scratch_dir;
use support::rsg_process::{register_webhooks, RsgProcess};

const FLEET: &str = "fleet";
const PLAIN: &str = "fleet-plain";
const PLAIN_COPIES: &str = "fleet-plain-copies";
const BARE: &str = "fleet-bare";
const PLAIN_WRITES: &str = "fleet-plain-writes";
const GROUPS: i32 = 3;
const PLAIN_CONCURRENCY: usize = 8;

fn base(ns: &str, i: usize) -> (Value, Value) {
    let name = format!("base-{i}");
    let deployment = rsg::fixtures::deployment(ns, &name, 1);
    let mut service = rsg::fixtures::service(ns, &name);
    service["spec"]["clusterIP"] = json!("None");
    (deployment, service)
}

fn rsg_of(ns: &str, i: usize) -> Value {
    json!({
        "apiVersion": "autoscaling.openfuyao.com/v1alpha1", "kind": "ResourceScalingGroup",
        "metadata": {"name": format!("rsg-{i}"), "namespace": ns},
        "spec": {"targetResources": [{"name": "engine", "resourceRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": format!("base-{i}")}}],
                 "scalingStrategy": {"type": "GroupReplication", "groupConfig": {"groupName": "g", "replicas": GROUPS}}}
    })
}

/// Creates `objects` (Deployments and Services), `concurrency` at a time, with the plain
/// client both references use.
async fn create_all(client: &Client, objects: Vec<Value>, concurrency: usize) {
    let creates = objects.into_iter().map(same_writes::create).collect();
    same_writes::make(client, creates, concurrency).await;
}

/// Copies (group ids 1 and 2) of Deployments and Services in `ns`.
async fn copies(client: &Client, ns: &str) -> (usize, usize) {
    let params = ListParams::default().labels("rsg.io/group-id in (1,2)");
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns)
        .list_metadata(&params)
        .await;
    let services = Api::<Service>::namespaced(client.clone(), ns)
        .list_metadata(&params)
        .await;
    (
        deployments.map_or(0, |l| l.items.len()),
        services.map_or(0, |l| l.items.len()),
    )
}

/// `kubectl apply` of `n` RSGs with no webhook registered and rsg not running: what the API
/// server itself spends on the custom resources. They stay, for the statuses and Events of
/// [`same_writes_write`], until [`delete_bare_rsgs`].
fn bare_rsg_apply(kubeconfig: &std::path::Path, n: usize) -> Duration {
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": BARE}});
    assert!(
        kubectl_apply(
            kubeconfig,
            &serde_norway::to_string(&namespace).expect("YAML"),
            &[]
        )
        .success
    );
    let rsgs: Vec<Value> = (0..n).map(|i| rsg_of(BARE, i)).collect();
    kubectl_apply_timed(kubeconfig, &rsgs)
}

/// Deletes the RSGs of [`bare_rsg_apply`] before rsg starts.
fn delete_bare_rsgs(kubeconfig: &std::path::Path) {
    let deleted = kubectl(
        kubeconfig,
        &["delete", "rsg", "--all", "-n", BARE, "--wait=false"],
    );
    assert!(deleted.success, "{}", deleted.stderr);
}

/// Deletes what the two plain clients wrote, before rsg starts: rsg caches every Service of
/// the cluster (trimmed, for the selector index), and the references' 40,000 Services at
/// 10,000 RSGs are not the fleet's.
async fn delete_references(client: &Client) {
    use k8s_openapi::api::apps::v1::ControllerRevision;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::DeleteParams;
    let (all, params) = (ListParams::default(), DeleteParams::background());
    for ns in [PLAIN_COPIES, PLAIN_WRITES] {
        let services = Api::<Service>::namespaced(client.clone(), ns);
        let names: Vec<String> = services
            .list_metadata(&all)
            .await
            .expect("listing the references' Services")
            .items
            .into_iter()
            .filter_map(|s| s.metadata.name)
            .collect();
        // Services have no delete-collection in every version: one by one, 32 at a time.
        let failed = futures::stream::iter(names)
            .map(|name| {
                let services = services.clone();
                let params = params.clone();
                async move { services.delete(&name, &params).await.is_err() }
            })
            .buffer_unordered(32)
            .filter(|failed| futures::future::ready(*failed))
            .count()
            .await;
        assert_eq!(failed, 0, "some Services in {ns} could not be deleted");
        let deployments = Api::<Deployment>::namespaced(client.clone(), ns);
        let config_maps = Api::<ConfigMap>::namespaced(client.clone(), ns);
        let revisions = Api::<ControllerRevision>::namespaced(client.clone(), ns);
        let deleted = futures::try_join!(
            deployments.delete_collection(&params, &all),
            config_maps.delete_collection(&params, &all),
            revisions.delete_collection(&params, &all),
        );
        assert!(
            deleted.is_ok(),
            "deleting the references in {ns}: {deleted:?}"
        );
    }
}

fn kubectl_apply_timed(kubeconfig: &std::path::Path, objects: &[Value]) -> Duration {
    let yaml = objects
        .iter()
        .map(|o| serde_norway::to_string(o).expect("YAML"))
        .collect::<Vec<_>>()
        .join("---\n");
    let started = Instant::now();
    let out = kubectl_apply(kubeconfig, &yaml, &[]);
    assert!(out.success, "kubectl apply: {}", out.stderr);
    started.elapsed()
}

/// rsg's audited requests so far, by verb and resource.
#[derive(Default, Debug, Clone)]
struct Audited {
    /// Namespaced reads (get, list) other than its Lease: what reconciles ask.
    reads: BTreeMap<String, usize>,
    /// Creates, updates, patches and deletes of anything but its Lease and Events.
    writes: BTreeMap<String, usize>,
    /// Cluster-wide lists and watches: its caches starting.
    cache: usize,
    /// Events it published.
    events: usize,
}

/// The counts of `after` not in `before`: the total and a breakdown.
fn since(after: &BTreeMap<String, usize>, before: &BTreeMap<String, usize>) -> (usize, String) {
    let counts: Vec<(String, usize)> = after
        .iter()
        .map(|(what, n)| (what.clone(), n - before.get(what).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    let total = counts.iter().map(|(_, n)| n).sum();
    let text: Vec<String> = counts
        .iter()
        .map(|(what, n)| format!("{n} {what}"))
        .collect();
    (total, text.join(", "))
}

fn audited(log: &std::path::Path) -> Audited {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut counts = Audited::default();
    for event in text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
    {
        if event["user"]["username"] != RSG_USER {
            continue;
        }
        let object = &event["objectRef"];
        let resource = object["resource"].as_str().unwrap_or_default();
        if resource == "leases" {
            continue;
        }
        let verb = event["verb"].as_str().unwrap_or_default();
        let what = match object["subresource"].as_str() {
            Some(sub) => format!("{verb} {resource}/{sub}"),
            None => format!("{verb} {resource}"),
        };
        let namespaced = object["namespace"].is_string();
        match verb {
            "get" | "list" if namespaced => *counts.reads.entry(what).or_default() += 1,
            "list" | "watch" => counts.cache += 1,
            "create" if resource == "events" => counts.events += 1,
            "create" | "update" | "patch" | "delete" if resource != "events" => {
                *counts.writes.entry(what).or_default() += 1
            }
            _ => {}
        }
    }
    counts
}

/// The mean of the histogram `name` over its samples whose labels contain `labels`, in ms.
fn mean_ms(body: &str, name: &str, labels: &str) -> f64 {
    let total = |suffix: &str| common::metric_sum_where(body, &format!("{name}_{suffix}"), labels);
    1000.0 * total("sum") / total("count")
}

/// Waits until rsg says it leads (`rsg_leader` 1); returns `started.elapsed()` then.
fn wait_leading(rsg: &RsgProcess, started: Instant) -> Duration {
    loop {
        let body = rsg.get("/metrics").map(|(_, b)| b).unwrap_or_default();
        if common::metric_sum(&body, "rsg_leader") >= 1.0 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "rsg did not take the released Lease within a minute"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn reconciles(rsg: &RsgProcess) -> f64 {
    let body = rsg.get("/metrics").map(|(_, b)| b).unwrap_or_default();
    common::metric_sum(&body, "rsg_reconciles_total")
}

/// Makes `fleet-bench` the holder of rsg's Lease for an hour: rsg serves the webhooks as a
/// standby and reconciles nothing until [`release_lease`].
fn hold_lease(kubeconfig: &std::path::Path) {
    // A MicroTime: RFC 3339 with microseconds.
    let now = k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
        .to_string();
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "rsg-leader", "namespace": "rsg-system"},
        "spec": {"holderIdentity": "fleet-bench", "leaseDurationSeconds": 3600,
                 "acquireTime": now, "renewTime": now}
    });
    let out = kubectl_apply(
        kubeconfig,
        &serde_norway::to_string(&lease).expect("YAML"),
        &[],
    );
    assert!(out.success, "holding the Lease: {}", out.stderr);
}

/// Deletes the Lease [`hold_lease`] made; rsg takes it at its next try (every 2 s).
fn release_lease(kubeconfig: &std::path::Path) {
    let out = kubectl(
        kubeconfig,
        &["delete", "lease", "rsg-leader", "-n", "rsg-system"],
    );
    assert!(out.success, "releasing the Lease: {}", out.stderr);
}

/// Counts the copies and Service copies of the fleet as they appear, from one label-selected
/// metadata watch of each kind: the wait itself costs the API server next to nothing (a
/// LIST of every copy every few hundred milliseconds would load it while it is measured).
struct CopyCounter {
    done: tokio::sync::watch::Receiver<(usize, usize)>,
}

impl CopyCounter {
    /// Starts watching the copies in `ns`; the counts are ready once both initial lists are in.
    fn start(runtime: &tokio::runtime::Runtime, client: &Client, ns: &str) -> Self {
        use kube::core::PartialObjectMeta;
        use kube::runtime::{watcher, WatchStreamExt};
        let config = watcher::Config::default().labels("rsg.io/group-id in (1,2)");
        let (tx, done) = tokio::sync::watch::channel((0, 0));
        let deployments = watcher(
            Api::<PartialObjectMeta<Deployment>>::namespaced(client.clone(), ns),
            config.clone(),
        )
        .default_backoff()
        .applied_objects()
        .map(|o| o.map(|o| (0usize, o.metadata.name.unwrap_or_default())));
        let services = watcher(
            Api::<PartialObjectMeta<Service>>::namespaced(client.clone(), ns),
            config,
        )
        .default_backoff()
        .applied_objects()
        .map(|o| o.map(|o| (1usize, o.metadata.name.unwrap_or_default())));
        runtime.spawn(async move {
            let mut seen = [
                std::collections::HashSet::new(),
                std::collections::HashSet::new(),
            ];
            let mut both = std::pin::pin!(futures::stream::select(deployments, services));
            while let Some(Ok((kind, name))) = both.next().await {
                seen[kind].insert(name);
                tx.send_replace((seen[0].len(), seen[1].len()));
            }
        });
        Self { done }
    }

    /// Waits until `want` copies and `want` Service copies exist; returns `started.elapsed()`
    /// then.
    fn wait(
        &mut self,
        runtime: &tokio::runtime::Runtime,
        want: usize,
        started: Instant,
    ) -> Duration {
        let done = &mut self.done;
        let reached = runtime.block_on(async {
            let converged = done.wait_for(|(d, s)| *d >= want && *s >= want);
            matches!(
                tokio::time::timeout(Duration::from_secs(3600), converged).await,
                Ok(Ok(_))
            )
        });
        let (deployments, services) = *self.done.borrow();
        assert!(
            reached,
            "not converged after an hour: {deployments} of {want} copies, {services} Service copies"
        );
        started.elapsed()
    }
}

/// `object` with rsg's labels on its metadata renamed `ref.io/` (the same size): a plain
/// client's object, which rsg's label-selected caches do not hold (its selector and pod
/// template keep theirs).
fn relabelled(mut object: Value) -> Value {
    if let Some(labels) = object["metadata"]["labels"].as_object_mut() {
        *labels = std::mem::take(labels)
            .into_iter()
            .map(|(key, value)| match key.strip_prefix("rsg.io/") {
                Some(rest) => (format!("ref.io/{rest}"), value),
                None => (key, value),
            })
            .collect();
    }
    object
}

/// The copies and Service copies rsg would write for RSG `i` over a base in `ns`, their
/// metadata [`relabelled`].
fn plain_copies_of(ns: &str, i: usize) -> Vec<Value> {
    let (d, s) = base(ns, i);
    let renames = BTreeMap::new();
    (1..GROUPS)
        .flat_map(|id| {
            common::copy_group(
                &[d.clone(), s.clone()],
                ns,
                &format!("rsg-{i}"),
                id,
                &renames,
            )
        })
        .map(relabelled)
        .collect()
}

/// The plain client's reference: the copies and Service copies rsg would write for `n` RSGs,
/// written `PLAIN_CONCURRENCY` at a time; returns how long it took.
fn plain_copies_write(runtime: &tokio::runtime::Runtime, client: &Client, n: usize) -> Duration {
    let plain_copies: Vec<Value> = (0..n)
        .flat_map(|i| plain_copies_of(PLAIN_COPIES, i))
        .collect();
    let started = Instant::now();
    runtime.block_on(create_all(client, plain_copies, PLAIN_CONCURRENCY));
    started.elapsed()
}

/// The second reference: a plain client making every write the manual asks of rsg for `n`
/// RSGs (see [`same_writes`]), `PLAIN_CONCURRENCY` at a time; returns how long it took and
/// how many writes it made.
fn same_writes_write(
    runtime: &tokio::runtime::Runtime,
    client: &Client,
    n: usize,
) -> (Duration, usize) {
    let writes: Vec<same_writes::Write> = (0..n)
        .flat_map(|i| {
            let (base, _) = base(PLAIN_WRITES, i);
            let rsg = format!("rsg-{i}");
            same_writes::writes_of(
                PLAIN_WRITES,
                &rsg,
                &base,
                plain_copies_of(PLAIN_WRITES, i),
                (BARE, &rsg),
            )
        })
        .collect();
    let count = writes.len();
    let started = Instant::now();
    runtime.block_on(same_writes::make(client, writes, PLAIN_CONCURRENCY));
    (started.elapsed(), count)
}

fn main() {
    if !invoked_as_benchmark() {
        println!("fleet benchmark: run with `cargo bench --bench fleet`");
        return;
    }
    let n: usize = common::env_number("RSG_FLEET_RSGS", 1000);
    let dir = scratch_dir();
    let plane = ControlPlane::start(&dir, false);
    install_rsg_prerequisites(&plane.kubeconfig);
    let bare_apply = bare_rsg_apply(&plane.kubeconfig, n);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = runtime.block_on(support::client_for(&plane.kubeconfig));
    runtime.block_on(async {
        common::create_namespaces(&client, &[FLEET, PLAIN, PLAIN_COPIES, PLAIN_WRITES]).await;
        let bases: Vec<Value> = (0..n)
            .flat_map(|i| {
                let (d, s) = base(FLEET, i);
                [d, s, base(PLAIN_WRITES, i).0]
            })
            .collect();
        create_all(&client, bases, 32).await;
    });
    let apiserver_cpu = || plane.apiserver_pid().map_or(f64::NAN, cpu_seconds);

    // The references, before rsg starts.
    let cpu_before = apiserver_cpu();
    let plain_write = plain_copies_write(&runtime, &client, n);
    let plain_write_cpu = apiserver_cpu() - cpu_before;
    let cpu_before = apiserver_cpu();
    let (same_write, same_writes) = same_writes_write(&runtime, &client, n);
    let same_write_cpu = apiserver_cpu() - cpu_before;
    delete_bare_rsgs(&plane.kubeconfig);
    runtime.block_on(delete_references(&client));

    hold_lease(&plane.kubeconfig);
    let rsg = RsgProcess::start(&dir, &plane.rsg_kubeconfig, "rsg-fleet");
    register_webhooks(&plane.kubeconfig, &rsg);
    let plain: Vec<Value> = (0..n).map(|i| base(PLAIN, i).0).collect();
    let plain_apply = kubectl_apply_timed(&plane.kubeconfig, &plain);
    let rsgs: Vec<Value> = (0..n).map(|i| rsg_of(FLEET, i)).collect();
    let rsg_apply = kubectl_apply_timed(&plane.kubeconfig, &rsgs);
    let admission_metrics = rsg.get("/metrics").map(|(_, b)| b).unwrap_or_default();
    let (mutate_ms, validate_ms) = (
        mean_ms(
            &admission_metrics,
            "rsg_admission_duration_seconds",
            "webhook=\"mutate\"",
        ),
        mean_ms(
            &admission_metrics,
            "rsg_admission_duration_seconds",
            "webhook=\"validate\"",
        ),
    );
    let want = 2 * n;
    assert_eq!(
        runtime.block_on(copies(&client, FLEET)),
        (0, 0),
        "rsg made copies while another holder had its Lease"
    );

    // The controller from a standing start: every RSG stored, the Lease released.
    let before_converge = audited(&plane.audit_log);
    let cpu = || {
        (
            rsg.pid().map_or(f64::NAN, cpu_seconds),
            plane.apiserver_pid().map_or(f64::NAN, cpu_seconds),
        )
    };
    let cpu_before = cpu();
    let mut counter = CopyCounter::start(&runtime, &client, FLEET);
    let released = Instant::now();
    release_lease(&plane.kubeconfig);
    let leading = wait_leading(&rsg, released);
    let converged = counter.wait(&runtime, want, released);
    let cpu_after = cpu();
    let (rss, peak) = rsg.pid().map_or((f64::NAN, f64::NAN), memory_mib);
    // Settled: what is held once the burst is over.
    std::thread::sleep(Duration::from_secs(35));
    let (settled_rss, _) = rsg.pid().map_or((f64::NAN, f64::NAN), memory_mib);
    let after_converge = audited(&plane.audit_log);
    let converge_events = after_converge.events - before_converge.events;
    // Read before the restart, which starts the counters afresh.
    let converge_metrics = rsg.get("/metrics").map(|(_, b)| b).unwrap_or_default();
    let dropped = common::metric_sum(&converge_metrics, "rsg_events_dropped_total");
    let converge_reconciles = common::metric_sum(&converge_metrics, "rsg_reconciles_total");
    let reconcile_ms = mean_ms(&converge_metrics, "rsg_reconcile_duration_seconds", "");
    let deferred = common::metric_sum(&converge_metrics, "rsg_reconciles_deferred_total");
    let (converge_writes, converge_write_kinds) =
        since(&after_converge.writes, &before_converge.writes);

    // Restart the converged fleet: ready, then every RSG reconciled once.
    let before = after_converge;
    rsg.stop(libc::SIGTERM);
    let restarted = Instant::now();
    rsg.restart();
    let ready = restarted.elapsed();
    let reconciled = loop {
        let count = reconciles(&rsg);
        if count >= n as f64 || restarted.elapsed() > Duration::from_secs(600) {
            break count;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    std::thread::sleep(Duration::from_secs(3));
    // The same cache content without the history of converging (the apply's reads, the
    // reconciles that created everything): what is held against what is left over.
    let (restarted_rss, _) = rsg.pid().map_or((f64::NAN, f64::NAN), memory_mib);
    let after = audited(&plane.audit_log);
    let (reads, read_kinds) = since(&after.reads, &before.reads);
    let (writes, write_kinds) = since(&after.writes, &before.writes);

    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!("\nfleet: {n} RSGs x {GROUPS} groups, one Deployment + one headless Service per base, no node (groups stay not ready)");
    println!("| measure | rsg | reference | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| converge from a standing start: the Lease released with {n} RSGs stored, until every copy and Service copy exists ({want} + {want}) | {:.1} s (the Lease taken after {:.1} s) | plain client writing the same objects, {PLAIN_CONCURRENCY} at a time: {:.1} s | {:.2} |",
        converged.as_secs_f64(),
        leading.as_secs_f64(),
        plain_write.as_secs_f64(),
        ratio(converged, plain_write)
    );
    println!(
        "| the same, beside a plain client making every write the manual asks of rsg ({} per RSG: snapshot, baseline, base labels, 2 copies, 2 Service copies, status, 3 Events), {PLAIN_CONCURRENCY} at a time | {:.1} s | {:.1} s | {:.2} |",
        same_writes as f64 / n as f64,
        converged.as_secs_f64(),
        same_write.as_secs_f64(),
        ratio(converged, same_write)
    );
    println!(
        "| API server CPU: rsg converging; the plain client writing the copies; the plain client making rsg's writes | {:.1} s | {plain_write_cpu:.1} s; {same_write_cpu:.1} s | — |",
        cpu_after.1 - cpu_before.1
    );
    println!(
        "| reconciles converging (mean duration; put off for their namespace's share) | {converge_reconciles:.0} ({reconcile_ms:.0} ms; {deferred:.0}) | — | — |"
    );
    println!(
        "| what rsg wrote converging ({converge_write_kinds}) | {converge_writes} ({:.1} per RSG) | the plain client: {} ({:.1} per RSG) | {:.2} |",
        converge_writes as f64 / n as f64,
        2 * want,
        (2 * want) as f64 / n as f64,
        converge_writes as f64 / (2 * want) as f64
    );
    println!(
        "| Events rsg published converging (dropped: `rsg_events_dropped_total`) | {converge_events} ({dropped:.0} dropped) | — | — |"
    );
    println!(
        "| CPU while converging: rsg, the API server | {:.1} s, {:.1} s (of {:.1} s on 2 cores) | — | — |",
        cpu_after.0 - cpu_before.0,
        cpu_after.1 - cpu_before.1,
        2.0 * converged.as_secs_f64()
    );
    println!(
        "| kubectl apply of {n} RSGs through both webhooks (rsg serving them, reconciling nothing) | {:.1} s | {n} plain Deployments: {:.1} s | {:.2} |",
        rsg_apply.as_secs_f64(),
        plain_apply.as_secs_f64(),
        ratio(rsg_apply, plain_apply)
    );
    println!(
        "| rsg's own time per admission request: mutate, validate (mean) | {mutate_ms:.2} ms, {validate_ms:.2} ms | — | — |"
    );
    println!(
        "| kubectl apply of {n} RSGs with no webhook registered (the API server's own cost) | {:.1} s | {n} plain Deployments: {:.1} s | {:.2} |",
        bare_apply.as_secs_f64(),
        plain_apply.as_secs_f64(),
        ratio(bare_apply, plain_apply)
    );
    println!("| rsg RSS converged (peak); 35 s later | {rss:.1} MiB ({peak:.1}); {settled_rss:.1} MiB | — | — |");
    println!(
        "| rsg RSS after the restart, every RSG reconciled once (the same objects cached) | {restarted_rss:.1} MiB | — | — |"
    );
    println!(
        "| restart of the converged fleet: ready | {:.2} s | — | — |",
        ready.as_secs_f64()
    );
    println!(
        "| after the restart, {reconciled:.0} reconciles: namespaced reads per reconcile ({read_kinds}) | {:.2} | 0 | — |",
        reads as f64 / reconciled.max(1.0)
    );
    println!("| after the restart: writes ({write_kinds}) | {writes} | 0 | — |");
    println!(
        "| after the restart: cluster-wide lists and watches (the caches) | {} | — | — |",
        after.cache - before.cache
    );
}
