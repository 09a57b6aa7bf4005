//! The Helm chart, linted and installed with the real Helm library (helm-sdkpy, through
//! hack/helm.py) into the test apiserver: the objects it creates, what its values switch,
//! that its certificate survives upgrades, and what uninstall leaves behind.

mod support;

use std::process::Command;

use serde::Deserialize;
use serde_json::{json, Value};
use support::{env, get_json, run_kubectl};

use support::helm::CHART;
/// The umbrella chart with rsg as its `resourcescalinggroup` dependency.
const UMBRELLA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/pd-orchestrator");
/// The release name, and so the name of its objects (the shared environment already has
/// the plain manifests' `rsg` objects).
const RELEASE: &str = "rsg-chart";
const CRD: &str = "resourcescalinggroups.autoscaling.openfuyao.com";

/// The install tests take turns: one of them removes the CRD to see the chart install it.
static INSTALLS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs hack/helm.py against the test cluster, asserting success.
fn helm(args: &[&str]) -> Value {
    support::helm::helm(&env().kubeconfig, args)
}

/// Runs hack/helm.py against the test cluster: the JSON it printed, or the error it reported.
fn try_helm(args: &[&str]) -> Result<Value, String> {
    support::helm::try_helm(&env().kubeconfig, args)
}

fn cluster_object(kind: &str, name: &str) -> Option<Value> {
    let out = support::kubectl(&env().kubeconfig, &["get", kind, name, "-o", "json"]);
    if !out.success {
        assert!(out.stderr.contains("NotFound"), "{}", out.stderr);
        return None;
    }
    Some(serde_json::from_str(&out.stdout).expect("JSON"))
}

/// The webhook of the `kind` configuration in manifests/install/30-webhooks.yaml.
fn manifest_webhook(kind: &str) -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/manifests/install/30-webhooks.yaml"
    ))
    .expect("reading the webhook manifests");
    let configuration = serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("YAML"))
        .find(|doc| doc["kind"] == kind)
        .unwrap_or_else(|| panic!("a {kind}"));
    configuration["webhooks"][0].clone()
}

/// A webhook without the parts that name where it is served, with the defaults the API server
/// fills in (matchPolicy, selectors, rule scope) removed so that stored and shipped compare.
fn without_client_config(webhook: &Value) -> Value {
    let mut webhook = webhook.clone();
    if let Some(map) = webhook.as_object_mut() {
        map.remove("clientConfig");
        for (field, default) in [
            ("matchPolicy", json!("Equivalent")),
            ("namespaceSelector", json!({})),
            ("objectSelector", json!({})),
            ("reinvocationPolicy", json!("Never")),
        ] {
            if map.get(field) == Some(&default) {
                map.remove(field);
            }
        }
    }
    for rule in webhook["rules"].as_array_mut().into_iter().flatten() {
        if let Some(rule) = rule.as_object_mut() {
            if rule.get("scope") == Some(&json!("*")) {
                rule.remove("scope");
            }
        }
    }
    webhook
}

/// The rules of the ClusterRole in manifests/install/10-rbac.yaml.
fn manifest_cluster_role_rules() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/manifests/install/10-rbac.yaml"
    ))
    .expect("RBAC manifest");
    let role = serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("YAML"))
        .find(|doc| doc["kind"] == "ClusterRole")
        .expect("a ClusterRole");
    role["rules"].clone()
}

/// The ClusterRoles of manifests/install/15-user-roles.yaml, by name without the `rsg-` prefix.
fn manifest_user_roles() -> Vec<(String, Value)> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/manifests/install/15-user-roles.yaml"
    ))
    .expect("user roles manifest");
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("YAML"))
        .map(|role| {
            let name = role["metadata"]["name"].as_str().expect("name");
            (name.trim_start_matches("rsg-").to_string(), role)
        })
        .collect()
}

