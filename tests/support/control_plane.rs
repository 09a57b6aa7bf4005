//! etcd + kube-apiserver (+ kube-controller-manager) on loopback.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::Duration;

use super::kubectl::kubectl;
use super::pki;
use super::processes::{free_port, log_tail, spawn_logged};
use super::wait_for;

const INSTALL_HINT: &str = "run hack/install-k8s.sh (the README's test command does it)";
/// Bearer token of the test administrator.
pub const ADMIN_TOKEN: &str = "rsg-e2e-admin-token";
/// Bearer token of rsg's own identity: the ServiceAccount of `manifests/install`, with the
/// groups the apiserver gives a ServiceAccount, so only the manifests' RBAC applies to it.
pub const RSG_TOKEN: &str = "rsg-e2e-serviceaccount-token";
/// The user name of that identity.
pub const RSG_USER: &str = "system:serviceaccount:rsg-system:rsg";
/// More tokens of that same identity, each with its own uid, so that the audit log tells
/// replicas apart (`user.uid`): (token, uid).
pub const RSG_REPLICA_TOKENS: [(&str, &str); 2] = [
    ("rsg-e2e-replica-a-token", "rsg-replica-a"),
    ("rsg-e2e-replica-b-token", "rsg-replica-b"),
];
/// Bearer token of a second rsg identity that a test binds to rsg's rules less one, to see
/// rsg meet a refusal of its own calls.
pub const RSG_LESSER_TOKEN: &str = "rsg-e2e-lesser-serviceaccount-token";
/// The user name of that identity.
pub const RSG_LESSER_USER: &str = "system:serviceaccount:rsg-system:rsg-lesser";
/// Bearer token of a tenant: a user with no rights but those a test binds to it.
pub const TENANT_TOKEN: &str = "rsg-e2e-tenant-token";
/// The user name of that tenant.
pub const TENANT_USER: &str = "tenant-a-user";
const RSG_GROUPS: &str = "system:serviceaccounts,system:serviceaccounts:rsg-system";

/// Audit policy: every request rsg's identity makes, at Metadata level, once answered.
const AUDIT_POLICY: &str = r#"apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  users: ["system:serviceaccount:rsg-system:rsg"]
- level: None
"#;

/// A kubeconfig for `token` against the apiserver on `port`, defaulting to `namespace`.
fn write_kubeconfig(path: &Path, dir: &Path, port: u16, user: &str, token: &str, namespace: &str) {
    std::fs::write(
        path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: https://127.0.0.1:{port}\n    certificate-authority: {ca}\nusers:\n- name: {user}\n  user:\n    token: {token}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: {user}\n    namespace: {namespace}\ncurrent-context: test\n",
            ca = dir.join("apiserver-certs/apiserver.crt").display()
        ),
    )
    .expect("writing a kubeconfig");
}

/// A version pinned in `hack/versions.sh` (the one place the test world's versions live).
pub fn pinned_version(key: &str) -> String {
    include_str!("../../hack/versions.sh")
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("hack/versions.sh names no {key}"))
        .trim()
        .to_string()
}

/// The directory `hack/install-k8s.sh` caches its builds in: `$RSG_CACHE`, else
/// `~/.cache/rsg`.
pub fn cache_dir() -> PathBuf {
    std::env::var("RSG_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/rsg")
        })
}

/// Where a component's binaries are: `$<env_var>` when set (hack/test.sh sets it), else the
/// install script's cache directory for the pinned version.
fn component_bin_dir(env_var: &str, component: &str, version_key: &str) -> PathBuf {
    std::env::var(env_var)
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            cache_dir()
                .join(format!("{component}-{}", pinned_version(version_key)))
                .join("bin")
        })
}

