//! All SQL of Auditdeck, as plain async functions over [`Db`].
//!
//! SQLite is written through a pool of exactly one connection (the single
//! writer: batches commit in order, with no busy-retry between our own
//! writers) and read through a separate pool of several connections (WAL lets
//! readers run beside the writer).

use crate::errors::{AppError, AppResult};
use crate::models::{EventPage, EventQuery, EventRow, Initiator, InitiatorKind};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Clone, Debug)]
pub struct Db {
    read: SqlitePool,
    write: SqlitePool,
}

/// Opens (creating when missing) the database at `url` and runs the migrations.
pub async fn open(url: &str) -> AppResult<Db> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| AppError::bad_request(format!("database-url: {e}")))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10))
        .pragma("temp_store", "memory")
        .pragma("cache_size", "-65536");
    if let Some(parent) = options.get_filename().parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent).map_err(|e| {
                tracing::error!(error = %e, dir = %parent.display(), "cannot create database folder");
                AppError::Internal
            })?;
        }
    }
    let write = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone())
        .await?;
    MIGRATOR.run(&write).await?;
    let read = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await?;
    Ok(Db { read, write })
}

impl Db {
    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }
}

/// Microseconds since the epoch, now.
pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// An event ready to be stored (validated by the ingest layer or made by us).
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub occurred_at: i64,
    pub ip: Option<IpAddr>,
    pub initiator: Initiator,
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

/// 16 bytes, IPv4 mapped into IPv6, so that a CIDR range is a byte range.
pub fn ip_key(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// Rows per multi-row INSERT (18 parameters each, well under SQLite's limit).
const INSERT_CHUNK: usize = 200;

/// Stores a batch of events in one transaction and returns their ids, in order.
/// `api_key_id` names the key that delivered them; its last-used time is
/// updated in the same transaction.
pub async fn insert_events(
    db: &Db,
    events: &[NewEvent],
    api_key_id: Option<i64>,
) -> AppResult<Vec<i64>> {
    let received_at = now_micros();
    let mut tx = db.write.begin().await?;
    let mut ids = Vec::with_capacity(events.len());
    for chunk in events.chunks(INSERT_CHUNK) {
        let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO events (occurred_at, received_at, ip, ip_bin, initiator_kind, initiator_id, \
             initiator_name, initiator_email, action, table_name, primary_key, description, \
             before_data, after_data, user_agent, request_id, session_id, api_key_id) ",
        );
        insert.push_values(chunk, |mut row, event| {
            row.push_bind(event.occurred_at)
                .push_bind(received_at)
                .push_bind(event.ip.map(|ip| ip.to_string()))
                .push_bind(event.ip.map(|ip| ip_key(ip).to_vec()))
                .push_bind(event.initiator.kind.as_str())
                .push_bind(event.initiator.id.clone())
                .push_bind(event.initiator.name.clone())
                .push_bind(event.initiator.email.clone())
                .push_bind(event.action.clone())
                .push_bind(event.table_name.clone())
                .push_bind(event.primary_key.clone())
                .push_bind(event.description.clone())
                .push_bind(event.before.clone())
                .push_bind(event.after.clone())
                .push_bind(event.user_agent.clone())
                .push_bind(event.request_id.clone())
                .push_bind(event.session_id.clone())
                .push_bind(api_key_id);
        });
        insert.push(" RETURNING id");
        let mut chunk_ids: Vec<i64> = insert.build_query_scalar().fetch_all(&mut *tx).await?;
        // The single writer assigns ids in VALUES order; RETURNING's row
        // order is unspecified, so sort rather than rely on it.
        chunk_ids.sort_unstable();
        if chunk_ids.len() != chunk.len() {
            tracing::error!(
                expected = chunk.len(),
                got = chunk_ids.len(),
                "insert returned a wrong number of ids"
            );
            return Err(AppError::Internal);
        }
        ids.extend(chunk_ids);
    }
    if let Some(key_id) = api_key_id {
        sqlx::query("UPDATE api_keys SET last_used_at = ? WHERE id = ?")
            .bind(received_at)
            .bind(key_id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(ids)
}

/// One page of events, newest first.
pub async fn list_events(db: &Db, query: &EventQuery) -> AppResult<EventPage> {
    query.validate()?;
    let rows = sqlx::query(
        "SELECT id, occurred_at, ip, initiator_kind, initiator_id, initiator_name, initiator_email, \
         action, table_name, primary_key, description, \
         (before_data IS NOT NULL OR after_data IS NOT NULL) AS has_changes \
         FROM events ORDER BY occurred_at DESC, id DESC LIMIT ? OFFSET ?",
    )
    .bind(i64::from(query.per_page))
    .bind(i64::try_from(query.offset()).unwrap_or(i64::MAX))
    .fetch_all(&db.read)
    .await?;
    let rows = rows
        .into_iter()
        .map(|row| -> AppResult<EventRow> {
            let kind: String = row.try_get("initiator_kind")?;
            Ok(EventRow {
                id: row.try_get("id")?,
                occurred_at: row.try_get("occurred_at")?,
                ip: row.try_get("ip")?,
                initiator: Initiator {
                    kind: InitiatorKind::parse(&kind).ok_or_else(|| {
                        tracing::error!(kind, "unknown initiator kind in the database");
                        AppError::Internal
                    })?,
                    id: row.try_get("initiator_id")?,
                    name: row.try_get("initiator_name")?,
                    email: row.try_get("initiator_email")?,
                },
                action: row.try_get("action")?,
                table_name: row.try_get("table_name")?,
                primary_key: row.try_get("primary_key")?,
                description: row.try_get("description")?,
                has_changes: row.try_get("has_changes")?,
            })
        })
        .collect::<AppResult<Vec<_>>>()?;
    let total = count_events(db).await?;
    Ok(EventPage {
        rows,
        total,
        page: query.page,
        per_page: query.per_page,
    })
}

pub async fn count_events(db: &Db) -> AppResult<u64> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
        .fetch_one(&db.read)
        .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The stored before/after JSON of one event (for tests and the detail views).
pub async fn event_changes(db: &Db, id: i64) -> AppResult<(Option<String>, Option<String>)> {
    let row = sqlx::query("SELECT before_data, after_data FROM events WHERE id = ?")
        .bind(id)
        .fetch_optional(&db.read)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("event {id}")))?;
    Ok((row.try_get("before_data")?, row.try_get("after_data")?))
}

