//! Revisions: short, stable hashes of what a group is made from, so that rsg can tell which
//! groups a change of a base's pod templates has not reached yet.
//!
//! A target's revision hashes the pod templates of a workload (the base, or the snapshot a
//! copy was built from); a group's revision combines its targets' revisions in spec order.
//! Replica counts are not part of it: scaling never starts a rollout.

use serde_json::Value;

use crate::workload::template_pointers;

/// Hex digits of a revision.
const REVISION_LEN: usize = 10;

/// 64-bit FNV-1a: tiny, stable across versions and platforms (unlike `DefaultHasher`).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// JSON with object keys sorted at every level, so equal values always hash alike.
fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*key).clone()).to_string());
                out.push(':');
                canonical(&map[*key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// A short stable hash of `text`, as revisions are written.
pub(crate) fn short_hash(text: &str) -> String {
    let mut hex = format!("{:016x}", fnv1a(text.as_bytes()));
    hex.truncate(REVISION_LEN);
    hex
}

/// The revision of one workload: a hash of its pod templates.
pub fn template_revision(workload: &Value) -> String {
    let mut text = String::new();
    for pointer in template_pointers(workload) {
        text.push_str(&pointer);
        text.push('=');
        if let Some(template) = workload.pointer(&pointer) {
            canonical(template, &mut text);
        }
        text.push('\n');
    }
    short_hash(&text)
}

/// The revision of a group from its targets' revisions, in spec order (with the target
/// names, so that a changed target list is a new revision).
pub fn group_revision<'a>(per_target: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut text = String::new();
    for (target, revision) in per_target {
        text.push_str(target);
        text.push('=');
        text.push_str(revision);
        text.push('\n');
    }
    short_hash(&text)
}

/// A group revision with the placement its copies get folded in (`None`: unchanged, so
/// RSGs without placement keep the revisions they had).
pub fn with_placement(revision: String, placement: Option<&str>) -> String {
    match placement {
        Some(fingerprint) if !fingerprint.is_empty() => {
            short_hash(&format!("{revision}\nplacement={fingerprint}\n"))
        }
        _ => revision,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(image: &str, replicas: i32) -> Value {
        json!({"kind": "Deployment", "spec": {"replicas": replicas, "template": {
            "metadata": {"labels": {"app": "llm", "role": "prefill"}},
            "spec": {"containers": [{"name": "vllm", "image": image}]}}}})
    }

    #[test]
    fn the_revision_follows_the_pod_template_only() {
        let v1 = template_revision(&deployment("vllm:1", 1));
        assert_eq!(v1.len(), REVISION_LEN);
        assert_eq!(
            v1,
            template_revision(&deployment("vllm:1", 5)),
            "scaling is no change"
        );
        assert_ne!(v1, template_revision(&deployment("vllm:2", 1)));
    }

    #[test]
    fn placement_changes_a_revision_and_no_placement_keeps_it() {
        let plain = group_revision([("prefill", "aaa")]);
        assert_eq!(with_placement(plain.clone(), None), plain);
        assert_eq!(with_placement(plain.clone(), Some("")), plain);
        let placed = with_placement(plain.clone(), Some("p1"));
        assert_ne!(placed, plain);
        assert_ne!(placed, with_placement(plain, Some("p2")));
    }

    #[test]
    fn key_order_does_not_matter() {
        let a = json!({"kind": "Deployment", "spec": {"template": {"metadata": {"labels": {"a": "1", "b": "2"}}}}});
        let b = json!({"kind": "Deployment", "spec": {"template": {"metadata": {"labels": {"b": "2", "a": "1"}}}}});
        assert_eq!(template_revision(&a), template_revision(&b));
    }

    #[test]
    fn a_group_revision_changes_with_any_target_or_the_target_list() {
        let both = group_revision([("prefill", "aaa"), ("decode", "bbb")]);
        assert_eq!(
            both,
            group_revision([("prefill", "aaa"), ("decode", "bbb")])
        );
        assert_ne!(
            both,
            group_revision([("prefill", "aaa"), ("decode", "ccc")])
        );
        assert_ne!(both, group_revision([("prefill", "aaa")]));
        assert_ne!(
            both,
            group_revision([("prefill", "aaa"), ("router", "bbb")])
        );
    }
}
