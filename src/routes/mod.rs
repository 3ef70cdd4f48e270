//! Pages, one module each.

pub mod activity_log;
pub mod admin_sessions;
pub mod login;
pub mod not_found;
pub mod settings_api_keys;
pub mod settings_users;
