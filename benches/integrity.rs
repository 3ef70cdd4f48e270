//! The hash chain at scale: verification speed, what hashing costs ingest,
//! and retention removing a million events beside a live writer.
//!
//! `cargo bench --no-default-features --features ssr --bench integrity`
//! (env BENCH_SIZES, default "1000000"; BENCH_REMOVE, default 1000000, at
//! most half the size; BENCH_RETENTION=0 skips retention, BENCH_VERIFY=0
//! the verifications before it). Data sets are
//! generated once into target/bench; retention runs on a copy.
//!
//! For each size: a full verification (events/s), a quick one from the
//! checkpoint the full one left; retention of the oldest BENCH_REMOVE events
//! (rows/s, the longest retention transaction, the slowest of the writes a
//! writer makes every 10 ms meanwhile), and a verification after it.
//! Once: the chain's hashing alone over 1M events (what it adds per event).
//! Ingest with the chain on versus off is `--bench ingest` at this commit
//! and at the commit before the chain (see the README).

mod common;

use auditdeck::integrity::{RetentionPolicy, VerifyMode};
use auditdeck::server::chain;
use auditdeck::server::demo::{self, DemoSpec};
use auditdeck::server::store::Exec;
use auditdeck::server::store::{self, Db, NewEvent};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::ANCHOR;
const DAY: i64 = 86_400_000_000;

async fn dataset(path: &str, n: u32) -> Db {
    common::demo_dataset(path, n, 29).await
}

async fn verify(db: &Db, mode: VerifyMode, label: &str) {
    let started = Instant::now();
    let report = store::verify_chain(db, mode, Vec::new(), |_, _| {})
        .await
        .expect("verify");
    let s = started.elapsed().as_secs_f64();
    assert!(
        report.intact(),
        "the bench data must verify: {:?}",
        report.problems
    );
    println!(
        "  {label:<28} {:>10} entries in {s:>6.2} s: {:>9.0} entries/s",
        report.checked,
        report.checked as f64 / s
    );
    if mode == VerifyMode::Full {
        let id = store::begin_verification(db, "bench", mode)
            .await
            .expect("begin");
        let record = demo::events_iter(&DemoSpec {
            seed: 1,
            events: 1,
            sessions: 0,
            anchor: ANCHOR,
        })
        .next()
        .expect("one event");
        store::finish_verification(db, id, Some(&report), record)
            .await
            .expect("finish");
    }
}

/// The occurred_at of the `k`-th oldest event.
async fn kth_oldest(db: &Db, k: u64) -> i64 {
    let sql = db
        .sql("SELECT occurred_at FROM events ORDER BY occurred_at, id LIMIT 1 OFFSET ?")
        .bind(i64::try_from(k).unwrap_or(i64::MAX));
    db.read().scalar(&sql).await.expect("k-th oldest")
}

