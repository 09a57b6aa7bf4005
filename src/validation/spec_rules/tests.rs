//! One case per rule: a spec, and the exact messages a user must see.

use super::validate_rsg;
use crate::api::ResourceScalingGroupSpec;

const GROUP_SPEC: &str = r#"
targetResources:
- name: prefill
  resourceRef: {apiVersion: apps/v1, kind: Deployment, name: llm-prefill, namespace: production}
- name: decode
  resourceRef: {apiVersion: apps/v1, kind: Deployment, name: llm-decode, namespace: production}
scalingStrategy:
  type: GroupReplication
  groupConfig:
    groupName: pd
    replicas: 2
    scaleDown:
      metric: {expr: "vllm:num_requests_running", type: Gauge, aggregator: avg}
      order: ascending
"#;

const INPLACE_SPEC: &str = r#"
targetResources:
- name: scheduler
  resourceRef: {apiVersion: apps/v1, kind: Deployment, name: scheduler}
- name: worker
  resourceRef: {apiVersion: apps/v1, kind: Deployment, name: worker}
- name: sidecar
  resourceRef: {apiVersion: apps/v1, kind: Deployment, name: sidecar}
scalingStrategy:
  type: InplaceScaling
  leaderFollowerConfig:
    leader: {resourceName: scheduler, replicas: 3}
    follower:
    - {resourceName: worker, followRatio: 2}
    - {resourceName: sidecar, followRatio: 1}
"#;

fn spec_with(base: &str, edit: impl FnOnce(&mut serde_json::Value)) -> ResourceScalingGroupSpec {
    let mut value: serde_json::Value = serde_norway::from_str(base).unwrap();
    edit(&mut value);
    serde_json::from_value(value).unwrap()
}

fn errors_of(spec: &ResourceScalingGroupSpec) -> Vec<String> {
    validate_rsg("llm-pd-group", "scaling-system", spec)
        .0
        .iter()
        .map(ToString::to_string)
        .collect()
}

type Edit = fn(&mut serde_json::Value);

fn check(base: &str, cases: &[(&str, Edit, &[&str])]) {
    for (name, edit, expected) in cases {
        let errors = errors_of(&spec_with(base, edit));
        assert_eq!(&errors, expected, "case {name}");
    }
}

#[test]
fn valid_samples_pass() {
    assert!(errors_of(&spec_with(GROUP_SPEC, |_| {})).is_empty());
    assert!(errors_of(&spec_with(INPLACE_SPEC, |_| {})).is_empty());
}

#[test]
fn target_rules() {
    check(
        GROUP_SPEC,
        &[
            (
                "no targets",
                |v| v["targetResources"] = serde_json::json!([]),
                &["spec.targetResources: Required value: at least one target is needed"],
            ),
            (
                "duplicate target names",
                |v| v["targetResources"][1]["name"] = "prefill".into(),
                &[
                    r#"spec.targetResources[1].name: Duplicate value: "prefill": already used by spec.targetResources[0]"#,
                ],
            ),
            (
                "same workload twice",
                |v| v["targetResources"][1]["resourceRef"]["name"] = "llm-prefill".into(),
                &[
                    r#"spec.targetResources[1].resourceRef: Duplicate value: "Deployment production/llm-prefill": the same workload is already referenced by spec.targetResources[0]"#,
                ],
            ),
            (
                "bad target name",
                |v| v["targetResources"][0]["name"] = "Prefill_1".into(),
                &[
                    r#"spec.targetResources[0].name: Invalid value: "Prefill_1": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc')"#,
                ],
            ),
            (
                "wrong apiVersion",
                |v| v["targetResources"][0]["resourceRef"]["apiVersion"] = "apps/v1beta1".into(),
                &[
                    r#"spec.targetResources[0].resourceRef: Invalid value: "apps/v1beta1 Deployment": Deployment is supported with apiVersion apps/v1"#,
                ],
            ),
            (
                "unsupported built-in kind",
                |v| {
                    v["targetResources"][0]["resourceRef"]["apiVersion"] = "v1".into();
                    v["targetResources"][0]["resourceRef"]["kind"] = "Service".into();
                },
                &[
                    r#"spec.targetResources[0].resourceRef: Invalid value: "v1 Service": supported built-in kinds are "Deployment" and "StatefulSet" (apps/v1); other kinds must be custom resources with spec.replicas"#,
                ],
            ),
        ],
    );
}

