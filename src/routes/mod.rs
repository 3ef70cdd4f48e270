//! Pages, one module each.

pub mod activity_log;
pub mod admin_sessions;
pub mod alert_digest;
pub mod alerts;
pub mod integrity;
pub mod login;
pub mod not_found;
pub mod overview;
pub mod settings_alerts;
pub mod settings_api_keys;
pub mod settings_retention;
pub mod settings_streams;
pub mod settings_users;
