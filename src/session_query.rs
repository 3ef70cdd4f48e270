//! What the Admin Sessions page shows — filters and page — and its URL form.
//! Like the Activity Log's view, it is checked again on the server.

use crate::errors::AppError;
use crate::query::{
    check_search, non_empty, parse_direction, parse_sort, push_direction, query_string,
    search_terms, Cursor, Paging, RefreshEvery, TimeRange, DEFAULT_PAGE_SIZE,
};
use serde::{Deserialize, Serialize};

/// Request types: page loads and navigations, or server-function and REST calls.
pub const REQUEST_KINDS: [&str; 2] = ["WEB", "API"];
/// HTTP methods the method filter offers.
pub const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// The shortest search word: each is looked up in a trigram index, which
/// cannot answer a shorter one without reading every request.
pub const MIN_SEARCH_WORD: usize = 3;

/// Columns Admin Sessions can be sorted by (the server's whitelist).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum SessionSort {
    #[default]
    Date,
    Admin,
    Ip,
    Url,
    Type,
    Method,
    Status,
    Duration,
}

impl SessionSort {
    pub const ALL: [SessionSort; 8] = [
        Self::Date,
        Self::Admin,
        Self::Ip,
        Self::Url,
        Self::Type,
        Self::Method,
        Self::Status,
        Self::Duration,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Date => "date",
            Self::Admin => "admin",
            Self::Ip => "ip",
            Self::Url => "url",
            Self::Type => "type",
            Self::Method => "method",
            Self::Status => "status",
            Self::Duration => "duration",
        }
    }

    pub fn parse(value: &str) -> Result<Self, AppError> {
        parse_sort(value, &Self::ALL, Self::as_str)
    }

    /// Date starts newest first and duration slowest first; the others
    /// start A to Z (status: lowest first).
    pub fn default_descending(self) -> bool {
        matches!(self, Self::Date | Self::Duration)
    }
}

/// The Admin Sessions view: newest first, filtered, paged by keyset.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionQuery {
    pub page: u32,
    pub per_page: u32,
    pub cursor: Option<Cursor>,
    pub range: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// Words that must all appear in the admin's name or email, the URL or the IP.
    pub q: Option<String>,
    /// `WEB` or `API`.
    pub kind: Option<String>,
    pub method: Option<String>,
    /// Leave out the signed-in user's own requests.
    pub hide_me: bool,
    pub sort: SessionSort,
    pub descending: bool,
    /// Auto refresh: page state in the URL, never sent to the server.
    #[serde(skip)]
    pub refresh: Option<RefreshEvery>,
    /// Set by the read API only: `per_page` is its `limit` (up to 1,000).
    #[serde(skip)]
    pub api_limit: bool,
}

impl Default for SessionQuery {
    fn default() -> Self {
        Self {
            page: 1,
            per_page: DEFAULT_PAGE_SIZE,
            cursor: None,
            range: None,
            from: None,
            to: None,
            q: None,
            kind: None,
            method: None,
            hide_me: false,
            sort: SessionSort::Date,
            descending: true,
            refresh: None,
            api_limit: false,
        }
    }
}

