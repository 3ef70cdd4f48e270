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
//!
//! `GET /api/v1/events/{id}`: one event with its details, before and after
//! (as JSON), and its chain hash.

use super::api_keys;
use super::openapi::{
    ApiErrorBody, ApiEvent, ApiEventDetail, ApiSession, EventsPage, SessionsPage,
};
use super::state::AppState;
use super::store;
use crate::errors::{AppError, AppResult};
use crate::models::{EventQuery, EventRow};
use crate::query::{encode_component, Cursor, MAX_API_LIMIT};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

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
        check_names(pairs, "/api/v1/events", &FILTERS, &KNOWN)?;
        let get = |name: &str| lookup(pairs, name);
        let limit = parse_limit(get("limit"))?;
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
        query.api_limit = true;
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
        url_of("/api/v1/events", &parts)
    }
}

/// Refuses a parameter the endpoint does not know, or one given twice.
fn check_names(
    pairs: &[(String, String)],
    endpoint: &str,
    filters: &[&str],
    paging: &[&str],
) -> AppResult<()> {
    for (name, _) in pairs {
        if !filters.contains(&name.as_str()) && !paging.contains(&name.as_str()) {
            return Err(AppError::bad_request(format!(
                "{name}: not a parameter of {endpoint} (filters: {}; paging: {})",
                filters.join(", "),
                paging.join(", ")
            )));
        }
        if pairs.iter().filter(|(n, _)| n == name).count() > 1 {
            return Err(AppError::bad_request(format!(
                "{name}: given more than once (several values go in one, comma-separated)"
            )));
        }
    }
    Ok(())
}

fn lookup<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// `limit`: 1 to [`MAX_API_LIMIT`], [`DEFAULT_LIMIT`] when absent.
fn parse_limit(text: Option<&str>) -> AppResult<u32> {
    match text {
        None => Ok(DEFAULT_LIMIT),
        Some(text) => match text.trim().parse::<u32>() {
            Ok(n) if (1..=MAX_API_LIMIT).contains(&n) => Ok(n),
            _ => Err(AppError::bad_request(format!(
                "limit: \"{text}\" is not a number from 1 to {MAX_API_LIMIT}"
            ))),
        },
    }
}

fn url_of(path: &str, parts: &[(String, String)]) -> String {
    let query: Vec<String> = parts
        .iter()
        .map(|(k, v)| format!("{k}={}", encode_component(v)))
        .collect();
    format!("{path}?{}", query.join("&"))
}

/// A page as JSON, its `next` also in a `Link` header.
fn page_response(page: impl serde::Serialize, next: Option<&str>) -> Response {
    let mut response = (StatusCode::OK, Json(page)).into_response();
    if let Some(link) = next
        .map(|n| format!("<{n}>; rel=\"next\""))
        .and_then(|l| HeaderValue::from_str(&l).ok())
    {
        response.headers_mut().insert(header::LINK, link);
    }
    response
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

/// The axum handler of `GET /api/v1/events`.
#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "events",
    operation_id = "listEvents",
    summary = "Read the Activity Log",
    description = "The Activity Log's filters by the same names, newest first (continue with \
        `next`, also in `Link: <...>; rel=\"next\"`; the last page has none), or in checkpoint \
        mode (`order=id`, then `after_id` from each `next`): ascending ids, so a poller never \
        skips an event that arrived late with an old time nor gets one twice; when caught up \
        the page is empty and `next` is the same URL. Reads are audited (one API_READ event \
        per key and minute) and rate-limited per key.",
    params(
        ("user" = Option<String>, Query, description = "The initiator: a name, email or id, as the Activity Log's user filter"),
        ("action" = Option<String>, Query, description = "One action or several, comma-separated (LOGIN,LOGOUT)"),
        ("table" = Option<String>, Query, description = "The table acted on"),
        ("ip" = Option<String>, Query, description = "An IP address or a CIDR network (10.0.0.0/8, 2001:db8::/32)"),
        ("q" = Option<String>, Query, description = "Keywords: description, initiator, table, key and IP"),
        ("from" = Option<String>, Query, description = "Events at or after this time, UTC (2025-10-27T12:00Z)"),
        ("to" = Option<String>, Query, description = "Events at or before this time, UTC (2025-10-27T13:00Z)"),
        ("range" = Option<super::openapi::RollingRange>, Query),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Events a page holds (default 100)"),
        ("after" = Option<i64>, Query, minimum = 1, description = "Newest first: the page after this event id (from next)"),
        ("order" = Option<super::openapi::EventsOrder>, Query),
        ("after_id" = Option<i64>, Query, minimum = 0, description = "Checkpoint mode: events with ids above this one (from next)"),
    ),
    responses(
        (status = 200, description = "A page of events", body = EventsPage,
            headers(("Link" = String, description = "`<next>; rel=\"next\"` when there is a next page"))),
        super::openapi::ReadErrors,
    ),
    security(("api_key" = ["events:read"]))
)]
pub async fn list_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let key = match reader(&state, &headers, SCOPE_EVENTS_READ).await {
        Ok(key) => key,
        Err(refused) => return refused,
    };
    let answer = async {
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
            audit(&state, &key, "/api/v1/events", rows.len()).await;
            let link = next.clone();
            let events = rows.iter().map(ApiEvent::from).collect();
            page_response(EventsPage { events, next }, link.as_deref())
        }
        Err(e) => e.into_response(),
    }
}

