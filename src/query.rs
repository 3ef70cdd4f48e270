//! What the Activity Log shows — filters, sort, page — and its URL form.
//! The same value travels from the URL to the server function, where it is
//! checked again (it may not come from our UI).

use crate::dates::Preset;
use crate::errors::AppError;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Page sizes offered by the page-size selector.
pub const PAGE_SIZES: [u32; 5] = [10, 25, 50, 100, 250];
/// The most rows one page of the read API (`limit`) holds; the pages' own
/// sizes are [`PAGE_SIZES`].
pub const MAX_API_LIMIT: u32 = 1000;
pub const DEFAULT_PAGE_SIZE: u32 = 25;
/// Longest keyword search accepted.
pub const MAX_SEARCH_LEN: usize = 200;
/// Most action types in one filter.
pub const MAX_ACTIONS: usize = 20;

/// Columns the table can be sorted by (the server's whitelist).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum SortColumn {
    #[default]
    Date,
    User,
    Action,
    Table,
    Ip,
}

impl SortColumn {
    pub const ALL: [SortColumn; 5] = [Self::Date, Self::User, Self::Action, Self::Table, Self::Ip];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Date => "date",
            Self::User => "user",
            Self::Action => "action",
            Self::Table => "table",
            Self::Ip => "ip",
        }
    }

    pub fn parse(value: &str) -> Result<Self, AppError> {
        parse_sort(value, &Self::ALL, Self::as_str)
    }

    /// Date starts newest first; the others start A to Z.
    pub fn default_descending(self) -> bool {
        self == Self::Date
    }
}

/// A sort column from the URL, from a page's whitelist `all`.
pub fn parse_sort<C: Copy>(
    value: &str,
    all: &[C],
    name: fn(C) -> &'static str,
) -> Result<C, AppError> {
    all.iter()
        .copied()
        .find(|c| name(*c) == value)
        .ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|c| name(*c)).collect();
            AppError::bad_request(format!(
                "sort: \"{value}\" is not a column to sort by; choose one of {}",
                names.join(", ")
            ))
        })
}

/// A sort direction from the URL (`dir=asc|desc`); none is the column's own.
pub fn parse_direction(value: Option<&str>, natural: bool) -> Result<bool, AppError> {
    match non_empty(value) {
        None => Ok(natural),
        Some("desc") => Ok(true),
        Some("asc") => Ok(false),
        Some(other) => Err(AppError::bad_request(format!(
            "dir: \"{other}\" is not a direction; use asc or desc"
        ))),
    }
}

/// `dir=…` when the direction is not the column's own.
pub fn push_direction(parts: &mut Vec<(&'static str, String)>, descending: bool, natural: bool) {
    if descending != natural {
        parts.push(("dir", if descending { "desc" } else { "asc" }.into()));
    }
}

/// Where a page starts, as a position in the sorted result (keyset paging):
/// the rows after or before a known row, or the very end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Cursor {
    After(i64),
    Before(i64),
    End,
}

/// A user filter: the initiator's kind and id (`user:u-17`, `system:`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InitiatorKey {
    pub kind: String,
    pub id: Option<String>,
}

impl InitiatorKey {
    pub fn parse(value: &str) -> Result<Self, AppError> {
        let (kind, id) = value.split_once(':').unwrap_or((value, ""));
        if !["user", "system", "api_key", "portal"].contains(&kind) {
            return Err(AppError::bad_request(format!(
                "user: \"{value}\" is not an initiator (kind:id, such as user:u-17)"
            )));
        }
        Ok(Self {
            kind: kind.to_string(),
            id: (!id.is_empty()).then(|| id.to_string()),
        })
    }

    pub fn to_param(&self) -> String {
        format!("{}:{}", self.kind, self.id.as_deref().unwrap_or(""))
    }
}

/// An IP address or CIDR range filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpFilter {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpFilter {
    pub fn parse(text: &str) -> Result<Self, AppError> {
        let text = text.trim();
        let bad = || {
            AppError::bad_request(format!(
                "ip: \"{text}\" is not an IP address or CIDR range (such as 10.0.0.0/8 or 2001:db8::/32)"
            ))
        };
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => return Err(bad()),
            },
        };
        Ok(Self { addr, prefix })
    }

    /// The range as 16-byte keys (IPv4 mapped into IPv6), both inclusive.
    pub fn key_range(&self) -> ([u8; 16], [u8; 16]) {
        let (bits, prefix) = match self.addr {
            IpAddr::V4(v4) => (u128::from(v4.to_ipv6_mapped()), u32::from(self.prefix) + 96),
            IpAddr::V6(v6) => (u128::from(v6), u32::from(self.prefix)),
        };
        let host_mask = if prefix >= 128 {
            0
        } else {
            u128::MAX >> prefix
        };
        (
            (bits & !host_mask).to_be_bytes(),
            (bits | host_mask).to_be_bytes(),
        )
    }
}

