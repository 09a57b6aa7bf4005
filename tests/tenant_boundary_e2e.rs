//! The tenant boundary on the real apiserver: a user who may only manage RSGs and
//! Deployments in `tenant-a` cannot borrow rsg's cluster-wide rights, at `kubectl apply`
//! (SubjectAccessReviews, closed namespaces, caps) nor with the webhooks gone (the
//! controller's own boundary: nothing outside it is read, copied, labelled or scaled).

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::control_plane::TENANT_USER;
use support::kubectl::kubectl_create;
use support::{apply, env, get_json, kubectl, kubectl_apply, namespace, wait_for};

/// A Role for the tenant user in `ns`: RSG CRUD and `get/list/patch/create` on Deployments
/// (and their `scale`), nothing else.
fn tenant_role(ns: &str) -> String {
    format!(
        r#"apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: tenant, namespace: {ns}}}
rules:
- apiGroups: [autoscaling.openfuyao.com]
  resources: [resourcescalinggroups]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, patch, create]
- apiGroups: [apps]
  resources: [deployments/scale]
  verbs: [update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: tenant, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: tenant}}
subjects:
- {{apiGroup: rbac.authorization.k8s.io, kind: User, name: {TENANT_USER}}}
"#
    )
}

/// An RSG `name` in `ns` over `targets` (`(name, namespace, workload)`).
fn rsg(ns: &str, name: &str, targets: &[(&str, &str, &str)], strategy: &str) -> String {
    let targets: String = targets
        .iter()
        .map(|(target, target_ns, workload)| {
            format!("  - {{name: {target}, resourceRef: {{apiVersion: apps/v1, kind: Deployment, name: {workload}, namespace: {target_ns}}}}}\n")
        })
        .collect();
    format!(
        "apiVersion: autoscaling.openfuyao.com/v1alpha1\nkind: ResourceScalingGroup\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  targetResources:\n{targets}  scalingStrategy:\n{strategy}"
    )
}

const GROUPS_2: &str = "    type: GroupReplication\n    groupConfig: {replicas: 2}\n";
const GROUPS_0: &str = "    type: GroupReplication\n    groupConfig: {replicas: 0}\n";

fn inplace(leader: &str, follower: &str, ratio: i32) -> String {
    format!("    type: InplaceScaling\n    leaderFollowerConfig:\n      leader: {{resourceName: {leader}, replicas: 3}}\n      follower: [{{resourceName: {follower}, followRatio: {ratio}}}]\n")
}

use support::object_version as version;

/// rsg's resident memory now and at its peak, in MiB.
fn rsg_memory_mib() -> (f64, f64) {
    let pid = env().rsg.pid().expect("rsg runs");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|kib| kib / 1024.0)
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// `kubectl apply` as the tenant; returns (success, stderr).
fn as_tenant(kubeconfig: &std::path::Path, yaml: &str) -> (bool, String) {
    let out = kubectl_apply(kubeconfig, yaml, &[]);
    (out.success, out.stderr)
}

fn refused_as_tenant(kubeconfig: &std::path::Path, yaml: &str, expected: &[String]) {
    let (success, stderr) = as_tenant(kubeconfig, yaml);
    assert!(
        !success,
        "expected a refusal of\n{yaml}\nkubectl said: {stderr}"
    );
    for text in expected {
        assert!(
            stderr.contains(text.as_str()),
            "missing {text:?} in {stderr}"
        );
    }
}

/// The oversized spec once measured at 30 s and 9.3 GiB: 5,000 targets, 20,000 followers.
fn oversized(ns: &str) -> String {
    let targets: Vec<Value> = (0..5_000)
        .map(|i| rsg::fixtures::deployment_target(&format!("t{i}"), &format!("w{i}"), None))
        .collect();
    let followers: Vec<Value> = (0..20_000)
        .map(|i| json!({"resourceName": format!("unknown-{i}"), "followRatio": 1}))
        .collect();
    let strategy = json!({"type": "InplaceScaling",
        "leaderFollowerConfig": {"leader": {"resourceName": "t0"}, "follower": followers}});
    rsg::fixtures::rsg_value(ns, "oversized", targets, strategy).to_string()
}

