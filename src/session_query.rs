//! What the Admin Sessions page shows — filters and page — and its URL form.
//! Like the Activity Log's view, it is checked again on the server.

use crate::errors::AppError;
use crate::query::{
    check_search, non_empty, query_string, search_terms, Cursor, Paging, RefreshEvery, TimeRange,
    DEFAULT_PAGE_SIZE,
};
use serde::{Deserialize, Serialize};

/// Request types: page loads and navigations, or server-function and REST calls.
pub const REQUEST_KINDS: [&str; 2] = ["WEB", "API"];
/// HTTP methods the method filter offers.
pub const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

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
    /// Auto refresh: page state in the URL, never sent to the server.
    #[serde(skip)]
    pub refresh: Option<RefreshEvery>,
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
            refresh: None,
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
            refresh: RefreshEvery::from_params(&get)?,
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
        self.paging().validate()?;
        self.times().validate()?;
        check_search(self.q.as_deref())?;
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
            refresh: Some(RefreshEvery::Min1),
        };
        let s = q.to_query_string();
        assert!(s.contains("hide_me=1") && s.contains("type=API") && s.contains("refresh=1m"));
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
}