async fn retention(path: &str, n: u32) {
    let remove = std::env::var("BENCH_REMOVE")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1_000_000)
        .min(u64::from(n) / 2);
    let copy = path.replace(".db", "-retention.db");
    let url = common::copy_dataset(path, &copy).await;
    let db = store::open(&url).await.expect("open copy");
    let cutoff = kth_oldest(&db, remove).await;
    // Keep 1 day, as of one day after the cut-off: exactly `remove` go.
    let policy = RetentionPolicy {
        keep_days: Some(1),
        by_action: vec![],
    };
    let stop = Arc::new(AtomicBool::new(false));
    let slowest = Arc::new(AtomicU64::new(0));
    let writes = Arc::new(AtomicU64::new(0));
    let writer = {
        let (db, stop, slowest, writes) =
            (db.clone(), stop.clone(), slowest.clone(), writes.clone());
        tokio::spawn(async move {
            let mut events = demo::events_iter(&DemoSpec {
                seed: 99,
                events: 1_000_000,
                sessions: 0,
                anchor: ANCHOR + 400 * DAY,
            });
            while !stop.load(Ordering::Relaxed) {
                let event = events.next().expect("event");
                let started = Instant::now();
                store::insert_events(&db, &[event], None)
                    .await
                    .expect("write");
                let us = started.elapsed().as_micros() as u64;
                slowest.fetch_max(us, Ordering::Relaxed);
                writes.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let started = Instant::now();
    let outcome = store::apply_retention(&db, &policy, cutoff + DAY)
        .await
        .expect("retention")
        .expect("a run");
    let s = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    writer.await.expect("writer");
    println!(
        "  retention: {} removed in {s:.1} s ({:.0} rows/s), {} transactions, median {:.1} ms, {} over 100 ms, longest {} ms; \
         {} writes beside it, slowest {:.1} ms; cut at #{}",
        outcome.run.removed,
        outcome.run.removed as f64 / s,
        outcome.chunks,
        outcome.median_chunk.as_secs_f64() * 1000.0,
        outcome.slow_chunks,
        outcome.longest_chunk.as_millis(),
        writes.load(Ordering::Relaxed),
        slowest.load(Ordering::Relaxed) as f64 / 1000.0,
        outcome.cut_id
    );
    verify(&db, VerifyMode::Full, "full after retention").await;
    db.close().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{copy}{suffix}"));
    }
}

/// The chain's own work per event: serialising and hashing, no database.
fn hashing_alone() {
    let events: Vec<NewEvent> = demo::events_iter(&DemoSpec {
        seed: 5,
        events: 1_000_000,
        sessions: 0,
        anchor: ANCHOR,
    })
    .collect();
    let started = Instant::now();
    let mut buf = Vec::new();
    let mut prev = chain::GENESIS;
    for (i, e) in events.iter().enumerate() {
        let ip = e.ip.map(|ip| ip.to_string());
        let fields = chain::EventFields {
            id: i as i64 + 1,
            occurred_at: e.occurred_at,
            received_at: ANCHOR,
            ip: ip.as_deref(),
            initiator_kind: e.initiator.kind.as_str(),
            initiator_id: e.initiator.id.as_deref(),
            initiator_name: e.initiator.name.as_deref(),
            initiator_email: e.initiator.email.as_deref(),
            initiator_role: e.initiator.role.as_deref(),
            action: &e.action,
            table_name: e.table_name.as_deref(),
            primary_key: e.primary_key.as_deref(),
            description: &e.description,
            before: e.before.as_deref(),
            after: e.after.as_deref(),
            user_agent: e.user_agent.as_deref(),
            request_id: e.request_id.as_deref(),
            session_id: e.session_id.as_deref(),
            api_key_id: None,
        };
        let h = chain::hash_event(&fields, &mut buf);
        prev = chain::link(&prev, &h.content);
    }
    let s = started.elapsed().as_secs_f64();
    println!(
        "hashing alone (serialise, SHA-256 twice, field sums): 1,000,000 events in {s:.2} s = {:.2} µs per event on one core (head {})",
        s,
        hex::encode(&prev[..4])
    );
}

#[tokio::main]
async fn main() {
    let sizes = common::sizes("1000000");
    std::fs::create_dir_all("target/bench").expect("bench dir");
    hashing_alone();
    for n in sizes {
        let path = format!("target/bench/integrity-{n}.db");
        let db = dataset(&path, n).await;
        println!(
            "\n{} events ({})",
            store::count_events(&db).await.expect("count"),
            common::backend_name()
        );
        if std::env::var("BENCH_VERIFY").is_ok_and(|v| v == "0") {
            db.close().await;
            retention(&path, n).await;
            continue;
        }
        verify(&db, VerifyMode::Full, "full verification").await;
        verify(&db, VerifyMode::Full, "full verification, again").await;
        store::insert_events(
            &db,
            &demo::events_iter(&DemoSpec {
                seed: 3,
                events: 10_000,
                sessions: 0,
                anchor: ANCHOR,
            })
            .collect::<Vec<_>>(),
            None,
        )
        .await
        .expect("more events");
        verify(&db, VerifyMode::Quick, "quick (10,000 new entries)").await;
        db.close().await;
        if std::env::var("BENCH_RETENTION").is_ok_and(|v| v == "0") {
            continue;
        }
        retention(&path, n).await;
    }
}
