//! Several Auditdeck servers on one PostgreSQL database: two real server
//! processes on their own ports take ingest at once, share sign-in
//! sessions and export tickets, and leave one intact chain with every event
//! stored exactly once. Runs on PostgreSQL (`AUDITDECK_TEST_BACKEND=postgres`).
//! And a crash test on both databases: a server killed under clients that
//! retry with idempotency keys loses nothing and stores nothing twice.

use crate::common::{session_cookie, test_on_postgres, TestApp, TestResponse, PASSWORD};
use auditdeck::integrity::VerifyMode;
use auditdeck::models::Role;
use auditdeck::server::store;
use axum::body::Bytes;
use axum::http::{header, Request, StatusCode};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A server process, stopped when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn start_server(database_url: &str) -> Server {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_auditdeck"))
        .arg("serve")
        .env("AUDITDECK_DATABASE_URL", database_url)
        .env("AUDITDECK_DEMO_DATA", "false")
        .env("AUDITDECK_LOG", "warn")
        .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .spawn()
        .expect("start auditdeck serve");
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server on port {port} did not start");
}

/// A test app and an API key, on PostgreSQL only (several servers share
/// one database there); `None`, with a note, on SQLite.
async fn postgres_app() -> Option<(TestApp, String)> {
    if !test_on_postgres() {
        eprintln!("skipped: several servers share a PostgreSQL database (AUDITDECK_TEST_BACKEND=postgres)");
        return None;
    }
    let app = TestApp::new().await;
    let key = app.api_key().await;
    Some((app, key))
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

async fn send(client: &HttpClient, request: Request<Full<Bytes>>) -> TestResponse {
    let response = client.request(request).await.expect("HTTP response");
    TestResponse::read(response).await
}

/// `n` events, each named by its server, client, batch and place.
fn batch(server: usize, client: usize, batch: usize, n: usize) -> String {
    let events: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "action": "CREATE",
                "initiator": {"kind": "user", "id": format!("c{client}"), "name": "Load Client"},
                "table": "orders",
                "primary_key": format!("{server}-{client}-{batch}-{i}"),
                "description": format!("s{server}-c{client}-b{batch}-e{i}"),
                "after": {"n": i}
            })
        })
        .collect();
    serde_json::Value::Array(events).to_string()
}

const CLIENTS_PER_SERVER: usize = 6;
const BATCHES: usize = 20;
const BATCH_SIZE: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_share_one_database_and_keep_one_intact_chain() {
    let Some((app, key)) = postgres_app().await else {
        return;
    };
    app.user("shared", Role::Admin).await;
    let servers = [start_server(&app.url).await, start_server(&app.url).await];
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();

    // Ingest through both at once: six clients each, twenty batches of 100.
    let mut tasks = Vec::new();
    for (s, server) in servers.iter().enumerate() {
        for c in 0..CLIENTS_PER_SERVER {
            let (client, base, key) = (client.clone(), server.base.clone(), key.clone());
            tasks.push(tokio::spawn(async move {
                let mut ids = Vec::new();
                for b in 0..BATCHES {
                    let request = Request::post(format!("{base}/api/v1/events"))
                        .header(header::CONTENT_TYPE, "application/json")
                        .header(header::AUTHORIZATION, format!("Bearer {key}"))
                        .body(Full::new(Bytes::from(batch(s, c, b, BATCH_SIZE))))
                        .unwrap();
                    let r = send(&client, request).await;
                    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
                    ids.extend(
                        r.json()["ids"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|v| v.as_i64().unwrap()),
                    );
                }
                ids
            }));
        }
    }
    let mut ids: Vec<i64> = Vec::new();
    for task in tasks {
        ids.extend(task.await.expect("ingest task"));
    }
    let sent = 2 * CLIENTS_PER_SERVER * BATCHES * BATCH_SIZE;
    assert_eq!(ids.len(), sent);
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), sent, "two events were given one id");

    // Every event stored once: each description is there exactly once.
    let page = auditdeck::models::EventQuery {
        q: Some("s1-c5-b19-e99".into()),
        ..Default::default()
    };
    let found = store::list_events(&app.db, &page).await.unwrap();
    assert_eq!(found.rows.len(), 1);
    let counts: Vec<(String, i64)> = {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&app.url).await.unwrap();
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT 'stored', COUNT(*) FROM events WHERE table_name = 'orders' \
             UNION ALL SELECT 'distinct', COUNT(DISTINCT description) FROM events WHERE table_name = 'orders' \
             UNION ALL SELECT 'ids', COUNT(DISTINCT id) FROM events",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        conn.close().await.ok();
        rows
    };
    assert_eq!(counts[0].1, sent as i64, "{counts:?}");
    assert_eq!(counts[1].1, sent as i64, "{counts:?}");

    // The chain the two servers wrote in turns is whole.
    let report = store::verify_chain(&app.db, VerifyMode::Full, Vec::new(), |_, _| {})
        .await
        .unwrap();
    assert!(report.intact(), "{:?}", report.problems);
    assert_eq!(report.events, u64::try_from(counts[2].1).unwrap());

    // Sign in through the first server, use the session on the second.
    let login = Request::post(format!("{}/api/login", servers[0].base))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "text/html")
        .header("sec-fetch-site", "same-origin")
        .body(Full::new(Bytes::from(format!(
            "username=shared&password={PASSWORD}&next=%2Factivity-log"
        ))))
        .unwrap();
    let r = send(&client, login).await;
    let cookie =
        session_cookie(&r).unwrap_or_else(|| panic!("no session: {} {}", r.status, r.text()));
    let page = |base: &str, cookie: Option<&str>| {
        let mut request = Request::get(format!("{base}/activity-log"));
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        request.body(Full::new(Bytes::new())).unwrap()
    };
    let r = send(&client, page(&servers[1].base, Some(&cookie))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.text().contains("shared person"),
        "the second server knows the session"
    );
    let r = send(&client, page(&servers[1].base, None)).await;
    assert!(r.status.is_redirection(), "and without it, asks to sign in");

    // An export prepared on one server downloads from the other, once.
    let prepare = Request::post(format!("{}/api/start_export", servers[1].base))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json")
        .header("sec-fetch-site", "same-origin")
        .header(header::COOKIE, &cookie)
        .body(Full::new(Bytes::from(
            serde_json::json!({
                "selection": {"Ids": [ids[0], ids[1], ids[2]]},
                "format": "Csv"
            })
            .to_string(),
        )))
        .unwrap();
    let r = send(&client, prepare).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let token = r.json()["token"].as_str().unwrap().to_string();
    let download = |base: &str| {
        Request::get(format!("{base}/api/exports/{token}"))
            .header(header::COOKIE, &cookie)
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let r = send(&client, download(&servers[0].base)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        r.text().lines().count(),
        4,
        "a header and three rows: {}",
        r.text()
    );
    let r = send(&client, download(&servers[1].base)).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "a ticket downloads once");
    drop(servers);
}

