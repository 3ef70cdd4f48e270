//! `POST /api/v1/events`: other systems send their audit events.
//!
//! The body is one event object or an array of them (a batch). Every event is
//! validated before anything is stored; the batch is stored in one
//! transaction; the answer is `201 {"ids": [...]}`. Errors are
//! `{"error": "..."}` with 400 (naming the field), 401, 413, 415 or 422.
//!
//! A request may carry an `Idempotency-Key` header (per API key, kept 24
//! hours): a retry with the same key and the same body answers the first
//! answer (the same ids, `Idempotent-Replayed: true`) and stores nothing; the
//! same key with another body gets 422.

use super::api_keys;
use super::state::AppState;
use super::store::{self, NewEvent};
use crate::errors::{AppError, AppResult};
use crate::models::{Initiator, InitiatorKind};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use std::net::IpAddr;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Ref, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

const MAX_TEXT: usize = 512;
const MAX_DESCRIPTION: usize = 10_000;
const MAX_ACTION: usize = 64;
const MAX_ROLE: usize = 64;
/// Events may be stamped a little ahead of our clock, not more.
const MAX_FUTURE_MICROS: i64 = 24 * 3600 * 1_000_000;

/// An audit event as sent.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "action": "UPDATE", "occurred_at": "2025-10-27T12:00:00.123Z",
    "initiator": {"kind": "user", "id": 42, "name": "Ann Lee", "email": "ann@example.com", "role": "editor"},
    "ip": "203.0.113.7", "table": "invoices", "primary_key": 1234,
    "description": "Changed the due date", "before": {"due": "2025-11-01"}, "after": {"due": "2025-11-15"}
}))]
pub struct IngestEvent {
    /// Your own id for the event (1 to 255 characters, unique per API key):
    /// an event sent again with the same `event_id` and the same content is
    /// not stored twice but reported in `duplicates`; with other content it
    /// is refused (409).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255, example = "evt_01HZX3")]
    pub event_id: Option<String>,
    /// A verb: CREATE, UPDATE, DELETE, LOGIN, LOGIN_FAILED, LOGOUT, EXPORT or
    /// any other (letters, digits and `_`, starting with a letter; stored
    /// upper-case).
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[A-Za-z][A-Za-z0-9_]*$",
        example = "UPDATE"
    )]
    pub action: String,
    /// When it happened (RFC 3339, up to microseconds); default: when
    /// received; at most 24 hours ahead.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub occurred_at: Option<String>,
    /// Who did it; default: the API key that sent it.
    #[serde(default)]
    pub initiator: Option<IngestInitiator>,
    /// The actor's IPv4 or IPv6 address.
    #[serde(default)]
    pub ip: Option<String>,
    /// The table (or kind of record) acted on.
    #[serde(default)]
    #[schema(max_length = 512)]
    pub table: Option<String>,
    /// The record's key.
    #[serde(default)]
    pub primary_key: Option<KeyValue>,
    #[serde(default)]
    #[schema(max_length = 10000)]
    pub description: Option<String>,
    /// The record before the change: any JSON.
    #[serde(default)]
    pub before: Option<Value>,
    /// The record after the change: any JSON.
    #[serde(default)]
    pub after: Option<Value>,
    #[serde(default)]
    #[schema(max_length = 512)]
    pub user_agent: Option<String>,
    #[serde(default)]
    #[schema(max_length = 512)]
    pub request_id: Option<String>,
    #[serde(default)]
    #[schema(max_length = 512)]
    pub session_id: Option<String>,
}

/// The initiator of an event as sent.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestInitiator {
    #[schema(value_type = super::openapi::ApiInitiatorKind)]
    pub kind: String,
    /// The initiator's id in your system (a user initiator needs an id, a
    /// name or an email).
    #[serde(default)]
    pub id: Option<KeyValue>,
    #[serde(default)]
    #[schema(max_length = 512)]
    pub name: Option<String>,
    #[serde(default)]
    #[schema(max_length = 512)]
    pub email: Option<String>,
    /// The initiator's role in your system.
    #[serde(default)]
    #[schema(max_length = 64)]
    pub role: Option<String>,
}

/// A primary key or id may be sent as a string or a number.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum KeyValue {
    Text(String),
    Number(serde_json::Number),
}

