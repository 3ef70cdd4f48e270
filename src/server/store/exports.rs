//! Export tickets: made by one request, downloaded by another (which may
//! reach another server), so the ticket, its progress and its cancellation
//! are rows, not one server's memory.

use super::{Db, DbRow, Exec};
use crate::bulk::{ExportFormat, ExportSource, ExportStatus};
use crate::errors::{AppError, AppResult};

/// What a download needs of its ticket.
#[derive(Debug, Clone)]
pub struct ExportJob {
    pub source: ExportSource,
    pub format: ExportFormat,
    pub total: u64,
    pub up_to: i64,
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> AppResult<T> {
    serde_json::from_str(text).map_err(|e| {
        tracing::error!(error = %e, "a stored export ticket does not parse");
        AppError::Internal
    })
}

/// Stores a new ticket, and forgets tickets made before `forget_before`
/// that were never downloaded or have finished.
pub async fn insert_export(
    db: &Db,
    token: &str,
    owner: i64,
    job: &ExportJob,
    forget_before: i64,
) -> AppResult<()> {
    let sql = db
        .sql(
            "DELETE FROM export_jobs WHERE created_at < ? \
             AND (NOT started OR done OR cancelled OR failed)",
        )
        .bind(forget_before);
    db.read().execute(&sql).await?;
    let sql = db
        .sql(
            "INSERT INTO export_jobs (token, owner, source, format, total, up_to, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(token)
        .bind(owner)
        .bind(json(&job.source))
        .bind(json(&job.format))
        .bind(i64::try_from(job.total).unwrap_or(i64::MAX))
        .bind(job.up_to)
        .bind(db.now());
    db.read().execute(&sql).await?;
    Ok(())
}

fn status_of(r: &DbRow) -> AppResult<ExportStatus> {
    Ok(ExportStatus {
        rows: u64::try_from(r.get::<i64>("rows_sent")?).unwrap_or(0),
        total: u64::try_from(r.get::<i64>("total")?).unwrap_or(0),
        started: r.get("started")?,
        done: r.get("done")?,
        cancelled: r.get("cancelled")?,
        failed: r.get("failed")?,
    })
}

const STATUS: &str = "rows_sent, total, started, done, cancelled, failed";

/// The owner's export, as it stands.
pub async fn export_status(db: &Db, token: &str, owner: i64) -> AppResult<ExportStatus> {
    let sql = db
        .sql(format!(
            "SELECT {STATUS} FROM export_jobs WHERE token = ? AND owner = ?"
        ))
        .bind(token)
        .bind(owner);
    let row = db.read().optional(&sql).await?;
    status_of(&row.ok_or_else(|| AppError::NotFound("export".into()))?)
}

/// Marks the owner's unfinished export cancelled (the server streaming it
/// sees the mark at its next progress write).
pub async fn cancel_export(db: &Db, token: &str, owner: i64) -> AppResult<ExportStatus> {
    let sql = db
        .sql(
            "UPDATE export_jobs SET cancelled = TRUE WHERE token = ? AND owner = ? \
             AND NOT done AND NOT failed",
        )
        .bind(token)
        .bind(owner);
    db.read().execute(&sql).await?;
    export_status(db, token, owner).await
}

/// Marks the owner's export started and returns it: once only (the
/// update is the test, so two servers cannot both start it), and only
/// while the ticket is fresh (made after `fresh_after`) and not cancelled.
pub async fn start_export(
    db: &Db,
    token: &str,
    owner: i64,
    fresh_after: i64,
) -> AppResult<ExportJob> {
    let sql = db
        .sql(
            "UPDATE export_jobs SET started = TRUE WHERE token = ? AND owner = ? \
             AND created_at >= ? AND NOT started AND NOT cancelled \
             RETURNING source, format, total, up_to",
        )
        .bind(token)
        .bind(owner)
        .bind(fresh_after);
    if let Some(r) = db.read().optional(&sql).await? {
        return Ok(ExportJob {
            source: parse(&r.get::<String>(0)?)?,
            format: parse(&r.get::<String>(1)?)?,
            total: u64::try_from(r.get::<i64>(2)?).unwrap_or(0),
            up_to: r.get(3)?,
        });
    }
    let sql = db
        .sql("SELECT started, cancelled FROM export_jobs WHERE token = ? AND owner = ? AND created_at >= ?")
        .bind(token)
        .bind(owner)
        .bind(fresh_after);
    match db.read().optional(&sql).await? {
        Some(r) if r.get::<bool>(0)? => Err(AppError::Conflict(
            "this export was already downloaded; start a new one".into(),
        )),
        Some(_) => Err(AppError::Conflict("this export was cancelled".into())),
        None => Err(AppError::NotFound("export".into())),
    }
}

/// How a streaming export ended, or `None` while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportEnd {
    Done,
    Failed,
    Cancelled,
}

/// Writes a running export's progress (and its end); returns whether it
/// has been cancelled meanwhile (from any server).
pub async fn write_export_progress(
    db: &Db,
    token: &str,
    rows: u64,
    end: Option<ExportEnd>,
) -> AppResult<bool> {
    let sql = db
        .sql(
            "UPDATE export_jobs SET rows_sent = ?, done = done OR ?, failed = failed OR ?, \
             cancelled = cancelled OR ? WHERE token = ? RETURNING cancelled",
        )
        .bind(i64::try_from(rows).unwrap_or(i64::MAX))
        .bind(end == Some(ExportEnd::Done))
        .bind(end == Some(ExportEnd::Failed))
        .bind(end == Some(ExportEnd::Cancelled))
        .bind(token);
    Ok(db.read().scalar_opt::<bool>(&sql).await?.unwrap_or(false))
}
