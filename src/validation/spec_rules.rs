//! The rules a ResourceScalingGroup must satisfy on its own (no cluster state needed).

use std::collections::{BTreeMap, HashMap, HashSet};

use super::duration::parse_prometheus_duration;
use super::field_error::FieldError;
use super::names::{dns1123_label_errors, dns1123_subdomain_errors, label_key_errors};
use super::promql_expr::check_expr;
use crate::api::{
    GroupConfig, GroupPlacement, LeaderFollowerConfig, ResourceScalingGroupSpec, ScaleDown,
    ScaleDownMetric, UpdateStrategy, AGGREGATORS, MAX_FOLLOWERS, MAX_FOLLOW_RATIO,
    MAX_GROUP_REPLICAS, MAX_TARGETS, METRIC_TYPES, ORDERS, PLACEMENT_MODES,
    STRATEGY_GROUP_REPLICATION, STRATEGY_INPLACE_SCALING, STRATEGY_TYPES, UPDATE_ROLLING,
    UPDATE_TYPES,
};
use crate::naming::copy_workload_name;
use crate::workload::{WorkloadKey, WorkloadKind};

const TARGETS: &str = "spec.targetResources";
const STRATEGY: &str = "spec.scalingStrategy";
const GROUP_CONFIG: &str = "spec.scalingStrategy.groupConfig";
const LEADER_FOLLOWER: &str = "spec.scalingStrategy.leaderFollowerConfig";
/// The longest `rate()` window rsg asks Prometheus for (a longer one reads more samples).
pub const MAX_METRIC_WINDOW: std::time::Duration = std::time::Duration::from_secs(3600);
/// The longest a victim may drain (its metric is read again every few seconds meanwhile).
pub const MAX_DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);

/// Legal but probably unintended things found while validating.
pub type SpecWarnings = Vec<String>;

/// The group name copies use: `groupConfig.groupName`, defaulting to the RSG's name.
pub fn effective_group_name<'a>(rsg_name: &'a str, config: &'a GroupConfig) -> &'a str {
    match config.group_name.as_deref() {
        Some(name) if !name.is_empty() => name,
        _ => rsg_name,
    }
}

/// Checks every rule that needs only the object itself. Returns all errors at once, and
/// warnings for things that are legal but likely a mistake.
pub fn validate_rsg(
    rsg_name: &str,
    rsg_namespace: &str,
    spec: &ResourceScalingGroupSpec,
) -> (Vec<FieldError>, SpecWarnings) {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let oversized = oversized_lists(spec);
    if !oversized.is_empty() {
        // Nothing else is read from a spec over its caps: the work stays bounded however
        // large the lists are.
        return (oversized, warnings);
    }
    for detail in dns1123_label_errors(rsg_name) {
        errors.push(FieldError::invalid(
            "metadata.name",
            rsg_name,
            format!("{detail} (the name is used as the value of the label rsg.io/name)"),
        ));
    }
    let kinds = validate_targets(rsg_namespace, spec, &mut errors);
    let strategy = &spec.scaling_strategy;
    match strategy.type_.as_str() {
        STRATEGY_GROUP_REPLICATION => {
            if strategy.leader_follower_config.is_some() {
                errors.push(FieldError::forbidden(
                    LEADER_FOLLOWER,
                    format!("may only be set when type is {STRATEGY_INPLACE_SCALING:?}"),
                ));
            }
            match &strategy.group_config {
                None => errors.push(FieldError::required(
                    GROUP_CONFIG,
                    format!("required when type is {STRATEGY_GROUP_REPLICATION:?}"),
                )),
                Some(config) => validate_group_config(rsg_name, spec, config, &kinds, &mut errors),
            }
            for (i, target) in spec.target_resources.iter().enumerate() {
                let base_namespace = target.resource_ref.namespace_or(rsg_namespace);
                if base_namespace != rsg_namespace {
                    warnings.push(format!(
                        "{TARGETS}[{i}]: copies of {} {base_namespace}/{} will be created in namespace {rsg_namespace:?} (the RSG's namespace), not in {base_namespace:?} where the base lives",
                        target.resource_ref.kind, target.resource_ref.name
                    ));
                }
            }
        }
        STRATEGY_INPLACE_SCALING => {
            if strategy.group_config.is_some() {
                errors.push(FieldError::forbidden(
                    GROUP_CONFIG,
                    format!("may only be set when type is {STRATEGY_GROUP_REPLICATION:?}"),
                ));
            }
            match &strategy.leader_follower_config {
                None => errors.push(FieldError::required(
                    LEADER_FOLLOWER,
                    format!("required when type is {STRATEGY_INPLACE_SCALING:?}"),
                )),
                Some(config) => validate_leader_follower(spec, config, &kinds, &mut errors),
            }
        }
        "" => errors.push(FieldError::required(format!("{STRATEGY}.type"), "")),
        other => errors.push(FieldError::unsupported(
            format!("{STRATEGY}.type"),
            other,
            &STRATEGY_TYPES,
        )),
    }
    (errors, warnings)
}

