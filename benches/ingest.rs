//! Ingest throughput through the batch API, over real HTTP on loopback.
//!
//! `cargo bench --no-default-features --features ssr --bench ingest`
//! (env BENCH_EVENTS, default 100000; BENCH_BATCH, default 1000).
//! Prints events/s and the time for the whole run.

mod common;

use auditdeck::server::config::AppConfig;
use auditdeck::server::state::AppState;
use auditdeck::server::{api_keys, router, store};
use leptos::config::LeptosOptions;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn batch(n: usize, offset: usize) -> String {
    let events: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let k = offset + i;
            let action = ["CREATE", "UPDATE", "DELETE", "LOGIN"][k % 4];
            let table = ["orders", "invoices", "customers"][k % 3];
            serde_json::json!({
                "action": action,
                "initiator": {"kind": "user", "id": k % 50, "name": format!("User {}", k % 50), "email": format!("user{}@example.com", k % 50)},
                "ip": format!("10.{}.{}.{}", k % 200, (k / 200) % 250, k % 250 + 1),
                "table": table,
                "primary_key": k,
                "description": format!("Changed order {k}: status moved from open to paid"),
                "before": {"status": "open", "total": k},
                "after": {"status": "paid", "total": k},
                "user_agent": "bench/1.0",
                "request_id": format!("req-{k}")
            })
        })
        .collect();
    serde_json::Value::Array(events).to_string()
}

async fn post(addr: std::net::SocketAddr, key: &str, body: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /api/v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(body.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let total = env_usize("BENCH_EVENTS", 100_000);
    let size = env_usize("BENCH_BATCH", 1000);
    let dir = tempfile::tempdir().expect("temp dir");
    let url = common::scratch_url(dir.path(), "ingest").await;
    let db = store::open(&url).await.expect("open");
    let (_, key) = api_keys::create(&db, "bench").await.expect("key");
    let (recorder, _writer) =
        auditdeck::server::recorder::spawn(db.clone(), auditdeck::server::recorder::QUEUE_CAPACITY);
    let state = AppState {
        leptos_options: LeptosOptions::builder().output_name("auditdeck").build(),
        recorder,
        exports: Default::default(),
        api: Default::default(),
        db: db.clone(),
        config: Arc::new(AppConfig {
            database_url: url,
            ..AppConfig::default()
        }),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router(state)).await });

    let bodies: Vec<String> = (0..total.div_ceil(size))
        .map(|b| batch(size.min(total - b * size), b * size))
        .collect();
    let mut latencies = Vec::with_capacity(bodies.len());
    let started = Instant::now();
    for body in &bodies {
        let t = Instant::now();
        let status = post(addr, &key, body).await;
        assert_eq!(status, 201, "ingest failed");
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let stored = store::count_events(&db).await.expect("count");
    assert_eq!(stored as usize, total, "every accepted event is stored");
    latencies.sort_by(f64::total_cmp);
    let p = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "ingest ({}): {total} events in {} batches of {size}: {elapsed:.2} s, {:.0} events/s; \
         batch latency p50 {:.1} ms, p95 {:.1} ms",
        common::backend_name(),
        bodies.len(),
        total as f64 / elapsed,
        p(0.5),
        p(0.95)
    );
}
