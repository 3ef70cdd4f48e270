//! All SQL of Auditdeck, as plain async functions over [`Db`].
//!
//! SQLite is written through a pool of exactly one connection (the single
//! writer: batches commit in order, with no busy-retry between our own
//! writers) and read through a separate pool of several connections (WAL lets
//! readers run beside the writer).

use crate::errors::{AppError, AppResult};
use crate::models::{ApiKeyRow, Initiator, Role, UserInfo, UserRow};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::borrow::Cow;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

mod alerts;
mod backups;
mod bulk;
mod combos;
mod db;
mod events;
mod exports;
mod ingest_requests;
mod integrity;
mod partitions;
mod sessions;
mod streams;
mod tail;
mod volume;
pub use alerts::*;
pub use backups::*;
pub use bulk::*;
pub use combos::combo_differences;
use db::Pools;
pub use db::{Backend, Db, DbRow, ExclusiveGuard, Exec, Sql, Tx, RETENTION_LOCK, WRITER_LOCK};
pub use events::*;
pub use exports::*;
pub use ingest_requests::*;
pub use integrity::*;
pub use partitions::*;
pub use sessions::*;
pub use streams::*;
pub use tail::{Batch, Tail, TailEvent, TAIL_EVENTS};
pub use volume::{quarter_of, volume_differences, QUARTER};

use super::chain;

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Opens the database at `url` and runs its migrations: `sqlite:` (the file
/// is created when missing) or `postgres:` / `postgresql:` (the database
/// must exist).
pub async fn open(url: &str) -> AppResult<Db> {
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        open_postgres(url).await
    } else if url.starts_with("sqlite:") {
        open_sqlite(url).await
    } else {
        Err(AppError::bad_request(
            "database-url: must start with sqlite: or postgres:",
        ))
    }
}

/// Connections each server keeps to PostgreSQL.
const PG_CONNECTIONS: u32 = 16;

async fn open_postgres(url: &str) -> AppResult<Db> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| AppError::bad_request(format!("database-url: {e}")))?
        .application_name("auditdeck");
    let pool = PgPoolOptions::new()
        .max_connections(PG_CONNECTIONS)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options)
        .await?;
    // Several servers may start at once: one migrates, the others wait (the
    // migrator holds its own advisory lock while it runs).
    POSTGRES_MIGRATOR.run(&pool).await?;
    tower_sessions_sqlx_store::PostgresStore::new(pool.clone())
        .migrate()
        .await
        .or_else(ignore_concurrent_create)?;
    let db = Db::new(Pools::Postgres { pool });
    sessions::backfill_ip_keys(&db).await?;
    Ok(db)
}

/// tower-sessions creates its schema with `IF NOT EXISTS`, which two servers
/// starting together can still race on: the loser's error is harmless.
fn ignore_concurrent_create(error: sqlx::Error) -> Result<(), sqlx::Error> {
    match &error {
        sqlx::Error::Database(e)
            if matches!(e.code().as_deref(), Some("23505" | "42P06" | "42P07")) =>
        {
            Ok(())
        }
        _ => Err(error),
    }
}

async fn open_sqlite(url: &str) -> AppResult<Db> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| AppError::bad_request(format!("database-url: {e}")))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_millis(db::BUSY_TIMEOUT_MS))
        .pragma("temp_store", "memory")
        .pragma("cache_size", "-65536")
        // The write-ahead log grows while a long reader (a backup) holds its
        // snapshot; once it starts over, it is cut back to 64 MB.
        .pragma("journal_size_limit", "67108864");
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
    SQLITE_MIGRATOR.run(&write).await?;
    tower_sessions_sqlx_store::SqliteStore::new(write.clone())
        .migrate()
        .await?;
    let read = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await?;
    let db = Db::new(Pools::Sqlite {
        read: read.clone(),
        write,
    });
    spawn_checkpointer(read, db.wal_restart().clone());
    integrity::backfill_chain(&db).await?;
    sessions::backfill_ip_keys(&db).await?;
    Ok(db)
}

/// How often the write-ahead log is copied into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Checkpoints the write-ahead log (PASSIVE: it never blocks the writer or
/// readers) every [`CHECKPOINT_EVERY`], until the pool is closed, and asks
/// the writer to start the log over when it has grown long.
fn spawn_checkpointer(pool: SqlitePool, restart: db::WalRestart) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(CHECKPOINT_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if pool.is_closed() {
                break;
            }
            match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&pool)
                .await
            {
                Ok((_, frames, _)) => restart.log_has(frames),
                Err(error) => {
                    if pool.is_closed() {
                        break;
                    }
                    tracing::warn!(%error, "write-ahead log checkpoint failed");
                }
            }
        }
    });
}

