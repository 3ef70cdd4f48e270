//! Reusable pieces of UI.

pub mod activity_chart;
pub mod auto_refresh;
pub mod bulk;
pub mod error_notice;
pub mod form_message;
pub mod integrity_badge;
pub mod layout;
pub mod modal;
pub mod pager;
pub mod poll;
pub mod range_picker;
pub mod selection;
pub mod sort_header;
pub mod theme;
pub mod zone;
