//! rsg: the ResourceScalingGroup controller and admission webhook.
//!
//! One process serves the mutating and validating webhooks, health and metrics on one
//! HTTPS port and runs the reconcile loops, all over one shared informer cache.

pub mod admission;
pub mod api;
pub mod api_errors;
pub mod boundary;
pub mod cache;
pub mod certs;
pub mod cli;
pub mod controller;
pub mod crd;
pub mod group_replication;
pub mod inplace_scaling;
pub mod invariants;
pub mod leader;
pub mod metrics;
pub mod naming;
pub mod run;
pub mod scale_down;
pub mod server;
pub mod validation;
pub mod workload;

/// The field manager rsg writes as.
pub const FIELD_MANAGER: &str = "rsg";
