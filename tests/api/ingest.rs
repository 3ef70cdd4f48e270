use crate::common::{json_batch, TestApp, TestResponse};
use auditdeck::integrity::VerifyMode;
use auditdeck::models::{EventQuery, InitiatorKind};
use auditdeck::server::config::AppConfig;
use auditdeck::server::{api_keys, store};
use axum::body::Body;
use axum::http::{header, Request, StatusCode};

#[tokio::test]
async fn one_event_is_stored_and_listed_first() {
    let app = TestApp::new().await;
    let key = app.api_key().await;
    let r = app
        .ingest(Some(&key), r#"{"action":"publish","table":"pages","primary_key":"home","description":"Home page published"}"#)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let ids = r.json()["ids"].as_array().unwrap().clone();
    assert_eq!(ids.len(), 1);
    let page = store::list_events(&app.db, &EventQuery::default())
        .await
        .unwrap();
    let row = &page.rows[0];
    assert_eq!(row.id, ids[0].as_i64().unwrap());
    assert_eq!(row.action, "PUBLISH");
    assert_eq!(row.description, "Home page published");
    assert_eq!(row.initiator.kind, InitiatorKind::ApiKey);
    assert_eq!(row.initiator.name.as_deref(), Some("test client"));
}

#[tokio::test]
async fn a_batch_of_1000_is_stored_in_order_and_appears_first() {
    let app = TestApp::new().await;
    let key = app.api_key().await;
    let r = app.ingest(Some(&key), json_batch(1000, "bulk")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let ids: Vec<i64> = r.json()["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 1000);
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1));
    assert_eq!(app.count().await, 1000);
    let page = app.page(1, 10).await;
    assert!(page
        .rows
        .iter()
        .all(|r| r.description.starts_with("bulk order")));
    assert!(page.rows.iter().all(|r| r.has_changes));
}

#[tokio::test]
async fn the_key_records_its_last_use() {
    let app = TestApp::new().await;
    let (id, key) = auditdeck::server::api_keys::create(&app.db, "crm")
        .await
        .unwrap();
    assert_eq!(store::api_key_last_used(&app.db, id).await.unwrap(), None);
    assert_eq!(
        app.ingest(Some(&key), r#"{"action":"LOGIN"}"#).await.status,
        StatusCode::CREATED
    );
    assert!(store::api_key_last_used(&app.db, id)
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn missing_wrong_or_revoked_keys_get_401_and_store_nothing() {
    let app = TestApp::new().await;
    let (id, revoked) = auditdeck::server::api_keys::create(&app.db, "old")
        .await
        .unwrap();
    store::revoke_api_key(&app.db, id).await.unwrap();
    let body = r#"{"action":"LOGIN"}"#;
    for key in [
        None,
        Some("adk_wrongwrongwrong"),
        Some("not-a-key"),
        Some(revoked.as_str()),
    ] {
        let r = app.ingest(key, body).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{key:?}");
        assert!(r.error().contains("API key"));
        assert_eq!(r.headers.get(header::WWW_AUTHENTICATE).unwrap(), "Bearer");
    }
    // A key sent under another scheme is refused too.
    let good = app.api_key().await;
    let request = Request::post("/api/v1/events")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Basic {good}"))
        .body(Body::from(body))
        .unwrap();
    assert_eq!(app.send(request).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.count().await, 0);
}

#[tokio::test]
async fn invalid_payloads_get_400_naming_the_field_and_store_nothing() {
    let app = TestApp::new().await;
    let key = app.api_key().await;
    let mut bad_batch: Vec<serde_json::Value> = serde_json::from_str(&json_batch(5, "x")).unwrap();
    bad_batch[3]["ip"] = "300.1.2.3".into();
    let cases: Vec<(String, &str)> = vec![
        (r#"{"action":"UPDATE","ip":"not-an-ip"}"#.into(), "ip:"),
        (r#"{"action":"BAD VERB!"}"#.into(), "action:"),
        (r#"{"table":"orders"}"#.into(), "action"),
        (
            r#"{"action":"A","occurred_at":"27-10-2025"}"#.into(),
            "occurred_at:",
        ),
        (
            r#"{"action":"A","initiator":{"kind":"wizard"}}"#.into(),
            "initiator.kind:",
        ),
        (
            r#"{"action":"A","initiator":{"kind":"user","email":"no-at-sign"}}"#.into(),
            "initiator.email:",
        ),
        (
            r#"{"action":"A","unknown_field":1}"#.into(),
            "unknown_field",
        ),
        (
            r#"{"action":"A","description":["list"]}"#.into(),
            "description:",
        ),
        (serde_json::Value::Array(bad_batch).to_string(), "[3].ip:"),
        ("[]".into(), "empty"),
        ("\"just a string\"".into(), "body:"),
        ("{\"action\":".into(), "body:"),
        (json_batch(1001, "too many"), "at most 1000"),
    ];
    for (body, expected) in cases {
        let r = app.ingest(Some(&key), body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            r.error().contains(expected),
            "{body}: got {:?}, expected {expected:?}",
            r.error()
        );
    }
    assert_eq!(app.count().await, 0);
}

#[tokio::test]
async fn oversized_bodies_get_413_and_store_nothing() {
    let app = TestApp::with_config(AppConfig {
        ingest_max_body_bytes: 10_000,
        ..AppConfig::default()
    })
    .await;
    let key = app.api_key().await;
    let body = json_batch(200, "big");
    assert!(body.len() > 10_000);
    let r = app.ingest(Some(&key), body.clone()).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.error().contains("10000 bytes"), "{}", r.error());
    // Without a Content-Length (a streamed body), the limit holds as well.
    let stream = streamed_body(body);
    let request = Request::post("/api/v1/events")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .body(stream)
        .unwrap();
    assert_eq!(
        app.send(request).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(app.count().await, 0);
}

/// A body without a declared length.
fn streamed_body(body: String) -> Body {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = body
        .into_bytes()
        .chunks(1000)
        .map(|c| Ok(c.to_vec()))
        .collect();
    Body::from_stream(futures::stream::iter(chunks))
}

#[tokio::test]
async fn non_json_content_type_gets_415() {
    let app = TestApp::new().await;
    let key = app.api_key().await;
    let request = Request::post("/api/v1/events")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .body(Body::from(r#"{"action":"A"}"#))
        .unwrap();
    let r = app.send(request).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(app.count().await, 0);
}

#[tokio::test]
async fn only_post_and_get_are_accepted() {
    let app = TestApp::new().await;
    for method in ["PUT", "DELETE", "PATCH"] {
        let request = Request::builder()
            .method(method)
            .uri("/api/v1/events")
            .body(Body::empty())
            .unwrap();
        assert_eq!(
            app.send(request).await.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method}"
        );
    }
    // GET is the read API: without a key, 401.
    assert_eq!(
        app.get("/api/v1/events").await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// A POST of the ingest API with an `Idempotency-Key`.
async fn ingest_once(app: &TestApp, key: &str, idempotency: &str, body: &str) -> TestResponse {
    let request = Request::post("/api/v1/events")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header("idempotency-key", idempotency)
        .body(Body::from(body.to_string()))
        .unwrap();
    app.send(request).await
}

fn ids_of(r: &TestResponse) -> Vec<i64> {
    r.json()["ids"]
        .as_array()
        .unwrap_or_else(|| panic!("no ids: {} {}", r.status, r.text()))
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn a_retry_with_the_same_idempotency_key_answers_the_first_answer_and_stores_nothing() {
    let app = TestApp::new().await;
    let key = app.api_key().await;
    let body = json_batch(3, "retry");
    let first = ingest_once(&app, &key, "req-1", &body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    assert!(first.headers.get("idempotent-replayed").is_none());
    let again = ingest_once(&app, &key, "req-1", &body).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.text());
    assert_eq!(ids_of(&again), ids_of(&first));
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(app.count().await, 3, "the retry stored nothing");

    // Another key is another request; no key at all stores every time.
    let other = ingest_once(&app, &key, "req-2", &body).await;
    assert_eq!(other.status, StatusCode::CREATED);
    assert_ne!(ids_of(&other), ids_of(&first));
    assert_eq!(
        app.ingest(Some(&key), body.clone()).await.status,
        StatusCode::CREATED
    );
    assert_eq!(app.count().await, 9);

    // Keys are per API key: another client may use "req-1" for its own.
    let (_, second_key) = auditdeck::server::api_keys::create(&app.db, "second")
        .await
        .unwrap();
    let theirs = ingest_once(&app, &second_key, "req-1", &body).await;
    assert_eq!(theirs.status, StatusCode::CREATED);
    assert_ne!(ids_of(&theirs), ids_of(&first));
    assert_eq!(app.count().await, 12);
}

#[tokio::test]
async fn the_same_idempotency_key_with_another_body_is_refused_and_changes_nothing() {
    let app = TestApp::new().await;
    let key = app.api_key().await;
    let first = ingest_once(&app, &key, "req-1", &json_batch(2, "one")).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let other = ingest_once(&app, &key, "req-1", &json_batch(2, "two")).await;
    assert_eq!(
        other.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        other.text()
    );
    assert!(
        other.error().contains("Idempotency-Key"),
        "{}",
        other.error()
    );
    assert_eq!(app.count().await, 2);
    // The first answer still stands.
    let again = ingest_once(&app, &key, "req-1", &json_batch(2, "one")).await;
    assert_eq!(ids_of(&again), ids_of(&first));
}

#[tokio::test]
async fn a_malformed_idempotency_key_is_refused_before_anything_is_stored() {
    let app = TestApp::new().await;
    let key = app.api_key().await;
    for bad in ["", "  ", "has space", &"k".repeat(256)] {
        let r = ingest_once(&app, &key, bad, &json_batch(1, "bad")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad:?}: {}", r.text());
        assert!(r.error().starts_with("Idempotency-Key:"), "{}", r.error());
    }
    // An invalid body with a key is refused and leaves the key unused.
    let r = ingest_once(&app, &key, "req-1", r#"{"action":""}"#).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.count().await, 0);
    let r = ingest_once(&app, &key, "req-1", &json_batch(1, "good")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(app.count().await, 1);
}

#[tokio::test]
async fn an_idempotency_key_is_kept_24_hours_then_forgotten() {
    let app = TestApp::new().await;
    let key = app.api_key().await;
    let body = json_batch(1, "day");
    let first = ingest_once(&app, &key, "req-1", &body).await;
    app.clock().advance(23 * 3600 * 1_000_000);
    let within = ingest_once(&app, &key, "req-1", &body).await;
    assert_eq!(ids_of(&within), ids_of(&first));
    assert_eq!(store::purge_ingest_requests(&app.db).await.unwrap(), 0);
    app.clock().advance(3600 * 1_000_000);
    // Past 24 hours the key is a new request (and may carry a new body).
    let later = ingest_once(&app, &key, "req-1", &json_batch(1, "next")).await;
    assert_eq!(later.status, StatusCode::CREATED);
    assert_ne!(ids_of(&later), ids_of(&first));
    assert_eq!(app.count().await, 2);
    app.clock().advance(24 * 3600 * 1_000_000 + 1);
    assert_eq!(store::purge_ingest_requests(&app.db).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_retries_with_one_key_store_the_batch_once() {
    let app = std::sync::Arc::new(TestApp::new().await);
    let key = app.api_key().await;
    let body = json_batch(50, "race");
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (app, key, body) = (app.clone(), key.clone(), body.clone());
            tokio::spawn(async move { ingest_once(&app, &key, "race-1", &body).await })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        let r = task.await.unwrap();
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        answers.push(ids_of(&r));
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    assert_eq!(app.count().await, 50);
}

/// A batch of `n` events, each with its own `event_id` `{tag}-{i}`.
fn keyed_batch(n: usize, tag: &str) -> String {
    let events: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "event_id": format!("{tag}-{i}"),
                "action": "CREATE",
                "table": "orders",
                "primary_key": i,
                "description": format!("{tag} order {i}")
            })
        })
        .collect();
    serde_json::Value::Array(events).to_string()
}

#[tokio::test]
async fn an_event_sent_again_with_its_event_id_is_reported_as_a_duplicate_not_stored_twice() {
    let app = TestApp::new().await;
    let key = app.api_key().await;
    let first = app.ingest(Some(&key), keyed_batch(3, "evt")).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    assert!(
        first.json().get("duplicates").is_none(),
        "no duplicates: {}",
        first.text()
    );
    let stored = ids_of(&first);

    // The same three again, with a new one between: only the new one is stored.
    let mut again: Vec<serde_json::Value> = serde_json::from_str(&keyed_batch(3, "evt")).unwrap();
    again.insert(
        1,
        serde_json::json!({"event_id": "evt-new", "action": "CREATE"}),
    );
    let r = app
        .ingest(Some(&key), serde_json::Value::Array(again).to_string())
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let ids = ids_of(&r);
    assert_eq!(r.json()["duplicates"], serde_json::json!([0, 2, 3]));
    assert_eq!([ids[0], ids[2], ids[3]], [stored[0], stored[1], stored[2]]);
    assert!(ids[1] > stored[2], "the new one is stored after: {ids:?}");
    assert_eq!(app.count().await, 4);

    // Events without an event_id are stored every time; other keys have
    // event ids of their own.
    let (_, other_key) = api_keys::create(&app.db, "other").await.unwrap();
    let theirs = app.ingest(Some(&other_key), keyed_batch(1, "evt")).await;
    assert_eq!(theirs.status, StatusCode::CREATED);
    assert!(theirs.json().get("duplicates").is_none());
    assert_eq!(app.count().await, 5);
    let report = store::verify_chain(&app.db, VerifyMode::Full, Vec::new(), |_, _| {})
        .await
        .unwrap();
    assert!(report.intact(), "{:?}", report.problems);
}

#[tokio::test]
async fn an_event_id_sent_with_other_content_is_a_409_and_nothing_of_the_batch_is_stored() {
    let app = TestApp::new().await;
    let key = app.api_key().await;
    let first = app.ingest(Some(&key), keyed_batch(3, "evt")).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let mut changed: Vec<serde_json::Value> = serde_json::from_str(&keyed_batch(3, "evt")).unwrap();
    changed[2]["description"] = "something else".into();
    changed.push(serde_json::json!({"event_id": "evt-9", "action": "CREATE"}));
    let r = app
        .ingest(Some(&key), serde_json::Value::Array(changed).to_string())
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
    assert!(
        r.error().starts_with(&format!(
            "[2].event_id: \"evt-2\" was stored as event #{}",
            ids_of(&first)[2]
        )),
        "{}",
        r.error()
    );
    assert_eq!(app.count().await, 3, "evt-9 was not stored either");
    // Repeated within one batch: a 400 naming both.
    let r = app
        .ingest(
            Some(&key),
            r#"[{"event_id":"x","action":"A"},{"event_id":"x","action":"A"}]"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.error().starts_with("[1].event_id:"), "{}", r.error());
    assert_eq!(app.count().await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sends_of_one_event_id_store_it_once_and_answer_each_with_its_id() {
    let app = std::sync::Arc::new(TestApp::new().await);
    let key = app.api_key().await;
    let body = keyed_batch(40, "race");
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (app, key, body) = (app.clone(), key.clone(), body.clone());
            tokio::spawn(async move { app.ingest(Some(&key), body).await })
        })
        .collect();
    let mut answers = Vec::new();
    let mut stored_by = 0;
    for task in tasks {
        let r = task.await.unwrap();
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        if r.json().get("duplicates").is_none() {
            stored_by += 1;
        } else {
            assert_eq!(r.json()["duplicates"].as_array().unwrap().len(), 40);
        }
        answers.push(ids_of(&r));
    }
    assert_eq!(stored_by, 1, "one request stored the batch");
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    assert_eq!(app.count().await, 40);
}

#[tokio::test]
async fn an_event_id_is_released_once_retention_has_removed_its_event() {
    let app = TestApp::new().await;
    let key = app.api_key().await;
    let old = auditdeck::models::format_rfc3339(app.now() - 40 * 24 * 3600 * 1_000_000);
    let body = format!(
        r#"[{{"event_id":"old-0","action":"A","occurred_at":"{old}"}},{{"event_id":"old-1","action":"A","occurred_at":"{old}"}}]"#
    );
    let first = app.ingest(Some(&key), body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    let recent = app.ingest(Some(&key), keyed_batch(1, "new")).await;
    assert_eq!(recent.status, StatusCode::CREATED);
    assert_eq!(
        store::purge_event_ids(&app.db).await.unwrap(),
        0,
        "their events are there"
    );
    let again = app.ingest(Some(&key), body.clone()).await;
    assert_eq!(again.json()["duplicates"], serde_json::json!([0, 1]));

    let policy = auditdeck::integrity::RetentionPolicy {
        keep_days: Some(30),
        by_action: vec![],
    };
    let outcome = store::apply_retention(&app.db, &policy, app.now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome.run.removed, 2);
    assert_eq!(store::purge_event_ids(&app.db).await.unwrap(), 2);
    // Sent again, they are new events; the recent one is still known.
    let later = app.ingest(Some(&key), body).await;
    assert_eq!(later.status, StatusCode::CREATED);
    assert!(later.json().get("duplicates").is_none(), "{}", later.text());
    let recent_again = app.ingest(Some(&key), keyed_batch(1, "new")).await;
    assert_eq!(recent_again.json()["duplicates"], serde_json::json!([0]));
}
