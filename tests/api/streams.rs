//! Streams' cursors and leases against a real database: one holder at a
//! time, taken over when it runs out, a cursor that only its holder moves
//! and only from where it read it.

use crate::common::TestApp;
use auditdeck::server::store;

const SECOND: i64 = 1_000_000;
const SPAN: i64 = auditdeck::server::streams::READ_SPAN;

async fn stream(app: &TestApp, filter: &str, after_id: i64) -> i64 {
    store::create_stream(
        &app.db,
        "siem",
        "webhook",
        "https://siem.example/in",
        filter,
        after_id,
    )
    .await
    .unwrap()
}

/// Takes or renews a 30-second lease; whether `holder` has it.
async fn lease(app: &TestApp, id: i64, holder: &str) -> bool {
    store::take_stream_lease(&app.db, id, holder, 30 * SECOND)
        .await
        .unwrap()
}

/// A failed attempt, as delivery records it.
fn failed(error: &str, status: Option<u16>) -> auditdeck::streams::StreamAttempt {
    auditdeck::streams::StreamAttempt {
        id: 0,
        at: 0,
        outcome: "failed".into(),
        events: 1,
        first_id: Some(1),
        last_id: Some(1),
        status: status.map(i64::from),
        error: Some(error.into()),
        duration_us: 0,
    }
}

async fn ack(app: &TestApp, id: i64, holder: &str, from: i64, to: i64, count: i64) -> bool {
    store::acknowledge_stream(&app.db, id, holder, from, to, count, &[])
        .await
        .unwrap()
}

#[tokio::test]
async fn one_server_holds_a_streams_lease_until_it_runs_out_or_is_let_go() {
    let app = TestApp::new().await;
    let id = stream(&app, "", 0).await;
    assert!(lease(&app, id, "server-a").await);
    assert!(!lease(&app, id, "server-b").await);
    // The holder renews it.
    app.clock().advance(20 * SECOND);
    assert!(lease(&app, id, "server-a").await);
    app.clock().advance(20 * SECOND);
    assert!(
        !lease(&app, id, "server-b").await,
        "the renewal runs 30 s from its own time"
    );
    // Server A stops renewing: B takes over once it has run out.
    app.clock().advance(10 * SECOND);
    assert!(lease(&app, id, "server-b").await);
    assert!(!lease(&app, id, "server-a").await);
    // Let go, it is free at once (only its holder lets it go).
    store::release_stream_lease(&app.db, id, "server-a")
        .await
        .unwrap();
    assert!(!lease(&app, id, "server-a").await, "A does not hold it");
    store::release_stream_lease(&app.db, id, "server-b")
        .await
        .unwrap();
    assert!(lease(&app, id, "server-a").await);
    // A paused stream is nobody's.
    assert!(store::set_stream_state(&app.db, id, false).await.unwrap());
    assert!(!lease(&app, id, "server-a").await);
    assert!(store::set_stream_state(&app.db, id, true).await.unwrap());
    assert!(lease(&app, id, "server-b").await);
}

#[tokio::test]
async fn only_the_holder_moves_the_cursor_and_only_from_where_it_read_it() {
    let app = TestApp::new().await;
    let id = stream(&app, "action=DELETE", 40).await;
    assert!(lease(&app, id, "a").await);
    assert!(ack(&app, id, "a", 40, 90, 12).await);
    // From a cursor it no longer has, or without the lease: nothing moves.
    assert!(!ack(&app, id, "a", 40, 140, 5).await);
    assert!(!ack(&app, id, "b", 90, 140, 5).await);
    // A failure keeps the cursor and says why.
    let retry_at = app.now() + 4 * SECOND;
    for (error, status) in [("connection refused", None), ("HTTP 503", Some(503))] {
        assert!(
            store::record_stream_failure(&app.db, id, "a", &failed(error, status), retry_at)
                .await
                .unwrap()
        );
    }
    let s = &store::list_streams(&app.db).await.unwrap()[0];
    assert_eq!((s.cursor_id, s.delivered, s.failures), (90, 12, 2));
    assert_eq!(
        (s.last_error.as_deref(), s.last_status),
        (Some("HTTP 503"), Some(503))
    );
    assert_eq!(
        (s.next_attempt_at, s.filter.as_str()),
        (retry_at, "action=DELETE")
    );
    // After the lease ran out the old holder cannot acknowledge.
    app.clock().advance(31 * SECOND);
    assert!(!ack(&app, id, "a", 90, 140, 5).await);
    assert!(lease(&app, id, "b").await);
    assert!(ack(&app, id, "b", 90, 140, 5).await);
    let s = &store::list_streams(&app.db).await.unwrap()[0];
    assert_eq!(
        (s.cursor_id, s.delivered, s.failures, s.next_attempt_at),
        (140, 17, 0, 0)
    );
}

