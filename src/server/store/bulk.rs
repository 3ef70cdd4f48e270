//! Bulk actions in SQL: counting and streaming a selection (chosen ids or
//! every event matching a filter) for export, and deleting one in chunks,
//! each deleted event leaving a tombstone.

use super::events::{Filters, Keyword};
use super::{insert_events_in, Backend, Db, Exec, NewEvent, Sql};
use crate::bulk::Selection;
use crate::errors::{AppError, AppResult};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// Events deleted per transaction: each chunk is short, so ingest and the
/// pages go on between them.
pub const DELETE_CHUNK: usize = 1_000;

/// ` AND …` restricting `events e` to a selection, and to ids up to `up_to`.
fn push_selection(
    b: &mut Sql,
    selection: &Selection,
    up_to: Option<i64>,
    now: i64,
) -> AppResult<()> {
    match selection {
        Selection::Ids(ids) => {
            b.push(" AND ").push_in("e.id", ids);
        }
        Selection::Filter(q) => Filters::new(q, now)?.push(b, Keyword::InSet),
    }
    if let Some(up_to) = up_to {
        b.push(" AND e.id <= ").push_bind(up_to);
    }
    Ok(())
}

/// The highest event id (0 when the log is empty).
pub async fn max_event_id(db: &Db) -> AppResult<i64> {
    let id: Option<i64> = db
        .read()
        .scalar(&db.sql("SELECT MAX(id) FROM events"))
        .await?;
    Ok(id.unwrap_or(0))
}

/// The exact number of events in a selection (up to id `up_to`).
pub async fn count_selection(db: &Db, selection: &Selection, up_to: Option<i64>) -> AppResult<u64> {
    selection.validate()?;
    let mut b = db.sql("SELECT COUNT(*) FROM events e WHERE 1 = 1");
    push_selection(&mut b, selection, up_to, db.now())?;
    let n: i64 = db.read().scalar(&b).await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// One event as an export writes it, borrowed from the batch it came in.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ExportRow<'a> {
    pub id: i64,
    pub occurred_at: i64,
    #[serde(borrow)]
    pub ip: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub initiator_kind: Cow<'a, str>,
    #[serde(borrow)]
    pub initiator_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub initiator_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub initiator_email: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub initiator_role: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub action: Cow<'a, str>,
    #[serde(borrow)]
    pub table_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub primary_key: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub description: Cow<'a, str>,
    /// The stored JSON, as SQLite hands it over (see [`json_text`]).
    #[serde(borrow)]
    pub before: Option<&'a RawValue>,
    #[serde(borrow)]
    pub after: Option<&'a RawValue>,
    #[serde(borrow)]
    pub user_agent: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub request_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub session_id: Option<Cow<'a, str>>,
}

/// The JSON text of a before/after value. SQLite embeds the stored JSON in
/// the batch as JSON; were it ever to arrive as a string holding the text,
/// that text is unquoted.
pub fn json_text(raw: &RawValue) -> Cow<'_, str> {
    let text = raw.get();
    if text.starts_with('"') {
        serde_json::from_str::<Cow<'_, str>>(text).unwrap_or(Cow::Borrowed(text))
    } else {
        Cow::Borrowed(text)
    }
}

/// Where an export sends its rows, one by one.
pub trait RowSink: Send {
    /// Takes one row; an error stops the export.
    fn row(
        &mut self,
        row: ExportRow<'_>,
    ) -> impl std::future::Future<Output = AppResult<()>> + Send;
    /// Takes one Admin Sessions record.
    fn session(
        &mut self,
        row: crate::models::SessionRow,
    ) -> impl std::future::Future<Output = AppResult<()>> + Send;
}

/// Rows an export reads at once: SQLite hands them over as one JSON array
/// (crossing from its worker thread costs per value handed over, not per
/// byte, so a batch is far cheaper than its rows one by one); PostgreSQL's
/// cursor fetches this many at a time.
const EXPORT_BATCH: i64 = 2_000;

