//! Streams: delivery throughput, commit-to-delivery latency, and what
//! three active streams cost ingest. Receivers are axum servers on loopback
//! that parse every batch.
//!
//! `cargo bench --no-default-features --features ssr --bench streams`
//! (env BENCH_EVENTS, default 200000: the backlog delivered; BENCH_RATE,
//! default 5000 events/s for BENCH_SECONDS, default 10, of the latency run;
//! BENCH_POSTGRES for PostgreSQL).

mod common;

use auditdeck::server::demo::{self, DemoSpec};
use auditdeck::server::store::{self, Db, NewEvent};
use auditdeck::server::stream_format::WebhookSecret;
use auditdeck::server::streams::{spawn_delivery, DeliverySettings};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What a receiver has seen: events, and when each id arrived.
#[derive(Default)]
struct Seen {
    events: AtomicU64,
    arrivals: Mutex<Vec<(i64, Instant)>>,
    keep_arrivals: bool,
}

/// A webhook receiver; its URL.
async fn receiver(seen: Arc<Seen>) -> String {
    #[derive(serde::Deserialize)]
    struct Event {
        id: i64,
    }
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let seen = seen.clone();
                async move {
                    if !seen.keep_arrivals {
                        // A receiver elsewhere would parse; this one shares the
                        // bench's two cores, so it only counts the events: a
                        // stream with no filter sends every id of its batch's
                        // range, `adk_<stream>_<first>_<last>`.
                        let n = headers
                            .get("webhook-id")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|id| {
                                let mut parts = id.rsplit('_');
                                let last: u64 = parts.next()?.parse().ok()?;
                                let first: u64 = parts.next()?.parse().ok()?;
                                Some(last + 1 - first)
                            })
                            .expect("a batch id");
                        seen.events.fetch_add(n, Ordering::SeqCst);
                        return axum::http::StatusCode::NO_CONTENT;
                    }
                    let events: Vec<Event> = serde_json::from_slice(&body).expect("a JSON array");
                    seen.events.fetch_add(events.len() as u64, Ordering::SeqCst);
                    {
                        let now = Instant::now();
                        seen.arrivals
                            .lock()
                            .unwrap()
                            .extend(events.iter().map(|e| (e.id, now)));
                    }
                    axum::http::StatusCode::NO_CONTENT
                }
            },
        ),
    );
    // On a thread of its own in the idle scheduling class: a receiver runs
    // on another machine, and this one would otherwise take the cores
    // ingest is measured on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        // SAFETY: sched_setscheduler on this thread's own id, with a
        // parameter that lives across the call.
        unsafe {
            let param = libc::sched_param { sched_priority: 0 };
            libc::sched_setscheduler(libc::gettid(), libc::SCHED_IDLE, &param);
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap()
        });
    });
    url
}

