//! Delivering a stream: one batch at a time, from its cursor, in id order.
//! A batch is acknowledged (the cursor moves) only when the destination
//! answered 2xx; any failure keeps the cursor, records the error and waits
//! a backoff before the next attempt, so the backlog waits in the log.
//!
//! Each event goes as the read API's event with its details
//! ([`super::openapi::ApiEventDetail`], `GET /api/v1/events/{id}`: the ingest shape with the id, before and
//! after, and the chain hash), in the kind's envelope: a signed JSON array
//! (webhook), chat text (Slack-compatible), HEC envelopes (Splunk), or one
//! RFC 5424 message an event (syslog over TCP).
//!
//! [`spawn_delivery`] runs every active stream this server holds the lease
//! of, one task a stream.

use super::store::{self, StreamRow};
use super::stream_format::{
    hec_event, json_array, slack_text, syslog_frame, webhook_signature, SyslogEvent, WebhookSecret,
};
use crate::errors::{AppError, AppResult};
use crate::models::EventQuery;
use crate::server::clock::Micros;
use crate::streams::{StreamAttempt, StreamKind};
use axum::body::Bytes;
use axum::http::{HeaderName, HeaderValue};
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::collections::HashMap;
use std::time::Duration;

/// The HTTP client streams send with: `http://` and `https://`.
pub type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

pub fn http_client() -> HttpClient {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_config())
        .https_or_http()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(https)
}

/// TLS as streams speak it: the system's trusted certificates (read from
/// `SSL_CERT_FILE` / `SSL_CERT_DIR` when set), rustls' safe defaults.
fn tls_config() -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::warn!(%error, "streams: a trusted certificate could not be read");
    }
    roots.add_parsable_certificates(found.certs);
    // ring, not aws-lc-rs: it builds with the C compiler alone and quickly.
    // rustls 0.23.48 deprecates it for lacking post-quantum key exchange.
    #[allow(deprecated)]
    let provider = rustls::crypto::ring::default_provider();
    rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider))
        .with_safe_default_protocol_versions()
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// How long a destination has to answer a batch.
const ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);
/// The longest wait between attempts.
const MAX_RETRY_DELAY: Micros = 300 * 1_000_000;

/// The wait before the attempt after `failures` failed ones in a row: one
/// second, doubling, at most five minutes, with ±20% jitter (`unit` in
/// 0..1) so destinations that failed together do not retry together.
pub fn retry_delay(failures: i64, unit: f64) -> Micros {
    let doubling = 1_000_000i64.saturating_mul(1 << failures.clamp(1, 30).saturating_sub(1));
    let base = doubling.min(MAX_RETRY_DELAY) as f64;
    (base * (0.8 + 0.4 * unit.clamp(0.0, 1.0))) as Micros
}

/// A stream's filter (the Activity Log's query string) as a query.
pub fn filter_query(filter: &str) -> AppResult<EventQuery> {
    let uri: axum::http::Uri = format!("/?{filter}")
        .parse()
        .map_err(|_| AppError::bad_request("filter: not a query string"))?;
    let axum::extract::Query(pairs) =
        axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri)
            .map_err(|_| AppError::bad_request("filter: not a query string"))?;
    let query = EventQuery::from_params(|name| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    })?;
    query.validate()?;
    Ok(query)
}

/// What one delivery step came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// A batch was sent and acknowledged; the cursor is at `to`.
    Sent { events: usize, to: i64 },
    /// No event after the cursor passed the filter; the cursor moved to `to`.
    PassedOver { to: i64 },
    /// Nothing new.
    Idle,
    /// Another server holds the stream now; nothing was recorded.
    LostLease,
}

/// A failed attempt, as recorded on the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub error: String,
    pub status: Option<u16>,
}

impl Failure {
    fn new(error: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            status: None,
        }
    }
}

/// Chat lines carried by one Slack-compatible message at most.
const CHAT_LINES: usize = 20;
/// Header names Auditdeck sets itself, which custom headers may not.
const RESERVED_HEADERS: [&str; 6] = [
    "content-type",
    "content-length",
    "host",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// Reads custom headers (one `Name: value` a line, blank lines ignored).
pub fn parse_headers(text: &str) -> AppResult<Vec<(HeaderName, HeaderValue)>> {
    let mut headers = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let bad = |why: &str| AppError::BadRequest(format!("headers: line {}: {why}", n + 1));
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| bad("write it as Name: value"))?;
        let name =
            HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| bad("not a header name"))?;
        if RESERVED_HEADERS.contains(&name.as_str()) {
            return Err(bad(&format!("{name} is set by Auditdeck")));
        }
        let value = HeaderValue::from_str(value.trim()).map_err(|_| bad("not a header value"))?;
        headers.push((name, value));
    }
    Ok(headers)
}

