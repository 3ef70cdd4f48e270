//! The activity chart and the top breakdowns at scale, server-side (the
//! store functions their server functions call), over the query bench's view
//! matrix: every subset of up to three filters (user, one action, two
//! actions, table, CIDR range, keyword, seven days), each for the histogram
//! and the breakdowns. Shares the query bench's data sets.
//!
//! `cargo bench --no-default-features --features ssr --bench charts`
//! env BENCH_SIZES (default "1000000,10000000"), BENCH_RUNS (default 10),
//! BENCH_DIR (default target/bench), BENCH_POSTGRES (run on PostgreSQL),
//! BENCH_ZONE (default "Europe/Berlin"), BENCH_ONLY (only the filter sets
//! named, `;`-separated, such as "user;table + CIDR"). Prints every cell as it goes, then
//! p50 / p95 by kind and the worst ten cells, in milliseconds.
//!
//! Then what the per-quarter rollup (`event_volume`) costs ingest: batches
//! of 1,000 demo events stored through the store's insert path into a new
//! database, each beside the rollup's own work for the same batch (in a
//! transaction rolled back), for a live log (a batch within a minute) and
//! for a backfill (a batch spread over hours: many quarters). env
//! BENCH_INGEST_BATCHES (default 200; 0 skips it).

mod common;

use auditdeck::query::EventQuery;
use auditdeck::server::charts::parse_zone;
use auditdeck::server::store::{self, Db};
use common::views::{percentile, subsets, with_dimension};
use std::time::Instant;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

struct Cell {
    filters: String,
    kind: &'static str,
    p50: f64,
    p95: f64,
    events: u64,
}

async fn time_cell(
    db: &Db,
    runs: usize,
    zone: chrono_tz::Tz,
    make: impl Fn(usize) -> EventQuery,
    kind: &'static str,
) -> (f64, f64, u64) {
    let mut times = Vec::with_capacity(runs);
    let mut events = 0;
    for i in 0..runs {
        let q = make(i);
        let started = Instant::now();
        if std::env::var("BENCH_VERBOSE").is_ok() {
            let counted = Instant::now();
            let n = store::count_matching(db, &q).await.expect("count");
            eprintln!("  count {:?} in {:.2?}", n, counted.elapsed());
        }
        let started = if std::env::var("BENCH_VERBOSE").is_ok() {
            Instant::now()
        } else {
            started
        };
        events += if kind == "histogram" {
            store::event_histogram(db, &q, zone)
                .await
                .expect("histogram")
                .map_or(0, |h| h.total)
        } else {
            store::event_breakdowns(db, &q)
                .await
                .expect("breakdowns")
                .total
        };
        times.push(started.elapsed());
    }
    times.sort_unstable();
    (
        percentile(&times, 0.5),
        percentile(&times, 0.95),
        events / runs.max(1) as u64,
    )
}