/// The largest lists the schema accepts: 32 targets, 31 followers.
fn largest(ns: &str) -> String {
    let targets: Vec<(String, String, String)> = (0..32)
        .map(|i| (format!("t{i}"), ns.to_string(), format!("w{i}")))
        .collect();
    let followers: Vec<String> = (1..32)
        .map(|i| format!("{{resourceName: t{i}, followRatio: 1}}"))
        .collect();
    let targets: Vec<(&str, &str, &str)> = targets
        .iter()
        .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
        .collect();
    rsg(
        ns,
        "largest",
        &targets,
        &format!(
            "    type: InplaceScaling\n    leaderFollowerConfig:\n      leader: {{resourceName: t0}}\n      follower: [{}]\n",
            followers.join(", ")
        ),
    )
}

/// Held by the test that deletes the webhooks and by the one that needs them: they do not
/// overlap, since an RSG stored without the webhooks has no admission record.
static WEBHOOKS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn webhooks_held() -> std::sync::MutexGuard<'static, ()> {
    WEBHOOKS.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn a_tenant_cannot_borrow_rsgs_rights_with_or_without_the_webhooks() {
    let _webhooks = webhooks_held();
    let env = env();
    let admin = &env.kubeconfig;
    let tenant_a = namespace("tenant-a");
    let tenant_b = namespace("tenant-b");
    let system = "kube-system";
    apply(&tenant_role(&tenant_a));
    apply(&support::fixtures::deployment(&tenant_a, "model", 1));
    apply(&support::fixtures::deployment(&tenant_a, "gw", 1));
    apply(&format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: gateway, namespace: {tenant_a}}}\nspec:\n  type: LoadBalancer\n  selector: {{app: gw}}\n  ports: [{{port: 80}}]\n"
    ));
    apply(&support::fixtures::deployment(&tenant_b, "victim", 1));
    apply(&support::fixtures::deployment(&tenant_b, "shared", 1));
    apply(&support::fixtures::deployment(system, "cluster-dns", 2));
    let tenant = env.control_plane.tenant_kubeconfig(&tenant_a);
    let user = TENANT_USER;

    // What the tenant may do: an RSG over its own Deployment is accepted.
    let (success, stderr) = as_tenant(
        &tenant,
        &rsg(&tenant_a, "own", &[("model", &tenant_a, "model")], GROUPS_2),
    );
    assert!(success, "{stderr}");

    // A target in kube-system: a closed namespace, and a permission the tenant lacks.
    refused_as_tenant(
        &tenant,
        &rsg(&tenant_a, "system", &[("dns", system, "cluster-dns")], GROUPS_2),
        &[
            r#"spec.targetResources[0].resourceRef.namespace: Forbidden: rsg never acts on workloads in "kube-system", a system namespace"#.into(),
            format!(r#"spec.targetResources[0].resourceRef: Forbidden: user "{user}" cannot get deployments.apps "cluster-dns" in namespace "kube-system""#),
        ],
    );
    // A target in another team's namespace, claimed there by that team's own RSG: the missing
    // permissions are named, and nothing about tenant-b (its RSG, its grants) is told.
    apply(&support::fixtures::deployment(&tenant_b, "claimed", 1));
    apply(&rsg(
        &tenant_b,
        "b-team-claim",
        &[("claimed", &tenant_b, "claimed")],
        GROUPS_0,
    ));
    let (success, stderr) = as_tenant(
        &tenant,
        &rsg(
            &tenant_a,
            "other-team-claimed",
            &[("claimed", &tenant_b, "claimed")],
            GROUPS_0,
        ),
    );
    assert!(!success, "{stderr}");
    assert!(stderr.contains("cannot get deployments.apps"), "{stderr}");
    assert!(
        !stderr.contains("b-team-claim") && !stderr.contains("Grant"),
        "told a requester without rights about tenant-b: {stderr}"
    );
    refused_as_tenant(
        &tenant,
        &rsg(
            &tenant_a,
            "other-team",
            &[("victim", &tenant_b, "victim")],
            GROUPS_0,
        ),
        &[
            format!(
                r#"user "{user}" cannot get deployments.apps "victim" in namespace "{tenant_b}""#
            ),
            format!(
                r#"user "{user}" cannot patch deployments.apps "victim" in namespace "{tenant_b}""#
            ),
        ],
    );
    // An InplaceScaling follower in kube-system.
    refused_as_tenant(
        &tenant,
        &rsg(
            &tenant_a,
            "follower",
            &[
                ("model", &tenant_a, "model"),
                ("dns", system, "cluster-dns"),
            ],
            &inplace("model", "dns", 1000),
        ),
        &[
            r#"rsg never acts on workloads in "kube-system""#.into(),
            format!(
                r#"user "{user}" cannot update deployments.apps/scale "cluster-dns" in namespace "kube-system""#
            ),
        ],
    );
    // A base fronted by a LoadBalancer Service.
    refused_as_tenant(
        &tenant,
        &rsg(&tenant_a, "balancers", &[("gw", &tenant_a, "gw")], GROUPS_2),
        &[format!(
            "Service {tenant_a}/gateway fronts target \"gw\" and is of type LoadBalancer; copies of LoadBalancer and NodePort Services need the operator's opt-in"
        )],
    );
    // The largest lists the schema accepts pass; past them the API server refuses, and the
    // oversized spec leaves rsg's memory bounded (its mutating webhook sees it first).
    let (success, stderr) = as_tenant(&tenant, &largest(&tenant_a));
    assert!(success, "{stderr}");
    let (rss_before, _) = rsg_memory_mib();
    let out = kubectl_create(&tenant, &oversized(&tenant_a));
    assert!(!out.success);
    // 1.28 says "spec.targetResources in body should have at most 32 items", current
    // releases "spec.targetResources: Too many: 5000: must have at most 32 items".
    assert!(
        out.stderr
            .lines()
            .any(|line| line.contains("spec.targetResources") && line.contains("at most 32 items")),
        "{}",
        out.stderr
    );
    let (rss_after, peak) = rsg_memory_mib();
    println!(
        "rsg RSS around the oversized RSG (5,000 targets, 20,000 followers): {rss_before:.1} MiB before, {rss_after:.1} MiB after, peak {peak:.1} MiB"
    );
    assert!(peak < 512.0, "rsg's peak RSS reached {peak:.1} MiB");

    // Now without the webhooks (as with failurePolicy Ignore while rsg is down), an admin
    // stores the same specs: the controller keeps the boundary.
    for configuration in
        support::rsg_process::shipped_webhook_configurations(env.rsg.port, &env.rsg.ca_bundle)
    {
        let kind = configuration["kind"].as_str().expect("kind").to_lowercase();
        let name = configuration["metadata"]["name"].as_str().expect("name");
        let out = kubectl(admin, &["delete", &kind, name]);
        assert!(out.success, "{}", out.stderr);
    }
    let untouched = [
        ("deployment", system, "cluster-dns"),
        ("deployment", tenant_b.as_str(), "victim"),
    ];
    let before: Vec<_> = untouched
        .iter()
        .map(|(k, ns, n)| version(k, ns, n))
        .collect();
    wait_for("the webhooks to be gone", Duration::from_secs(30), || {
        let probe = rsg(
            &tenant_a,
            "probe",
            &[("dns", system, "cluster-dns")],
            GROUPS_0,
        );
        let out = kubectl_apply(admin, &probe, &["--dry-run=server"]);
        out.success.then_some(())
    });
    for (name, targets, strategy) in [
        (
            "system",
            vec![("dns", system, "cluster-dns")],
            GROUPS_2.to_string(),
        ),
        (
            "other-team",
            vec![("victim", tenant_b.as_str(), "victim")],
            GROUPS_0.to_string(),
        ),
        (
            "follower",
            vec![
                ("model", tenant_a.as_str(), "model"),
                ("dns", system, "cluster-dns"),
            ],
            inplace("model", "dns", 1000),
        ),
    ] {
        apply(&rsg(&tenant_a, name, &targets, &strategy));
        let condition = support::wait_rsg_reason(&tenant_a, name, "TargetNotAllowed");
        let message = condition["message"].as_str().unwrap_or_default();
        assert!(message.contains("Forbidden"), "{name}: {message}");
    }
    // Nothing outside the boundary was read into copies, labelled or scaled.
    let after: Vec<_> = untouched
        .iter()
        .map(|(k, ns, n)| version(k, ns, n))
        .collect();
    assert_eq!(after, before, "{untouched:?} were changed");
    // The webhooks come back: what follows is admitted (rsg acts only on RSGs whose
    // admission it can verify; see admission_record_e2e).
    support::rsg_process::register_webhooks(admin, &env.rsg);
    // The claim of a refused RSG never blocks the workload's real owner.
    apply(&rsg(
        &tenant_b,
        "owner",
        &[("victim", &tenant_b, "victim")],
        "    type: GroupReplication\n    groupConfig: {replicas: 1}\n",
    ));
    support::wait_rsg_converged(&tenant_b, "owner", 1);
    let dns = get_json("deployment", system, "cluster-dns").expect("cluster-dns");
    assert_eq!(dns["spec"]["replicas"], 2);
    assert!(
        dns["metadata"]["labels"].get("rsg.io/managed").is_none(),
        "{dns}"
    );
    for kind in ["deployments", "controllerrevisions"] {
        let copies = support::names(
            kind,
            &tenant_a,
            "rsg.io/name in (system,other-team,follower)",
        );
        assert!(
            copies.is_empty(),
            "{kind} made for refused RSGs: {copies:?}"
        );
    }
    let victim_labels =
        get_json("deployment", &tenant_b, "victim").expect("victim")["metadata"]["labels"].clone();
    assert_eq!(
        victim_labels["rsg.io/name"], "owner",
        "only its owner adopts it: {victim_labels}"
    );

    // A Service made a LoadBalancer after admission (admission no longer sees it): its copies
    // are ClusterIP.
    apply(&support::fixtures::deployment(&tenant_a, "gw-later", 1));
    let later = |kind: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: later, namespace: {tenant_a}}}\nspec:\n  type: {kind}\n  selector: {{app: gw-later}}\n  ports: [{{port: 80}}]\n"
        )
    };
    apply(&later("ClusterIP"));
    apply(&rsg(
        &tenant_a,
        "balancers",
        &[("gw", &tenant_a, "gw-later")],
        GROUPS_0,
    ));
    support::wait_rsg_converged(&tenant_a, "balancers", 0);
    apply(&later("LoadBalancer"));
    support::scale_rsg(&tenant_a, "balancers", 2);
    support::wait_rsg_converged(&tenant_a, "balancers", 2);
    let copy = get_json("service", &tenant_a, "later-balancers-1").expect("the Service copy");
    assert_eq!(copy["spec"]["type"], "ClusterIP", "{copy}");

    // The documented path across namespaces: the target namespace grants it.
    apply(&rsg(
        &tenant_a,
        "granted",
        &[("shared", &tenant_b, "shared")],
        GROUPS_2,
    ));
    support::wait_rsg_reason(&tenant_a, "granted", "TargetNotAllowed");
    let grant = |from: &str| {
        apply(&format!(
            "apiVersion: autoscaling.openfuyao.com/v1alpha1\nkind: ResourceScalingGroupGrant\nmetadata: {{name: from-a, namespace: {tenant_b}}}\nspec:\n  from: [{from}]\n  to: [{{group: apps, kind: Deployment, name: shared}}]\n"
        ))
    };
    // A grant that names the RSG admits it; once it names only another RSG of the same
    // namespace, rsg stops acting for this one.
    grant(&format!("{{namespace: {tenant_a}, names: [granted]}}"));
    support::wait_rsg_converged(&tenant_a, "granted", 2);
    grant(&format!("{{namespace: {tenant_a}, names: [someone-else]}}"));
    let condition = support::wait_rsg_reason(&tenant_a, "granted", "TargetNotAllowed");
    assert!(
        condition["message"]
            .as_str()
            .is_some_and(|m| m.contains(&format!(
                r#"admits RSG "granted" of namespace "{tenant_a}" to Deployment shared"#
            ))),
        "{condition}"
    );
    // Without names it admits every RSG of the namespace.
    grant(&format!("{{namespace: {tenant_a}}}"));
    support::wait_rsg_converged(&tenant_a, "granted", 2);

    // The grant taken away after convergence: rsg stops acting on the base, says why, and a
    // scale to 0 leaves the base as it is.
    support::run_kubectl(&["delete", "rsggrant", "from-a", "-n", &tenant_b]);
    support::wait_rsg_reason(&tenant_a, "granted", "TargetNotAllowed");
    let base_before = version("deployment", &tenant_b, "shared");
    support::scale_rsg(&tenant_a, "granted", 0);
    wait_for(
        "the scale to 0 to be refused for the revoked grant",
        Duration::from_secs(60),
        || {
            let rsg = get_json("rsg", &tenant_a, "granted")?;
            rsg["status"]["conditions"]
                .as_array()?
                .iter()
                .any(|c| {
                    c["type"] == "Ready"
                        && c["reason"] == "TargetNotAllowed"
                        && c["observedGeneration"] == rsg["metadata"]["generation"]
                })
                .then_some(())
        },
    );
    assert_eq!(
        version("deployment", &tenant_b, "shared"),
        base_before,
        "the base was changed after its grant was removed"
    );
    assert_eq!(
        get_json("deployment", &tenant_b, "shared").expect("the base")["spec"]["replicas"],
        1
    );
}

