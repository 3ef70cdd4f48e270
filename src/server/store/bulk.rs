//! Bulk actions in SQL: counting and streaming a selection (chosen ids or
//! every event matching a filter) for export, and deleting one in chunks,
//! each deleted event leaving a tombstone.

use super::events::{Filters, Keyword};
use super::{insert_events_in, now_micros, Db, NewEvent};
use crate::bulk::Selection;
use crate::errors::{AppError, AppResult};
use futures_util::TryStreamExt;
use sqlx::{QueryBuilder, Row, Sqlite};

/// Events deleted per transaction: each chunk is short, so ingest and the
/// pages go on between them.
pub const DELETE_CHUNK: usize = 1_000;

/// ` AND …` restricting `events e` to a selection, and to ids up to `up_to`.
fn push_selection(
    b: &mut QueryBuilder<'_, Sqlite>,
    selection: &Selection,
    up_to: Option<i64>,
    now: i64,
) -> AppResult<()> {
    match selection {
        Selection::Ids(ids) => {
            b.push(" AND e.id IN (SELECT value FROM json_each(")
                .push_bind(serde_json::to_string(ids).unwrap_or_default())
                .push("))");
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
    let id: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM events")
        .fetch_one(&db.read)
        .await?;
    Ok(id.unwrap_or(0))
}

/// The exact number of events in a selection (up to id `up_to`).
pub async fn count_selection(db: &Db, selection: &Selection, up_to: Option<i64>) -> AppResult<u64> {
    selection.validate()?;
    let mut b = QueryBuilder::new("SELECT COUNT(*) FROM events e WHERE 1 = 1");
    push_selection(&mut b, selection, up_to, now_micros())?;
    let n: i64 = b.build_query_scalar().fetch_one(&db.read).await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// One event as an export writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRow {
    pub id: i64,
    pub occurred_at: i64,
    pub ip: Option<String>,
    pub initiator_kind: String,
    pub initiator_id: Option<String>,
    pub initiator_name: Option<String>,
    pub initiator_email: Option<String>,
    pub initiator_role: Option<String>,
    pub action: String,
    pub table_name: Option<String>,
    pub primary_key: Option<String>,
    pub description: String,
    /// JSON text.
    pub before: Option<String>,
    /// JSON text.
    pub after: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub session_id: Option<String>,
}

/// Where an export sends its rows, one by one.
pub trait RowSink: Send {
    /// Takes one row; an error stops the export.
    fn row(&mut self, row: ExportRow) -> impl std::future::Future<Output = AppResult<()>> + Send;
}

/// Streams a selection, newest first, into `sink`, reading one row at a
/// time (memory stays flat whatever the size). The rows are those of one
/// read snapshot, up to id `up_to`. Returns how many were sent.
pub async fn export_rows(
    db: &Db,
    selection: &Selection,
    up_to: i64,
    limit: Option<u64>,
    sink: &mut impl RowSink,
) -> AppResult<u64> {
    selection.validate()?;
    let mut b = QueryBuilder::new(
        "SELECT e.id, e.occurred_at, e.ip, e.initiator_kind, e.initiator_id, e.initiator_name, \
         e.initiator_email, e.initiator_role, e.action, e.table_name, e.primary_key, \
         e.description, e.before_data, e.after_data, e.user_agent, e.request_id, e.session_id \
         FROM events e WHERE 1 = 1",
    );
    push_selection(&mut b, selection, Some(up_to), now_micros())?;
    b.push(" ORDER BY e.occurred_at DESC, e.id DESC");
    if let Some(limit) = limit {
        b.push(" LIMIT ")
            .push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
    }
    let mut rows = b.build().fetch(&db.read);
    let mut sent = 0;
    while let Some(r) = rows.try_next().await? {
        sink.row(ExportRow {
            id: r.try_get(0)?,
            occurred_at: r.try_get(1)?,
            ip: r.try_get(2)?,
            initiator_kind: r.try_get(3)?,
            initiator_id: r.try_get(4)?,
            initiator_name: r.try_get(5)?,
            initiator_email: r.try_get(6)?,
            initiator_role: r.try_get(7)?,
            action: r.try_get(8)?,
            table_name: r.try_get(9)?,
            primary_key: r.try_get(10)?,
            description: r.try_get(11)?,
            before: r.try_get(12)?,
            after: r.try_get(13)?,
            user_agent: r.try_get(14)?,
            request_id: r.try_get(15)?,
            session_id: r.try_get(16)?,
        })
        .await?;
        sent += 1;
    }
    Ok(sent)
}

/// Deletes a selection (up to id `up_to`) in chunks of [`DELETE_CHUNK`], each
/// its own short transaction; every deleted event leaves a tombstone. The
/// event recording the deletion (`record`) is written in the transaction of
/// the first chunk, so a deletion is never without its record. `expected` is
/// the count the user confirmed: when the selection no longer holds exactly
/// that many events, nothing is deleted and the answer says how many it holds.
/// Returns the number deleted and the id of the deletion event.
pub async fn delete_selection(
    db: &Db,
    selection: &Selection,
    up_to: i64,
    expected: u64,
    mut record: NewEvent,
) -> AppResult<(u64, i64)> {
    selection.validate()?;
    let now = now_micros();
    let mut deleted = 0u64;
    let mut event_id = None;
    // Chunks walk the ids upwards, each starting where the last one ended.
    let mut after = 0i64;
    loop {
        let mut tx = super::begin(db).await?;
        if event_id.is_none() {
            // Counted inside the first transaction: what is confirmed is what goes.
            let mut b = QueryBuilder::new("SELECT COUNT(*) FROM events e WHERE 1 = 1");
            push_selection(&mut b, selection, Some(up_to), now)?;
            let n: i64 = b.build_query_scalar().fetch_one(&mut *tx).await?;
            let n = u64::try_from(n).unwrap_or(0);
            if n != expected {
                return Err(AppError::Conflict(format!(
                    "the selection now holds {n} events, not the {expected} confirmed; nothing was deleted — review it and confirm again"
                )));
            }
        }
        let mut b = QueryBuilder::new("SELECT e.id FROM events e WHERE e.id > ");
        b.push_bind(after);
        push_selection(&mut b, selection, Some(up_to), now)?;
        b.push(" ORDER BY e.id LIMIT ")
            .push_bind(DELETE_CHUNK as i64);
        let ids: Vec<i64> = b.build_query_scalar().fetch_all(&mut *tx).await?;
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
        let list = serde_json::to_string(&ids).unwrap_or_default();
        sqlx::query(
            "INSERT INTO event_tombstones (id, occurred_at, deleted_at, deletion_event_id) \
             SELECT id, occurred_at, ?, ? FROM events WHERE id IN (SELECT value FROM json_each(?))",
        )
        .bind(now)
        .bind(deletion_id)
        .bind(&list)
        .execute(&mut *tx)
        .await?;
        let gone = sqlx::query("DELETE FROM events WHERE id IN (SELECT value FROM json_each(?))")
            .bind(&list)
            .execute(&mut *tx)
            .await?
            .rows_affected();
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
    let row =
        sqlx::query("SELECT id, occurred_at, deletion_event_id FROM event_tombstones WHERE id = ?")
            .bind(id)
            .fetch_optional(&db.read)
            .await?;
    row.map(|r| -> AppResult<_> { Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)) })
        .transpose()
}
