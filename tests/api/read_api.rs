//! The read API (`GET /api/v1/events`) against a real database: scopes,
//! the Activity Log's filters, newest-first paging and checkpoint mode.

use crate::common::{json_batch, TestApp, TestResponse};
use auditdeck::models::EventQuery;
use auditdeck::server::{api_keys, store};
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::json;

async fn get(app: &TestApp, key: &str, uri: &str) -> TestResponse {
    let request = Request::get(uri)
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .body(Body::empty())
        .unwrap();
    app.send(request).await
}

fn ids(r: &TestResponse) -> Vec<i64> {
    r.json()["events"]
        .as_array()
        .unwrap_or_else(|| panic!("{} {}", r.status, r.text()))
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect()
}

async fn reader(app: &TestApp) -> String {
    api_keys::create_with_scopes(&app.db, "siem", &["events:read"])
        .await
        .unwrap()
        .1
}

/// Follows `next` from `uri` until a page has none (or `pages` pages).
async fn walk(app: &TestApp, key: &str, uri: &str, pages: usize) -> (Vec<i64>, Option<String>) {
    let mut all = Vec::new();
    let mut next = Some(uri.to_string());
    for _ in 0..pages {
        let Some(uri) = next.take() else { break };
        let r = get(app, key, &uri).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.text());
        let page = ids(&r);
        let link = r
            .headers
            .get(header::LINK)
            .map(|v| v.to_str().unwrap().to_string());
        next = r.json()["next"].as_str().map(str::to_string);
        assert_eq!(link, next.as_ref().map(|n| format!("<{n}>; rel=\"next\"")));
        let empty = page.is_empty();
        all.extend(page);
        if empty {
            return (all, next);
        }
    }
    (all, next)
}

#[tokio::test]
async fn a_key_reads_only_with_the_events_read_scope() {
    let app = TestApp::new().await;
    let writer = app.api_key().await;
    app.ingest(Some(&writer), json_batch(3, "scoped")).await;
    let r = get(&app, &writer, "/api/v1/events").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.error().contains("lacks the events:read scope"),
        "{}",
        r.error()
    );
    let r = app.get("/api/v1/events").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let key = reader(&app).await;
    let r = get(&app, &key, "/api/v1/events").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(ids(&r).len(), 3);
    // The reading key may not write.
    let r = app.ingest(Some(&key), json_batch(1, "no")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let event = &r.json();
    assert!(event["error"].as_str().unwrap().contains("events:write"));
}

