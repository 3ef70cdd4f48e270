//! Bulk actions on the Activity Log: what a selection is (chosen ids, or
//! every event matching a filter), the export formats, and the answers of
//! the export and deletion server functions.

use crate::errors::AppError;
use crate::models::format_count;
use crate::query::EventQuery;
use serde::{Deserialize, Serialize};

/// Most ids in a selection by ids (a larger one is a selection by filter).
pub const MAX_SELECTED_IDS: usize = 10_000;
/// Deleting more events than this asks to type the count.
pub const TYPE_TO_CONFIRM_OVER: u64 = 1_000;
/// Most events in a PDF report (CSV and JSON Lines have no limit).
pub const MAX_PDF_ROWS: u64 = 20_000;

/// What a bulk action applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Selection {
    /// These events, chosen one by one.
    Ids(Vec<i64>),
    /// Every event that matches this view's filters (its page and sort are ignored).
    Filter(Box<EventQuery>),
}

impl Selection {
    /// Checks a selection that arrived from outside.
    pub fn validate(&self) -> Result<(), AppError> {
        match self {
            Self::Ids(ids) => validate_ids(ids),
            Self::Filter(q) => q.validate(),
        }
    }

    /// How the selection reads in an audit event: `ids 3, 9, 12` or
    /// `filter action=LOGIN&range=7d` (`filter: every event` when unfiltered).
    pub fn describe(&self) -> String {
        match self {
            Self::Ids(ids) => describe_ids(ids),
            Self::Filter(q) => {
                // Only the filters: page, size and order do not change what matches.
                let q = EventQuery {
                    refresh: None,
                    per_page: crate::query::DEFAULT_PAGE_SIZE,
                    sort: crate::query::SortColumn::Date,
                    descending: true,
                    ..(**q).clone().first_page()
                };
                let text = q.to_query_string();
                if text.is_empty() {
                    "filter: every event".to_string()
                } else {
                    format!("filter {}", text.trim_start_matches('?'))
                }
            }
        }
    }
}

/// Checks a selection by ids: some, not too many, all positive.
fn validate_ids(ids: &[i64]) -> Result<(), AppError> {
    if ids.is_empty() {
        return Err(AppError::bad_request("selection: no events are selected"));
    }
    if ids.len() > MAX_SELECTED_IDS {
        return Err(AppError::bad_request(format!(
            "selection: at most {} events by id; select by filter instead",
            format_count(MAX_SELECTED_IDS as u64)
        )));
    }
    if let Some(bad) = ids.iter().find(|id| **id <= 0) {
        return Err(AppError::bad_request(format!(
            "selection: {bad} is not an event id"
        )));
    }
    Ok(())
}

/// `ids 3, 9, 12`, the first twenty and how many more.
fn describe_ids(ids: &[i64]) -> String {
    let shown: Vec<String> = ids.iter().take(20).map(i64::to_string).collect();
    let more = if ids.len() > 20 {
        format!(" and {} more", ids.len() - 20)
    } else {
        String::new()
    };
    format!("ids {}{more}", shown.join(", "))
}

/// A selection on Admin Sessions: chosen records, or every record that
/// matches the page's filters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionSelection {
    Ids(Vec<i64>),
    Filter(Box<crate::session_query::SessionQuery>),
}

/// What an export holds: events, or Admin Sessions records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExportSource {
    Events(Selection),
    Sessions(SessionSelection),
}

impl SessionSelection {
    pub fn validate(&self) -> Result<(), AppError> {
        match self {
            Self::Ids(ids) => validate_ids(ids),
            Self::Filter(q) => q.validate(),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Ids(ids) => describe_ids(ids),
            Self::Filter(q) => {
                let q = crate::session_query::SessionQuery {
                    refresh: None,
                    per_page: crate::query::DEFAULT_PAGE_SIZE,
                    ..(**q).clone().first_page()
                };
                let text = q.to_query_string();
                if text.is_empty() {
                    "filter: every request".to_string()
                } else {
                    format!("filter {}", text.trim_start_matches('?'))
                }
            }
        }
    }
}

