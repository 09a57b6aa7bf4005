//! The admission record: the identity of the user whose request last changed an RSG's spec,
//! bound to the RSG's namespace, name and spec by an HMAC-SHA256 under a key only rsg holds.
//! rsg's mutating webhook writes it into [`ANNOTATION_ADMISSION_RECORD`]; the controller
//! verifies it before acting. Nobody without the key can write a record that verifies, and a
//! record copied to another RSG, or kept across a spec change made without the webhook, does
//! not verify.
//!
//! The group count (`groupConfig.replicas`) is not signed: the scale subresource (HPA, KEDA,
//! `kubectl scale`) sets it without the mutating webhook, and who may scale is checked by the
//! validating webhook on the subresource.

use std::fmt;

use base64::Engine;
use k8s_openapi::api::authentication::v1::UserInfo;
use ring::hmac;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::{ResourceScalingGroupSpec, ANNOTATION_ADMISSION_RECORD};

/// Version of the record's format and of what it signs.
const RECORD_VERSION: u32 = 1;
/// The longest record read or written; a longer annotation is refused unread.
pub const MAX_RECORD_BYTES: usize = 16 * 1024;
/// The fewest bytes a key has.
pub const KEY_BYTES: usize = 32;

/// The key records are signed with. Never printed.
pub struct AdmissionKey(hmac::Key);

impl fmt::Debug for AdmissionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdmissionKey(..)")
    }
}

impl AdmissionKey {
    /// A key from its bytes (at least [`KEY_BYTES`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, RecordError> {
        if bytes.len() < KEY_BYTES {
            return Err(RecordError::KeyTooShort);
        }
        Ok(Self(hmac::Key::new(hmac::HMAC_SHA256, bytes)))
    }
}

/// What the annotation holds.
#[derive(Serialize, Deserialize)]
struct Record {
    v: u32,
    author: UserInfo,
    mac: String,
}

/// Why a record does not vouch for an RSG.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// No annotation.
    #[error("it has no admission record (annotation {ANNOTATION_ADMISSION_RECORD}): it was stored without rsg's mutating webhook, for example while the webhook was unreachable; apply it again (any change through the webhook records its author)")]
    Missing,
    /// The annotation is not a record of this version, or too long.
    #[error("its admission record (annotation {ANNOTATION_ADMISSION_RECORD}) cannot be read ({0}); apply the RSG again")]
    Unreadable(String),
    /// The signature does not match the RSG's namespace, name and spec.
    #[error("its admission record (annotation {ANNOTATION_ADMISSION_RECORD}) does not match its spec: the spec was changed, or the record copied, without rsg's mutating webhook; apply the RSG again")]
    Mismatch,
    /// The key is too short to sign with.
    #[error("the admission key has fewer than {KEY_BYTES} bytes")]
    KeyTooShort,
    /// The spec or the author could not be serialized.
    #[error("the record could not be built: {0}")]
    Unserializable(String),
}

/// The bytes a record signs: format version, namespace, name, author and the spec without
/// its group count, as canonical JSON of the typed spec (both sides serialize the same
/// types, so a field unknown to rsg or a schema default cannot make them differ).
fn signed_content(
    namespace: &str,
    name: &str,
    author: &UserInfo,
    spec: &ResourceScalingGroupSpec,
) -> Result<Vec<u8>, RecordError> {
    let unserializable = |err: serde_json::Error| RecordError::Unserializable(err.to_string());
    let mut spec = serde_json::to_value(spec).map_err(unserializable)?;
    if let Some(config) = spec
        .pointer_mut("/scalingStrategy/groupConfig")
        .and_then(Value::as_object_mut)
    {
        config.remove("replicas");
    }
    serde_json::to_vec(&serde_json::json!({
        "v": RECORD_VERSION,
        "namespace": namespace,
        "name": name,
        "author": author,
        "spec": spec,
    }))
    .map_err(unserializable)
}

fn encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The annotation value recording that `author` admitted `spec` for `namespace/name`.
pub fn sign(
    key: &AdmissionKey,
    namespace: &str,
    name: &str,
    author: &UserInfo,
    spec: &ResourceScalingGroupSpec,
) -> Result<String, RecordError> {
    let content = signed_content(namespace, name, author, spec)?;
    let record = Record {
        v: RECORD_VERSION,
        author: author.clone(),
        mac: encode(hmac::sign(&key.0, &content).as_ref()),
    };
    let value = serde_json::to_string(&record)
        .map_err(|err| RecordError::Unserializable(err.to_string()))?;
    if value.len() > MAX_RECORD_BYTES {
        return Err(RecordError::Unserializable(format!(
            "the author's identity takes more than {MAX_RECORD_BYTES} bytes"
        )));
    }
    Ok(value)
}