#[tokio::test]
async fn a_batch_is_the_filters_events_after_the_cursor_in_id_order_late_ones_too() {
    let app = TestApp::new().await;
    let key = app.api_key().await;
    let now = app.now();
    let at = |minutes: i64| auditdeck::models::format_rfc3339(now - minutes * 60 * SECOND);
    // DELETEs at ids 2, 4, 6; the one at id 6 happened first (it arrived late).
    let body = serde_json::json!([
        {"action": "UPDATE", "occurred_at": at(5)},
        {"action": "DELETE", "occurred_at": at(4), "table": "users", "before": {"name": "Ann"}},
        {"action": "UPDATE", "occurred_at": at(3)},
        {"action": "DELETE", "occurred_at": at(2)},
        {"action": "UPDATE", "occurred_at": at(1)},
        {"action": "DELETE", "occurred_at": at(90)},
        {"action": "UPDATE", "occurred_at": at(0)},
    ]);
    let r = app.ingest(Some(&key), body.to_string()).await;
    assert_eq!(r.status, axum::http::StatusCode::CREATED, "{}", r.text());
    let q = auditdeck::models::EventQuery::from_params(|k| (k == "action").then_some("DELETE"))
        .unwrap();
    let ids = |b: &store::StreamBatch| b.events.iter().map(|e| e.row.id).collect::<Vec<_>>();

    let first = store::stream_batch(&app.db, &q, 0, 2, SPAN).await.unwrap();
    assert_eq!(
        (ids(&first), first.scanned_to),
        (vec![2, 4], 4),
        "a full batch ends at its last"
    );
    let e = &first.events[0];
    assert_eq!(e.before.as_deref(), Some(r#"{"name":"Ann"}"#));
    assert_eq!(e.chain_hash.as_ref().map(String::len), Some(64));
    let second = store::stream_batch(&app.db, &q, first.scanned_to, 2, SPAN)
        .await
        .unwrap();
    assert_eq!(
        (ids(&second), second.scanned_to),
        (vec![6], 7),
        "the late event comes in id order; the read covered the head"
    );
    let caught_up = store::stream_batch(&app.db, &q, 7, 2, SPAN).await.unwrap();
    assert_eq!((ids(&caught_up), caught_up.scanned_to), (vec![], 7));
    // Only UPDATEs after: the cursor moves past them without sending.
    let r = app.ingest(Some(&key), r#"{"action":"UPDATE"}"#).await;
    assert_eq!(r.status, axum::http::StatusCode::CREATED);
    let passed_over = store::stream_batch(&app.db, &q, 7, 2, SPAN).await.unwrap();
    assert_eq!((ids(&passed_over), passed_over.scanned_to), (vec![], 8));
}

/// What a receiver was sent: each request's path, headers and body.
pub(crate) type Received =
    std::sync::Arc<std::sync::Mutex<Vec<(String, axum::http::HeaderMap, Vec<u8>)>>>;

/// An HTTP receiver on a port of its own (webhook at /hook, Splunk HEC at
/// /services/collector/event): it keeps what it is sent and answers 503
/// while `failing` is set.
pub(crate) struct Receiver {
    pub(crate) base: String,
    pub(crate) url: String,
    pub(crate) got: Received,
    pub(crate) failing: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Receiver {
    pub(crate) fn bodies(&self) -> Vec<Vec<u8>> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|(_, _, b)| b.clone())
            .collect()
    }
}

pub(crate) async fn receiver() -> Receiver {
    use axum::http::StatusCode;
    use std::sync::atomic::Ordering;
    let got: Received = Default::default();
    let failing: std::sync::Arc<std::sync::atomic::AtomicBool> = Default::default();
    let (g, f) = (got.clone(), failing.clone());
    let keep =
        move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let (g, f) = (g.clone(), f.clone());
            async move {
                if f.load(Ordering::SeqCst) {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                g.lock()
                    .unwrap()
                    .push((uri.path().to_string(), headers, body.to_vec()));
                StatusCode::NO_CONTENT
            }
        };
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(keep.clone()))
        .route("/services/collector/event", axum::routing::post(keep));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver {
        url: format!("{base}/hook"),
        base,
        got,
        failing,
    }
}

/// A stream made as Settings makes it: with its secret (or token) and headers.
pub(crate) async fn stream_with(
    app: &TestApp,
    kind: &str,
    url: &str,
    filter: &str,
    secret: &str,
    headers: &str,
) -> i64 {
    let mut tx = store::begin(&app.db).await.unwrap();
    let settings = store::StreamSettings {
        name: "siem",
        kind,
        url,
        filter,
        headers,
    };
    let id = store::create_stream_in(&mut tx, &settings, secret, 0)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    id
}

/// A signed webhook stream of every event, with a new secret.
async fn signed_webhook(app: &TestApp, url: &str) -> i64 {
    let secret = auditdeck::server::stream_format::WebhookSecret::generate().encode();
    stream_with(app, "webhook", url, "", &secret, "").await
}

/// Ingests one event per action (table `users`).
async fn send(app: &TestApp, key: &str, actions: &[&str]) {
    let body: Vec<serde_json::Value> = actions
        .iter()
        .map(|a| serde_json::json!({"action": a, "table": "users", "description": format!("{a} by test")}))
        .collect();
    let r = app
        .ingest(Some(key), serde_json::Value::Array(body).to_string())
        .await;
    assert_eq!(r.status, axum::http::StatusCode::CREATED, "{}", r.text());
}

/// The ids of a webhook batch body (a JSON array of events).
fn batch_ids(body: &[u8]) -> Vec<i64> {
    let events: Vec<serde_json::Value> = serde_json::from_slice(body).unwrap();
    events.iter().map(|e| e["id"].as_i64().unwrap()).collect()
}

#[tokio::test]
async fn a_webhook_gets_the_filters_events_signed_in_order_and_nothing_is_lost_while_it_is_down() {
    use auditdeck::server::stream_format::{webhook_signature_valid, WebhookSecret};
    use auditdeck::server::streams::{deliver, http_client, Delivered};
    let app = TestApp::new().await;
    let key = app.api_key().await;
    let hook = receiver().await;
    let secret = WebhookSecret::generate();
    let client = http_client();
    let id = stream_with(
        &app,
        "webhook",
        &hook.url,
        "action=DELETE",
        &secret.encode(),
        "X-Team: security",
    )
    .await;
    let deliver = || async {
        assert!(lease(&app, id, "a").await);
        let stream = store::get_stream(&app.db, id).await.unwrap().unwrap();
        deliver(&app.db, &client, &stream, "a", 100).await.unwrap()
    };
    send(
        &app,
        &key,
        &["DELETE", "UPDATE", "DELETE", "UPDATE", "DELETE"],
    )
    .await;
    assert_eq!(deliver().await, Ok(Delivered::Sent { events: 3, to: 5 }));
    assert_eq!(deliver().await, Ok(Delivered::Idle));

    // The receiver goes down: the attempt fails, is recorded, and the
    // cursor waits.
    send(&app, &key, &["DELETE", "DELETE"]).await;
    hook.failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let failed = deliver().await.unwrap_err();
    assert_eq!(
        (failed.status, failed.error.as_str()),
        (Some(503), "the destination answered HTTP 503")
    );
    let s = store::get_stream(&app.db, id).await.unwrap().unwrap();
    assert_eq!((s.cursor_id, s.failures, s.last_status), (5, 1, Some(503)));
    assert!(s.next_attempt_at > app.now());
    // Back up: the backlog arrives, then events the filter passes over only
    // move the cursor.
    hook.failing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(deliver().await, Ok(Delivered::Sent { events: 2, to: 7 }));
    send(&app, &key, &["UPDATE"]).await;
    assert_eq!(deliver().await, Ok(Delivered::PassedOver { to: 8 }));
    let s = store::get_stream(&app.db, id).await.unwrap().unwrap();
    assert_eq!((s.cursor_id, s.delivered, s.failures), (8, 5, 0));
    assert_eq!(s.delivered_on(app.now()), 5, "delivered today");

    // The delivery log: newest first, the failure with its status.
    let log = store::stream_attempts(&app.db, id).await.unwrap();
    let outcomes: Vec<_> = log
        .iter()
        .map(|a| {
            (
                a.outcome.as_str(),
                a.events,
                a.first_id,
                a.last_id,
                a.status,
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("delivered", 2, Some(6), Some(7), None),
            ("failed", 2, Some(6), Some(7), Some(503)),
            ("delivered", 3, Some(1), Some(5), None),
        ]
    );

    let got = hook.got.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "one request a batch");
    let mut ids = Vec::new();
    for (_, headers, body) in &got {
        let header = |name: &str| headers[name].to_str().unwrap().to_string();
        let timestamp: i64 = header("webhook-timestamp").parse().unwrap();
        assert!(
            webhook_signature_valid(
                &secret,
                &header("webhook-signature"),
                &header("webhook-id"),
                timestamp,
                body
            ),
            "signed"
        );
        assert_eq!(header("x-team"), "security", "custom headers go along");
        let events: Vec<serde_json::Value> = serde_json::from_slice(body).unwrap();
        assert!(
            events
                .iter()
                .all(|e| e["action"] == "DELETE"
                    && e["chain_hash"].as_str().map(str::len) == Some(64))
        );
        let batch = batch_ids(body);
        assert_eq!(
            header("webhook-id"),
            format!("adk_{id}_{}_{}", batch[0], batch[batch.len() - 1])
        );
        ids.extend(batch);
    }
    assert_eq!(ids, [1, 3, 5, 6, 7], "every DELETE once, in id order");
}

/// Delivery as the server runs it, quick enough for a test.
fn quick() -> auditdeck::server::streams::DeliverySettings {
    auditdeck::server::streams::DeliverySettings {
        batch: 4,
        poll: std::time::Duration::from_millis(20),
        lease: std::time::Duration::from_secs(30),
        supervise: std::time::Duration::from_millis(30),
    }
}

/// Waits (up to 10 s) until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("waited 10 s for {what}");
}

