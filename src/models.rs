//! Types shared by the server and the browser, and the plain logic around them.

use serde::{Deserialize, Serialize};

pub use crate::query::{EventQuery, DEFAULT_PAGE_SIZE, PAGE_SIZES};

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

/// What an API key may do, and what Settings → API keys says of each.
pub const API_KEY_SCOPES: [(&str, &str); 3] = [
    ("events:write", "Send events (POST /api/v1/events)"),
    ("events:read", "Read the Activity Log"),
    ("sessions:read", "Read Admin Sessions"),
];

/// The scope a key needs to send events.
pub const SCOPE_EVENTS_WRITE: &str = "events:write";

/// Checks a list of scopes: known ones, at least one, each once, in the
/// order of [`API_KEY_SCOPES`].
pub fn parse_scopes<'a>(scopes: impl IntoIterator<Item = &'a str>) -> Result<Vec<String>, String> {
    let mut chosen = Vec::new();
    for scope in scopes {
        let scope = scope.trim();
        if !API_KEY_SCOPES.iter().any(|(s, _)| *s == scope) {
            let known: Vec<&str> = API_KEY_SCOPES.iter().map(|(s, _)| *s).collect();
            return Err(format!(
                "scopes: \"{scope}\" is not one of {}",
                known.join(", ")
            ));
        }
        chosen.push(scope);
    }
    let ordered: Vec<String> = API_KEY_SCOPES
        .iter()
        .map(|(s, _)| *s)
        .filter(|s| chosen.contains(s))
        .map(str::to_string)
        .collect();
    if ordered.is_empty() {
        return Err("scopes: choose at least one".into());
    }
    Ok(ordered)
}

/// A row of Settings → API keys (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRow {
    pub id: i64,
    pub label: String,
    /// The first characters of the key, to recognise it.
    pub prefix: String,
    /// What the key may do (see [`API_KEY_SCOPES`]).
    pub scopes: Vec<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// Where to go after signing in: only a path on this site, else the Activity Log.
/// The first page after sign-in.
pub const HOME: &str = "/overview";

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
        _ => HOME.to_string(),
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
    /// The initiator's role in the system that logged the event.
    pub role: Option<String>,
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

/// One page of a table. The count comes separately (it may take longer than
/// the rows on a large log).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub rows: Vec<T>,
    pub page: u32,
    pub per_page: u32,
    /// Whether rows exist before the first and after the last row shown.
    pub has_prev: bool,
    pub has_next: bool,
}

/// A row with an id: what paging, refresh highlighting and selection key on.
pub trait Keyed {
    fn key(&self) -> i64;
}

impl<T: Keyed> Page<T> {
    /// The ids of the rows, top to bottom.
    pub fn ids(&self) -> Vec<i64> {
        self.rows.iter().map(Keyed::key).collect()
    }
}

impl Keyed for EventRow {
    fn key(&self) -> i64 {
        self.id
    }
}

/// One page of the Activity Log.
pub type EventPage = Page<EventRow>;

/// One request a signed-in user made to Auditdeck (a row of Admin Sessions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRow {
    pub id: i64,
    /// When the request arrived, microseconds since the epoch.
    pub occurred_at: i64,
    pub user_id: Option<String>,
    pub user_name: String,
    pub user_email: String,
    pub ip: Option<String>,
    /// Path and query, secret parameter values masked.
    pub url: String,
    /// `WEB` or `API`.
    pub kind: String,
    pub method: String,
    pub status: u16,
    pub duration_us: i64,
}

impl Keyed for SessionRow {
    fn key(&self) -> i64 {
        self.id
    }
}

/// One page of Admin Sessions.
pub type SessionPage = Page<SessionRow>;

/// `850 µs`, `12.3 ms`, `1.24 s`: a request's duration.
pub fn format_duration(micros: i64) -> String {
    let micros = micros.max(0);
    if micros < 1_000 {
        format!("{micros} µs")
    } else if micros < 100_000 {
        format!("{:.1} ms", micros as f64 / 1_000.0)
    } else if micros < 1_000_000 {
        format!("{} ms", micros / 1_000)
    } else {
        format!("{:.2} s", micros as f64 / 1_000_000.0)
    }
}

/// How many events match a view: exact up to a limit, estimated beyond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCount {
    pub total: u64,
    pub exact: bool,
    /// An estimate's margin of error, in percent of it (95% confidence).
    pub margin: u8,
}

impl EventCount {
    pub fn exact(total: u64) -> Self {
        Self {
            total,
            exact: true,
            margin: 0,
        }
    }

    pub fn estimate(total: u64, margin: u8) -> Self {
        Self {
            total,
            exact: false,
            margin: margin.max(1),
        }
    }

    /// `1,234 events` or `≈ 1,230,000 events (± 3%)`.
    pub fn label(&self) -> String {
        self.label_of("event", "events")
    }

    /// The label with another noun: `3 requests`.
    pub fn label_of(&self, one: &str, many: &str) -> String {
        let noun = if self.total == 1 { one } else { many };
        if self.exact {
            format!("{} {noun}", self.number())
        } else {
            format!("{} {noun} (± {}%)", self.number(), self.margin)
        }
    }

    /// The count alone: `1,234`, or `≈ 1,230,000` for an estimate.
    pub fn number(&self) -> String {
        if self.exact {
            format_count(self.total)
        } else {
            format!("≈ {}", format_count(self.total))
        }
    }

