//! Server functions: the browser's only way to the data.

pub mod events;
