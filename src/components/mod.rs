//! Reusable pieces of UI.

pub mod error_notice;
pub mod layout;
pub mod pager;