/// Checks a destination's address for its kind: `http://` or `https://`
/// for the HTTP kinds, `tcp://host:port` or `tls://host:port` for syslog.
pub fn check_url(kind: StreamKind, url: &str) -> AppResult<()> {
    let bad = |why: &str| AppError::BadRequest(format!("url: {why}"));
    let uri: axum::http::Uri = url.trim().parse().map_err(|_| bad("not an address"))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("name a host"));
    }
    match (kind, uri.scheme_str()) {
        (StreamKind::Syslog, Some("tcp" | "tls")) if uri.port_u16().is_some() => Ok(()),
        (StreamKind::Syslog, Some("tcp" | "tls")) => {
            Err(bad("name the port: tcp://host:port or tls://host:port"))
        }
        (StreamKind::Syslog, _) => Err(bad(
            "syslog goes over TCP: tcp://host:port, or tls://host:port with TLS",
        )),
        (_, Some("http" | "https")) => Ok(()),
        _ => Err(bad("must start with https:// or http://")),
    }
}

/// A stream's destination, as one send needs it.
pub struct Destination {
    pub kind: StreamKind,
    pub url: String,
    /// The secrets that sign (the new one first during a rotation).
    secrets: Vec<WebhookSecret>,
    /// Splunk's HEC token.
    token: String,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Destination {
    pub fn of(stream: &StreamRow, now: Micros) -> AppResult<Self> {
        let kind = StreamKind::parse(&stream.kind).ok_or_else(|| {
            tracing::error!(stream = stream.id, kind = %stream.kind, "a stream of an unknown kind");
            AppError::Internal
        })?;
        let mut secrets: Vec<WebhookSecret> =
            WebhookSecret::parse(&stream.secret).into_iter().collect();
        if stream.previous_secret_until > now {
            secrets.extend(
                stream
                    .previous_secret
                    .as_deref()
                    .and_then(WebhookSecret::parse),
            );
        }
        Ok(Self {
            kind,
            url: stream.url.clone(),
            secrets,
            token: stream.secret.clone(),
            headers: parse_headers(&stream.headers)?,
        })
    }
}

/// One event on its way out.
pub struct Outgoing {
    pub id: i64,
    pub occurred_at: Micros,
    pub action: String,
    pub chain_hash: Option<String>,
    /// Its JSON line (the read API's event with details).
    pub line: String,
    /// One line of text for a chat channel.
    pub chat: String,
}

impl Outgoing {
    /// An event of the log, as `kind` sends it (chat text only for chat).
    fn of(event: store::ApiEvent, kind: StreamKind) -> Self {
        let row = &event.row;
        let chat = if kind == StreamKind::Slack {
            let record = match (&row.table_name, &row.primary_key) {
                (Some(t), Some(k)) => format!(" {t} {k}"),
                (Some(t), None) => format!(" {t}"),
                _ => String::new(),
            };
            format!(
                "#{} {} UTC · {} · {}{} · {}",
                row.id,
                crate::models::format_utc(row.occurred_at),
                row.initiator.display_name(),
                row.action,
                record,
                row.description
            )
        } else {
            String::new()
        };
        let line = Line {
            id: row.id,
            occurred_at: crate::models::format_rfc3339(row.occurred_at),
            action: &row.action,
            initiator: super::export::JsonInitiator::of(&row.initiator),
            ip: row.ip.as_deref(),
            table: row.table_name.as_deref(),
            primary_key: row.primary_key.as_deref(),
            description: &row.description,
            has_changes: row.has_changes,
            received_at: crate::models::format_rfc3339(event.received_at),
            user_agent: event.user_agent.as_deref(),
            request_id: event.request_id.as_deref(),
            session_id: event.session_id.as_deref(),
            before: Stored(event.before.as_deref()),
            after: Stored(event.after.as_deref()),
            chain_hash: event.chain_hash.as_deref(),
        }
        .to_json();
        Self {
            id: row.id,
            occurred_at: row.occurred_at,
            action: row.action.clone(),
            chain_hash: event.chain_hash.clone(),
            chat,
            line,
        }
    }

    /// An event of the tail, as a webhook (or HEC, or syslog) sends it: the
    /// same line as [`Outgoing::of`] makes of it read back from the log,
    /// written from the stored event as it is.
    fn of_tail(stored: &store::TailEvent) -> Self {
        let e = &stored.event;
        let ip = e.ip.map(|ip| ip.to_string());
        let chain_hash = hex::encode(stored.chain_hash);
        let line = Line {
            id: stored.id,
            occurred_at: crate::models::format_rfc3339(e.occurred_at),
            action: &e.action,
            initiator: super::export::JsonInitiator::of(&e.initiator),
            ip: ip.as_deref(),
            table: e.table_name.as_deref(),
            primary_key: e.primary_key.as_deref(),
            description: &e.description,
            has_changes: e.before.is_some() || e.after.is_some(),
            received_at: crate::models::format_rfc3339(stored.received_at),
            user_agent: e.user_agent.as_deref(),
            request_id: e.request_id.as_deref(),
            session_id: e.session_id.as_deref(),
            before: Stored(e.before.as_deref()),
            after: Stored(e.after.as_deref()),
            chain_hash: Some(&chain_hash),
        }
        .to_json();
        Self {
            id: stored.id,
            occurred_at: e.occurred_at,
            action: e.action.clone(),
            chain_hash: Some(chain_hash),
            chat: String::new(),
            line,
        }
    }
}

/// An event's JSON line: the read API's event with its details
/// ([`super::openapi::ApiEventDetail`]'s shape, field for field), its
/// before and after data embedded as stored rather than parsed and written
/// again. It borrows what it can: lines are made for every event streamed.
#[derive(serde::Serialize)]
struct Line<'a> {
    id: i64,
    occurred_at: String,
    action: &'a str,
    initiator: super::export::JsonInitiator<'a>,
    ip: Option<&'a str>,
    table: Option<&'a str>,
    primary_key: Option<&'a str>,
    description: &'a str,
    has_changes: bool,
    received_at: String,
    user_agent: Option<&'a str>,
    request_id: Option<&'a str>,
    session_id: Option<&'a str>,
    before: Stored<'a>,
    after: Stored<'a>,
    chain_hash: Option<&'a str>,
}