/// Ids of events whose keyword index matches an FTS5 query, newest first.
pub async fn search_event_ids(db: &Db, fts_query: &str, limit: u32) -> AppResult<Vec<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT e.id FROM events_fts f JOIN events e ON e.id = f.rowid \
         WHERE events_fts MATCH ? ORDER BY e.occurred_at DESC, e.id DESC LIMIT ?",
    )
    .bind(fts_query)
    .bind(i64::from(limit))
    .fetch_all(&db.read)
    .await?)
}

/// A request that a signed-in admin made to Auditdeck.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAdminSession {
    pub occurred_at: i64,
    pub user_id: Option<String>,
    pub user_name: String,
    pub user_email: String,
    pub ip: Option<IpAddr>,
    pub url: String,
    /// `WEB` or `API`.
    pub kind: &'static str,
    pub method: String,
    pub status: u16,
    pub duration_us: i64,
}

/// Stores a batch of admin-session records in one transaction.
pub async fn insert_admin_sessions(db: &Db, records: &[NewAdminSession]) -> AppResult<()> {
    let mut tx = db.write.begin().await?;
    for r in records {
        sqlx::query(
            "INSERT INTO admin_sessions (occurred_at, user_id, user_name, user_email, ip, url, \
             kind, method, status, duration_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(r.occurred_at)
        .bind(&r.user_id)
        .bind(&r.user_name)
        .bind(&r.user_email)
        .bind(r.ip.map(|ip| ip.to_string()))
        .bind(&r.url)
        .bind(r.kind)
        .bind(&r.method)
        .bind(i64::from(r.status))
        .bind(r.duration_us)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub async fn count_admin_sessions(db: &Db) -> AppResult<u64> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM admin_sessions")
        .fetch_one(&db.read)
        .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// An API key as the ingest layer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: i64,
    pub label: String,
}

pub async fn insert_api_key(db: &Db, label: &str, prefix: &str, key_hash: &str) -> AppResult<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO api_keys (label, prefix, key_hash, created_at) VALUES (?, ?, ?, ?) RETURNING id",
    )
    .bind(label)
    .bind(prefix)
    .bind(key_hash)
    .bind(now_micros())
    .fetch_one(&db.write)
    .await?)
}

/// The unrevoked key with this hash, if any.
pub async fn find_active_api_key(db: &Db, key_hash: &str) -> AppResult<Option<ApiKey>> {
    let row =
        sqlx::query("SELECT id, label FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL")
            .bind(key_hash)
            .fetch_optional(&db.read)
            .await?;
    row.map(|r| -> AppResult<ApiKey> {
        Ok(ApiKey {
            id: r.try_get("id")?,
            label: r.try_get("label")?,
        })
    })
    .transpose()
}

pub async fn revoke_api_key(db: &Db, id: i64) -> AppResult<()> {
    sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
        .bind(now_micros())
        .bind(id)
        .execute(&db.write)
        .await?;
    Ok(())
}

/// Last-used time of a key, in microseconds.
pub async fn api_key_last_used(db: &Db, id: i64) -> AppResult<Option<i64>> {
    Ok(
        sqlx::query_scalar("SELECT last_used_at FROM api_keys WHERE id = ?")
            .bind(id)
            .fetch_one(&db.read)
            .await?,
    )
}
