//! The OpenAPI 3.1 document of `/api/v1`, generated from the code: the
//! handlers' `#[utoipa::path]` annotations (in `ingest` and `read_api`) and
//! the answer types below, which the handlers build their answers from. It is
//! served at `GET /api/v1/openapi.json`, without a key.

use crate::models::{format_rfc3339, EventRow, InitiatorKind, SessionRow};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::RefOr;
use utoipa::{IntoResponses, Modify, OpenApi, PartialSchema, ToSchema};

/// Every error: what went wrong, naming the field or parameter.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"error": "limit: \"5000\" is not a number from 1 to 1000"}))]
pub struct ApiErrorBody {
    pub error: String,
}

/// Who did it.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApiInitiatorKind {
    User,
    System,
    ApiKey,
    Portal,
}

impl From<InitiatorKind> for ApiInitiatorKind {
    fn from(kind: InitiatorKind) -> Self {
        match kind {
            InitiatorKind::User => Self::User,
            InitiatorKind::System => Self::System,
            InitiatorKind::ApiKey => Self::ApiKey,
            InitiatorKind::Portal => Self::Portal,
        }
    }
}

/// The initiator of an event.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiInitiator {
    pub kind: ApiInitiatorKind,
    pub id: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    /// The initiator's role in the system that sent the event.
    pub role: Option<String>,
}

/// An event, as a row of the Activity Log.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 17, "occurred_at": "2026-11-30T09:12:44.120000Z", "action": "DELETE",
    "initiator": {"kind": "user", "id": "42", "name": "Ann Lee", "email": "ann@example.com", "role": "editor"},
    "ip": "203.0.113.7", "table": "invoices", "primary_key": "1234",
    "description": "Deleted invoice 1234", "has_changes": true
}))]
pub struct ApiEvent {
    pub id: i64,
    /// RFC 3339, UTC, with microseconds.
    #[schema(format = DateTime)]
    pub occurred_at: String,
    pub action: String,
    pub initiator: ApiInitiator,
    pub ip: Option<String>,
    pub table: Option<String>,
    pub primary_key: Option<String>,
    pub description: String,
    /// Whether `before` or `after` data exists (`GET /api/v1/events/{id}`).
    pub has_changes: bool,
}

impl From<&EventRow> for ApiEvent {
    fn from(row: &EventRow) -> Self {
        Self {
            id: row.id,
            occurred_at: format_rfc3339(row.occurred_at),
            action: row.action.clone(),
            initiator: ApiInitiator {
                kind: row.initiator.kind.into(),
                id: row.initiator.id.clone(),
                name: row.initiator.name.clone(),
                email: row.initiator.email.clone(),
                role: row.initiator.role.clone(),
            },
            ip: row.ip.clone(),
            table: row.table_name.clone(),
            primary_key: row.primary_key.clone(),
            description: row.description.clone(),
            has_changes: row.has_changes,
        }
    }
}

/// One event with its details.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiEventDetail {
    #[serde(flatten)]
    pub event: ApiEvent,
    /// When Auditdeck stored it (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub received_at: String,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub session_id: Option<String>,
    /// The record before the change: the JSON as sent (null when none).
    pub before: Value,
    /// The record after the change: the JSON as sent (null when none).
    pub after: Value,
    /// The event's link in the hash chain (hex SHA-256), as the Integrity
    /// page and the checkpoints show it; null for an event the chain no
    /// longer holds.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub chain_hash: Option<String>,
}

impl From<super::store::ApiEvent> for ApiEventDetail {
    fn from(event: super::store::ApiEvent) -> Self {
        Self {
            event: ApiEvent::from(&event.row),
            received_at: format_rfc3339(event.received_at),
            user_agent: event.user_agent,
            request_id: event.request_id,
            session_id: event.session_id,
            before: stored_json(event.before.as_deref()),
            after: stored_json(event.after.as_deref()),
            chain_hash: event.chain_hash,
        }
    }
}