/// The session store (tower-sessions), in the same database: sessions are
/// shared by every server on it.
#[derive(Debug, Clone)]
pub enum SessionStore {
    Sqlite(tower_sessions_sqlx_store::SqliteStore),
    Postgres(tower_sessions_sqlx_store::PostgresStore),
}

#[async_trait::async_trait]
impl tower_sessions::SessionStore for SessionStore {
    async fn create(
        &self,
        record: &mut tower_sessions::session::Record,
    ) -> tower_sessions::session_store::Result<()> {
        match self {
            SessionStore::Sqlite(s) => s.create(record).await,
            SessionStore::Postgres(s) => s.create(record).await,
        }
    }

    async fn save(
        &self,
        record: &tower_sessions::session::Record,
    ) -> tower_sessions::session_store::Result<()> {
        match self {
            SessionStore::Sqlite(s) => s.save(record).await,
            SessionStore::Postgres(s) => s.save(record).await,
        }
    }

    async fn load(
        &self,
        id: &tower_sessions::session::Id,
    ) -> tower_sessions::session_store::Result<Option<tower_sessions::session::Record>> {
        match self {
            SessionStore::Sqlite(s) => s.load(id).await,
            SessionStore::Postgres(s) => s.load(id).await,
        }
    }

    async fn delete(
        &self,
        id: &tower_sessions::session::Id,
    ) -> tower_sessions::session_store::Result<()> {
        match self {
            SessionStore::Sqlite(s) => s.delete(id).await,
            SessionStore::Postgres(s) => s.delete(id).await,
        }
    }
}

impl Db {
    /// The session store (tower-sessions), in the same database.
    pub fn session_store(&self) -> SessionStore {
        match self.pools() {
            Pools::Sqlite { read, .. } => {
                SessionStore::Sqlite(tower_sessions_sqlx_store::SqliteStore::new(read.clone()))
            }
            Pools::Postgres { pool } => {
                SessionStore::Postgres(tower_sessions_sqlx_store::PostgresStore::new(pool.clone()))
            }
        }
    }
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

/// Rows per multi-row INSERT (24 parameters each, well under SQLite's and
/// PostgreSQL's limits).
const INSERT_CHUNK: usize = 200;

/// Stores a batch of events in one transaction and returns their ids, in order.
/// `api_key_id` names the key that delivered them; its last-used time is
/// updated in the same transaction.
pub async fn insert_events<'a>(
    db: &Db,
    events: impl Into<Cow<'a, [NewEvent]>>,
    api_key_id: Option<i64>,
) -> AppResult<Vec<i64>> {
    let events = events.into();
    // Before the writer's turn: a month without a partition is made here,
    // briefly, or the batch lands in the DEFAULT partition (PostgreSQL).
    partitions::make_months_for(db, events.iter().map(|e| e.occurred_at)).await?;
    let mut tx = db.begin().await?;
    let ids = insert_events_in(&mut tx, events, api_key_id).await?;
    tx.commit().await?;
    Ok(ids)
}

/// Begins a write transaction: a change and its audit event commit together.
pub async fn begin(db: &Db) -> AppResult<Tx> {
    db.begin().await
}

