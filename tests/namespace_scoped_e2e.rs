//! A namespace-scoped installation (chart `watchNamespaces`, spec §7), installed with the
//! real Helm library into a control plane of its own and run as its Deployment says: rsg's
//! ServiceAccount has no cluster-wide write verb, rsg watches and acts only in the listed
//! namespaces, and refuses targets elsewhere.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::chart_rsg::{get, ChartRsg, NAMESPACE, RELEASE};
use support::control_plane::ControlPlane;
use support::processes::scratch_dir;
use support::{kubectl, kubectl_apply, wait_for};

const LISTED: [&str; 2] = ["team-a", "team-b"];
const UNLISTED: &str = "team-c";
const READ_VERBS: [&str; 3] = ["get", "list", "watch"];

fn json_of(kubeconfig: &std::path::Path, args: &[&str]) -> Value {
    let out = kubectl(kubeconfig, args);
    assert!(out.success, "kubectl {args:?}: {}", out.stderr);
    serde_json::from_str(&out.stdout).expect("JSON")
}

/// The documents of a file of `manifests/namespaced`, placeholders filled in.
fn namespaced_manifest(file: &str) -> Vec<Value> {
    let path = format!("{}/manifests/namespaced/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path)
        .expect("a manifest")
        .replace("WATCHED_NAMESPACES", &LISTED.join(", "))
        .replace("WATCHED_NAMESPACE", LISTED[0]);
    serde_norway::Deserializer::from_str(&text)
        .map(|document| <Value as serde::Deserialize>::deserialize(document).expect("YAML"))
        .collect()
}

fn of_kind<'a>(documents: &'a [Value], kind: &str) -> &'a Value {
    documents
        .iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