impl Line<'_> {
    fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Stored before or after data: its JSON as it is (text that is not JSON,
/// as a string; none, as null).
struct Stored<'a>(Option<&'a str>);

impl serde::Serialize for Stored<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            None => serializer.serialize_none(),
            Some(text) => match serde_json::from_str::<&serde_json::value::RawValue>(text) {
                Ok(raw) => raw.serialize(serializer),
                Err(_) => serializer.serialize_str(text),
            },
        }
    }
}

/// The host name HEC envelopes and syslog messages carry.
fn host_name() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| "auditdeck".into())
}

/// Sends events to a destination, in their order, as one message (one
/// request; for syslog, one connection). `msg_id` names the batch: the same
/// on a retry, so a receiver can drop what it already has.
pub async fn send(
    client: &HttpClient,
    dest: &Destination,
    msg_id: &str,
    events: &[std::sync::Arc<Outgoing>],
    now: Micros,
) -> Result<(), Failure> {
    let body: Vec<u8> = match dest.kind {
        StreamKind::Syslog => {
            let host = host_name();
            let mut frames = Vec::new();
            for e in events {
                frames.extend(syslog_frame(
                    &SyslogEvent {
                        id: e.id,
                        occurred_at: e.occurred_at,
                        action: &e.action,
                        chain_hash: e.chain_hash.as_deref(),
                        line: &e.line,
                    },
                    &host,
                ));
            }
            return send_tcp(&dest.url, &frames).await;
        }
        StreamKind::Webhook => {
            json_array(&events.iter().map(|e| e.line.as_str()).collect::<Vec<_>>())
        }
        StreamKind::Slack => {
            let lines: Vec<String> = events.iter().map(|e| e.chat.clone()).collect();
            slack_text(&lines, CHAT_LINES)
        }
        StreamKind::SplunkHec => {
            let host = host_name();
            events
                .iter()
                .map(|e| hec_event(&e.line, e.occurred_at, &host))
                .collect::<Vec<_>>()
                .join("\n")
                .into_bytes()
        }
    };
    post(client, dest, msg_id, body, now).await
}

/// Posts a message to an HTTP destination: signed as Standard Webhooks
/// says (webhooks and chats) or with Splunk's token, with the stream's own
/// headers. `msg_id` names it: the same on a retry.
pub async fn post(
    client: &HttpClient,
    dest: &Destination,
    msg_id: &str,
    body: Vec<u8>,
    now: Micros,
) -> Result<(), Failure> {
    let mut request = axum::http::Request::post(&dest.url)
        .header(axum::http::header::CONTENT_TYPE, "application/json");
    for (name, value) in &dest.headers {
        request = request.header(name, value);
    }
    match dest.kind {
        StreamKind::SplunkHec => {
            request = request
                .header(
                    axum::http::header::AUTHORIZATION,
                    format!("Splunk {}", dest.token),
                )
                .header("x-splunk-request-channel", msg_id);
        }
        _ => {
            let timestamp = now.div_euclid(1_000_000);
            request = request
                .header("webhook-id", msg_id)
                .header("webhook-timestamp", timestamp)
                .header(
                    "webhook-signature",
                    webhook_signature(&dest.secrets, msg_id, timestamp, &body),
                );
        }
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|_| Failure::new(format!("{} is not a URL", dest.url)))?;
    match tokio::time::timeout(ANSWER_WITHIN, client.request(request)).await {
        Err(_) => Err(Failure::new(format!(
            "no answer within {} s",
            ANSWER_WITHIN.as_secs()
        ))),
        Ok(Err(error)) => Err(Failure::new(format!(
            "could not deliver: {}",
            error_chain(&error)
        ))),
        Ok(Ok(answer)) if answer.status().is_success() => Ok(()),
        Ok(Ok(answer)) => Err(Failure {
            error: format!("the destination answered HTTP {}", answer.status().as_u16()),
            status: Some(answer.status().as_u16()),
        }),
    }
}

