//! Delivering a stream: one batch at a time, from its cursor, in id order.
//! A batch is acknowledged (the cursor moves) only when the destination
//! answered 2xx; any failure keeps the cursor, records the error and waits
//! a backoff before the next attempt, so the backlog waits in the log.
//!
//! Each event goes as the read API's event with its details
//! (`GET /api/v1/events/{id}`: the ingest shape with the id, before and
//! after, and the chain hash).

use super::openapi::ApiEventDetail;
use super::store::{self, StreamRow};
use super::stream_format::{json_array, webhook_signature, WebhookSecret};
use crate::errors::{AppError, AppResult};
use crate::models::EventQuery;
use crate::server::clock::Micros;
use axum::body::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// The HTTP client streams send with.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
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

/// Sends `stream`'s next batch (at most `limit` events) to its webhook, as
/// `holder` (who must hold its lease). A failure is recorded on the stream
/// with the time of its next attempt.
pub async fn deliver_webhook(
    db: &store::Db,
    client: &HttpClient,
    stream: &StreamRow,
    secrets: &[WebhookSecret],
    holder: &str,
    limit: u32,
) -> AppResult<Result<Delivered, Failure>> {
    let query = filter_query(&stream.filter)?;
    let batch = store::stream_batch(db, &query, stream.cursor_id, limit).await?;
    let (first, last) = match (batch.events.first(), batch.events.last()) {
        (Some(first), Some(last)) => (first.row.id, last.row.id),
        _ if batch.scanned_to > stream.cursor_id => {
            let passed = Delivered::PassedOver {
                to: batch.scanned_to,
            };
            return acknowledge(db, stream, holder, batch.scanned_to, 0, passed).await;
        }
        _ => return Ok(Ok(Delivered::Idle)),
    };
    let count = batch.events.len();
    let lines: Vec<String> = batch
        .events
        .into_iter()
        .map(|e| serde_json::to_string(&ApiEventDetail::from(e)).unwrap_or_default())
        .collect();
    let body = json_array(&lines.iter().map(String::as_str).collect::<Vec<_>>());
    // The same batch keeps its id across retries: the receiver's dedupe key.
    let msg_id = format!("adk_{}_{first}_{last}", stream.id);
    let timestamp = db.now().div_euclid(1_000_000);
    let request = axum::http::Request::post(&stream.url)
        .header(axum::http::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", &msg_id)
        .header("webhook-timestamp", timestamp)
        .header(
            "webhook-signature",
            webhook_signature(secrets, &msg_id, timestamp, &body),
        )
        .body(Full::new(Bytes::from(body)));
    let failure = match request {
        Err(_) => Failure {
            error: format!("{} is not a URL", stream.url),
            status: None,
        },
        Ok(request) => match tokio::time::timeout(ANSWER_WITHIN, client.request(request)).await {
            Err(_) => Failure {
                error: format!("no answer within {} s", ANSWER_WITHIN.as_secs()),
                status: None,
            },
            Ok(Err(error)) => Failure {
                error: format!("could not deliver: {error}"),
                status: None,
            },
            Ok(Ok(answer)) if answer.status().is_success() => {
                let sent = Delivered::Sent {
                    events: count,
                    to: batch.scanned_to,
                };
                return acknowledge(db, stream, holder, batch.scanned_to, count, sent).await;
            }
            Ok(Ok(answer)) => Failure {
                error: format!("the destination answered HTTP {}", answer.status().as_u16()),
                status: Some(answer.status().as_u16()),
            },
        },
    };
    let retry_at = db.now() + retry_delay(stream.failures + 1, rand::random::<f64>());
    store::record_stream_failure(
        db,
        stream.id,
        holder,
        &failure.error,
        failure.status,
        retry_at,
    )
    .await?;
    Ok(Err(failure))
}

/// Moves the stream's cursor from where it was read to `to` (`count`
/// events delivered): `done` when it moved, [`Delivered::LostLease`] when
/// another server holds the stream now.
async fn acknowledge(
    db: &store::Db,
    stream: &StreamRow,
    holder: &str,
    to: i64,
    count: usize,
    done: Delivered,
) -> AppResult<Result<Delivered, Failure>> {
    let moved =
        store::acknowledge_stream(db, stream.id, holder, stream.cursor_id, to, count as i64)
            .await?;
    Ok(Ok(if moved { done } else { Delivered::LostLease }))
}

#[cfg(test)]
mod tests {
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