/// One ingest request over HTTP that may fail (the server killed under it).
async fn try_ingest(
    client: &HttpClient,
    base: &str,
    key: &str,
    idempotency: &str,
    body: &str,
) -> Option<TestResponse> {
    try_ingest_within(
        client,
        base,
        key,
        idempotency,
        body,
        Duration::from_secs(20),
    )
    .await
}

/// [`try_ingest`] that gives up waiting for the answer after `patience`.
async fn try_ingest_within(
    client: &HttpClient,
    base: &str,
    key: &str,
    idempotency: &str,
    body: &str,
    patience: Duration,
) -> Option<TestResponse> {
    let request = Request::post(format!("{base}/api/v1/events"))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header("idempotency-key", idempotency)
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let response = tokio::time::timeout(patience, client.request(request))
        .await
        .ok()?
        .ok()?;
    let r = TestResponse::read(response).await;
    (r.status == StatusCode::CREATED).then_some(r)
}

/// The stored events of the load batches: all, and distinct descriptions.
async fn stored_orders(app: &TestApp) -> (i64, i64) {
    {
        let mut db = &app.db;
        use auditdeck::server::store::Exec;
        let sql = db.sql(
            "SELECT COUNT(*), COUNT(DISTINCT description) FROM events WHERE table_name = 'orders'",
        );
        let row = db.one(&sql).await.unwrap();
        (row.get::<i64>(0).unwrap(), row.get::<i64>(1).unwrap())
    }
}

