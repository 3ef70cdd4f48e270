//! What the benches share: their data sets.
// Each bench uses a part of this module.
#![allow(dead_code)]

use auditdeck::server::demo::{self, DemoSpec};
use auditdeck::server::store::{self, Db, NewEvent};
use std::time::Instant;

/// The demo data sets' "now".
pub const ANCHOR: i64 = 1_761_566_400_000_000;

/// The sizes to measure: `BENCH_SIZES` ("1000000,10000000"), else `default`.
pub fn sizes(default: &str) -> Vec<u32> {
    std::env::var("BENCH_SIZES")
        .unwrap_or_else(|_| default.into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

/// `BENCH_POSTGRES`: a PostgreSQL server's URL (such as
/// `postgres://postgres@127.0.0.1:5432/postgres`). The benches then keep
/// their data sets there, one database each, instead of in SQLite files.
pub fn postgres_server() -> Option<String> {
    std::env::var("BENCH_POSTGRES")
        .ok()
        .filter(|s| !s.is_empty())
}

/// The backend the benches run on, for their output.
pub fn backend_name() -> &'static str {
    if postgres_server().is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    }
}

/// The PostgreSQL database that stands for a bench file: `<kind>-<rest>.db`
/// is `auditdeck_bench_<rest>`, so the benches share one data set per size
/// there (a 10M-event data set takes a while to make).
fn pg_name(path: &str) -> String {
    let stem = std::path::Path::new(path)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("data");
    let rest = stem.split_once('-').map_or(stem, |(_, rest)| rest);
    format!("auditdeck_bench_{}", rest.replace(['-', '.'], "_"))
}

async fn pg_admin(server: &str, sql: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(server)
        .await
        .expect("connect to BENCH_POSTGRES");
    sqlx::raw_sql(sql).execute(&mut conn).await.expect(sql);
    conn.close().await.ok();
}

fn pg_url(server: &str, name: &str) -> String {
    let base = server.rsplit_once('/').map_or(server, |(base, _)| base);
    format!("{base}/{name}")
}

/// The URL of the data set at `path` (created when missing).
pub async fn dataset_url(path: &str) -> String {
    match postgres_server() {
        None => format!("sqlite://{path}?mode=rwc"),
        Some(server) => {
            let name = pg_name(path);
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&server).await.expect("connect");
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                    .bind(&name)
                    .fetch_one(&mut conn)
                    .await
                    .expect("look up the data set");
            if !exists {
                sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create the data set");
            }
            conn.close().await.ok();
            pg_url(&server, &name)
        }
    }
}

/// A copy of the data set at `from` as `to` (replacing an older copy),
/// for benches that change what they run on. Returns its URL.
pub async fn copy_dataset(from: &str, to: &str) -> String {
    match postgres_server() {
        None => {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{to}{suffix}"));
            }
            // The source's write-ahead log is folded in when it was closed.
            std::fs::copy(from, to).expect("copy");
            format!("sqlite://{to}")
        }
        Some(server) => {
            let (from, to) = (pg_name(from), pg_name(to));
            pg_admin(
                &server,
                &format!("DROP DATABASE IF EXISTS {to} WITH (FORCE)"),
            )
            .await;
            pg_admin(&server, &format!("CREATE DATABASE {to} TEMPLATE {from}")).await;
            pg_url(&server, &to)
        }
    }
}

/// A new empty database for a bench that fills its own: a file in `dir`,
/// or a fresh PostgreSQL database.
pub async fn scratch_url(dir: &std::path::Path, name: &str) -> String {
    match postgres_server() {
        None => format!("sqlite://{}", dir.join(format!("{name}.db")).display()),
        Some(server) => {
            let name = format!("auditdeck_bench_{name}");
            pg_admin(
                &server,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            )
            .await;
            pg_admin(&server, &format!("CREATE DATABASE {name}")).await;
            pg_url(&server, &name)
        }
    }
}