/// [`insert_events`] inside a transaction the caller commits. This is the
/// one path by which events are stored: it gives each event the next id and
/// its place in the hash chain (content hash, chain hash, field checksums)
/// and moves the chain's head, all in the caller's transaction (which holds
/// the writer's turn, so no other writer moves the head meanwhile).
///
/// Events given by value go to the tail (streams at the head) as they are;
/// borrowed ones are copied for it, and only while a stream is active.
pub async fn insert_events_in<'a>(
    tx: &mut Tx,
    events: impl Into<Cow<'a, [NewEvent]>>,
    api_key_id: Option<i64>,
) -> AppResult<Vec<i64>> {
    let events: Cow<'a, [NewEvent]> = events.into();
    let received_at = tx.now();
    // For the tail (streams at the head), once the transaction commits.
    let mut hashes = Vec::new();
    let keep = tx.keeps_tail();
    let last = tx.sql("SELECT max_occurred_at FROM events ORDER BY id DESC LIMIT 1");
    let mut max_occurred_at: i64 = tx.scalar_opt(&last).await?.unwrap_or(0);
    let mut head = integrity::chain_head(tx).await?;
    // Ids continue the chain. Were a row ever inserted around this path, the
    // ids are ahead of the chain: skip past them (a verification reports
    // that row as unchained) rather than collide with it.
    let ahead = match tx.backend() {
        Backend::Sqlite => tx.sql("SELECT seq FROM sqlite_sequence WHERE name = 'events'"),
        Backend::Postgres => tx.sql("SELECT MAX(id) FROM events"),
    };
    let seq: Option<i64> = tx.scalar_opt::<Option<i64>>(&ahead).await?.flatten();
    let mut next_id = head.id.max(seq.unwrap_or(0)) + 1;
    let mut ids = Vec::with_capacity(events.len());
    let mut buf = Vec::with_capacity(1024);
    for chunk in events.chunks(INSERT_CHUNK) {
        let mut insert = tx.sql(
            "INSERT INTO events (id, occurred_at, received_at, ip, ip_bin, initiator_kind, initiator_id, \
             initiator_name, initiator_email, initiator_role, action, table_name, primary_key, \
             description, before_data, after_data, user_agent, request_id, session_id, api_key_id, \
             max_occurred_at, content_hash, chain_hash, field_sums) VALUES ",
        );
        for (n, event) in chunk.iter().enumerate() {
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
            max_occurred_at = max_occurred_at.max(event.occurred_at);
            insert.push(if n == 0 { "(" } else { ", (" });
            insert
                .push_bind(id)
                .push(", ")
                .push_bind(event.occurred_at)
                .push(", ")
                .push_bind(received_at)
                .push(", ")
                .push_bind(ip)
                .push(", ")
                .push_bind(event.ip.map(|ip| ip_key(ip).to_vec()))
                .push(", ")
                .push_bind(event.initiator.kind.as_str())
                .push(", ")
                .push_bind(&event.initiator.id)
                .push(", ")
                .push_bind(&event.initiator.name)
                .push(", ")
                .push_bind(&event.initiator.email)
                .push(", ")
                .push_bind(&event.initiator.role)
                .push(", ")
                .push_bind(&event.action)
                .push(", ")
                .push_bind(&event.table_name)
                .push(", ")
                .push_bind(&event.primary_key)
                .push(", ")
                .push_bind(&event.description)
                .push(", ")
                .push_bind(&event.before)
                .push(", ")
                .push_bind(&event.after)
                .push(", ")
                .push_bind(&event.user_agent)
                .push(", ")
                .push_bind(&event.request_id)
                .push(", ")
                .push_bind(&event.session_id)
                .push(", ")
                .push_bind(api_key_id)
                .push(", ")
                .push_bind(max_occurred_at)
                .push(", ")
                .push_bind(hashed.content.to_vec())
                .push(", ")
                .push_bind(head.hash.to_vec())
                .push(", ")
                .push_bind(hashed.sums.to_vec())
                .push(")");
            ids.push(id);
            if keep {
                hashes.push(head.hash);
            }
        }
        tx.execute(&insert).await?;
    }
    integrity::set_chain_head(tx, &head).await?;
    combos::add(tx, &events).await?;
    volume::add(tx, &events).await?;
    if let Some(key_id) = api_key_id {
        let used = tx
            .sql("UPDATE api_keys SET last_used_at = ? WHERE id = ?")
            .bind(received_at)
            .bind(key_id);
        tx.execute(&used).await?;
    }
    if keep {
        tx.stored(tail::Batch {
            ids: ids.clone(),
            hashes,
            events: events.into_owned(),
            received_at,
        });
    }
    Ok(ids)
}

/// Adds `events` to the per-quarter rollup alone, in `tx`, as
/// [`insert_events_in`] does: the charts bench times it against the whole
/// insert to say what the rollup costs ingest.
#[doc(hidden)]
pub async fn add_volume_in(tx: &mut Tx, events: &[NewEvent]) -> AppResult<()> {
    volume::add(tx, events).await
}

