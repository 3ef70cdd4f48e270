//! Reusable pieces of UI.

pub mod error_notice;
pub mod form_message;
pub mod layout;
pub mod pager;