/// The lists longer than the schema allows (a spec stored past the webhook before the caps
/// existed, or sent to the webhook before the schema is checked).
fn oversized_lists(spec: &ResourceScalingGroupSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if spec.target_resources.len() > MAX_TARGETS {
        errors.push(FieldError::too_many(
            TARGETS,
            spec.target_resources.len(),
            MAX_TARGETS,
        ));
    }
    if let Some(config) = &spec.scaling_strategy.leader_follower_config {
        if config.follower.len() > MAX_FOLLOWERS {
            errors.push(FieldError::too_many(
                format!("{LEADER_FOLLOWER}.follower"),
                config.follower.len(),
                MAX_FOLLOWERS,
            ));
        }
    }
    errors
}

/// Validates the target list; returns the resolved kind of each target name that has one.
fn validate_targets(
    rsg_namespace: &str,
    spec: &ResourceScalingGroupSpec,
    errors: &mut Vec<FieldError>,
) -> HashMap<String, WorkloadKind> {
    let mut kinds = HashMap::new();
    if spec.target_resources.is_empty() {
        errors.push(FieldError::required(
            TARGETS,
            "at least one target is needed",
        ));
    }
    let mut names_seen: HashMap<&str, usize> = HashMap::new();
    let mut workloads_seen: BTreeMap<WorkloadKey, usize> = BTreeMap::new();
    for (i, target) in spec.target_resources.iter().enumerate() {
        let path = format!("{TARGETS}[{i}]");
        if target.name.is_empty() {
            errors.push(FieldError::required(format!("{path}.name"), ""));
        } else {
            for detail in dns1123_label_errors(&target.name) {
                errors.push(FieldError::invalid(
                    format!("{path}.name"),
                    &target.name,
                    detail,
                ));
            }
            if let Some(first) = names_seen.insert(&target.name, i) {
                names_seen.insert(&target.name, first);
                errors.push(FieldError::duplicate(
                    format!("{path}.name"),
                    &target.name,
                    format!("already used by {TARGETS}[{first}]"),
                ));
            }
        }
        let reference = &target.resource_ref;
        match WorkloadKind::parse(&reference.api_version, &reference.kind) {
            Ok(kind) => {
                kinds.entry(target.name.clone()).or_insert(kind);
            }
            Err(err) => errors.push(FieldError::invalid(
                format!("{path}.resourceRef"),
                format!("{} {}", reference.api_version, reference.kind),
                err.to_string(),
            )),
        }
        if reference.name.is_empty() {
            errors.push(FieldError::required(format!("{path}.resourceRef.name"), ""));
        } else {
            for detail in dns1123_subdomain_errors(&reference.name) {
                errors.push(FieldError::invalid(
                    format!("{path}.resourceRef.name"),
                    &reference.name,
                    detail,
                ));
            }
        }
        if let Some(ns) = reference.namespace.as_deref().filter(|ns| !ns.is_empty()) {
            for detail in dns1123_label_errors(ns) {
                errors.push(FieldError::invalid(
                    format!("{path}.resourceRef.namespace"),
                    ns,
                    detail,
                ));
            }
        }
        let key = WorkloadKey::from_ref(reference, rsg_namespace);
        if let Some(first) = workloads_seen.get(&key) {
            errors.push(FieldError::duplicate(
                format!("{path}.resourceRef"),
                &key,
                format!("the same workload is already referenced by {TARGETS}[{first}]"),
            ));
        } else {
            workloads_seen.insert(key, i);
        }
    }
    kinds
}

