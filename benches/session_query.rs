//! Admin Sessions query latency at scale, server-side (the store functions
//! the server functions call): a matrix of every subset of up to three
//! filters (type, method, Hide Me, a search word matching many, one matching
//! few or none, seven days) × every sort column in both directions × first page and
//! a deep page (the page before the last, by cursor), plus each subset's
//! count. Prints the worst ten cells of each kind; every cell goes to
//! `BENCH_DIR/sessions-matrix-<n>-<backend>.csv`.
//!
//! `cargo bench --no-default-features --features ssr --bench session_query`
//! env BENCH_SIZES (default "1000000"), BENCH_MATRIX_RUNS (default 10),
//! BENCH_DIR (default target/bench), BENCH_POSTGRES (see `common`).

mod common;

use auditdeck::query::Cursor;
use auditdeck::server::demo::{self, DemoSpec};
use auditdeck::server::store::{self, Db};
use auditdeck::session_query::{SessionQuery, SessionSort};
use common::ANCHOR;
use std::time::{Duration, Instant};

const DAY: i64 = 86_400_000_000;
/// The signed-in admin a view is for (Hide Me leaves out their requests).
const ME: i64 = 1;
const DIMENSIONS: [&str; 6] = [
    "type",
    "method",
    "hide me",
    "search",
    "rare search",
    "7 days",
];

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// The data set: `n` demo admin-session records over 90 days, made once.
async fn dataset(dir: &str, n: u32) -> Db {
    std::fs::create_dir_all(dir).expect("bench dir");
    let path = format!("{dir}/sessions-{n}.db");
    let db = store::open(&common::dataset_url(&path).await)
        .await
        .expect("open");
    let have = store::count_admin_sessions(&db).await.expect("count");
    if have == 0 {
        let started = Instant::now();
        let spec = DemoSpec {
            seed: 13,
            events: 0,
            sessions: n,
            anchor: ANCHOR,
        };
        for chunk in demo::sessions(&spec).chunks(5_000) {
            store::insert_admin_sessions(&db, chunk)
                .await
                .expect("insert");
        }
        store::refresh_statistics(&db).await.expect("statistics");
        eprintln!(
            "made {n} admin-session records in {:.0} s",
            started.elapsed().as_secs_f64()
        );
    } else {
        assert_eq!(have, u64::from(n), "{path} holds another size: delete it");
    }
    db
}

fn with_dimension(mut q: SessionQuery, dim: &str, i: usize) -> SessionQuery {
    match dim {
        "type" => q.kind = Some(["WEB", "API"][i % 2].into()),
        "method" => q.method = Some(["GET", "POST"][i % 2].into()),
        "hide me" => q.hide_me = true,
        "search" => q.q = Some(["kowalski", "export", "integrity", "10.1.0.3"][i % 4].into()),
        "rare search" => q.q = Some(["zzq", "=299"][i % 2].into()),
        "7 days" => {
            q.from = Some(ANCHOR - (7 + (i as i64 % 60)) * DAY);
            q.to = Some(ANCHOR - (i as i64 % 60) * DAY);
        }
        _ => unreachable!("unknown dimension {dim}"),
    }
    q
}

/// Every subset of up to three dimensions (the two searches exclude each other).
fn subsets() -> Vec<Vec<&'static str>> {
    let n = DIMENSIONS.len();
    (0u32..(1 << n))
        .filter(|m| m.count_ones() <= 3 && m & 0b11000 != 0b11000)
        .map(|m| {
            (0..n)
                .filter(|b| m & (1 << b) != 0)
                .map(|b| DIMENSIONS[b])
                .collect()
        })
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn time_cell(
    db: &Db,
    runs: usize,
    make: impl Fn(usize) -> SessionQuery,
    kind: &str,
) -> (f64, f64) {
    let mut times = Vec::with_capacity(runs);
    for i in 0..runs {
        let mut q = make(i);
        if kind == "deep page" {
            let end = store::list_admin_sessions(db, &q.clone().at(2, Some(Cursor::End)), ME)
                .await
                .expect("end");
            q = match end.rows.first() {
                Some(r) if end.has_prev => q.at(2, Some(Cursor::Before(r.id))),
                _ => q.at(2, Some(Cursor::End)),
            };
        }
        let started = Instant::now();
        if kind == "count" {
            store::count_admin_sessions_matching(db, &q, ME)
                .await
                .expect("count");
        } else {
            store::list_admin_sessions(db, &q, ME).await.expect("list");
        }
        times.push(started.elapsed());
    }
    times.sort_unstable();
    (percentile(&times, 0.5), percentile(&times, 0.95))
}

#[tokio::main]
async fn main() {
    let runs: usize = env_or("BENCH_MATRIX_RUNS", "10").parse().unwrap_or(10);
    let dir = env_or("BENCH_DIR", "target/bench");
    for n in common::sizes("1000000") {
        let db = dataset(&dir, n).await;
        let started = Instant::now();
        let mut cells: Vec<(String, String, &str, f64, f64)> = Vec::new();
        for subset in subsets() {
            let filters = if subset.is_empty() {
                "(none)".to_string()
            } else {
                subset.join(" + ")
            };
            let make = |sort: SessionSort, descending: bool| {
                let subset = subset.clone();
                move |i: usize| {
                    let mut q = SessionQuery {
                        per_page: 50,
                        sort,
                        descending,
                        ..SessionQuery::default()
                    };
                    for dim in &subset {
                        q = with_dimension(q, dim, i);
                    }
                    q
                }
            };
            let mut cell = |sort: String, kind: &'static str, (p50, p95): (f64, f64)| {
                eprintln!("cell | {filters} | {sort} | {kind} | {p50:.2} | {p95:.2}");
                cells.push((filters.clone(), sort, kind, p50, p95));
            };
            let t = time_cell(&db, runs, make(SessionSort::Date, true), "count").await;
            cell("-".into(), "count", t);
            for sort in SessionSort::ALL {
                for descending in [true, false] {
                    for kind in ["first page", "deep page"] {
                        let t = time_cell(&db, runs, make(sort, descending), kind).await;
                        let dir = if descending { "desc" } else { "asc" };
                        cell(format!("{} {dir}", sort.as_str()), kind, t);
                    }
                }
            }
        }
        let path = format!(
            "{dir}/sessions-matrix-{n}-{}.csv",
            common::backend_name().replace(' ', "-")
        );
        let mut csv = String::from("records,filters,sort,kind,p50_ms,p95_ms\n");
        for (f, s, k, p50, p95) in &cells {
            csv.push_str(&format!("{n},{f},{s},{k},{p50:.2},{p95:.2}\n"));
        }
        std::fs::write(&path, csv).expect("csv");
        println!(
            "\nAdmin Sessions at {n} ({}): {} cells ({runs} runs each) in {:.0} s, all in {path}",
            common::backend_name(),
            cells.len(),
            started.elapsed().as_secs_f64()
        );
        for kind in ["first page", "deep page", "count"] {
            let mut of_kind: Vec<_> = cells.iter().filter(|c| c.2 == kind).collect();
            of_kind.sort_by(|a, b| b.4.total_cmp(&a.4));
            println!(
                "\n{kind}: {} cells, median p95 {:.2} ms; the worst ten:",
                of_kind.len(),
                of_kind.get(of_kind.len() / 2).map_or(0.0, |c| c.4)
            );
            println!("| filters | sort | p50 ms | p95 ms |");
            println!("| --- | --- | ---: | ---: |");
            for (f, s, _, p50, p95) in of_kind.iter().take(10) {
                println!("| {f} | {s} | {p50:.2} | {p95:.2} |");
            }
        }
    }
}