#[tokio::test]
async fn the_worker_delivers_each_kind_in_order_and_a_replay_sends_again() {
    use auditdeck::server::streams::spawn_delivery;
    use tokio::io::AsyncReadExt;
    let app = TestApp::new().await;
    let key = app.api_key().await;
    let http = receiver().await;
    // A syslog listener: it keeps the bytes of every connection.
    let syslog = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let syslog_url = format!("tcp://{}", syslog.local_addr().unwrap());
    let frames: std::sync::Arc<std::sync::Mutex<Vec<u8>>> = Default::default();
    let keep = frames.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = syslog.accept().await.unwrap();
            let mut bytes = Vec::new();
            socket.read_to_end(&mut bytes).await.unwrap();
            keep.lock().unwrap().extend(bytes);
        }
    });
    let hook = signed_webhook(&app, &http.url).await;
    let hec_url = format!("{}/services/collector/event", http.base);
    stream_with(
        &app,
        "splunk_hec",
        &hec_url,
        "action=DELETE",
        "hec-token-1",
        "",
    )
    .await;
    stream_with(&app, "syslog", &syslog_url, "", "", "").await;

    let worker = spawn_delivery(app.db.clone(), quick());
    send(
        &app,
        &key,
        &[
            "CREATE", "DELETE", "UPDATE", "DELETE", "CREATE", "UPDATE", "DELETE", "LOGIN",
            "LOGOUT", "EXPORT",
        ],
    )
    .await;
    let webhook_ids = || -> Vec<i64> {
        http.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(path, _, _)| path == "/hook")
            .flat_map(|(_, _, body)| batch_ids(body))
            .collect()
    };
    until("the webhook to get all ten", || webhook_ids().len() >= 10).await;
    assert_eq!(
        webhook_ids(),
        (1..=10).collect::<Vec<_>>(),
        "in id order, batches of at most 4"
    );
    // Each stream has its own task: the HEC one may still be on its way.
    let hec_bodies = || {
        http.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(path, _, _)| path == "/services/collector/event")
            .map(|(_, _, body)| body.windows(12).filter(|w| w == b"\"sourcetype\"").count())
            .sum::<usize>()
    };
    until("Splunk HEC to get the three DELETEs", || hec_bodies() >= 3).await;
    let hec: Vec<serde_json::Value> = {
        let got = http.got.lock().unwrap();
        got.iter()
            .filter(|(path, _, _)| path == "/services/collector/event")
            .inspect(|(_, headers, _)| {
                assert_eq!(headers["authorization"], "Splunk hec-token-1");
            })
            .flat_map(|(_, _, body)| {
                serde_json::Deserializer::from_slice(body)
                    .into_iter::<serde_json::Value>()
                    .map(Result::unwrap)
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    assert_eq!(
        hec.iter()
            .map(|e| e["event"]["id"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [2, 4, 7],
        "HEC envelopes, the filter's DELETEs only"
    );
    assert!(hec
        .iter()
        .all(|e| e["sourcetype"] == "auditdeck:event" && e["time"].is_number()));
    // Syslog: octet-counted RFC 5424 messages, one an event, the id in the
    // structured data.
    until("syslog to get all ten", || {
        frames
            .lock()
            .unwrap()
            .windows(16)
            .filter(|w| w.starts_with(b"[auditdeck@32473"))
            .count()
            >= 10
    })
    .await;
    let bytes = frames.lock().unwrap().clone();
    let mut rest = &bytes[..];
    let mut syslog_ids = Vec::new();
    while !rest.is_empty() {
        let space = rest.iter().position(|b| *b == b' ').unwrap();
        let len: usize = std::str::from_utf8(&rest[..space])
            .unwrap()
            .parse()
            .unwrap();
        let message = std::str::from_utf8(&rest[space + 1..space + 1 + len]).unwrap();
        assert!(message.starts_with("<110>1 "), "{message}");
        let id = message
            .split("id=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        syslog_ids.push(id.parse::<i64>().unwrap());
        rest = &rest[space + 1 + len..];
    }
    assert_eq!(syslog_ids, (1..=10).collect::<Vec<_>>());

    // A replay from event 8: 8, 9 and 10 go again (and only they).
    let mut tx = store::begin(&app.db).await.unwrap();
    store::set_stream_cursor_in(&mut tx, hook, 7).await.unwrap();
    tx.commit().await.unwrap();
    until("the replay", || webhook_ids().len() >= 13).await;
    assert_eq!(webhook_ids()[10..], [8, 9, 10]);
    worker.stop().await;
    let streams = store::list_streams(&app.db).await.unwrap();
    assert!(
        streams.iter().all(|s| s.lease_holder.is_none()),
        "a stopped server lets its leases go"
    );
    assert!(streams.iter().all(|s| s.cursor_id == 10));
}

#[tokio::test]
async fn a_server_takes_a_stream_over_once_its_holders_lease_runs_out_and_retries_never_skip() {
    use auditdeck::server::streams::spawn_delivery;
    use std::sync::atomic::Ordering;
    let app = TestApp::new().await;
    let key = app.api_key().await;
    let http = receiver().await;
    let id = signed_webhook(&app, &http.url).await;
    // A server that died holding the lease.
    assert!(lease(&app, id, "dead-server").await);
    let worker = spawn_delivery(app.db.clone(), quick());
    send(&app, &key, &["CREATE", "UPDATE"]).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        http.bodies().is_empty(),
        "nobody delivers while the lease lasts"
    );
    app.clock().advance(31 * SECOND);
    until("the takeover", || http.bodies().len() == 1).await;
    assert_eq!(batch_ids(&http.bodies()[0]), [1, 2]);

    // The destination fails: the worker waits for the backoff, and retries
    // the same batch (same id) until it is taken.
    http.failing.store(true, Ordering::SeqCst);
    send(&app, &key, &["DELETE"]).await;
    let failures = || async {
        store::get_stream(&app.db, id)
            .await
            .unwrap()
            .unwrap()
            .failures
    };
    for _ in 0..500 {
        if failures().await >= 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        failures().await,
        1,
        "one attempt, then it waits for the backoff"
    );
    for n in 2..=auditdeck::streams::FAILING_AFTER {
        app.clock().advance(400 * SECOND);
        for _ in 0..500 {
            if failures().await >= n {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(failures().await, n);
    }
    assert_eq!(
        store::failing_streams(&app.db).await.unwrap(),
        1,
        "the badge counts it"
    );
    http.failing.store(false, Ordering::SeqCst);
    app.clock().advance(400 * SECOND);
    until("the retry", || http.bodies().len() == 2).await;
    assert_eq!(batch_ids(&http.bodies()[1]), [3]);
    worker.stop().await;
    let s = store::get_stream(&app.db, id).await.unwrap().unwrap();
    assert_eq!((s.cursor_id, s.failures, s.delivered), (3, 0, 3));
    assert_eq!(store::failing_streams(&app.db).await.unwrap(), 0);
}

#[tokio::test]
async fn a_stream_paused_mid_backlog_writes_down_what_it_sent_and_resumed_sends_nothing_twice() {
    use auditdeck::server::streams::spawn_delivery;
    let app = TestApp::new().await;
    let key = app.api_key().await;
    let http = receiver().await;
    for _ in 0..4 {
        send(&app, &key, &["CREATE"; 100]).await;
    }
    let id = signed_webhook(&app, &http.url).await;
    let received = || -> Vec<i64> { http.bodies().iter().flat_map(|b| batch_ids(b)).collect() };
    let worker = spawn_delivery(app.db.clone(), quick());
    until("a few batches", || received().len() >= 40).await;
    assert!(store::set_stream_state(&app.db, id, false).await.unwrap());
    // The holder notices, writes its cursor down and lets the lease go.
    for _ in 0..500 {
        let s = store::get_stream(&app.db, id).await.unwrap().unwrap();
        if s.lease_holder.is_none() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let sent = received();
    let s = store::get_stream(&app.db, id).await.unwrap().unwrap();
    assert_eq!(s.lease_holder, None);
    assert_eq!(sent, (1..=sent.len() as i64).collect::<Vec<_>>());
    assert_eq!(
        (s.cursor_id, s.delivered),
        (sent.len() as i64, sent.len() as i64),
        "every event sent before the pause is written down"
    );
    assert!(store::set_stream_state(&app.db, id, true).await.unwrap());
    until("the rest", || received().len() >= 400).await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(
        received(),
        (1..=400).collect::<Vec<_>>(),
        "resumed, it goes on where it was: nothing twice, nothing left out"
    );
    worker.stop().await;
    let s = store::get_stream(&app.db, id).await.unwrap().unwrap();
    assert_eq!((s.cursor_id, s.delivered), (400, 400));
    // Batches of 4 went as 100 attempts: the log keeps the last 100.
    let log = store::stream_attempts(&app.db, id).await.unwrap();
    assert_eq!(log.len(), 100);
    assert!(log
        .iter()
        .all(|a| a.outcome == "delivered" && a.events == 4));
}

/// Form-encodes `pairs` for a server function call.
fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let v: String = v
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The form of a new stream: its fields as `stream[name]` ….
fn new_stream(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("stream[{k}]{}", form(&[("", v)])))
        .collect::<Vec<_>>()
        .join("&")
}

#[tokio::test]
async fn streams_are_admin_only_checked_and_every_change_is_audited() {
    use auditdeck::models::Role;
    use axum::http::StatusCode;
    let app = TestApp::new().await;
    let http = receiver().await;
    let admin = app.session_for(Role::Admin).await;
    let create = |url: &str, extra: &[(&str, &str)]| {
        let mut pairs = vec![
            ("name", "SIEM"),
            ("kind", "webhook"),
            ("url", url),
            ("filter", "action=DELETE"),
            ("start", "now"),
        ];
        pairs.extend_from_slice(extra);
        new_stream(&pairs)
    };
    // Bad input is refused, naming the field, and writes nothing.
    let before = app.count().await;
    for (args, says) in [
        (
            create(&http.url, &[("kind", "kafka")]).replace("stream[kind]=webhook&", ""),
            "kind:",
        ),
        (
            create("ftp://siem.example/in", &[]),
            "url: must start with https:// or http://",
        ),
        (create("siem.example", &[]), "url:"),
        (
            create(&http.url, &[]).replace("action%3DDELETE", "from%3Dyesterday"),
            "from:",
        ),
        (
            create(&http.url, &[("headers", "no colon here")]),
            "headers: line 1",
        ),
        (
            create(&http.url, &[("headers", "Webhook-Signature: x")]),
            "headers: line 1: webhook-signature is set by Auditdeck",
        ),
        (
            create(&http.url, &[])
                .replace("stream[start]=now", "stream[start]=id&stream[start_id]=abc"),
            "start_id:",
        ),
        (
            create(&http.url, &[]).replace(
                "stream[start]=now",
                "stream[start]=time&stream[start_at]=yesterday",
            ),
            "start_at:",
        ),
        (
            create(&http.url, &[]).replace("stream[name]=SIEM", "stream[name]=+"),
            "name:",
        ),
        (
            new_stream(&[
                ("name", "hec"),
                ("kind", "splunk_hec"),
                ("url", &http.url),
                ("start", "now"),
            ]),
            "token:",
        ),
        (
            new_stream(&[
                ("name", "log"),
                ("kind", "syslog"),
                ("url", "http://x.example"),
                ("start", "now"),
            ]),
            "url: syslog",
        ),
    ] {
        let r = app.call("create_stream", &args, Some(&admin)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{args}: {}", r.text());
        assert!(r.text().contains(says), "{args}: {}", r.text());
    }
    assert_eq!(app.count().await, before, "refused input writes nothing");
    assert!(store::list_streams(&app.db).await.unwrap().is_empty());

    // Created: the secret shown once, the event audited.
    let r = app
        .call(
            "create_stream",
            &create(&http.url, &[("headers", "Authorization: Bearer t0ken")]),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let id = r.json()["id"].as_i64().unwrap();
    let secret = r.json()["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    let listed = app.call("list_streams", "", Some(&admin)).await.json();
    assert_eq!(listed[0]["health"], "Healthy");
    assert_eq!(
        listed[0]["headers"], "Authorization: ••••••",
        "credentials are not shown"
    );

    // Viewers and auditors are refused every stream function.
    let calls = [
        ("list_streams", String::new()),
        ("stream_attempts", format!("id={id}")),
        ("create_stream", create(&http.url, &[])),
        (
            "update_stream",
            form(&[("id", &id.to_string()), ("name", "x"), ("url", &http.url)]),
        ),
        ("set_stream_paused", format!("id={id}&paused=true")),
        ("replay_stream", format!("id={id}&start=now")),
        ("rotate_stream_secret", format!("id={id}")),
        ("delete_stream", format!("id={id}")),
        ("send_stream_test", format!("id={id}")),
    ];
    let audited = app.count().await;
    for role in [Role::Viewer, Role::Auditor] {
        let cookie = app.session_for(role).await;
        let audited = app.count().await;
        for (endpoint, args) in &calls {
            let r = app.call(endpoint, args, Some(&cookie)).await;
            assert_eq!(
                r.status,
                StatusCode::FORBIDDEN,
                "{role:?} {endpoint}: {}",
                r.text()
            );
        }
        assert_eq!(app.count().await, audited);
    }
    assert!(http.bodies().is_empty(), "no test event went out");
    let audited = app.count().await.max(audited);

    // A test event reaches the receiver, signed, and goes in the delivery log.
    let r = app
        .call("send_stream_test", &format!("id={id}"), Some(&admin))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let (_, headers, body) = http.got.lock().unwrap()[0].clone();
    let test: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (test[0]["action"].as_str(), test[0]["id"].as_i64()),
        (Some("TEST"), Some(0))
    );
    assert_eq!(headers["authorization"], "Bearer t0ken");
    let parsed = auditdeck::server::stream_format::WebhookSecret::parse(&secret).unwrap();
    let header = |n: &str| headers[n].to_str().unwrap().to_string();
    assert!(auditdeck::server::stream_format::webhook_signature_valid(
        &parsed,
        &header("webhook-signature"),
        &header("webhook-id"),
        header("webhook-timestamp").parse().unwrap(),
        &body
    ));
    let log = app
        .call("stream_attempts", &format!("id={id}"), Some(&admin))
        .await
        .json();
    assert_eq!(log[0]["outcome"], "test");

    // Each change: one event, in words.
    let changes = [
        (
            "update_stream",
            form(&[
                ("id", &id.to_string()),
                ("name", "SIEM EU"),
                ("url", &http.url),
                ("filter", "action=DELETE,UPDATE"),
                ("headers", "Authorization: ••••••"),
            ]),
        ),
        ("set_stream_paused", format!("id={id}&paused=true")),
        ("set_stream_paused", format!("id={id}&paused=false")),
        ("replay_stream", format!("id={id}&start=id&start_id=1")),
        ("rotate_stream_secret", format!("id={id}")),
        ("delete_stream", format!("id={id}")),
    ];
    for (n, (endpoint, args)) in changes.iter().enumerate() {
        if *endpoint == "delete_stream" {
            let s = store::get_stream(&app.db, id).await.unwrap().unwrap();
            assert_eq!(
                s.headers, "Authorization: Bearer t0ken",
                "a hidden header comes back as it was"
            );
            assert_eq!(s.cursor_id, 0, "replayed from event 1");
            assert!(s.previous_secret.is_some() && s.previous_secret_until > app.now());
        }
        let r = app.call(endpoint, args, Some(&admin)).await;
        assert_eq!(r.status, StatusCode::OK, "{endpoint}: {}", r.text());
        assert_eq!(
            app.count().await,
            audited + 1 + n as u64,
            "{endpoint} writes one event"
        );
    }
    let descriptions: Vec<String> = app
        .page(1, 50)
        .await
        .rows
        .into_iter()
        .map(|r| r.description)
        .collect();
    for text in [
        "Created stream \"SIEM\": Signed webhook to http://",
        "Changed stream \"SIEM EU\": name \"SIEM\" → \"SIEM EU\"; filter action=DELETE → action=DELETE,UPDATE",
        "Paused stream \"SIEM EU\"",
        "Resumed stream \"SIEM EU\"",
        "Replayed stream \"SIEM EU\" from event 1",
        "Rotated the signing secret of stream \"SIEM EU\"",
        "Deleted stream \"SIEM EU\"",
    ] {
        assert!(descriptions.iter().any(|d| d.starts_with(text)), "missing audit: {text}\n{descriptions:#?}");
    }
    assert!(
        descriptions
            .iter()
            .all(|d| !d.contains("whsec_") && !d.contains("t0ken")),
        "no secret in the log"
    );
    assert!(store::list_streams(&app.db).await.unwrap().is_empty());
    assert_eq!(
        app.call("delete_stream", &format!("id={id}"), Some(&admin))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_deletion_of_events_a_stream_has_not_received_shows_as_a_gap_in_its_log() {
    use auditdeck::models::Role;
    use serde_json::json;
    let app = TestApp::new().await;
    let key = app.api_key().await;
    send(
        &app,
        &key,
        &["CREATE", "UPDATE", "DELETE", "UPDATE", "CREATE", "LOGIN"],
    )
    .await;
    // One stream has delivered up to event 3, another everything.
    let behind = stream_with(&app, "webhook", "http://127.0.0.1:9/hook", "", "", "").await;
    let caught_up = stream_with(&app, "webhook", "http://127.0.0.1:9/hook", "", "", "").await;
    let mut tx = store::begin(&app.db).await.unwrap();
    store::set_stream_cursor_in(&mut tx, behind, 3)
        .await
        .unwrap();
    store::set_stream_cursor_in(&mut tx, caught_up, 6)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let admin = app.session_for(Role::Admin).await;
    let selection = json!({"Ids": [2, 4, 5]});
    let r = app
        .call_json(
            "delete_events",
            json!({"selection": selection, "plan": {"count": 3, "up_to_id": 6}}),
            &admin,
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    let deletion = r.json()["event_id"].as_i64().unwrap();
    let log = store::stream_attempts(&app.db, behind).await.unwrap();
    assert_eq!(log.len(), 1);
    let gap = &log[0];
    assert_eq!(
        (gap.outcome.as_str(), gap.events, gap.first_id, gap.last_id),
        ("gap", 2, Some(4), Some(5)),
        "event 2 was delivered before; 4 and 5 never will be"
    );
    assert_eq!(
        gap.error.as_deref(),
        Some(format!("deleted before delivery (DELETE event {deletion})").as_str())
    );
    assert!(store::stream_attempts(&app.db, caught_up)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn retention_that_removes_undelivered_events_shows_as_a_gap() {
    use auditdeck::integrity::RetentionPolicy;
    let app = TestApp::new().await;
    let day = 86_400 * SECOND;
    let old = app.now() - 100 * day;
    let rows: Vec<_> = (0..5u32)
        .map(|i| {
            crate::common::sample_event(
                i,
                if i < 3 {
                    old + i64::from(i)
                } else {
                    app.now() - day
                },
            )
        })
        .collect();
    store::insert_events(&app.db, &rows, None).await.unwrap();
    // Delivered up to event 1 of the three old ones.
    let id = stream_with(&app, "webhook", "http://127.0.0.1:9/hook", "", "", "").await;
    let mut tx = store::begin(&app.db).await.unwrap();
    store::set_stream_cursor_in(&mut tx, id, 1).await.unwrap();
    tx.commit().await.unwrap();
    let policy = RetentionPolicy {
        keep_days: Some(10),
        by_action: vec![],
    };
    let outcome = store::apply_retention(&app.db, &policy, app.now())
        .await
        .unwrap()
        .unwrap();
    let log = store::stream_attempts(&app.db, id).await.unwrap();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(
        (
            log[0].outcome.as_str(),
            log[0].events,
            log[0].first_id,
            log[0].last_id
        ),
        ("gap", 2, Some(2), Some(3))
    );
    assert_eq!(
        log[0].error.as_deref(),
        Some(
            format!(
                "removed by retention run {} before delivery",
                outcome.run.id
            )
            .as_str()
        )
    );
}

/// A TLS server on a port of its own with a self-signed certificate for
/// `localhost`: it keeps what each connection sent (an HTTP request's body,
/// or everything a syslog client wrote) and answers HTTP requests 204.
struct TlsReceiver {
    port: u16,
    /// The certificate, PEM.
    cert: String,
    got: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
}

async fn tls_receiver(http: bool) -> TlsReceiver {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let chain: Vec<CertificateDer<'static>> = vec![certified.cert.der().clone()];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    #[allow(deprecated)]
    let provider = rustls::crypto::ring::default_provider();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>> = Default::default();
    let keep = got.clone();
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            let (acceptor, keep) = (acceptor.clone(), keep.clone());
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake.
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                let mut bytes = Vec::new();
                if !http {
                    let _ = tls.read_to_end(&mut bytes).await;
                    keep.lock().unwrap().push(bytes);
                    return;
                }
                // One request: its head, then Content-Length bytes of body.
                let mut buf = [0u8; 8192];
                let (head_end, length) = loop {
                    let n = tls.read(&mut buf).await.unwrap();
                    assert!(n > 0, "the request ended early");
                    bytes.extend_from_slice(&buf[..n]);
                    if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&bytes[..at]).to_lowercase();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse().unwrap());
                        break (at + 4, length);
                    }
                };
                while bytes.len() < head_end + length {
                    let n = tls.read(&mut buf).await.unwrap();
                    bytes.extend_from_slice(&buf[..n]);
                }
                keep.lock().unwrap().push(bytes[head_end..].to_vec());
                let answer = b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n";
                tls.write_all(answer).await.unwrap();
                let _ = tls.shutdown().await;
            });
        }
    });
    TlsReceiver {
        port,
        cert: certified.cert.pem(),
        got,
    }
}

#[tokio::test]
async fn streams_go_over_tls_to_a_trusted_receiver_and_an_untrusted_certificate_is_refused() {
    use auditdeck::server::streams::{deliver, http_client, Delivered};
    let app = TestApp::new().await;
    let key = app.api_key().await;
    let https = tls_receiver(true).await;
    let syslog = tls_receiver(false).await;
    let stranger = tls_receiver(true).await;
    // The system's trusted certificates are these two (nextest runs each
    // test in a process of its own, so the variables are this test's).
    let trusted = app.dir().join("trusted.pem");
    std::fs::write(&trusted, format!("{}{}", https.cert, syslog.cert)).unwrap();
    std::env::set_var("SSL_CERT_FILE", &trusted);
    std::env::remove_var("SSL_CERT_DIR");
    let secret = auditdeck::server::stream_format::WebhookSecret::generate().encode();
    let hook = stream_with(
        &app,
        "webhook",
        &format!("https://localhost:{}/hook", https.port),
        "",
        &secret,
        "",
    )
    .await;
    let log = stream_with(
        &app,
        "syslog",
        &format!("tls://localhost:{}", syslog.port),
        "",
        "",
        "",
    )
    .await;
    let refused = stream_with(
        &app,
        "webhook",
        &format!("https://localhost:{}/hook", stranger.port),
        "",
        &secret,
        "",
    )
    .await;
    send(&app, &key, &["CREATE", "DELETE"]).await;
    let client = http_client();
    let deliver = |id: i64| {
        let client = client.clone();
        let app = &app;
        async move {
            assert!(lease(app, id, "a").await);
            let stream = store::get_stream(&app.db, id).await.unwrap().unwrap();
            deliver(&app.db, &client, &stream, "a", 100).await.unwrap()
        }
    };
    assert_eq!(
        deliver(hook).await,
        Ok(Delivered::Sent { events: 2, to: 2 })
    );
    assert_eq!(batch_ids(&https.got.lock().unwrap()[0]), [1, 2]);
    assert_eq!(deliver(log).await, Ok(Delivered::Sent { events: 2, to: 2 }));
    let frames = String::from_utf8(syslog.got.lock().unwrap()[0].clone()).unwrap();
    assert_eq!(
        frames.matches("[auditdeck@32473 id=").count(),
        2,
        "{frames}"
    );
    let failure = deliver(refused).await.unwrap_err();
    assert!(
        failure.error.contains("certificate") || failure.error.contains("UnknownIssuer"),
        "{}",
        failure.error
    );
    assert!(stranger.got.lock().unwrap().is_empty());
    let s = store::get_stream(&app.db, refused).await.unwrap().unwrap();
    assert_eq!((s.cursor_id, s.failures), (0, 1), "nothing skipped");
}

#[tokio::test]
async fn during_a_rotation_both_secrets_sign_and_after_it_only_the_new_one() {
    use auditdeck::server::stream_format::{webhook_signature_valid, WebhookSecret};
    use auditdeck::server::streams::{deliver, http_client, Delivered};
    let app = TestApp::new().await;
    let key = app.api_key().await;
    let hook = receiver().await;
    let (old, new) = (WebhookSecret::generate(), WebhookSecret::generate());
    let id = stream_with(&app, "webhook", &hook.url, "", &old.encode(), "").await;
    let mut tx = store::begin(&app.db).await.unwrap();
    let until = app.now() + 86_400 * SECOND;
    store::rotate_stream_secret_in(&mut tx, id, &new.encode(), until)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let client = http_client();
    let deliver_next = || async {
        send(&app, &key, &["UPDATE"]).await;
        assert!(lease(&app, id, "a").await);
        let stream = store::get_stream(&app.db, id).await.unwrap().unwrap();
        let sent = deliver(&app.db, &client, &stream, "a", 100).await.unwrap();
        assert!(
            matches!(sent, Ok(Delivered::Sent { events: 1, .. })),
            "{sent:?}"
        );
        let (_, headers, body) = hook.got.lock().unwrap().last().unwrap().clone();
        let header = |n: &str| headers[n].to_str().unwrap().to_string();
        let signature = header("webhook-signature");
        let valid = |secret: &WebhookSecret| {
            webhook_signature_valid(
                secret,
                &signature,
                &header("webhook-id"),
                header("webhook-timestamp").parse().unwrap(),
                &body,
            )
        };
        (signature.split(' ').count(), valid(&new), valid(&old))
    };
    assert_eq!(deliver_next().await, (2, true, true), "both sign");
    // The overlap's last microsecond, then the first after it.
    app.clock().set(until - 1);
    assert_eq!(deliver_next().await, (2, true, true));
    app.clock().set(until);
    assert_eq!(deliver_next().await, (1, true, false), "only the new one");
}

#[tokio::test]
async fn the_tail_in_memory_gives_each_event_exactly_as_the_log_reads_it_back() {
    use auditdeck::server::demo::{self, DemoSpec};
    let app = TestApp::new().await;
    let tail = app.db.tail();
    tail.switch_on();
    // Demo events: every initiator kind, IPv4 and IPv6, before and after
    // data, user agents, request and session ids.
    let events: Vec<store::NewEvent> = demo::events_iter(&DemoSpec {
        seed: 3,
        events: 400,
        sessions: 0,
        anchor: 1_764_547_200_000_000,
    })
    .collect();
    let ids = store::insert_events(&app.db, &events[..200], None)
        .await
        .unwrap();
    let more = store::insert_events(&app.db, &events[200..], None)
        .await
        .unwrap();
    let held = tail.after(0, 1_000).expect("a run from the first batch");
    assert_eq!(
        held.iter().map(|e| e.id).collect::<Vec<_>>(),
        ids.iter().chain(&more).copied().collect::<Vec<_>>()
    );
    for stored in &held {
        let mine = store::api_event_of_tail(stored);
        let read = store::api_event(&app.db, stored.id).await.unwrap();
        assert_eq!(mine.row, read.row);
        assert_eq!(
            (
                mine.received_at,
                &mine.user_agent,
                &mine.request_id,
                &mine.session_id
            ),
            (
                read.received_at,
                &read.user_agent,
                &read.request_id,
                &read.session_id
            )
        );
        assert_eq!((&mine.before, &mine.after), (&read.before, &read.after));
        assert_eq!(mine.chain_hash, read.chain_hash, "event {}", stored.id);
    }
    // Events stored in any transaction (an admin's audit event too) join
    // the tail once it commits; a transaction rolled back adds nothing.
    let mut tx = store::begin(&app.db).await.unwrap();
    let audit = store::insert_events_in(&mut tx, &events[..1], None)
        .await
        .unwrap()[0];
    assert!(tail.get(audit).is_none(), "not before it commits");
    tx.commit().await.unwrap();
    let mut tx = store::begin(&app.db).await.unwrap();
    store::insert_events_in(&mut tx, &events[1..2], None)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let after = store::insert_events(&app.db, &events[2..4], None)
        .await
        .unwrap();
    assert_eq!(after, [audit + 1, audit + 2]);
    assert_eq!(
        tail.after(audit - 1, 10)
            .unwrap()
            .iter()
            .map(|e| (e.id, e.event.description.clone()))
            .collect::<Vec<_>>(),
        [
            (audit, events[0].description.clone()),
            (audit + 1, events[2].description.clone()),
            (audit + 2, events[3].description.clone()),
        ]
    );
}
