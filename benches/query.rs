//! Activity Log query latency at scale, server-side (the store functions the
//! server functions call), on SQLite files of 1M and 10M demo events.
//!
//! `cargo bench --no-default-features --features ssr --bench query`
//! env BENCH_SIZES (default "1000000,10000000"), BENCH_RUNS (default 200),
//! BENCH_DIR (default target/bench), BENCH_VERBOSE (print the first runs of each
//! case). A data set is generated once and kept.
//! Prints p50 / p95 in milliseconds per case, as a Markdown table.

mod common;

use auditdeck::query::{Cursor, EventQuery, InitiatorKey};
use auditdeck::server::store::{self, Db};
use std::time::{Duration, Instant};

const DAY: i64 = 86_400_000_000;
/// A fixed anchor so a kept data set matches the code that made it.
use common::ANCHOR;
const USERS: [&str; 6] = ["user:1", "user:3", "user:5", "user:7", "user:9", "user:12"];
const KEYWORDS: [&str; 6] = [
    "invoice",
    "\"signed in\"",
    "Kowalski",
    "customer",
    "published",
    "deleted",
];

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

async fn dataset(dir: &str, n: u32) -> Db {
    std::fs::create_dir_all(dir).expect("bench dir");
    common::demo_dataset(&format!("{dir}/query-{n}.db"), n, 11).await
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

struct Case {
    name: &'static str,
    make: Box<dyn Fn(usize) -> EventQuery>,
    count: bool,
}

async fn run(db: &Db, case: &Case, runs: usize) -> (f64, f64, usize) {
    let mut times = Vec::with_capacity(runs);
    let mut rows = 0;
    // One untimed run warms the page cache.
    let q = (case.make)(0);
    let _ = store::list_events(db, &q).await.expect("warm");
    for i in 0..runs {
        let q = (case.make)(i);
        let started = Instant::now();
        if case.count {
            let c = store::count_matching(db, &q).await.expect("count");
            rows += c.total as usize;
        } else {
            let page = store::list_events(db, &q).await.expect("list");
            rows += page.rows.len();
        }
        times.push(started.elapsed());
        if std::env::var("BENCH_VERBOSE").is_ok() && i < 12 {
            eprintln!("  {} #{i}: {:.2?} {:?}", case.name, started.elapsed(), q.q);
        }
    }
    times.sort_unstable();
    (
        percentile(&times, 0.5),
        percentile(&times, 0.95),
        rows / runs,
    )
}

fn base() -> EventQuery {
    EventQuery {
        per_page: 50,
        ..EventQuery::default()
    }
}

fn user(i: usize) -> Option<InitiatorKey> {
    Some(InitiatorKey::parse(USERS[i % USERS.len()]).expect("key"))
}

#[tokio::main]
async fn main() {
    let sizes = common::sizes("1000000,10000000");
    let runs: usize = env_or("BENCH_RUNS", "200").parse().unwrap_or(200);
    let dir = env_or("BENCH_DIR", "target/bench");
    println!("{}", common::backend_name());
    println!("| events | case | p50 ms | p95 ms | rows |");
    println!("| ---: | --- | ---: | ---: | ---: |");
    for n in sizes {
        let db = dataset(&dir, n).await;
        // Rows deep in the log, for cursors: ids spread over the oldest half.
        let (low, high) = store::id_range(&db).await.expect("ids");
        let span = high - low;
        let deep = move |i: usize| low + span / 4 + (i as i64 * 7_919) % (span / 4);
        let cases = vec![
            Case {
                name: "unfiltered, first page",
                make: Box::new(|_| base()),
                count: false,
            },
            Case {
                name: "user + 7 days",
                make: Box::new(|i| EventQuery {
                    user: user(i),
                    from: Some(ANCHOR - (7 + (i as i64 % 60)) * DAY),
                    to: Some(ANCHOR - (i as i64 % 60) * DAY),
                    ..base()
                }),
                count: false,
            },
            Case {
                name: "action + table",
                make: Box::new(|i| EventQuery {
                    actions: vec![["UPDATE", "DELETE", "CREATE"][i % 3].into()],
                    table: Some(["invoices", "customers", "orders", "products"][i % 4].into()),
                    ..base()
                }),
                count: false,
            },
            Case {
                name: "IP range (CIDR) alone",
                make: Box::new(|i| EventQuery {
                    ip: Some(["10.0.0.0/8", "192.168.0.0/16", "203.0.113.0/24"][i % 3].into()),
                    ..base()
                }),
                count: false,
            },
            Case {
                name: "two action types",
                make: Box::new(|i| EventQuery {
                    actions: vec![
                        ["UPDATE", "DELETE", "CREATE"][i % 3].into(),
                        ["LOGIN", "EXPORT"][i % 2].into(),
                    ],
                    ..base()
                }),
                count: false,
            },
            Case {
                name: "keyword alone",
                make: Box::new(|i| EventQuery {
                    q: Some(KEYWORDS[i % KEYWORDS.len()].into()),
                    ..base()
                }),
                count: false,
            },
            Case {
                name: "keyword + user + 30 days",
                make: Box::new(|i| EventQuery {
                    q: Some(KEYWORDS[i % KEYWORDS.len()].into()),
                    user: user(i),
                    from: Some(ANCHOR - 30 * DAY),
                    ..base()
                }),
                count: false,
            },
            Case {
                name: "deep page (cursor)",
                make: Box::new(move |i| base().at(10_000, Some(Cursor::After(deep(i))))),
                count: false,
            },
            Case {
                name: "deep page, user filter (cursor)",
                make: Box::new(move |i| EventQuery {
                    user: user(i),
                    ..base().at(10_000, Some(Cursor::After(deep(i))))
                }),
                count: false,
            },
            Case {
                name: "count, unfiltered",
                make: Box::new(|_| base()),
                count: true,
            },
            Case {
                name: "count, user + 7 days",
                make: Box::new(|i| EventQuery {
                    user: user(i),
                    from: Some(ANCHOR - (7 + (i as i64 % 60)) * DAY),
                    to: Some(ANCHOR - (i as i64 % 60) * DAY),
                    ..base()
                }),
                count: true,
            },
            Case {
                name: "count, keyword",
                make: Box::new(|i| EventQuery {
                    q: Some(KEYWORDS[i % KEYWORDS.len()].into()),
                    ..base()
                }),
                count: true,
            },
        ];
        for case in &cases {
            let (p50, p95, rows) = run(&db, case, runs).await;
            println!("| {n} | {} | {p50:.2} | {p95:.2} | {rows} |", case.name);
        }
        let started = Instant::now();
        let options = store::filter_options(&db).await.expect("options");
        println!(
            "| {n} | filter choices ({} users, {} actions, {} tables) | {:.2} | | |",
            options.initiators.len(),
            options.actions.len(),
            options.tables.len(),
            started.elapsed().as_secs_f64() * 1000.0
        );
        db.close().await;
    }
}
