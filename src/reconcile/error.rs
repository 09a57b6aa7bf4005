//! Why a reconcile failed: one variant per failed action, each naming the object it acted
//! on. Such failures are retried with backoff; problems the user has to fix are
//! [`Problem`](super::Problem)s instead, reported in status.

use std::fmt;

use crate::workload::AccessError;

/// An object rsg acted on: `Deployment team-a/pd-llm-prefill-1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectName {
    /// Its kind.
    pub kind: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl ObjectName {
    /// The object `kind` `namespace/name`.
    pub fn new(kind: &str, namespace: &str, name: &str) -> Self {
        Self {
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// Why a reconcile failed (retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Reading one object failed.
    #[error("reading {object}: {source}")]
    Read {
        /// What was read.
        object: Box<ObjectName>,
        /// What failed.
        source: Box<AccessError>,
    },
    /// Listing objects failed.
    #[error("listing {kind} in namespace {namespace}: {source}")]
    List {
        /// Their kind.
        kind: String,
        /// Where.
        namespace: String,
        /// What failed.
        source: Box<AccessError>,
    },
    /// A create failed for a reason other than a conflict or RBAC (what the group made before
    /// it is rolled back).
    #[error("creating {object}: {source}")]
    Create {
        /// What was created.
        object: Box<ObjectName>,
        /// What failed.
        source: Box<AccessError>,
    },
    /// A create found the name taken by an object this RSG made that the cache does not show
    /// yet: retried once the cache catches up.
    #[error("creating {object}: it exists already, made by this RSG, but is not in the cache yet")]
    CacheBehind {
        /// What was created.
        object: Box<ObjectName>,
    },
    /// A patch (or apply) failed.
    #[error("patching {object}: {source}")]
    Patch {
        /// What was patched.
        object: Box<ObjectName>,
        /// What failed.
        source: Box<AccessError>,
    },
    /// A delete failed.
    #[error("deleting {object}: {source}")]
    Delete {
        /// What was deleted.
        object: Box<ObjectName>,
        /// What failed.
        source: Box<AccessError>,
    },
    /// Writing an RSG's status failed.
    #[error("writing the status of {object}: {source}")]
    WriteStatus {
        /// The RSG.
        object: Box<ObjectName>,
        /// What failed.
        source: kube::Error,
    },
    /// An object could not be converted to or from JSON.
    #[error("converting a {kind}: {source}")]
    Convert {
        /// Its kind.
        kind: String,
        /// What failed.
        source: serde_json::Error,
    },
}

impl ReconcileError {
    /// The failed action, as a metric or log label.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Read { .. } => "read",
            Self::List { .. } => "list",
            Self::Create { .. } | Self::CacheBehind { .. } => "create",
            Self::Patch { .. } => "patch",
            Self::Delete { .. } => "delete",
            Self::WriteStatus { .. } => "write_status",
            Self::Convert { .. } => "convert",
        }
    }

    /// For `map_err`: creating `object` failed.
    pub fn create<E: Into<AccessError>>(object: ObjectName) -> impl FnOnce(E) -> Self {
        move |err| Self::Create {
            object: Box::new(object),
            source: Box::new(err.into()),
        }
    }

    /// Creating `object` found it made by this RSG but not yet in the cache.
    pub fn cache_behind(object: ObjectName) -> Self {
        Self::CacheBehind {
            object: Box::new(object),
        }
    }

    /// Writing the status of the RSG `object` failed.
    pub fn write_status(object: ObjectName, source: kube::Error) -> Self {
        Self::WriteStatus {
            object: Box::new(object),
            source,
        }
    }

    /// For `map_err`: reading `object` failed.
    pub fn read<E: Into<AccessError>>(object: ObjectName) -> impl FnOnce(E) -> Self {
        move |err| Self::Read {
            object: Box::new(object),
            source: Box::new(err.into()),
        }
    }

    /// For `map_err`: listing `kind` in `namespace` failed.
    pub fn list<E: Into<AccessError>>(kind: &str, namespace: &str) -> impl FnOnce(E) -> Self {
        let (kind, namespace) = (kind.to_string(), namespace.to_string());
        move |err| Self::List {
            kind,
            namespace,
            source: Box::new(err.into()),
        }
    }

    /// For `map_err`: patching `object` failed.
    pub fn patch<E: Into<AccessError>>(object: ObjectName) -> impl FnOnce(E) -> Self {
        move |err| Self::Patch {
            object: Box::new(object),
            source: Box::new(err.into()),
        }
    }

    /// For `map_err`: deleting `object` failed.
    pub fn delete<E: Into<AccessError>>(object: ObjectName) -> impl FnOnce(E) -> Self {
        move |err| Self::Delete {
            object: Box::new(object),
            source: Box::new(err.into()),
        }
    }

    /// For `map_err`: converting a `kind` failed.
    pub fn convert(kind: &str) -> impl FnOnce(serde_json::Error) -> Self {
        let kind = kind.to_string();
        move |source| Self::Convert { kind, source }
    }
}

/// `object` as JSON; a failure names its kind.
pub fn to_json<T: serde::Serialize>(
    kind: &str,
    object: &T,
) -> Result<serde_json::Value, ReconcileError> {
    serde_json::to_value(object).map_err(ReconcileError::convert(kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn not_found() -> kube::Error {
        kube::Error::Api(Box::new(
            kube::core::Status::failure("gone", "NotFound").with_code(404),
        ))
    }

    #[test]
    fn every_failure_names_its_action_and_object() {
        let object = ObjectName::new("Deployment", "team-a", "pd-llm-prefill-1");
        let err = ReconcileError::delete(object.clone())(not_found());
        assert_eq!(err.action(), "delete");
        let message = err.to_string();
        assert!(
            message.starts_with("deleting Deployment team-a/pd-llm-prefill-1: ")
                && message.contains("gone"),
            "{message}"
        );
        let err = ReconcileError::list("Service", "team-a")(not_found());
        assert!(err
            .to_string()
            .starts_with("listing Service in namespace team-a: "));
        let err = ReconcileError::create(object.clone())(not_found());
        assert!(err
            .to_string()
            .starts_with("creating Deployment team-a/pd-llm-prefill-1: "));
        assert!(
            std::error::Error::source(&err).is_some(),
            "a failed create keeps the API error as its source"
        );
        let err = ReconcileError::cache_behind(object);
        assert_eq!(
            err.to_string(),
            "creating Deployment team-a/pd-llm-prefill-1: it exists already, made by this RSG, but is not in the cache yet"
        );
        assert_eq!(err.action(), "create");
    }
}
