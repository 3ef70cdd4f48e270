//! Streams' cursors and leases against a real database: one holder at a
//! time, taken over when it runs out, a cursor that only its holder moves
//! and only from where it read it.

use crate::common::TestApp;
use auditdeck::server::store;

const SECOND: i64 = 1_000_000;

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

async fn ack(app: &TestApp, id: i64, holder: &str, from: i64, to: i64, count: i64) -> bool {
    store::acknowledge_stream(&app.db, id, holder, from, to, count)
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
            store::record_stream_failure(&app.db, id, "a", error, status, retry_at)
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

    let first = store::stream_batch(&app.db, &q, 0, 2).await.unwrap();
    assert_eq!(
        (ids(&first), first.scanned_to),
        (vec![2, 4], 4),
        "a full batch ends at its last"
    );
    let e = &first.events[0];
    assert_eq!(e.before.as_deref(), Some(r#"{"name":"Ann"}"#));
    assert_eq!(e.chain_hash.as_ref().map(String::len), Some(64));
    let second = store::stream_batch(&app.db, &q, first.scanned_to, 2)
        .await
        .unwrap();
    assert_eq!(
        (ids(&second), second.scanned_to),
        (vec![6], 7),
        "the late event comes in id order; the read covered the head"
    );
    let caught_up = store::stream_batch(&app.db, &q, 7, 2).await.unwrap();
    assert_eq!((ids(&caught_up), caught_up.scanned_to), (vec![], 7));
    // Only UPDATEs after: the cursor moves past them without sending.
    let r = app.ingest(Some(&key), r#"{"action":"UPDATE"}"#).await;
    assert_eq!(r.status, axum::http::StatusCode::CREATED);
    let passed_over = store::stream_batch(&app.db, &q, 7, 2).await.unwrap();
    assert_eq!((ids(&passed_over), passed_over.scanned_to), (vec![], 8));
}

/// What a receiver was sent: each request's headers and body.
type Received = std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, Vec<u8>)>>>;

/// A webhook receiver on a port of its own: it keeps what it is sent and
/// answers 503 while `failing` is set.
struct Receiver {
    url: String,
    got: Received,
    failing: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

async fn receiver() -> Receiver {
    use axum::http::StatusCode;
    use std::sync::atomic::Ordering;
    let got: Received = Default::default();
    let failing: std::sync::Arc<std::sync::atomic::AtomicBool> = Default::default();
    let (g, f) = (got.clone(), failing.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let (g, f) = (g.clone(), f.clone());
                async move {
                    if f.load(Ordering::SeqCst) {
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    g.lock().unwrap().push((headers, body.to_vec()));
                    StatusCode::NO_CONTENT
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver { url, got, failing }
}

#[tokio::test]
async fn a_webhook_gets_the_filters_events_signed_in_order_and_nothing_is_lost_while_it_is_down() {
    use auditdeck::server::stream_format::{webhook_signature_valid, WebhookSecret};
    use auditdeck::server::streams::{deliver_webhook, http_client, Delivered};
    let app = TestApp::new().await;
    let key = app.api_key().await;
    let hook = receiver().await;
    let secret = WebhookSecret::generate();
    let client = http_client();
    let id = store::create_stream(&app.db, "siem", "webhook", &hook.url, "action=DELETE", 0)
        .await
        .unwrap();
    let send = |actions: &[&str]| {
        let body: Vec<serde_json::Value> = actions
            .iter()
            .map(|a| serde_json::json!({"action": a, "table": "users"}))
            .collect();
        app.ingest(Some(&key), serde_json::Value::Array(body).to_string())
    };
    let deliver = || async {
        assert!(lease(&app, id, "a").await);
        let stream = store::list_streams(&app.db).await.unwrap().remove(0);
        deliver_webhook(
            &app.db,
            &client,
            &stream,
            std::slice::from_ref(&secret),
            "a",
            100,
        )
        .await
        .unwrap()
    };
    send(&["DELETE", "UPDATE", "DELETE", "UPDATE", "DELETE"]).await;
    assert_eq!(deliver().await, Ok(Delivered::Sent { events: 3, to: 5 }));
    assert_eq!(deliver().await, Ok(Delivered::Idle));

    // The receiver goes down: the attempt fails, is recorded, and the
    // cursor waits.
    send(&["DELETE", "DELETE"]).await;
    hook.failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let failed = deliver().await.unwrap_err();
    assert_eq!(
        (failed.status, failed.error.as_str()),
        (Some(503), "the destination answered HTTP 503")
    );
    let s = store::list_streams(&app.db).await.unwrap().remove(0);
    assert_eq!((s.cursor_id, s.failures, s.last_status), (5, 1, Some(503)));
    assert!(s.next_attempt_at > app.now());
    // Back up: the backlog arrives, then events the filter passes over only
    // move the cursor.
    hook.failing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(deliver().await, Ok(Delivered::Sent { events: 2, to: 7 }));
    send(&["UPDATE"]).await;
    assert_eq!(deliver().await, Ok(Delivered::PassedOver { to: 8 }));
    let s = store::list_streams(&app.db).await.unwrap().remove(0);
    assert_eq!((s.cursor_id, s.delivered, s.failures), (8, 5, 0));

    let got = hook.got.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "one request a batch");
    let mut ids = Vec::new();
    for (headers, body) in &got {
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
        let events: Vec<serde_json::Value> = serde_json::from_slice(body).unwrap();
        assert!(
            events
                .iter()
                .all(|e| e["action"] == "DELETE"
                    && e["chain_hash"].as_str().map(str::len) == Some(64))
        );
        ids.extend(events.iter().map(|e| e["id"].as_i64().unwrap()));
        assert_eq!(
            header("webhook-id"),
            format!(
                "adk_{id}_{}_{}",
                events[0]["id"],
                events[events.len() - 1]["id"]
            )
        );
    }
    assert_eq!(ids, [1, 3, 5, 6, 7], "every DELETE once, in id order");
}
