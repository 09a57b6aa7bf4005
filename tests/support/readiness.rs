//! A readiness simulator: the test world has no kubelet, so pods never become ready by
//! themselves. This marks chosen pods Running and Ready through the pod status subresource,
//! as a kubelet would, so that ReplicaSets, Deployments and StatefulSets count them ready.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams};
use kube::Api;

/// Marks the pods of a namespace that match a label selector ready, `delay` after they are
/// created, until stopped (or dropped).
pub struct ReadinessSimulator {
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
    marked: Arc<std::sync::atomic::AtomicUsize>,
}

/// The status a kubelet reports for a running, ready pod.
fn ready_status() -> serde_json::Value {
    let now = Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .unwrap_or_else(|_| Timestamp::now())
        .to_string();
    serde_json::json!({"status": {
        "phase": "Running",
        "startTime": now,
        "conditions": [
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
            {"type": "Ready", "status": "True", "lastTransitionTime": now},
        ],
    }})
}

async fn client_for(kubeconfig: &std::path::Path) -> kube::Client {
    let config = kube::config::Kubeconfig::read_from(kubeconfig).expect("reading a kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(config, &Default::default())
        .await
        .expect("a client config");
    kube::Client::try_from(config).expect("a client")
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

impl ReadinessSimulator {
    /// Starts marking the pods of `namespace` matching `selector` (empty: all) ready once
    /// they are `delay` old, on the test environment's API server.
    pub fn start(namespace: &str, selector: &str, delay: Duration) -> Self {
        Self::start_with(&super::env().kubeconfig, namespace, selector, delay)
    }

    /// The same against the API server of `kubeconfig`.
    pub fn start_with(
        kubeconfig: &std::path::Path,
        namespace: &str,
        selector: &str,
        delay: Duration,
    ) -> Self {
        let kubeconfig = kubeconfig.to_path_buf();
        let stop = Arc::new(AtomicBool::new(false));
        let marked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (namespace, selector) = (namespace.to_string(), selector.to_string());
        let (running, counter) = (stop.clone(), marked.clone());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the readiness simulator");
            runtime.block_on(async move {
                let pods: Api<Pod> = Api::namespaced(client_for(&kubeconfig).await, &namespace);
                let params = ListParams::default().labels(&selector);
                while !running.load(Ordering::Relaxed) {
                    if let Ok(list) = pods.list(&params).await {
                        for pod in list.items.iter().filter(|p| !is_ready(p)) {
                            let old_enough =
                                pod.metadata.creation_timestamp.as_ref().is_none_or(|t| {
                                    std::time::Duration::try_from(
                                        Timestamp::now().duration_since(t.0),
                                    )
                                    .unwrap_or_default()
                                        >= delay
                                });
                            let name = pod.metadata.name.clone().unwrap_or_default();
                            if old_enough
                                && pod.metadata.deletion_timestamp.is_none()
                                && pods
                                    .patch_status(
                                        &name,
                                        &PatchParams::default(),
                                        &Patch::Merge(&ready_status()),
                                    )
                                    .await
                                    .is_ok()
                            {
                                counter.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
        });
        Self {
            stop,
            thread: Mutex::new(Some(thread)),
            marked,
        }
    }

    /// How many pods it has marked ready so far.
    pub fn marked(&self) -> usize {
        self.marked.load(Ordering::Relaxed)
    }

    /// Stops marking pods.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = thread.join();
        }
    }
}

impl Drop for ReadinessSimulator {
    fn drop(&mut self) {
        self.stop();
    }
}