/// Streams a selection, newest first, into `sink`: batches of
/// [`EXPORT_BATCH`] rows read by keyset (`(occurred_at, id) < last`), so
/// memory stays flat whatever the size. The next batch is read while this one
/// is written (two cores at work, at most two batches waiting). Only ids up
/// to `up_to` are read: events that arrive during the export are not part of
/// it. Returns how many rows were sent.
pub async fn export_rows(
    db: &Db,
    selection: &Selection,
    up_to: i64,
    limit: Option<u64>,
    sink: &mut impl RowSink,
) -> AppResult<u64> {
    selection.validate()?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<AppResult<String>>(2);
    let reader = tokio::spawn(read_batches(
        db.clone(),
        selection.clone(),
        up_to,
        limit,
        tx,
    ));
    let mut sent = 0u64;
    let outcome = async {
        while let Some(batch) = rx.recv().await {
            let batch = batch?;
            let rows: Vec<ExportRow<'_>> = serde_json::from_str(&batch).map_err(|e| {
                tracing::error!(error = %e, "export batch is not the JSON expected");
                AppError::Internal
            })?;
            // Newest first, whatever order the aggregate kept.
            let mut rows = rows;
            rows.sort_unstable_by_key(|r| std::cmp::Reverse((r.occurred_at, r.id)));
            for row in rows {
                sink.row(row).await?;
                sent += 1;
            }
        }
        Ok(())
    }
    .await;
    // Stopping early (cancelled, client gone) stops the reader too.
    drop(rx);
    reader.abort();
    outcome.map(|()| sent)
}

