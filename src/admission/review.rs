//! Reading AdmissionReviews from request bodies and writing responses.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube::core::DynamicObject;

/// Why a request body is not an AdmissionReview with a request in it.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The body is not a JSON AdmissionReview.
    #[error("the body is not a valid AdmissionReview: {0}")]
    Malformed(#[from] serde_json::Error),
    /// The AdmissionReview carries no `request`.
    #[error("the AdmissionReview has no request")]
    MissingRequest,
}

impl IntoResponse for ReviewError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.to_string()});
        (StatusCode::BAD_REQUEST, Json(body)).into_response()
    }
}

/// Decodes the body of an admission call.
pub fn decode(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, ReviewError> {
    let review: AdmissionReview<DynamicObject> = serde_json::from_slice(body)?;
    review.try_into().map_err(|_| ReviewError::MissingRequest)
}

/// The HTTP response carrying an AdmissionResponse.
pub fn respond(response: AdmissionResponse) -> Response {
    Json(response.into_review()).into_response()
}

/// A denial with HTTP status code `code` in the returned Status.
pub fn deny(
    request: &AdmissionRequest<DynamicObject>,
    code: u16,
    message: impl ToString,
) -> AdmissionResponse {
    let mut response = AdmissionResponse::from(request).deny(message);
    response.result.code = code;
    response
}