#[test]
fn strategy_rules() {
    check(
        GROUP_SPEC,
        &[
            (
                "unknown type",
                |v| v["scalingStrategy"]["type"] = "Replicate".into(),
                &[
                    r#"spec.scalingStrategy.type: Unsupported value: "Replicate": supported values: "GroupReplication", "InplaceScaling""#,
                ],
            ),
            (
                "missing groupConfig",
                |v| {
                    v["scalingStrategy"]
                        .as_object_mut()
                        .unwrap()
                        .remove("groupConfig");
                },
                &[
                    r#"spec.scalingStrategy.groupConfig: Required value: required when type is "GroupReplication""#,
                ],
            ),
            (
                "leaderFollowerConfig on GroupReplication",
                |v| {
                    v["scalingStrategy"]["leaderFollowerConfig"] =
                        serde_json::json!({"leader": {"resourceName": "prefill"}});
                },
                &[
                    r#"spec.scalingStrategy.leaderFollowerConfig: Forbidden: may only be set when type is "InplaceScaling""#,
                ],
            ),
        ],
    );
    check(
        INPLACE_SPEC,
        &[(
            "groupConfig on InplaceScaling",
            |v| v["scalingStrategy"]["groupConfig"] = serde_json::json!({"replicas": 2}),
            &[
                r#"spec.scalingStrategy.groupConfig: Forbidden: may only be set when type is "GroupReplication""#,
            ],
        )],
    );
}

#[test]
fn group_config_rules() {
    check(
        GROUP_SPEC,
        &[
            (
                "negative replicas",
                |v| v["scalingStrategy"]["groupConfig"]["replicas"] = (-1).into(),
                &[
                    r#"spec.scalingStrategy.groupConfig.replicas: Invalid value: "-1": must be greater than or equal to 0"#,
                ],
            ),
            (
                "too many replicas",
                |v| v["scalingStrategy"]["groupConfig"]["replicas"] = 1001.into(),
                &[
                    r#"spec.scalingStrategy.groupConfig.replicas: Invalid value: "1001": must be less than or equal to 1000"#,
                ],
            ),
            (
                "invalid groupName",
                |v| v["scalingStrategy"]["groupConfig"]["groupName"] = "PD_group".into(),
                &[
                    r#"spec.scalingStrategy.groupConfig.groupName: Invalid value: "PD_group": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc')"#,
                ],
            ),
        ],
    );
    let long = spec_with(GROUP_SPEC, |v| {
        v["targetResources"][0]["resourceRef"]["kind"] = "StatefulSet".into();
        v["scalingStrategy"]["groupConfig"]["groupName"] =
            "a-rather-long-group-name-for-prefill-decode".into();
    });
    assert_eq!(
        errors_of(&long),
        vec![
            r#"spec.scalingStrategy.groupConfig.groupName: Invalid value: "a-rather-long-group-name-for-prefill-decode": copies of target "prefill" would be named up to "a-rather-long-group-name-for-prefill-decode-llm-prefill-1000" (60 characters), longer than the 52 allowed for a StatefulSet name; shorten groupName or the workload name"#
        ]
    );
}

