//! The one place that reads HTTP status codes out of API errors.

/// `404 Not Found`.
pub const NOT_FOUND: u16 = 404;
/// `409 Conflict` (already exists, or a stale resourceVersion).
pub const CONFLICT: u16 = 409;
/// `403 Forbidden` (RBAC).
pub const FORBIDDEN: u16 = 403;

/// The status code of an error the API server answered with.
pub fn status_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// The object does not exist.
pub fn is_not_found(err: &kube::Error) -> bool {
    status_code(err) == Some(NOT_FOUND)
}

/// The object exists already, or changed since it was read.
pub fn is_conflict(err: &kube::Error) -> bool {
    status_code(err) == Some(CONFLICT)
}

/// RBAC refused the request.
pub fn is_forbidden(err: &kube::Error) -> bool {
    status_code(err) == Some(FORBIDDEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(
            kube::core::Status::failure("answered", "Reason").with_code(code),
        ))
    }

    #[test]
    fn codes_are_read_from_api_errors_only() {
        assert!(is_not_found(&api_error(404)));
        assert!(is_conflict(&api_error(409)));
        assert!(is_forbidden(&api_error(403)));
        assert!(!is_forbidden(&api_error(401)));
        assert_eq!(
            status_code(&kube::Error::LinesCodecMaxLineLengthExceeded),
            None
        );
    }
}
