//! The one error type of the app. It crosses the server-function boundary as
//! JSON, so its text is what a user sees: database error text never goes in it.

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum AppError {
    /// Input that cannot be accepted; the text names the field and the reason.
    #[error("{0}")]
    BadRequest(String),
    /// Missing or wrong credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Signed in, but the role does not allow this.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(String),
    /// The request no longer fits the data (it changed since it was shown).
    #[error("{0}")]
    Conflict(String),
    #[error("the request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Well-formed, but in conflict with what was sent before (an
    /// idempotency key reused for another body).
    #[error("{0}")]
    Unprocessable(String),
    /// Too many attempts (failed sign-ins); the text says when to retry.
    #[error("{0}")]
    TooManyRequests(String),
    /// Anything that went wrong inside the server. The details are logged, not shown.
    #[error("internal error; the details are in the server log")]
    Internal,
    /// The request never reached the server function, or its answer was unreadable.
    #[error("could not reach the server: {0}")]
    Transport(String),
}

impl AppError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }

    /// The HTTP status this error is answered with.
    pub fn status_code(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::Unauthorized(_) => 401,
            Self::Forbidden(_) => 403,
            Self::NotFound(_) => 404,
            Self::Conflict(_) => 409,
            Self::PayloadTooLarge(_) => 413,
            Self::UnsupportedMediaType(_) => 415,
            Self::Unprocessable(_) => 422,
            Self::TooManyRequests(_) => 429,
            Self::Internal | Self::Transport(_) => 500,
        }
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            ServerFnErrorErr::Args(message) => Self::BadRequest(message),
            other => Self::Transport(other.to_string()),
        }
    }
}

#[cfg(feature = "ssr")]
mod server {
    use super::AppError;
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};

    impl From<sqlx::Error> for AppError {
        fn from(error: sqlx::Error) -> Self {
            tracing::error!(%error, "database error");
            AppError::Internal
        }
    }

    impl From<sqlx::migrate::MigrateError> for AppError {
        fn from(error: sqlx::migrate::MigrateError) -> Self {
            tracing::error!(%error, "migration error");
            AppError::Internal
        }
    }

    impl IntoResponse for AppError {
        fn into_response(self) -> Response {
            let status = StatusCode::from_u16(self.status_code())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = serde_json::json!({ "error": self.to_string() });
            let mut response = (status, axum::Json(body)).into_response();
            if status == StatusCode::UNAUTHORIZED {
                response.headers_mut().insert(
                    axum::http::header::WWW_AUTHENTICATE,
                    axum::http::HeaderValue::from_static("Bearer"),
                );
            }
            response
        }
    }
}

pub type AppResult<T> = Result<T, AppError>;
