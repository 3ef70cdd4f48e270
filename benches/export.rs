//! Bulk export and deletion at scale, over real HTTP on loopback.
//!
//! `cargo bench --no-default-features --features ssr --bench export`
//! (env BENCH_SIZES, default "1000000"; data sets are generated once into
//! target/bench and copied for the deletions).
//!
//! For each size: CSV and JSON Lines export of every event (rows/s, and the
//! growth of the process's resident memory while it runs, sampled every
//! 20 ms), a PDF of 10,000 events, deletion of 500 chosen ids (five times),
//! and deletion of every event by a filter with a writer inserting one event
//! every 20 ms beside it (the longest that writer waited).

mod common;

use auditdeck::models::Role;
use auditdeck::server::config::AppConfig;
use auditdeck::server::state::AppState;
use auditdeck::server::store::{self, Db, NewEvent};
use auditdeck::server::{auth, recorder, router};
use leptos::config::LeptosOptions;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Which 500 ids a deletion round takes.
type IdPattern = Box<dyn Fn(i64) -> Vec<i64>>;

const PASSWORD: &str = "bench-password-123";

async fn dataset(path: &str, n: u32) -> Db {
    let db = common::demo_dataset(path, n, 23).await;
    // An earlier run on this data set made the user already.
    let made = store::find_user_by_login(&db, "bench")
        .await
        .expect("look up the user");
    if made.is_none() {
        let form = auth::UserForm {
            username: "bench",
            email: "bench@example.com",
            name: "Bench Admin",
            role: Role::Admin,
            password: PASSWORD,
        };
        let client = auth::ClientInfo {
            ip: "127.0.0.1".parse().unwrap(),
            user_agent: None,
        };
        auth::create_user(&db, None, &client, form)
            .await
            .expect("user");
    }
    db
}