impl SessionQuery {
    /// Reads the view from URL parameters; a malformed one is an error naming it.
    pub fn from_params<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<Self, AppError> {
        let paging = Paging::from_params(&get)?;
        let times = TimeRange::from_params(&get)?;
        let hide_me = match non_empty(get("hide_me")) {
            None | Some("0") => false,
            Some("1") => true,
            Some(other) => {
                return Err(AppError::bad_request(format!(
                    "hide_me: \"{other}\" is not 1 or 0"
                )))
            }
        };
        let sort = match non_empty(get("sort")) {
            Some(sort) => SessionSort::parse(sort)?,
            None => SessionSort::Date,
        };
        let descending = parse_direction(get("dir"), sort.default_descending())?;
        let query = Self {
            page: paging.page,
            per_page: paging.per_page,
            cursor: paging.cursor,
            range: times.range,
            from: times.from,
            to: times.to,
            q: non_empty(get("q")).map(str::to_string),
            kind: non_empty(get("type")).map(str::to_ascii_uppercase),
            method: non_empty(get("method")).map(str::to_ascii_uppercase),
            hide_me,
            sort,
            descending,
            refresh: RefreshEvery::from_params(&get)?,
            api_limit: false,
        };
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

    pub fn validate(&self) -> Result<(), AppError> {
        self.paging().validate_for(self.api_limit)?;
        self.times().validate()?;
        check_search(self.q.as_deref())?;
        if let Some(word) = self
            .search_terms()
            .into_iter()
            .find(|t| t.chars().count() < MIN_SEARCH_WORD)
        {
            return Err(AppError::bad_request(format!(
                "q: search words need at least {MIN_SEARCH_WORD} characters (\"{word}\" has fewer)"
            )));
        }
        if let Some(kind) = &self.kind {
            if !REQUEST_KINDS.contains(&kind.as_str()) {
                return Err(AppError::bad_request(format!(
                    "type: \"{kind}\" is not a request type; use WEB or API"
                )));
            }
        }
        if let Some(method) = &self.method {
            if !METHODS.contains(&method.as_str()) {
                return Err(AppError::bad_request(format!(
                    "method: \"{method}\" is not an HTTP method; choose one of {}",
                    METHODS.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// Whether any filter narrows the result.
    pub fn is_filtered(&self) -> bool {
        self.q.is_some()
            || self.kind.is_some()
            || self.method.is_some()
            || self.hide_me
            || self.times().is_set()
    }

    /// The words and phrases of the search.
    pub fn search_terms(&self) -> Vec<String> {
        self.q.as_deref().map(search_terms).unwrap_or_default()
    }

    /// The query string that shows this view (defaults left out).
    pub fn to_query_string(&self) -> String {
        let mut parts: Vec<(&'static str, String)> = Vec::new();
        if let Some(q) = &self.q {
            parts.push(("q", q.clone()));
        }
        if let Some(kind) = &self.kind {
            parts.push(("type", kind.clone()));
        }
        if let Some(method) = &self.method {
            parts.push(("method", method.clone()));
        }
        if self.hide_me {
            parts.push(("hide_me", "1".into()));
        }
        self.times().push_params(&mut parts);
        if self.sort != SessionSort::Date {
            parts.push(("sort", self.sort.as_str().to_string()));
        }
        push_direction(&mut parts, self.descending, self.sort.default_descending());
        self.paging().push_params(&mut parts);
        if let Some(every) = self.refresh {
            parts.push(("refresh", every.code().to_string()));
        }
        query_string(parts)
    }

    /// Back to the first page, keeping filters and auto refresh.
    pub fn first_page(self) -> Self {
        Self {
            page: 1,
            cursor: None,
            ..self
        }
    }

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
    pub fn sorted_by(self, column: SessionSort) -> Self {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> + 'a {
        move |key| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    #[test]
    fn every_part_round_trips_through_the_url() {
        let q = SessionQuery {
            page: 3,
            per_page: 50,
            cursor: Some(Cursor::After(77)),
            range: None,
            from: Some(1_761_566_400_000_000),
            to: Some(1_761_739_200_000_000),
            q: Some("ann /settings".into()),
            kind: Some("API".into()),
            method: Some("POST".into()),
            hide_me: true,
            sort: SessionSort::Url,
            descending: true,
            refresh: Some(RefreshEvery::Min1),
            api_limit: false,
        };
        let s = q.to_query_string();
        assert!(s.contains("hide_me=1") && s.contains("type=API") && s.contains("refresh=1m"));
        assert!(s.contains("sort=url") && s.contains("dir=desc"));
        let pairs: Vec<(String, String)> = s
            .trim_start_matches('?')
            .split('&')
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap();
                (k.to_string(), v.replace("%20", " ").replace("%2F", "/"))
            })
            .collect();
        let back = SessionQuery::from_params(|key| {
            pairs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        })
        .unwrap();
        assert_eq!(back, q);
        assert_eq!(SessionQuery::default().to_query_string(), "");
        assert!(!SessionQuery::default().is_filtered());
    }

    #[test]
    fn malformed_params_are_refused_naming_them() {
        for (key, value) in [
            ("type", "CLI"),
            ("method", "BREW"),
            ("hide_me", "yes"),
            ("size", "3"),
            ("range", "9y"),
            ("from", "tomorrow"),
            ("refresh", "1s"),
            ("after", "x"),
            ("sort", "user_id"),
            ("dir", "up"),
        ] {
            let err = SessionQuery::from_params(params(&[(key, value)])).unwrap_err();
            assert!(
                matches!(&err, AppError::BadRequest(m) if m.starts_with(key)),
                "{key}={value}: {err:?}"
            );
        }
        let lower =
            SessionQuery::from_params(params(&[("type", "web"), ("method", "get")])).unwrap();
        assert_eq!(
            (lower.kind.as_deref(), lower.method.as_deref()),
            (Some("WEB"), Some("GET"))
        );
    }

    #[test]
    fn search_words_shorter_than_three_characters_are_refused_naming_them() {
        let with = |q: &str| SessionQuery {
            q: Some(q.into()),
            ..SessionQuery::default()
        };
        for ok in ["ann", "10.1.0.3 /settings", "\"a b\"", "Łód"] {
            assert!(with(ok).validate().is_ok(), "{ok}");
        }
        for (short, word) in [
            ("ad", "ad"),
            ("ann q=", "q="),
            ("\"x\" users", "x"),
            ("łó", "łó"),
        ] {
            let err = with(short).validate().unwrap_err();
            assert!(
                matches!(&err, AppError::BadRequest(m)
                    if m.starts_with("q: search words need at least 3 characters")
                        && m.contains(&format!("\"{word}\""))),
                "{short}: {err:?}"
            );
        }
    }

    #[test]
    fn sorting_flips_the_current_column_and_starts_others_in_their_direction() {
        let q = SessionQuery::default().at(3, Some(Cursor::After(9)));
        let by_url = q.clone().sorted_by(SessionSort::Url);
        assert_eq!(
            (by_url.sort, by_url.descending, by_url.page),
            (SessionSort::Url, false, 1)
        );
        assert_eq!(by_url.cursor, None);
        assert!(by_url.clone().sorted_by(SessionSort::Url).descending);
        assert!(by_url.sorted_by(SessionSort::Duration).descending);
        assert!(
            !q.sorted_by(SessionSort::Date).descending,
            "date flips to oldest first"
        );
        for column in SessionSort::ALL {
            assert_eq!(SessionSort::parse(column.as_str()).unwrap(), column);
        }
    }
}
