//! Admission that failed open (spec §5e), on the real apiserver with the shipped webhook
//! configurations: rsg acts on an RSG only when its mutating webhook recorded who admitted
//! the current spec and that author still holds the rights the RSG uses.
//!
//! The tenant may manage RSGs in its namespace; whether it may also patch and create
//! Deployments there is a RoleBinding the test adds and takes away. rsg re-checks authors
//! every 10 s here (`--author-recheck-interval`; 2 minutes by default).

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::control_plane::TENANT_USER;
use support::{apply, get_json, kubectl, kubectl_apply, namespace, wait_for, EnvOptions};

const RECHECK_INTERVAL_SECS: u64 = 10;
const RECORD: &str = "autoscaling.openfuyao.com/admission-record";

fn env() -> &'static support::TestEnv {
    support::env_with(EnvOptions {
        rsg_args: &["--author-recheck-interval", "10s"],
        ..Default::default()
    })
}

/// Roles for the tenant in `ns`: `rsgs` (RSG CRUD, always bound) and `deployments` (what a
/// GroupReplication author needs of its targets), bound only when `with_deployments`.
fn tenant_roles(ns: &str) -> String {
    format!(
        r#"apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: rsgs, namespace: {ns}}}
rules:
- apiGroups: [autoscaling.openfuyao.com]
  resources: [resourcescalinggroups]
  verbs: [get, list, watch, create, update, patch, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: rsgs, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: rsgs}}
subjects:
- {{apiGroup: rbac.authorization.k8s.io, kind: User, name: {TENANT_USER}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: deployments, namespace: {ns}}}
rules:
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, patch, create]
"#
    )
}

fn deployments_binding(ns: &str) -> String {
    format!(
        r#"apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: deployments, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: deployments}}
subjects:
- {{apiGroup: rbac.authorization.k8s.io, kind: User, name: {TENANT_USER}}}
"#
    )
}

fn rsg(ns: &str, replicas: i32) -> String {
    format!(
        "apiVersion: autoscaling.openfuyao.com/v1alpha1\nkind: ResourceScalingGroup\nmetadata: {{name: model, namespace: {ns}}}\nspec:\n  targetResources:\n  - {{name: model, resourceRef: {{apiVersion: apps/v1, kind: Deployment, name: model}}}}\n  scalingStrategy:\n    type: GroupReplication\n    groupConfig: {{replicas: {replicas}}}\n"
    )
}

/// The author the RSG's admission record names (not verified here: the controller does).
fn recorded_author(ns: &str) -> Option<String> {
    let rsg = get_json("rsg", ns, "model")?;
    let record: Value =
        serde_json::from_str(rsg["metadata"]["annotations"][RECORD].as_str()?).ok()?;
    record["author"]["username"].as_str().map(str::to_string)
}

/// The Ready condition, once it has `reason` for the RSG's current generation.
fn ready_reason_now(ns: &str, reason: &str) -> Option<Value> {
    let rsg = get_json("rsg", ns, "model")?;
    rsg["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| {
            c["type"] == "Ready"
                && c["reason"] == reason
                && c["observedGeneration"] == rsg["metadata"]["generation"]
        })
        .cloned()
}