#[test]
fn metric_rules() {
    check(
        GROUP_SPEC,
        &[
            ("guage", |v| v["scalingStrategy"]["groupConfig"]["scaleDown"]["metric"]["type"] = "guage".into(), &[
                r#"spec.scalingStrategy.groupConfig.scaleDown.metric.type: Unsupported value: "guage": supported values: "Counter", "Gauge", "Histogram""#,
            ]),
            ("counter without window", |v| v["scalingStrategy"]["groupConfig"]["scaleDown"]["metric"]["type"] = "Counter".into(), &[
                r#"spec.scalingStrategy.groupConfig.scaleDown.metric.window: Required value: required for type "Counter" (the range of rate())"#,
            ]),
            ("bad window", |v| {
                v["scalingStrategy"]["groupConfig"]["scaleDown"]["metric"]["type"] = "Histogram".into();
                v["scalingStrategy"]["groupConfig"]["scaleDown"]["metric"]["window"] = "2 minutes".into();
            }, &[
                r#"spec.scalingStrategy.groupConfig.scaleDown.metric.window: Invalid value: "2 minutes": must be a Prometheus duration such as 30s, 2m or 1h30m (units ms, s, m, h, d, w, y, largest first)"#,
            ]),
            ("empty expr", |v| v["scalingStrategy"]["groupConfig"]["scaleDown"]["metric"]["expr"] = " ".into(), &[
                "spec.scalingStrategy.groupConfig.scaleDown.metric.expr: Required value: a metric name or PromQL expression",
            ]),
            ("expr escaping the aggregation", |v| v["scalingStrategy"]["groupConfig"]["scaleDown"]["metric"]["expr"] = "up) or vector(1".into(), &[
                r#"spec.scalingStrategy.groupConfig.scaleDown.metric.expr: Invalid value: "up) or vector(1": ')' closes a bracket the expression did not open; rsg wraps the expression in its aggregation, so brackets must balance"#,
            ]),
            ("huge expr", |v| v["scalingStrategy"]["groupConfig"]["scaleDown"]["metric"]["expr"] = "x".repeat(5000).into(), &[
                "spec.scalingStrategy.groupConfig.scaleDown.metric.expr: Invalid value: \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...\": 5000 bytes long; at most 4096 are allowed",
            ]),
            ("bad aggregator", |v| v["scalingStrategy"]["groupConfig"]["scaleDown"]["metric"]["aggregator"] = "mean".into(), &[
                r#"spec.scalingStrategy.groupConfig.scaleDown.metric.aggregator: Unsupported value: "mean": supported values: "sum", "avg", "max", "min""#,
            ]),
            ("bad order", |v| v["scalingStrategy"]["groupConfig"]["scaleDown"]["order"] = "up".into(), &[
                r#"spec.scalingStrategy.groupConfig.scaleDown.order: Unsupported value: "up": supported values: "ascending", "descending""#,
            ]),
            ("bad drainTimeout", |v| v["scalingStrategy"]["groupConfig"]["scaleDown"]["drainTimeout"] = "soon".into(), &[
                r#"spec.scalingStrategy.groupConfig.scaleDown.drainTimeout: Invalid value: "soon": must be a Prometheus duration such as 30s, 2m or 1h30m (units ms, s, m, h, d, w, y, largest first)"#,
            ]),
            ("drainTimeout above 1h", |v| v["scalingStrategy"]["groupConfig"]["scaleDown"]["drainTimeout"] = "1h1s".into(), &[
                r#"spec.scalingStrategy.groupConfig.scaleDown.drainTimeout: Invalid value: "1h1s": must be at most 1h"#,
            ]),
            ("window above 1h", |v| {
                v["scalingStrategy"]["groupConfig"]["scaleDown"]["metric"]["type"] = "Counter".into();
                v["scalingStrategy"]["groupConfig"]["scaleDown"]["metric"]["window"] = "2h".into();
            }, &[
                r#"spec.scalingStrategy.groupConfig.scaleDown.metric.window: Invalid value: "2h": must be at most 1h"#,
            ]),
            ("a Counter over an expression, not a selector", |v| {
                v["scalingStrategy"]["groupConfig"]["scaleDown"]["metric"]["type"] = "Counter".into();
                v["scalingStrategy"]["groupConfig"]["scaleDown"]["metric"]["window"] = "1m".into();
                v["scalingStrategy"]["groupConfig"]["scaleDown"]["metric"]["expr"] = "sum(x)".into();
            }, &[
                r#"spec.scalingStrategy.groupConfig.scaleDown.metric.expr: Invalid value: "sum(x)": a Counter metric must be a series selector such as `vllm:request_success_total{model="llama"}`: rsg queries rate() of it over the window"#,
            ]),
        ],
    );
}

