//! Backups at scale: how long a verified backup takes and how large it is,
//! and what it does to ingest running beside it.
//!
//! `cargo bench --no-default-features --features ssr --bench backup`
//! (env BENCH_SIZES, default "1000000"; BENCH_POSTGRES for PostgreSQL;
//! BENCH_CLIENTS ingest clients, default 4; BENCH_RATE events/s in all,
//! default 0: as fast as they can). The data sets are generated
//! once into target/bench; each run backs up a copy.
//!
//! For each size: ingest alone for as long as a backup takes (batches of
//! 100 events from BENCH_CLIENTS clients, back to back: events/s and the
//! batches' commit latency p50 / p99 / max), then a backup (`auditdeck
//! backup`'s own path: copy, verification of the copy's whole chain,
//! checksum) with the same ingest beside it.

mod common;

use auditdeck::server::backup;
use auditdeck::server::demo::{self, DemoSpec};
use auditdeck::server::store::{self, Db, NewEvent};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BATCH: usize = 100;

/// Ingest from `clients` clients until `stop`, at `rate` events/s in all
/// (0: as fast as they can): every batch's latency.
async fn ingest_until(
    db: Db,
    clients: usize,
    rate: u32,
    stop: Arc<AtomicBool>,
    seed: u64,
) -> Vec<Duration> {
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (db, stop) = (db.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let spec = DemoSpec {
                seed: seed * 100 + c as u64,
                events: 10_000_000,
                sessions: 0,
                anchor: common::ANCHOR,
            };
            let mut events = demo::events_iter(&spec);
            let mut latencies = Vec::new();
            let mut every = (rate > 0).then(|| {
                let period = Duration::from_secs_f64((clients * BATCH) as f64 / f64::from(rate));
                let mut t = tokio::time::interval(period);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            while !stop.load(Ordering::Relaxed) {
                if let Some(every) = every.as_mut() {
                    every.tick().await;
                }
                let batch: Vec<NewEvent> = events.by_ref().take(BATCH).collect();
                let started = Instant::now();
                store::insert_events(&db, &batch, None)
                    .await
                    .expect("insert");
                latencies.push(started.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("client"));
    }
    all.sort();
    all
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(label: &str, latencies: &[Duration], seconds: f64) {
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "  {label:<24} {:>7.0} events/s   batch commit p50 {:>6.1} ms  p99 {:>7.1} ms  max {:>7.1} ms",
        (latencies.len() * BATCH) as f64 / seconds,
        ms(at(0.5)),
        ms(at(0.99)),
        ms(latencies.last().copied().unwrap_or_default()),
    );
}

#[tokio::main]
async fn main() {
    let clients: usize = std::env::var("BENCH_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let rate: u32 = std::env::var("BENCH_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    std::fs::create_dir_all("target/bench").expect("target/bench");
    for n in common::sizes("1000000") {
        let source = format!("target/bench/backup-{n}.db");
        common::demo_dataset(&source, n, 31).await.close().await;
        let copy = format!("target/bench/backup-copy-{n}.db");
        let url = common::copy_dataset(&source, &copy).await;
        let db = store::open(&url).await.expect("open the copy");
        println!(
            "{n} events on {} ({clients} ingest clients, batches of {BATCH}, {}):",
            common::backend_name(),
            if rate == 0 {
                "as fast as they can".to_string()
            } else {
                format!("{rate} events/s in all")
            }
        );
        let out = tempfile::tempdir_in("target/bench").expect("temp dir");

        // A first backup alone, to know how long one takes.
        let dest = out.path().join(if url.starts_with("sqlite") {
            "alone.db"
        } else {
            "alone.pgdump"
        });
        let alone = backup::backup_to(&db, &url, &dest).await.expect("backup");
        println!(
            "  backup alone             {:>7.1} s, {} ({} entries up to #{}, chain verified)",
            alone.seconds,
            auditdeck::models::format_bytes(alone.bytes),
            alone.copy.entries,
            alone.copy.head_id
        );

        // Only one backup on the disk at a time (10M: 12 GB each).
        let _ = std::fs::remove_file(&dest);
        let _ = std::fs::remove_dir_all(&dest);
        // Ingest alone for as long.
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let ingest = tokio::spawn(ingest_until(db.clone(), clients, rate, stop.clone(), 1));
        tokio::time::sleep(Duration::from_secs_f64(alone.seconds.max(5.0))).await;
        stop.store(true, Ordering::Relaxed);
        let baseline = ingest.await.expect("ingest");
        report("ingest alone", &baseline, started.elapsed().as_secs_f64());

        // The same ingest with a backup beside it.
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let ingest = tokio::spawn(ingest_until(db.clone(), clients, rate, stop.clone(), 2));
        tokio::time::sleep(Duration::from_millis(500)).await;
        let dest = out.path().join(if url.starts_with("sqlite") {
            "beside.db"
        } else {
            "beside.pgdump"
        });
        let beside = backup::backup_to(&db, &url, &dest)
            .await
            .expect("backup beside ingest");
        stop.store(true, Ordering::Relaxed);
        let during = ingest.await.expect("ingest");
        report(
            "ingest during a backup",
            &during,
            started.elapsed().as_secs_f64(),
        );
        println!(
            "  backup beside ingest     {:>7.1} s, {} ({} entries up to #{})",
            beside.seconds,
            auditdeck::models::format_bytes(beside.bytes),
            beside.copy.entries,
            beside.copy.head_id
        );
        if let Ok(wal) = std::fs::metadata(format!("{copy}-wal")) {
            println!(
                "  write-ahead log after it  {} (its high-water mark: it cannot be checkpointed past the copy's snapshot while the copy runs)",
                auditdeck::models::format_bytes(wal.len())
            );
        }
        db.close().await;
        let _ = std::fs::remove_file(&dest);
        let _ = std::fs::remove_dir_all(&dest);
    }
}