/// An error with its causes, as one line ("client error (Connect):
/// tcp connect error: Connection refused (os error 111)").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Writes syslog frames to `tcp://host:port` (or over TLS to
/// `tls://host:port`) on a connection of their own; delivered once they are
/// written and the connection closed cleanly.
async fn send_tcp(url: &str, frames: &[u8]) -> Result<(), Failure> {
    let url = url.trim().trim_end_matches('/');
    let (tls, address) = match (url.strip_prefix("tcp://"), url.strip_prefix("tls://")) {
        (Some(address), _) => (false, address),
        (_, Some(address)) => (true, address),
        _ => return Err(Failure::new(format!("{url} is not tcp://host:port"))),
    };
    let write = async {
        let socket = tokio::net::TcpStream::connect(address).await?;
        if !tls {
            return write_frames(socket, frames).await;
        }
        let host = address
            .rsplit_once(':')
            .map_or(address, |(host, _)| host)
            .trim_matches(['[', ']']);
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls_config()));
        write_frames(connector.connect(name, socket).await?, frames).await
    };
    match tokio::time::timeout(ANSWER_WITHIN, write).await {
        Err(_) => Err(Failure::new(format!(
            "not written within {} s",
            ANSWER_WITHIN.as_secs()
        ))),
        Ok(Err(error)) => Err(Failure::new(format!("could not deliver: {error}"))),
        Ok(Ok(())) => Ok(()),
    }
}

async fn write_frames(
    mut socket: impl tokio::io::AsyncWrite + Unpin,
    frames: &[u8],
) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    socket.write_all(frames).await?;
    socket.flush().await?;
    socket.shutdown().await
}

/// A read covers at most this many ids after the cursor, so a rare filter
/// over a long backlog reads it in bounded steps.
pub const READ_SPAN: i64 = 50_000;

/// Events read for delivery, shared by the streams one server delivers:
/// streams at the same place in the log (several at its head, as they
/// mostly are) read and serialise each event once. Holds the last
/// [`SHARED_LINES`] events read; events never change once stored and ids
/// are never reused, so a line read once stays right.
#[derive(Default)]
pub struct SharedLines {
    lines: tokio::sync::Mutex<std::collections::BTreeMap<i64, std::sync::Arc<Outgoing>>>,
}

/// Events [`SharedLines`] keeps: a few seconds of heavy ingest (about
/// 15 MB).
pub const SHARED_LINES: usize = 20_000;

impl SharedLines {
    /// The events `ids` (in id order, all passing `q`), as lines: read
    /// from the log where another stream has not read them already. An id
    /// deleted meanwhile is left out.
    async fn get(
        &self,
        db: &store::Db,
        q: &EventQuery,
        ids: &[i64],
    ) -> AppResult<Vec<std::sync::Arc<Outgoing>>> {
        let Some(&last) = ids.last() else {
            return Ok(Vec::new());
        };
        // One reader at a time: a stream right behind another waits for its
        // read and then finds the lines here.
        let mut lines = self.lines.lock().await;
        let tail = db.tail();
        for &id in ids {
            if let std::collections::btree_map::Entry::Vacant(slot) = lines.entry(id) {
                if let Some(stored) = tail.get(id) {
                    let line = Outgoing::of_tail(&stored);
                    slot.insert(std::sync::Arc::new(line));
                }
            }
        }
        if let Some(&miss) = ids.iter().find(|id| !lines.contains_key(id)) {
            let limit = ids.len() as u32;
            for event in store::api_events_between(db, q, miss - 1, last, limit).await? {
                let line = Outgoing::of(event, StreamKind::Webhook);
                lines.insert(line.id, std::sync::Arc::new(line));
            }
        }
        let found = ids.iter().filter_map(|id| lines.get(id).cloned()).collect();
        while lines.len() > SHARED_LINES {
            lines.pop_first();
        }
        Ok(found)
    }
}

/// One delivery step, before the database hears of it.
enum Step {
    /// A batch went: `attempt` says which; the cursor can move to `to`.
    Sent {
        events: usize,
        to: i64,
        attempt: StreamAttempt,
    },
    /// Nothing after the cursor passed the filter up to `to`.
    PassedOver {
        to: i64,
    },
    Idle,
    Failed {
        failure: Failure,
        attempt: StreamAttempt,
    },
}

