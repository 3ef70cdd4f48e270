//! All SQL of Auditdeck, as plain async functions over [`Db`].
//!
//! SQLite is written through a pool of exactly one connection (the single
//! writer: batches commit in order, with no busy-retry between our own
//! writers) and read through a separate pool of several connections (WAL lets
//! readers run beside the writer).

use crate::errors::{AppError, AppResult};
use crate::models::{ApiKeyRow, Initiator, Role, UserInfo, UserRow};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

mod bulk;
mod events;
mod integrity;
mod sessions;
pub use bulk::*;
pub use events::*;
pub use integrity::*;
pub use sessions::*;

use super::chain;

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
    // The writer never checkpoints the write-ahead log itself (a commit
    // that did would hold the one write connection while copying pages into
    // the database and syncing it); a background task does, beside it.
    let write = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone().pragma("wal_autocheckpoint", "0"))
        .await?;
    MIGRATOR.run(&write).await?;
    integrity::backfill_chain(&write).await?;
    tower_sessions_sqlx_store::SqliteStore::new(write.clone())
        .migrate()
        .await?;
    let read = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await?;
    spawn_checkpointer(read.clone());
    Ok(Db { read, write })
}

/// How often the write-ahead log is copied into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Checkpoints the write-ahead log (PASSIVE: it never blocks the writer or
/// readers) every [`CHECKPOINT_EVERY`], until the pool is closed.
fn spawn_checkpointer(pool: SqlitePool) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(CHECKPOINT_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if pool.is_closed() {
                break;
            }
            if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                if pool.is_closed() {
                    break;
                }
                tracing::warn!(%error, "write-ahead log checkpoint failed");
            }
        }
    });
}