/// The crash test: six clients ingest with an `Idempotency-Key` per batch
/// and retry every failure with the same key and body; the server is killed
/// (SIGKILL) ten times on the way and started again. Every event is stored
/// exactly once and the chain is whole. On both databases.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_that_retry_with_idempotency_keys_store_every_event_once_across_crashes() {
    const CLIENTS: usize = 6;
    const CRASH_BATCHES: usize = 30;
    const CRASH_BATCH_SIZE: usize = 25;
    const KILLS: usize = 10;
    let app = TestApp::new().await;
    let key = app.api_key().await;
    let mut server = start_server(&app.url).await;
    let base = std::sync::Arc::new(std::sync::RwLock::new(server.base.clone()));
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let retries = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let replayed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (client, key, base, acked, retries, replayed) = (
            client.clone(),
            key.clone(),
            base.clone(),
            acked.clone(),
            retries.clone(),
            replayed.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for b in 0..CRASH_BATCHES {
                let body = batch(0, c, b, CRASH_BATCH_SIZE);
                let idempotency = format!("client-{c}-batch-{b}");
                for attempt in 0.. {
                    let at = base.read().unwrap().clone();
                    // Every third batch's first attempt gives up after a few
                    // milliseconds: its answer is lost after the commit, as
                    // when a connection drops.
                    let patience = if attempt == 0 && b % 3 == 0 {
                        Duration::from_millis(2)
                    } else {
                        Duration::from_secs(20)
                    };
                    let r =
                        try_ingest_within(&client, &at, &key, &idempotency, &body, patience).await;
                    if let Some(r) = r {
                        ids.extend(
                            r.json()["ids"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .map(|v| v.as_i64().unwrap()),
                        );
                        acked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        if r.headers.contains_key("idempotent-replayed") {
                            replayed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                        break;
                    }
                    retries.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            ids
        }));
    }
    // Kill the server with SIGKILL ten times on the way.
    let total = CLIENTS * CRASH_BATCHES;
    for crash in 1..=KILLS {
        while acked.load(std::sync::atomic::Ordering::SeqCst) < total * crash / (KILLS + 1) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(server);
        server = start_server(&app.url).await;
        *base.write().unwrap() = server.base.clone();
    }
    let mut ids: Vec<i64> = Vec::new();
    for task in tasks {
        ids.extend(task.await.expect("client"));
    }
    let sent = total * CRASH_BATCH_SIZE;
    assert_eq!(ids.len(), sent, "every event acknowledged");
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), sent, "one id per event");
    let (stored, distinct) = stored_orders(&app).await;
    eprintln!(
        "crash test: {KILLS} kills, {sent} events acknowledged, {stored} stored ({distinct} distinct), \
         {} retries, {} answered from a stored answer",
        retries.load(std::sync::atomic::Ordering::SeqCst),
        replayed.load(std::sync::atomic::Ordering::SeqCst)
    );
    assert_eq!(stored, sent as i64, "stored exactly once");
    assert_eq!(distinct, sent as i64);
    let report = store::verify_chain(&app.db, VerifyMode::Full, Vec::new(), |_, _| {})
        .await
        .unwrap();
    assert!(report.intact(), "{:?}", report.problems);
    drop(server);
}

/// Two servers on one PostgreSQL database take the same 4 × 10 batches of
/// 20 at once (four clients on each): `request(server, client, batch)` gives
/// a request's idempotency key and body. Each event is stored once and both
/// servers answer each batch with the same ids.
async fn two_servers_take_the_same_batches(request: fn(usize, usize, usize) -> (String, String)) {
    let Some((app, key)) = postgres_app().await else {
        return;
    };
    let servers = [start_server(&app.url).await, start_server(&app.url).await];
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let mut tasks = Vec::new();
    for (s, server) in servers.iter().enumerate() {
        for c in 0..4 {
            let (client, base, key) = (client.clone(), server.base.clone(), key.clone());
            tasks.push(tokio::spawn(async move {
                let mut answers = Vec::new();
                for b in 0..10 {
                    let (idempotency, body) = request(s, c, b);
                    let r = try_ingest(&client, &base, &key, &idempotency, &body)
                        .await
                        .expect("answered");
                    answers.push(r.json()["ids"].clone());
                }
                (c, answers)
            }));
        }
    }
    let mut by_client = std::collections::HashMap::new();
    for task in tasks {
        let (c, answers) = task.await.unwrap();
        if let Some(previous) = by_client.insert(c, answers.clone()) {
            assert_eq!(
                previous, answers,
                "both servers gave client {c} the same ids"
            );
        }
    }
    let (stored, distinct) = stored_orders(&app).await;
    assert_eq!(stored, 4 * 10 * 20);
    assert_eq!(distinct, 4 * 10 * 20);
    drop(servers);
}

/// The same requests (the same idempotency keys and bodies) to both servers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_answer_one_idempotency_key_with_one_stored_batch() {
    two_servers_take_the_same_batches(|_, c, b| (format!("c{c}-b{b}"), batch(0, c, b, 20))).await;
}

/// The same events, each with its `event_id`, under idempotency keys of
/// each server's own: the event ids keep them once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_store_each_event_id_once() {
    two_servers_take_the_same_batches(|s, c, b| {
        let mut events: Vec<serde_json::Value> = serde_json::from_str(&batch(0, c, b, 20)).unwrap();
        for (i, e) in events.iter_mut().enumerate() {
            e["event_id"] = format!("c{c}-b{b}-e{i}").into();
        }
        (
            format!("s{s}-c{c}-b{b}"),
            serde_json::Value::Array(events).to_string(),
        )
    })
    .await;
}