/// Sends the next batch after `cursor` (at most `limit` events) to
/// `stream`'s destination. Chat lines are made for their stream alone;
/// every other kind's lines come through `shared`.
async fn step(
    db: &store::Db,
    client: &HttpClient,
    shared: &SharedLines,
    stream: &StreamRow,
    cursor: i64,
    limit: u32,
) -> AppResult<Step> {
    let query = filter_query(&stream.filter)?;
    let dest = Destination::of(stream, db.now())?;
    let (events, scanned_to) = if dest.kind == StreamKind::Slack {
        let batch = store::stream_batch(db, &query, cursor, limit, READ_SPAN).await?;
        let events = batch
            .events
            .into_iter()
            .map(|e| std::sync::Arc::new(Outgoing::of(e, dest.kind)))
            .collect::<Vec<_>>();
        (events, batch.scanned_to)
    } else {
        // A stream with no filter at the head takes its ids from the tail:
        // no read of the log at all.
        let from_tail = match db.tail().after(cursor, limit as usize) {
            Some(events) if stream.filter.trim().is_empty() && !events.is_empty() => {
                Some(events.iter().map(|e| e.id).collect::<Vec<_>>())
            }
            _ => None,
        };
        let (ids, scanned_to) = match from_tail {
            Some(ids) => {
                let last = ids.last().copied().unwrap_or(cursor);
                (ids, last)
            }
            None => store::stream_batch_ids(db, &query, cursor, limit, READ_SPAN).await?,
        };
        (shared.get(db, &query, &ids).await?, scanned_to)
    };
    let (first, last) = match (events.first(), events.last()) {
        (Some(first), Some(last)) => (first.id, last.id),
        _ if scanned_to > cursor => return Ok(Step::PassedOver { to: scanned_to }),
        _ => return Ok(Step::Idle),
    };
    // The same batch keeps its id across retries: the receiver's dedupe key.
    let msg_id = format!("adk_{}_{first}_{last}", stream.id);
    let started = std::time::Instant::now();
    let sent = send(client, &dest, &msg_id, &events, db.now()).await;
    let mut attempt = StreamAttempt {
        id: 0,
        at: db.now(),
        outcome: "delivered".into(),
        events: events.len() as i64,
        first_id: Some(first),
        last_id: Some(last),
        status: None,
        error: None,
        duration_us: started.elapsed().as_micros() as i64,
    };
    Ok(match sent {
        Ok(()) => Step::Sent {
            events: events.len(),
            to: scanned_to,
            attempt,
        },
        Err(failure) => {
            attempt.outcome = "failed".into();
            attempt.status = failure.status.map(i64::from);
            attempt.error = Some(failure.error.clone());
            Step::Failed { failure, attempt }
        }
    })
}

/// What a stream's holder has delivered past its stored cursor and not yet
/// written down. Written at most [`ACK_EVERY`] apart while a backlog
/// drains (a transaction a batch would take the writer's turn from ingest
/// as often as batches go), at once when the stream has caught up or
/// fails, and when delivery stops. A crash before it is written sends
/// those events again: at least once, never lost.
struct Unacked {
    /// The stored cursor it started from.
    from: i64,
    to: i64,
    events: i64,
    attempts: Vec<StreamAttempt>,
    since: std::time::Instant,
}

/// How long delivered events may go unwritten while a backlog drains.
pub const ACK_EVERY: Duration = Duration::from_secs(1);

impl Unacked {
    fn new(from: i64) -> Self {
        Self {
            from,
            to: from,
            events: 0,
            attempts: Vec::new(),
            since: std::time::Instant::now(),
        }
    }

    fn is_empty(&self) -> bool {
        self.to == self.from
    }

    /// Writes it down: the cursor moves, the attempts go in the log.
    /// Whether `holder` still held the stream (else nothing was written).
    async fn write(&mut self, db: &store::Db, stream: i64, holder: &str) -> AppResult<bool> {
        if self.is_empty() {
            return Ok(true);
        }
        let moved = store::acknowledge_stream(
            db,
            stream,
            holder,
            self.from,
            self.to,
            self.events,
            &self.attempts,
        )
        .await?;
        *self = Self::new(self.to);
        Ok(moved)
    }
}

/// Records a failed attempt with its backoff; whether `holder` still held
/// the stream.
async fn record_failure(
    db: &store::Db,
    stream: &StreamRow,
    holder: &str,
    attempt: &StreamAttempt,
) -> AppResult<bool> {
    let retry_at = db.now() + retry_delay(stream.failures + 1, rand::random::<f64>());
    store::record_stream_failure(db, stream.id, holder, attempt, retry_at).await
}

/// Sends `stream`'s next batch (at most `limit` events) to its destination,
/// as `holder` (who must hold its lease), and writes the outcome down at
/// once: the cursor and the attempt on success; on a failure, the error
/// with the time of its next attempt.
pub async fn deliver(
    db: &store::Db,
    client: &HttpClient,
    stream: &StreamRow,
    holder: &str,
    limit: u32,
) -> AppResult<Result<Delivered, Failure>> {
    let shared = SharedLines::default();
    let mut unacked = Unacked::new(stream.cursor_id);
    let done = match step(db, client, &shared, stream, stream.cursor_id, limit).await? {
        Step::Idle => return Ok(Ok(Delivered::Idle)),
        Step::Failed { failure, attempt } => {
            record_failure(db, stream, holder, &attempt).await?;
            return Ok(Err(failure));
        }
        Step::PassedOver { to } => {
            unacked.to = to;
            Delivered::PassedOver { to }
        }
        Step::Sent {
            events,
            to,
            attempt,
        } => {
            unacked.to = to;
            unacked.events = events as i64;
            unacked.attempts.push(attempt);
            Delivered::Sent { events, to }
        }
    };
    let moved = unacked.write(db, stream.id, holder).await?;
    Ok(Ok(if moved { done } else { Delivered::LostLease }))
}