impl Db {
    /// The session store (tower-sessions), in the same database.
    pub fn session_store(&self) -> tower_sessions_sqlx_store::SqliteStore {
        tower_sessions_sqlx_store::SqliteStore::new(self.read.clone())
    }

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

/// Rows per multi-row INSERT (24 parameters each, well under SQLite's limit).
const INSERT_CHUNK: usize = 200;

/// What the chain gives one event before it is inserted.
struct ChainedRow {
    id: i64,
    ip: Option<String>,
    content: chain::Hash,
    chain: chain::Hash,
    sums: [u8; chain::SUMS_LEN],
}

/// Stores a batch of events in one transaction and returns their ids, in order.
/// `api_key_id` names the key that delivered them; its last-used time is
/// updated in the same transaction.
pub async fn insert_events(
    db: &Db,
    events: &[NewEvent],
    api_key_id: Option<i64>,
) -> AppResult<Vec<i64>> {
    let mut tx = db.write.begin().await?;
    let ids = insert_events_in(&mut tx, events, api_key_id).await?;
    tx.commit().await?;
    Ok(ids)
}

/// A write transaction on the single writer.
pub type Tx = sqlx::Transaction<'static, sqlx::Sqlite>;

/// Begins a write transaction: a change and its audit event commit together.
pub async fn begin(db: &Db) -> AppResult<Tx> {
    Ok(db.write.begin().await?)
}

/// [`insert_events`] inside a transaction the caller commits. This is the
/// one path by which events are stored: it gives each event the next id and
/// its place in the hash chain (content hash, chain hash, field checksums)
/// and moves the chain's head, all in the caller's transaction.
pub async fn insert_events_in(
    tx: &mut Tx,
    events: &[NewEvent],
    api_key_id: Option<i64>,
) -> AppResult<Vec<i64>> {
    let received_at = now_micros();
    let mut max_occurred_at: i64 =
        sqlx::query_scalar("SELECT max_occurred_at FROM events ORDER BY id DESC LIMIT 1")
            .fetch_optional(&mut **tx)
            .await?
            .unwrap_or(0);
    let mut head = integrity::chain_head(tx).await?;
    // Ids continue the chain. Were a row ever inserted around this path, the
    // sequence is ahead of the chain: skip past it (a verification reports
    // that row as unchained) rather than collide with it.
    let seq: Option<i64> =
        sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = 'events'")
            .fetch_optional(&mut **tx)
            .await?;
    let mut next_id = head.id.max(seq.unwrap_or(0)) + 1;
    let mut ids = Vec::with_capacity(events.len());
    let mut buf = Vec::with_capacity(1024);
    for chunk in events.chunks(INSERT_CHUNK) {
        let rows: Vec<ChainedRow> = chunk
            .iter()
            .map(|event| {
                let id = next_id;
                next_id += 1;
                let ip = event.ip.map(|ip| ip.to_string());
                let fields = chain::EventFields {
                    id,
                    occurred_at: event.occurred_at,
                    received_at,
                    ip: ip.as_deref(),
                    initiator_kind: event.initiator.kind.as_str(),
                    initiator_id: event.initiator.id.as_deref(),
                    initiator_name: event.initiator.name.as_deref(),
                    initiator_email: event.initiator.email.as_deref(),
                    initiator_role: event.initiator.role.as_deref(),
                    action: &event.action,
                    table_name: event.table_name.as_deref(),
                    primary_key: event.primary_key.as_deref(),
                    description: &event.description,
                    before: event.before.as_deref(),
                    after: event.after.as_deref(),
                    user_agent: event.user_agent.as_deref(),
                    request_id: event.request_id.as_deref(),
                    session_id: event.session_id.as_deref(),
                    api_key_id,
                };
                let hashed = chain::hash_event(&fields, &mut buf);
                head.hash = chain::link(&head.hash, &hashed.content);
                head.id = id;
                head.count += 1;
                ChainedRow {
                    id,
                    ip,
                    content: hashed.content,
                    chain: head.hash,
                    sums: hashed.sums,
                }
            })
            .collect();
        let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO events (id, occurred_at, received_at, ip, ip_bin, initiator_kind, initiator_id, \
             initiator_name, initiator_email, initiator_role, action, table_name, primary_key, \
             description, before_data, after_data, user_agent, request_id, session_id, api_key_id, \
             max_occurred_at, content_hash, chain_hash, field_sums) ",
        );
        insert.push_values(chunk.iter().zip(&rows), |mut row, (event, chained)| {
            max_occurred_at = max_occurred_at.max(event.occurred_at);
            row.push_bind(chained.id)
                .push_bind(event.occurred_at)
                .push_bind(received_at)
                .push_bind(chained.ip.clone())
                .push_bind(event.ip.map(|ip| ip_key(ip).to_vec()))
                .push_bind(event.initiator.kind.as_str())
                .push_bind(event.initiator.id.clone())
                .push_bind(event.initiator.name.clone())
                .push_bind(event.initiator.email.clone())
                .push_bind(event.initiator.role.clone())
                .push_bind(event.action.clone())
                .push_bind(event.table_name.clone())
                .push_bind(event.primary_key.clone())
                .push_bind(event.description.clone())
                .push_bind(event.before.clone())
                .push_bind(event.after.clone())
                .push_bind(event.user_agent.clone())
                .push_bind(event.request_id.clone())
                .push_bind(event.session_id.clone())
                .push_bind(api_key_id)
                .push_bind(max_occurred_at)
                .push_bind(chained.content.to_vec())
                .push_bind(chained.chain.to_vec())
                .push_bind(chained.sums.to_vec());
        });
        insert.build().execute(&mut **tx).await?;
        ids.extend(rows.iter().map(|r| r.id));
    }
    integrity::set_chain_head(tx, &head).await?;
    if let Some(key_id) = api_key_id {
        sqlx::query("UPDATE api_keys SET last_used_at = ? WHERE id = ?")
            .bind(received_at)
            .bind(key_id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(ids)
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

/// An API key as the ingest layer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: i64,
    pub label: String,
}

pub async fn insert_api_key_in(
    tx: &mut Tx,
    label: &str,
    prefix: &str,
    key_hash: &str,
) -> AppResult<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO api_keys (label, prefix, key_hash, created_at) VALUES (?, ?, ?, ?) RETURNING id",
    )
    .bind(label)
    .bind(prefix)
    .bind(key_hash)
    .bind(now_micros())
    .fetch_one(&mut **tx)
    .await?)
}

pub async fn list_api_keys(db: &Db) -> AppResult<Vec<ApiKeyRow>> {
    let rows = sqlx::query(
        "SELECT id, label, prefix, created_at, last_used_at, revoked_at FROM api_keys \
         ORDER BY revoked_at IS NOT NULL, id DESC",
    )
    .fetch_all(&db.read)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ApiKeyRow {
                id: r.try_get("id")?,
                label: r.try_get("label")?,
                prefix: r.try_get("prefix")?,
                created_at: r.try_get("created_at")?,
                last_used_at: r.try_get("last_used_at")?,
                revoked_at: r.try_get("revoked_at")?,
            })
        })
        .collect()
}