impl PartialSchema for KeyValue {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .max_length(Some(512)),
            )
            .item(ObjectBuilder::new().schema_type(Type::Number))
            .description(Some("A string or a number"))
            .into()
    }
}
impl ToSchema for KeyValue {}

/// The body of `POST /api/v1/events`: one event or a batch.
pub struct IngestBody;

impl PartialSchema for IngestBody {
    fn schema() -> RefOr<Schema> {
        let event = Ref::from_schema_name("IngestEvent");
        OneOfBuilder::new()
            .item(event.clone())
            .item(ArrayBuilder::new().items(event).min_items(Some(1)))
            .description(Some(
                "One event, or a batch of them (at most ingest-max-batch, 1,000 by default)",
            ))
            .into()
    }
}

impl ToSchema for IngestBody {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push(("IngestEvent".into(), IngestEvent::schema()));
        <IngestEvent as ToSchema>::schemas(schemas);
    }
}

impl KeyValue {
    fn into_string(self) -> String {
        match self {
            Self::Text(s) => s,
            Self::Number(n) => n.to_string(),
        }
    }
}

/// A request body's events, ready to store, each with its `event_id` (if it
/// has one).
#[derive(Debug)]
pub struct Payload {
    pub events: Vec<NewEvent>,
    pub keys: Vec<Option<store::EventKey>>,
}

/// Parses and validates a request body into events ready to store.
/// `key` is the API key that sent them (the default initiator).
pub fn parse_payload(
    body: &[u8],
    max_batch: usize,
    key: &store::ApiKey,
    now: i64,
) -> AppResult<Payload> {
    let parsed = parse_items(body, max_batch, key, now)?;
    let mut seen: std::collections::HashMap<&str, usize> = Default::default();
    for (i, (_, k)) in parsed.iter().enumerate() {
        if let Some(k) = k {
            if let Some(first) = seen.insert(&k.event_id, i) {
                return Err(AppError::bad_request(format!(
                    "[{i}].event_id: \"{}\" is also [{first}].event_id; an event_id names one event",
                    k.event_id
                )));
            }
        }
    }
    let (events, keys) = parsed.into_iter().unzip();
    Ok(Payload { events, keys })
}

type Parsed = (NewEvent, Option<store::EventKey>);

fn parse_items(
    body: &[u8],
    max_batch: usize,
    key: &store::ApiKey,
    now: i64,
) -> AppResult<Vec<Parsed>> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| AppError::bad_request(format!("body: not valid JSON ({e})")))?;
    match value {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(AppError::bad_request("body: the batch is empty"));
            }
            if items.len() > max_batch {
                return Err(AppError::bad_request(format!(
                    "body: a batch holds at most {max_batch} events, this one has {}",
                    items.len()
                )));
            }
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| parse_event(item, &format!("[{i}]."), key, now))
                .collect()
        }
        Value::Object(_) => Ok(vec![parse_event(value, "", key, now)?]),
        _ => Err(AppError::bad_request(
            "body: must be an event object or an array of events",
        )),
    }
}

/// The longest `event_id` accepted.
const MAX_EVENT_ID: usize = 255;