/// A review of creating `rsg` in `ns`, asked by the tenant user, as the API server sends it.
fn tenant_review(ns: &str, rsg: &Value) -> Vec<u8> {
    rsg::invariants::review_body(
        rsg,
        ns,
        json!({"username": TENANT_USER, "uid": "tenant-uid", "groups": ["system:authenticated"]}),
    )
}

/// `/validate`'s answer from `rsg`: (allowed, message).
fn validate(rsg: &support::rsg_process::RsgProcess, body: &[u8]) -> (bool, String) {
    let (status, text) = rsg.post("/validate", body).expect("POST /validate");
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).expect("an AdmissionReview");
    (
        answer["response"]["allowed"] == true,
        answer["response"]["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

#[test]
fn an_access_review_that_fails_or_does_not_answer_refuses_the_rsg() {
    use support::control_plane::{RSG_LESSER_TOKEN, RSG_LESSER_USER, RSG_REPLICA_TOKENS};
    use support::proxy::PausableProxy;
    use support::rsg_process::RsgProcess;
    let env = env();
    let ns = namespace("review-failures");
    apply(&tenant_role(&ns));
    apply(&support::fixtures::deployment(&ns, "model", 1));
    let object: Value =
        serde_norway::from_str(&rsg(&ns, "own", &[("model", &ns, "model")], GROUPS_2))
            .expect("RSG YAML");
    let body = tenant_review(&ns, &object);

    // A replica whose access reviews get no answer: its way to the API server is cut.
    let proxy = PausableProxy::start(env.control_plane.apiserver_port);
    let cut_off = RsgProcess::start_with_certs(
        &env.dir,
        &env.control_plane.rsg_kubeconfig_via(
            proxy.port,
            RSG_REPLICA_TOKENS[0].0,
            "cut-kubeconfig",
        ),
        "rsg-reviews-cut",
        env.rsg.cert_dir.clone(),
        env.rsg.ca_bundle.clone(),
        &[],
    );
    proxy.cut();
    let (allowed, message) = validate(&cut_off, &body);
    assert!(!allowed, "allowed without an answer from the API server");
    // Each review and all of them together are bounded by the same timeout: either says so.
    assert!(
        message.contains(&format!("could not verify that user \"{TENANT_USER}\" may"))
            || message
                .contains("could not verify the requester's permissions on the targets within"),
        "{message}"
    );
    // Once it is answered again the same request passes: the refusal was the missing answer's.
    proxy.heal();
    let (allowed, message) = wait_for(
        "the healed replica to answer",
        Duration::from_secs(30),
        || Some(validate(&cut_off, &body)).filter(|(allowed, _)| *allowed),
    );
    assert!(allowed, "{message}");
    cut_off.stop(libc::SIGTERM);

    // A replica whose access reviews are refused (403): its identity lacks that one right.
    let rbac: String = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/manifests/install/10-rbac.yaml"
    ))
    .expect("the RBAC manifest");
    let mut lesser = Vec::new();
    for document in serde_norway::Deserializer::from_str(&rbac) {
        let mut object = <Value as serde::Deserialize>::deserialize(document).expect("YAML");
        match object["kind"].as_str() {
            Some("ClusterRole") => {
                object["metadata"]["name"] = json!("rsg-lesser");
                let rules = object["rules"].as_array_mut().expect("rules");
                rules.retain(|rule| rule["resources"] != json!(["localsubjectaccessreviews"]));
            }
            Some("ClusterRoleBinding") | Some("RoleBinding") => {
                object["metadata"]["name"] = json!(format!(
                    "{}-lesser",
                    object["metadata"]["name"].as_str().unwrap_or_default()
                ));
                if object["kind"] == "ClusterRoleBinding" {
                    object["roleRef"]["name"] = json!("rsg-lesser");
                }
                object["subjects"] = json!([{"kind": "User", "name": RSG_LESSER_USER}]);
            }
            _ => continue,
        }
        lesser.push(object);
    }
    apply(&json!({"apiVersion": "v1", "kind": "List", "items": lesser}).to_string());
    let refused = RsgProcess::start_with_certs(
        &env.dir,
        &env.control_plane.rsg_kubeconfig_via(
            env.control_plane.apiserver_port,
            RSG_LESSER_TOKEN,
            "lesser-kubeconfig",
        ),
        "rsg-reviews-refused",
        env.rsg.cert_dir.clone(),
        env.rsg.ca_bundle.clone(),
        &[],
    );
    let (allowed, message) = validate(&refused, &body);
    refused.stop(libc::SIGTERM);
    assert!(!allowed, "allowed while the access reviews were refused");
    assert!(
        message.contains(&format!("could not verify that user \"{TENANT_USER}\" may"))
            && message.contains("403"),
        "{message}"
    );
    // The shared replica, whose reviews are answered, allows the same request.
    let (allowed, message) = validate(&env.rsg, &body);
    assert!(allowed, "{message}");
}

