//! Every sample in manifests/samples/ applies and does what its comment says.

mod support;

use std::time::Duration;

use support::{
    env_with, get_json, run_kubectl, wait_for, wait_rsg_converged, wait_rsg_reason, EnvOptions,
};

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/samples");

#[test]
fn the_samples_apply_and_converge() {
    env_with(EnvOptions {
        cluster: true,
        ..EnvOptions::default()
    });
    run_kubectl(&["apply", "-f", &format!("{SAMPLES}/00-namespaces.yaml")]);
    run_kubectl(&["apply", "-f", SAMPLES]);
    wait_rsg_converged("scaling-system", "llm-pd-group", 2);
    assert!(get_json("deployment", "scaling-system", "pd-llm-prefill-1").is_some());
    assert!(get_json("service", "scaling-system", "llm-decode-pd-1").is_some());
    wait_rsg_converged("scaling-system", "vllm-cluster", 3);
    assert_eq!(
        get_json("statefulset", "scaling-system", "svc-vllm-2").unwrap()["spec"]["serviceName"],
        "vllm-svc-2"
    );
    // The placement sample: each copy group's pods in one zone, which status names.
    let placed = wait_for(
        "the placement sample's groups placed",
        Duration::from_secs(90),
        || {
            let rsg = get_json("rsg", "scaling-system", "llm-pd-placed")?;
            let placed = rsg["status"]["conditions"]
                .as_array()?
                .iter()
                .any(|c| c["type"] == "Placement" && c["reason"] == "Placed");
            (placed && rsg["status"]["readyReplicas"] == 3).then_some(rsg)
        },
    );
    for group in &placed["status"]["groups"].as_array().expect("groups")[1..] {
        let domain = group["domain"].as_str().unwrap_or_default();
        assert!(
            domain.starts_with("zone-") && !domain.contains('+'),
            "one zone per copy group: {group}"
        );
    }
    wait_rsg_reason("scaling-system", "leader-follower", "Reconciled");
    wait_for(
        "the leader/follower sample's 3 / 6 / 3",
        Duration::from_secs(30),
        || {
            let replicas = |name: &str| {
                get_json("deployment", "scaling-system", name)
                    .and_then(|d| d["spec"]["replicas"].as_i64())
            };
            (replicas("scheduler") == Some(3)
                && replicas("worker") == Some(6)
                && replicas("sidecar") == Some(3))
            .then_some(())
        },
    );
    // The HPA sample, as shipped (autoscaling/v2), is accepted by the API server with no
    // warning.
    let out = support::kubectl_apply(
        &support::env().kubeconfig,
        &hpa_sample_text(),
        &["--dry-run=server"],
    );
    assert!(out.success, "{}", out.stderr);
    assert!(!out.stderr.contains("Warning"), "{}", out.stderr);
}

fn hpa_sample_text() -> String {
    std::fs::read_to_string(format!("{SAMPLES}/autoscalers/hpa.yaml")).expect("the HPA sample")
}

#[test]
fn the_hpa_sample_is_autoscaling_v2_with_no_unknown_field() {
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    let written: serde_json::Value = serde_norway::from_str(&hpa_sample_text()).expect("YAML");
    assert_eq!(written["apiVersion"], "autoscaling/v2");
    let typed: HorizontalPodAutoscaler =
        serde_json::from_value(written.clone()).expect("decodes as an autoscaling/v2 HPA");
    // Decoding drops fields the v2 schema does not have: a round trip that loses nothing
    // means every field of the sample is a v2 field.
    let round_trip = serde_json::to_value(&typed).expect("JSON");
    assert_eq!(round_trip, written, "fields outside autoscaling/v2");
    assert_eq!(
        typed.spec.expect("spec").scale_target_ref.kind,
        "ResourceScalingGroup"
    );
}

#[test]
fn samples_for_other_operators_are_well_formed() {
    for (file, kind) in [
        ("autoscalers/keda.yaml", "ScaledObject"),
        ("monitoring/servicemonitor-group-id.yaml", "PodMonitor"),
    ] {
        let text = std::fs::read_to_string(format!("{SAMPLES}/{file}")).unwrap();
        let value: serde_json::Value =
            serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(value["kind"], kind, "{file}");
    }
    let keda: serde_json::Value = serde_norway::from_str(
        &std::fs::read_to_string(format!("{SAMPLES}/autoscalers/keda.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        keda["spec"]["scaleTargetRef"]["kind"],
        "ResourceScalingGroup"
    );
}

#[test]
fn the_install_manifests_are_accepted_by_the_api_server() {
    env_with(EnvOptions {
        cluster: true,
        ..EnvOptions::default()
    });
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/install");
    run_kubectl(&["apply", "-f", &format!("{dir}/00-namespace.yaml")]);
    let ca = support::env().rsg.ca_bundle.clone();
    for file in ["10-rbac.yaml", "20-deployment.yaml", "30-webhooks.yaml"] {
        let text = std::fs::read_to_string(format!("{dir}/{file}"))
            .unwrap()
            .replace("CA_BUNDLE", &ca);
        let out = support::kubectl_apply(&support::env().kubeconfig, &text, &["--dry-run=server"]);
        assert!(out.success, "{file}: {}", out.stderr);
    }
}
