//! Server functions: the browser's only way to the data. Each checks the
//! signed-in user's role on the server (see the README's table).

pub mod alerts;
pub mod auth;
pub mod bulk;
pub mod events;
pub mod integrity;
pub mod sessions;
pub mod settings;
pub mod streams;