/// Sends one test event (id 0, action TEST, nothing of the log) to a
/// stream's destination, whatever its state and cursor, and writes the
/// attempt in its delivery log.
pub async fn send_test_event(
    db: &store::Db,
    client: &HttpClient,
    stream: &StreamRow,
) -> AppResult<Result<(), Failure>> {
    let now = db.now();
    let dest = Destination::of(stream, now)?;
    let at = crate::models::format_rfc3339(now);
    let description = format!("Test event from Auditdeck stream \"{}\"", stream.name);
    let line = serde_json::json!({
        "id": 0,
        "occurred_at": at,
        "action": "TEST",
        "initiator": {"type": "system", "name": "Auditdeck"},
        "description": description,
        "test": true,
    })
    .to_string();
    let event = Outgoing {
        id: 0,
        occurred_at: now,
        action: "TEST".into(),
        chain_hash: None,
        chat: format!(
            "Auditdeck test · {} UTC · {description}",
            crate::models::format_utc(now)
        ),
        line,
    };
    let started = std::time::Instant::now();
    let msg_id = format!("adk_{}_test_{now}", stream.id);
    let sent = send(client, &dest, &msg_id, &[std::sync::Arc::new(event)], now).await;
    let (outcome, status, error) = match &sent {
        Ok(()) => ("test", None, None),
        Err(f) => (
            "test_failed",
            f.status.map(i64::from),
            Some(f.error.clone()),
        ),
    };
    let attempt = StreamAttempt {
        id: 0,
        at: db.now(),
        outcome: outcome.into(),
        events: 1,
        first_id: None,
        last_id: None,
        status,
        error,
        duration_us: started.elapsed().as_micros() as i64,
    };
    store::record_stream_attempt(db, stream.id, &attempt).await?;
    Ok(sent)
}

/// How delivery runs.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Events in one batch at most.
    pub batch: u32,
    /// How often an idle stream looks for new events (a batch is at most
    /// about this old when it goes).
    pub poll: Duration,
    /// How long a lease lasts unless renewed.
    pub lease: Duration,
    /// How often the streams are listed to start the ones nobody delivers.
    pub supervise: Duration,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            batch: 1_000,
            poll: Duration::from_millis(200),
            lease: Duration::from_secs(30),
            supervise: Duration::from_secs(1),
        }
    }
}

/// The delivery of every stream this server holds; [`StreamWorker::stop`]
/// lets go of the leases, so another server takes over at once.
pub struct StreamWorker {
    stop: tokio::sync::watch::Sender<bool>,
    finished: tokio::sync::oneshot::Receiver<()>,
}

impl StreamWorker {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.finished.await;
    }
}

/// A name for this server's leases: host, process and a random part.
pub(crate) fn holder_name() -> String {
    format!(
        "{}-{}-{:08x}",
        host_name(),
        std::process::id(),
        rand::random::<u32>()
    )
}

/// Starts delivering: every `supervise`, each active stream that nobody
/// delivers gets a task of its own here.
pub fn spawn_delivery(db: store::Db, settings: DeliverySettings) -> StreamWorker {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (done, finished) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("auditdeck-streams".into())
        .spawn(move || {
            yield_to_ingest();
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(async move {
                    supervise(db.with_own_readers(), settings, stopped).await
                }),
                Err(e) => tracing::error!(error = %e, "streams: cannot start delivery"),
            }
            let _ = done.send(());
        })
        .expect("a thread for delivery");
    StreamWorker { stop, finished }
}

/// Lowers this thread's scheduling priority (nice 10, Linux): on a busy
/// machine delivery takes the time ingest and the pages leave, and catches
/// up when they rest.
fn yield_to_ingest() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority on this thread's own id; no memory is touched.
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

