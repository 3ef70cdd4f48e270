//! Server-only code: configuration, storage, the ingest API, demo data.

pub mod api_keys;
pub mod config;
pub mod demo;
pub mod ingest;
pub mod state;
pub mod store;

use crate::app::{shell, App};
use axum::response::Redirect;
use axum::routing::{get, post};
use axum::Router;
use leptos_axum::{generate_route_list, LeptosRoutes};
use state::AppState;
use tower_http::compression::CompressionLayer;

/// The whole HTTP application: ingest API, server functions, pages and assets.
pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let options = state.leptos_options.clone();
    Router::new()
        .route("/", get(|| async { Redirect::to("/activity-log") }))
        .route("/api/v1/events", post(ingest::ingest_events))
        .leptos_routes(&state, routes, move || shell(options.clone()))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(CompressionLayer::new())
        .with_state(state)
}