/// The Activity Log view: filters, sort and page.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct EventQuery {
    /// 1-based page number (what the pager shows; the cursor says where).
    pub page: u32,
    pub per_page: u32,
    pub user: Option<InitiatorKey>,
    pub actions: Vec<String>,
    pub table: Option<String>,
    pub ip: Option<String>,
    /// Keyword search: words and "quoted phrases".
    pub q: Option<String>,
    /// A rolling range ("24h"); when set, `from` and `to` are unset.
    pub range: Option<String>,
    /// Microseconds since the epoch, inclusive.
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub sort: SortColumn,
    pub descending: bool,
    pub cursor: Option<Cursor>,
    /// Auto refresh: page state in the URL, never sent to the server.
    #[serde(skip)]
    pub refresh: Option<RefreshEvery>,
    /// Set by the read API only (never sent by a browser): `per_page` is its
    /// `limit`, any size up to [`MAX_API_LIMIT`] rather than a page size.
    #[serde(skip)]
    pub api_limit: bool,
}

impl Default for EventQuery {
    fn default() -> Self {
        Self {
            page: 1,
            per_page: DEFAULT_PAGE_SIZE,
            user: None,
            actions: Vec::new(),
            table: None,
            ip: None,
            q: None,
            range: None,
            from: None,
            to: None,
            sort: SortColumn::Date,
            descending: true,
            cursor: None,
            refresh: None,
            api_limit: false,
        }
    }
}

/// A parameter's trimmed value, `None` when missing or blank.
pub(crate) fn non_empty(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

/// `2025-10-27T12:00Z`, `2025-10-27T12:00:05.5Z`, `2025-10-27T14:00+02:00`.
fn parse_rfc3339ish(text: &str) -> Option<i64> {
    let (day, rest) = text.split_once(['T', 't', ' '])?;
    let mut parts = day.splitn(3, '-');
    let year: i32 = parts.next().filter(|y| y.len() == 4)?.parse().ok()?;
    let month: u32 = parts.next().filter(|m| m.len() == 2)?.parse().ok()?;
    let dom: u32 = parts.next().filter(|d| d.len() == 2)?.parse().ok()?;
    let date = chrono::NaiveDate::from_ymd_opt(year, month, dom)?;
    let (clock, offset_minutes) = if let Some(clock) = rest.strip_suffix(['Z', 'z']) {
        (clock, 0i64)
    } else {
        let at = rest.rfind(['+', '-'])?;
        let (clock, offset) = rest.split_at(at);
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let (h, m) = offset[1..].split_once(':')?;
        if h.len() != 2 || m.len() != 2 {
            return None;
        }
        let minutes = h.parse::<i64>().ok()? * 60 + m.parse::<i64>().ok()?;
        (clock, sign * minutes)
    };
    let (hms, fraction) = match clock.split_once('.') {
        Some((hms, f))
            if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) =>
        {
            (hms, format!("{f:0<6}")[..6].parse::<u32>().ok()?)
        }
        Some(_) => return None,
        None => (clock, 0),
    };
    let mut fields = hms.split(':');
    let mut next = |required: bool| -> Option<u32> {
        match fields.next() {
            Some(f) if f.len() == 2 => f.parse().ok(),
            None if !required => Some(0),
            _ => None,
        }
    };
    let (h, m, s) = (next(true)?, next(true)?, next(false)?);
    if fields.next().is_some() {
        return None;
    }
    let time = chrono::NaiveTime::from_hms_micro_opt(h, m, s, fraction)?;
    Some(date.and_time(time).and_utc().timestamp_micros() - offset_minutes * 60_000_000)
}

pub(crate) fn parse_instant(key: &str, text: &str) -> Result<i64, AppError> {
    parse_rfc3339ish(text).ok_or_else(|| {
        AppError::bad_request(format!(
            "{key}: \"{text}\" is not a time; use UTC like 2025-10-27T12:00Z"
        ))
    })
}