#[test]
fn leader_follower_rules() {
    check(
        INPLACE_SPEC,
        &[
            (
                "leader not a target",
                |v| {
                    v["scalingStrategy"]["leaderFollowerConfig"]["leader"]["resourceName"] =
                        "boss".into()
                },
                &[
                    r#"spec.scalingStrategy.leaderFollowerConfig.leader.resourceName: Not found: "boss": must name one of spec.targetResources: "scheduler", "worker", "sidecar""#,
                ],
            ),
            (
                "follower not a target",
                |v| {
                    v["scalingStrategy"]["leaderFollowerConfig"]["follower"][0]["resourceName"] =
                        "ghost".into()
                },
                &[
                    r#"spec.scalingStrategy.leaderFollowerConfig.follower[0].resourceName: Not found: "ghost": must name one of spec.targetResources: "scheduler", "worker", "sidecar""#,
                ],
            ),
            (
                "leader is a follower",
                |v| {
                    v["scalingStrategy"]["leaderFollowerConfig"]["follower"][1]["resourceName"] =
                        "scheduler".into()
                },
                &[
                    r#"spec.scalingStrategy.leaderFollowerConfig.follower[1].resourceName: Invalid value: "scheduler": the leader cannot also be a follower"#,
                ],
            ),
            (
                "follower twice",
                |v| {
                    v["scalingStrategy"]["leaderFollowerConfig"]["follower"][1]["resourceName"] =
                        "worker".into()
                },
                &[
                    r#"spec.scalingStrategy.leaderFollowerConfig.follower[1].resourceName: Duplicate value: "worker": already a follower at spec.scalingStrategy.leaderFollowerConfig.follower[0]"#,
                ],
            ),
            (
                "ratio zero",
                |v| {
                    v["scalingStrategy"]["leaderFollowerConfig"]["follower"][0]["followRatio"] =
                        0.into()
                },
                &[
                    r#"spec.scalingStrategy.leaderFollowerConfig.follower[0].followRatio: Invalid value: "0": must be greater than or equal to 1"#,
                ],
            ),
            (
                "negative leader replicas",
                |v| {
                    v["scalingStrategy"]["leaderFollowerConfig"]["leader"]["replicas"] = (-2).into()
                },
                &[
                    r#"spec.scalingStrategy.leaderFollowerConfig.leader.replicas: Invalid value: "-2": must be greater than or equal to 0"#,
                ],
            ),
            (
                "missing leaderFollowerConfig",
                |v| {
                    v["scalingStrategy"]
                        .as_object_mut()
                        .unwrap()
                        .remove("leaderFollowerConfig");
                },
                &[
                    r#"spec.scalingStrategy.leaderFollowerConfig: Required value: required when type is "InplaceScaling""#,
                ],
            ),
            (
                "role based group cannot be scaled in place",
                |v| {
                    v["targetResources"][1]["resourceRef"] = serde_json::json!({"apiVersion": "workloads.x-k8s.io/v1alpha1", "kind": "RoleBasedGroup", "name": "rbg"});
                },
                &[
                    r#"spec.scalingStrategy.leaderFollowerConfig.follower[0].resourceName: Invalid value: "worker": RoleBasedGroup has no single replica count, so InplaceScaling cannot scale it; use GroupReplication to clone it as a whole"#,
                ],
            ),
        ],
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let spec = spec_with(GROUP_SPEC, |v| {
        v["targetResources"][1]["name"] = "prefill".into();
        v["scalingStrategy"]["groupConfig"]["scaleDown"]["metric"]["type"] = "guage".into();
        v["scalingStrategy"]["groupConfig"]["replicas"] = (-3).into();
    });
    assert_eq!(errors_of(&spec).len(), 3);
}

#[test]
fn rsg_name_must_be_a_label_value() {
    let spec = spec_with(GROUP_SPEC, |_| {});
    let (errors, _) = validate_rsg(&"x".repeat(64), "ns", &spec);
    assert_eq!(errors.len(), 1);
    assert!(errors[0]
        .to_string()
        .starts_with("metadata.name: Invalid value"));
}

#[test]
fn warns_when_copies_land_in_another_namespace() {
    let (_, warnings) = validate_rsg(
        "llm-pd-group",
        "scaling-system",
        &spec_with(GROUP_SPEC, |_| {}),
    );
    assert_eq!(warnings.len(), 2);
    assert_eq!(
        warnings[0],
        r#"spec.targetResources[0]: copies of Deployment production/llm-prefill will be created in namespace "scaling-system" (the RSG's namespace), not in "production" where the base lives"#
    );
}

#[test]
fn follow_ratio_is_capped() {
    check(
        INPLACE_SPEC,
        &[(
            "ratio over 1000",
            |v| v["scalingStrategy"]["leaderFollowerConfig"]["follower"][0]["followRatio"] = 1001.into(),
            &["spec.scalingStrategy.leaderFollowerConfig.follower[0].followRatio: Invalid value: \"1001\": must be less than or equal to 1000"],
        )],
    );
}

#[test]
fn lists_over_their_caps_are_the_only_problem_reported() {
    check(
        GROUP_SPEC,
        &[(
            "33 targets, and a bad metric type that is not looked at",
            |v| {
                let target = v["targetResources"][0].clone();
                v["targetResources"] = (0..33)
                    .map(|i| {
                        let mut t = target.clone();
                        t["name"] = format!("t{i}").into();
                        t
                    })
                    .collect::<Vec<_>>()
                    .into();
                v["scalingStrategy"]["groupConfig"]["scaleDown"]["metric"]["type"] = "guage".into();
            },
            &["spec.targetResources: Too many: 33: must have at most 32 items"],
        )],
    );
}

#[test]
fn update_strategy_rules() {
    check(
        GROUP_SPEC,
        &[
            (
                "rolling update with defaults",
                |v| v["scalingStrategy"]["groupConfig"]["updateStrategy"] = serde_json::json!({"type": "RollingUpdate"}),
                &[],
            ),
            (
                "unknown type",
                |v| v["scalingStrategy"]["groupConfig"]["updateStrategy"] = serde_json::json!({"type": "Recreate"}),
                &["spec.scalingStrategy.groupConfig.updateStrategy.type: Unsupported value: \"Recreate\": supported values: \"OnDelete\", \"RollingUpdate\""],
            ),
            (
                "no progress possible",
                |v| v["scalingStrategy"]["groupConfig"]["updateStrategy"] = serde_json::json!({"type": "RollingUpdate", "maxSurge": 0}),
                &["spec.scalingStrategy.groupConfig.updateStrategy.maxUnavailable: Invalid value: \"0\": may not be 0 when maxSurge is 0: no group could ever be replaced"],
            ),
            (
                "negative",
                |v| v["scalingStrategy"]["groupConfig"]["updateStrategy"] = serde_json::json!({"type": "RollingUpdate", "maxUnavailable": -1}),
                &["spec.scalingStrategy.groupConfig.updateStrategy.maxUnavailable: Invalid value: \"-1\": must be greater than or equal to 0"],
            ),
            (
                "rolling fields under OnDelete",
                |v| v["scalingStrategy"]["groupConfig"]["updateStrategy"] = serde_json::json!({"paused": true}),
                &["spec.scalingStrategy.groupConfig.updateStrategy.paused: Forbidden: may only be set when type is \"RollingUpdate\""],
            ),
        ],
    );
}

#[test]
fn placement_rules() {
    check(
        GROUP_SPEC,
        &[
            (
                "zone, spread",
                |v| v["scalingStrategy"]["groupConfig"]["placement"] = serde_json::json!({"packDomain": "topology.kubernetes.io/zone", "mode": "Required", "spreadGroups": true}),
                &[],
            ),
            (
                "preferred host",
                |v| v["scalingStrategy"]["groupConfig"]["placement"] = serde_json::json!({"packDomain": "kubernetes.io/hostname", "mode": "Preferred"}),
                &[],
            ),
            (
                "empty key",
                |v| v["scalingStrategy"]["groupConfig"]["placement"] = serde_json::json!({"packDomain": ""}),
                &["spec.scalingStrategy.groupConfig.placement.packDomain: Required value: a node label key such as topology.kubernetes.io/zone"],
            ),
            (
                "not a label key, unknown mode",
                |v| v["scalingStrategy"]["groupConfig"]["placement"] = serde_json::json!({"packDomain": "Zone.IO/zone!", "mode": "Strict"}),
                &[
                    "spec.scalingStrategy.groupConfig.placement.packDomain: Invalid value: \"Zone.IO/zone!\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName', or 'my.name', or '123-abc')",
                    "spec.scalingStrategy.groupConfig.placement.packDomain: Invalid value: \"Zone.IO/zone!\": prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')",
                    "spec.scalingStrategy.groupConfig.placement.mode: Unsupported value: \"Strict\": supported values: \"Required\", \"Preferred\"",
                ],
            ),
        ],
    );
}
