//! `event_combos`: every distinct combination of an event's categorical
//! fields (initiator, action, table, IP) and how many events hold it.
//!
//! The store keeps it in the transaction that inserts or removes events, so
//! it is exact whenever that transaction commits. It is small (one row per
//! combination seen, not per event) and tells, without reading the log,
//! which values of a sort column a set of filters can reach (a filter that
//! correlates with the sort, such as a user's own IPs, is found where it is
//! rather than walked to) and how many events a filter without keyword or
//! time range matches. A missing value is stored as the empty text or blob.

use super::db::{Backend, Db, Exec, Sql, Tx};
use super::{ip_key, NewEvent};
use crate::errors::AppResult;
use std::collections::HashMap;

/// The key columns, in the table's order.
const KEY: &str = "initiator_kind, initiator_id, initiator_name, action, table_name, ip_bin";

/// How a key is merged into a row that exists.
const UPSERT: &str = " ON CONFLICT (initiator_kind, initiator_id, initiator_name, action, \
                      table_name, ip_bin) DO UPDATE SET n = event_combos.n + excluded.n";

/// Combinations written per statement (7 parameters each).
const CHUNK: usize = 500;

/// Beyond this many combinations (a log of very many IPs per initiator, say)
/// the table is no longer small and the queries read the log instead.
pub(super) const MAX_COMBOS: i64 = 200_000;

type Key = (String, String, String, String, String, Vec<u8>);

/// Adds `events`, about to be inserted in `tx`, to their combinations.
pub(super) async fn add(tx: &mut Tx, events: &[NewEvent]) -> AppResult<()> {
    let mut counts: HashMap<Key, i64> = HashMap::new();
    for e in events {
        let key = (
            e.initiator.kind.as_str().to_string(),
            e.initiator.id.clone().unwrap_or_default(),
            e.initiator.name.clone().unwrap_or_default(),
            e.action.clone(),
            e.table_name.clone().unwrap_or_default(),
            e.ip.map(|ip| ip_key(ip).to_vec()).unwrap_or_default(),
        );
        *counts.entry(key).or_default() += 1;
    }
    let counts: Vec<(Key, i64)> = counts.into_iter().collect();
    for chunk in counts.chunks(CHUNK) {
        let mut b = tx.sql(format!("INSERT INTO event_combos ({KEY}, n) VALUES "));
        for (i, ((kind, id, name, action, table, ip), n)) in chunk.iter().enumerate() {
            b.push(if i == 0 { "(" } else { ", (" })
                .push_bind(kind.as_str())
                .push(", ")
                .push_bind(id.as_str())
                .push(", ")
                .push_bind(name.as_str())
                .push(", ")
                .push_bind(action.as_str())
                .push(", ")
                .push_bind(table.as_str())
                .push(", ")
                .push_bind(ip.clone())
                .push(", ")
                .push_bind(*n)
                .push(")");
        }
        b.push(UPSERT);
        tx.execute(&b).await?;
    }
    Ok(())
}

/// The empty blob, standing for no IP.
fn no_ip(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "x''",
        Backend::Postgres => "'\\x'::bytea",
    }
}

/// `SELECT <key of each event>, -COUNT(*) FROM ` ready for the source and
/// its `WHERE` (see [`subtract`]).
fn subtract_head(backend: Backend) -> String {
    let no_ip = no_ip(backend);
    format!(
        "INSERT INTO event_combos ({KEY}, n) SELECT initiator_kind, COALESCE(initiator_id, ''), \
         COALESCE(initiator_name, ''), action, COALESCE(table_name, ''), COALESCE(ip_bin, {no_ip}), \
         -COUNT(*) FROM "
    )
}

/// Takes the events `sql` names, about to be removed in `tx`, out of their
/// combinations: `sql` is [`subtract_sql`]'s statement with the source
/// (`events WHERE …`, or a partition and a `WHERE`) appended.
pub(super) async fn subtract(tx: &mut Tx, mut sql: Sql) -> AppResult<()> {
    sql.push(" GROUP BY 1, 2, 3, 4, 5, 6").push(UPSERT);
    tx.execute(&sql).await?;
    Ok(())
}

/// The statement that [`subtract`] finishes: append the source and its
/// `WHERE` clause (SQLite needs one before the upsert).
pub(super) fn subtract_sql(tx: &Tx) -> Sql {
    tx.sql(subtract_head(tx.backend()))
}

/// Whether the table is small enough to answer from (see [`MAX_COMBOS`]);
/// its highest id bounds its rows, which are never deleted.
pub(super) async fn usable(db: &Db) -> AppResult<bool> {
    let sql = db.sql("SELECT id FROM event_combos ORDER BY id DESC LIMIT 1");
    let newest: Option<i64> = db.read().scalar_opt(&sql).await?;
    Ok(newest.unwrap_or(0) <= MAX_COMBOS)
}

/// How many combinations' counts differ from the log's own (a recount of
/// every event): 0 when the table is exact. For tests and checks; it reads
/// the whole log.
pub async fn combo_differences(db: &Db) -> AppResult<i64> {
    let no_ip = no_ip(db.backend());
    let sql = db.sql(format!(
        "SELECT COUNT(*) FROM (SELECT 1 FROM (\
         SELECT {KEY}, n FROM event_combos UNION ALL \
         SELECT initiator_kind, COALESCE(initiator_id, ''), COALESCE(initiator_name, ''), action, \
         COALESCE(table_name, ''), COALESCE(ip_bin, {no_ip}), -COUNT(*) FROM events \
         GROUP BY 1, 2, 3, 4, 5, 6) d GROUP BY {KEY} HAVING SUM(n) <> 0) x"
    ));
    db.read().scalar(&sql).await
}