fn validate_group_config(
    rsg_name: &str,
    spec: &ResourceScalingGroupSpec,
    config: &GroupConfig,
    kinds: &HashMap<String, WorkloadKind>,
    errors: &mut Vec<FieldError>,
) {
    let group_name = effective_group_name(rsg_name, config);
    let group_name_path = format!("{GROUP_CONFIG}.groupName");
    let group_name_errors = dns1123_label_errors(group_name);
    for detail in &group_name_errors {
        errors.push(FieldError::invalid(
            &group_name_path,
            group_name,
            detail.clone(),
        ));
    }
    if let Some(replicas) = config.replicas {
        if replicas < 0 {
            errors.push(FieldError::invalid(
                format!("{GROUP_CONFIG}.replicas"),
                replicas,
                "must be greater than or equal to 0",
            ));
        } else if replicas > MAX_GROUP_REPLICAS {
            errors.push(FieldError::invalid(
                format!("{GROUP_CONFIG}.replicas"),
                replicas,
                format!("must be less than or equal to {MAX_GROUP_REPLICAS}"),
            ));
        }
    }
    if group_name_errors.is_empty() {
        for target in &spec.target_resources {
            let Some(kind) = kinds.get(&target.name) else {
                continue;
            };
            let longest =
                copy_workload_name(group_name, &target.resource_ref.name, MAX_GROUP_REPLICAS);
            if longest.len() > kind.max_name_len() {
                errors.push(FieldError::invalid(
                    &group_name_path,
                    group_name,
                    format!(
                        "copies of target {:?} would be named up to {longest:?} ({} characters), longer than the {} allowed for a {} name; shorten groupName or the workload name",
                        target.name,
                        longest.len(),
                        kind.max_name_len(),
                        kind.kind_name()
                    ),
                ));
            }
        }
    }
    if let Some(scale_down) = &config.scale_down {
        validate_scale_down(scale_down, errors);
    }
    if let Some(update) = &config.update_strategy {
        validate_update_strategy(update, errors);
    }
    if let Some(placement) = &config.placement {
        validate_placement(placement, errors);
    }
}

fn validate_placement(placement: &GroupPlacement, errors: &mut Vec<FieldError>) {
    let path = format!("{GROUP_CONFIG}.placement");
    if placement.pack_domain.is_empty() {
        errors.push(FieldError::required(
            format!("{path}.packDomain"),
            "a node label key such as topology.kubernetes.io/zone",
        ));
    } else {
        for detail in label_key_errors(&placement.pack_domain) {
            errors.push(FieldError::invalid(
                format!("{path}.packDomain"),
                shortened(&placement.pack_domain),
                detail,
            ));
        }
    }
    if let Some(mode) = &placement.mode {
        if !PLACEMENT_MODES.contains(&mode.as_str()) {
            errors.push(FieldError::unsupported(
                format!("{path}.mode"),
                mode,
                &PLACEMENT_MODES,
            ));
        }
    }
}

fn validate_update_strategy(update: &UpdateStrategy, errors: &mut Vec<FieldError>) {
    let path = format!("{GROUP_CONFIG}.updateStrategy");
    if let Some(type_) = &update.type_ {
        if !UPDATE_TYPES.contains(&type_.as_str()) {
            errors.push(FieldError::unsupported(
                format!("{path}.type"),
                type_,
                &UPDATE_TYPES,
            ));
        }
    }
    for (field, value) in [
        ("maxSurge", update.max_surge),
        ("maxUnavailable", update.max_unavailable),
    ] {
        match value {
            Some(v) if v < 0 => errors.push(FieldError::invalid(
                format!("{path}.{field}"),
                v,
                "must be greater than or equal to 0",
            )),
            Some(v) if v > MAX_GROUP_REPLICAS => errors.push(FieldError::invalid(
                format!("{path}.{field}"),
                v,
                format!("must be less than or equal to {MAX_GROUP_REPLICAS}"),
            )),
            _ => {}
        }
    }
    if update.surge() == 0 && update.unavailable() == 0 {
        errors.push(FieldError::invalid(
            format!("{path}.maxUnavailable"),
            0,
            "may not be 0 when maxSurge is 0: no group could ever be replaced",
        ));
    }
    let rolling_only = [
        ("maxSurge", update.max_surge.is_some()),
        ("maxUnavailable", update.max_unavailable.is_some()),
        ("paused", update.paused.is_some()),
    ];
    if !update.is_rolling() {
        for (field, set) in rolling_only {
            if set {
                errors.push(FieldError::forbidden(
                    format!("{path}.{field}"),
                    format!("may only be set when type is {UPDATE_ROLLING:?}"),
                ));
            }
        }
    }
}