#[tokio::main]
async fn main() {
    let sizes = common::sizes("1000000,10000000");
    let runs: usize = env_or("BENCH_RUNS", "10").parse().expect("BENCH_RUNS");
    let dir = env_or("BENCH_DIR", "target/bench");
    let zone = parse_zone(&env_or("BENCH_ZONE", "Europe/Berlin")).expect("BENCH_ZONE");
    std::fs::create_dir_all(&dir).expect("bench dir");
    for n in sizes {
        // The query bench's data set of this size (seed 11).
        let db = common::demo_dataset(&format!("{dir}/query-{n}.db"), n, 11).await;
        let _ = store::event_histogram(&db, &EventQuery::default(), zone).await;
        let mut cells = Vec::new();
        let started = Instant::now();
        let only = env_or("BENCH_ONLY", "");
        for dims in subsets() {
            let make = |i: usize| {
                dims.iter()
                    .fold(EventQuery::default(), |q, d| with_dimension(q, d, i))
            };
            let filters = if dims.is_empty() {
                "(none)".to_string()
            } else {
                dims.join(" + ")
            };
            if !only.is_empty() && !only.split(';').any(|o| o.trim() == filters) {
                continue;
            }
            for kind in ["histogram", "breakdowns"] {
                let (p50, p95, events) = time_cell(&db, runs, zone, make, kind).await;
                eprintln!("cell | {filters} | {kind} | {p50:.2} | {p95:.2} | {events}");
                cells.push(Cell {
                    filters: filters.clone(),
                    kind,
                    p50,
                    p95,
                    events,
                });
            }
        }
        println!(
            "\n### {n} events, {} ({} cells, {runs} runs each, {:.0} s)\n",
            common::backend_name(),
            cells.len(),
            started.elapsed().as_secs_f64()
        );
        println!("| kind | cells | median of p50 | median of p95 | worst p95 | cells over 100 ms | keyword-free cells over 50 ms |");
        println!("| --- | --- | --- | --- | --- | --- | --- |");
        for kind in ["histogram", "breakdowns"] {
            let of: Vec<&Cell> = cells.iter().filter(|c| c.kind == kind).collect();
            let median = |f: fn(&Cell) -> f64| {
                let mut v: Vec<f64> = of.iter().map(|c| f(c)).collect();
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            let worst = of.iter().map(|c| c.p95).fold(0.0, f64::max);
            let over = of.iter().filter(|c| c.p95 > 100.0).count();
            let plain_over = of
                .iter()
                .filter(|c| !c.filters.contains("keyword") && c.p95 > 50.0)
                .count();
            println!(
                "| {kind} | {} | {:.2} | {:.2} | {worst:.2} | {over} | {plain_over} |",
                of.len(),
                median(|c| c.p50),
                median(|c| c.p95)
            );
        }
        cells.sort_by(|a, b| b.p95.total_cmp(&a.p95));
        println!("\nWorst ten cells:\n\n| filters | kind | p50 | p95 | events in view |\n| --- | --- | --- | --- | --- |");
        for c in cells.iter().take(10) {
            println!(
                "| {} | {} | {:.2} | {:.2} | {} |",
                c.filters, c.kind, c.p50, c.p95, c.events
            );
        }
        db.close().await;
    }
    let batches: usize = env_or("BENCH_INGEST_BATCHES", "200")
        .parse()
        .expect("BENCH_INGEST_BATCHES");
    if batches > 0 {
        ingest_cost(batches).await;
    }
}

/// Stores `batches` batches of 1,000 events, timing each insert whole and
/// the rollup's part of it apart; prints the rollup's share.
async fn ingest_cost(batches: usize) {
    use auditdeck::server::demo::{self, DemoSpec};
    println!(
        "\n### What the per-quarter rollup costs ingest ({})\n",
        common::backend_name()
    );
    println!("| batches of 1,000 | insert, p50 per batch | rollup alone, p50 | rollup / insert without it |");
    println!("| --- | --- | --- | --- |");
    for live in [true, false] {
        let dir = tempfile::tempdir().expect("temp dir");
        let name = if live {
            "charts_live"
        } else {
            "charts_backfill"
        };
        let db = store::open(&common::scratch_url(dir.path(), name).await)
            .await
            .expect("open");
        let spec = DemoSpec {
            seed: 5,
            events: (batches * 1000) as u32,
            sessions: 0,
            anchor: 1_800_000_000_000_000,
        };
        let mut all = demo::events_iter(&spec);
        let (mut whole, mut rollup) = (Vec::new(), Vec::new());
        for b in 0..batches {
            let mut batch: Vec<_> = all.by_ref().take(1000).collect();
            if live {
                // A live log: the batch's events within its last minute.
                let at = 1_700_000_000_000_000 + b as i64 * 60_000_000;
                for (i, e) in batch.iter_mut().enumerate() {
                    e.occurred_at = at + i as i64 * 60_000;
                }
            }
            let mut tx = store::begin(&db).await.expect("begin");
            let started = Instant::now();
            store::add_volume_in(&mut tx, &batch).await.expect("rollup");
            rollup.push(started.elapsed());
            tx.rollback().await.expect("rollback");
            let started = Instant::now();
            store::insert_events(&db, &batch, None)
                .await
                .expect("insert");
            whole.push(started.elapsed());
        }
        whole.sort();
        rollup.sort();
        let (w, r) = (percentile(&whole, 0.5), percentile(&rollup, 0.5));
        let total_w = whole.iter().sum::<std::time::Duration>().as_secs_f64();
        let total_r = rollup.iter().sum::<std::time::Duration>().as_secs_f64();
        println!(
            "| {batches}, {} | {w:.2} ms | {r:.3} ms | {:.1}% (of the totals: {:.1}%) |",
            if live {
                "live (one minute each)"
            } else {
                "backfill (about 11 hours each)"
            },
            100.0 * r / (w - r),
            100.0 * total_r / (total_w - total_r)
        );
        db.close().await;
    }
}
