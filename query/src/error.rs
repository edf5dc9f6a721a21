//! How API errors become HTTP responses: one place per API shape.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use triad_model::store::StoreError;

/// An error of the query APIs.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A parameter is missing or malformed (400).
    #[error("{0}")]
    BadRequest(String),
    /// The thing asked for does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// Storage failed (500); the detail is logged, not sent.
    #[error("internal error")]
    Internal(String),
    /// A limit that passes (concurrency): try again later (429).
    #[error("{0}")]
    TooMany(String),
}

/// Result of an API handler.
pub type ApiResult<T> = Result<T, ApiError>;

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::InvalidQuery(m) => ApiError::BadRequest(format!("invalid query: {m}")),
            StoreError::Internal(m) => ApiError::Internal(m),
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    fn log(&self) {
        if let ApiError::Internal(detail) = self {
            tracing::error!(error = %detail, "query failed");
        }
    }

    /// Jaeger's error envelope: `{data: null, total: 0, limit: 0, offset: 0, errors: [{code, msg}]}`.
    pub fn into_jaeger(self) -> Response {
        self.log();
        let status = self.status();
        let body = serde_json::json!({
            "data": null, "total": 0, "limit": 0, "offset": 0,
            "errors": [{"code": status.as_u16(), "msg": self.to_string()}],
        });
        (status, Json(body)).into_response()
    }
}

/// The plain JSON error shape of the log, Tempo and Alertmanager APIs:
/// `{"error": "..."}`.
pub fn json_error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({"error": message.into()}))).into_response()
}

/// The log API's error shape: `{"error": "..."}`.
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log();
        json_error(self.status(), self.to_string())
    }
}