pub async fn count_events(db: &Db) -> AppResult<u64> {
    let n: i64 = db
        .read()
        .scalar(&db.sql("SELECT COUNT(*) FROM events"))
        .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The stored before/after JSON of one event (for tests and the detail views).
pub async fn event_changes(db: &Db, id: i64) -> AppResult<(Option<String>, Option<String>)> {
    let sql = db
        .sql("SELECT before_data, after_data FROM events WHERE id = ?")
        .bind(id);
    let row = db
        .read()
        .optional(&sql)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("event {id}")))?;
    Ok((row.get("before_data")?, row.get("after_data")?))
}

/// An API key as the ingest layer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: i64,
    pub label: String,
    pub scopes: Vec<String>,
}

impl ApiKey {
    /// Whether the key has this scope.
    pub fn allows(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

fn scopes_of(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

pub async fn insert_api_key_in(
    tx: &mut Tx,
    label: &str,
    prefix: &str,
    key_hash: &str,
    scopes: &[String],
) -> AppResult<i64> {
    let sql = tx
        .sql("INSERT INTO api_keys (label, prefix, key_hash, scopes, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id")
        .bind(label)
        .bind(prefix)
        .bind(key_hash)
        .bind(scopes.join(" "))
        .bind(tx.now());
    tx.scalar(&sql).await
}

pub async fn list_api_keys(db: &Db) -> AppResult<Vec<ApiKeyRow>> {
    let sql = db.sql(
        "SELECT id, label, prefix, scopes, created_at, last_used_at, revoked_at FROM api_keys \
         ORDER BY revoked_at IS NOT NULL, id DESC",
    );
    db.read()
        .all(&sql)
        .await?
        .iter()
        .map(|r| {
            Ok(ApiKeyRow {
                id: r.get("id")?,
                label: r.get("label")?,
                prefix: r.get("prefix")?,
                scopes: scopes_of(&r.get::<String>("scopes")?),
                created_at: r.get("created_at")?,
                last_used_at: r.get("last_used_at")?,
                revoked_at: r.get("revoked_at")?,
            })
        })
        .collect()
}

/// Label of an unrevoked key; `None` when missing or already revoked.
pub async fn revoke_api_key_in(tx: &mut Tx, id: i64) -> AppResult<Option<String>> {
    let sql = tx
        .sql("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL RETURNING label")
        .bind(tx.now())
        .bind(id);
    tx.scalar_opt(&sql).await
}

/// The unrevoked key with this hash, if any.
pub async fn find_active_api_key(db: &Db, key_hash: &str) -> AppResult<Option<ApiKey>> {
    let sql = db
        .sql("SELECT id, label, scopes FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL")
        .bind(key_hash);
    db.read()
        .optional(&sql)
        .await?
        .map(|r| -> AppResult<ApiKey> {
            Ok(ApiKey {
                id: r.get("id")?,
                label: r.get("label")?,
                scopes: scopes_of(&r.get::<String>("scopes")?),
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
    let sql = db
        .sql("SELECT last_used_at FROM api_keys WHERE id = ?")
        .bind(id);
    db.read().scalar(&sql).await
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

fn user_from_row(row: &DbRow) -> AppResult<UserRecord> {
    let role: String = row.get("role")?;
    let disabled_at: Option<i64> = row.get("disabled_at")?;
    Ok(UserRecord {
        info: UserInfo {
            id: row.get("id")?,
            username: row.get("username")?,
            name: row.get("name")?,
            email: row.get("email")?,
            role: Role::parse(&role).ok_or_else(|| {
                tracing::error!(role, "unknown role in the database");
                AppError::Internal
            })?,
        },
        password_hash: row.get("password_hash")?,
        disabled: disabled_at.is_some(),
    })
}

const USER_COLUMNS: &str = "id, username, name, email, role, password_hash, disabled_at";

/// Creates a user inside the caller's transaction; a taken username or email
/// (either compared without case) is a 400 naming it.
pub async fn insert_user_in(tx: &mut Tx, user: &NewUser) -> AppResult<i64> {
    let taken = tx
        .sql(
            "SELECT CASE WHEN lower(username) = lower(?1) THEN 'username' ELSE 'email' END FROM users \
             WHERE lower(username) = lower(?1) OR lower(email) = lower(?2) LIMIT 1",
        )
        .bind(&user.username)
        .bind(&user.email);
    if let Some(field) = tx.scalar_opt::<String>(&taken).await? {
        return Err(AppError::bad_request(format!(
            "{field}: already taken by another user"
        )));
    }
    let now = tx.now();
    let sql = tx
        .sql(
            "INSERT INTO users (username, email, name, role, password_hash, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(&user.username)
        .bind(&user.email)
        .bind(&user.name)
        .bind(user.role.as_str())
        .bind(&user.password_hash)
        .bind(now)
        .bind(now);
    tx.scalar(&sql).await
}

/// The user with this username or email (either, case-insensitive).
pub async fn find_user_by_login(db: &Db, login: &str) -> AppResult<Option<UserRecord>> {
    let sql = db
        .sql(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE lower(username) = lower(?1) OR lower(email) = lower(?1) LIMIT 1"
        ))
        .bind(login);
    db.read()
        .optional(&sql)
        .await?
        .as_ref()
        .map(user_from_row)
        .transpose()
}

pub async fn get_user(db: &Db, id: i64) -> AppResult<Option<UserRecord>> {
    let sql = db
        .sql(format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?"))
        .bind(id);
    db.read()
        .optional(&sql)
        .await?
        .as_ref()
        .map(user_from_row)
        .transpose()
}

pub async fn count_users(db: &Db) -> AppResult<u64> {
    let n: i64 = db
        .read()
        .scalar(&db.sql("SELECT COUNT(*) FROM users"))
        .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

pub async fn set_user_disabled_in(tx: &mut Tx, id: i64, disabled: bool) -> AppResult<()> {
    let now = tx.now();
    let sql = tx
        .sql("UPDATE users SET disabled_at = ?, updated_at = ? WHERE id = ?")
        .bind(disabled.then_some(now))
        .bind(now)
        .bind(id);
    tx.execute(&sql).await?;
    Ok(())
}

/// Records a failed sign-in for the rate limit.
pub async fn insert_login_failure_in(tx: &mut Tx, username: &str, ip: &str) -> AppResult<()> {
    let sql = tx
        .sql("INSERT INTO login_failures (username, ip, failed_at) VALUES (?, ?, ?)")
        .bind(username)
        .bind(ip)
        .bind(tx.now());
    tx.execute(&sql).await?;
    Ok(())
}

/// Failed sign-ins since `since` (microseconds) for an account and for an IP.
pub async fn count_login_failures(
    db: &Db,
    username: &str,
    ip: &str,
    since: i64,
) -> AppResult<(u32, u32)> {
    let sql = db
        .sql(
            "SELECT (SELECT COUNT(*) FROM login_failures WHERE lower(username) = lower(?) AND failed_at >= ?) AS by_account, \
                    (SELECT COUNT(*) FROM login_failures WHERE ip = ? AND failed_at >= ?) AS by_ip",
        )
        .bind(username)
        .bind(since)
        .bind(ip)
        .bind(since);
    let row = db.read().one(&sql).await?;
    let by_account: i64 = row.get("by_account")?;
    let by_ip: i64 = row.get("by_ip")?;
    Ok((
        u32::try_from(by_account).unwrap_or(u32::MAX),
        u32::try_from(by_ip).unwrap_or(u32::MAX),
    ))
}

/// A successful sign-in forgets the account's failures.
pub async fn clear_login_failures_in(tx: &mut Tx, username: &str) -> AppResult<()> {
    let sql = tx
        .sql("DELETE FROM login_failures WHERE lower(username) = lower(?)")
        .bind(username);
    tx.execute(&sql).await?;
    Ok(())
}

pub async fn list_users(db: &Db) -> AppResult<Vec<UserRow>> {
    let sql = db.sql(format!(
        "SELECT {USER_COLUMNS}, created_at FROM users ORDER BY disabled_at IS NOT NULL, lower(name), id"
    ));
    db.read()
        .all(&sql)
        .await?
        .iter()
        .map(|r| {
            let user = user_from_row(r)?;
            Ok(UserRow {
                user: user.info,
                disabled: user.disabled,
                created_at: r.get("created_at")?,
            })
        })
        .collect()
}

pub async fn set_user_role_in(tx: &mut Tx, id: i64, role: Role) -> AppResult<()> {
    let sql = tx
        .sql("UPDATE users SET role = ?, updated_at = ? WHERE id = ?")
        .bind(role.as_str())
        .bind(tx.now())
        .bind(id);
    tx.execute(&sql).await?;
    Ok(())
}

pub async fn set_password_in(tx: &mut Tx, id: i64, password_hash: &str) -> AppResult<()> {
    let sql = tx
        .sql("UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?")
        .bind(password_hash)
        .bind(tx.now())
        .bind(id);
    tx.execute(&sql).await?;
    Ok(())
}