async fn serve(db: &Db, url: &str) -> SocketAddr {
    let (recorder, _writer) = recorder::spawn(db.clone(), recorder::QUEUE_CAPACITY);
    let state = AppState {
        leptos_options: LeptosOptions::builder().output_name("auditdeck").build(),
        db: db.clone(),
        config: Arc::new(AppConfig {
            database_url: url.to_string(),
            record_admin_sessions: false,
            ..AppConfig::default()
        }),
        recorder,
        exports: Default::default(),
        api: Default::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(
            listener,
            router(state).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    addr
}

/// One request on its own connection; the response head and body.
async fn request(addr: SocketAddr, head: &str, body: &str) -> (String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(
            format!(
                "{head}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    (
        String::from_utf8_lossy(&response[..split]).into_owned(),
        response[split + 4..].to_vec(),
    )
}

async fn sign_in(addr: SocketAddr) -> String {
    let body = format!("username=bench&password={PASSWORD}&next=%2F");
    let (head, _) = request(
        addr,
        &format!(
            "POST /api/login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Accept: text/html\r\nSec-Fetch-Site: same-origin\r\n"
        ),
        &body,
    )
    .await;
    head.lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie:")
                .then(|| l[11..].trim().to_string())
        })
        .and_then(|c| c.split(';').next().map(str::to_string))
        .expect("a session cookie")
}

/// Resident memory of this process, in KB.
fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Prepares and downloads an export, counting bytes as they stream; returns
/// (bytes, seconds, peak memory growth in KB).
async fn export(
    addr: SocketAddr,
    cookie: &str,
    selection: serde_json::Value,
    format: &str,
) -> (u64, f64, u64) {
    let args = serde_json::json!({"selection": selection, "format": format}).to_string();
    let (head, body) = request(
        addr,
        &format!(
            "POST /api/start_export HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nContent-Type: application/json\r\n\
             Accept: application/json\r\nSec-Fetch-Site: same-origin\r\n"
        ),
        &args,
    )
    .await;
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "{head}\n{}",
        String::from_utf8_lossy(&body)
    );
    let ticket: serde_json::Value = serde_json::from_slice(&body).expect("ticket");
    let token = ticket["token"].as_str().expect("token").to_string();

    let baseline = rss_kb();
    let peak = Arc::new(AtomicU64::new(baseline));
    let running = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, running) = (peak.clone(), running.clone());
        tokio::spawn(async move {
            while running.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kb(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(
            format!("GET /api/exports/{token} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .expect("write");
    let mut buf = vec![0u8; 256 * 1024];
    let mut bytes = 0u64;
    loop {
        let n = stream.read(&mut buf).await.expect("read");
        if n == 0 {
            break;
        }
        bytes += n as u64;
    }
    let seconds = started.elapsed().as_secs_f64();
    running.store(false, Ordering::Relaxed);
    sampler.await.expect("sampler");
    (
        bytes,
        seconds,
        peak.load(Ordering::Relaxed).saturating_sub(baseline),
    )
}

/// The time of the event with this id (or the next one still there).
async fn sqlx_from(db: &Db, id: i64) -> i64 {
    let page = store::list_events(
        db,
        &auditdeck::models::EventQuery {
            cursor: Some(auditdeck::query::Cursor::After(id + 1)),
            per_page: 10,
            descending: true,
            ..Default::default()
        },
    )
    .await
    .expect("list");
    page.rows.first().map(|r| r.occurred_at).expect("an event")
}

fn deletion_record() -> NewEvent {
    let admin = auditdeck::models::UserInfo {
        id: 1,
        username: "bench".into(),
        name: "Bench Admin".into(),
        email: "bench@example.com".into(),
        role: Role::Admin,
    };
    let client = auth::ClientInfo {
        ip: "127.0.0.1".parse().unwrap(),
        user_agent: None,
    };
    auth::self_event(
        chrono::Utc::now().timestamp_micros(),
        Some(&admin),
        &client,
        "DELETE",
        None,
        "bench deletion".into(),
    )
}

#[tokio::main]
async fn main() {
    let sizes = common::sizes("1000000");
    std::fs::create_dir_all("target/bench").expect("bench dir");
    for n in sizes {
        let path = format!("target/bench/export-{n}.db");
        let db = dataset(&path, n).await;
        let url = common::dataset_url(&path).await;
        let total = store::count_events(&db).await.expect("count");
        let addr = serve(&db, &url).await;
        let cookie = sign_in(addr).await;
        println!("\n{total} events ({})", common::backend_name());
        let formats = std::env::var("BENCH_FORMATS").unwrap_or_else(|_| "Csv,JsonLines".into());
        for format in formats.split(',') {
            let (bytes, s, grew) =
                export(addr, &cookie, serde_json::json!({"Filter": {}}), format).await;
            println!(
                "  {format:<9} export of all: {:.1} s, {:.0} rows/s, {:.0} MB, memory grew {:.1} MB",
                s,
                total as f64 / s,
                bytes as f64 / 1e6,
                grew as f64 / 1024.0
            );
        }
        let ids: Vec<i64> = (0..10_000).map(|i| 1 + i * (n as i64 / 10_000)).collect();
        let (bytes, s, grew) = export(addr, &cookie, serde_json::json!({"Ids": ids}), "Pdf").await;
        println!(
            "  PDF of 10,000 events: {:.2} s, {:.0} rows/s, {:.1} MB, memory grew {:.1} MB",
            s,
            10_000.0 / s,
            bytes as f64 / 1e6,
            grew as f64 / 1024.0
        );
        db.close().await;
        if std::env::var("BENCH_DELETE").is_ok_and(|v| v == "0") {
            continue;
        }

        // Deletions on a copy, so the data set stays whole for the next run.
        let copy = format!("target/bench/export-{n}-delete.db");
        let db = store::open(&common::copy_dataset(&path, &copy).await)
            .await
            .expect("open copy");
        // 500 ids as a person selects them (20 pages of 25 of one view: close
        // together), and 500 spread evenly over the whole log (the worst case).
        let patterns: [(&str, IdPattern); 2] = [
            (
                "from one view",
                Box::new(move |round| {
                    (0..500)
                        .map(|i| n as i64 - 6_000 + round * 1_000 + i)
                        .collect()
                }),
            ),
            (
                "spread over the log",
                Box::new(move |round| (0..500).map(|i| 7 + round + i * (n as i64 / 700)).collect()),
            ),
        ];
        for (label, ids_of) in &patterns {
            let mut times = Vec::new();
            for round in 0..5i64 {
                let selection = auditdeck::bulk::Selection::Ids(ids_of(round));
                let up_to = store::max_event_id(&db).await.expect("max");
                let started = Instant::now();
                let (deleted, _) =
                    store::delete_selection(&db, &selection, up_to, 500, deletion_record())
                        .await
                        .expect("delete ids");
                times.push(started.elapsed().as_secs_f64() * 1000.0);
                assert_eq!(deleted, 500);
            }
            times.sort_by(f64::total_cmp);
            println!(
                "  delete 500 ids {label}: p50 {:.1} ms, max {:.1} ms (5 runs)",
                times[2], times[4]
            );
        }

        // The newest tenth of the log, by a time filter (1M events at 10M).
        let from: i64 = sqlx_from(&db, n as i64 - n as i64 / 10).await;
        let all = auditdeck::bulk::Selection::Filter(Box::new(auditdeck::models::EventQuery {
            from: Some(from),
            ..Default::default()
        }));
        let up_to = store::max_event_id(&db).await.expect("max");
        let expected = store::count_selection(&db, &all, Some(up_to))
            .await
            .expect("count");
        let stop = Arc::new(AtomicBool::new(false));
        let probe = {
            let (db, stop) = (db.clone(), stop.clone());
            tokio::spawn(async move {
                let mut worst = Duration::ZERO;
                let mut writes = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let mut e = deletion_record();
                    e.action = "PROBE".into();
                    let t = Instant::now();
                    store::insert_events(&db, &[e], None).await.expect("probe");
                    worst = worst.max(t.elapsed());
                    writes += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                (worst, writes)
            })
        };
        let started = Instant::now();
        let (deleted, _) = store::delete_selection(&db, &all, up_to, expected, deletion_record())
            .await
            .expect("delete by filter");
        let s = started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        let (worst, writes) = probe.await.expect("probe");
        println!(
            "  delete {deleted} by a time filter: {:.1} s, {:.0} rows/s; {writes} writes beside it, the slowest waited {:.0} ms",
            s,
            deleted as f64 / s,
            worst.as_secs_f64() * 1000.0
        );
        db.close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{copy}{suffix}"));
        }
    }
}
