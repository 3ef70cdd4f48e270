//! Alerts: 50 rules of every kind evaluated beside ingest. How far the
//! evaluation lags behind a paced ingest (BENCH_RATE events/s, default
//! 20,000, for BENCH_SECONDS, default 10), and what the evaluator costs
//! ingest running flat out (rounds alone and with it alternate, as in the
//! streams bench; the evaluator of a round has started and evaluated one
//! event before the round begins, and its start is timed on its own). The
//! log before is the demo's 90 days; the events ingested meanwhile are
//! live ones (the demo's people, addresses and actions, happening now, in
//! order).
//!
//! `cargo bench --no-default-features --features ssr --bench alerts`
//! (env BENCH_EVENTS, default 200000: the log before; BENCH_ROUNDS, default
//! 3; BENCH_POSTGRES for PostgreSQL; BENCH_SPREAD to ingest at the demo's
//! own times, spread over 90 days, rather than live).

mod common;

use auditdeck::alerts::RuleSettings;
use auditdeck::server::alerts::{spawn_alerts, AlertSettings, Rule};
use auditdeck::server::demo::{self, DemoSpec};
use auditdeck::server::store::{self, Db, NewEvent};
use std::time::{Duration, Instant};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `n` demo events in batches of 1,000. With `live`, they happen as a live
/// system's do: one every 50 µs (20,000 a second) from that time on, in
/// order; otherwise at the demo's times, spread over its 90 days.
fn events(n: u64, seed: u64, live: Option<i64>) -> Vec<Vec<NewEvent>> {
    let mut all: Vec<NewEvent> = demo::events_iter(&DemoSpec {
        seed,
        events: n as u32,
        sessions: 0,
        anchor: common::ANCHOR,
    })
    .collect();
    // BENCH_SPREAD: the demo's own times (as the bench ran before).
    if let Some(from) = live.filter(|_| std::env::var("BENCH_SPREAD").is_err()) {
        for (i, e) in all.iter_mut().enumerate() {
            e.occurred_at = from + i as i64 * 50;
        }
    }
    all.chunks(1_000).map(<[NewEvent]>::to_vec).collect()
}

/// The 50 rules: 15 match, 15 threshold, 10 new-IP, 10 off-hours, over the
/// demo data's actions and tables.
fn rules() -> Vec<RuleSettings> {
    const ACTIONS: [&str; 10] = [
        "UPDATE",
        "CREATE",
        "LOGIN",
        "LOGOUT",
        "LOGIN_FAILED",
        "DELETE",
        "EXPORT",
        "GENERATE",
        "SEND",
        "PUBLISH",
    ];
    const TABLES: [&str; 5] = ["customers", "invoices", "orders", "users", "settings"];
    let base = |name: String, kind: &str, filter: String| RuleSettings {
        name,
        severity: "warning".into(),
        kind: kind.into(),
        filter,
        threshold: 1,
        window_minutes: 60,
        group_by: String::new(),
        lookback_days: 30,
        network: "address".into(),
        work_days: 31,
        work_start: 540,
        work_end: 1080,
        zone: "UTC".into(),
        stream_id: None,
    };
    let mut out = Vec::new();
    for i in 0..15 {
        let mut r = base(
            format!("match {i}"),
            "match",
            format!("action={}&table={}", ACTIONS[i % 10], TABLES[i % 5]),
        );
        r.group_by = ["", "initiator", "ip"][i % 3].into();
        out.push(r);
    }
    for i in 0..15 {
        let mut r = base(
            format!("threshold {i}"),
            "threshold",
            format!("action={}", ACTIONS[i % 10]),
        );
        r.threshold = [10, 50, 200][i % 3];
        r.window_minutes = [5, 15, 60][i % 3];
        r.group_by = ["ip", "initiator", ""][i % 3].into();
        out.push(r);
    }
    for i in 0..10 {
        let filter = if i % 2 == 0 {
            String::new()
        } else {
            "action=LOGIN".into()
        };
        let mut r = base(format!("new ip {i}"), "new_ip", filter);
        r.network = ["address", "network"][i % 2].into();
        r.lookback_days = [7, 30, 90][i % 3];
        out.push(r);
    }
    for i in 0..10 {
        let mut r = base(
            format!("off hours {i}"),
            "off_hours",
            format!("action={}", ACTIONS[(i + 5) % 10]),
        );
        r.zone = [
            "Europe/Berlin",
            "America/New_York",
            "Asia/Tokyo",
            "UTC",
            "Australia/Sydney",
        ][i % 5]
            .into();
        r.group_by = "initiator".into();
        out.push(r);
    }
    out
}

