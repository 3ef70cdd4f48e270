//! What Admin Sessions recording costs: requests/s of a typical API call
//! (`POST /api/list_events`, a signed-in admin, keep-alive connections on
//! loopback) with recording on and off, in alternating rounds; then a count
//! check that every request made with recording on is in the table.
//!
//! `cargo bench --no-default-features --features ssr --bench sessions`
//! (env BENCH_SECONDS per round, default 5; BENCH_ROUNDS per mode, default 3;
//! BENCH_CONNECTIONS, default 32).

mod common;

use auditdeck::models::{Initiator, InitiatorKind, Role};
use auditdeck::server::config::AppConfig;
use auditdeck::server::state::AppState;
use auditdeck::server::store::{self, NewEvent};
use auditdeck::server::{auth, recorder, router};
use leptos::config::LeptosOptions;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One HTTP/1.1 exchange on a kept-alive connection; returns the status.
async fn exchange(
    stream: &mut BufReader<TcpStream>,
    request: &[u8],
    response: &mut Vec<u8>,
) -> std::io::Result<u16> {
    stream.get_mut().write_all(request).await?;
    let mut line = String::new();
    stream.read_line(&mut line).await?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut length = None;
    let mut chunked = false;
    loop {
        line.clear();
        stream.read_line(&mut line).await?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let lower = header.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
    response.clear();
    if chunked {
        loop {
            line.clear();
            stream.read_line(&mut line).await?;
            let size = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
            let mut chunk = vec![0; size + 2];
            stream.read_exact(&mut chunk).await?;
            response.extend_from_slice(&chunk[..size]);
            if size == 0 {
                break;
            }
        }
    } else if let Some(n) = length {
        response.resize(n, 0);
        stream.read_exact(response).await?;
    }
    Ok(status)
}

/// Requests answered in `seconds` by `connections` clients.
async fn load(addr: SocketAddr, cookie: &str, connections: u64, seconds: u64) -> u64 {
    let body = "query[per_page]=25";
    let request = format!(
        "POST /api/list_events HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nAccept: application/json\r\n\
         Sec-Fetch-Site: same-origin\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let request = Arc::new(request.into_bytes());
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (request, done, stop) = (request.clone(), done.clone(), stop.clone());
            tokio::spawn(async move {
                let mut stream = BufReader::new(TcpStream::connect(addr).await.expect("connect"));
                let mut response = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let status = exchange(&mut stream, &request, &mut response)
                        .await
                        .expect("exchange");
                    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&response));
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("client");
    }
    done.load(Ordering::Relaxed)
}

/// Serves the app with recording on or off; returns its address.
async fn serve(state: AppState) -> SocketAddr {
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

async fn sign_in(addr: SocketAddr) -> String {
    let body = "username=bench&password=bench-password-123&next=%2Factivity-log";
    let request = format!(
        "POST /api/login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Accept: text/html\r\nSec-Fetch-Site: same-origin\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    response
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_string()
}

#[tokio::main]
async fn main() {
    let seconds = env_u64("BENCH_SECONDS", 5);
    let rounds = env_u64("BENCH_ROUNDS", 3);
    let connections = env_u64("BENCH_CONNECTIONS", 32);
    let dir = tempfile::tempdir().expect("temp dir");
    let url = common::scratch_url(dir.path(), "sessions").await;
    let db = store::open(&url).await.expect("open");
    let events: Vec<NewEvent> = (0..10_000)
        .map(|i| NewEvent {
            occurred_at: db.now() - i64::from(i) * 1_000_000,
            ip: Some(format!("10.0.{}.{}", i / 250, i % 250 + 1).parse().unwrap()),
            initiator: Initiator {
                kind: InitiatorKind::User,
                id: Some((i % 50).to_string()),
                name: Some(format!("User {}", i % 50)),
                email: Some(format!("user{}@example.com", i % 50)),
                role: None,
            },
            action: ["CREATE", "UPDATE", "DELETE"][i as usize % 3].into(),
            table_name: Some("orders".into()),
            primary_key: Some(i.to_string()),
            description: format!("Changed order {i}"),
            before: None,
            after: None,
            user_agent: None,
            request_id: None,
            session_id: None,
        })
        .collect();
    for chunk in events.chunks(1_000) {
        store::insert_events(&db, chunk, None).await.expect("seed");
    }
    let client = auth::ClientInfo {
        ip: "127.0.0.1".parse().unwrap(),
        user_agent: None,
    };
    let form = auth::UserForm {
        username: "bench",
        email: "bench@example.com",
        name: "Bench Admin",
        role: Role::Admin,
        password: "bench-password-123",
    };
    auth::create_user(&db, None, &client, form)
        .await
        .expect("user");

    let (recorder, writer) = recorder::spawn(db.clone(), recorder::QUEUE_CAPACITY);
    let state = |record: bool| AppState {
        leptos_options: LeptosOptions::builder().output_name("auditdeck").build(),
        db: db.clone(),
        config: Arc::new(AppConfig {
            database_url: url.clone(),
            record_admin_sessions: record,
            ..AppConfig::default()
        }),
        recorder: recorder.clone(),
        exports: Default::default(),
        api: Default::default(),
    };
    let on = serve(state(true)).await;
    let off = serve(state(false)).await;
    let cookie = sign_in(off).await;
    // Warm-up (caches, connection pools), not measured.
    load(off, &cookie, connections, 1).await;
    let recorded_before = store::count_admin_sessions(&db).await.expect("count");

    let mut rates = (Vec::new(), Vec::new());
    let mut made_while_on = 0;
    for _ in 0..rounds {
        for (record, addr) in [(false, off), (true, on)] {
            let started = Instant::now();
            let n = load(addr, &cookie, connections, seconds).await;
            let rate = n as f64 / started.elapsed().as_secs_f64();
            println!(
                "recording {}: {n} requests, {rate:.0} requests/s",
                if record { "on " } else { "off" }
            );
            if record {
                made_while_on += n;
                rates.1.push(rate);
            } else {
                rates.0.push(rate);
            }
        }
    }
    drop(recorder);
    let stored_by_writer = writer.drained().await;
    let recorded = store::count_admin_sessions(&db).await.expect("count") - recorded_before;
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (off_rate, on_rate) = (median(&mut rates.0), median(&mut rates.1));
    println!(
        "median of {rounds} rounds of {seconds} s, {connections} connections: off {off_rate:.0} requests/s, \
         on {on_rate:.0} requests/s, cost {:.1}%",
        (off_rate - on_rate) / off_rate * 100.0
    );
    println!(
        "count check: {made_while_on} requests made with recording on, {recorded} recorded \
         ({stored_by_writer} stored by the writer in all)"
    );
    assert_eq!(recorded, made_while_on, "every recorded request is stored");
}