fn validate_scale_down(scale_down: &ScaleDown, errors: &mut Vec<FieldError>) {
    let path = format!("{GROUP_CONFIG}.scaleDown");
    if let Some(order) = &scale_down.order {
        if !ORDERS.contains(&order.as_str()) {
            errors.push(FieldError::unsupported(
                format!("{path}.order"),
                order,
                &ORDERS,
            ));
        }
    }
    if let Some(timeout) = &scale_down.drain_timeout {
        match parse_prometheus_duration(timeout) {
            Err(err) => errors.push(FieldError::invalid(
                format!("{path}.drainTimeout"),
                timeout,
                err.to_string(),
            )),
            Ok(d) if d > MAX_DRAIN_TIMEOUT => errors.push(FieldError::invalid(
                format!("{path}.drainTimeout"),
                timeout,
                "must be at most 1h",
            )),
            Ok(_) => {}
        }
    }
    if let Some(metric) = &scale_down.metric {
        validate_metric(metric, &format!("{path}.metric"), errors);
    }
}

fn validate_metric(metric: &ScaleDownMetric, metric_path: &str, errors: &mut Vec<FieldError>) {
    if metric.expr.trim().is_empty() {
        errors.push(FieldError::required(
            format!("{metric_path}.expr"),
            "a metric name or PromQL expression",
        ));
    } else if let Err(err) = check_expr(&metric.expr) {
        errors.push(FieldError::invalid(
            format!("{metric_path}.expr"),
            shortened(&metric.expr),
            err.to_string(),
        ));
    }
    let type_known = METRIC_TYPES.contains(&metric.type_.as_str());
    // The query rsg sends reads only the RSG's namespaces; refuse what cannot be confined so.
    let expr_checked = !metric.expr.trim().is_empty() && check_expr(&metric.expr).is_ok();
    let window_checked = metric.window.as_deref().is_none_or(|w| {
        parse_prometheus_duration(w).is_ok_and(|d| !d.is_zero() && d <= MAX_METRIC_WINDOW)
    });
    let aggregator_checked = metric
        .aggregator
        .as_deref()
        .is_none_or(|a| AGGREGATORS.contains(&a));
    if expr_checked && type_known && window_checked && aggregator_checked {
        if let Err(err) = crate::scale_down::scope::check_scopable(metric) {
            errors.push(FieldError::invalid(
                format!("{metric_path}.expr"),
                shortened(&metric.expr),
                err.to_string(),
            ));
        }
    }
    if metric.type_.is_empty() {
        errors.push(FieldError::required(format!("{metric_path}.type"), ""));
    } else if !type_known {
        errors.push(FieldError::unsupported(
            format!("{metric_path}.type"),
            &metric.type_,
            &METRIC_TYPES,
        ));
    }
    validate_metric_window(metric, type_known, metric_path, errors);
    if let Some(aggregator) = &metric.aggregator {
        if !AGGREGATORS.contains(&aggregator.as_str()) {
            errors.push(FieldError::unsupported(
                format!("{metric_path}.aggregator"),
                aggregator,
                &AGGREGATORS,
            ));
        }
    }
}

fn validate_metric_window(
    metric: &ScaleDownMetric,
    type_known: bool,
    metric_path: &str,
    errors: &mut Vec<FieldError>,
) {
    let path = format!("{metric_path}.window");
    let Some(window) = &metric.window else {
        if type_known && metric.type_ != "Gauge" {
            errors.push(FieldError::required(
                path,
                format!("required for type {:?} (the range of rate())", metric.type_),
            ));
        }
        return;
    };
    match parse_prometheus_duration(window) {
        Err(err) => errors.push(FieldError::invalid(path, window, err.to_string())),
        Ok(d) if d.is_zero() => {
            errors.push(FieldError::invalid(path, window, "must be greater than 0"))
        }
        Ok(d) if d > MAX_METRIC_WINDOW => {
            errors.push(FieldError::invalid(path, window, "must be at most 1h"))
        }
        Ok(_) => {}
    }
}