/// The scope that reads Admin Sessions.
pub const SCOPE_SESSIONS_READ: &str = "sessions:read";
const SESSION_FILTERS: [&str; 6] = ["q", "type", "method", "from", "to", "range"];

/// The axum handler of `GET /api/v1/sessions`: Admin Sessions, newest first,
/// with its filters by the page's names (`q`, `type`, `method`, `from`, `to`, `range`), `limit`
/// and `after`, in the shape of `/api/v1/events`.
#[utoipa::path(
    get,
    path = "/api/v1/sessions",
    tag = "sessions",
    operation_id = "listSessions",
    summary = "Read Admin Sessions",
    description = "The dashboard's requests, newest first, with Admin Sessions' filters; pages \
        as `GET /api/v1/events` does (`next`, `Link`).",
    params(
        ("q" = Option<String>, Query, description = "Keywords: admin, URL, IP"),
        ("type" = Option<super::openapi::RequestKindFilter>, Query),
        ("method" = Option<super::openapi::MethodFilter>, Query),
        ("from" = Option<String>, Query, description = "Requests at or after this time, UTC (2025-10-27T12:00Z)"),
        ("to" = Option<String>, Query, description = "Requests at or before this time, UTC (2025-10-27T13:00Z)"),
        ("range" = Option<super::openapi::RollingRange>, Query),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Requests a page holds (default 100)"),
        ("after" = Option<i64>, Query, minimum = 1, description = "The page after this request id (from next)"),
    ),
    responses(
        (status = 200, description = "A page of requests", body = SessionsPage,
            headers(("Link" = String, description = "`<next>; rel=\"next\"` when there is a next page"))),
        super::openapi::ReadErrors,
    ),
    security(("api_key" = ["sessions:read"]))
)]
pub async fn list_sessions(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let key = match reader(&state, &headers, SCOPE_SESSIONS_READ).await {
        Ok(key) => key,
        Err(refused) => return refused,
    };
    let answer = async {
        let Query(pairs) =
            params.map_err(|_| AppError::bad_request("the query string is not form-encoded"))?;
        check_names(
            &pairs,
            "/api/v1/sessions",
            &SESSION_FILTERS,
            &["limit", "after"],
        )?;
        let limit = parse_limit(lookup(&pairs, "limit"))?;
        let mut query = crate::session_query::SessionQuery::from_params(|name| {
            (SESSION_FILTERS.contains(&name) || name == "after")
                .then(|| lookup(&pairs, name))
                .flatten()
        })?;
        query.per_page = limit;
        query.api_limit = true;
        // No signed-in user: every admin's requests (the id matches none).
        let page = store::list_admin_sessions(&state.db, &query, 0).await?;
        let next = match (page.has_next, page.rows.last()) {
            (true, Some(last)) => {
                let mut parts: Vec<(String, String)> = SESSION_FILTERS
                    .iter()
                    .filter_map(|n| lookup(&pairs, n).map(|v| (n.to_string(), v.to_string())))
                    .collect();
                if limit != DEFAULT_LIMIT {
                    parts.push(("limit".into(), limit.to_string()));
                }
                parts.push(("after".into(), last.id.to_string()));
                Some(url_of("/api/v1/sessions", &parts))
            }
            _ => None,
        };
        let sessions = page.rows.iter().map(ApiSession::from).collect();
        AppResult::Ok(SessionsPage { sessions, next })
    }
    .await;
    match answer {
        Ok(page) => {
            audit(&state, &key, "/api/v1/sessions", page.sessions.len()).await;
            let link = page.next.clone();
            page_response(page, link.as_deref())
        }
        Err(e) => e.into_response(),
    }
}

