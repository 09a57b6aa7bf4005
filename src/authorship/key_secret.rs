//! The I/O edge of the admission key: a Secret in rsg's own namespace, made by the first
//! replica that finds none (32 random bytes) and read by every other, so that a record the
//! webhook of one replica signs verifies in the leader. Deleting the Secret (and restarting
//! rsg) makes a new key: every RSG then has to be applied again.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use ring::rand::{SecureRandom, SystemRandom};

use super::record::{AdmissionKey, RecordError, KEY_BYTES};

/// The Secret's data key that holds the key.
const DATA_KEY: &str = "key";

/// Why the key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or creating the Secret failed.
    #[error("reading or creating the admission key Secret {namespace}/{name}: {source}")]
    Api {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    /// The Secret holds no usable key.
    #[error("the admission key Secret {namespace}/{name} has no usable data.{DATA_KEY}: {source}")]
    Unusable {
        namespace: String,
        name: String,
        source: RecordError,
    },
    /// The system's random source failed.
    #[error("no random bytes for a new admission key")]
    Random,
}

/// The key in Secret `namespace/name`, made first if there is none.
pub async fn load_or_create(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<AdmissionKey, KeyError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let api_error = |source| KeyError::Api {
        namespace: namespace.to_string(),
        name: name.to_string(),
        source,
    };
    let secret = match api.get_opt(name).await.map_err(api_error)? {
        Some(secret) => secret,
        None => {
            let mut bytes = [0u8; KEY_BYTES];
            SystemRandom::new()
                .fill(&mut bytes)
                .map_err(|_| KeyError::Random)?;
            let fresh = Secret {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    namespace: Some(namespace.to_string()),
                    labels: Some(BTreeMap::from([(
                        "app.kubernetes.io/name".to_string(),
                        "rsg".to_string(),
                    )])),
                    ..Default::default()
                },
                type_: Some("Opaque".into()),
                data: Some(BTreeMap::from([(
                    DATA_KEY.to_string(),
                    ByteString(bytes.to_vec()),
                )])),
                ..Default::default()
            };
            match api.create(&PostParams::default(), &fresh).await {
                Ok(created) => {
                    tracing::info!(%namespace, %name, "made a new admission key");
                    created
                }
                // Another replica made it first: use its key.
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    api.get(name).await.map_err(api_error)?
                }
                Err(err) => return Err(api_error(err)),
            }
        }
    };
    let bytes = secret
        .data
        .as_ref()
        .and_then(|data| data.get(DATA_KEY))
        .map(|b| b.0.as_slice())
        .unwrap_or_default();
    AdmissionKey::from_bytes(bytes).map_err(|source| KeyError::Unusable {
        namespace: namespace.to_string(),
        name: name.to_string(),
        source,
    })
}