/// A file `hack/install-k8s.sh` installed for `component`: `relative` to `$<env_var>` when set
/// (hack/test.sh sets it), else to the cache directory of the version pinned as `version_key`.
/// Panics, saying how to install it, when it is missing.
pub fn component_file(
    env_var: &str,
    component: &str,
    version_key: &str,
    relative: &str,
) -> PathBuf {
    let dir = std::env::var(env_var)
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            cache_dir().join(format!("{component}-{}", pinned_version(version_key)))
        });
    let path = dir.join(relative);
    assert!(
        path.is_file(),
        "{component}'s {relative} not found at {}: {INSTALL_HINT}",
        path.display()
    );
    path
}

/// Where the Kubernetes binaries are: `$RSG_K8S_BIN` (hack/test.sh points it at the release
/// under test), else the cache of the newest pinned release.
pub fn k8s_bin_dir() -> PathBuf {
    component_bin_dir("RSG_K8S_BIN", "kubernetes", "K8S_NEWEST_VERSION")
}

fn binary_in(dir: PathBuf, name: &str) -> PathBuf {
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{name} not found at {}: {INSTALL_HINT}",
        path.display()
    );
    path
}

/// Binary `name` of `component`: in `$<env_var>` when set (hack/test.sh sets it), else in
/// the install script's cache directory for the version pinned as `version_key`. Panics,
/// saying how to install it, when it is missing.
pub fn component_binary(env_var: &str, component: &str, version_key: &str, name: &str) -> PathBuf {
    binary_in(component_bin_dir(env_var, component, version_key), name)
}

fn binary(name: &str) -> PathBuf {
    binary_in(k8s_bin_dir(), name)
}

fn etcd_binary() -> PathBuf {
    component_binary("RSG_ETCD_BIN", "etcd", "ETCD_VERSION", "etcd")
}

fn kwok_binary() -> PathBuf {
    component_binary("RSG_KWOK_BIN", "kwok", "KWOK_VERSION", "kwok")
}

/// The simulated nodes (3 zones of 2 racks), shared with `hack/run-local.sh`.
pub const NODES_MANIFEST: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/support/world/nodes.yaml"
);

/// How many nodes [`NODES_MANIFEST`] has.
pub fn node_count() -> usize {
    include_str!("world/nodes.yaml")
        .lines()
        .filter(|line| *line == "kind: Node")
        .count()
}

/// A running control plane.
pub struct ControlPlane {
    /// Admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// Kubeconfig of rsg's ServiceAccount identity (namespace `rsg-system`).
    pub rsg_kubeconfig: PathBuf,
    /// Audit log of every request made with that identity (JSON lines).
    pub audit_log: PathBuf,
    /// The apiserver's secure port.
    pub apiserver_port: u16,
    /// Scratch directory.
    pub dir: PathBuf,
    /// apiserver log file.
    pub apiserver_log: PathBuf,
    /// The port kwok serves on loopback, kubelet-style, when the cluster runs: each node's
    /// resource metrics are there (kwok-stages.yaml), where metrics-server reads them.
    pub kwok_port: u16,
    children: Mutex<Vec<Child>>,
    etcd: Mutex<Option<Child>>,
    etcd_args: Vec<String>,
    apiserver: Mutex<Option<Child>>,
    apiserver_args: Vec<String>,
}

fn spawn_etcd(args: &[String], dir: &Path) -> Child {
    let mut etcd = Command::new(etcd_binary());
    etcd.args(args);
    spawn_logged(etcd, &dir.join("etcd.log"))
}