/// Before or after data: the JSON as stored (text that is not JSON, as a
/// string).
fn stored_json(text: Option<&str>) -> Value {
    text.map(|t| serde_json::from_str(t).unwrap_or_else(|_| Value::String(t.to_string())))
        .unwrap_or(Value::Null)
}

/// A page of events.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventsPage {
    pub events: Vec<ApiEvent>,
    /// The next page's URL (also in the `Link` header); null after the last
    /// page of newest first. In checkpoint mode it is always there (the same
    /// URL when caught up).
    pub next: Option<String>,
}

/// The admin a request of Admin Sessions was made by.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiSessionUser {
    pub id: Option<String>,
    pub name: String,
    pub email: String,
}

/// `WEB` (the dashboard) or `API`.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum ApiRequestKind {
    Web,
    Api,
}

/// A request of Admin Sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiSession {
    pub id: i64,
    #[schema(format = DateTime)]
    pub occurred_at: String,
    pub user: ApiSessionUser,
    pub ip: Option<String>,
    /// Path and query, with secret parameter values masked.
    pub url: String,
    pub kind: ApiRequestKind,
    pub method: String,
    pub status: u16,
    pub duration_us: i64,
}

impl From<&SessionRow> for ApiSession {
    fn from(r: &SessionRow) -> Self {
        Self {
            id: r.id,
            occurred_at: format_rfc3339(r.occurred_at),
            user: ApiSessionUser {
                id: r.user_id.clone(),
                name: r.user_name.clone(),
                email: r.user_email.clone(),
            },
            ip: r.ip.clone(),
            url: r.url.clone(),
            kind: if r.kind.eq_ignore_ascii_case("API") {
                ApiRequestKind::Api
            } else {
                ApiRequestKind::Web
            },
            method: r.method.clone(),
            status: r.status,
            duration_us: r.duration_us,
        }
    }
}

/// A page of Admin Sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionsPage {
    pub sessions: Vec<ApiSession>,
    /// The next page's URL (also in the `Link` header); null after the last.
    pub next: Option<String>,
}

/// A string that is one of `values`.
fn one_of(values: impl IntoIterator<Item = &'static str>, description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
        .description(Some(description))
        .into()
}

/// `range`: a rolling range ending now, by the Activity Log's codes.
pub struct RollingRange;

impl PartialSchema for RollingRange {
    fn schema() -> RefOr<Schema> {
        one_of(
            crate::dates::Preset::ALL.iter().filter_map(|p| p.code()),
            "A rolling range that ends now; not together with from or to",
        )
    }
}
impl ToSchema for RollingRange {}

/// `order`: `id` is checkpoint mode.
pub struct EventsOrder;

impl PartialSchema for EventsOrder {
    fn schema() -> RefOr<Schema> {
        one_of(
            ["id"],
            "id: checkpoint mode, ascending ids (continue with after_id); absent: newest first",
        )
    }
}
impl ToSchema for EventsOrder {}

/// Admin Sessions' `type` filter.
pub struct RequestKindFilter;

impl PartialSchema for RequestKindFilter {
    fn schema() -> RefOr<Schema> {
        one_of(
            crate::session_query::REQUEST_KINDS,
            "WEB (the dashboard) or API (any case)",
        )
    }
}
impl ToSchema for RequestKindFilter {}

/// Admin Sessions' `method` filter.
pub struct MethodFilter;

impl PartialSchema for MethodFilter {
    fn schema() -> RefOr<Schema> {
        one_of(crate::session_query::METHODS, "An HTTP method (any case)")
    }
}
impl ToSchema for MethodFilter {}

