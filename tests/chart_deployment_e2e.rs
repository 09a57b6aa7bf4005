//! The chart's Deployment runs rsg: the chart is installed with the real Helm library into a
//! control plane of its own, and the rsg binary is started with exactly the container's
//! rendered `args` and `env`, its mounted Secrets as files at the mounted paths' stand-ins, and
//! a token of the chart's ServiceAccount. It must serve the webhooks with the chart's
//! certificate (trusted through the caBundle the chart put in its webhook configurations) and
//! reconcile a sample. A wrong flag, env var, mount or RBAC rule in the chart fails here.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::chart_rsg::{ChartRsg, NAMESPACE, RELEASE};
use support::control_plane::ControlPlane;
use support::processes::scratch_dir;
use support::{kubectl, kubectl_apply, wait_for};

#[test]
fn the_charts_deployment_runs_rsg_with_its_rendered_args_env_mounts_and_rbac() {
    let dir = scratch_dir();
    let plane = ControlPlane::start(&dir, false);
    // As `helm install -n scaling-system --create-namespace` does.
    let out = kubectl(&plane.kubeconfig, &["create", "namespace", NAMESPACE]);
    assert!(out.success, "{}", out.stderr);
    let values = json!({"namespace": {"name": NAMESPACE}});
    support::helm::helm(
        &plane.kubeconfig,
        &[
            "install",
            RELEASE,
            support::helm::CHART,
            NAMESPACE,
            &values.to_string(),
        ],
    );
    let rsg = ChartRsg::start(&plane, &dir);

    // It validates as the webhook configuration's path says, reporting field paths.
    let path = support::chart_rsg::webhook_path(&plane, "validating");
    let invalid = rsg::fixtures::group_rsg_value(
        "team",
        "bad",
        "prefill",
        ("apps/v1", "Deployment", "prefill"),
        json!({"replicas": -1}),
    );
    let review = rsg::invariants::review_body_around(&invalid);
    let (status, text) = rsg.review(&path, review);
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).expect("an AdmissionReview");
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
    assert!(
        answer["response"]["status"]["message"]
            .to_string()
            .contains("spec.scalingStrategy.groupConfig.replicas"),
        "{answer}"
    );

    // It reconciles, as the chart's ServiceAccount with the chart's RBAC.
    let ns = "chart-sample";
    let out = kubectl(&plane.kubeconfig, &["create", "namespace", ns]);
    assert!(out.success, "{}", out.stderr);
    let objects = [
        rsg::fixtures::deployment(ns, "prefill", 1),
        rsg::fixtures::service(ns, "prefill"),
        rsg::fixtures::group_rsg_value(
            ns,
            "sample",
            "prefill",
            ("apps/v1", "Deployment", "prefill"),
            json!({"groupName": "g", "replicas": 3}),
        ),
    ];
    for object in objects.map(|o| rsg.admitted(&plane, ns, o)) {
        let out = kubectl_apply(&plane.kubeconfig, &object.to_string(), &[]);
        assert!(out.success, "{}", out.stderr);
    }
    wait_for(
        "the chart-run rsg to make the sample's groups",
        Duration::from_secs(60),
        || {
            let out = kubectl(
                &plane.kubeconfig,
                &[
                    "get",
                    "deployments,services",
                    "-n",
                    ns,
                    "-l",
                    "rsg.io/name=sample,rsg.io/group-id!=0",
                    "-o",
                    "name",
                ],
            );
            (out.success && out.stdout.lines().count() == 4).then_some(())
        },
    );
    drop(rsg);
}