/// The reading half of [`export_rows`]: one JSON array per batch.
async fn read_batches(
    db: Db,
    selection: Selection,
    up_to: i64,
    limit: Option<u64>,
    tx: tokio::sync::mpsc::Sender<AppResult<String>>,
) {
    if db.backend() == Backend::Postgres {
        if let Err(e) = read_cursor(&db, &selection, up_to, limit, &tx).await {
            let _ = tx.send(Err(e)).await;
        }
        return;
    }
    let now = db.now();
    let mut read = 0u64;
    let mut last: Option<(i64, i64)> = None;
    loop {
        let want = match limit {
            Some(limit) if read >= limit => break,
            Some(limit) => EXPORT_BATCH.min(i64::try_from(limit - read).unwrap_or(EXPORT_BATCH)),
            None => EXPORT_BATCH,
        };
        let mut b = db.sql(
            "SELECT json_group_array(json_array(e.id, e.occurred_at, e.ip, e.initiator_kind, \
             e.initiator_id, e.initiator_name, e.initiator_email, e.initiator_role, e.action, \
             e.table_name, e.primary_key, e.description, e.before_data, e.after_data, \
             e.user_agent, e.request_id, e.session_id)), COUNT(*), \
             MIN(printf('%020d %020d', e.occurred_at + 100000000000000000, e.id)) \
             FROM (SELECT * FROM events e WHERE 1 = 1",
        );
        if let Err(e) = push_selection(&mut b, &selection, Some(up_to), now) {
            let _ = tx.send(Err(e)).await;
            return;
        }
        if let Some((at, id)) = last {
            b.push(" AND (e.occurred_at, e.id) < (")
                .push_bind(at)
                .push(", ")
                .push_bind(id)
                .push(")");
        }
        b.push(" ORDER BY e.occurred_at DESC, e.id DESC LIMIT ")
            .push_bind(want)
            .push(") e");
        let row = match db.read().one(&b).await {
            Ok(row) => row,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        let parsed: AppResult<(String, i64, Option<String>)> =
            // sqlx guesses the key's type from the expression; it is text.
            (|| Ok((row.get(0)?, row.get(1)?, row.get_unchecked(2)?)))();
        let (batch, n, oldest) = match parsed {
            Ok(v) => v,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        if n == 0 {
            break;
        }
        // Where the next batch starts: the oldest row of this one.
        last = oldest.as_deref().and_then(last_key);
        read += u64::try_from(n).unwrap_or(0);
        if tx.send(Ok(batch)).await.is_err() || n < want || last.is_none() {
            break;
        }
    }
}

/// PostgreSQL's reading half: one server-side cursor, in one `REPEATABLE
/// READ` snapshot, fetched [`EXPORT_BATCH`] rows at a time, each row already
/// the JSON array the writer reads. The query is planned once and walks the
/// time index once, however large the export; the snapshot keeps what the
/// export sees fixed while it streams. (Its open transaction holds back a
/// partition drop: retention then deletes that month row by row.)
async fn read_cursor(
    db: &Db,
    selection: &Selection,
    up_to: i64,
    limit: Option<u64>,
    tx: &tokio::sync::mpsc::Sender<AppResult<String>>,
) -> AppResult<()> {
    let mut snapshot = db.begin_snapshot().await?;
    // The JSON columns go in as JSON (text would be quoted).
    let mut declare = snapshot.sql(
        "DECLARE export_rows NO SCROLL CURSOR FOR \
         SELECT json_build_array(e.id, e.occurred_at, e.ip, e.initiator_kind, \
         e.initiator_id, e.initiator_name, e.initiator_email, e.initiator_role, e.action, \
         e.table_name, e.primary_key, e.description, e.before_data::json, e.after_data::json, \
         e.user_agent, e.request_id, e.session_id)::text FROM events e WHERE 1 = 1",
    );
    push_selection(&mut declare, selection, Some(up_to), db.now())?;
    declare.push(" ORDER BY e.occurred_at DESC, e.id DESC");
    if let Some(limit) = limit {
        declare
            .push(" LIMIT ")
            .push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
    }
    snapshot.execute(&declare).await?;
    let fetch = snapshot.sql(format!("FETCH {EXPORT_BATCH} FROM export_rows"));
    loop {
        let rows: Vec<String> = snapshot.column(&fetch).await?;
        let last = rows.len() < usize::try_from(EXPORT_BATCH).unwrap_or(usize::MAX);
        if !rows.is_empty() && tx.send(Ok(format!("[{}]", rows.join(",")))).await.is_err() {
            break;
        }
        if last {
            break;
        }
    }
    snapshot.rollback().await
}

/// `(occurred_at, id)` from the batch's smallest sort key (`%020d %020d`
/// of the time, offset to stay positive, and the id: text that sorts as the
/// pair does).
fn last_key(key: &str) -> Option<(i64, i64)> {
    let (at, id) = key.split_once(' ')?;
    Some((
        at.parse::<i64>().ok()? - 100_000_000_000_000_000,
        id.parse().ok()?,
    ))
}

/// Deletes a selection (up to id `up_to`) in chunks of [`DELETE_CHUNK`], each
/// its own short transaction; every deleted event leaves a tombstone. The
/// event recording the deletion (`record`) is written in the transaction of
/// the first chunk, so a deletion is never without its record. `expected` is
/// the count the user confirmed: when the selection no longer holds exactly
/// that many events, nothing is deleted and the answer says how many it holds.
/// No transaction lasts longer than one chunk's work.
/// Returns the number deleted and the id of the deletion event.
pub async fn delete_selection(
    db: &Db,
    selection: &Selection,
    up_to: i64,
    expected: u64,
    mut record: NewEvent,
) -> AppResult<(u64, i64)> {
    selection.validate()?;
    let now = db.now();
    // Counted before any write (a count of a million rows takes seconds, and
    // must not hold the write lock): events that arrive later have higher ids
    // than `up_to`, so only another deletion could change the answer.
    let mut b = db.sql("SELECT COUNT(*), MIN(e.id) FROM events e WHERE 1 = 1");
    push_selection(&mut b, selection, Some(up_to), now)?;
    let row = db.read().one(&b).await?;
    let (n, first): (i64, Option<i64>) = (row.get(0)?, row.get(1)?);
    let n = u64::try_from(n).unwrap_or(0);
    if n != expected {
        return Err(AppError::Conflict(format!(
            "the selection now holds {n} events, not the {expected} confirmed; nothing was deleted — review it and confirm again"
        )));
    }
    let mut deleted = 0u64;
    let mut event_id = None;
    // Chunks walk the ids upwards from the first match, each starting where
    // the last one ended (a walk from id 1 would read every older event).
    let mut after = first.unwrap_or(1) - 1;
    loop {
        let mut tx = super::begin(db).await?;
        // A legal hold switched on meanwhile stops the deletion here.
        super::refuse_under_hold(&mut tx).await?;
        let mut b = tx.sql("SELECT e.id FROM events e WHERE e.id > ");
        b.push_bind(after);
        push_selection(&mut b, selection, Some(up_to), now)?;
        b.push(" ORDER BY e.id LIMIT ")
            .push_bind(DELETE_CHUNK as i64);
        let ids: Vec<i64> = tx.column(&b).await?;
        let first = event_id.is_none();
        if first {
            record.after = Some(
                serde_json::json!({
                    "count": expected,
                    "selection": selection.describe(),
                    "up_to_id": up_to,
                })
                .to_string(),
            );
            let id = insert_events_in(&mut tx, std::slice::from_ref(&record), None).await?;
            event_id = id.first().copied();
        }
        let Some(deletion_id) = event_id else {
            return Err(AppError::Internal);
        };
        if ids.is_empty() {
            tx.commit().await?;
            break;
        }
        after = ids.last().copied().unwrap_or(after);
        let mut keep = tx
            .sql(
                "INSERT INTO event_tombstones (id, occurred_at, deleted_at, deletion_event_id, content_hash, chain_hash) \
                 SELECT id, occurred_at, ?, ?, content_hash, chain_hash FROM events WHERE ",
            )
            .bind(now)
            .bind(deletion_id);
        keep.push_in("id", &ids);
        tx.execute(&keep).await?;
        super::volume::subtract_removed(&mut tx, |s| {
            s.push("events WHERE ").push_in("id", &ids);
        })
        .await?;
        super::note_stream_gaps_in(
            &mut tx,
            &ids,
            &format!("event:{deletion_id}"),
            &format!("deleted before delivery (DELETE event {deletion_id})"),
        )
        .await?;
        let mut delete = tx.sql("DELETE FROM events WHERE ");
        delete.push_in("id", &ids);
        let gone = tx.execute(&delete).await?;
        tx.commit().await?;
        deleted += gone;
        if ids.len() < DELETE_CHUNK {
            break;
        }
        // Let waiting writers (ingest, recording) in between chunks.
        tokio::task::yield_now().await;
    }
    Ok((deleted, event_id.unwrap_or(0)))
}

/// A tombstone: (id, occurred_at, deletion_event_id).
pub async fn tombstone(db: &Db, id: i64) -> AppResult<Option<(i64, i64, i64)>> {
    let sql = db
        .sql("SELECT id, occurred_at, deletion_event_id FROM event_tombstones WHERE id = ?")
        .bind(id);
    db.read()
        .optional(&sql)
        .await?
        .map(|r| -> AppResult<_> { Ok((r.get(0)?, r.get(1)?, r.get(2)?)) })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::last_key;

    #[test]
    fn the_oldest_key_reads_back() {
        assert_eq!(
            last_key("00101761566400000000 00000000000000000007"),
            Some((1_761_566_400_000_000, 7))
        );
        assert_eq!(
            last_key("00099999999999999000 00000000000000000003"),
            Some((-1_000, 3))
        );
        assert_eq!(last_key("x"), None);
    }
}