#[tokio::test]
async fn filters_give_the_activity_logs_rows_and_paging_walks_them_all_once() {
    let app = TestApp::new().await;
    let writer = app.api_key().await;
    let events: Vec<_> = (0..60)
        .map(|i| {
            let action = ["LOGIN", "UPDATE", "DELETE"][i % 3];
            let table = ["users", "invoices"][i % 2];
            json!({
                "action": action,
                "table": table,
                "ip": format!("10.0.{}.{}", i % 4, i + 1),
                "initiator": {"kind": "user", "id": format!("u{}", i % 5), "name": "Reader Test"},
                "description": format!("event number {i} {}", if i % 7 == 0 { "special" } else { "plain" }),
            })
        })
        .collect();
    let r = app.ingest(Some(&writer), json!(events).to_string()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let key = reader(&app).await;
    for (params, query) in [
        ("", EventQuery::default()),
        (
            "action=LOGIN,DELETE",
            EventQuery {
                actions: vec!["LOGIN".into(), "DELETE".into()],
                ..Default::default()
            },
        ),
        (
            "table=users&action=UPDATE",
            EventQuery {
                table: Some("users".into()),
                actions: vec!["UPDATE".into()],
                ..Default::default()
            },
        ),
        (
            "ip=10.0.1.0/24",
            EventQuery {
                ip: Some("10.0.1.0/24".into()),
                ..Default::default()
            },
        ),
        (
            "q=special",
            EventQuery {
                q: Some("special".into()),
                ..Default::default()
            },
        ),
        (
            "user=user:u3&table=invoices",
            EventQuery {
                user: Some(auditdeck::query::InitiatorKey::parse("user:u3").unwrap()),
                table: Some("invoices".into()),
                ..Default::default()
            },
        ),
    ] {
        let expected: Vec<i64> = store::list_events(
            &app.db,
            &EventQuery {
                per_page: 250,
                ..query
            },
        )
        .await
        .unwrap()
        .rows
        .iter()
        .map(|r| r.id)
        .collect();
        assert!(!expected.is_empty(), "{params}");
        let (got, next) = walk(&app, &key, &format!("/api/v1/events?{params}&limit=7"), 50).await;
        assert_eq!(got, expected, "{params}");
        assert_eq!(next, None, "the last page has no next");
        let (one_page, _) = walk(
            &app,
            &key,
            &format!("/api/v1/events?{params}&limit=1000"),
            1,
        )
        .await;
        assert_eq!(one_page, expected, "{params}");
    }
    // An event's fields as sent.
    let r = get(&app, &key, "/api/v1/events?limit=1").await;
    let e = &r.json()["events"][0];
    assert_eq!(e["action"], "DELETE");
    assert_eq!(e["initiator"]["name"], "Reader Test");
    assert!(e["occurred_at"].as_str().unwrap().ends_with('Z'));
    assert!(
        r.json()["next"]
            .as_str()
            .unwrap()
            .ends_with("limit=1&after=60"),
        "{}",
        r.text()
    );
}

#[tokio::test]
async fn checkpoint_mode_never_skips_a_late_event_nor_repeats_one() {
    let app = TestApp::new().await;
    let writer = app.api_key().await;
    let key = reader(&app).await;
    let stamp =
        |minutes_ago: i64| auditdeck::models::format_rfc3339(app.now() - minutes_ago * 60_000_000);
    // Three events now, then one that arrives late, stamped an hour ago.
    let send = |when: String, what: &str| {
        json!({"action": "UPDATE", "occurred_at": when, "description": what}).to_string()
    };
    for what in ["a", "b", "c"] {
        app.ingest(Some(&writer), send(stamp(0), what)).await;
    }
    let (first, next) = walk(&app, &key, "/api/v1/events?order=id&limit=2", 10).await;
    assert_eq!(first, [1, 2, 3]);
    let next = next.expect("checkpoint mode always has a next");
    assert!(next.ends_with("limit=2&order=id&after_id=3"), "{next}");
    // Caught up: an empty page, the same next URL.
    let r = get(&app, &key, &next).await;
    assert_eq!(ids(&r), Vec::<i64>::new());
    assert_eq!(r.json()["next"].as_str(), Some(next.as_str()));
    // The late event has an older time than all three, yet comes next; a
    // time-ordered reader that had seen "c" would pass over it.
    app.ingest(Some(&writer), send(stamp(60), "late")).await;
    app.ingest(Some(&writer), send(stamp(0), "d")).await;
    let (rest, _) = walk(&app, &key, &next, 10).await;
    assert_eq!(rest, [4, 5]);
    let newest_first = ids(&get(&app, &key, "/api/v1/events").await);
    assert_eq!(newest_first, [5, 3, 2, 1, 4], "newest first is by time");
    // Filters apply in checkpoint mode too.
    let (late, _) = walk(&app, &key, "/api/v1/events?order=id&q=late", 3).await;
    assert_eq!(late, [4]);
}

#[tokio::test]
async fn malformed_parameters_get_400_naming_them() {
    let app = TestApp::new().await;
    let key = reader(&app).await;
    for (uri, names) in [
        ("/api/v1/events?limit=5000", "limit:"),
        ("/api/v1/events?size=50", "size:"),
        ("/api/v1/events?order=id&after_id=-1", "after_id:"),
        ("/api/v1/events?ip=300.1.1.1", "ip:"),
        ("/api/v1/events?range=forever", "range:"),
        ("/api/v1/events?before=4", "before"),
    ] {
        let r = get(&app, &key, uri).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}: {}", r.text());
        assert!(r.error().starts_with(names), "{uri}: {}", r.error());
    }
}