/// The key of a request, which must have `scope`.
async fn reader(
    state: &AppState,
    headers: &HeaderMap,
    scope: &str,
) -> Result<store::ApiKey, Response> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let key = api_keys::authenticate(&state.db, authorization)
        .await
        .and_then(|key| api_keys::require_scope(&key, scope).map(|()| key))
        .map_err(IntoResponse::into_response)?;
    let per_minute = state.config.api_reads_per_minute;
    if let Err(wait) = state.api.admit(key.id, per_minute, state.db.now()) {
        let mut response = AppError::TooManyRequests(format!(
            "rate limit: {per_minute} reads a minute per API key; retry in {wait} s"
        ))
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
        return Err(response);
    }
    Ok(key)
}

/// Counts a read in its key's minute; a minute that has ended is written
/// to the log as one `API_READ` event.
async fn audit(state: &AppState, key: &store::ApiKey, path: &'static str, rows: usize) {
    let ended = state.api.tally(key, path, rows as u64, state.db.now());
    if let Some(tally) = ended {
        write_tallies(&state.db, vec![tally]).await;
    }
}

/// The axum handler of `GET /api/v1/events/{id}`.
#[utoipa::path(
    get,
    path = "/api/v1/events/{id}",
    tag = "events",
    operation_id = "getEvent",
    summary = "Read one event with its details",
    params(("id" = i64, Path, minimum = 1, description = "The event's id")),
    responses(
        (status = 200, description = "The event, its before and after data and its chain hash", body = ApiEventDetail),
        (status = 404, description = "No such event (never stored, or deleted)", body = ApiErrorBody,
            example = json!({"error": "event 123456 not found"})),
        super::openapi::ReadErrors,
    ),
    security(("api_key" = ["events:read"]))
)]
pub async fn get_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let key = match reader(&state, &headers, SCOPE_EVENTS_READ).await {
        Ok(key) => key,
        Err(refused) => return refused,
    };
    let answer = async {
        let id = match id.parse::<i64>() {
            Ok(id) if id > 0 => id,
            _ => {
                return Err(AppError::bad_request(format!(
                    "id: \"{id}\" is not an event id"
                )))
            }
        };
        Ok(ApiEventDetail::from(store::api_event(&state.db, id).await?))
    }
    .await;
    match answer {
        Ok(body) => {
            audit(&state, &key, "/api/v1/events/{id}", 1).await;
            (StatusCode::OK, Json(body)).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// A key's token bucket: `tokens` at time `at` (microseconds).
struct Bucket {
    tokens: f64,
    at: i64,
}

/// A key's reads in one minute.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadTally {
    pub key_id: i64,
    pub label: String,
    /// The minute's start (microseconds).
    pub minute: i64,
    pub requests: u64,
    pub rows: u64,
    pub paths: std::collections::BTreeMap<&'static str, u64>,
}

const MINUTE: i64 = 60_000_000;

/// The read API's rate limits (a token bucket per key, in this server) and
/// the tally of each key's reads per minute, for the log.
#[derive(Default)]
pub struct ApiGuard {
    buckets: std::sync::Mutex<std::collections::HashMap<i64, Bucket>>,
    tallies: std::sync::Mutex<std::collections::HashMap<i64, ReadTally>>,
}

impl std::fmt::Debug for ApiGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiGuard").finish_non_exhaustive()
    }
}

