use super::*;
use crate::api::{GrantFrom, GrantTo};

fn grant(from: &str, kind: &str, name: Option<&str>) -> ResourceScalingGroupGrantSpec {
    ResourceScalingGroupGrantSpec {
        from: vec![GrantFrom {
            namespace: from.into(),
            names: None,
        }],
        to: vec![GrantTo {
            group: "apps".into(),
            kind: kind.into(),
            name: name.map(Into::into),
        }],
    }
}

/// An InplaceScaling spec over Deployments `leader` and `follower` in these namespaces.
fn spec(leader_ns: Option<&str>, follower_ns: Option<&str>) -> ResourceScalingGroupSpec {
    use crate::fixtures::deployment_target;
    let targets = vec![
        deployment_target("leader", "leader", leader_ns),
        deployment_target("follower", "follower", follower_ns),
    ];
    let strategy = serde_json::json!({"type": "InplaceScaling", "leaderFollowerConfig": {
        "leader": {"resourceName": "leader"},
        "follower": [{"resourceName": "follower", "followRatio": 2}],
    }});
    crate::fixtures::rsg("team", "rsg", targets, strategy).spec
}

fn no_grants(_: &str) -> Vec<&'static ResourceScalingGroupGrantSpec> {
    Vec::new()
}

#[test]
fn same_namespace_targets_need_nothing() {
    let boundary = TargetBoundary::default();
    let found = boundary.violations(
        ("tenant-a", "llm"),
        &spec(None, Some("tenant-a")),
        &BTreeMap::new(),
        no_grants,
    );
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn system_and_own_namespaces_are_closed_even_when_granted() {
    let boundary = TargetBoundary {
        own_namespace: Some("rsg-system".into()),
        ..Default::default()
    };
    let everything = grant("tenant-a", "Deployment", None);
    let found = boundary.violations(
        ("tenant-a", "llm"),
        &spec(Some("kube-system"), Some("rsg-system")),
        &BTreeMap::new(),
        |_| vec![&everything],
    );
    assert_eq!(found.len(), 2);
    assert!(found
        .iter()
        .all(|v| v.kind == ViolationKind::ClosedNamespace));
    assert_eq!(
        found[0].error.to_string(),
        "spec.targetResources[0].resourceRef.namespace: Forbidden: rsg never acts on workloads in \"kube-system\", a system namespace"
    );
    assert!(found[1].error.to_string().contains("its own namespace"));
    // An RSG in a system namespace cannot target its own namespace either.
    let found = boundary.violations(
        ("kube-system", "llm"),
        &spec(None, None),
        &BTreeMap::new(),
        no_grants,
    );
    assert_eq!(found.len(), 2);
}

#[test]
fn another_namespace_needs_a_grant_for_this_namespace_and_workload() {
    let boundary = TargetBoundary::default();
    let rsg = spec(Some("production"), Some("production"));
    let found = boundary.violations(("scaling-system", "llm"), &rsg, &BTreeMap::new(), no_grants);
    assert_eq!(found.len(), 2);
    assert!(found.iter().all(|v| v.kind == ViolationKind::NotGranted));
    assert!(found[0].error.to_string().contains(
        "no ResourceScalingGroupGrant in namespace \"production\" admits RSG \"llm\" of namespace \"scaling-system\" to Deployment leader"
    ));

    let leader_only = grant("scaling-system", "Deployment", Some("leader"));
    let found = boundary.violations(("scaling-system", "llm"), &rsg, &BTreeMap::new(), |ns| {
        assert_eq!(ns, "production");
        vec![&leader_only]
    });
    assert_eq!(found.len(), 1);
    assert!(found[0].error.path.starts_with("spec.targetResources[1]"));

    let other_tenant = grant("tenant-b", "Deployment", None);
    let found = boundary.violations(("scaling-system", "llm"), &rsg, &BTreeMap::new(), |_| {
        vec![&other_tenant]
    });
    assert_eq!(found.len(), 2);

    let all = grant("scaling-system", "Deployment", None);
    let found = boundary.violations(("scaling-system", "llm"), &rsg, &BTreeMap::new(), |_| {
        vec![&all]
    });
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn a_grant_that_names_rsgs_admits_no_other_rsg_of_the_namespace() {
    let boundary = TargetBoundary::default();
    let rsg = spec(Some("production"), Some("production"));
    let mut named = grant("scaling-system", "Deployment", None);
    named.from[0].names = Some(vec!["llm".into()]);
    let found = boundary.violations(("scaling-system", "llm"), &rsg, &BTreeMap::new(), |_| {
        vec![&named]
    });
    assert!(found.is_empty(), "{found:?}");
    let found = boundary.violations(
        ("scaling-system", "intruder"),
        &rsg,
        &BTreeMap::new(),
        |_| vec![&named],
    );
    assert_eq!(found.len(), 2);
    assert!(found.iter().all(|v| v.kind == ViolationKind::NotGranted));
    assert!(found[0]
        .error
        .to_string()
        .contains("admits RSG \"intruder\" of namespace"));
}

#[test]
fn the_operator_selector_narrows_every_target_namespace() {
    let boundary = TargetBoundary {
        namespace_selector: Some(NamespaceSelector::parse("rsg-targets=allowed").unwrap()),
        ..Default::default()
    };
    let rsg = spec(None, Some("tenant-b"));
    assert_eq!(
        boundary.namespaces_to_label("tenant-a", &rsg),
        BTreeSet::from(["tenant-a".to_string(), "tenant-b".to_string()])
    );
    let allowed = BTreeMap::from([("rsg-targets".to_string(), "allowed".to_string())]);
    let mut labels = NamespaceLabels::new();
    labels.insert("tenant-a".into(), Some(allowed.clone()));
    // tenant-b unreadable: not selected, with the same message as an unlabelled namespace.
    labels.insert("tenant-b".into(), None);
    let grant_all = grant("tenant-a", "Deployment", None);
    let found = boundary.violations(("tenant-a", "llm"), &rsg, &labels, |_| vec![&grant_all]);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, ViolationKind::ClosedNamespace);
    assert!(found[0]
        .error
        .to_string()
        .contains("namespace selector \"rsg-targets=allowed\""));
    labels.insert("tenant-b".into(), Some(allowed));
    assert!(boundary
        .violations(("tenant-a", "llm"), &rsg, &labels, |_| vec![&grant_all])
        .is_empty());
}

#[test]
fn an_installation_confined_to_namespaces_acts_only_there() {
    let boundary = TargetBoundary {
        watch_scope: crate::cache::WatchScope::of(&["tenant-a".into(), "tenant-b".into()]),
        ..Default::default()
    };
    let grant_all = grant("tenant-a", "Deployment", None);
    // tenant-b is listed: a granted target there is fine.
    let inside = spec(None, Some("tenant-b"));
    assert!(boundary
        .violations(
            ("tenant-a", "llm"),
            &inside,
            &NamespaceLabels::new(),
            |_| vec![&grant_all]
        )
        .is_empty());
    // tenant-c is not: closed, whatever grants it has.
    let outside = spec(None, Some("tenant-c"));
    let found = boundary.violations(
        ("tenant-a", "llm"),
        &outside,
        &NamespaceLabels::new(),
        |_| vec![&grant_all],
    );
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, ViolationKind::ClosedNamespace);
    assert!(found[0]
        .error
        .to_string()
        .contains(r#"namespace "tenant-c" is not among the namespaces this rsg installation acts in (["tenant-a", "tenant-b"])"#));
    assert!(boundary.rsg_namespace_error("tenant-a").is_none());
    assert!(boundary
        .rsg_namespace_error("tenant-c")
        .is_some_and(|e| e.to_string().starts_with("metadata.namespace: Forbidden")));
    assert!(TargetBoundary::default()
        .rsg_namespace_error("any")
        .is_none());
}