/// The author `annotation` names, if it verifies for `namespace/name` with `spec`.
pub fn verify(
    key: &AdmissionKey,
    namespace: &str,
    name: &str,
    spec: &ResourceScalingGroupSpec,
    annotation: Option<&str>,
) -> Result<UserInfo, RecordError> {
    let annotation = annotation.ok_or(RecordError::Missing)?;
    if annotation.len() > MAX_RECORD_BYTES {
        return Err(RecordError::Unreadable(format!(
            "longer than {MAX_RECORD_BYTES} bytes"
        )));
    }
    let record: Record =
        serde_json::from_str(annotation).map_err(|err| RecordError::Unreadable(err.to_string()))?;
    if record.v != RECORD_VERSION {
        return Err(RecordError::Unreadable(format!(
            "format version {}, rsg reads {RECORD_VERSION}",
            record.v
        )));
    }
    let mac = base64::engine::general_purpose::STANDARD
        .decode(&record.mac)
        .map_err(|err| RecordError::Unreadable(format!("mac: {err}")))?;
    let content = signed_content(namespace, name, &record.author, spec)?;
    hmac::verify(&key.0, &content, &mac).map_err(|_| RecordError::Mismatch)?;
    Ok(record.author)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> AdmissionKey {
        AdmissionKey::from_bytes(&[byte; KEY_BYTES]).expect("a key")
    }

    fn spec(replicas: i32, target: &str) -> ResourceScalingGroupSpec {
        serde_json::from_value(serde_json::json!({
            "targetResources": [{"name": "a", "resourceRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target, "namespace": "ns"}}],
            "scalingStrategy": {"type": "GroupReplication", "groupConfig": {"replicas": replicas, "groupName": "g"}},
        }))
        .expect("a valid spec")
    }

    fn alice() -> UserInfo {
        UserInfo {
            username: Some("alice".into()),
            uid: Some("u-1".into()),
            groups: Some(vec!["team".into(), "system:authenticated".into()]),
            extra: Some([("scopes".to_string(), vec!["a".to_string()])].into()),
        }
    }

    #[test]
    fn a_record_verifies_for_its_rsg_and_names_its_author() {
        let record = sign(&key(1), "ns", "g", &alice(), &spec(1, "model")).expect("signed");
        let author = verify(&key(1), "ns", "g", &spec(1, "model"), Some(&record));
        assert_eq!(author, Ok(alice()));
        // The group count is the scale subresource's: it may change without the webhook.
        assert_eq!(
            verify(&key(1), "ns", "g", &spec(7, "model"), Some(&record)),
            Ok(alice())
        );
        // Signing is deterministic, so the webhook's patch is idempotent.
        assert_eq!(
            Ok(record),
            sign(&key(1), "ns", "g", &alice(), &spec(1, "model"))
        );
    }

    #[test]
    fn a_record_does_not_verify_elsewhere_or_for_another_spec_key_or_author() {
        let record = sign(&key(1), "ns", "g", &alice(), &spec(1, "model")).expect("signed");
        for (namespace, name, spec, key) in [
            ("ns", "g", spec(1, "other"), key(1)),
            ("other", "g", spec(1, "model"), key(1)),
            ("ns", "h", spec(1, "model"), key(1)),
            ("ns", "g", spec(1, "model"), key(2)),
        ] {
            assert_eq!(
                verify(&key, namespace, name, &spec, Some(&record)),
                Err(RecordError::Mismatch),
                "{namespace}/{name}"
            );
        }
        // Another author written into the record (say, system:masters) breaks the mac.
        let mut forged: serde_json::Value = serde_json::from_str(&record).expect("json");
        forged["author"]["groups"] = serde_json::json!(["system:masters"]);
        assert_eq!(
            verify(
                &key(1),
                "ns",
                "g",
                &spec(1, "model"),
                Some(&forged.to_string())
            ),
            Err(RecordError::Mismatch)
        );
    }

    #[test]
    fn missing_unreadable_and_oversized_records_are_refused() {
        let s = spec(1, "model");
        assert_eq!(
            verify(&key(1), "ns", "g", &s, None),
            Err(RecordError::Missing)
        );
        for bad in [
            "x".to_string(),
            r#"{"v":2,"author":{},"mac":""}"#.into(),
            r#"{"v":1,"author":{},"mac":"***"}"#.into(),
            "y".repeat(MAX_RECORD_BYTES + 1),
        ] {
            assert!(
                matches!(
                    verify(&key(1), "ns", "g", &s, Some(&bad)),
                    Err(RecordError::Unreadable(_))
                ),
                "{bad:.40}"
            );
        }
        assert!(matches!(
            AdmissionKey::from_bytes(&[0; KEY_BYTES - 1]),
            Err(RecordError::KeyTooShort)
        ));
        assert_eq!(format!("{:?}", key(1)), "AdmissionKey(..)");
    }
}
