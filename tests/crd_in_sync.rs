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