#[tokio::test]
async fn one_event_comes_with_before_after_and_its_chain_hash() {
    let app = TestApp::new().await;
    let writer = app.api_key().await;
    let body = json!({"action": "UPDATE", "table": "invoices", "primary_key": 7,
        "before": {"due": "2026-11-01"}, "after": {"due": "2026-11-15"},
        "request_id": "req-9", "description": "Changed the due date"});
    let r = app.ingest(Some(&writer), body.to_string()).await;
    let id = r.json()["ids"][0].as_i64().unwrap();
    let key = reader(&app).await;
    let r = get(&app, &key, &format!("/api/v1/events/{id}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let e = r.json();
    assert_eq!(e["id"], id);
    assert_eq!(e["before"], json!({"due": "2026-11-01"}));
    assert_eq!(e["after"], json!({"due": "2026-11-15"}));
    assert_eq!(e["request_id"], "req-9");
    assert_eq!(e["primary_key"], "7");
    // The chain hash is the one stored with the event.
    let stored: Vec<u8> = {
        use auditdeck::server::store::Exec;
        let mut db = &app.db;
        let sql = db
            .sql("SELECT chain_hash FROM events WHERE id = ?")
            .bind(id);
        db.scalar(&sql).await.unwrap()
    };
    assert_eq!(e["chain_hash"].as_str(), Some(hex::encode(stored).as_str()));
    assert_eq!(e["chain_hash"].as_str().unwrap().len(), 64);
    for (uri, status) in [
        ("/api/v1/events/999", StatusCode::NOT_FOUND),
        ("/api/v1/events/abc", StatusCode::BAD_REQUEST),
        ("/api/v1/events/0", StatusCode::BAD_REQUEST),
    ] {
        assert_eq!(get(&app, &key, uri).await.status, status, "{uri}");
    }
    assert_eq!(
        get(&app, &writer, &format!("/api/v1/events/{id}"))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn admin_sessions_read_with_the_sessions_read_scope_filtered_and_paged() {
    let app = TestApp::new().await;
    let records: Vec<store::NewAdminSession> = (0..30)
        .map(|i| store::NewAdminSession {
            occurred_at: app.now() - 1_000_000 * (30 - i),
            user_id: Some("1".into()),
            user_name: "Ann Lee".into(),
            user_email: "ann@example.com".into(),
            ip: Some("192.0.2.7".parse().unwrap()),
            url: format!("/activity-log?page={i}"),
            kind: if i % 2 == 0 { "WEB" } else { "API" },
            method: "GET".into(),
            status: 200,
            duration_us: 1500,
        })
        .collect();
    store::insert_admin_sessions(&app.db, &records)
        .await
        .unwrap();
    let events_key = reader(&app).await;
    assert_eq!(
        get(&app, &events_key, "/api/v1/sessions").await.status,
        StatusCode::FORBIDDEN,
        "events:read does not read sessions"
    );
    let key = api_keys::create_with_scopes(&app.db, "soc", &["sessions:read"])
        .await
        .unwrap()
        .1;
    let mut seen = Vec::new();
    let mut next = Some("/api/v1/sessions?type=WEB&limit=4".to_string());
    while let Some(uri) = next.take() {
        let r = get(&app, &key, &uri).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.text());
        let page = r.json();
        for s in page["sessions"].as_array().unwrap() {
            assert_eq!(s["kind"], "WEB");
            assert_eq!(s["user"]["email"], "ann@example.com");
            seen.push(s["url"].as_str().unwrap().to_string());
        }
        next = page["next"].as_str().map(str::to_string);
    }
    assert_eq!(seen.len(), 15, "{seen:?}");
    assert_eq!(seen[0], "/activity-log?page=28", "newest first");
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 15, "no session twice");
    let r = get(&app, &key, "/api/v1/sessions?user=ann").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.error().starts_with("user: not a parameter"),
        "{}",
        r.error()
    );
}

#[tokio::test]
async fn each_key_is_rate_limited_with_retry_after() {
    let app = TestApp::with_config(auditdeck::server::config::AppConfig {
        api_reads_per_minute: 5,
        ..Default::default()
    })
    .await;
    let key = reader(&app).await;
    let other = api_keys::create_with_scopes(&app.db, "other", &["events:read"])
        .await
        .unwrap()
        .1;
    for _ in 0..5 {
        assert_eq!(
            get(&app, &key, "/api/v1/events").await.status,
            StatusCode::OK
        );
    }
    let r = get(&app, &key, "/api/v1/events").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    assert_eq!(r.headers[header::RETRY_AFTER], "12", "a token every 12 s");
    assert!(r.error().contains("5 reads a minute"), "{}", r.error());
    // Another key has its own bucket.
    assert_eq!(
        get(&app, &other, "/api/v1/events").await.status,
        StatusCode::OK
    );
    // Twelve seconds later, one more read.
    app.clock().advance(12_000_000);
    assert_eq!(
        get(&app, &key, "/api/v1/events").await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&app, &key, "/api/v1/events").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn reads_are_audited_once_per_key_and_minute() {
    let app = TestApp::new().await;
    let writer = app.api_key().await;
    app.ingest(Some(&writer), json_batch(3, "audited")).await;
    let key = reader(&app).await;
    // A poller's minute: six reads.
    for _ in 0..5 {
        get(&app, &key, "/api/v1/events?order=id").await;
    }
    get(&app, &key, "/api/v1/events/1").await;
    assert!(
        app.events_with_action("API_READ").await.is_empty(),
        "not before the minute ends"
    );
    // The first read of the next minute writes the last one's tally.
    app.clock().advance(60_000_000);
    get(&app, &key, "/api/v1/events?limit=1").await;
    let audited = app.events_with_action("API_READ").await;
    assert_eq!(audited.len(), 1, "{audited:?}");
    let (description, _) = &audited[0];
    assert!(
        description.starts_with("API key \"siem\" made 6 reads (16 rows) in the minute from "),
        "{description}"
    );
    assert!(
        description.ends_with("UTC: /api/v1/events 5, /api/v1/events/{id} 1"),
        "{description}"
    );
}

/// Found by schemathesis: a NUL in a search ended the string inside SQLite's
/// full-text parser and answered 500. Control characters are refused by name.
#[tokio::test]
async fn a_search_or_filter_with_a_nul_is_a_400_naming_it_on_both_endpoints() {
    let app = TestApp::new().await;
    let key = api_keys::create_with_scopes(&app.db, "siem", &["events:read", "sessions:read"])
        .await
        .unwrap()
        .1;
    for (uri, name) in [
        ("/api/v1/sessions?q=ab%00cd", "q"),
        ("/api/v1/events?q=disk%00full", "q"),
        ("/api/v1/events?table=inv%00oices", "table"),
        ("/api/v1/events?user=user:a%00n", "user"),
    ] {
        let r = get(&app, &key, uri).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}: {}", r.text());
        assert_eq!(
            r.error(),
            format!("{name}: contains control characters"),
            "{uri}"
        );
    }
}
