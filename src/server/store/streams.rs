//! Streams' cursors and leases. A stream delivers the events after its
//! cursor, in id order; only the server holding its lease delivers it, and a
//! cursor moves only from where its holder read it, so a server that lost
//! its lease (it stalled past the lease's end and another took over) cannot
//! move it back or skip ahead.

use super::db::{Db, DbRow, Exec, Tx};
use crate::errors::{AppError, AppResult};
use crate::server::clock::Micros;
use crate::streams::StreamAttempt;

/// Attempts kept in each stream's delivery log.
pub const ATTEMPTS_KEPT: i64 = 100;
const DAY: Micros = 86_400 * 1_000_000;

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
    /// The signing secret (`whsec_…`) or the destination's token.
    pub secret: String,
    /// The secret before a rotation, still signing until
    /// `previous_secret_until`.
    pub previous_secret: Option<String>,
    pub previous_secret_until: Micros,
    /// Custom headers, one `Name: value` a line.
    pub headers: String,
    pub last_error_at: Option<Micros>,
    /// Events delivered on the UTC day `today_day` (days since the epoch).
    pub today_day: i64,
    pub today_delivered: i64,
    pub created_at: Micros,
    /// Deletions and retention runs that removed events after its cursor.
    pub gaps: i64,
}

impl StreamRow {
    /// Events delivered on the UTC day of `now`.
    pub fn delivered_on(&self, now: Micros) -> i64 {
        if self.today_day == now.div_euclid(DAY) {
            self.today_delivered
        } else {
            0
        }
    }
}

/// What an admin sets on a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSettings<'a> {
    pub name: &'a str,
    pub kind: &'a str,
    pub url: &'a str,
    pub filter: &'a str,
    pub headers: &'a str,
}

const STREAM_COLUMNS: &str = "id, name, kind, url, filter, state, cursor_id, failures, \
     next_attempt_at, last_error, last_status, delivered, lease_holder, lease_until, secret, \
     previous_secret, previous_secret_until, headers, last_error_at, today_day, \
     today_delivered, created_at, gaps";

fn stream_row(r: &DbRow) -> AppResult<StreamRow> {
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
        secret: r.get(14)?,
        previous_secret: r.get(15)?,
        previous_secret_until: r.get(16)?,
        headers: r.get(17)?,
        last_error_at: r.get(18)?,
        today_day: r.get(19)?,
        today_delivered: r.get(20)?,
        created_at: r.get(21)?,
        gaps: r.get(22)?,
    })
}

/// A new stream, active, delivering the events after `after_id` (the log's
/// head for "from now", an earlier id to replay), with no secret.
pub async fn create_stream(
    db: &Db,
    name: &str,
    kind: &str,
    url: &str,
    filter: &str,
    after_id: i64,
) -> AppResult<i64> {
    let mut tx = db.begin().await?;
    let settings = StreamSettings {
        name,
        kind,
        url,
        filter,
        headers: "",
    };
    let id = create_stream_in(&mut tx, &settings, "", after_id).await?;
    tx.commit().await?;
    Ok(id)
}

