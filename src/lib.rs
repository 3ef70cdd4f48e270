//! Auditdeck: an audit trail service with an interactive admin dashboard.
//!
//! One crate, two builds: `ssr` (the axum server) and `hydrate` (the browser).

pub mod alerts;
pub mod app;
pub mod bulk;
pub mod charts;
pub mod components;
pub mod dates;
pub mod errors;
pub mod functions;
pub mod integrity;
pub mod models;
pub mod query;
pub mod routes;
pub mod session_query;
pub mod streams;

#[cfg(feature = "ssr")]
pub mod server;

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    // Loads the current page's chunk, then hydrates.
    leptos::mount::hydrate_lazy(app::App);
}