/// The Ready condition of RSG `ns/name`, once it has one.
fn ready(kubeconfig: &std::path::Path, ns: &str, name: &str) -> Option<Value> {
    let rsg = json_of(kubeconfig, &["get", "rsg", name, "-n", ns, "-o", "json"]);
    rsg["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .cloned()
}

#[test]
fn a_namespace_scoped_install_has_no_cluster_write_rights_and_acts_only_in_its_namespaces() {
    let dir = scratch_dir();
    let plane = ControlPlane::start(&dir, false);
    let admin = &plane.kubeconfig;
    for ns in [NAMESPACE, LISTED[0], LISTED[1], UNLISTED] {
        let out = kubectl(admin, &["create", "namespace", ns]);
        assert!(out.success, "{}", out.stderr);
    }
    let values = json!({"namespace": {"name": NAMESPACE}, "watchNamespaces": LISTED});
    support::helm::helm(
        admin,
        &[
            "install",
            RELEASE,
            support::helm::CHART,
            NAMESPACE,
            &values.to_string(),
        ],
    );

    // Cluster-wide, rsg's ServiceAccount may only read; its other rights are Roles in the
    // listed namespaces (and its own, for its Lease and key), none in the others.
    let account = format!("system:serviceaccount:{NAMESPACE}:{RELEASE}");
    let bindings = json_of(admin, &["get", "clusterrolebindings", "-o", "json"]);
    let mut cluster_roles = Vec::new();
    for binding in bindings["items"].as_array().into_iter().flatten() {
        let bound = binding["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| {
                s["kind"] == "ServiceAccount" && s["name"] == RELEASE && s["namespace"] == NAMESPACE
            });
        if bound {
            let role = binding["roleRef"]["name"]
                .as_str()
                .expect("a role")
                .to_string();
            cluster_roles.push(role);
        }
    }
    assert_eq!(cluster_roles, [RELEASE], "rsg's cluster-wide bindings");
    let role = get(admin, "clusterrole", "", RELEASE);
    for rule in role["rules"].as_array().expect("rules") {
        for verb in rule["verbs"].as_array().expect("verbs") {
            assert!(
                READ_VERBS.contains(&verb.as_str().unwrap_or_default()),
                "a cluster-wide write verb: {rule}"
            );
        }
    }
    let can = |verb: &str, resource: &str, ns: &str| {
        kubectl(
            admin,
            &["auth", "can-i", verb, resource, "-n", ns, "--as", &account],
        )
        .stdout
        .trim()
            == "yes"
    };
    for ns in LISTED {
        assert!(
            can("patch", "deployments.apps", ns),
            "patch deployments in {ns}"
        );
        assert!(can(
            "create",
            "localsubjectaccessreviews.authorization.k8s.io",
            ns
        ));
    }
    assert!(!can("patch", "deployments.apps", UNLISTED));
    assert!(!can(
        "list",
        "resourcescalinggroups.autoscaling.openfuyao.com",
        UNLISTED
    ));
    // The webhooks apply only to RSGs of the listed namespaces.
    let mutating = get(
        admin,
        "mutatingwebhookconfiguration",
        "",
        &format!("{RELEASE}-resourcescalinggroup-mutating"),
    );
    assert_eq!(
        mutating["webhooks"][0]["namespaceSelector"]["matchExpressions"][0]["values"],
        json!(LISTED),
        "{mutating}"
    );

    // The plain manifests' variant grants exactly what the chart does.
    let rbac = namespaced_manifest("10-rbac.yaml");
    assert_eq!(of_kind(&rbac, "ClusterRole")["rules"], role["rules"]);
    let per_namespace = namespaced_manifest("11-namespace-rbac.yaml");
    let chart_role = get(admin, "role", LISTED[0], RELEASE);
    assert_eq!(
        of_kind(&per_namespace, "Role")["rules"],
        chart_role["rules"]
    );
    let webhooks = namespaced_manifest("30-webhooks.yaml");
    assert_eq!(
        of_kind(&webhooks, "MutatingWebhookConfiguration")["webhooks"][0]["namespaceSelector"],
        mutating["webhooks"][0]["namespaceSelector"]
    );

    // Run as the chart says: ready means every watch listed with these rights alone.
    let rsg = ChartRsg::start(&plane, &dir);
    let log = std::fs::read_to_string(&rsg.log).unwrap_or_default();
    assert!(
        log.contains("acting only in the listed namespaces"),
        "{}",
        support::processes::log_tail(&rsg.log, 20)
    );

    let rsg_over = |ns: &str, name: &str, target_ns: &str| {
        rsg::fixtures::group_rsg_value(
            ns,
            name,
            "prefill",
            ("apps/v1", "Deployment", "prefill"),
            json!({"groupName": "g", "replicas": 2}),
        )
        .as_object()
        .cloned()
        .map(|mut o| {
            o["spec"]["targetResources"][0]["resourceRef"]["namespace"] = json!(target_ns);
            Value::Object(o)
        })
        .expect("an object")
    };
    let apply = |ns: &str, object: Value| {
        let object = rsg.admitted(&plane, ns, object);
        let out = kubectl_apply(admin, &object.to_string(), &[]);
        assert!(out.success, "{}", out.stderr);
    };
    for ns in [LISTED[0], UNLISTED] {
        apply(ns, rsg::fixtures::deployment(ns, "prefill", 1));
        apply(ns, rsg::fixtures::service(ns, "prefill"));
    }
    // In a listed namespace it works with the Roles alone.
    apply(LISTED[0], rsg_over(LISTED[0], "inside", LISTED[0]));
    wait_for(
        "the RSG in a listed namespace to make its groups",
        Duration::from_secs(60),
        || {
            let out = kubectl(
                admin,
                &[
                    "get",
                    "deployments",
                    "-n",
                    LISTED[0],
                    "-l",
                    "rsg.io/name=inside,rsg.io/group-id!=0",
                    "-o",
                    "name",
                ],
            );
            (out.stdout.lines().count() == 1).then_some(())
        },
    );
    // A target in a namespace outside the list is refused, even granted from there.
    let grant = json!({
        "apiVersion": "autoscaling.openfuyao.com/v1alpha1",
        "kind": "ResourceScalingGroupGrant",
        "metadata": {"name": "from-a", "namespace": UNLISTED},
        "spec": {"from": [{"namespace": LISTED[0]}], "to": [{"group": "apps", "kind": "Deployment"}]},
    });
    let out = kubectl_apply(admin, &grant.to_string(), &[]);
    assert!(out.success, "{}", out.stderr);
    let unlisted_before = json_of(
        admin,
        &["get", "deployment", "prefill", "-n", UNLISTED, "-o", "json"],
    );
    apply(LISTED[0], rsg_over(LISTED[0], "outside", UNLISTED));
    let condition = wait_for(
        "the RSG over an unlisted namespace to be refused",
        Duration::from_secs(60),
        || ready(admin, LISTED[0], "outside").filter(|c| c["reason"] == "TargetNotAllowed"),
    );
    assert!(
        condition["message"]
            .as_str()
            .is_some_and(|m| m.contains(&format!(r#"namespace "{UNLISTED}" is not among the namespaces this rsg installation acts in"#))),
        "{condition}"
    );
    // An RSG in an unlisted namespace is not rsg's to see: it never gets a status.
    apply(UNLISTED, rsg_over(UNLISTED, "elsewhere", UNLISTED));
    wait_for(
        "rsg to have reconciled what it sees",
        Duration::from_secs(30),
        || ready(admin, LISTED[0], "inside").filter(|c| c["status"] == "True"),
    );
    assert!(ready(admin, UNLISTED, "elsewhere").is_none());
    let unlisted_after = json_of(
        admin,
        &["get", "deployment", "prefill", "-n", UNLISTED, "-o", "json"],
    );
    assert_eq!(
        unlisted_after["metadata"]["resourceVersion"],
        unlisted_before["metadata"]["resourceVersion"],
        "a Deployment outside the listed namespaces was changed"
    );
    drop(rsg);
}
