//! Reading AdmissionReviews from request bodies and writing responses.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
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

/// The HTTP response carrying an AdmissionResponse. A patch is written as base64 text, as Go
/// encodes a `[]byte` (kube would write an array of numbers, up to four times as long); the
/// API server reads either.
pub fn respond(mut response: AdmissionResponse) -> Response {
    let patch = response.patch.take();
    let review = response.into_review();
    let Some(patch) = patch else {
        return Json(review).into_response();
    };
    match serde_json::to_value(&review) {
        Ok(mut value) => {
            if let Some(answer) = value.get_mut("response").and_then(|r| r.as_object_mut()) {
                answer.insert(
                    "patch".into(),
                    base64::engine::general_purpose::STANDARD
                        .encode(patch)
                        .into(),
                );
            }
            Json(value).into_response()
        }
        Err(err) => {
            tracing::warn!(error = %err, "could not write the admission answer");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not write the admission answer",
            )
                .into_response()
        }
    }
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
