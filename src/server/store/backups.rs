//! Backups' SQL: SQLite's online copy (`VACUUM INTO`), a copy opened on its
//! own for verification, PostgreSQL's scratch databases, and the record of
//! each backup.

use super::{insert_events_in, Db, Exec, NewEvent, Pools};
use crate::errors::{AppError, AppResult};
use crate::integrity::BackupRow;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use std::path::Path;

/// Copies the SQLite database as it stands into `to` (a file that is
/// missing or empty): one read snapshot, taken on a reader connection, so
/// the writer goes on storing events beside it. The copy is compact (no
/// free pages), with no index or data page shared with the original.
pub async fn sqlite_copy_into(db: &Db, to: &Path) -> AppResult<()> {
    let Pools::Sqlite { read, .. } = db.pools() else {
        return Err(AppError::bad_request("the database is not SQLite"));
    };
    let to = to
        .to_str()
        .ok_or_else(|| AppError::bad_request("the backup's path is not UTF-8"))?;
    sqlx::query("VACUUM INTO ?").bind(to).execute(read).await?;
    Ok(())
}

/// Opens a SQLite file on its own (a backup, or a file to restore), without
/// migrating it. `writable`: it may be switched to a rollback journal so
/// that it stands alone as one file; otherwise it is opened read-only.
pub async fn open_sqlite_copy(path: &Path, writable: bool) -> AppResult<Db> {
    let mut options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .foreign_keys(true)
        .pragma("cache_size", "-65536");
    options = if writable {
        options.journal_mode(SqliteJournalMode::Delete)
    } else {
        options.read_only(true)
    };
    let read = SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(options.clone())
        .await?;
    let write = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await?;
    Ok(Db::new(Pools::Sqlite { read, write }))
}

/// SQLite's structural check of a file (`PRAGMA quick_check`): the problems
/// it found, none when the file is sound.
pub async fn sqlite_quick_check(db: &Db) -> AppResult<Vec<String>> {
    let rows = db.read().all(&db.sql("PRAGMA quick_check")).await?;
    let mut problems = Vec::new();
    for row in rows {
        let line: String = row.get_unchecked(0)?;
        if line != "ok" {
            problems.push(line);
        }
    }
    Ok(problems)
}

/// Whether the log holds any event.
pub async fn any_events(db: &Db) -> AppResult<bool> {
    let found: Option<i64> = db
        .read()
        .scalar_opt(&db.sql("SELECT id FROM events LIMIT 1"))
        .await?;
    Ok(found.is_some())
}

/// Creates an empty PostgreSQL database `name` on the server `db` is on.
pub async fn create_database(db: &Db, name: &str) -> AppResult<()> {
    db.read()
        .execute(&db.sql(format!("CREATE DATABASE {}", quote_ident(name))))
        .await?;
    Ok(())
}

/// Drops PostgreSQL database `name`, closing whatever is connected to it.
pub async fn drop_database(db: &Db, name: &str) -> AppResult<()> {
    db.read()
        .execute(&db.sql(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(name)
        )))
        .await?;
    Ok(())
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Records a backup (its `id` is given by the database) and its BACKUP
/// event, in one transaction.
pub async fn record_backup(db: &Db, backup: &BackupRow, event: &NewEvent) -> AppResult<i64> {
    let mut tx = super::begin(db).await?;
    let event_id = insert_events_in(&mut tx, std::slice::from_ref(event), None)
        .await?
        .first()
        .copied();
    let sql = tx
        .sql(
            "INSERT INTO backups (started_at, finished_at, kind, status, path, head_id, \
             chain_hash, bytes, error, event_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(backup.started_at)
        .bind(backup.finished_at)
        .bind(backup.kind.clone())
        .bind(backup.status.clone())
        .bind(backup.path.clone())
        .bind(backup.head_id)
        .bind(backup.chain_hash.clone())
        .bind(backup.bytes)
        .bind(backup.error.clone())
        .bind(event_id);
    let id: i64 = tx.scalar(&sql).await?;
    tx.commit().await?;
    Ok(id)
}

const BACKUP_COLUMNS: &str =
    "id, started_at, finished_at, kind, status, path, head_id, chain_hash, bytes, error";

fn backup_row(r: &super::DbRow) -> AppResult<BackupRow> {
    Ok(BackupRow {
        id: r.get(0)?,
        started_at: r.get(1)?,
        finished_at: r.get(2)?,
        kind: r.get(3)?,
        status: r.get(4)?,
        path: r.get(5)?,
        head_id: r.get(6)?,
        chain_hash: r.get(7)?,
        bytes: r.get(8)?,
        error: r.get(9)?,
    })
}

/// The newest backups, newest first; only those of `kind` when given.
pub async fn recent_backups(db: &Db, kind: Option<&str>, limit: u32) -> AppResult<Vec<BackupRow>> {
    let mut sql = db.sql(format!("SELECT {BACKUP_COLUMNS} FROM backups"));
    if let Some(kind) = kind {
        sql.push(" WHERE kind = ").push_bind(kind.to_string());
    }
    sql.push(" ORDER BY id DESC LIMIT ")
        .push_bind(i64::from(limit));
    db.read().all(&sql).await?.iter().map(backup_row).collect()
}