fn kill(slot: &Mutex<Option<Child>>) {
    let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(mut child) = slot.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl ControlPlane {
    /// A kubeconfig of rsg's identity with `token` that reaches the apiserver through `port`
    /// (a proxy in front of it), written as `name` in the scratch directory.
    pub fn rsg_kubeconfig_via(&self, port: u16, token: &str, name: &str) -> PathBuf {
        let path = self.dir.join(name);
        write_kubeconfig(&path, &self.dir, port, "rsg", token, "rsg-system");
        path
    }

    /// A kubeconfig of the tenant user, defaulting to `namespace`.
    pub fn tenant_kubeconfig(&self, namespace: &str) -> PathBuf {
        let path = self.dir.join(format!("tenant-{namespace}.kubeconfig"));
        write_kubeconfig(
            &path,
            &self.dir,
            self.apiserver_port,
            TENANT_USER,
            TENANT_TOKEN,
            namespace,
        );
        path
    }

    /// Starts etcd and kube-apiserver and waits until the apiserver is ready; with
    /// `with_cluster`, also the controller manager, the scheduler and kwok's nodes.
    pub fn start(dir: &Path, with_cluster: bool) -> Self {
        let etcd_port = free_port();
        let peer_port = free_port();
        let etcd_args = vec![
            "--name=default".to_string(),
            format!("--data-dir={}", dir.join("etcd").display()),
            format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"),
            format!("--advertise-client-urls=http://127.0.0.1:{etcd_port}"),
            format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"),
            format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"),
            format!("--initial-cluster=default=http://127.0.0.1:{peer_port}"),
            "--log-level=warn".to_string(),
        ];
        let etcd = spawn_etcd(&etcd_args, dir);

        let sa_key = dir.join("sa.key");
        let status = Command::new("openssl")
            .args(["genrsa", "-out"])
            .arg(&sa_key)
            .arg("2048")
            .output()
            .unwrap_or_else(|e| panic!("running openssl ({e}): apt-get install openssl"));
        assert!(
            status.status.success(),
            "openssl genrsa failed: {}",
            String::from_utf8_lossy(&status.stderr)
        );
        let tokens = dir.join("tokens.csv");
        let mut token_lines = format!(
            "{ADMIN_TOKEN},admin,admin,system:masters\n{RSG_TOKEN},{RSG_USER},rsg-uid,\"{RSG_GROUPS}\"\n{TENANT_TOKEN},{TENANT_USER},tenant-uid\n{RSG_LESSER_TOKEN},{RSG_LESSER_USER},rsg-lesser-uid,\"{RSG_GROUPS}\"\n"
        );
        for (token, uid) in RSG_REPLICA_TOKENS {
            token_lines.push_str(&format!("{token},{RSG_USER},{uid},\"{RSG_GROUPS}\"\n"));
        }
        std::fs::write(&tokens, token_lines).expect("writing tokens");

        // The front proxy: the API server signs the requests it forwards to aggregated API
        // servers (KEDA's metrics API, metrics-server) with this client certificate, and
        // publishes the CA for them to check it (kube-system/extension-apiserver-authentication).
        let front_proxy_dir = dir.join("front-proxy");
        let front_proxy_ca = pki::certificate_authority(&front_proxy_dir, "front-proxy-ca");
        let front_proxy_client = pki::issue(
            &front_proxy_dir,
            &front_proxy_ca,
            "front-proxy-client",
            "front-proxy-client",
            &[],
            "clientAuth",
        );

        let audit_policy = dir.join("audit-policy.yaml");
        std::fs::write(&audit_policy, AUDIT_POLICY).expect("writing the audit policy");
        let audit_log = dir.join("audit.log");
        let apiserver_port = free_port();
        let apiserver_args: Vec<String> = vec![
            format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
            format!("--cert-dir={}", dir.join("apiserver-certs").display()),
            format!("--secure-port={apiserver_port}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            // The `kubernetes` Service's endpoints would be this loopback address, which
            // current releases refuse; nothing here needs that Service.
            "--endpoint-reconciler-type=none".into(),
            "--service-cluster-ip-range=10.0.0.0/24".into(),
            // Webhooks and aggregated APIs behind a Service are called at its endpoints, not
            // its cluster IP: Services here have none (no kubelet), so a webhook registered
            // by the chart fails at once instead of sending traffic off this machine.
            "--enable-aggregator-routing=true".into(),
            "--authorization-mode=RBAC".into(),
            format!("--token-auth-file={}", tokens.display()),
            "--service-account-issuer=https://kubernetes.default.svc".into(),
            format!("--service-account-key-file={}", sa_key.display()),
            format!("--service-account-signing-key-file={}", sa_key.display()),
            "--allow-privileged=true".into(),
            "--disable-admission-plugins=ServiceAccount".into(),
            "--enable-priority-and-fairness=false".into(),
            format!("--audit-policy-file={}", audit_policy.display()),
            format!("--audit-log-path={}", audit_log.display()),
            // One file however long the run (the default rotates at 100 MB).
            "--audit-log-maxsize=100000".into(),
            format!(
                "--requestheader-client-ca-file={}",
                front_proxy_ca.cert.display()
            ),
            "--requestheader-allowed-names=front-proxy-client".into(),
            "--requestheader-username-headers=X-Remote-User".into(),
            "--requestheader-group-headers=X-Remote-Group".into(),
            "--requestheader-extra-headers-prefix=X-Remote-Extra-".into(),
            format!(
                "--proxy-client-cert-file={}",
                front_proxy_client.cert.display()
            ),
            format!(
                "--proxy-client-key-file={}",
                front_proxy_client.key.display()
            ),
        ];
        let apiserver_log = dir.join("kube-apiserver.log");
        let mut command = Command::new(binary("kube-apiserver"));
        command.args(&apiserver_args);
        let apiserver = spawn_logged(command, &apiserver_log);

        let kubeconfig = dir.join("kubeconfig");
        write_kubeconfig(
            &kubeconfig,
            dir,
            apiserver_port,
            "admin",
            ADMIN_TOKEN,
            "default",
        );
        let rsg_kubeconfig = dir.join("rsg-kubeconfig");
        write_kubeconfig(
            &rsg_kubeconfig,
            dir,
            apiserver_port,
            "rsg",
            RSG_TOKEN,
            "rsg-system",
        );
        let plane = Self {
            kubeconfig,
            rsg_kubeconfig,
            audit_log,
            apiserver_port,
            dir: dir.to_path_buf(),
            apiserver_log,
            kwok_port: free_port(),
            children: Mutex::new(Vec::new()),
            etcd: Mutex::new(Some(etcd)),
            etcd_args,
            apiserver: Mutex::new(Some(apiserver)),
            apiserver_args,
        };
        plane.wait_ready();
        if with_cluster {
            plane.start_cluster();
        }
        plane
    }

    fn wait_ready(&self) {
        let log = self.apiserver_log.clone();
        let kubeconfig = self.kubeconfig.clone();
        wait_for(
            &format!("kube-apiserver to become ready (log {})", log.display()),
            Duration::from_secs(90),
            || {
                let exited = self
                    .apiserver
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_mut()
                    .and_then(|child| child.try_wait().ok().flatten());
                if let Some(status) = exited {
                    panic!(
                        "kube-apiserver exited ({status}) before it was ready:\n{}",
                        log_tail(&log, 20)
                    );
                }
                let out = kubectl(&kubeconfig, &["get", "--raw", "/readyz"]);
                (out.success && out.stdout.trim() == "ok").then_some(())
            },
        );
        // The default namespace and RBAC bootstrap roles are made right after readiness.
        wait_for("the default namespace", Duration::from_secs(30), || {
            kubectl(&kubeconfig, &["get", "namespace", "default"])
                .success
                .then_some(())
        });
    }

    fn push_child(&self, child: Child) {
        self.children
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(child);
    }

    /// The cluster around the API server: kube-controller-manager (workload controllers, HPA,
    /// garbage collection), the real kube-scheduler, kwok playing kubelet for the nodes of
    /// [`NODES_MANIFEST`], and those nodes, Ready before this returns.
    fn start_cluster(&self) {
        let mut manager = Command::new(binary("kube-controller-manager"));
        manager.args([
            format!("--kubeconfig={}", self.kubeconfig.display()),
            // nodelifecycle lifts the not-ready taint the API server puts on new nodes once
            // kwok reports them Ready, as on a real cluster.
            "--controllers=horizontalpodautoscaling,garbagecollector,deployment,replicaset,statefulset,nodelifecycle".into(),
            "--leader-elect=false".into(),
            format!("--secure-port={}", free_port()),
            "--bind-address=127.0.0.1".into(),
            "--horizontal-pod-autoscaler-sync-period=2s".into(),
            "--concurrent-gc-syncs=5".into(),
        ]);
        self.push_child(spawn_logged(
            manager,
            &self.dir.join("kube-controller-manager.log"),
        ));

        let mut scheduler = Command::new(binary("kube-scheduler"));
        scheduler.args([
            format!("--kubeconfig={}", self.kubeconfig.display()),
            "--leader-elect=false".into(),
            format!("--secure-port={}", free_port()),
            "--bind-address=127.0.0.1".into(),
        ]);
        self.push_child(spawn_logged(
            scheduler,
            &self.dir.join("kube-scheduler.log"),
        ));

        let stages = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/world/kwok-stages.yaml"
        );
        let mut kwok = Command::new(kwok_binary());
        kwok.args([
            format!("--kubeconfig={}", self.kubeconfig.display()),
            format!("--config={stages}"),
            "--manage-all-nodes=true".into(),
            // Pod and node addresses from loopback: nothing in the test world ever sends
            // traffic off this machine, even to an address a pod status names.
            "--cidr=127.64.0.0/16".into(),
            "--node-ip=127.0.0.1".into(),
            format!("--server-address=127.0.0.1:{}", self.kwok_port),
            "--node-lease-duration-seconds=40".into(),
        ]);
        self.push_child(spawn_logged(kwok, &self.dir.join("kwok.log")));

        let out = kubectl(&self.kubeconfig, &["apply", "-f", NODES_MANIFEST]);
        assert!(out.success, "creating the nodes: {}", out.stderr);
        wait_for(
            &format!(
                "kwok to make the {} nodes Ready and the controller manager to lift their not-ready taint (log {})",
                node_count(),
                self.dir.join("kwok.log").display()
            ),
            Duration::from_secs(60),
            || {
                let out = kubectl(
                    &self.kubeconfig,
                    &[
                        "get",
                        "nodes",
                        "-o",
                        "jsonpath={range .items[*]}{.status.conditions[?(@.type==\"Ready\")].status}{.spec.taints}{\"\\n\"}{end}",
                    ],
                );
                (out.success && out.stdout.lines().filter(|l| *l == "True").count() == node_count())
                    .then_some(())
            },
        );
    }

    /// Kills the apiserver and starts it again with the same data, then waits until ready.
    pub fn restart_apiserver(&self) {
        self.kill_apiserver();
        self.start_apiserver();
    }

    /// The apiserver's process id, while it runs.
    pub fn apiserver_pid(&self) -> Option<u32> {
        self.apiserver
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(Child::id)
    }

    /// Kills the apiserver (SIGKILL).
    pub fn kill_apiserver(&self) {
        kill(&self.apiserver);
    }

    /// Starts the apiserver again and waits until it is ready.
    pub fn start_apiserver(&self) {
        let mut command = Command::new(binary("kube-apiserver"));
        command.args(&self.apiserver_args);
        *self.apiserver.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(spawn_logged(command, &self.apiserver_log));
        self.wait_ready();
    }

    /// Kills etcd (SIGKILL).
    pub fn kill_etcd(&self) {
        kill(&self.etcd);
    }

    /// Starts etcd again on its data and waits until the apiserver is ready on it.
    pub fn start_etcd(&self) {
        *self.etcd.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(spawn_etcd(&self.etcd_args, &self.dir));
        self.wait_ready();
    }
}