fn parse_event(value: Value, at: &str, key: &store::ApiKey, now: i64) -> AppResult<Parsed> {
    if !value.is_object() {
        return Err(AppError::bad_request(format!(
            "{}: must be an event object",
            at.trim_end_matches('.')
        )));
    }
    // The event as sent, keys sorted: the same event hashes the same.
    let content_hash = value.get("event_id").map(|_| {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(value.to_string()))
    });
    let raw: IngestEvent = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let field = if path == "." { String::new() } else { path };
        AppError::bad_request(format!("{at}{field}: {inner}").replace(".: ", ": "))
    })?;
    let bad = |field: &str, why: String| AppError::bad_request(format!("{at}{field}: {why}"));

    let action = raw.action.trim().to_ascii_uppercase();
    if action.is_empty()
        || action.len() > MAX_ACTION
        || !action
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        || !action.starts_with(|c: char| c.is_ascii_alphabetic())
    {
        return Err(bad(
            "action",
            format!(
                "\"{}\" is not an action: use a verb of letters, digits and underscores, at most {MAX_ACTION} long (e.g. UPDATE)",
                raw.action
            ),
        ));
    }

    let occurred_at = match raw.occurred_at {
        None => now,
        Some(text) => {
            let t = chrono::DateTime::parse_from_rfc3339(text.trim()).map_err(|_| {
                bad(
                    "occurred_at",
                    format!("\"{text}\" is not an RFC 3339 time such as 2025-10-27T12:00:00.123Z"),
                )
            })?;
            let micros = t.timestamp_micros();
            if micros < 0 {
                return Err(bad("occurred_at", format!("\"{text}\" is before 1970")));
            }
            if micros > now + MAX_FUTURE_MICROS {
                return Err(bad(
                    "occurred_at",
                    format!("\"{text}\" is more than 24 hours in the future"),
                ));
            }
            micros
        }
    };

    let ip = match raw.ip {
        None => None,
        Some(text) => Some(
            text.trim()
                .parse::<IpAddr>()
                .map_err(|_| bad("ip", format!("\"{text}\" is not an IPv4 or IPv6 address")))?,
        ),
    };

    let initiator = match raw.initiator {
        None => Initiator {
            kind: InitiatorKind::ApiKey,
            id: Some(key.id.to_string()),
            name: Some(key.label.clone()),
            email: None,
            role: None,
        },
        Some(i) => {
            let kind = InitiatorKind::parse(i.kind.trim()).ok_or_else(|| {
                bad(
                    "initiator.kind",
                    format!("\"{}\" is not one of user, system, api_key, portal", i.kind),
                )
            })?;
            let email = text(i.email, "initiator.email", MAX_TEXT, &bad)?;
            if let Some(e) = &email {
                if !e.contains('@') {
                    return Err(bad(
                        "initiator.email",
                        format!("\"{e}\" is not an email address"),
                    ));
                }
            }
            let initiator = Initiator {
                kind,
                id: text(
                    i.id.map(KeyValue::into_string),
                    "initiator.id",
                    MAX_TEXT,
                    &bad,
                )?,
                name: text(i.name, "initiator.name", MAX_TEXT, &bad)?,
                email,
                role: text(i.role, "initiator.role", MAX_ROLE, &bad)?,
            };
            if kind == InitiatorKind::User
                && initiator.id.is_none()
                && initiator.name.is_none()
                && initiator.email.is_none()
            {
                return Err(bad(
                    "initiator",
                    "a user initiator needs an id, a name or an email".into(),
                ));
            }
            initiator
        }
    };

    let json = |v: Option<Value>| v.filter(|v| !v.is_null()).map(|v| v.to_string());
    let event_key = text(raw.event_id, "event_id", MAX_EVENT_ID, &bad)?
        .zip(content_hash)
        .map(|(event_id, content_hash)| store::EventKey {
            event_id,
            content_hash,
        });

    let event = NewEvent {
        occurred_at,
        ip,
        initiator,
        action,
        table_name: text(raw.table, "table", MAX_TEXT, &bad)?,
        primary_key: text(
            raw.primary_key.map(KeyValue::into_string),
            "primary_key",
            MAX_TEXT,
            &bad,
        )?,
        description: text(raw.description, "description", MAX_DESCRIPTION, &bad)?
            .unwrap_or_default(),
        before: json(raw.before),
        after: json(raw.after),
        user_agent: text(raw.user_agent, "user_agent", MAX_TEXT, &bad)?,
        request_id: text(raw.request_id, "request_id", MAX_TEXT, &bad)?,
        session_id: text(raw.session_id, "session_id", MAX_TEXT, &bad)?,
    };
    Ok((event, event_key))
}

