//! Types shared by the server and the browser, and the plain logic around them.

use crate::errors::AppError;
use serde::{Deserialize, Serialize};

/// Page sizes offered by the page-size selector.
pub const PAGE_SIZES: [u32; 5] = [10, 25, 50, 100, 250];
pub const DEFAULT_PAGE_SIZE: u32 = 25;

/// What a signed-in person may do. Each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads the logs.
    Viewer,
    /// Reads and exports.
    Auditor,
    /// Everything: deletion, settings, users, API keys.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Self::Viewer, Self::Auditor, Self::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Auditor => "auditor",
            Self::Admin => "admin",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == value)
    }

    /// Whether this role may do what `needed` may.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Viewer => "Viewer",
            Self::Auditor => "Auditor",
            Self::Admin => "Admin",
        }
    }
}

/// The signed-in user, as the browser sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub id: i64,
    pub username: String,
    pub name: String,
    pub email: String,
    pub role: Role,
}

/// A row of Settings → Users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRow {
    pub user: UserInfo,
    pub disabled: bool,
    /// Microseconds since the epoch.
    pub created_at: i64,
}

/// A row of Settings → API keys (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRow {
    pub id: i64,
    pub label: String,
    /// The first characters of the key, to recognise it.
    pub prefix: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// Where to go after signing in: only a path on this site, else the Activity Log.
pub fn safe_next_path(next: Option<&str>) -> String {
    match next.map(str::trim) {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.starts_with("/\\")
                && !p.starts_with("/login")
                && p.is_ascii()
                && !p.chars().any(|c| c.is_ascii_control()) =>
        {
            p.to_string()
        }
        _ => "/activity-log".to_string(),
    }
}

/// Who caused an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InitiatorKind {
    User,
    System,
    ApiKey,
    Portal,
}

impl InitiatorKind {
    pub const ALL: [InitiatorKind; 4] = [Self::User, Self::System, Self::ApiKey, Self::Portal];

    /// The name stored in the database and used in the ingest API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::System => "system",
            Self::ApiKey => "api_key",
            Self::Portal => "portal",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == value)
    }

    /// How the kind is shown when the initiator has no name.
    pub fn label(self) -> &'static str {
        match self {
            Self::User => "User",
            Self::System => "System",
            Self::ApiKey => "API key",
            Self::Portal => "Portal",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Initiator {
    pub kind: InitiatorKind,
    pub id: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
}

impl Initiator {
    /// The first line shown in the Initiator column.
    pub fn display_name(&self) -> String {
        match (&self.name, self.kind) {
            (Some(name), InitiatorKind::User) => name.clone(),
            (Some(name), kind) => format!("{}: {name}", kind.label()),
            (None, kind) => kind.label().to_string(),
        }
    }
}

/// The actions every client knows; any other upper-case verb is accepted too.
pub const COMMON_ACTIONS: [&str; 7] = [
    "CREATE",
    "UPDATE",
    "DELETE",
    "LOGIN",
    "LOGIN_FAILED",
    "LOGOUT",
    "EXPORT",
];

/// One row of the Activity Log table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRow {
    pub id: i64,
    /// Microseconds since the Unix epoch, UTC.
    pub occurred_at: i64,
    pub ip: Option<String>,
    pub initiator: Initiator,
    pub action: String,
    pub table_name: Option<String>,
    pub primary_key: Option<String>,
    pub description: String,
    /// Whether before or after data exists (the row offers View Difference).
    pub has_changes: bool,
}

/// One page of the Activity Log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventPage {
    pub rows: Vec<EventRow>,
    /// Number of events matching the query.
    pub total: u64,
    pub page: u32,
    pub per_page: u32,
}

impl EventPage {
    pub fn page_count(&self) -> u32 {
        page_count(self.total, self.per_page)
    }
}

pub fn page_count(total: u64, per_page: u32) -> u32 {
    let per_page = u64::from(per_page.max(1));
    u32::try_from(total.div_ceil(per_page).max(1)).unwrap_or(u32::MAX)
}

/// What the Activity Log shows: travels from the URL to the server function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EventQuery {
    /// 1-based page number.
    pub page: u32,
    pub per_page: u32,
}

impl Default for EventQuery {
    fn default() -> Self {
        Self {
            page: 1,
            per_page: DEFAULT_PAGE_SIZE,
        }
    }
}