/// The Secret's pair loads in rsg's own certificate store, chains to its `ca.crt` and names
/// the Service the webhooks call.
fn assert_certificate_serves(secret: &Value, service_host: &str) {
    use base64::Engine;
    let dir = env().dir.join(format!("chart-cert-{service_host}"));
    std::fs::create_dir_all(&dir).expect("cert dir");
    for key in ["tls.crt", "tls.key", "ca.crt"] {
        let encoded = secret["data"][key].as_str().expect("Secret data");
        let pem = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("base64");
        std::fs::write(dir.join(key), pem).expect("writing");
    }
    let store = rsg::certs::CertStore::new(
        &dir,
        std::sync::Arc::new(rustls::crypto::ring::default_provider()),
    );
    store.reload().expect("rsg loads the chart's certificate");
    assert!(store.is_loaded());
    let out = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(dir.join("ca.crt"))
        .args(["-verify_hostname", service_host])
        .arg(dir.join("tls.crt"))
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_charts_lint_without_warnings() {
    /// Helm's lint findings of `chart` at warning level or above, and whether it counted it.
    fn lint_findings(chart: &str) -> (Vec<Value>, Value) {
        let result = helm(&["lint", chart]);
        assert_eq!(result["TotalChartsLinted"], 1, "{chart}: {result}");
        let messages = result["Messages"]
            .as_array()
            .unwrap_or_else(|| panic!("{chart}: lint printed no Messages list: {result}"));
        let errors = result
            .get("Errors")
            .unwrap_or_else(|| panic!("{chart}: lint printed no Errors: {result}"))
            .clone();
        let findings = messages
            .iter()
            .filter(|m| m["Severity"].as_i64().expect("a numeric Severity") >= 2)
            .cloned()
            .collect();
        (findings, errors)
    }
    for chart in [CHART, UMBRELLA] {
        let (findings, errors) = lint_findings(chart);
        assert_eq!(errors, Value::Null, "{chart}");
        assert!(findings.is_empty(), "{chart}: {findings:?}");
    }
    // The same check finds what is wrong in a broken chart.
    let broken = env().dir.join("broken-chart");
    std::fs::create_dir_all(broken.join("templates")).expect("a chart directory");
    std::fs::write(broken.join("Chart.yaml"), "apiVersion: v2\nname: broken\n")
        .expect("Chart.yaml");
    std::fs::write(
        broken.join("templates/x.yaml"),
        "{{ .Values.missing.key }}\n",
    )
    .expect("a template");
    let (findings, errors) = lint_findings(&broken.display().to_string());
    assert!(!findings.is_empty(), "lint found nothing in a broken chart");
    assert!(
        errors
            .to_string()
            .contains("chart.metadata.version is required"),
        "{errors}"
    );
}

#[test]
fn namespace_create_with_the_release_namespace_leaves_it_to_helm() {
    // `helm install -n <ns> --create-namespace --set namespace.create=true`: Helm makes the
    // release namespace before the chart's objects, so the chart must not make it again.
    let ns = "helm-own-ns";
    let _turn = INSTALLS.lock().unwrap_or_else(|p| p.into_inner());
    run_kubectl(&["create", "namespace", ns]);
    let values = json!({"namespace": {"name": ns, "create": true}, "webhook": {"enabled": false}});
    helm(&["install", "rsg-own", CHART, ns, &values.to_string()]);
    assert!(get_json("deployment", ns, "rsg-own").is_some());
    let namespace = cluster_object("namespace", ns).expect("namespace");
    assert!(
        namespace["metadata"]["annotations"]["meta.helm.sh/release-name"].is_null(),
        "the release namespace stays Helm's, not the chart's: {namespace}"
    );
    helm(&["uninstall", "rsg-own", ns]);
    assert!(get_json("deployment", ns, "rsg-own").is_none());
    run_kubectl(&["delete", "namespace", ns, "--wait=false"]);
}

#[test]
fn the_umbrella_chart_takes_the_manuals_resourcescalinggroup_values() {
    let ns = "helm-pd";
    let release = "pd-orchestrator";
    let name = "pd-orchestrator-resourcescalinggroup";
    let values = |enabled: bool| {
        json!({"resourcescalinggroup": {
            "enabled": enabled,
            "namespace": {"name": ns, "create": true},
            "prometheus": {"url": "http://prometheus.monitoring.svc:9090"},
            "webhook": {"timeoutSeconds": 7},
        }})
        .to_string()
    };
    let _turn = INSTALLS.lock().unwrap_or_else(|p| p.into_inner());
    helm(&["install", release, UMBRELLA, "default", &values(true)]);
    let deployment = get_json("deployment", ns, name).expect("rsg's Deployment");
    assert!(
        deployment
            .to_string()
            .contains("http://prometheus.monitoring.svc:9090"),
        "resourcescalinggroup.prometheus.url reaches rsg: {deployment}"
    );
    let webhook = cluster_object(
        "validatingwebhookconfiguration",
        &format!("{name}-validating"),
    )
    .expect("the validating webhook");
    assert_eq!(webhook["webhooks"][0]["timeoutSeconds"], 7);
    // A misspelled value fails loudly instead of doing nothing.
    let error = try_helm(&[
        "upgrade",
        release,
        UMBRELLA,
        "default",
        &json!({"resourcescalinggroup": {"prometheus": {"uri": "http://x"}}}).to_string(),
    ])
    .expect_err("an unknown value is refused");
    assert!(error.contains("uri"), "{error}");
    // resourcescalinggroup.enabled=false removes rsg.
    helm(&["upgrade", release, UMBRELLA, "default", &values(false)]);
    assert!(get_json("deployment", ns, name).is_none());
    helm(&["uninstall", release, "default"]);
    run_kubectl(&["delete", "namespace", ns, "--wait=false"]);
}

#[test]
fn install_upgrade_and_uninstall_create_switch_and_keep_what_they_say() {
    let ns = "helm-rsg";
    let base = json!({
        "namespace": {"name": ns, "create": true},
        "image": {"repository": "registry.local/rsg", "tag": "test"},
        "prometheus": {"url": "http://prometheus.monitoring.svc:9090"},
    });
    let with = |extra: Value| {
        let mut values = base.clone();
        for (key, value) in extra.as_object().expect("object") {
            values[key] = value.clone();
        }
        values.to_string()
    };
    let _turn = INSTALLS.lock().unwrap_or_else(|p| p.into_inner());
    // The shared environment installed the CRD from manifests/; the chart must bring its own.
    run_kubectl(&["delete", "crd", CRD, "--wait=true"]);
    helm(&["install", RELEASE, CHART, "default", &base.to_string()]);
    let crd = cluster_object("crd", CRD).expect("the chart installs the CRD");
    assert_eq!(crd["spec"]["names"]["shortNames"], json!(["rsg"]));
    support::wait_for(
        "the CRD to be served",
        std::time::Duration::from_secs(30),
        || {
            support::kubectl(&env().kubeconfig, &["get", "rsg", "-A"])
                .success
                .then_some(())
        },
    );

    // Namespace (kept on uninstall), RBAC equal to the plain manifests, the Deployment.
    let namespace = cluster_object("namespace", ns).expect("namespace created");
    assert_eq!(
        namespace["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
    assert!(get_json("serviceaccount", ns, RELEASE).is_some());
    let role = cluster_object("clusterrole", RELEASE).expect("ClusterRole");
    assert_eq!(role["rules"], manifest_cluster_role_rules());
    // The users' roles, aggregated into admin/edit/view, equal the plain manifests' too.
    for (suffix, manifest) in manifest_user_roles() {
        let role = cluster_object("clusterrole", &format!("{RELEASE}-{suffix}"))
            .unwrap_or_else(|| panic!("ClusterRole {RELEASE}-{suffix}"));
        assert_eq!(role["rules"], manifest["rules"], "{suffix}");
        for (key, value) in manifest["metadata"]["labels"].as_object().expect("labels") {
            assert_eq!(&role["metadata"]["labels"][key], value, "{suffix}: {key}");
        }
    }
    let binding = cluster_object("clusterrolebinding", RELEASE).expect("ClusterRoleBinding");
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": RELEASE, "namespace": ns}])
    );
    let lease_role = get_json("role", ns, "rsg-chart-leader-election").expect("Lease Role");
    assert_eq!(
        lease_role["rules"][1]["resourceNames"],
        json!(["rsg-chart-leader"])
    );
    let deployment = get_json("deployment", ns, RELEASE).expect("Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(pod["serviceAccountName"], RELEASE);
    assert_eq!(pod["containers"][0]["image"], "registry.local/rsg:test");
    let env_value = |name: &str| {
        pod["containers"][0]["env"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["name"] == name)
            .map(|e| e["value"].clone())
    };
    assert_eq!(
        env_value("RSG_PROMETHEUS_URL"),
        Some(json!("http://prometheus.monitoring.svc:9090"))
    );
    assert_eq!(
        env_value("RSG_LEADER_ELECTION_LEASE_NAME"),
        Some(json!("rsg-chart-leader"))
    );
    assert_eq!(
        env_value("RSG_REQUEST_TIMEOUT"),
        Some(json!("4s")),
        "one second below the webhooks' 5 s timeout"
    );
    assert_eq!(env_value("RSG_MAX_CONNECTIONS"), Some(json!("1024")));
    // With the webhooks, rsg acts only on admitted RSGs; its key Secret is its own.
    assert_eq!(
        env_value("RSG_REQUIRE_ADMISSION_RECORD"),
        Some(json!("true"))
    );
    assert_eq!(
        env_value("RSG_ADMISSION_KEY_SECRET"),
        Some(json!("rsg-chart-admission-key"))
    );
    let key_role = get_json("role", ns, "rsg-chart-admission-key").expect("admission key Role");
    assert_eq!(
        key_role["rules"][1],
        json!({"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["rsg-chart-admission-key"], "verbs": ["get"]})
    );
    let service = get_json("service", ns, RELEASE).expect("Service");
    assert_eq!(service["spec"]["ports"][0]["port"], 443);
    assert!(get_json("poddisruptionbudget", ns, RELEASE).is_some());

    // A generated certificate, trusted by both webhook configurations.
    let secret = get_json("secret", ns, "rsg-chart-webhook-tls").expect("TLS Secret");
    for key in ["tls.crt", "tls.key", "ca.crt"] {
        assert!(
            secret["data"][key].as_str().is_some_and(|v| !v.is_empty()),
            "{key}"
        );
    }
    assert_certificate_serves(&secret, &format!("{RELEASE}.{ns}.svc"));
    // The same webhooks as the plain manifests (no namespaceSelector: they apply in every
    // namespace), found by the manual's `grep resourcescalinggroup`, calling this release.
    for (kind, name, path) in [
        (
            "MutatingWebhookConfiguration",
            "rsg-chart-resourcescalinggroup-mutating",
            "/mutate",
        ),
        (
            "ValidatingWebhookConfiguration",
            "rsg-chart-resourcescalinggroup-validating",
            "/validate",
        ),
    ] {
        let config =
            cluster_object(&kind.to_lowercase(), name).unwrap_or_else(|| panic!("{kind} {name}"));
        let webhook = &config["webhooks"][0];
        assert!(
            webhook
                .get("namespaceSelector")
                .is_none_or(|s| s == &json!({})),
            "{name} applies in every namespace: {webhook}"
        );
        assert_eq!(
            webhook["clientConfig"]["service"],
            json!({"name": RELEASE, "namespace": ns, "path": path, "port": 443})
        );
        assert_eq!(
            webhook["clientConfig"]["caBundle"],
            secret["data"]["ca.crt"]
        );
        assert_eq!(
            without_client_config(webhook),
            without_client_config(&manifest_webhook(kind)),
            "{name} differs from manifests/install/30-webhooks.yaml"
        );
    }
    assert!(
        get_json("rsg", ns, "llm-pd-group").is_none(),
        "no sample by default"
    );

    // instanceConfig.enabled creates the sample RSG; the certificate is kept.
    helm(&[
        "upgrade",
        RELEASE,
        CHART,
        "default",
        &with(json!({"instanceConfig": {"enabled": true}})),
    ]);
    let sample = get_json("rsg", ns, "llm-pd-group").expect("sample RSG");
    // failurePolicy Fail: nothing passes unchecked, in rsg's own namespace too (rsg itself
    // does not run here, so its webhooks cannot answer).
    helm(&[
        "upgrade",
        RELEASE,
        CHART,
        "default",
        &with(json!({"webhook": {"failurePolicy": "Fail"}})),
    ]);
    assert!(
        get_json("rsg", ns, "llm-pd-group").is_none(),
        "sample removed with instanceConfig.enabled=false"
    );
    for (kind, name) in [
        (
            "mutatingwebhookconfiguration",
            "rsg-chart-resourcescalinggroup-mutating",
        ),
        (
            "validatingwebhookconfiguration",
            "rsg-chart-resourcescalinggroup-validating",
        ),
    ] {
        let config = cluster_object(kind, name).expect("webhook configuration");
        assert_eq!(config["webhooks"][0]["failurePolicy"], "Fail", "{name}");
    }
    let mut edited = sample.clone();
    edited["metadata"] = json!({"name": "llm-pd-group-2", "namespace": ns});
    let out = support::kubectl_apply(&env().kubeconfig, &edited.to_string(), &[]);
    assert!(
        !out.success && out.stderr.contains("failed calling webhook"),
        "an RSG in the chart's namespace goes through its webhooks: {}",
        out.stderr
    );
    assert_eq!(
        sample["spec"]["scalingStrategy"]["type"],
        "GroupReplication"
    );
    let kept = get_json("secret", ns, "rsg-chart-webhook-tls").expect("TLS Secret");
    assert_eq!(
        kept["data"], secret["data"],
        "an upgrade keeps the certificate"
    );

    // webhook.enabled=false removes both webhook configurations, and only them.
    helm(&[
        "upgrade",
        RELEASE,
        CHART,
        "default",
        &with(json!({"webhook": {"enabled": false}})),
    ]);
    assert!(cluster_object(
        "mutatingwebhookconfiguration",
        "rsg-chart-resourcescalinggroup-mutating"
    )
    .is_none());
    assert!(cluster_object(
        "validatingwebhookconfiguration",
        "rsg-chart-resourcescalinggroup-validating"
    )
    .is_none());
    let deployment = get_json("deployment", ns, RELEASE).expect("Deployment");
    let env = &deployment["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.as_array()
            .into_iter()
            .flatten()
            .any(|e| e["name"] == "RSG_REQUIRE_ADMISSION_RECORD" && e["value"] == "false"),
        "without webhooks no RSG has an admission record: {env}"
    );

    // Uninstall removes what the chart made but keeps the namespace and the CRD.
    helm(&["uninstall", RELEASE, "default"]);
    assert!(get_json("deployment", ns, RELEASE).is_none());
    assert!(cluster_object("clusterrole", RELEASE).is_none());
    assert!(cluster_object("namespace", ns).is_some());
    assert!(cluster_object("crd", CRD).is_some(), "Helm keeps CRDs");
    run_kubectl(&["delete", "namespace", ns, "--wait=false"]);
}

#[test]
fn with_cert_manager_and_a_service_monitor_the_chart_makes_their_objects() {
    let _turn = INSTALLS.lock().unwrap_or_else(|p| p.into_inner());
    // cert-manager's two kinds and the Prometheus Operator's ServiceMonitor, as far as the
    // API server needs them to store the chart's objects.
    let operator_crds = [
        support::crds::open_schema("cert-manager.io", "Issuer", "issuers"),
        support::crds::open_schema("cert-manager.io", "Certificate", "certificates"),
        support::crds::open_schema("monitoring.coreos.com", "ServiceMonitor", "servicemonitors"),
    ]
    .join("---\n");
    support::crds::install(
        &operator_crds,
        &["certificates", "issuers", "servicemonitors"],
    );
    let ns = "helm-rsg-cm";
    let values = json!({
        "namespace": {"name": ns, "create": true},
        "webhook": {"certManager": {"enabled": true}},
        "metrics": {"serviceMonitor": {"enabled": true, "labels": {"release": "prometheus"}}},
    });
    helm(&["install", "rsg-cm", CHART, "default", &values.to_string()]);
    let certificate = get_json("certificate", ns, "rsg-cm-webhook").expect("Certificate");
    assert_eq!(certificate["spec"]["secretName"], "rsg-cm-webhook-tls");
    assert_eq!(
        certificate["spec"]["dnsNames"],
        json!(["rsg-cm", "rsg-cm.helm-rsg-cm", "rsg-cm.helm-rsg-cm.svc"])
    );
    assert_eq!(
        certificate["spec"]["issuerRef"],
        json!({"kind": "Issuer", "name": "rsg-cm-selfsigned"})
    );
    assert!(get_json("issuer", ns, "rsg-cm-selfsigned").is_some());
    assert!(
        get_json("secret", ns, "rsg-cm-webhook-tls").is_none(),
        "cert-manager writes the Secret, not the chart"
    );
    let webhook = cluster_object(
        "validatingwebhookconfiguration",
        "rsg-cm-resourcescalinggroup-validating",
    )
    .expect("validating webhook");
    assert_eq!(
        webhook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
        format!("{ns}/rsg-cm-webhook")
    );
    // rsg's own metrics, scraped over TLS with the CA cert-manager writes to the Secret.
    let monitor = get_json("servicemonitor", ns, "rsg-cm").expect("ServiceMonitor");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(
        monitor["spec"]["endpoints"][0]["tlsConfig"],
        json!({"serverName": "rsg-cm.helm-rsg-cm.svc",
               "ca": {"secret": {"name": "rsg-cm-webhook-tls", "key": "ca.crt"}}})
    );
    helm(&["uninstall", "rsg-cm", "default"]);
    run_kubectl(&["delete", "namespace", ns, "--wait=false"]);
}

#[test]
fn values_that_cannot_work_are_refused_with_the_value_named() {
    for (values, expected) in [
        (
            json!({"webhook": {"failurePolicy": "Ignored"}}),
            "at '/webhook/failurePolicy': value must be one of 'Ignore', 'Fail'",
        ),
        (json!({"replicaCount": 0}), "at '/replicaCount'"),
        (
            json!({"namespace": {"name": "Scaling_System"}}),
            "at '/namespace/name'",
        ),
        (
            json!({"leaderElection": {"enabled": false}}),
            "replicaCount > 1 needs leaderElection.enabled",
        ),
        // The umbrella chart's prefix given to this chart: refused, not ignored.
        (
            json!({"resourcescalinggroup": {"prometheus": {"url": "http://x"}}}),
            "resourcescalinggroup",
        ),
        (json!({"webhook": {"failurPolicy": "Fail"}}), "failurPolicy"),
    ] {
        let error = try_helm(&[
            "install",
            "rsg-refused",
            CHART,
            "default",
            &values.to_string(),
        ])
        .expect_err("the install must be refused");
        assert!(error.contains(expected), "{values}: {error}");
    }
    assert!(
        cluster_object("clusterrole", "rsg-refused").is_none(),
        "nothing installed"
    );
}
