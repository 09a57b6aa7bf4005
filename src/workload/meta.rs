//! Reading labels and annotations of objects held as JSON.

use serde_json::Value;

fn metadata_entry<'a>(object: &'a Value, map: &str, key: &str) -> Option<&'a str> {
    object.get("metadata")?.get(map)?.get(key)?.as_str()
}

/// The value of label `key`, if set.
pub fn label<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    metadata_entry(object, "labels", key)
}

/// The value of annotation `key`, if set.
pub fn annotation<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    metadata_entry(object, "annotations", key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_keys_with_slashes_and_dots() {
        let object = serde_json::json!({"metadata": {
            "labels": {"rsg.io/group-id": "2"},
            "annotations": {"autoscaling.rsg.metric.values": "1.5"}
        }});
        assert_eq!(label(&object, "rsg.io/group-id"), Some("2"));
        assert_eq!(
            annotation(&object, "autoscaling.rsg.metric.values"),
            Some("1.5")
        );
        assert_eq!(label(&object, "missing"), None);
        assert_eq!(annotation(&serde_json::json!({}), "x"), None);
    }
}
