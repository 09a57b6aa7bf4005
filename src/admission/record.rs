//! The mutating webhook's admission record (see [`crate::authorship::record`]): the patch
//! that stores, on every CREATE and on every UPDATE that changes what the record signs, who
//! made the request. An UPDATE that leaves the signed spec alone (labels, finalizers, the
//! annotation itself) keeps the record it had, so touching metadata does not make the
//! toucher the author, and a hand-edited record is put back.

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation};
use kube::core::admission::{AdmissionRequest, Operation};
use kube::core::DynamicObject;
use serde::Deserialize;
use serde_json::Value;

use crate::api::{ResourceScalingGroupSpec, ANNOTATION_ADMISSION_RECORD};
use crate::authorship::{sign, verify, AdmissionKey};

/// The operation that writes the record into `object` (the request's object with the
/// defaults `defaults` applied), or `None` when it is there already or none can be made.
pub fn record_patch(
    key: &AdmissionKey,
    request: &AdmissionRequest<DynamicObject>,
    object: &Value,
    defaults: &[PatchOperation],
) -> Option<PatchOperation> {
    // The defaults touch only the spec: they are applied to a copy of it alone.
    let mut defaulted = serde_json::json!({ "spec": object.get("spec")? });
    json_patch::patch(&mut defaulted, defaults).ok()?;
    // A spec rsg cannot read is refused by validation; it gets no record.
    let spec = ResourceScalingGroupSpec::deserialize(&defaulted["spec"]).ok()?;
    let namespace = request.namespace.as_deref().unwrap_or_default();
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())?;
    let kept = match (&request.operation, &request.old_object) {
        (Operation::Update, Some(old)) => old
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_ADMISSION_RECORD))
            .filter(|record| verify(key, namespace, name, &spec, Some(record)).is_ok())
            .cloned(),
        _ => None,
    };
    let record = match kept {
        Some(record) => record,
        None => match sign(key, namespace, name, &request.user_info, &spec) {
            Ok(record) => record,
            Err(err) => {
                tracing::warn!(error = %err, "no admission record written; the controller will not act on this RSG");
                return None;
            }
        },
    };
    let annotations = object.pointer("/metadata/annotations");
    if annotations
        .and_then(|a| a.get(ANNOTATION_ADMISSION_RECORD))
        .and_then(Value::as_str)
        == Some(record.as_str())
    {
        return None;
    }
    Some(match annotations.filter(|a| a.is_object()) {
        Some(_) => PatchOperation::Add(AddOperation {
            path: PointerBuf::from_tokens(["metadata", "annotations", ANNOTATION_ADMISSION_RECORD]),
            value: Value::from(record),
        }),
        None => PatchOperation::Add(AddOperation {
            path: PointerBuf::from_tokens(["metadata", "annotations"]),
            value: serde_json::json!({ ANNOTATION_ADMISSION_RECORD: record }),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authorship::record::KEY_BYTES;

    fn key() -> AdmissionKey {
        AdmissionKey::from_bytes(&[7; KEY_BYTES]).expect("a key")
    }

    fn rsg(annotations: Value, target: &str) -> Value {
        serde_json::json!({
            "apiVersion": "autoscaling.openfuyao.com/v1alpha1",
            "kind": "ResourceScalingGroup",
            "metadata": {"name": "g", "namespace": "ns", "annotations": annotations},
            "spec": {
                "targetResources": [{"name": "a", "resourceRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target}}],
                "scalingStrategy": {"type": "GroupReplication", "groupConfig": {"replicas": 1}},
            },
        })
    }

    fn request(user: &str, object: &Value, old: Option<&Value>) -> AdmissionRequest<DynamicObject> {
        let review = crate::invariants::review(
            object,
            old,
            "ns",
            serde_json::json!({"username": user, "groups": ["team"]}),
        );
        let review: kube::core::admission::AdmissionReview<DynamicObject> =
            serde_json::from_value(review).expect("a review");
        review.try_into().expect("a request")
    }

    /// Applies the record patch to `object` as the API server would.
    fn admitted(object: &Value, request: &AdmissionRequest<DynamicObject>) -> Value {
        let mut out = object.clone();
        if let Some(op) = record_patch(&key(), request, object, &[]) {
            json_patch::patch(&mut out, &[op]).expect("the patch applies");
        }
        out
    }

    fn author(object: &Value) -> Option<String> {
        let spec = ResourceScalingGroupSpec::deserialize(&object["spec"]).ok()?;
        let record = object["metadata"]["annotations"][ANNOTATION_ADMISSION_RECORD].as_str();
        verify(&key(), "ns", "g", &spec, record).ok()?.username
    }

    #[test]
    fn a_create_records_the_requester_whatever_record_it_brings() {
        for annotations in [
            Value::Null,
            serde_json::json!({"team": "a"}),
            serde_json::json!({ANNOTATION_ADMISSION_RECORD: "forged"}),
        ] {
            let object = rsg(annotations, "model");
            let stored = admitted(&object, &request("alice", &object, None));
            assert_eq!(author(&stored).as_deref(), Some("alice"), "{stored}");
            if object["metadata"]["annotations"]["team"] == "a" {
                assert_eq!(stored["metadata"]["annotations"]["team"], "a");
            }
            // Applying the webhook again changes nothing.
            assert!(record_patch(&key(), &request("alice", &stored, None), &stored, &[]).is_none());
        }
    }

    #[test]
    fn an_update_keeps_the_author_unless_it_changes_the_signed_spec() {
        let object = rsg(Value::Null, "model");
        let stored = admitted(&object, &request("alice", &object, None));
        // Bob labels it, tampering with the record on the way: alice stays the author.
        let mut labelled = stored.clone();
        labelled["metadata"]["labels"] = serde_json::json!({"x": "y"});
        labelled["metadata"]["annotations"][ANNOTATION_ADMISSION_RECORD] = "tampered".into();
        let after = admitted(&labelled, &request("bob", &labelled, Some(&stored)));
        assert_eq!(author(&after).as_deref(), Some("alice"));
        // Bob scales it through the main resource: the count is not signed, alice stays.
        let mut scaled = stored.clone();
        scaled["spec"]["scalingStrategy"]["groupConfig"]["replicas"] = 5.into();
        let after = admitted(&scaled, &request("bob", &scaled, Some(&stored)));
        assert_eq!(author(&after).as_deref(), Some("alice"));
        // Bob changes a target: bob becomes the author.
        let mut retargeted = stored.clone();
        retargeted["spec"]["targetResources"][0]["resourceRef"]["name"] = "other".into();
        let after = admitted(&retargeted, &request("bob", &retargeted, Some(&stored)));
        assert_eq!(author(&after).as_deref(), Some("bob"));
    }

    #[test]
    fn an_unreadable_spec_gets_no_record() {
        let mut object = rsg(Value::Null, "model");
        object["spec"]["targetResources"] = "x".into();
        assert!(record_patch(&key(), &request("alice", &object, None), &object, &[]).is_none());
    }
}