async fn supervise(
    db: store::Db,
    settings: DeliverySettings,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let holder = holder_name();
    let client = http_client();
    let shared = std::sync::Arc::new(SharedLines::default());
    let mut running: HashMap<i64, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        running.retain(|_, task| !task.is_finished());
        match store::list_streams(&db).await {
            Ok(streams) => {
                if streams.iter().any(|s| s.state == "active") {
                    db.tail().switch_on();
                } else if db.tail().is_on() {
                    db.tail().switch_off();
                }
                let now = db.now();
                for s in streams {
                    let free = s.lease_holder.is_none()
                        || s.lease_holder.as_deref() == Some(holder.as_str())
                        || s.lease_until <= now;
                    if s.state == "active" && free && !running.contains_key(&s.id) {
                        let task = run_stream(
                            db.clone(),
                            client.clone(),
                            shared.clone(),
                            s.id,
                            holder.clone(),
                            settings.clone(),
                            stopped.clone(),
                        );
                        running.insert(s.id, tokio::spawn(task));
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "streams: cannot list the streams"),
        }
        tokio::select! {
            _ = stopped.changed() => break,
            _ = tokio::time::sleep(settings.supervise) => {}
        }
    }
    for (_, task) in running {
        let _ = task.await;
    }
    db.tail().switch_off();
}

/// Waits `wait`, or less when told to stop; whether to go on.
pub(crate) async fn pause(
    stopped: &mut tokio::sync::watch::Receiver<bool>,
    wait: Duration,
) -> bool {
    if *stopped.borrow() {
        return false;
    }
    tokio::select! {
        _ = stopped.changed() => false,
        _ = tokio::time::sleep(wait) => true,
    }
}

/// Delivers one stream for as long as this server holds its lease and it is
/// active; writes down what it delivered and lets the lease go when it
/// stops.
async fn run_stream(
    db: store::Db,
    client: HttpClient,
    shared: std::sync::Arc<SharedLines>,
    id: i64,
    holder: String,
    settings: DeliverySettings,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let lease = settings.lease.as_micros() as Micros;
    let mut unacked: Option<Unacked> = None;
    let mut gaps = None;
    // The stream as read at most a poll ago, while a backlog drains and
    // nothing was written: a read a batch would be a read transaction
    // beside every one of ingest's. A pause or a replay shows within a poll.
    let mut known: Option<(StreamRow, std::time::Instant)> = None;
    loop {
        if *stopped.borrow() {
            break;
        }
        let (stream, read_at) = match known.take() {
            Some((s, at)) if at.elapsed() < settings.poll => (s, at),
            _ => match store::get_stream(&db, id).await {
                Ok(Some(s)) if s.state == "active" => (s, std::time::Instant::now()),
                // Paused or deleted: what was delivered is written down first.
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(stream = id, error = %e, "streams: cannot read the stream");
                    if pause(&mut stopped, settings.poll * 5).await {
                        continue;
                    }
                    break;
                }
            },
        };
        // Renewed once a third of it has gone (or taken again after a
        // replay or a pause let it go).
        let now = db.now();
        let ours = stream.lease_holder.as_deref() == Some(holder.as_str());
        if !ours || stream.lease_until - now < lease * 2 / 3 {
            match store::take_stream_lease(&db, id, &holder, lease).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(stream = id, error = %e, "streams: cannot take the lease");
                    if pause(&mut stopped, settings.poll * 5).await {
                        continue;
                    }
                    break;
                }
            }
            continue;
        }
        // Events after its cursor were deleted (or were, perhaps, before
        // this task began): some may be in the tail.
        if gaps != Some(stream.gaps) {
            db.tail().forget();
        }
        gaps = Some(stream.gaps);
        // A replay moved the stored cursor: what was delivered before it
        // no longer counts.
        let pending = unacked.get_or_insert_with(|| Unacked::new(stream.cursor_id));
        if pending.from != stream.cursor_id {
            *pending = Unacked::new(stream.cursor_id);
        }
        if stream.next_attempt_at > now {
            let wait = Duration::from_micros((stream.next_attempt_at - now) as u64);
            if pause(&mut stopped, wait.min(settings.poll * 5)).await {
                continue;
            }
            break;
        }
        let stepped = step(&db, &client, &shared, &stream, pending.to, settings.batch).await;
        let delivered = matches!(stepped, Ok(Step::Sent { .. } | Step::PassedOver { .. }));
        let (wait, write_now) = match stepped {
            Ok(Step::Sent {
                events,
                to,
                attempt,
            }) => {
                pending.to = to;
                pending.events += events as i64;
                pending.attempts.push(attempt);
                let wait = if events as u32 >= settings.batch {
                    Duration::ZERO
                } else {
                    settings.poll
                };
                (wait, pending.since.elapsed() >= ACK_EVERY)
            }
            Ok(Step::PassedOver { to }) => {
                pending.to = to;
                (Duration::ZERO, pending.since.elapsed() >= ACK_EVERY)
            }
            Ok(Step::Idle) => (settings.poll, true),
            Ok(Step::Failed { attempt, .. }) => {
                // What went before the failure was delivered: written
                // first. The next turn waits for the attempt the failure
                // scheduled.
                match pending.write(&db, id, &holder).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => {
                        tracing::warn!(stream = id, error = %e, "streams: cannot write the cursor");
                    }
                }
                match record_failure(&db, &stream, &holder, &attempt).await {
                    Ok(true) => (Duration::ZERO, false),
                    Ok(false) => return,
                    Err(e) => {
                        tracing::warn!(stream = id, error = %e, "streams: cannot record a failure");
                        (settings.poll * 5, false)
                    }
                }
            }
            Err(e) => {
                tracing::warn!(stream = id, error = %e, "streams: delivery failed");
                (settings.poll * 5, true)
            }
        };
        if write_now {
            match pending.write(&db, id, &holder).await {
                Ok(true) => {}
                // Another server holds it: it delivers from the stored
                // cursor (what went since is sent again: at least once).
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(stream = id, error = %e, "streams: cannot write the cursor");
                }
            }
        }
        if delivered && !write_now {
            known = Some((stream, read_at));
        }
        if !wait.is_zero() && !pause(&mut stopped, wait).await {
            break;
        }
    }
    if let Some(pending) = unacked.as_mut() {
        if let Err(e) = pending.write(&db, id, &holder).await {
            tracing::warn!(stream = id, error = %e, "streams: cannot write the cursor");
        }
    }
    if let Err(e) = store::release_stream_lease(&db, id, &holder).await {
        tracing::warn!(stream = id, error = %e, "streams: cannot let the lease go");
    }
}