/// Trims an optional text field; empty becomes none; too long or with
/// control characters (other than newline and tab) is an error.
fn text(
    value: Option<String>,
    field: &str,
    max: usize,
    bad: &impl Fn(&str, String) -> AppError,
) -> AppResult<Option<String>> {
    let Some(value) = value else { return Ok(None) };
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    let len = value.chars().count();
    if len > max {
        return Err(bad(
            field,
            format!("is {len} characters long; the limit is {max}"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(bad(field, "contains control characters".into()));
    }
    Ok(Some(value.to_string()))
}

/// The longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// The axum handler of `POST /api/v1/events`.
#[utoipa::path(
    post,
    path = "/api/v1/events",
    tag = "events",
    operation_id = "ingestEvents",
    summary = "Send audit events",
    description = "One event or a batch (an array of up to `ingest-max-batch`, 1,000 by \
        default), validated whole and stored in one transaction: every event or none. Unknown \
        fields are refused. With an `Idempotency-Key`, a retry of the same body answers the \
        first answer and stores nothing.",
    params(
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$",
            description = "A key of your choosing per request (a UUID): a retry with the same key and body \
                answers the first answer; kept 24 hours per API key"),
    ),
    request_body(content = IngestBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Stored (or, for a retry, stored before): the ids in the order sent",
            body = store::IngestAnswer,
            headers(("Idempotent-Replayed" = String, description = "`true` when this answers a retry"))),
        super::openapi::IngestErrors,
    ),
    security(("api_key" = ["events:write"]))
)]
pub async fn ingest_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match ingest(&state, &headers, body).await {
        Ok(outcome) => {
            let body = Json(outcome.answer());
            let mut response = (StatusCode::CREATED, body).into_response();
            if matches!(outcome, store::Ingested::Replayed(_)) {
                response.headers_mut().insert(
                    "idempotent-replayed",
                    axum::http::HeaderValue::from_static("true"),
                );
            }
            response
        }
        Err(e) => e.into_response(),
    }
}

/// The request's `Idempotency-Key`, if it has one: 1 to 255 visible ASCII
/// characters (a UUID, say).
pub fn idempotency_key(headers: &HeaderMap) -> AppResult<Option<String>> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().ok().map(str::trim).unwrap_or_default();
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(AppError::bad_request(format!(
            "Idempotency-Key: must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters (a UUID, for example)"
        )));
    }
    Ok(Some(key.to_string()))
}

