use super::config::AppConfig;
use super::store::Db;
use crate::errors::{AppError, AppResult};
use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use leptos::prelude::use_context;
use std::sync::Arc;

/// Everything a request handler or server function needs.
#[derive(Clone, Debug, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub db: Db,
    pub config: Arc<AppConfig>,
    /// Where requests hand their Admin Sessions records.
    pub recorder: super::recorder::Recorder,
    /// Exports prepared and running.
    pub exports: Arc<super::export::Exports>,
    /// The read API's rate limits and the tally of its reads.
    pub api: Arc<super::read_api::ApiGuard>,
}

/// The state, from inside a server function.
pub fn app_state() -> AppResult<AppState> {
    use_context::<AppState>().ok_or_else(|| {
        tracing::error!("AppState missing from the server-function context");
        AppError::Internal
    })
}