/// A time as it appears in the URL: `2025-10-27T12:00Z`, with seconds only
/// when it has them.
pub fn format_instant_param(micros: i64) -> String {
    let Some(t) = chrono::DateTime::from_timestamp_micros(micros) else {
        return String::new();
    };
    let full = crate::dates::iso_day_time(t.naive_utc()).replace(' ', "T");
    let micros_part = t.timestamp_subsec_micros();
    if micros.rem_euclid(60_000_000) == 0 {
        format!("{}Z", &full[..16])
    } else if micros_part == 0 {
        format!("{full}Z")
    } else {
        format!("{full}.{micros_part:06}Z")
    }
}

fn check_action(action: &str) -> Result<(), AppError> {
    let ok = !action.is_empty()
        && action.len() <= 64
        && action
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(AppError::bad_request(format!(
            "action: \"{action}\" is not an action type (upper-case letters, digits, _)"
        )))
    }
}

fn parse_id(key: &str, text: &str) -> Result<i64, AppError> {
    match text.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(AppError::bad_request(format!(
            "{key}: \"{text}\" is not an event id"
        ))),
    }
}

/// Page number, page size and keyset position, as every paged view has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub page: u32,
    pub per_page: u32,
    pub cursor: Option<Cursor>,
}

impl Paging {
    /// [`Self::validate`], or for the read API (`api`): any page size up to
    /// [`MAX_API_LIMIT`].
    pub fn validate_for(&self, api: bool) -> Result<(), AppError> {
        if api && (1..=MAX_API_LIMIT).contains(&self.per_page) {
            return Self {
                per_page: PAGE_SIZES[0],
                ..*self
            }
            .validate();
        }
        self.validate()
    }

    /// Reads `page`, `size` and one of `after`, `before`, `end`.
    pub fn from_params<'a>(get: &impl Fn(&str) -> Option<&'a str>) -> Result<Self, AppError> {
        let mut paging = Self {
            page: 1,
            per_page: DEFAULT_PAGE_SIZE,
            cursor: None,
        };
        if let Some(page) = get("page") {
            paging.page = match page.trim().parse::<u32>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    return Err(AppError::bad_request(format!(
                        "page: \"{page}\" is not a page number (1, 2, 3, ...)"
                    )))
                }
            };
        }
        if let Some(size) = get("size") {
            paging.per_page = match size.trim().parse::<u32>() {
                Ok(n) if PAGE_SIZES.contains(&n) => n,
                _ => {
                    return Err(AppError::bad_request(format!(
                        "size: \"{size}\" is not a page size; choose one of {}",
                        PAGE_SIZES.map(|s| s.to_string()).join(", ")
                    )))
                }
            };
        }
        paging.cursor = match (get("after"), get("before"), get("end")) {
            (Some(id), None, None) => Some(Cursor::After(parse_id("after", id)?)),
            (None, Some(id), None) => Some(Cursor::Before(parse_id("before", id)?)),
            (None, None, Some(_)) => Some(Cursor::End),
            (None, None, None) => None,
            _ => {
                return Err(AppError::bad_request(
                    "after, before and end: use only one of them",
                ))
            }
        };
        Ok(paging)
    }

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
        if let Some(Cursor::After(id) | Cursor::Before(id)) = self.cursor {
            if id <= 0 {
                return Err(AppError::bad_request("after: not an id"));
            }
        }
        Ok(())
    }

    /// Rows to skip when a page number arrives without a cursor.
    pub fn offset(&self) -> u64 {
        u64::from(self.page.saturating_sub(1)) * u64::from(self.per_page)
    }

    pub fn push_params(&self, parts: &mut Vec<(&'static str, String)>) {
        if self.page != 1 {
            parts.push(("page", self.page.to_string()));
        }
        if self.per_page != DEFAULT_PAGE_SIZE {
            parts.push(("size", self.per_page.to_string()));
        }
        match self.cursor {
            Some(Cursor::After(id)) => parts.push(("after", id.to_string())),
            Some(Cursor::Before(id)) => parts.push(("before", id.to_string())),
            Some(Cursor::End) => parts.push(("end", "1".into())),
            None => {}
        }
    }
}

/// A time filter: a rolling range (`24h`) or fixed ends, as in the URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub range: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
}