async fn ingest(state: &AppState, headers: &HeaderMap, body: Body) -> AppResult<store::Ingested> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let key = api_keys::authenticate(&state.db, authorization).await?;
    api_keys::require_scope(&key, crate::models::SCOPE_EVENTS_WRITE)?;

    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/json") {
        return Err(AppError::UnsupportedMediaType(
            "Content-Type must be application/json".into(),
        ));
    }
    let idempotency = idempotency_key(headers)?;

    let limit = state.config.ingest_max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(AppError::PayloadTooLarge(limit));
    }
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| AppError::PayloadTooLarge(limit))?;

    let payload = parse_payload(&bytes, state.config.ingest_max_batch, &key, state.db.now())?;
    let idempotency = idempotency.map(|key| store::Idempotency {
        key,
        body_hash: {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(&bytes))
        },
    });
    store::ingest_events(
        &state.db,
        payload.events,
        &payload.keys,
        key.id,
        idempotency.as_ref(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> store::ApiKey {
        store::ApiKey {
            id: 7,
            label: "billing".into(),
            scopes: vec!["events:write".into()],
        }
    }

    const NOW: i64 = 1_761_566_400_000_000;

    fn err(body: &str) -> String {
        match parse_payload(body.as_bytes(), 1000, &key(), NOW) {
            Err(AppError::BadRequest(m)) => m,
            other => panic!("expected a 400 for {body}, got {other:?}"),
        }
    }

    #[test]
    fn one_event_with_defaults() {
        let events = parse_payload(br#"{"action":"publish"}"#, 1000, &key(), NOW)
            .unwrap()
            .events;
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(e.action, "PUBLISH");
        assert_eq!(e.occurred_at, NOW);
        assert_eq!(e.initiator.kind, InitiatorKind::ApiKey);
        assert_eq!(e.initiator.name.as_deref(), Some("billing"));
        assert_eq!(e.initiator.id.as_deref(), Some("7"));
    }

    #[test]
    fn full_event_is_kept_field_by_field() {
        let body = r#"{"action":"UPDATE","occurred_at":"2025-10-27T12:00:00.123456+02:00",
            "initiator":{"kind":"user","id":42,"name":"Ann","email":"ann@example.com"},
            "ip":"2001:db8::1","table":"invoices","primary_key":1234,"description":"Changed",
            "before":{"a":1},"after":{"a":2,"b":[1,2]},"user_agent":"curl/8","request_id":"r1","session_id":"s1"}"#;
        let e = parse_payload(body.as_bytes(), 1000, &key(), NOW)
            .unwrap()
            .events
            .remove(0);
        assert_eq!(e.occurred_at, 1_761_559_200_123_456);
        assert_eq!(e.initiator.id.as_deref(), Some("42"));
        assert_eq!(e.ip, Some("2001:db8::1".parse().unwrap()));
        assert_eq!(e.primary_key.as_deref(), Some("1234"));
        assert_eq!(e.after.as_deref(), Some(r#"{"a":2,"b":[1,2]}"#));
        assert_eq!(e.session_id.as_deref(), Some("s1"));
    }

    #[test]
    fn errors_name_the_field() {
        assert!(err(r#"{"action":"UPDATE","ip":"999.1.1.1"}"#).starts_with("ip:"));
        assert!(err(r#"{"action":"UP DATE"}"#).starts_with("action:"));
        assert!(err(r#"{"action":""}"#).starts_with("action:"));
        assert!(err(r#"{"description":"x"}"#).contains("action"));
        assert!(err(r#"{"action":"A","occurred_at":"yesterday"}"#).starts_with("occurred_at:"));
        assert!(
            err(r#"{"action":"A","occurred_at":"2999-01-01T00:00:00Z"}"#)
                .starts_with("occurred_at:")
        );
        assert!(
            err(r#"{"action":"A","initiator":{"kind":"robot"}}"#).starts_with("initiator.kind:")
        );
        assert!(
            err(r#"{"action":"A","initiator":{"kind":"user","email":"nope"}}"#)
                .starts_with("initiator.email:")
        );
        assert!(err(r#"{"action":"A","initiator":{"kind":"user"}}"#).starts_with("initiator:"));
        assert!(err(r#"{"action":"A","colour":"red"}"#).contains("colour"));
        assert!(err(r#"{"action":"A","table":5}"#).starts_with("table:"));
        assert!(err(&format!(
            r#"{{"action":"A","table":"{}"}}"#,
            "x".repeat(600)
        ))
        .starts_with("table:"));
        assert!(err(r#"[{"action":"A"},{"action":"B","ip":"x"}]"#).starts_with("[1].ip:"));
        assert!(err(r#"[{"action":"A"},7]"#).starts_with("[1]:"));
        assert!(err("[]").contains("empty"));
        assert!(err("42").starts_with("body:"));
        assert!(err("{not json").starts_with("body:"));
    }

    #[test]
    fn an_event_id_is_hashed_with_the_event_as_sent_and_named_once_a_batch() {
        let p = parse_payload(
            br#"[{"action":"A","event_id":" e-1 ","table":"t"},{"table":"t","event_id":" e-1 ","action":"A"},{"action":"A"}]"#,
            1000,
            &key(),
            NOW,
        );
        let m = p.unwrap_err().to_string();
        assert!(
            m.starts_with("[1].event_id: \"e-1\" is also [0].event_id"),
            "{m}"
        );
        let p = parse_payload(
            br#"[{"action":"A","event_id":"e-1"},{"action":"A","event_id":"e-2"},{"action":"A"}]"#,
            1000,
            &key(),
            NOW,
        )
        .unwrap();
        let keys: Vec<Option<&str>> = p
            .keys
            .iter()
            .map(|k| k.as_ref().map(|k| k.event_id.as_str()))
            .collect();
        assert_eq!(keys, [Some("e-1"), Some("e-2"), None]);
        let hash = |body: &str| {
            parse_payload(body.as_bytes(), 1000, &key(), NOW)
                .unwrap()
                .keys[0]
                .clone()
                .unwrap()
                .content_hash
        };
        // The order of fields does not matter; a value does.
        assert_eq!(
            hash(r#"{"action":"A","event_id":"e","table":"t"}"#),
            hash(r#"{"table":"t","event_id":"e","action":"A"}"#)
        );
        assert_ne!(
            hash(r#"{"action":"A","event_id":"e","table":"t"}"#),
            hash(r#"{"action":"A","event_id":"e","table":"u"}"#)
        );
        assert!(err(&format!(
            r#"{{"action":"A","event_id":"{}"}}"#,
            "x".repeat(256)
        ))
        .starts_with("event_id:"));
        assert!(err(r#"{"action":"A","event_id":5}"#).starts_with("event_id:"));
    }

    #[test]
    fn batch_limit_is_enforced() {
        let batch = format!("[{}]", [r#"{"action":"A"}"#; 3].join(","));
        assert_eq!(
            parse_payload(batch.as_bytes(), 3, &key(), NOW)
                .unwrap()
                .events
                .len(),
            3
        );
        let m = match parse_payload(batch.as_bytes(), 2, &key(), NOW) {
            Err(AppError::BadRequest(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(m.contains("at most 2"), "{m}");
    }
}