/// [`create_stream`] in the caller's transaction, with its secret (or
/// token) and headers.
pub async fn create_stream_in(
    tx: &mut Tx,
    settings: &StreamSettings<'_>,
    secret: &str,
    after_id: i64,
) -> AppResult<i64> {
    let now = tx.now();
    let sql = tx
        .sql(
            "INSERT INTO streams (name, kind, url, filter, headers, secret, cursor_id, \
             created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(settings.name)
        .bind(settings.kind)
        .bind(settings.url)
        .bind(settings.filter)
        .bind(settings.headers)
        .bind(secret)
        .bind(after_id)
        .bind(now)
        .bind(now);
    tx.scalar(&sql).await
}

/// Changes a stream's name, address, filter, headers and secret (or
/// token); its kind stays. Whether there was one to change.
pub async fn update_stream_in(
    tx: &mut Tx,
    id: i64,
    settings: &StreamSettings<'_>,
    secret: &str,
) -> AppResult<bool> {
    let now = tx.now();
    let sql = tx
        .sql(
            "UPDATE streams SET name = ?, url = ?, filter = ?, headers = ?, secret = ?, \
             failures = 0, next_attempt_at = 0, updated_at = ? WHERE id = ?",
        )
        .bind(settings.name)
        .bind(settings.url)
        .bind(settings.filter)
        .bind(settings.headers)
        .bind(secret)
        .bind(now)
        .bind(id);
    Ok(tx.execute(&sql).await? == 1)
}

/// One stream, read in the caller's transaction.
pub async fn stream_in(tx: &mut Tx, id: i64) -> AppResult<Option<StreamRow>> {
    let sql = tx
        .sql(format!("SELECT {STREAM_COLUMNS} FROM streams WHERE id = ?"))
        .bind(id);
    tx.optional(&sql)
        .await?
        .as_ref()
        .map(stream_row)
        .transpose()
}

/// One stream.
pub async fn get_stream(db: &Db, id: i64) -> AppResult<Option<StreamRow>> {
    let mut db = db;
    let sql = db
        .sql(format!("SELECT {STREAM_COLUMNS} FROM streams WHERE id = ?"))
        .bind(id);
    db.optional(&sql)
        .await?
        .as_ref()
        .map(stream_row)
        .transpose()
}

/// Deletes a stream (its delivery log with it); the stream as it was.
pub async fn delete_stream_in(tx: &mut Tx, id: i64) -> AppResult<Option<StreamRow>> {
    let before = stream_in(tx, id).await?;
    if before.is_some() {
        let sql = tx
            .sql("DELETE FROM stream_attempts WHERE stream_id = ?")
            .bind(id);
        tx.execute(&sql).await?;
        let sql = tx.sql("DELETE FROM streams WHERE id = ?").bind(id);
        tx.execute(&sql).await?;
    }
    Ok(before)
}

/// Sets a stream's cursor (a replay: the events after `after_id` go again,
/// or a skip ahead); the lease is let go so its holder rereads it.
pub async fn set_stream_cursor_in(tx: &mut Tx, id: i64, after_id: i64) -> AppResult<bool> {
    let now = tx.now();
    let sql = tx
        .sql(
            "UPDATE streams SET cursor_id = ?, failures = 0, next_attempt_at = 0, \
             lease_holder = NULL, lease_until = 0, updated_at = ? WHERE id = ?",
        )
        .bind(after_id)
        .bind(now)
        .bind(id);
    Ok(tx.execute(&sql).await? == 1)
}

/// A new signing secret; the one before keeps signing (beside it) until
/// `previous_until`.
pub async fn rotate_stream_secret_in(
    tx: &mut Tx,
    id: i64,
    secret: &str,
    previous_until: Micros,
) -> AppResult<bool> {
    let now = tx.now();
    let sql = tx
        .sql(
            "UPDATE streams SET previous_secret = secret, previous_secret_until = ?, secret = ?, \
             updated_at = ? WHERE id = ?",
        )
        .bind(previous_until)
        .bind(secret)
        .bind(now)
        .bind(id);
    Ok(tx.execute(&sql).await? == 1)
}

/// Pauses or resumes a stream in the caller's transaction (see
/// [`set_stream_state`]).
pub async fn set_stream_state_in(tx: &mut Tx, id: i64, active: bool) -> AppResult<bool> {
    let now = tx.now();
    // Paused, its holder keeps the lease until it has written down what it
    // delivered (nobody takes a paused stream's lease); resumed, it is free.
    let sql = tx
        .sql(if active {
            "UPDATE streams SET state = ?, lease_holder = NULL, lease_until = 0, \
             failures = 0, next_attempt_at = 0, updated_at = ? WHERE id = ?"
        } else {
            "UPDATE streams SET state = ?, failures = 0, next_attempt_at = 0, updated_at = ? \
             WHERE id = ?"
        })
        .bind(if active { "active" } else { "paused" })
        .bind(now)
        .bind(id);
    Ok(tx.execute(&sql).await? == 1)
}

/// One line of a stream's delivery log; the oldest beyond
/// [`ATTEMPTS_KEPT`] go.
pub async fn record_stream_attempt(
    db: &Db,
    stream_id: i64,
    attempt: &StreamAttempt,
) -> AppResult<()> {
    // Delivery's own bookkeeping: no event, no link of the chain.
    let mut tx = db.begin_unlocked().await?;
    record_stream_attempts_in(&mut tx, stream_id, std::slice::from_ref(attempt)).await?;
    tx.commit().await
}

/// Lines of a stream's delivery log, in their order; the oldest beyond
/// [`ATTEMPTS_KEPT`] go.
async fn record_stream_attempts_in(
    tx: &mut Tx,
    stream_id: i64,
    attempts: &[StreamAttempt],
) -> AppResult<()> {
    if attempts.is_empty() {
        return Ok(());
    }
    // Only the last ones are kept anyway.
    let skip = attempts.len().saturating_sub(ATTEMPTS_KEPT as usize);
    for attempt in &attempts[skip..] {
        let sql = tx
            .sql(
                "INSERT INTO stream_attempts (stream_id, at, outcome, events, first_id, last_id, \
                 status, error, duration_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(stream_id)
            .bind(attempt.at)
            .bind(attempt.outcome.as_str())
            .bind(attempt.events)
            .bind(attempt.first_id)
            .bind(attempt.last_id)
            .bind(attempt.status)
            .bind(attempt.error.as_deref())
            .bind(attempt.duration_us);
        tx.execute(&sql).await?;
    }
    let sql = tx
        .sql(
            "DELETE FROM stream_attempts WHERE stream_id = ? AND id <= (SELECT id FROM \
             stream_attempts WHERE stream_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
        )
        .bind(stream_id)
        .bind(stream_id)
        .bind(ATTEMPTS_KEPT);
    tx.execute(&sql).await?;
    Ok(())
}

/// Events after a stream's cursor that a deletion or retention removes
/// before the stream delivered them: noted in its delivery log as a gap
/// (one line per stream and `cause`, added to as further chunks go), in
/// the removing transaction. The stream's filter may have passed over some
/// of them: the count is of every removed event after its cursor.
pub async fn note_stream_gaps_in(
    tx: &mut Tx,
    ids: &[i64],
    cause: &str,
    what: &str,
) -> AppResult<()> {
    let Some(&newest) = ids.iter().max() else {
        return Ok(());
    };
    let sql = tx
        .sql("SELECT id, cursor_id FROM streams WHERE cursor_id < ?")
        .bind(newest);
    let streams: Vec<(i64, i64)> = tx
        .all(&sql)
        .await?
        .iter()
        .map(|r| Ok((r.get(0)?, r.get(1)?)))
        .collect::<AppResult<_>>()?;
    for (stream, cursor) in streams {
        let gone: Vec<i64> = ids.iter().copied().filter(|id| *id > cursor).collect();
        if let (Some(&first), Some(&last)) = (gone.iter().min(), gone.iter().max()) {
            let gap = Gap {
                stream,
                events: gone.len() as i64,
                first,
                last,
            };
            add_gap(tx, &gap, cause, what).await?;
        }
    }
    Ok(())
}

/// [`note_stream_gaps_in`] for a whole table of events about to go (a
/// month's partition that retention drops).
pub async fn note_stream_gaps_of_table_in(
    tx: &mut Tx,
    table: &str,
    cause: &str,
    what: &str,
) -> AppResult<()> {
    let sql = tx.sql(format!(
        "SELECT s.id, COUNT(p.id), MIN(p.id), MAX(p.id) FROM streams s \
         JOIN {table} p ON p.id > s.cursor_id GROUP BY s.id"
    ));
    let gaps: Vec<Gap> = tx
        .all(&sql)
        .await?
        .iter()
        .map(|r| {
            Ok(Gap {
                stream: r.get(0)?,
                events: r.get(1)?,
                first: r.get(2)?,
                last: r.get(3)?,
            })
        })
        .collect::<AppResult<_>>()?;
    for gap in gaps {
        add_gap(tx, &gap, cause, what).await?;
    }
    Ok(())
}

/// Events of one stream removed before delivery.
struct Gap {
    stream: i64,
    events: i64,
    first: i64,
    last: i64,
}

async fn add_gap(tx: &mut Tx, gap: &Gap, cause: &str, what: &str) -> AppResult<()> {
    tx.forget_tail();
    let now = tx.now();
    let sql = tx
        .sql("UPDATE streams SET gaps = gaps + 1 WHERE id = ?")
        .bind(gap.stream);
    tx.execute(&sql).await?;
    let sql = tx
        .sql(
            "UPDATE stream_attempts SET events = events + ?, at = ?, \
             first_id = CASE WHEN first_id < ? THEN first_id ELSE ? END, \
             last_id = CASE WHEN last_id > ? THEN last_id ELSE ? END \
             WHERE stream_id = ? AND outcome = 'gap' AND cause = ?",
        )
        .bind(gap.events)
        .bind(now)
        .bind(gap.first)
        .bind(gap.first)
        .bind(gap.last)
        .bind(gap.last)
        .bind(gap.stream)
        .bind(cause);
    if tx.execute(&sql).await? == 0 {
        let sql = tx
            .sql(
                "INSERT INTO stream_attempts (stream_id, at, outcome, events, first_id, \
                 last_id, error, cause) VALUES (?, ?, 'gap', ?, ?, ?, ?, ?)",
            )
            .bind(gap.stream)
            .bind(now)
            .bind(gap.events)
            .bind(gap.first)
            .bind(gap.last)
            .bind(what)
            .bind(cause);
        tx.execute(&sql).await?;
    }
    Ok(())
}

/// A stream's delivery log, newest first.
pub async fn stream_attempts(db: &Db, stream_id: i64) -> AppResult<Vec<StreamAttempt>> {
    let mut db = db;
    let sql = db
        .sql(
            "SELECT id, at, outcome, events, first_id, last_id, status, error, duration_us \
             FROM stream_attempts WHERE stream_id = ? ORDER BY id DESC LIMIT ?",
        )
        .bind(stream_id)
        .bind(ATTEMPTS_KEPT);
    db.all(&sql)
        .await?
        .iter()
        .map(|r| {
            Ok(StreamAttempt {
                id: r.get(0)?,
                at: r.get(1)?,
                outcome: r.get(2)?,
                events: r.get(3)?,
                first_id: r.get(4)?,
                last_id: r.get(5)?,
                status: r.get(6)?,
                error: r.get(7)?,
                duration_us: r.get(8)?,
            })
        })
        .collect()
}

/// How far behind its cursor is: the events stored after it (counted up to
/// `cap`) and when the oldest of them was stored.
pub async fn stream_lag(db: &Db, cursor_id: i64, cap: u64) -> AppResult<(u64, Option<Micros>)> {
    let mut db = db.read();
    let sql = db
        .sql("SELECT COUNT(*) FROM (SELECT 1 FROM events WHERE id > ? ORDER BY id LIMIT ?) t")
        .bind(cursor_id)
        .bind(cap as i64);
    let behind: i64 = db.scalar(&sql).await?;
    if behind == 0 {
        return Ok((0, None));
    }
    let sql = db
        .sql("SELECT received_at FROM events WHERE id > ? ORDER BY id LIMIT 1")
        .bind(cursor_id);
    Ok((behind as u64, db.scalar_opt(&sql).await?))
}

/// The id of the last event stored before `at` began to be covered: a
/// replay from a time delivers the events after it (those that happened
/// at or after `at`, and any stored later).
pub async fn last_event_before(db: &Db, at: Micros) -> AppResult<i64> {
    let mut db = db.read();
    let sql = db
        .sql("SELECT MIN(id) FROM events WHERE occurred_at >= ?")
        .bind(at);
    let first: Option<i64> = db.scalar(&sql).await?;
    match first {
        Some(id) => Ok(id - 1),
        None => super::max_event_id(db).await,
    }
}

/// Whether an admin may name this stream so: 1 to 100 characters.
pub fn check_stream_name(name: &str) -> AppResult<&str> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AppError::bad_request("name: must be 1 to 100 characters"));
    }
    Ok(name)
}

