//! `GET /api/v1/events`: other systems read the log with a key that has the
//! `events:read` scope.
//!
//! The Activity Log's own filters, by the same names (`user`, `action`,
//! `table`, `ip`, `q`, `from`, `to`, `range`), and `limit` (1 to 1,000;
//! default 100). Two orders:
//! - newest first (the default): `next` continues with `after=<last id>`,
//!   until the last page, which has no `next`;
//! - checkpoint mode (`order=id`, with `after_id=N` from the second call
//!   on): ascending ids, so a poller never misses an event that arrived
//!   late with an old time and never gets one twice; when it has caught up
//!   the page is empty and `next` is the same URL, to call again later.
//!
//! The answer is `{"events": [...], "next": "/api/v1/events?..."}`, with
//! `next` also in a `Link: <...>; rel="next"` header.

use super::api_keys;
use super::state::AppState;
use super::store;
use crate::errors::{AppError, AppResult};
use crate::models::{format_rfc3339, EventQuery, EventRow};
use crate::query::{encode_component, Cursor, MAX_API_LIMIT};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// The scope that reads events.
pub const SCOPE_EVENTS_READ: &str = "events:read";
/// Rows a page holds when no `limit` is given.
pub const DEFAULT_LIMIT: u32 = 100;

/// The parameters the endpoint knows; any other is refused by name.
const FILTERS: [&str; 8] = ["user", "action", "table", "ip", "q", "from", "to", "range"];
const KNOWN: [&str; 4] = ["limit", "after", "order", "after_id"];

/// A request's parameters, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct EventsRequest {
    pub query: EventQuery,
    pub limit: u32,
    /// `Some(N)` in checkpoint mode (`order=id`): ids above N.
    pub after_id: Option<i64>,
    /// The filters as sent, for the next page's URL.
    filters: Vec<(String, String)>,
}

impl EventsRequest {
    /// Reads the parameters; a malformed or unknown one is an error naming it.
    pub fn parse(pairs: &[(String, String)]) -> AppResult<Self> {
        for (name, _) in pairs {
            if !FILTERS.contains(&name.as_str()) && !KNOWN.contains(&name.as_str()) {
                return Err(AppError::bad_request(format!(
                    "{name}: not a parameter of /api/v1/events (filters: {}; paging: limit, after, order=id with after_id)",
                    FILTERS.join(", ")
                )));
            }
            if pairs.iter().filter(|(n, _)| n == name).count() > 1 {
                return Err(AppError::bad_request(format!(
                    "{name}: given more than once (several actions go in one: action=LOGIN,LOGOUT)"
                )));
            }
        }
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let limit = match get("limit") {
            None => DEFAULT_LIMIT,
            Some(text) => match text.trim().parse::<u32>() {
                Ok(n) if (1..=MAX_API_LIMIT).contains(&n) => n,
                _ => {
                    return Err(AppError::bad_request(format!(
                        "limit: \"{text}\" is not a number from 1 to {MAX_API_LIMIT}"
                    )))
                }
            },
        };
        let checkpoint = match get("order") {
            None => false,
            Some("id") => true,
            Some(other) => {
                return Err(AppError::bad_request(format!(
                    "order: \"{other}\" is not an order; use order=id (checkpoint mode) or leave it out (newest first)"
                )))
            }
        };
        let after_id = match (checkpoint, get("after_id"), get("after")) {
            (true, _, Some(_)) => {
                return Err(AppError::bad_request(
                    "after: checkpoint mode (order=id) continues with after_id",
                ))
            }
            (false, Some(_), _) => return Err(AppError::bad_request(
                "after_id: only in checkpoint mode (order=id); newest first continues with after",
            )),
            (true, Some(text), _) => Some(match text.trim().parse::<i64>() {
                Ok(n) if n >= 0 => n,
                _ => {
                    return Err(AppError::bad_request(format!(
                        "after_id: \"{text}\" is not an event id (0 or more)"
                    )))
                }
            }),
            (true, None, _) => Some(0),
            (false, None, _) => None,
        };
        let mut query = EventQuery::from_params(|name| match name {
            "after" if after_id.is_none() => get("after"),
            _ if FILTERS.contains(&name) => get(name),
            _ => None,
        })?;
        query.per_page = limit;
        query.validate()?;
        let filters = FILTERS
            .iter()
            .filter_map(|name| get(name).map(|v| (name.to_string(), v.to_string())))
            .collect();
        Ok(Self {
            query,
            limit,
            after_id,
            filters,
        })
    }