    pub fn page_count(&self, per_page: u32) -> u32 {
        let per_page = u64::from(per_page.max(1));
        u32::try_from(self.total.div_ceil(per_page).max(1)).unwrap_or(u32::MAX)
    }
}

/// An initiator offered by the user filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitiatorOption {
    pub key: crate::query::InitiatorKey,
    pub label: String,
}

/// The choices of the filter bar, read from the log itself.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FilterOptions {
    pub initiators: Vec<InitiatorOption>,
    pub actions: Vec<String>,
    pub tables: Vec<String>,
}

/// Everything about one event, for the View details modal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventDetail {
    pub row: EventRow,
    pub received_at: i64,
    pub initiator_role: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub session_id: Option<String>,
    /// Label of the API key that delivered it.
    pub api_key: Option<String>,
    /// Other events on the same record (table + primary key), newest first.
    pub history: Vec<EventRow>,
}

/// How a value changed between before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    Same,
    Changed,
    Added,
    Removed,
}

impl Change {
    pub fn class(self) -> &'static str {
        match self {
            Self::Same => "same",
            Self::Changed => "changed",
            Self::Added => "added",
            Self::Removed => "removed",
        }
    }

    /// Shown beside the colour, so the change reads without colour too.
    pub fn symbol(self) -> &'static str {
        match self {
            Self::Same => " ",
            Self::Changed => "~",
            Self::Added => "+",
            Self::Removed => "−",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Same => "unchanged",
            Self::Changed => "changed",
            Self::Added => "added",
            Self::Removed => "removed",
        }
    }
}

/// One line of a line-by-line text diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffLine {
    pub change: Change,
    pub text: String,
}

/// A node of the before/after tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffNode {
    /// Field name, `[3]` for an array element, empty for the root.
    pub key: String,
    pub change: Change,
    pub body: DiffBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DiffBody {
    /// A scalar: each side as display text (absent when the side lacks it);
    /// `lines` holds a line diff when long texts changed.
    Leaf {
        before: Option<String>,
        after: Option<String>,
        lines: Vec<DiffLine>,
    },
    /// An object or array.
    Branch {
        array: bool,
        children: Vec<DiffNode>,
    },
}

/// The View Difference content of one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventDiff {
    pub id: i64,
    pub has_before: bool,
    pub has_after: bool,
    pub root: DiffNode,
}

/// Formats microseconds since the epoch as `2025-10-27 12:00:00.123` (UTC).
pub fn format_utc(micros: i64) -> String {
    match chrono::DateTime::from_timestamp_micros(micros) {
        Some(t) => format!(
            "{}.{:03}",
            crate::dates::iso_day_time(t.naive_utc()),
            t.timestamp_subsec_millis()
        ),
        None => "invalid time".to_string(),
    }
}

/// RFC 3339 form of microseconds since the epoch, for `<time datetime>`.
pub fn format_rfc3339(micros: i64) -> String {
    match chrono::DateTime::from_timestamp_micros(micros) {
        Some(t) => format!(
            "{}.{:06}Z",
            crate::dates::iso_day_time(t.naive_utc()).replace(' ', "T"),
            t.timestamp_subsec_micros()
        ),
        None => String::new(),
    }
}

/// A size in words: "12.3 MB". Whole numbers only: formatting floats would
/// add some 20 KB to the browser's code.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} bytes");
    }
    let (mut unit, mut scale) = (0, 1000u64);
    while unit < UNITS.len() - 1 && bytes / scale >= 1000 {
        scale *= 1000;
        unit += 1;
    }
    let tenths = (u128::from(bytes) * 10 + u128::from(scale / 2)) / u128::from(scale);
    format!("{}.{} {}", tenths / 10, tenths % 10, UNITS[unit])
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_words() {
        assert_eq!(format_bytes(512), "512 bytes");
        assert_eq!(format_bytes(12_345_678), "12.3 MB");
        assert_eq!(format_bytes(2_000_000_000), "2.0 GB");
        assert_eq!(format_bytes(1_280_000), "1.3 MB");
        assert_eq!(format_bytes(12_900_000_000), "12.9 GB");
        assert_eq!(format_bytes(u64::MAX), "18446744.1 TB");
    }

    #[test]
    fn page_count_rounds_up_and_is_never_zero() {
        let count = EventCount::exact;
        assert_eq!(count(0).page_count(25), 1);
        assert_eq!(count(25).page_count(25), 1);
        assert_eq!(count(26).page_count(25), 2);
        assert_eq!(count(100_000).page_count(250), 400);
        assert_eq!(count(1).label(), "1 event");
        let estimate = EventCount::estimate(1_230_000, 3);
        assert_eq!(estimate.label(), "≈ 1,230,000 events (± 3%)");
        assert_eq!(EventCount::estimate(20_000, 0).margin, 1);
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
            assert_eq!(safe_next_path(bad), HOME, "{bad:?}");
        }
    }

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(format_duration(850), "850 µs");
        assert_eq!(format_duration(12_345), "12.3 ms");
        assert_eq!(format_duration(250_000), "250 ms");
        assert_eq!(format_duration(1_240_000), "1.24 s");
        assert_eq!(format_duration(-5), "0 µs");
    }

    #[test]
    fn counts_get_thousands_separators() {
        assert_eq!(format_count(0), "0");
        assert_eq!(format_count(999), "999");
        assert_eq!(format_count(1000), "1,000");
        assert_eq!(format_count(1_234_567), "1,234,567");
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
            role: None,
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
