//! rsg: the ResourceScalingGroup controller and admission webhook.
//!
//! One process serves the mutating and validating webhooks, health and metrics on one
//! HTTPS port and runs the reconcile loops, all over one shared informer cache.

pub mod admission;
pub mod allocator;
pub mod api;
pub mod api_errors;
pub mod authorization;
pub mod authorship;
pub mod boundary;
pub mod bounded_map;
pub mod cache;
pub mod certs;
pub mod cli;
pub mod controller;
pub mod crd;
#[doc(hidden)]
pub mod fixtures;
pub mod group_replication;
pub mod inplace_scaling;
pub mod invariants;
pub mod leader;
pub mod metrics;
pub mod naming;
pub mod reconcile;
pub mod run;
pub mod scale_down;
pub mod server;
pub mod validation;
pub mod workload;

/// The field manager rsg writes as: every create and patch carries it, so
/// `kubectl get -o yaml --show-managed-fields` shows what rsg owns.
pub const FIELD_MANAGER: &str = "rsg";

/// Parameters of a create (or replace) made by rsg.
pub fn create_params() -> kube::api::PostParams {
    kube::api::PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..kube::api::PostParams::default()
    }
}

/// Parameters of a patch made by rsg.
pub fn patch_params() -> kube::api::PatchParams {
    kube::api::PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..kube::api::PatchParams::default()
    }
}

/// Parameters of a server-side apply made by rsg: it owns what it applies, and takes over
/// fields another manager of rsg's own objects set (the status is rsg's alone).
pub fn apply_params() -> kube::api::PatchParams {
    kube::api::PatchParams::apply(FIELD_MANAGER).force()
}