    /// The URL of the page after the one whose last id is `last`.
    fn next_url(&self, last: i64) -> String {
        let mut parts = self.filters.clone();
        if self.limit != DEFAULT_LIMIT {
            parts.push(("limit".into(), self.limit.to_string()));
        }
        match self.after_id {
            Some(_) => {
                parts.push(("order".into(), "id".into()));
                parts.push(("after_id".into(), last.to_string()));
            }
            None => parts.push(("after".into(), last.to_string())),
        }
        let query: Vec<String> = parts
            .iter()
            .map(|(k, v)| format!("{k}={}", encode_component(v)))
            .collect();
        format!("/api/v1/events?{}", query.join("&"))
    }
}

/// An event as the API shows it.
pub fn event_json(row: &EventRow) -> Value {
    json!({
        "id": row.id,
        "occurred_at": format_rfc3339(row.occurred_at),
        "action": row.action,
        "initiator": {
            "kind": row.initiator.kind.as_str(),
            "id": row.initiator.id,
            "name": row.initiator.name,
            "email": row.initiator.email,
            "role": row.initiator.role,
        },
        "ip": row.ip,
        "table": row.table_name,
        "primary_key": row.primary_key,
        "description": row.description,
        "has_changes": row.has_changes,
    })
}

/// One page: the events and the next page's URL (none after the last page
/// of newest first).
pub async fn read_events(
    db: &store::Db,
    request: &EventsRequest,
) -> AppResult<(Vec<EventRow>, Option<String>)> {
    match request.after_id {
        Some(after_id) => {
            let rows = store::events_after_id(db, &request.query, after_id, request.limit).await?;
            let last = rows.last().map_or(after_id, |r| r.id);
            let next = request.next_url(last);
            Ok((rows, Some(next)))
        }
        None => {
            let page = store::list_events(db, &request.query).await?;
            let next = match (page.has_next, page.rows.last()) {
                (true, Some(last)) => Some(request.next_url(last.id)),
                _ => None,
            };
            Ok((page.rows, next))
        }
    }
}

/// The axum handler.
pub async fn list_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let answer = async {
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let key = api_keys::authenticate(&state.db, authorization).await?;
        api_keys::require_scope(&key, SCOPE_EVENTS_READ)?;
        let Query(pairs) =
            params.map_err(|_| AppError::bad_request("the query string is not form-encoded"))?;
        let request = EventsRequest::parse(&pairs)?;
        if request
            .query
            .cursor
            .is_some_and(|c| !matches!(c, Cursor::After(_)))
        {
            return Err(AppError::bad_request(
                "before, end: the API pages with after",
            ));
        }
        read_events(&state.db, &request).await
    }
    .await;
    match answer {
        Ok((rows, next)) => {
            let events: Vec<Value> = rows.iter().map(event_json).collect();
            let mut response = (
                StatusCode::OK,
                Json(json!({ "events": events, "next": next })),
            )
                .into_response();
            if let Some(link) = next
                .map(|n| format!("<{n}>; rel=\"next\""))
                .and_then(|l| HeaderValue::from_str(&l).ok())
            {
                response.headers_mut().insert(header::LINK, link);
            }
            response
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parameters_are_the_activity_logs_and_errors_name_them() {
        let r = EventsRequest::parse(&pairs(&[("action", "LOGIN,LOGOUT"), ("table", "users")]))
            .unwrap();
        assert_eq!(r.query.actions, ["LOGIN", "LOGOUT"]);
        assert_eq!(r.query.table.as_deref(), Some("users"));
        assert_eq!(r.limit, DEFAULT_LIMIT);
        assert_eq!(r.after_id, None);
        assert_eq!(
            r.next_url(42),
            "/api/v1/events?action=LOGIN,LOGOUT&table=users&after=42"
        );
        let c = EventsRequest::parse(&pairs(&[("order", "id"), ("limit", "1000")])).unwrap();
        assert_eq!(c.after_id, Some(0));
        assert_eq!(
            c.next_url(7),
            "/api/v1/events?limit=1000&order=id&after_id=7"
        );
        for (bad, names) in [
            (vec![("limit", "0")], "limit:"),
            (vec![("limit", "1001")], "limit:"),
            (vec![("size", "50")], "size: not a parameter"),
            (vec![("order", "time")], "order:"),
            (vec![("after_id", "5")], "after_id: only in checkpoint mode"),
            (
                vec![("order", "id"), ("after", "5")],
                "after: checkpoint mode",
            ),
            (vec![("order", "id"), ("after_id", "x")], "after_id:"),
            (vec![("from", "yesterday")], "from:"),
            (
                vec![("action", "LOGIN"), ("action", "LOGOUT")],
                "action: given more than once",
            ),
        ] {
            let err = EventsRequest::parse(&pairs(&bad)).unwrap_err().to_string();
            assert!(err.starts_with(names), "{bad:?}: {err}");
        }
    }
}