impl TimeRange {
    /// Reads `range`, `from` and `to`.
    pub fn from_params<'a>(get: &impl Fn(&str) -> Option<&'a str>) -> Result<Self, AppError> {
        Ok(Self {
            range: non_empty(get("range")).map(str::to_string),
            from: non_empty(get("from"))
                .map(|t| parse_instant("from", t))
                .transpose()?,
            to: non_empty(get("to"))
                .map(|t| parse_instant("to", t))
                .transpose()?,
        })
    }

    pub fn validate(&self) -> Result<(), AppError> {
        if let Some(range) = &self.range {
            if Preset::from_code(range).is_none() {
                return Err(AppError::bad_request(format!(
                    "range: \"{range}\" is not a range; choose one of {}",
                    Preset::ALL
                        .iter()
                        .filter_map(|p| p.code())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            if self.from.is_some() || self.to.is_some() {
                return Err(AppError::bad_request(
                    "range: use either a rolling range or from/to, not both",
                ));
            }
        }
        if let (Some(from), Some(to)) = (self.from, self.to) {
            if to < from {
                return Err(AppError::bad_request("to: the end is before the start"));
            }
        }
        Ok(())
    }

    /// The bounds as of `now` (a rolling range ends now, open-ended).
    pub fn bounds(&self, now_micros: i64) -> (Option<i64>, Option<i64>) {
        match self.range.as_deref().and_then(Preset::from_code) {
            Some(preset) => (
                Some(now_micros - preset.rolling_micros().unwrap_or_default()),
                None,
            ),
            None => (self.from, self.to),
        }
    }

    pub fn is_set(&self) -> bool {
        self.range.is_some() || self.from.is_some() || self.to.is_some()
    }

    pub fn push_params(&self, parts: &mut Vec<(&'static str, String)>) {
        if let Some(range) = &self.range {
            parts.push(("range", range.clone()));
        }
        if let Some(from) = self.from {
            parts.push(("from", format_instant_param(from)));
        }
        if let Some(to) = self.to {
            parts.push(("to", format_instant_param(to)));
        }
    }
}

/// How often a page refreshes itself when auto refresh is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RefreshEvery {
    Sec2,
    Sec5,
    Sec10,
    Sec30,
    Min1,
    Min5,
}

impl RefreshEvery {
    pub const ALL: [RefreshEvery; 6] = [
        Self::Sec2,
        Self::Sec5,
        Self::Sec10,
        Self::Sec30,
        Self::Min1,
        Self::Min5,
    ];
    /// The interval offered first.
    pub const DEFAULT: RefreshEvery = Self::Sec5;

    pub fn millis(self) -> u64 {
        match self {
            Self::Sec2 => 2_000,
            Self::Sec5 => 5_000,
            Self::Sec10 => 10_000,
            Self::Sec30 => 30_000,
            Self::Min1 => 60_000,
            Self::Min5 => 300_000,
        }
    }

    /// The URL form: `2s` … `5m`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Sec2 => "2s",
            Self::Sec5 => "5s",
            Self::Sec10 => "10s",
            Self::Sec30 => "30s",
            Self::Min1 => "1m",
            Self::Min5 => "5m",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Sec2 => "2 seconds",
            Self::Sec5 => "5 seconds",
            Self::Sec10 => "10 seconds",
            Self::Sec30 => "30 seconds",
            Self::Min1 => "1 minute",
            Self::Min5 => "5 minutes",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.code() == code)
    }

    /// Reads `refresh` (absent: auto refresh is off).
    pub fn from_params<'a>(
        get: &impl Fn(&str) -> Option<&'a str>,
    ) -> Result<Option<Self>, AppError> {
        non_empty(get("refresh"))
            .map(|code| {
                Self::parse(code).ok_or_else(|| {
                    AppError::bad_request(format!(
                        "refresh: \"{code}\" is not a refresh interval; choose one of {}",
                        Self::ALL.map(|e| e.code()).join(", ")
                    ))
                })
            })
            .transpose()
    }
}

/// A keyword search no longer than [`MAX_SEARCH_LEN`], without control
/// characters.
pub fn check_search(q: Option<&str>) -> Result<(), AppError> {
    match q {
        Some(q) if q.chars().count() > MAX_SEARCH_LEN => Err(AppError::bad_request(format!(
            "q: the search is longer than {MAX_SEARCH_LEN} characters"
        ))),
        _ => check_text("q", q),
    }
}

/// A filter's text holds no control characters (a NUL would end the string
/// in the database's hands; none is typed into a filter).
pub fn check_text(name: &str, value: Option<&str>) -> Result<(), AppError> {
    match value {
        Some(v) if v.chars().any(char::is_control) => Err(AppError::bad_request(format!(
            "{name}: contains control characters"
        ))),
        _ => Ok(()),
    }
}

