//! Streams' cursors and leases. A stream delivers the events after its
//! cursor, in id order; only the server holding its lease delivers it, and a
//! cursor moves only from where its holder read it, so a server that lost
//! its lease (it stalled past the lease's end and another took over) cannot
//! move it back or skip ahead.

use super::db::{Db, Exec};
use crate::errors::AppResult;
use crate::server::clock::Micros;

/// A stream as delivery sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRow {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub url: String,
    pub filter: String,
    pub state: String,
    /// The last event id the destination acknowledged.
    pub cursor_id: i64,
    /// Failed attempts in a row.
    pub failures: i64,
    pub next_attempt_at: Micros,
    pub last_error: Option<String>,
    pub last_status: Option<i64>,
    pub delivered: i64,
    pub lease_holder: Option<String>,
    pub lease_until: Micros,
}

/// A new stream, active, delivering the events after `after_id` (the log's
/// head for "from now", an earlier id to replay).
pub async fn create_stream(
    db: &Db,
    name: &str,
    kind: &str,
    url: &str,
    filter: &str,
    after_id: i64,
) -> AppResult<i64> {
    let mut db = db;
    let now = db.now();
    let sql = db
        .sql(
            "INSERT INTO streams (name, kind, url, filter, cursor_id, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(name)
        .bind(kind)
        .bind(url)
        .bind(filter)
        .bind(after_id)
        .bind(now)
        .bind(now);
    db.scalar(&sql).await
}

/// Every stream, oldest first.
pub async fn list_streams(db: &Db) -> AppResult<Vec<StreamRow>> {
    let mut db = db;
    let sql = db.sql(
        "SELECT id, name, kind, url, filter, state, cursor_id, failures, next_attempt_at, \
         last_error, last_status, delivered, lease_holder, lease_until FROM streams ORDER BY id",
    );
    db.all(&sql)
        .await?
        .iter()
        .map(|r| {
            Ok(StreamRow {
                id: r.get(0)?,
                name: r.get(1)?,
                kind: r.get(2)?,
                url: r.get(3)?,
                filter: r.get(4)?,
                state: r.get(5)?,
                cursor_id: r.get(6)?,
                failures: r.get(7)?,
                next_attempt_at: r.get(8)?,
                last_error: r.get(9)?,
                last_status: r.get(10)?,
                delivered: r.get(11)?,
                lease_holder: r.get(12)?,
                lease_until: r.get(13)?,
            })
        })
        .collect()
}

/// Takes (or renews) the lease of an active stream for `holder` until
/// `now + ttl`: when nobody holds it, `holder` does, or the holder's lease
/// has run out. Whether `holder` holds it now.
pub async fn take_stream_lease(db: &Db, id: i64, holder: &str, ttl: Micros) -> AppResult<bool> {
    let mut db = db;
    let now = db.now();
    let sql = db
        .sql(
            "UPDATE streams SET lease_holder = ?, lease_until = ? \
             WHERE id = ? AND state = 'active' \
             AND (lease_holder IS NULL OR lease_holder = ? OR lease_until <= ?)",
        )
        .bind(holder)
        .bind(now + ttl)
        .bind(id)
        .bind(holder)
        .bind(now);
    Ok(db.execute(&sql).await? == 1)
}

/// Lets go of a lease (a server that stops), so another takes it at once.
pub async fn release_stream_lease(db: &Db, id: i64, holder: &str) -> AppResult<()> {
    let mut db = db;
    let sql = db
        .sql("UPDATE streams SET lease_holder = NULL, lease_until = 0 WHERE id = ? AND lease_holder = ?")
        .bind(id)
        .bind(holder);
    db.execute(&sql).await?;
    Ok(())
}

/// The destination acknowledged the events after `from` up to `to`
/// (`count` of them passed the filter): the cursor moves to `to` and the
/// failures are forgotten. Only while `holder` holds the lease and the
/// cursor is still at `from`; whether it moved.
pub async fn acknowledge_stream(
    db: &Db,
    id: i64,
    holder: &str,
    from: i64,
    to: i64,
    count: i64,
) -> AppResult<bool> {
    let mut db = db;
    let now = db.now();
    let sql = db
        .sql(
            "UPDATE streams SET cursor_id = ?, delivered = delivered + ?, failures = 0, \
             next_attempt_at = 0, updated_at = ? \
             WHERE id = ? AND lease_holder = ? AND lease_until > ? AND cursor_id = ?",
        )
        .bind(to)
        .bind(count)
        .bind(now)
        .bind(id)
        .bind(holder)
        .bind(now)
        .bind(from);
    Ok(db.execute(&sql).await? == 1)
}

/// An attempt failed: the error (and HTTP status, if one came back) is kept,
/// the failures counted, and the next attempt waits until `retry_at`. The
/// cursor stays: the events wait in the log.
pub async fn record_stream_failure(
    db: &Db,
    id: i64,
    holder: &str,
    error: &str,
    status: Option<u16>,
    retry_at: Micros,
) -> AppResult<bool> {
    let mut db = db;
    let now = db.now();
    let sql = db
        .sql(
            "UPDATE streams SET failures = failures + 1, last_error = ?, last_error_at = ?, \
             last_status = ?, next_attempt_at = ?, updated_at = ? \
             WHERE id = ? AND lease_holder = ?",
        )
        .bind(error)
        .bind(now)
        .bind(status.map(i64::from))
        .bind(retry_at)
        .bind(now)
        .bind(id)
        .bind(holder);
    Ok(db.execute(&sql).await? == 1)
}

/// Pauses or resumes a stream; a paused stream keeps its cursor, and its
/// lease is let go.
pub async fn set_stream_state(db: &Db, id: i64, active: bool) -> AppResult<bool> {
    let mut db = db;
    let now = db.now();
    let sql = db
        .sql(
            "UPDATE streams SET state = ?, lease_holder = NULL, lease_until = 0, \
             next_attempt_at = 0, updated_at = ? WHERE id = ?",
        )
        .bind(if active { "active" } else { "paused" })
        .bind(now)
        .bind(id);
    Ok(db.execute(&sql).await? == 1)
}
