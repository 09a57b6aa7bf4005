//! The committed CRD must equal what the Rust types generate.

#[test]
fn committed_crd_matches_the_types() {
    let generated = rsg::crd::crd_yaml().expect("generating the CRD");
    for path in [
        "manifests/crd/resourcescalinggroups.yaml",
        "charts/rsg/crds/resourcescalinggroups.yaml",
    ] {
        let committed = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
            .unwrap_or_else(|e| panic!("reading {path}: {e}"));
        assert!(
            committed == generated,
            "{path} differs from the CRD the Rust types generate; run `cargo run -- crd > {path}` and commit it"
        );
    }
}

#[test]
fn the_schema_caps_are_the_ones_validation_enforces() {
    use kube::CustomResourceExt;
    let crd = serde_json::to_value(rsg::api::ResourceScalingGroup::crd()).unwrap();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        ["properties"];
    assert_eq!(
        spec["targetResources"]["maxItems"],
        rsg::api::MAX_TARGETS as u64
    );
    let follower =
        &spec["scalingStrategy"]["properties"]["leaderFollowerConfig"]["properties"]["follower"];
    assert_eq!(follower["maxItems"], rsg::api::MAX_FOLLOWERS as u64);
    assert_eq!(
        follower["items"]["properties"]["followRatio"]["maximum"].as_f64(),
        Some(f64::from(rsg::api::MAX_FOLLOW_RATIO))
    );
}