impl ExportSource {
    pub fn validate(&self) -> Result<(), AppError> {
        match self {
            Self::Events(s) => s.validate(),
            Self::Sessions(s) => s.validate(),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Events(s) => s.describe(),
            Self::Sessions(s) => format!("Admin Sessions, {}", s.describe()),
        }
    }

    /// What one entry is called.
    pub fn nouns(&self) -> (&'static str, &'static str) {
        match self {
            Self::Events(_) => ("event", "events"),
            Self::Sessions(_) => ("request", "requests"),
        }
    }
}

/// The formats an export can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExportFormat {
    Csv,
    JsonLines,
    Pdf,
}

impl ExportFormat {
    pub const ALL: [ExportFormat; 3] = [Self::Csv, Self::JsonLines, Self::Pdf];

    pub fn label(self) -> &'static str {
        match self {
            Self::Csv => "CSV",
            Self::JsonLines => "JSON Lines",
            Self::Pdf => "PDF",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::JsonLines => "jsonl",
            Self::Pdf => "pdf",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::JsonLines => "application/x-ndjson",
            Self::Pdf => "application/pdf",
        }
    }
}

/// An export the server has prepared; the browser downloads it from
/// `/api/exports/{token}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportTicket {
    pub token: String,
    /// Events it will hold.
    pub total: u64,
    pub format: ExportFormat,
}

impl ExportTicket {
    pub fn url(&self) -> String {
        format!("/api/exports/{}", self.token)
    }
}

/// How far an export has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ExportStatus {
    pub rows: u64,
    pub total: u64,
    pub started: bool,
    pub done: bool,
    pub cancelled: bool,
    pub failed: bool,
}

impl ExportStatus {
    pub fn finished(&self) -> bool {
        self.done || self.cancelled || self.failed
    }

    /// 0 to 100.
    pub fn percent(&self) -> u64 {
        match (self.rows.min(self.total) * 100).checked_div(self.total) {
            Some(percent) => percent,
            None if self.done => 100,
            None => 0,
        }
    }
}

/// What a deletion would remove, for the confirmation: the exact count, and
/// the newest id it may touch (events that arrive later are never part of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionPlan {
    pub count: u64,
    pub up_to_id: i64,
}

impl DeletionPlan {
    /// Whether the confirmation asks to type the count.
    pub fn needs_typed_count(&self) -> bool {
        self.count > TYPE_TO_CONFIRM_OVER
    }
}

/// A finished deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionDone {
    pub deleted: u64,
    /// The event that records the deletion.
    pub event_id: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selections_are_checked_and_described() {
        assert!(Selection::Ids(vec![]).validate().is_err());
        assert!(Selection::Ids(vec![3, -1]).validate().is_err());
        assert!(Selection::Ids(vec![1; MAX_SELECTED_IDS + 1])
            .validate()
            .is_err());
        assert!(Selection::Ids(vec![4, 9]).validate().is_ok());
        assert_eq!(Selection::Ids(vec![4, 9]).describe(), "ids 4, 9");
        let many = Selection::Ids((1..=25).collect()).describe();
        assert!(many.ends_with("20 and 5 more"), "{many}");
        let q = EventQuery {
            actions: vec!["LOGIN".into()],
            range: Some("7d".into()),
            page: 4,
            per_page: 100,
            sort: crate::query::SortColumn::Ip,
            ..EventQuery::default()
        };
        assert_eq!(
            Selection::Filter(Box::new(q)).describe(),
            "filter action=LOGIN&range=7d"
        );
        assert_eq!(
            Selection::Filter(Box::default()).describe(),
            "filter: every event"
        );
        let bad = EventQuery {
            per_page: 7,
            ..EventQuery::default()
        };
        assert!(Selection::Filter(Box::new(bad)).validate().is_err());
    }

    #[test]
    fn progress_and_confirmation_thresholds() {
        let s = ExportStatus {
            rows: 50,
            total: 200,
            ..ExportStatus::default()
        };
        assert_eq!(s.percent(), 25);
        assert!(!s.finished());
        let plan = |count| DeletionPlan { count, up_to_id: 9 };
        assert!(!plan(1_000).needs_typed_count());
        assert!(plan(1_001).needs_typed_count());
    }
}