#[test]
fn rsg_acts_only_for_admitted_specs_and_only_while_their_author_has_the_rights() {
    let env = env();
    let admin = &env.kubeconfig;
    let ns = namespace("records");
    apply(&tenant_roles(&ns));
    apply(&support::fixtures::deployment(&ns, "model", 1));
    let tenant = env.control_plane.tenant_kubeconfig(&ns);

    // The webhooks gone (as with failurePolicy Ignore while rsg is unreachable), the tenant,
    // who may create RSGs but not Deployments, stores an RSG over the Deployment.
    let configurations =
        support::rsg_process::shipped_webhook_configurations(env.rsg.port, &env.rsg.ca_bundle);
    for configuration in &configurations {
        let kind = configuration["kind"].as_str().expect("kind").to_lowercase();
        let name = configuration["metadata"]["name"].as_str().expect("name");
        let out = kubectl(admin, &["delete", &kind, name]);
        assert!(out.success, "{}", out.stderr);
    }
    wait_for("the webhooks to be gone", Duration::from_secs(30), || {
        let out = kubectl_apply(&tenant, &rsg(&ns, 2), &["--dry-run=server"]);
        out.success.then_some(())
    });
    let before = support::object_version("deployment", &ns, "model");
    let out = kubectl_apply(&tenant, &rsg(&ns, 2), &[]);
    assert!(out.success, "{}", out.stderr);
    let condition = support::wait_rsg_reason(&ns, "model", "AdmissionNotVerified");
    let message = condition["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("has no admission record") && message.contains("apply it again"),
        "{condition}"
    );
    let events = support::run_kubectl(&[
        "get",
        "events",
        "-n",
        &ns,
        "--field-selector",
        "reason=AdmissionNotVerified",
        "-o",
        "name",
    ]);
    assert!(!events.trim().is_empty(), "no AdmissionNotVerified Event");
    // A record written by hand does not verify either.
    let out = kubectl(
        &tenant,
        &[
            "annotate",
            "rsg",
            "model",
            "-n",
            &ns,
            &format!(
                r#"{RECORD}={{"v":1,"author":{{"username":"admin","groups":["system:masters"]}},"mac":"AAAA"}}"#
            ),
        ],
    );
    assert!(out.success, "{}", out.stderr);
    wait_for(
        "the forged record to be refused",
        Duration::from_secs(30),
        || {
            ready_reason_now(&ns, "AdmissionNotVerified")?["message"]
                .as_str()?
                .contains("does not match its spec")
                .then_some(())
        },
    );
    assert_eq!(
        support::object_version("deployment", &ns, "model"),
        before,
        "the target was changed for an RSG no admission vouched for"
    );
    assert!(
        support::names("deployments", &ns, "rsg.io/name=model").is_empty(),
        "copies were made for an RSG no admission vouched for"
    );

    // The webhooks back, and the tenant given the rights: the same RSG, created through the
    // webhook, converges, with the tenant recorded as its author.
    support::rsg_process::register_webhooks(admin, &env.rsg);
    support::run_kubectl(&["delete", "rsg", "model", "-n", &ns]);
    apply(&deployments_binding(&ns));
    let out = kubectl_apply(&tenant, &rsg(&ns, 2), &[]);
    assert!(out.success, "{}", out.stderr);
    support::wait_rsg_converged(&ns, "model", 2);
    assert_eq!(recorded_author(&ns).as_deref(), Some(TENANT_USER));
    // Labelling it, or scaling it, does not make the admin its author.
    support::run_kubectl(&["label", "rsg", "model", "-n", &ns, "team=a"]);
    support::scale_rsg(&ns, "model", 3);
    support::wait_rsg_converged(&ns, "model", 3);
    assert_eq!(recorded_author(&ns).as_deref(), Some(TENANT_USER));

    // The rights taken away: rsg stops acting for the RSG within the re-check interval.
    let revoked = Instant::now();
    support::run_kubectl(&["delete", "rolebinding", "deployments", "-n", &ns]);
    let condition = wait_for(
        "rsg to stop acting for the author whose rights were taken away",
        Duration::from_secs(3 * RECHECK_INTERVAL_SECS + 10),
        || ready_reason_now(&ns, "AuthorNotAllowed"),
    );
    let stopped_after = revoked.elapsed();
    println!(
        "rights taken away -> AuthorNotAllowed after {:.1} s (re-check interval {RECHECK_INTERVAL_SECS} s)",
        stopped_after.as_secs_f64()
    );
    assert!(
        stopped_after < Duration::from_secs(RECHECK_INTERVAL_SECS + 10),
        "took {stopped_after:?}"
    );
    let message = condition["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!(
            r#"user "{TENANT_USER}" cannot patch deployments.apps "model""#
        )),
        "{condition}"
    );
    // A scale now changes nothing: the third group stays, the base is untouched.
    let base = support::object_version("deployment", &ns, "model");
    support::scale_rsg(&ns, "model", 1);
    wait_for("the scale to be refused", Duration::from_secs(30), || {
        ready_reason_now(&ns, "AuthorNotAllowed")
    });
    assert_eq!(support::object_version("deployment", &ns, "model"), base);
    assert!(
        get_json("deployment", &ns, "model-model-2").is_some(),
        "group 2 was removed"
    );

    // The rights given back: rsg acts again within the interval.
    apply(&deployments_binding(&ns));
    wait_for(
        "rsg to act again once the author has the rights",
        Duration::from_secs(3 * RECHECK_INTERVAL_SECS + 30),
        || {
            let rsg = get_json("rsg", &ns, "model")?;
            (rsg["status"]["currentReplicas"] == 1).then_some(())
        },
    );
    support::wait_rsg_converged(&ns, "model", 1);
}

#[test]
fn without_required_records_rsg_says_at_start_that_the_backstop_is_off() {
    let env = env();
    let rsg = support::rsg_process::RsgProcess::start_with_certs(
        &env.dir,
        &env.rsg_kubeconfig,
        "rsg-records-off",
        env.rsg.cert_dir.clone(),
        env.rsg.ca_bundle.clone(),
        &[
            "--require-admission-record=false",
            "--run-controllers=false",
        ],
    );
    let log = std::fs::read_to_string(&rsg.log).unwrap_or_default();
    rsg.stop(libc::SIGTERM);
    let warning = log
        .lines()
        .find(|line| line.contains("admission records are not required"))
        .unwrap_or_else(|| panic!("no warning at start:\n{log}"));
    assert!(
        warning.contains("WARN") && warning.contains("grants"),
        "{warning}"
    );
}