#[cfg(test)]
mod tests {
    use super::super::openapi::ApiEventDetail;
    use super::*;

    #[test]
    fn retries_back_off_from_a_second_to_five_minutes_with_jitter() {
        let s = 1_000_000;
        assert_eq!(retry_delay(1, 0.5), s);
        assert_eq!(retry_delay(2, 0.5), 2 * s);
        assert_eq!(retry_delay(5, 0.5), 16 * s);
        assert_eq!(retry_delay(9, 0.5), 256 * s);
        assert_eq!(retry_delay(10, 0.5), 300 * s, "capped");
        assert_eq!(retry_delay(1_000, 0.5), 300 * s);
        assert_eq!(retry_delay(1, 0.0), 800_000);
        assert_eq!(retry_delay(1, 1.0), 1_200_000);
        assert_eq!(retry_delay(0, 0.5), s, "the first retry waits a second");
    }

    #[test]
    fn an_events_line_is_the_read_apis_detail_with_its_data_as_stored() {
        use crate::models::{EventRow, Initiator, InitiatorKind};
        let event = |before: Option<&str>| store::ApiEvent {
            row: EventRow {
                id: 7,
                occurred_at: 1_764_547_200_000_001,
                ip: Some("10.0.0.1".into()),
                initiator: Initiator {
                    kind: InitiatorKind::User,
                    id: Some("u-1".into()),
                    name: Some("Ann".into()),
                    email: None,
                    role: None,
                },
                action: "UPDATE".into(),
                table_name: Some("users".into()),
                primary_key: Some("1".into()),
                description: "Renamed \"x\"".into(),
                has_changes: true,
            },
            received_at: 1_764_547_200_000_002,
            user_agent: None,
            request_id: Some("r-1".into()),
            session_id: None,
            before: before.map(String::from),
            after: None,
            chain_hash: Some("ab".repeat(32)),
        };
        for before in [
            Some(r#"{"name": "Ann", "tags": [1, 2]}"#),
            Some("not json"),
            None,
        ] {
            let line = Outgoing::of(event(before), StreamKind::Webhook).line;
            let ours: serde_json::Value = serde_json::from_str(&line).unwrap();
            let api = serde_json::to_value(ApiEventDetail::from(event(before))).unwrap();
            assert_eq!(ours, api, "{line}");
        }
        let chat = Outgoing::of(event(None), StreamKind::Slack).chat;
        assert!(
            chat.starts_with("#7 2025-12-01 00:00:00.000 UTC · Ann · UPDATE users 1"),
            "{chat}"
        );
    }

    #[test]
    fn a_line_from_the_tail_is_the_line_of_the_event_read_back() {
        use crate::models::{Initiator, InitiatorKind};
        for (ip, before, after) in [
            (
                Some("10.0.0.1"),
                Some(r#"{"name": "Ann"}"#),
                Some("not json"),
            ),
            (Some("2001:db8::1"), None, Some("[1, 2]")),
            (None, None, None),
        ] {
            let stored = store::TailEvent {
                id: 42,
                received_at: 1_764_547_200_000_002,
                chain_hash: [0xab; 32],
                event: store::NewEvent {
                    occurred_at: 1_764_547_200_000_001,
                    ip: ip.map(|ip| ip.parse().unwrap()),
                    initiator: Initiator {
                        kind: InitiatorKind::ApiKey,
                        id: Some("k-1".into()),
                        name: Some("crm".into()),
                        email: None,
                        role: Some("service".into()),
                    },
                    action: "UPDATE".into(),
                    table_name: Some("users".into()),
                    primary_key: None,
                    description: "Renamed \"x\" ✓".into(),
                    before: before.map(String::from),
                    after: after.map(String::from),
                    user_agent: Some("curl/8".into()),
                    request_id: None,
                    session_id: Some("s-1".into()),
                },
            };
            let ours = Outgoing::of_tail(&stored);
            let read_back = Outgoing::of(store::api_event_of_tail(&stored), StreamKind::Webhook);
            assert_eq!(ours.line, read_back.line);
            assert_eq!(ours.chain_hash, read_back.chain_hash);
            assert_eq!(
                (ours.id, ours.occurred_at, &ours.action),
                (read_back.id, read_back.occurred_at, &read_back.action)
            );
        }
    }

    #[test]
    fn a_filter_is_the_activity_logs_query_string() {
        let q = filter_query("action=DELETE,UPDATE&table=users").unwrap();
        assert_eq!(q.actions, ["DELETE", "UPDATE"]);
        assert_eq!(q.table.as_deref(), Some("users"));
        assert!(!filter_query("").unwrap().is_filtered());
        assert!(filter_query("from=yesterday")
            .unwrap_err()
            .to_string()
            .starts_with("from:"));
    }
}