impl EventQuery {
    /// Reads the query from URL parameters (`page`, `size`); a missing
    /// parameter takes its default, a malformed one is an error naming it.
    pub fn from_params<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<Self, AppError> {
        let mut query = Self::default();
        if let Some(page) = get("page") {
            query.page = match page.trim().parse::<u32>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    return Err(AppError::bad_request(format!(
                        "page: \"{page}\" is not a page number (1, 2, 3, ...)"
                    )))
                }
            };
        }
        if let Some(size) = get("size") {
            query.per_page = match size.trim().parse::<u32>() {
                Ok(n) if PAGE_SIZES.contains(&n) => n,
                _ => {
                    return Err(AppError::bad_request(format!(
                        "size: \"{size}\" is not a page size; choose one of {}",
                        PAGE_SIZES.map(|s| s.to_string()).join(", ")
                    )))
                }
            };
        }
        Ok(query)
    }

    /// Checks a query that arrived at the server (it may not come from our UI).
    pub fn validate(&self) -> Result<(), AppError> {
        if self.page == 0 {
            return Err(AppError::bad_request("page: must be 1 or more"));
        }
        if !PAGE_SIZES.contains(&self.per_page) {
            return Err(AppError::bad_request(format!(
                "size: {} is not a page size",
                self.per_page
            )));
        }
        Ok(())
    }

    /// The query string that shows this view (defaults left out).
    pub fn to_query_string(&self) -> String {
        let mut parts = Vec::new();
        if self.page != 1 {
            parts.push(format!("page={}", self.page));
        }
        if self.per_page != DEFAULT_PAGE_SIZE {
            parts.push(format!("size={}", self.per_page));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    }

    pub fn with_page(self, page: u32) -> Self {
        Self {
            page: page.max(1),
            ..self
        }
    }

    /// A new page size starts again at the first page.
    pub fn with_page_size(self, per_page: u32) -> Self {
        Self { per_page, page: 1 }
    }

    pub fn offset(&self) -> u64 {
        u64::from(self.page.saturating_sub(1)) * u64::from(self.per_page)
    }
}

/// Formats microseconds since the epoch as `2025-10-27 12:00:00.123` (UTC).
pub fn format_utc(micros: i64) -> String {
    match chrono::DateTime::from_timestamp_micros(micros) {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
        None => "invalid time".to_string(),
    }
}

/// RFC 3339 form of microseconds since the epoch, for `<time datetime>`.
pub fn format_rfc3339(micros: i64) -> String {
    match chrono::DateTime::from_timestamp_micros(micros) {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        None => String::new(),
    }
}

