//! Server-only code: configuration, storage, the ingest API, demo data.

pub mod alerts;
pub mod api_keys;
pub mod auth;
pub mod backup;
pub mod chain;
pub mod charts;
pub mod clock;
pub mod config;
pub mod demo;
pub mod diff;
pub mod export;
pub mod ingest;
pub mod maintenance;
pub mod openapi;
pub mod pdf_text;
pub mod read_api;
pub mod recorder;
pub mod security;
pub mod state;
pub mod store;
pub mod stream_format;
pub mod streams;

use crate::app::{shell, App};
use axum::middleware::from_fn_with_state;
use axum::response::Redirect;
use axum::routing::{get, post};
use axum::Router;
use leptos_axum::{generate_route_list, LeptosRoutes};
use state::AppState;
use tower_http::compression::predicate::{NotForContentType, Predicate};
use tower_http::compression::{CompressionLayer, DefaultPredicate};
use tower_sessions::cookie::{time::Duration, SameSite};
use tower_sessions::{Expiry, SessionManagerLayer};

/// The whole HTTP application: ingest API, server functions, pages and assets.
pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let options = state.leptos_options.clone();
    let sessions = SessionManagerLayer::new(state.db.session_store())
        .with_name("auditdeck_session")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(state.config.secure_cookies)
        .with_expiry(Expiry::OnInactivity(Duration::minutes(i64::from(
            state.config.session_idle_minutes,
        ))));
    Router::new()
        .route("/", get(|| async { Redirect::to(crate::models::HOME) }))
        .route(
            "/api/v1/events",
            post(ingest::ingest_events).get(read_api::list_events),
        )
        .route("/api/v1/events/{id}", get(read_api::get_event))
        .route("/api/v1/sessions", get(read_api::list_sessions))
        .route("/api/v1/openapi.json", get(openapi::serve))
        .route("/api/exports/{token}", get(export::download))
        .route(
            "/api/integrity/checkpoints",
            get(maintenance::download_checkpoints),
        )
        .leptos_routes_with_context(&state, routes, security::page_context, move || {
            shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            AppState,
            _,
        >(security::page_context, shell))
        .layer(from_fn_with_state(state.clone(), auth::require_sign_in))
        .layer(from_fn_with_state(state.clone(), recorder::record_requests))
        .layer(sessions)
        .layer(from_fn_with_state(state.clone(), auth::client_info))
        .layer(axum::middleware::from_fn(security::server_fn_error_status))
        .layer(axum::middleware::from_fn(security::refuse_cross_site))
        .layer(axum::middleware::from_fn(security::security_headers))
        // Exports stream at full speed, uncompressed.
        .layer(
            CompressionLayer::new().compress_when(
                DefaultPredicate::new()
                    .and(NotForContentType::const_new("text/csv"))
                    .and(NotForContentType::const_new("application/x-ndjson"))
                    .and(NotForContentType::const_new("application/pdf")),
            ),
        )
        .with_state(state)
}

/// Whether a path is one of the build's static files (the browser bundle,
/// the icon): public, never recorded, cached by their names.
pub fn is_static_asset(path: &str) -> bool {
    path.starts_with("/pkg/") || path == "/favicon.svg"
}

/// Runs a server function's body and, when it fails, answers with the
/// error's HTTP status (401, 403, 400, ...) instead of a generic 500.
pub async fn with_status<T>(
    body: impl std::future::Future<Output = crate::errors::AppResult<T>>,
) -> crate::errors::AppResult<T> {
    let result = body.await;
    if let Err(error) = &result {
        if let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
            response.set_status(
                axum::http::StatusCode::from_u16(error.status_code())
                    .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR),
            );
        }
    }
    result
}