impl ApiGuard {
    /// Takes a token from the key's bucket (which holds `per_minute` and
    /// refills at that rate); when it is empty, the whole seconds to wait.
    pub fn admit(&self, key_id: i64, per_minute: u32, now: i64) -> Result<(), u64> {
        let capacity = f64::from(per_minute.max(1));
        let per_micro = capacity / MINUTE as f64;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets.entry(key_id).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        let elapsed = (now - bucket.at).max(0) as f64;
        bucket.tokens = (bucket.tokens + elapsed * per_micro).min(capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let micros = (1.0 - bucket.tokens) / per_micro;
            Err(((micros / 1e6).ceil() as u64).max(1))
        }
    }

    /// Counts a read; the key's previous minute when this read starts a new
    /// one (to be written).
    pub fn tally(
        &self,
        key: &store::ApiKey,
        path: &'static str,
        rows: u64,
        now: i64,
    ) -> Option<ReadTally> {
        let minute = now - now.rem_euclid(MINUTE);
        let mut tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = || ReadTally {
            key_id: key.id,
            label: key.label.clone(),
            minute,
            requests: 0,
            rows: 0,
            paths: Default::default(),
        };
        let entry = tallies.entry(key.id).or_insert_with(fresh);
        let ended = (entry.minute != minute).then(|| std::mem::replace(entry, fresh()));
        entry.requests += 1;
        entry.rows += rows;
        *entry.paths.entry(path).or_default() += 1;
        ended
    }

    /// Takes every tally of a minute that has ended by `now`.
    pub fn ended(&self, now: i64) -> Vec<ReadTally> {
        let minute = now - now.rem_euclid(MINUTE);
        let mut tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        let keys: Vec<i64> = tallies
            .iter()
            .filter(|(_, t)| t.minute < minute)
            .map(|(k, _)| *k)
            .collect();
        keys.into_iter()
            .filter_map(|k| tallies.remove(&k))
            .collect()
    }
}

/// The event a minute of a key's reads becomes.
pub fn tally_event(t: &ReadTally) -> store::NewEvent {
    let paths: Vec<String> = t.paths.iter().map(|(p, n)| format!("{p} {n}")).collect();
    let plural = |n: u64| if n == 1 { "" } else { "s" };
    store::NewEvent {
        occurred_at: t.minute,
        ip: None,
        initiator: crate::models::Initiator {
            kind: crate::models::InitiatorKind::ApiKey,
            id: Some(t.key_id.to_string()),
            name: Some(t.label.clone()),
            email: None,
            role: None,
        },
        action: "API_READ".into(),
        table_name: Some("api_keys".into()),
        primary_key: Some(t.key_id.to_string()),
        description: format!(
            "API key \"{}\" made {} read{} ({} row{}) in the minute from {} UTC: {}",
            t.label,
            t.requests,
            plural(t.requests),
            t.rows,
            plural(t.rows),
            crate::models::format_utc(t.minute),
            paths.join(", ")
        ),
        before: None,
        after: None,
        user_agent: None,
        request_id: None,
        session_id: None,
    }
}

/// Writes tallies to the log (a failure is logged: reads are not refused
/// for it).
pub async fn write_tallies(db: &store::Db, tallies: Vec<ReadTally>) {
    if tallies.is_empty() {
        return;
    }
    let events: Vec<store::NewEvent> = tallies.iter().map(tally_event).collect();
    if let Err(error) = store::insert_events(db, &events, None).await {
        tracing::error!(%error, "could not write the read API's tally");
    }
}

/// Writes the minutes that have ended every ten seconds, until the server
/// stops, so a key's last minute of reads is in the log without a next read.
pub fn spawn_tally_writer(
    db: store::Db,
    guard: std::sync::Arc<ApiGuard>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(10));
        loop {
            every.tick().await;
            write_tallies(&db, guard.ended(db.now())).await;
        }
    })
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