fn validate_leader_follower(
    spec: &ResourceScalingGroupSpec,
    config: &LeaderFollowerConfig,
    kinds: &HashMap<String, WorkloadKind>,
    errors: &mut Vec<FieldError>,
) {
    let targets: HashSet<&str> = spec
        .target_resources
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    let must_name_target = must_name_one_of(spec);
    let leader = &config.leader;
    let leader_path = format!("{LEADER_FOLLOWER}.leader.resourceName");
    if leader.resource_name.is_empty() {
        errors.push(FieldError::required(&leader_path, ""));
    } else if !kinds.contains_key(&leader.resource_name)
        && !targets.contains(leader.resource_name.as_str())
    {
        errors.push(FieldError::not_found(
            &leader_path,
            &leader.resource_name,
            &must_name_target,
        ));
    } else {
        errors.extend(unscalable(kinds, leader_path, &leader.resource_name));
    }
    if let Some(replicas) = leader.replicas.filter(|r| *r < 0) {
        errors.push(FieldError::invalid(
            format!("{LEADER_FOLLOWER}.leader.replicas"),
            replicas,
            "must be greater than or equal to 0",
        ));
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, follower) in config.follower.iter().enumerate() {
        let path = format!("{LEADER_FOLLOWER}.follower[{i}]");
        let name_path = format!("{path}.resourceName");
        if follower.resource_name.is_empty() {
            errors.push(FieldError::required(&name_path, ""));
        } else if !targets.contains(follower.resource_name.as_str()) {
            errors.push(FieldError::not_found(
                &name_path,
                &follower.resource_name,
                &must_name_target,
            ));
        } else if follower.resource_name == leader.resource_name {
            errors.push(FieldError::invalid(
                &name_path,
                &follower.resource_name,
                "the leader cannot also be a follower",
            ));
        } else if let Some(first) = seen.get(follower.resource_name.as_str()) {
            errors.push(FieldError::duplicate(
                &name_path,
                &follower.resource_name,
                format!("already a follower at {LEADER_FOLLOWER}.follower[{first}]"),
            ));
        } else {
            errors.extend(unscalable(kinds, name_path, &follower.resource_name));
        }
        seen.entry(follower.resource_name.as_str()).or_insert(i);
        errors.extend(follow_ratio_error(&path, follower.follow_ratio));
    }
}

/// The error for a leader or follower whose kind has no single replica count.
fn unscalable(
    kinds: &HashMap<String, WorkloadKind>,
    path: String,
    name: &str,
) -> Option<FieldError> {
    let kind = kinds.get(name).filter(|k| !k.has_single_replica_count())?;
    Some(FieldError::invalid(
        path,
        name,
        format!(
            "{} has no single replica count, so InplaceScaling cannot scale it; use GroupReplication to clone it as a whole",
            kind.kind_name()
        ),
    ))
}

fn follow_ratio_error(follower_path: &str, ratio: i32) -> Option<FieldError> {
    let path = format!("{follower_path}.followRatio");
    if ratio < 1 {
        Some(FieldError::invalid(
            path,
            ratio,
            "must be greater than or equal to 1",
        ))
    } else if ratio > MAX_FOLLOW_RATIO {
        Some(FieldError::invalid(
            path,
            ratio,
            format!("must be less than or equal to {MAX_FOLLOW_RATIO}"),
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests;

/// A value as quoted in a message: at most 64 characters, so a huge field does not make a
/// huge answer.
fn shortened(value: &str) -> String {
    const SHOWN: usize = 64;
    match value.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{}...", &value[..end]),
        None => value.to_string(),
    }
}

/// The detail of a name that is not a target: the target names, at most eight of them, so the
/// message stays small however many targets and followers a spec has.
fn must_name_one_of(spec: &ResourceScalingGroupSpec) -> String {
    const LISTED: usize = 8;
    let names: Vec<String> = spec
        .target_resources
        .iter()
        .take(LISTED)
        .map(|t| format!("{:?}", t.name))
        .collect();
    let more = spec.target_resources.len().saturating_sub(LISTED);
    let tail = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!("must name one of {TARGETS}: {}{tail}", names.join(", "))
}