async fn add_stream(db: &Db, url: &str, after: i64) -> i64 {
    let mut tx = store::begin(db).await.unwrap();
    let settings = store::StreamSettings {
        name: "bench",
        kind: "webhook",
        url,
        filter: "",
        headers: "",
    };
    let id = store::create_stream_in(
        &mut tx,
        &settings,
        &WebhookSecret::generate().encode(),
        after,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

fn events(n: u64, seed: u64) -> impl Iterator<Item = NewEvent> {
    demo::events_iter(&DemoSpec {
        seed,
        events: n as u32,
        sessions: 0,
        anchor: 1_764_547_200_000_000,
    })
}

async fn fill(db: &Db, n: u64) {
    let mut all = events(n, 7);
    loop {
        let chunk: Vec<NewEvent> = all.by_ref().take(10_000).collect();
        if chunk.is_empty() {
            break;
        }
        store::insert_events(db, &chunk, None).await.unwrap();
    }
}

/// The CPU time this process has used, in seconds (Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // After the command's name in parentheses: utime and stime are the
    // 12th and 13th fields, in clock ticks (100 a second).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Inserts `n` events in batches of 1,000; events/s and the cores used
/// meanwhile (by everything in the process).
async fn ingest_rate(db: &Db, n: u64, seed: u64) -> (f64, f64) {
    let batches: Vec<Vec<NewEvent>> = {
        let all: Vec<NewEvent> = events(n, seed).collect();
        all.chunks(1_000).map(<[NewEvent]>::to_vec).collect()
    };
    let (started, cpu) = (Instant::now(), cpu_seconds());
    // By value, as the ingest API hands its parsed batch over.
    for batch in batches {
        store::insert_events(db, batch, None).await.unwrap();
    }
    let took = started.elapsed().as_secs_f64();
    (n as f64 / took, (cpu_seconds() - cpu) / took)
}

/// The process's resident memory now, in MB (Linux).
fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn wait_for(seen: &Seen, n: u64, limit: Duration) {
    let started = Instant::now();
    while seen.events.load(Ordering::SeqCst) < n {
        assert!(started.elapsed() < limit, "delivery stalled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::main]
async fn main() {
    let backlog = env_u64("BENCH_EVENTS", 200_000);
    let rate = env_u64("BENCH_RATE", 5_000);
    let seconds = env_u64("BENCH_SECONDS", 10);
    let dir = tempfile::tempdir().unwrap();
    let db = store::open(&common::scratch_url(dir.path(), "streams").await)
        .await
        .unwrap();
    println!("streams ({})", common::backend_name());
    // Which parts run (BENCH_PARTS, default all: 1 throughput, 2 latency,
    // 3 ingest cost).
    let parts = std::env::var("BENCH_PARTS").unwrap_or_else(|_| "123".into());
    if parts.contains('1') {
        throughput(&db, backlog).await;
    }
    if parts.contains('2') {
        latency(&db, rate, seconds).await;
    }
    if parts.contains('3') {
        ingest_cost(&db, &dir.path().join("streams.db-wal")).await;
    }
}

async fn throughput(db: &Db, backlog: u64) {
    // 1. Throughput: a backlog delivered from the start of the log.
    fill(db, backlog).await;
    // The log at rest first: the last seconds of the fill are still being
    // checkpointed and written back to disk, and delivery would measure
    // that (a fifth slower for a few seconds).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let seen = Arc::new(Seen::default());
    let url = receiver(seen.clone()).await;
    let started = Instant::now();
    let worker = spawn_delivery(db.clone(), DeliverySettings::default());
    add_stream(db, &url, 0).await;
    // Memory as the backlog goes: flat, whatever its size.
    let mut rss = vec![rss_mb()];
    for quarter in 1..=4 {
        wait_for(&seen, backlog * quarter / 4, Duration::from_secs(600)).await;
        rss.push(rss_mb());
    }
    let took = started.elapsed().as_secs_f64();
    println!(
        "  throughput: {backlog} events delivered in {took:.2} s: {:.0} events/s (batches of {})",
        backlog as f64 / took,
        DeliverySettings::default().batch
    );
    println!(
        "  memory (RSS, MB) at 0/25/50/75/100% of the backlog: {}",
        rss.iter()
            .map(|m| format!("{m:.0}"))
            .collect::<Vec<_>>()
            .join(" / ")
    );
    worker.stop().await;
}

async fn latency(db: &Db, rate: u64, seconds: u64) {
    // 2. Latency: ingest at `rate` events/s in batches every 10 ms; each
    // event's arrival at the receiver against its batch's commit.
    let seen = Arc::new(Seen {
        keep_arrivals: true,
        ..Default::default()
    });
    let url = receiver(seen.clone()).await;
    let head = store::max_event_id(db).await.unwrap();
    add_stream(db, &url, head).await;
    let worker = spawn_delivery(db.clone(), DeliverySettings::default());
    let per_tick = (rate / 100).max(1);
    let mut commits: Vec<(i64, Instant)> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let total = per_tick * 100 * seconds;
    let mut source = events(total, 11);
    for _ in 0..(100 * seconds) {
        tick.tick().await;
        let batch: Vec<NewEvent> = source.by_ref().take(per_tick as usize).collect();
        let ids = store::insert_events(db, &batch, None).await.unwrap();
        let at = Instant::now();
        commits.extend(ids.into_iter().map(|id| (id, at)));
    }
    wait_for(&seen, total, Duration::from_secs(120)).await;
    worker.stop().await;
    let committed: std::collections::HashMap<i64, Instant> = commits.into_iter().collect();
    let mut lat: Vec<f64> = seen
        .arrivals
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(id, at)| {
            committed
                .get(id)
                .map(|c| at.duration_since(*c).as_secs_f64() * 1e3)
        })
        .collect();
    lat.sort_by(f64::total_cmp);
    let p = |q: f64| lat[((lat.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "  latency at {rate} events/s for {seconds} s: commit to delivery p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms ({} events)",
        p(0.5),
        p(0.95),
        p(1.0),
        lat.len()
    );
}

/// The size of SQLite's write-ahead log, in MB (0 on PostgreSQL).
fn wal_mb(wal: &std::path::Path) -> f64 {
    std::fs::metadata(wal).map_or(0.0, |m| m.len() as f64 / 1e6)
}

async fn ingest_cost(db: &Db, wal: &std::path::Path) {
    // 3. What three active streams cost ingest (batches of 1,000 through
    // the store's insert path, as the batch API runs it). Rounds alone and
    // with the streams alternate: the log grows as the bench goes, and a
    // later round on a larger log is slower by itself.
    let n = 100_000;
    let rounds = env_u64("BENCH_ROUNDS", 3);
    // The earlier parts' streams rest: three active streams, no more.
    for s in store::list_streams(db).await.unwrap() {
        store::set_stream_state(db, s.id, false).await.unwrap();
    }
    let seen = Arc::new(Seen::default());
    let url = receiver(seen.clone()).await;
    let head = store::max_event_id(db).await.unwrap();
    let mut streams = Vec::new();
    for _ in 0..3 {
        streams.push(add_stream(db, &url, head).await);
    }
    let (mut alone, mut with) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for &id in &streams {
            store::set_stream_state(db, id, false).await.unwrap();
        }
        alone.push(ingest_rate(db, n, 21 + 2 * round).await);
        let wal_alone = wal_mb(wal);
        // The streams start at the head (the round alone is not theirs).
        let head = store::max_event_id(db).await.unwrap();
        let mut tx = store::begin(db).await.unwrap();
        for &id in &streams {
            store::set_stream_cursor_in(&mut tx, id, head)
                .await
                .unwrap();
            store::set_stream_state_in(&mut tx, id, true).await.unwrap();
        }
        tx.commit().await.unwrap();
        let worker = spawn_delivery(db.clone(), DeliverySettings::default());
        with.push(ingest_rate(db, n, 22 + 2 * round).await);
        let wal_with = wal_mb(wal);
        wait_for(&seen, 3 * n * (round + 1), Duration::from_secs(300)).await;
        worker.stop().await;
        if wal_with > 0.0 {
            println!(
                "  round {}: write-ahead log {wal_alone:.0} MB after the round alone, {wal_with:.0} MB after the round with streams",
                round + 1
            );
        }
    }
    for &id in &streams {
        store::set_stream_state(db, id, false).await.unwrap();
    }
    alone.push(ingest_rate(db, n, 21 + 2 * rounds).await);
    // Each round with the streams against the rounds alone on either side.
    let costs: Vec<f64> = with
        .iter()
        .enumerate()
        .map(|(i, w)| (w.0 / ((alone[i].0 + alone[i + 1].0) / 2.0) - 1.0) * 100.0)
        .collect();
    let rounds_text = with
        .iter()
        .zip(&costs)
        .map(|(w, c)| format!("{:.0} ({c:+.1}%)", w.0))
        .collect::<Vec<_>>()
        .join(", ");
    let alone_text = alone
        .iter()
        .map(|a| format!("{:.0}", a.0))
        .collect::<Vec<_>>()
        .join(", ");
    let mut sorted = costs.clone();
    sorted.sort_by(f64::total_cmp);
    let cores = |v: &[(f64, f64)]| v.iter().map(|x| x.1).sum::<f64>() / v.len() as f64;
    println!(
        "  ingest with 3 active streams: {:+.1}% (median of {rounds} rounds, each against the rounds alone before and after it; worst {:+.1}%); cores busy {:.2} alone, {:.2} with streams",
        sorted[sorted.len() / 2],
        sorted[0],
        cores(&alone),
        cores(&with)
    );
    println!("  events/s alone: {alone_text}; with streams: {rounds_text}");
}