/// Opens the data set at `path`, generating `n` demo events (seed `seed`)
/// through the store's own insert path when it is empty. A data set holding
/// another number of events is refused: delete it to start again.
pub async fn demo_dataset(path: &str, n: u32, seed: u64) -> Db {
    let db = store::open(&dataset_url(path).await).await.expect("open");
    let have = store::count_events(&db).await.expect("count");
    if have == 0 {
        let spec = DemoSpec {
            seed,
            events: n,
            sessions: 0,
            anchor: ANCHOR,
        };
        let started = Instant::now();
        let mut all = demo::events_iter(&spec);
        let mut done = 0u64;
        loop {
            let chunk: Vec<NewEvent> = all.by_ref().take(10_000).collect();
            if chunk.is_empty() {
                break;
            }
            store::insert_events(&db, &chunk, None)
                .await
                .expect("insert");
            done += chunk.len() as u64;
            if done.is_multiple_of(1_000_000) {
                eprintln!("  {done} events in {:.0?}", started.elapsed());
            }
        }
        store::refresh_statistics(&db).await.expect("analyze");
        eprintln!(
            "generated {n} events in {:.1?} ({:.0} events/s)",
            started.elapsed(),
            f64::from(n) / started.elapsed().as_secs_f64()
        );
    } else {
        assert!(
            have >= u64::from(n),
            "{path} holds {have} events; delete it"
        );
    }
    db
}

/// The view matrix the query and chart benches share: filters, each varied
/// from run to run, combined in every subset of up to three.
pub mod views {
    use super::ANCHOR;
    use auditdeck::query::{EventQuery, InitiatorKey};
    use std::time::Duration;

    const DAY: i64 = 86_400_000_000;

    pub const USERS: [&str; 6] = ["user:1", "user:3", "user:5", "user:7", "user:9", "user:12"];
    pub const KEYWORDS: [&str; 6] = [
        "invoice",
        "\"signed in\"",
        "Kowalski",
        "customer",
        "published",
        "deleted",
    ];

    pub fn user(i: usize) -> Option<InitiatorKey> {
        Some(InitiatorKey::parse(USERS[i % USERS.len()]).expect("key"))
    }

    /// The filters the matrix combines, each varied from run to run.
    pub const DIMENSIONS: [&str; 7] = [
        "user",
        "action",
        "two actions",
        "table",
        "CIDR",
        "keyword",
        "7 days",
    ];

    pub fn with_dimension(mut q: EventQuery, dim: &str, i: usize) -> EventQuery {
        match dim {
            "user" => q.user = user(i),
            "action" => q.actions = vec![["UPDATE", "DELETE", "CREATE", "LOGIN"][i % 4].into()],
            "two actions" => {
                q.actions = vec![
                    ["UPDATE", "DELETE", "CREATE"][i % 3].into(),
                    ["LOGIN", "EXPORT"][i % 2].into(),
                ]
            }
            "table" => {
                q.table = Some(["invoices", "customers", "orders", "products"][i % 4].into())
            }
            "CIDR" => q.ip = Some(["10.0.0.0/8", "192.168.0.0/16", "203.0.113.0/24"][i % 3].into()),
            "keyword" => q.q = Some(KEYWORDS[i % KEYWORDS.len()].into()),
            "7 days" => {
                q.from = Some(ANCHOR - (7 + (i as i64 % 60)) * DAY);
                q.to = Some(ANCHOR - (i as i64 % 60) * DAY);
            }
            _ => unreachable!("unknown dimension {dim}"),
        }
        q
    }

    /// Every subset of up to three dimensions (one and two actions exclude
    /// each other).
    pub fn subsets() -> Vec<Vec<&'static str>> {
        let mut out = vec![Vec::new()];
        let n = DIMENSIONS.len();
        for mask in 1u32..(1 << n) {
            if mask.count_ones() > 3 || mask & 0b110 == 0b110 {
                continue;
            }
            out.push(
                (0..n)
                    .filter(|b| mask & (1 << b) != 0)
                    .map(|b| DIMENSIONS[b])
                    .collect(),
            );
        }
        out
    }

    pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
        let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[i].as_secs_f64() * 1000.0
    }
}
