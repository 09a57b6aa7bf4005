//! The replica baseline of each target, as kept in the `<rsg>-replica-config` ConfigMap: one
//! key per target (`prefill: "1"`), or for a RoleBasedGroup, which has no single replica
//! count, one key per target and role (`engine.prefill: "2"`). Pure functions.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::api::MAX_FOLLOWER_REPLICAS;

use crate::workload::role_based_group::{is_role_based_group, role_replicas};
use crate::workload::spec_replicas;

/// Replicas of one target's workload: one count, or one per role of a RoleBasedGroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Replicas {
    /// `spec.replicas`.
    Count(i32),
    /// `spec.roles[].replicas` by role name.
    PerRole(BTreeMap<String, i32>),
}

pub use crate::reconcile::BaselineError;

/// A target's baseline, or why its ConfigMap value cannot be used.
pub type Baseline = Result<Replicas, BaselineError>;

/// The ConfigMap key of a role of a RoleBasedGroup target.
fn role_key(target: &str, role: &str) -> String {
    format!("{target}.{role}")
}

/// The keys a target has in the ConfigMap and their values taken from its snapshot.
pub fn default_entries(target: &str, snapshot: &Value) -> BTreeMap<String, String> {
    if is_role_based_group(snapshot) {
        role_replicas(snapshot)
            .into_iter()
            .map(|(role, replicas)| (role_key(target, &role), replicas.to_string()))
            .collect()
    } else {
        BTreeMap::from([(target.to_string(), spec_replicas(snapshot).to_string())])
    }
}

/// The longest part of a bad value a problem quotes (a ConfigMap value may be a megabyte).
const QUOTED_VALUE_CHARS: usize = 32;

fn parse_count(key: &str, value: &str) -> Result<i32, BaselineError> {
    let quoted = || {
        let mut quoted: String = value.chars().take(QUOTED_VALUE_CHARS).collect();
        if value.chars().count() > QUOTED_VALUE_CHARS {
            quoted.push('…');
        }
        quoted
    };
    match value.trim().parse::<i32>() {
        Ok(n) if (0..=MAX_FOLLOWER_REPLICAS).contains(&n) => Ok(n),
        Ok(n) if n > MAX_FOLLOWER_REPLICAS => Err(BaselineError::OverCap {
            key: key.to_string(),
            count: n,
        }),
        _ => Err(BaselineError::NotACount {
            key: key.to_string(),
            quoted: quoted(),
        }),
    }
}

/// The target's baseline read from the ConfigMap's `data` (the snapshot says which keys).
pub fn read(target: &str, snapshot: &Value, data: &BTreeMap<String, String>) -> Baseline {
    let value = |key: &str| data.get(key).map(String::as_str).unwrap_or("");
    if is_role_based_group(snapshot) {
        role_replicas(snapshot)
            .into_keys()
            .map(|role| {
                let key = role_key(target, &role);
                parse_count(&key, value(&key)).map(|n| (role, n))
            })
            .collect::<Result<BTreeMap<_, _>, _>>()
            .map(Replicas::PerRole)
    } else {
        parse_count(target, value(target)).map(Replicas::Count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn one_key_per_target_must_hold_a_non_negative_integer() {
        let deploy = json!({"kind": "Deployment", "spec": {"replicas": 3}});
        assert_eq!(default_entries("p", &deploy), data(&[("p", "3")]));
        assert_eq!(
            read("p", &deploy, &data(&[("p", "3")])),
            Ok(Replicas::Count(3))
        );
        assert_eq!(
            read("p", &deploy, &data(&[("p", " 0 ")])),
            Ok(Replicas::Count(0))
        );
        for bad in ["-1", "two", ""] {
            let err = read("p", &deploy, &data(&[("p", bad)])).expect_err(bad);
            assert!(
                err.to_string().contains(r#"ConfigMap key "p" holds"#),
                "{err}"
            );
        }
        assert!(read("p", &deploy, &data(&[])).is_err(), "a missing key");
    }

    #[test]
    fn values_above_the_cap_are_reported_and_long_ones_quoted_short() {
        let deploy = json!({"kind": "Deployment", "spec": {"replicas": 3}});
        assert_eq!(
            read("p", &deploy, &data(&[("p", "10000")])),
            Ok(Replicas::Count(10_000))
        );
        let err = read("p", &deploy, &data(&[("p", "2000000000")]))
            .expect_err("above the cap")
            .to_string();
        assert!(
            err.contains("holds 2000000000, more than the 10000 replicas"),
            "{err}"
        );
        let long = "x".repeat(100_000);
        let err = read("p", &deploy, &data(&[("p", &long)]))
            .expect_err("not a number")
            .to_string();
        assert!(err.len() < 300, "{} bytes", err.len());
    }

    #[test]
    fn a_role_based_group_has_one_key_per_role() {
        let rbg = json!({"kind": "RoleBasedGroup", "spec": {"roles": [
            {"name": "prefill", "replicas": 2}, {"name": "decode", "replicas": 4}]}});
        assert_eq!(
            default_entries("engine", &rbg),
            data(&[("engine.decode", "4"), ("engine.prefill", "2")])
        );
        assert_eq!(
            read(
                "engine",
                &rbg,
                &data(&[("engine.prefill", "1"), ("engine.decode", "5")])
            ),
            Ok(Replicas::PerRole(BTreeMap::from([
                ("decode".into(), 5),
                ("prefill".into(), 1)
            ])))
        );
        let err = read(
            "engine",
            &rbg,
            &data(&[("engine.prefill", "1"), ("engine.decode", "x")]),
        )
        .expect_err("a bad role value");
        assert!(err.to_string().contains(r#""engine.decode""#), "{err}");
    }
}
