//! A backfill for a month that has no partition, while a long reader (an
//! export's cursor, a verification) holds the events table: nothing waits
//! on DDL, the batch is stored, and maintenance later moves it into its
//! month. On SQLite (no partitions) the same requests must simply work.

use crate::common::{json_batch, sample_event, TestApp};
use auditdeck::integrity::VerifyMode;
use auditdeck::models::{format_rfc3339, Role};
use auditdeck::server::store::{self, Exec};
use std::time::Duration;

const DAY: i64 = 86_400_000_000;
/// What "at once" means here: a page or a batch that waited on a lock
/// behind the reader would take as long as the reader (here, for ever).
const AT_ONCE: Duration = Duration::from_secs(1);

/// A batch of `n` events stamped `at`.
fn batch_at(n: usize, tag: &str, at: i64) -> String {
    let mut events: serde_json::Value = serde_json::from_str(&json_batch(n, tag)).unwrap();
    for e in events.as_array_mut().unwrap() {
        e["occurred_at"] = format_rfc3339(at).into();
    }
    events.to_string()
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(AT_ONCE, f)
        .await
        .unwrap_or_else(|_| panic!("{what} waited behind the reader"))
}

#[tokio::test]
async fn a_backfill_beside_a_long_reader_is_stored_and_nothing_waits() {
    let app = TestApp::new().await;
    store::prepare_partitions(&app.db, app.now()).await.unwrap();
    store::insert_events(&app.db, &[sample_event(0, app.now())], None)
        .await
        .unwrap();
    let key = app.api_key().await;
    let viewer = app.session_for(Role::Viewer).await;
    // The event above and the viewer's own (created, signed in).
    let before = app.count().await;

    // A long read in a snapshot of its own, as an export's cursor holds one.
    let mut reader = app.db.begin_snapshot().await.unwrap();
    let seen: i64 = reader
        .scalar(&reader.sql("SELECT COUNT(*) FROM events"))
        .await
        .unwrap();
    assert!(seen >= 1);

    // The second day of a month fourteen months back: no partition for that
    // month exists.
    let old = store::partition_of(app.now() - 420 * DAY).from + DAY;
    let r = within(
        "the backfill",
        app.ingest(Some(&key), batch_at(40, "backfill", old)),
    )
    .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.text());
    // A second batch for the same month, after the first could not make
    // its partition: it does not try again for a while, and lands too.
    let r = within(
        "the second backfill",
        app.ingest(Some(&key), batch_at(10, "backfill", old + DAY)),
    )
    .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.text());
    // Pages and current ingest go on while the reader is open.
    let page = within("a page load", app.get_with("/activity-log", &viewer)).await;
    assert_eq!(page.status.as_u16(), 200);
    let r = within(
        "current ingest",
        app.ingest(Some(&key), batch_at(5, "current", app.now())),
    )
    .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.text());
    // Maintenance gives up while the reader is there, and says so.
    if app.on_postgres() {
        let pass = within(
            "partition upkeep",
            store::prepare_partitions(&app.db, app.now()),
        )
        .await;
        assert!(pass.is_err(), "the reader is in the way: {pass:?}");
    }
    reader.rollback().await.unwrap();

    // Every accepted event is there, once.
    assert_eq!(app.count().await, before + 40 + 10 + 5);
    if app.on_postgres() {
        assert_eq!(
            store::default_partition_count(&app.db).await.unwrap(),
            50,
            "the backfill waits in the default partition"
        );
        let pass = store::prepare_partitions(&app.db, app.now()).await.unwrap();
        assert_eq!(pass.moved, 50);
        // Moved, not added: the filters' combinations and the quarter-hour
        // volumes still count each once.
        assert_eq!(store::combo_differences(&app.db).await.unwrap(), 0);
        assert_eq!(store::volume_differences(&app.db).await.unwrap(), 0);
        assert!(
            pass.made.contains(&store::partition_of(old).name),
            "{pass:?}"
        );
        assert_eq!(store::default_partition_count(&app.db).await.unwrap(), 0);
        let mut tx = app.db.begin_snapshot().await.unwrap();
        let months = store::list_partitions(&mut tx).await.unwrap();
        tx.commit().await.unwrap();
        assert!(months.contains(&store::partition_of(old)));
        let n: i64 = app
            .db
            .read()
            .scalar(&app.db.sql(format!(
                "SELECT COUNT(*) FROM {}",
                store::partition_of(old).name
            )))
            .await
            .unwrap();
        assert_eq!(n, 50, "the backfill is in its month now");
    }
    assert_eq!(app.count().await, before + 40 + 10 + 5);
    let report = store::verify_chain(&app.db, VerifyMode::Full, Vec::new(), |_, _| {})
        .await
        .unwrap();
    assert!(report.intact(), "{:?}", report.problems);
    assert_eq!(report.events, before + 55);
}

#[tokio::test]
async fn without_a_reader_a_backfill_makes_its_month_at_once() {
    let app = TestApp::new().await;
    let old = app.now() - 800 * DAY;
    let rows: Vec<_> = (0..3)
        .map(|i| sample_event(i, old + i64::from(i)))
        .collect();
    store::insert_events(&app.db, &rows, None).await.unwrap();
    assert_eq!(store::default_partition_count(&app.db).await.unwrap(), 0);
    if app.on_postgres() {
        let mut tx = app.db.begin_snapshot().await.unwrap();
        let months = store::list_partitions(&mut tx).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(months, [store::partition_of(old)]);
    }
    assert_eq!(app.count().await, 3);
}