/// Every stream, oldest first.
pub async fn list_streams(db: &Db) -> AppResult<Vec<StreamRow>> {
    let mut db = db;
    let sql = db.sql(format!("SELECT {STREAM_COLUMNS} FROM streams ORDER BY id"));
    db.all(&sql).await?.iter().map(stream_row).collect()
}

/// How many active streams are failing (the top bar's badge).
pub async fn failing_streams(db: &Db) -> AppResult<i64> {
    let mut db = db;
    let sql = db
        .sql("SELECT COUNT(*) FROM streams WHERE state = 'active' AND failures >= ?")
        .bind(crate::streams::FAILING_AFTER);
    db.scalar(&sql).await
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
/// (`count` of them passed the filter), sent in `attempts`: the cursor
/// moves to `to`, the failures are forgotten and the attempts go in the
/// delivery log, in one transaction. Only while `holder` holds the lease
/// and the cursor is still at `from`; whether it moved.
pub async fn acknowledge_stream(
    db: &Db,
    id: i64,
    holder: &str,
    from: i64,
    to: i64,
    count: i64,
    attempts: &[StreamAttempt],
) -> AppResult<bool> {
    // Delivery's own bookkeeping: no event, no link of the chain.
    let mut tx = db.begin_unlocked().await?;
    let now = tx.now();
    let sql = tx
        .sql(
            "UPDATE streams SET cursor_id = ?, delivered = delivered + ?, failures = 0, \
             next_attempt_at = 0, updated_at = ?, \
             today_delivered = CASE WHEN today_day = ? THEN today_delivered + ? ELSE ? END, \
             today_day = ? \
             WHERE id = ? AND lease_holder = ? AND lease_until > ? AND cursor_id = ?",
        )
        .bind(to)
        .bind(count)
        .bind(now)
        .bind(now.div_euclid(DAY))
        .bind(count)
        .bind(count)
        .bind(now.div_euclid(DAY))
        .bind(id)
        .bind(holder)
        .bind(now)
        .bind(from);
    let moved = tx.execute(&sql).await? == 1;
    if moved {
        record_stream_attempts_in(&mut tx, id, attempts).await?;
    }
    tx.commit().await?;
    Ok(moved)
}

/// An attempt failed: the error (and HTTP status, if one came back) is kept,
/// the failures counted, the next attempt waits until `retry_at`, and the
/// attempt goes in the delivery log, in one transaction. The cursor stays:
/// the events wait in the log. Whether `holder` still held the stream.
pub async fn record_stream_failure(
    db: &Db,
    id: i64,
    holder: &str,
    attempt: &StreamAttempt,
    retry_at: Micros,
) -> AppResult<bool> {
    // Delivery's own bookkeeping: no event, no link of the chain.
    let mut tx = db.begin_unlocked().await?;
    let now = tx.now();
    let sql = tx
        .sql(
            "UPDATE streams SET failures = failures + 1, last_error = ?, last_error_at = ?, \
             last_status = ?, next_attempt_at = ?, updated_at = ? \
             WHERE id = ? AND lease_holder = ?",
        )
        .bind(attempt.error.as_deref())
        .bind(now)
        .bind(attempt.status)
        .bind(retry_at)
        .bind(now)
        .bind(id)
        .bind(holder);
    let held = tx.execute(&sql).await? == 1;
    if held {
        record_stream_attempts_in(&mut tx, id, std::slice::from_ref(attempt)).await?;
    }
    tx.commit().await?;
    Ok(held)
}

/// Pauses or resumes a stream; a paused stream keeps its cursor, and its
/// lease is let go.
pub async fn set_stream_state(db: &Db, id: i64, active: bool) -> AppResult<bool> {
    let mut tx = db.begin().await?;
    let changed = set_stream_state_in(&mut tx, id, active).await?;
    tx.commit().await?;
    Ok(changed)
}
