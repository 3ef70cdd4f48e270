use crate::common::{json_batch, TestApp};
use auditdeck::models::{EventQuery, InitiatorKind};
use auditdeck::server::config::AppConfig;
use auditdeck::server::store;
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
async fn only_post_is_accepted() {
    let app = TestApp::new().await;
    let r = app.get("/api/v1/events").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}