/// The pod templates of every copy of the RSG `name` in `ns`.
fn copy_templates(ns: &str, name: &str) -> Vec<Value> {
    let out = support::run_kubectl(&[
        "get",
        "deployments",
        "-n",
        ns,
        "-l",
        &format!("rsg.io/name={name},rsg.io/group-id!=0"),
        "-o",
        "json",
    ]);
    let list: Value = serde_json::from_str(&out).expect("JSON");
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| d["spec"]["template"].clone())
        .collect()
}

#[test]
fn a_base_editor_cannot_make_copies_run_as_rsg_or_reach_the_node() {
    let _webhooks = webhooks_held();
    // The manual's layout: the RSG in rsg's own namespace, the base in a granted namespace.
    let own = "rsg-system";
    let production = namespace("production");
    apply(&support::fixtures::deployment(&production, "engine", 1));
    apply(&format!(
        "apiVersion: autoscaling.openfuyao.com/v1alpha1\nkind: ResourceScalingGroupGrant\nmetadata: {{name: from-rsg-system, namespace: {production}}}\nspec:\n  from: [{{namespace: {own}}}]\n  to: [{{group: apps, kind: Deployment, name: engine}}]\n"
    ));
    let name = format!("copies-{production}");
    apply(&rsg(
        own,
        &name,
        &[("engine", &production, "engine")],
        "    type: GroupReplication\n    groupConfig: {replicas: 2, updateStrategy: {type: RollingUpdate}}\n",
    ));
    support::wait_rsg_converged(own, &name, 2);
    let patch_base = |patch: Value| {
        support::run_kubectl(&[
            "patch",
            "deployment",
            "engine",
            "-n",
            &production,
            "--type=strategic",
            "-p",
            &patch.to_string(),
        ]);
    };
    let refused = |what: &str| -> String {
        let condition = wait_for(
            &format!("the RSG to refuse a base that {what}"),
            Duration::from_secs(60),
            || {
                let rsg = get_json("rsg", own, &name)?;
                rsg["status"]["conditions"]
                    .as_array()?
                    .iter()
                    .find(|c| {
                        c["type"] == "Ready"
                            && c["reason"] == "CopyIdentityRefused"
                            && c["observedGeneration"] == rsg["metadata"]["generation"]
                            && c["message"].as_str().is_some_and(|m| m.contains(what))
                    })
                    .cloned()
            },
        );
        condition["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    // An editor of production switches the base to rsg's ServiceAccount ...
    patch_base(json!({"spec": {"template": {"spec": {"serviceAccountName": "rsg"}}}}));
    refused("rsg's own ServiceAccount");
    // (The API server mirrors it into the deprecated serviceAccount field: clear both.)
    patch_base(
        json!({"spec": {"template": {"spec": {"serviceAccountName": null, "serviceAccount": null}}}}),
    );
    // ... mounts rsg's webhook certificate ...
    patch_base(
        json!({"spec": {"template": {"spec": {"volumes": [{"name": "tls", "secret": {"secretName": "rsg-webhook-tls", "optional": true}}]}}}}),
    );
    refused("rsg's own Secrets");
    patch_base(json!({"spec": {"template": {"spec": {"volumes": null}}}}));
    // ... adds a hostPath volume, and a privileged container.
    patch_base(
        json!({"spec": {"template": {"spec": {"volumes": [{"name": "root", "hostPath": {"path": "/"}}]}}}}),
    );
    refused("a hostPath volume");
    patch_base(json!({"spec": {"template": {"spec": {"volumes": null}}}}));
    patch_base(
        json!({"spec": {"template": {"spec": {"containers": [{"name": "engine", "securityContext": {"privileged": true}}]}}}}),
    );
    let message = refused("privileged container");
    assert!(message.contains("no access to the node"), "{message}");
    patch_base(
        json!({"spec": {"template": {"spec": {"containers": [{"name": "engine", "securityContext": null}]}}}}),
    );
    // No copy ever got any of them.
    for template in copy_templates(own, &name) {
        let spec = &template["spec"];
        assert!(spec.get("serviceAccountName").is_none(), "{spec}");
        assert!(spec.get("volumes").is_none(), "{spec}");
        assert!(
            spec["containers"][0].get("securityContext").is_none(),
            "{spec}"
        );
    }
    // An image bump rolls as usual: a new group at the new image is made.
    support::run_kubectl(&[
        "set",
        "image",
        "deployment/engine",
        "engine=registry.local/engine:2",
        "-n",
        &production,
    ]);
    wait_for("a copy at the new image", Duration::from_secs(60), || {
        copy_templates(own, &name)
            .iter()
            .any(|t| t["spec"]["containers"][0]["image"] == "registry.local/engine:2")
            .then_some(())
    });

    // Another ServiceAccount and Secret of the RSG's namespace (not rsg's own) are held until
    // the RSG approves them; then the copies roll onto them.
    patch_base(json!({"spec": {"template": {"spec": {
        "serviceAccountName": "engine",
        "volumes": [{"name": "token", "secret": {"secretName": "hf-token", "optional": true}}],
    }}}}));
    let message = refused("which this RSG has not approved");
    assert!(
        message.contains(r#"use ServiceAccount "engine", Secrets ["hf-token"], which"#),
        "{message}"
    );
    assert!(
        copy_templates(own, &name)
            .iter()
            .all(|t| t["spec"].get("serviceAccountName").is_none()),
        "a copy runs as an identity nobody approved"
    );
    support::run_kubectl(&[
        "patch",
        "rsg",
        &name,
        "-n",
        own,
        "--type=json",
        "-p",
        r#"[{"op": "add", "path": "/spec/targetResources/0/copyIdentity", "value": {"serviceAccountName": "engine", "secrets": ["hf-token"]}}]"#,
    ]);
    wait_for(
        "the copies to roll onto the approved identity",
        Duration::from_secs(60),
        || {
            copy_templates(own, &name)
                .iter()
                .any(|t| t["spec"]["serviceAccountName"] == "engine")
                .then_some(())
        },
    );

    // Approving an identity takes the right to use it: a tenant who may not read a Secret
    // cannot approve it.
    let team = namespace("approvals");
    apply(&tenant_role(&team));
    apply(&support::fixtures::deployment(&team, "model", 1));
    let mut approving: Value = serde_norway::from_str(&rsg(
        &team,
        "approving",
        &[("model", &team, "model")],
        GROUPS_2,
    ))
    .expect("RSG YAML");
    approving["spec"]["targetResources"][0]["copyIdentity"] = json!({"secrets": ["db-password"]});
    refused_as_tenant(
        &env().control_plane.tenant_kubeconfig(&team),
        &approving.to_string(),
        &[format!(
            r#"spec.targetResources[0].copyIdentity: Forbidden: user "{TENANT_USER}" cannot get secrets "db-password" in namespace "{team}""#
        )],
    );
}