async fn add_rules(db: &Db) {
    for s in rules() {
        Rule::check(&s).expect("a valid rule");
        let mut tx = store::begin(db).await.unwrap();
        store::create_alert_rule_in(&mut tx, &s).await.unwrap();
        tx.commit().await.unwrap();
    }
}

/// The processor time this process has used (user and system), in seconds
/// (Linux; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // After the command's name (in parentheses): utime and stime are the
    // 12th and 13th fields, in clock ticks of 1/100 s.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    ticks(11)
        .zip(ticks(12))
        .map_or(0.0, |(u, s)| (u + s) / 100.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let before = env_u64("BENCH_EVENTS", 200_000);
    let rate = env_u64("BENCH_RATE", 20_000);
    let seconds = env_u64("BENCH_SECONDS", 10);
    let rounds = env_u64("BENCH_ROUNDS", 3);
    // The evaluator's warnings, if it has any (RUST_LOG for more).
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let dir = tempfile::tempdir().unwrap();
    let db = store::open(&common::scratch_url(dir.path(), "alerts").await)
        .await
        .unwrap();
    println!("alerts ({}), 50 rules", common::backend_name());
    // The log before: the demo's 90 days, for the new-IP rules to look back on.
    for batch in events(before, 7, None) {
        store::insert_events(&db, batch, None).await.unwrap();
    }
    let head = store::max_event_id(&db).await.unwrap();
    store::set_alert_cursor(&db, head).await.unwrap();
    add_rules(&db).await;

    // 1. Lag behind a paced ingest: batches of 1,000 at `rate` events/s;
    // every 20 ms, how long the oldest stored event the evaluator has not
    // evaluated has been waiting.
    let worker = spawn_alerts(db.clone(), AlertSettings::default());
    // Live from the log's newest time on.
    let mut live = common::ANCHOR + 1;
    let batches = events(rate * seconds, 11, Some(live));
    live += (rate * seconds) as i64 * 50;
    let every = Duration::from_secs_f64(1_000.0 / rate as f64);
    let committed: std::sync::Arc<std::sync::Mutex<Vec<(i64, Instant)>>> = Default::default();
    let sampler = {
        let (db, committed) = (db.clone(), committed.clone());
        tokio::spawn(async move {
            let mut lags = Vec::new();
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let cursor = store::alert_cursor(&db).await.unwrap();
                let (waiting, done) = {
                    let c = committed.lock().unwrap();
                    let waiting = c
                        .iter()
                        .find(|(last, _)| *last > cursor)
                        .map(|(_, at)| at.elapsed());
                    (waiting, c.last().is_some_and(|(last, _)| *last == i64::MAX))
                };
                lags.push(waiting.map_or(0.0, |w| w.as_secs_f64()));
                if done {
                    break lags;
                }
            }
        })
    };
    let started = Instant::now();
    for (i, batch) in batches.into_iter().enumerate() {
        let due = started + every * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let ids = store::insert_events(&db, batch, None).await.unwrap();
        committed
            .lock()
            .unwrap()
            .push((*ids.last().unwrap(), Instant::now()));
    }
    let took = started.elapsed().as_secs_f64();
    let last = store::max_event_id(&db).await.unwrap();
    let wait = Instant::now();
    while store::alert_cursor(&db).await.unwrap() < last {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let drained = wait.elapsed().as_secs_f64();
    committed.lock().unwrap().push((i64::MAX, Instant::now()));
    let mut lags = sampler.await.unwrap();
    worker.stop().await;
    lags.sort_by(f64::total_cmp);
    let alerts = store::list_alerts(&db, None, 1_000_000).await.unwrap();
    println!(
        "  paced ingest {:.0} events/s for {took:.1} s: evaluation lag p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms; caught up {:.0} ms after the last batch; {} alerts",
        (rate * seconds) as f64 / took,
        percentile(&lags, 0.5) * 1e3,
        percentile(&lags, 0.95) * 1e3,
        lags.last().copied().unwrap_or(0.0) * 1e3,
        drained * 1e3,
        alerts.len()
    );

    // 2. What evaluation costs ingest running flat out: rounds of 100,000
    // alone and with the evaluator alternate.
    let n = 100_000;
    // The process's processor time per second of each round (2 cores here:
    // what the evaluator adds is what ingest may lose to it).
    let cores: std::sync::Arc<std::sync::Mutex<Vec<f64>>> = Default::default();
    let ingest = |seed: u64, from: i64| {
        let cores = cores.clone();
        let db = db.clone();
        async move {
            let batches = events(n, seed, Some(from));
            let (started, cpu) = (Instant::now(), cpu_seconds());
            for batch in batches {
                store::insert_events(&db, batch, None).await.unwrap();
            }
            let took = started.elapsed().as_secs_f64();
            cores.lock().unwrap().push((cpu_seconds() - cpu) / took);
            n as f64 / took
        }
    };
    let (mut alone, mut with, mut starts) = (Vec::new(), Vec::new(), Vec::new());
    let span = n as i64 * 50;
    for round in 0..rounds {
        alone.push(ingest(31 + 2 * round, live).await);
        live += span;
        let head = store::max_event_id(&db).await.unwrap();
        store::set_alert_cursor(&db, head).await.unwrap();
        // The evaluator starts (rebuilding its rules' windows from the log)
        // and has evaluated one event before the round: the round weighs
        // evaluation as it goes on, not a start.
        let worker = spawn_alerts(db.clone(), AlertSettings::default());
        let start = Instant::now();
        let mut one = events(1, 90 + round, Some(live)).remove(0);
        one.truncate(1);
        live += 50;
        let marker = store::insert_events(&db, one, None).await.unwrap()[0];
        while store::alert_cursor(&db).await.unwrap() < marker {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        starts.push(start.elapsed().as_secs_f64() * 1e3);
        with.push(ingest(32 + 2 * round, live).await);
        live += span;
        let last = store::max_event_id(&db).await.unwrap();
        while store::alert_cursor(&db).await.unwrap() < last {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        worker.stop().await;
    }
    alone.push(ingest(31 + 2 * rounds, live).await);
    let mut costs: Vec<f64> = with
        .iter()
        .enumerate()
        .map(|(i, w)| (w / ((alone[i] + alone[i + 1]) / 2.0) - 1.0) * 100.0)
        .collect();
    let shown = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "  events/s alone: {}; with the evaluator: {}; its starts (rules loaded, windows rebuilt, one event evaluated): {} ms",
        shown(&alone),
        shown(&with),
        shown(&starts)
    );
    let cores = cores.lock().unwrap();
    let (alone_cores, with_cores): (Vec<_>, Vec<_>) =
        cores.iter().enumerate().partition(|(i, _)| i % 2 == 0);
    let cores_of = |v: Vec<(usize, &f64)>| {
        v.iter()
            .map(|(_, c)| format!("{c:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "  processor cores busy: alone {}; with the evaluator {}",
        cores_of(alone_cores),
        cores_of(with_cores)
    );
    costs.sort_by(f64::total_cmp);
    println!(
        "  ingest with 50 rules evaluated: {:+.1}% (median of {rounds} rounds against the rounds alone on either side; worst {:+.1}%)",
        costs[costs.len() / 2],
        costs[0]
    );
}