/// The errors every read may answer.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum ReadErrors {
    /// A parameter is malformed, unknown or given twice; the error names it.
    #[response(status = 400, example = json!({"error": "limit: \"5000\" is not a number from 1 to 1000"}))]
    BadRequest(ApiErrorBody),
    /// No API key, or a wrong or revoked one.
    #[response(status = 401, headers(("WWW-Authenticate" = String, description = "Bearer")),
        example = json!({"error": "a valid API key is required: send `Authorization: Bearer <key>`"}))]
    Unauthorized(ApiErrorBody),
    /// The key lacks the operation's scope; the error names it.
    #[response(status = 403, example = json!({"error": "this API key lacks the events:read scope (it has events:write): create a key with events:read in Settings → API keys"}))]
    Forbidden(ApiErrorBody),
    /// Over the key's rate limit (`api-reads-per-minute`, a token bucket per key and server).
    #[response(status = 429, headers(("Retry-After" = u64, description = "Seconds until the next read is allowed")),
        example = json!({"error": "rate limit: 600 reads a minute per API key; retry in 1 s"}))]
    TooManyRequests(ApiErrorBody),
}

/// The errors of an ingest; in every one nothing is stored.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum IngestErrors {
    /// The body or a header is malformed; the error names the field (`[3].ip`).
    #[response(status = 400, example = json!({"error": "[3].ip: \"300.1.2.3\" is not an IPv4 or IPv6 address"}))]
    BadRequest(ApiErrorBody),
    /// No API key, or a wrong or revoked one.
    #[response(status = 401, headers(("WWW-Authenticate" = String, description = "Bearer")),
        example = json!({"error": "a valid API key is required: send `Authorization: Bearer <key>`"}))]
    Unauthorized(ApiErrorBody),
    /// The key lacks `events:write`.
    #[response(status = 403, example = json!({"error": "this API key lacks the events:write scope (it has events:read): create a key with events:write in Settings → API keys"}))]
    Forbidden(ApiErrorBody),
    /// The body is over `ingest-max-body-bytes`.
    #[response(status = 413, example = json!({"error": "the request body is larger than the limit of 1048576 bytes"}))]
    PayloadTooLarge(ApiErrorBody),
    /// The body is not `application/json`.
    #[response(status = 415, example = json!({"error": "Content-Type must be application/json"}))]
    UnsupportedMediaType(ApiErrorBody),
    /// An `event_id` was stored before with other content.
    #[response(status = 409, example = json!({"error": "[2].event_id: \"evt-7\" was stored as event #1041 with other content; an event_id names one event (send a new one for a new event)"}))]
    Conflict(ApiErrorBody),
    /// The `Idempotency-Key` was used in the last 24 hours for another body.
    #[response(status = 422, example = json!({"error": "Idempotency-Key: \"batch-7\" was used for another request body in the last 24 hours; use a new key for a new request"}))]
    Unprocessable(ApiErrorBody),
}

/// The API key scheme: `Authorization: Bearer adk_...`.
struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("adk_ followed by 40 characters")
                    .description(Some(
                        "An API key from Settings → API keys or `auditdeck create-api-key`. \
                         The requirement of each operation names the scope it needs \
                         (events:write, events:read, sessions:read).",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Auditdeck API",
        description = "Send audit events to Auditdeck and read its log. Every error is \
                       `{\"error\": \"...\"}`, naming the field or parameter at fault; \
                       nothing is stored when a request fails."
    ),
    paths(
        super::ingest::ingest_events,
        super::read_api::list_events,
        super::read_api::get_event,
        super::read_api::list_sessions,
        serve,
    ),
    components(schemas(RollingRange, EventsOrder, RequestKindFilter, MethodFilter)),
    modifiers(&BearerKey),
    tags(
        (name = "events", description = "The Activity Log: ingest and read"),
        (name = "sessions", description = "Admin Sessions: the dashboard's requests"),
        (name = "meta", description = "The API's own description"),
    )
)]
pub struct ApiDoc;

/// The document, as served.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}

/// The axum handler of `GET /api/v1/openapi.json`.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    operation_id = "openapi",
    summary = "This document (no key needed)",
    responses((status = 200, description = "The OpenAPI 3.1 document of /api/v1", body = Object)),
)]
pub async fn serve() -> Response {
    Json(document()).into_response()
}
