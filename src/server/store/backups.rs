//! Backups' SQL: SQLite's online copy (`VACUUM INTO`), a copy opened on its
//! own for verification, PostgreSQL's scratch databases, and the record of
//! each backup.

use super::{insert_events_in, Db, Exec, NewEvent, Pools};
use crate::errors::{AppError, AppResult};
use crate::integrity::BackupRow;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use std::path::Path;

/// Copies the SQLite database as it stands into `to` (a file that is
/// missing or empty), page by page with SQLite's online backup API, from
/// one read snapshot on a connection of its own (on a blocking thread): the
/// writer goes on storing events beside it. Meanwhile the write-ahead log
/// cannot be checkpointed past that snapshot, so it grows by what is
/// written; a page copy keeps that window short (about 3× shorter than
/// `VACUUM INTO`, which rebuilds every index).
pub async fn sqlite_copy_into(db: &Db, to: &Path) -> AppResult<()> {
    let Pools::Sqlite { read, .. } = db.pools() else {
        return Err(AppError::bad_request("the database is not SQLite"));
    };
    let from = read.connect_options().get_filename().to_path_buf();
    let to = to.to_path_buf();
    tokio::task::spawn_blocking(move || copy_pages(&from, &to))
        .await
        .map_err(|_| AppError::Internal)?
        .map_err(|error| {
            tracing::error!(%error, "SQLite's backup of the database failed");
            AppError::Internal
        })
}

/// A connection opened with the C API, closed when dropped.
struct RawConn(*mut libsqlite3_sys::sqlite3);

impl Drop for RawConn {
    fn drop(&mut self) {
        // SAFETY: the handle came from sqlite3_open_v2 (possibly null, which
        // close accepts) and is closed exactly once.
        unsafe {
            libsqlite3_sys::sqlite3_close(self.0);
        }
    }
}

impl RawConn {
    fn open(path: &Path, flags: std::ffi::c_int) -> Result<Self, String> {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::CString::new(path.as_os_str().as_bytes())
            .map_err(|_| format!("{} holds a NUL byte", path.display()))?;
        let mut handle = std::ptr::null_mut();
        // SAFETY: a valid C string and an out-pointer; the handle is owned
        // by the RawConn from here on, whatever the result.
        let rc = unsafe {
            libsqlite3_sys::sqlite3_open_v2(name.as_ptr(), &mut handle, flags, std::ptr::null())
        };
        let conn = RawConn(handle);
        if rc != libsqlite3_sys::SQLITE_OK {
            return Err(format!("cannot open {}: {}", path.display(), conn.error()));
        }
        // SAFETY: an open handle.
        unsafe {
            libsqlite3_sys::sqlite3_busy_timeout(conn.0, 10_000);
        }
        Ok(conn)
    }

    fn error(&self) -> String {
        if self.0.is_null() {
            return "out of memory".into();
        }
        // SAFETY: an open handle; the message is copied before the next call.
        unsafe {
            std::ffi::CStr::from_ptr(libsqlite3_sys::sqlite3_errmsg(self.0))
                .to_string_lossy()
                .into_owned()
        }
    }
}

fn copy_pages(from: &Path, to: &Path) -> Result<(), String> {
    use libsqlite3_sys as ffi;
    let source = RawConn::open(from, ffi::SQLITE_OPEN_READWRITE)?;
    let dest = RawConn::open(to, ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE)?;
    // SAFETY: two open handles, used by this thread only; the backup object
    // is finished before they are dropped.
    unsafe {
        let backup = ffi::sqlite3_backup_init(dest.0, c"main".as_ptr(), source.0, c"main".as_ptr());
        if backup.is_null() {
            return Err(dest.error());
        }
        let mut tries = 0;
        let mut rc = ffi::sqlite3_backup_step(backup, -1);
        while (rc == ffi::SQLITE_BUSY || rc == ffi::SQLITE_LOCKED) && tries < 100 {
            tries += 1;
            std::thread::sleep(std::time::Duration::from_millis(100));
            rc = ffi::sqlite3_backup_step(backup, -1);
        }
        let finished = ffi::sqlite3_backup_finish(backup);
        if rc != ffi::SQLITE_DONE || finished != ffi::SQLITE_OK {
            return Err(format!(
                "backup step {rc}, finish {finished}: {}",
                dest.error()
            ));
        }
    }
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