/// `1234567` as `1,234,567`.
pub fn format_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The page numbers a pager shows around `page`: the first, the last, two on
/// each side of the current one, and `None` for each gap.
pub fn page_window(page: u32, page_count: u32) -> Vec<Option<u32>> {
    let page = page.clamp(1, page_count.max(1));
    let low = page.saturating_sub(2).max(1);
    let high = (page + 2).min(page_count.max(1));
    let mut out = Vec::new();
    if low > 1 {
        out.push(Some(1));
        if low > 2 {
            out.push(None);
        }
    }
    out.extend((low..=high).map(Some));
    if high < page_count {
        if high + 1 < page_count {
            out.push(None);
        }
        out.push(Some(page_count));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> + 'a {
        move |key| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    #[test]
    fn query_defaults_when_params_missing() {
        assert_eq!(
            EventQuery::from_params(params(&[])).unwrap(),
            EventQuery::default()
        );
    }

    #[test]
    fn query_reads_page_and_size() {
        let q = EventQuery::from_params(params(&[("page", "3"), ("size", "100")])).unwrap();
        assert_eq!(
            q,
            EventQuery {
                page: 3,
                per_page: 100
            }
        );
        assert_eq!(q.offset(), 200);
        assert_eq!(q.to_query_string(), "?page=3&size=100");
    }

    #[test]
    fn query_rejects_malformed_params_naming_them() {
        for (key, value) in [
            ("page", "0"),
            ("page", "x"),
            ("page", "-1"),
            ("size", "7"),
            ("size", ""),
        ] {
            let err = EventQuery::from_params(params(&[(key, value)])).unwrap_err();
            assert!(
                matches!(&err, AppError::BadRequest(m) if m.starts_with(key)),
                "{err:?}"
            );
        }
    }

    #[test]
    fn query_string_round_trips() {
        for q in [
            EventQuery::default(),
            EventQuery {
                page: 9,
                per_page: 10,
            },
            EventQuery {
                page: 1,
                per_page: 250,
            },
        ] {
            let s = q.to_query_string();
            let pairs: Vec<(String, String)> = s
                .trim_start_matches('?')
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap();
                    (k.to_string(), v.to_string())
                })
                .collect();
            let back = EventQuery::from_params(|key| {
                pairs
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.as_str())
            })
            .unwrap();
            assert_eq!(back, q);
        }
    }

    #[test]
    fn page_size_change_returns_to_first_page() {
        let q = EventQuery {
            page: 7,
            per_page: 25,
        }
        .with_page_size(50);
        assert_eq!(
            q,
            EventQuery {
                page: 1,
                per_page: 50
            }
        );
    }

    #[test]
    fn page_count_rounds_up_and_is_never_zero() {
        assert_eq!(page_count(0, 25), 1);
        assert_eq!(page_count(25, 25), 1);
        assert_eq!(page_count(26, 25), 2);
        assert_eq!(page_count(100_000, 250), 400);
    }

    #[test]
    fn roles_are_ordered_by_what_they_allow() {
        assert!(Role::Admin.allows(Role::Auditor));
        assert!(Role::Auditor.allows(Role::Viewer));
        assert!(Role::Viewer.allows(Role::Viewer));
        assert!(!Role::Viewer.allows(Role::Auditor));
        assert!(!Role::Auditor.allows(Role::Admin));
        assert_eq!(Role::parse("auditor"), Some(Role::Auditor));
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn next_path_stays_on_this_site() {
        assert_eq!(
            safe_next_path(Some("/activity-log?page=2")),
            "/activity-log?page=2"
        );
        for bad in [
            None,
            Some(""),
            Some("https://evil.example/"),
            Some("//evil.example"),
            Some("/\\evil"),
            Some("/login"),
            Some("javascript:alert(1)"),
        ] {
            assert_eq!(safe_next_path(bad), "/activity-log", "{bad:?}");
        }
    }

    #[test]
    fn counts_get_thousands_separators() {
        assert_eq!(format_count(0), "0");
        assert_eq!(format_count(999), "999");
        assert_eq!(format_count(1000), "1,000");
        assert_eq!(format_count(1_234_567), "1,234,567");
    }

    #[test]
    fn page_window_shows_ends_neighbours_and_gaps() {
        assert_eq!(page_window(1, 1), vec![Some(1)]);
        assert_eq!(page_window(1, 3), vec![Some(1), Some(2), Some(3)]);
        assert_eq!(
            page_window(1, 10),
            vec![Some(1), Some(2), Some(3), None, Some(10)]
        );
        assert_eq!(
            page_window(6, 10),
            vec![
                Some(1),
                None,
                Some(4),
                Some(5),
                Some(6),
                Some(7),
                Some(8),
                None,
                Some(10)
            ]
        );
        assert_eq!(
            page_window(10, 10),
            vec![Some(1), None, Some(8), Some(9), Some(10)]
        );
        assert_eq!(
            page_window(4, 10),
            vec![
                Some(1),
                Some(2),
                Some(3),
                Some(4),
                Some(5),
                Some(6),
                None,
                Some(10)
            ]
        );
    }

    #[test]
    fn times_format_in_utc_with_milliseconds() {
        assert_eq!(format_utc(1_761_566_400_123_456), "2025-10-27 12:00:00.123");
        assert_eq!(
            format_rfc3339(1_761_566_400_123_456),
            "2025-10-27T12:00:00.123456Z"
        );
    }

    #[test]
    fn initiator_display_names() {
        let mut i = Initiator {
            kind: InitiatorKind::System,
            id: None,
            name: None,
            email: None,
        };
        assert_eq!(i.display_name(), "System");
        i.kind = InitiatorKind::ApiKey;
        i.name = Some("billing".into());
        assert_eq!(i.display_name(), "API key: billing");
        i.kind = InitiatorKind::User;
        i.name = Some("Ann Lee".into());
        assert_eq!(i.display_name(), "Ann Lee");
        assert_eq!(InitiatorKind::parse("api_key"), Some(InitiatorKind::ApiKey));
        assert_eq!(InitiatorKind::parse("robot"), None);
    }
}