/// Label of an unrevoked key; `None` when missing or already revoked.
pub async fn revoke_api_key_in(tx: &mut Tx, id: i64) -> AppResult<Option<String>> {
    Ok(sqlx::query_scalar(
        "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL RETURNING label",
    )
    .bind(now_micros())
    .bind(id)
    .fetch_optional(&mut **tx)
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
    let mut tx = begin(db).await?;
    revoke_api_key_in(&mut tx, id).await?;
    tx.commit().await?;
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

/// A user row, with what sign-in needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub info: UserInfo,
    pub password_hash: String,
    pub disabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub username: String,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub password_hash: String,
}

fn user_from_row(row: &sqlx::sqlite::SqliteRow) -> AppResult<UserRecord> {
    let role: String = row.try_get("role")?;
    let disabled_at: Option<i64> = row.try_get("disabled_at")?;
    Ok(UserRecord {
        info: UserInfo {
            id: row.try_get("id")?,
            username: row.try_get("username")?,
            name: row.try_get("name")?,
            email: row.try_get("email")?,
            role: Role::parse(&role).ok_or_else(|| {
                tracing::error!(role, "unknown role in the database");
                AppError::Internal
            })?,
        },
        password_hash: row.try_get("password_hash")?,
        disabled: disabled_at.is_some(),
    })
}

const USER_COLUMNS: &str = "id, username, name, email, role, password_hash, disabled_at";

/// Creates a user inside the caller's transaction; a taken username or email
/// is a 400 naming it.
pub async fn insert_user_in(tx: &mut Tx, user: &NewUser) -> AppResult<i64> {
    let taken: Option<String> = sqlx::query_scalar(
        "SELECT CASE WHEN username = ?1 THEN 'username' ELSE 'email' END FROM users \
         WHERE username = ?1 OR email = ?2 LIMIT 1",
    )
    .bind(&user.username)
    .bind(&user.email)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(field) = taken {
        return Err(AppError::bad_request(format!(
            "{field}: already taken by another user"
        )));
    }
    let now = now_micros();
    Ok(sqlx::query_scalar(
        "INSERT INTO users (username, email, name, role, password_hash, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(&user.username)
    .bind(&user.email)
    .bind(&user.name)
    .bind(user.role.as_str())
    .bind(&user.password_hash)
    .bind(now)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?)
}

/// The user with this username or email (either, case-insensitive).
pub async fn find_user_by_login(db: &Db, login: &str) -> AppResult<Option<UserRecord>> {
    let row = sqlx::query(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE username = ?1 OR email = ?1 LIMIT 1"
    ))
    .bind(login)
    .fetch_optional(&db.read)
    .await?;
    row.as_ref().map(user_from_row).transpose()
}

pub async fn get_user(db: &Db, id: i64) -> AppResult<Option<UserRecord>> {
    let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?"))
        .bind(id)
        .fetch_optional(&db.read)
        .await?;
    row.as_ref().map(user_from_row).transpose()
}

pub async fn count_users(db: &Db) -> AppResult<u64> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&db.read)
        .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

pub async fn set_user_disabled_in(tx: &mut Tx, id: i64, disabled: bool) -> AppResult<()> {
    let now = now_micros();
    sqlx::query("UPDATE users SET disabled_at = ?, updated_at = ? WHERE id = ?")
        .bind(disabled.then_some(now))
        .bind(now)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Records a failed sign-in for the rate limit.
pub async fn insert_login_failure_in(tx: &mut Tx, username: &str, ip: &str) -> AppResult<()> {
    sqlx::query("INSERT INTO login_failures (username, ip, failed_at) VALUES (?, ?, ?)")
        .bind(username)
        .bind(ip)
        .bind(now_micros())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Failed sign-ins since `since` (microseconds) for an account and for an IP.
pub async fn count_login_failures(
    db: &Db,
    username: &str,
    ip: &str,
    since: i64,
) -> AppResult<(u32, u32)> {
    let row = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM login_failures WHERE username = ? AND failed_at >= ?) AS by_account, \
                (SELECT COUNT(*) FROM login_failures WHERE ip = ? AND failed_at >= ?) AS by_ip",
    )
    .bind(username)
    .bind(since)
    .bind(ip)
    .bind(since)
    .fetch_one(&db.read)
    .await?;
    let by_account: i64 = row.try_get("by_account")?;
    let by_ip: i64 = row.try_get("by_ip")?;
    Ok((
        u32::try_from(by_account).unwrap_or(u32::MAX),
        u32::try_from(by_ip).unwrap_or(u32::MAX),
    ))
}

/// A successful sign-in forgets the account's failures.
pub async fn clear_login_failures_in(tx: &mut Tx, username: &str) -> AppResult<()> {
    sqlx::query("DELETE FROM login_failures WHERE username = ?")
        .bind(username)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn list_users(db: &Db) -> AppResult<Vec<UserRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {USER_COLUMNS}, created_at FROM users ORDER BY disabled_at IS NOT NULL, name COLLATE NOCASE"
    ))
    .fetch_all(&db.read)
    .await?;
    rows.iter()
        .map(|r| {
            let user = user_from_row(r)?;
            Ok(UserRow {
                user: user.info,
                disabled: user.disabled,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
}

pub async fn set_user_role_in(tx: &mut Tx, id: i64, role: Role) -> AppResult<()> {
    sqlx::query("UPDATE users SET role = ?, updated_at = ? WHERE id = ?")
        .bind(role.as_str())
        .bind(now_micros())
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn set_password_in(tx: &mut Tx, id: i64, password_hash: &str) -> AppResult<()> {
    sqlx::query("UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?")
        .bind(password_hash)
        .bind(now_micros())
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
