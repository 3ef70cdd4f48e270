//! What the benches share: their data sets.

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

/// Opens the data set at `path`, generating `n` demo events (seed `seed`)
/// through the store's own insert path when it is empty. A file holding
/// another number of events is refused: delete it to start again.
pub async fn demo_dataset(path: &str, n: u32, seed: u64) -> Db {
    let db = store::open(&format!("sqlite://{path}?mode=rwc"))
        .await
        .expect("open");
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