/// `?k=v&…` from parts (values percent-encoded), or nothing.
pub fn query_string(parts: Vec<(&'static str, String)>) -> String {
    if parts.is_empty() {
        return String::new();
    }
    let encoded: Vec<String> = parts
        .into_iter()
        .map(|(k, v)| format!("{k}={}", encode_component(&v)))
        .collect();
    format!("?{}", encoded.join("&"))
}

impl EventQuery {
    /// Reads the view from URL parameters; a missing parameter takes its
    /// default, a malformed one is an error naming it.
    pub fn from_params<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<Self, AppError> {
        let mut query = Self::default();
        let paging = Paging::from_params(&get)?;
        (query.page, query.per_page, query.cursor) = (paging.page, paging.per_page, paging.cursor);
        let times = TimeRange::from_params(&get)?;
        (query.range, query.from, query.to) = (times.range, times.from, times.to);
        query.refresh = RefreshEvery::from_params(&get)?;
        query.user = non_empty(get("user"))
            .map(InitiatorKey::parse)
            .transpose()?;
        if let Some(actions) = non_empty(get("action")) {
            query.actions = actions
                .split(',')
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty())
                .collect();
        }
        query.table = non_empty(get("table")).map(str::to_string);
        query.ip = non_empty(get("ip")).map(str::to_string);
        query.q = non_empty(get("q")).map(str::to_string);
        if let Some(sort) = non_empty(get("sort")) {
            query.sort = SortColumn::parse(sort)?;
        }
        query.descending = parse_direction(get("dir"), query.sort.default_descending())?;
        query.validate()?;
        Ok(query)
    }

    pub fn paging(&self) -> Paging {
        Paging {
            page: self.page,
            per_page: self.per_page,
            cursor: self.cursor,
        }
    }

    pub fn times(&self) -> TimeRange {
        TimeRange {
            range: self.range.clone(),
            from: self.from,
            to: self.to,
        }
    }

    /// Checks every part; the server calls it on whatever arrives.
    pub fn validate(&self) -> Result<(), AppError> {
        self.paging().validate_for(self.api_limit)?;
        self.times().validate()?;
        if self.actions.len() > MAX_ACTIONS {
            return Err(AppError::bad_request(format!(
                "action: at most {MAX_ACTIONS} action types at once"
            )));
        }
        for action in &self.actions {
            check_action(action)?;
        }
        if let Some(ip) = &self.ip {
            IpFilter::parse(ip)?;
        }
        check_text("user", self.user.as_ref().map(|u| u.to_param()).as_deref())?;
        check_text("table", self.table.as_deref())?;
        check_search(self.q.as_deref())
    }

    /// The time bounds as of `now` (a rolling range ends now, open-ended).
    pub fn time_bounds(&self, now_micros: i64) -> (Option<i64>, Option<i64>) {
        self.times().bounds(now_micros)
    }

    /// Whether any filter narrows the result.
    pub fn is_filtered(&self) -> bool {
        self.user.is_some()
            || !self.actions.is_empty()
            || self.table.is_some()
            || self.ip.is_some()
            || self.q.is_some()
            || self.times().is_set()
    }

    /// The query string that shows this view (defaults left out).
    pub fn to_query_string(&self) -> String {
        let mut parts: Vec<(&'static str, String)> = Vec::new();
        if let Some(user) = &self.user {
            parts.push(("user", user.to_param()));
        }
        if !self.actions.is_empty() {
            parts.push(("action", self.actions.join(",")));
        }
        for (key, value) in [("table", &self.table), ("ip", &self.ip), ("q", &self.q)] {
            if let Some(value) = value {
                parts.push((key, value.clone()));
            }
        }
        self.times().push_params(&mut parts);
        if self.sort != SortColumn::Date {
            parts.push(("sort", self.sort.as_str().to_string()));
        }
        push_direction(&mut parts, self.descending, self.sort.default_descending());
        self.paging().push_params(&mut parts);
        if let Some(every) = self.refresh {
            parts.push(("refresh", every.code().to_string()));
        }
        query_string(parts)
    }

    /// Back to the first page (any change of filter, sort or size does this).
    pub fn first_page(self) -> Self {
        Self {
            page: 1,
            cursor: None,
            ..self
        }
    }

    /// The filters alone, without page, size or sort: what the chart and the
    /// breakdowns of the view depend on.
    pub fn filters_only(self) -> Self {
        Self {
            per_page: DEFAULT_PAGE_SIZE,
            sort: SortColumn::Date,
            descending: true,
            refresh: None,
            ..self
        }
        .first_page()
    }

    /// The view narrowed to `from..=to` (fixed ends replace a rolling range),
    /// on its first page.
    pub fn zoomed(self, from: i64, to: i64) -> Self {
        Self {
            range: None,
            from: Some(from),
            to: Some(to),
            ..self
        }
        .first_page()
    }

    /// A page reached through a cursor.
    pub fn at(self, page: u32, cursor: Option<Cursor>) -> Self {
        Self {
            page: page.max(1),
            cursor,
            ..self
        }
    }

    pub fn with_page_size(self, per_page: u32) -> Self {
        Self { per_page, ..self }.first_page()
    }

    /// Sorting by a column: a new column starts in its natural direction;
    /// the current one flips.
    pub fn sorted_by(self, column: SortColumn) -> Self {
        let descending = if self.sort == column {
            !self.descending
        } else {
            column.default_descending()
        };
        Self {
            sort: column,
            descending,
            ..self
        }
        .first_page()
    }

    /// Rows to skip when a page number arrives without a cursor.
    pub fn offset(&self) -> u64 {
        self.paging().offset()
    }

    /// The words and phrases of the keyword search, for the index and for
    /// highlighting: `"disk full" alice` → `["disk full", "alice"]`.
    pub fn search_terms(&self) -> Vec<String> {
        self.q.as_deref().map(search_terms).unwrap_or_default()
    }
}

/// Splits a keyword search into "quoted phrases" and single words.
pub fn search_terms(q: &str) -> Vec<String> {
    let mut terms = Vec::new();
    let mut rest = q;
    while let Some(start) = rest.find('"') {
        terms.extend(rest[..start].split_whitespace().map(str::to_string));
        let after = &rest[start + 1..];
        match after.find('"') {
            Some(end) => {
                let phrase = after[..end]
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                if !phrase.is_empty() {
                    terms.push(phrase);
                }
                rest = &after[end + 1..];
            }
            None => {
                rest = after;
            }
        }
    }
    terms.extend(rest.split_whitespace().map(str::to_string));
    terms.retain(|t| t.chars().any(char::is_alphanumeric));
    terms
}

/// Splits `text` into runs that match one of `terms` (case-insensitively)
/// and runs that do not, for highlighting: `[(text, matched)]`.
pub fn highlight(text: &str, terms: &[String]) -> Vec<(String, bool)> {
    let lower = text.to_lowercase();
    // Lower-casing may change byte lengths; then highlight nothing.
    if lower.len() != text.len() || terms.is_empty() {
        return vec![(text.to_string(), false)];
    }
    let needles: Vec<String> = terms
        .iter()
        .map(|t| t.to_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    let mut marks = vec![false; text.len()];
    for needle in &needles {
        let mut from = 0;
        while let Some(pos) = lower[from..].find(needle.as_str()) {
            let start = from + pos;
            marks[start..start + needle.len()]
                .iter_mut()
                .for_each(|m| *m = true);
            from = start + needle.len().max(1);
        }
    }
    let mut out: Vec<(String, bool)> = Vec::new();
    for (i, c) in text.char_indices() {
        let marked = marks[i];
        match out.last_mut() {
            Some((run, m)) if *m == marked => run.push(c),
            _ => out.push((c.to_string(), marked)),
        }
    }
    if out.is_empty() {
        out.push((String::new(), false));
    }
    out
}

/// Percent-encodes a URL query value (RFC 3986 unreserved characters stay).
pub fn encode_component(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b',' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> + 'a {
        move |key| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    /// Decodes what `to_query_string` wrote, as the router does.
    fn decode(value: &str) -> String {
        let bytes = value.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                out.push(u8::from_str_radix(&value[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }

    fn round_trip(q: &EventQuery) -> EventQuery {
        let s = q.to_query_string();
        let pairs: Vec<(String, String)> = s
            .trim_start_matches('?')
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap();
                (k.to_string(), decode(v))
            })
            .collect();
        EventQuery::from_params(|key| {
            pairs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        })
        .unwrap()
    }

    #[test]
    fn defaults_when_params_missing() {
        let q = EventQuery::from_params(params(&[])).unwrap();
        assert_eq!(q, EventQuery::default());
        assert_eq!(q.to_query_string(), "");
        assert!(!q.is_filtered());
    }

    #[test]
    fn every_part_round_trips_through_the_url() {
        let q = EventQuery {
            page: 4,
            per_page: 100,
            user: Some(InitiatorKey::parse("user:u-17").unwrap()),
            actions: vec!["CREATE".into(), "LOGIN_FAILED".into()],
            table: Some("invoice lines".into()),
            ip: Some("10.0.0.0/8".into()),
            q: Some("\"disk full\" & 100% ünïcode".into()),
            range: None,
            from: Some(1_761_566_400_000_000),
            to: Some(1_761_739_200_123_000),
            sort: SortColumn::Ip,
            descending: true,
            cursor: Some(Cursor::After(9_001)),
            refresh: Some(RefreshEvery::Sec30),
            api_limit: false,
        };
        assert_eq!(round_trip(&q), q);
        let rolling = EventQuery {
            range: Some("24h".into()),
            sort: SortColumn::Date,
            descending: false,
            cursor: Some(Cursor::End),
            ..EventQuery::default()
        };
        assert_eq!(round_trip(&rolling), rolling);
        let before = EventQuery {
            cursor: Some(Cursor::Before(3)),
            user: Some(InitiatorKey::parse("system:").unwrap()),
            ..EventQuery::default()
        };
        assert_eq!(round_trip(&before), before);
        assert!(before.to_query_string().contains("user=system:&"));
    }

    #[test]
    fn malformed_params_are_refused_naming_them() {
        for (key, value) in [
            ("page", "0"),
            ("page", "x"),
            ("size", "7"),
            ("user", "robot:1"),
            ("action", "drop table"),
            ("ip", "10.0.0.0/33"),
            ("ip", "300.1.2.3"),
            ("ip", "fe80::/129"),
            ("ip", "10.0.0.1/"),
            ("range", "2y"),
            ("from", "2025-02-31T00:00Z"),
            ("to", "yesterday"),
            ("sort", "password_hash"),
            ("dir", "up"),
            ("after", "abc"),
            ("before", "-3"),
            ("refresh", "3s"),
        ] {
            let err = EventQuery::from_params(params(&[(key, value)])).unwrap_err();
            assert!(
                matches!(&err, AppError::BadRequest(m) if m.starts_with(key)),
                "{key}={value}: {err:?}"
            );
        }
        let long = "x".repeat(MAX_SEARCH_LEN + 1);
        assert!(EventQuery::from_params(params(&[("q", &long)])).is_err());
    }

    #[test]
    fn refresh_intervals_have_url_codes() {
        for every in RefreshEvery::ALL {
            assert_eq!(RefreshEvery::parse(every.code()), Some(every));
        }
        assert_eq!(RefreshEvery::Sec2.millis(), 2_000);
        assert_eq!(RefreshEvery::Min5.millis(), 300_000);
        assert_eq!(RefreshEvery::parse("7s"), None);
        let q = EventQuery {
            refresh: Some(RefreshEvery::Sec2),
            ..EventQuery::default()
        };
        assert_eq!(q.to_query_string(), "?refresh=2s");
        // Paging and filtering keep it; the server never sees it.
        assert_eq!(q.clone().at(3, None).refresh, Some(RefreshEvery::Sec2));
        let sent: EventQuery = serde_json::from_str(&serde_json::to_string(&q).unwrap()).unwrap();
        assert_eq!(sent.refresh, None);
    }

    #[test]
    fn sort_whitelist_refuses_unknown_columns() {
        for column in SortColumn::ALL {
            assert_eq!(SortColumn::parse(column.as_str()).unwrap(), column);
        }
        for bad in ["id; DROP TABLE events", "occurred_at", "DATE", ""] {
            assert!(SortColumn::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_end_before_the_start_is_refused() {
        let err = EventQuery::from_params(params(&[
            ("from", "2025-10-29T12:00Z"),
            ("to", "2025-10-27T12:00Z"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("before the start"), "{err}");
        let both =
            EventQuery::from_params(params(&[("range", "1h"), ("from", "2025-10-29T12:00Z")]));
        assert!(both.is_err());
        let two_cursors = EventQuery::from_params(params(&[("after", "3"), ("before", "9")]));
        assert!(two_cursors.is_err());
    }

    #[test]
    fn sorting_flips_the_current_column_and_resets_the_page() {
        let q = EventQuery::default().at(7, Some(Cursor::After(70)));
        let by_user = q.clone().sorted_by(SortColumn::User);
        assert_eq!(
            (
                by_user.sort,
                by_user.descending,
                by_user.page,
                by_user.cursor
            ),
            (SortColumn::User, false, 1, None)
        );
        let flipped = by_user.sorted_by(SortColumn::User);
        assert!(flipped.descending);
        let date = q.sorted_by(SortColumn::Date);
        assert!(!date.descending, "date was already descending, so it flips");
        let sized = EventQuery::default()
            .at(5, Some(Cursor::End))
            .with_page_size(50);
        assert_eq!((sized.page, sized.cursor, sized.per_page), (1, None, 50));
    }

    #[test]
    fn url_times_parse_strictly() {
        let noon = 1_761_566_400_000_000;
        for (text, want) in [
            ("2025-10-27T12:00Z", noon),
            ("2025-10-27T12:00:00Z", noon),
            ("2025-10-27T12:00:00.5Z", noon + 500_000),
            ("2025-10-27T12:00:00.123456Z", noon + 123_456),
            ("2025-10-27T14:00+02:00", noon),
            ("2025-10-27T07:30:00-04:30", noon),
        ] {
            assert_eq!(parse_rfc3339ish(text), Some(want), "{text}");
        }
        for bad in [
            "2025-02-29T12:00Z",
            "2025-10-27",
            "2025-10-27T24:00Z",
            "2025-10-27T12Z",
            "2025-10-27T12:00",
            "2025-10-27T12:00:00.Z",
            "25-10-27T12:00Z",
            "2025-10-27T12:00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339ish(bad), None, "{bad}");
        }
        for micros in [noon, noon + 5_000_000, noon + 1, 0] {
            assert_eq!(
                parse_rfc3339ish(&format_instant_param(micros)),
                Some(micros)
            );
        }
        assert_eq!(format_instant_param(noon), "2025-10-27T12:00Z");
    }

    #[test]
    fn rolling_ranges_end_now() {
        let q = EventQuery {
            range: Some("1h".into()),
            ..EventQuery::default()
        };
        assert_eq!(q.time_bounds(7_200_000_000), (Some(3_600_000_000), None));
        let fixed = EventQuery {
            from: Some(5),
            to: Some(9),
            ..EventQuery::default()
        };
        assert_eq!(fixed.time_bounds(100), (Some(5), Some(9)));
    }

    #[test]
    fn cidr_ranges_become_key_ranges() {
        let f = IpFilter::parse("10.0.0.0/8").unwrap();
        let (lo, hi) = f.key_range();
        assert_eq!(&lo[10..], &[0xff, 0xff, 10, 0, 0, 0]);
        assert_eq!(&hi[10..], &[0xff, 0xff, 10, 255, 255, 255]);
        let one = IpFilter::parse("192.168.1.7").unwrap().key_range();
        assert_eq!(one.0, one.1);
        let v6 = IpFilter::parse("2001:db8::/32").unwrap().key_range();
        assert_eq!(&v6.0[..4], &[0x20, 0x01, 0x0d, 0xb8]);
        assert_eq!(v6.0[4..], [0; 12]);
        assert_eq!(v6.1[4..], [0xff; 12]);
        let all = IpFilter::parse("::/0").unwrap().key_range();
        assert_eq!((all.0, all.1), ([0; 16], [0xff; 16]));
        // Host bits in the address are ignored.
        assert_eq!(
            IpFilter::parse("10.1.2.3/8").unwrap().key_range(),
            f.key_range()
        );
    }

    #[test]
    fn filters_with_control_characters_are_refused_by_name() {
        for (name, value) in [
            ("q", "disk\0full"),
            ("table", "inv\u{1}oices"),
            ("user", "user:an\u{1}n"),
        ] {
            let err = EventQuery::from_params(|k| (k == name).then_some(value))
                .and_then(|q| q.validate())
                .unwrap_err()
                .to_string();
            assert_eq!(err, format!("{name}: contains control characters"));
        }
        assert!(check_search(Some("disk full")).is_ok());
    }

    #[test]
    fn search_terms_keep_phrases_together() {
        assert_eq!(
            search_terms(r#"alice "disk full"  10.0.0.1"#),
            ["alice", "disk full", "10.0.0.1"]
        );
        assert_eq!(search_terms(r#""unclosed phrase"#), ["unclosed", "phrase"]);
        assert_eq!(search_terms(r#"" " - *"#), Vec::<String>::new());
    }

    #[test]
    fn highlight_marks_every_match_case_insensitively() {
        let runs = highlight("Disk full on disk 2", &["disk".into()]);
        assert_eq!(
            runs,
            vec![
                ("Disk".to_string(), true),
                (" full on ".to_string(), false),
                ("disk".to_string(), true),
                (" 2".to_string(), false),
            ]
        );
        let overlapping = highlight("invoice", &["inv".into(), "voice".into()]);
        assert_eq!(overlapping, vec![("invoice".to_string(), true)]);
        assert_eq!(highlight("abc", &[]), vec![("abc".to_string(), false)]);
        // Multi-byte text still splits on character boundaries.
        assert_eq!(
            highlight("Zürich Zürich", &["zürich".into()])
                .iter()
                .filter(|r| r.1)
                .count(),
            2
        );
    }
}
