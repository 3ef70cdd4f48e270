//! The two backends behind one set of store functions: SQLite (one file, a
//! single writer connection beside a pool of readers) and PostgreSQL (one
//! pool, several servers sharing it).
//!
//! Store functions build their SQL with [`Sql`] (text with `?` placeholders
//! and the values bound to them) and run it on a [`Db`] (reads) or a [`Tx`]
//! (a write transaction); rows come back as [`DbRow`], read by column the same
//! way on both. Where the two dialects differ, the function asks
//! [`Db::backend`] and writes each its own text.
//!
//! Writers are serialised on both: SQLite has exactly one write connection,
//! and every PostgreSQL write transaction takes one transaction-level
//! advisory lock ([`WRITER_LOCK`]) as its first statement, so writers on
//! every server sharing the database take turns. The hash chain relies on it:
//! each event's id and chain hash follow the head the previous writer left.

use crate::errors::{AppError, AppResult};
use crate::server::clock::{Clock, Micros};
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use sqlx::postgres::{PgArguments, PgPool, PgRow, Postgres};
use sqlx::query::Query;
use sqlx::sqlite::{Sqlite, SqliteArguments, SqlitePool, SqliteRow};
use sqlx::{ColumnIndex, Decode, Row, Type};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Which database a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The key of the PostgreSQL advisory lock every write transaction holds.
pub const WRITER_LOCK: i64 = 0x4175_6469_7464_6b01;

/// The database: its pools, and the clock its writes are stamped by.
#[derive(Clone, Debug)]
pub struct Db {
    pools: Pools,
    clock: Clock,
    partition_backoff: Backoff,
    /// The events this process stored last (shared by the clones).
    tail: Arc<super::Tail>,
    /// SQLite: the write-ahead log should start over (shared by the clones).
    wal_restart: WalRestart,
}

/// Under steady ingest SQLite's write-ahead log never starts over by
/// itself: a checkpoint beside the writer copies what was committed when it
/// began, and by its end the writer has added more. The log then grows
/// without end (gigabytes within a minute of flat-out ingest), and every
/// write slows down with it. When the checkpointer finds the log over
/// [`WAL_RESTART_FRAMES`], it asks the writer to checkpoint the rest itself
/// between two transactions (`wal_checkpoint(RESTART)`: a short pause, as
/// the checkpointer has copied most of it); the next transaction then
/// writes the log from its start again.
#[derive(Clone, Debug, Default)]
pub(super) struct WalRestart {
    wanted: Arc<std::sync::atomic::AtomicBool>,
    /// After a restart that readers held up: a pause before the next.
    paused: Backoff,
}

/// Frames (pages) in the write-ahead log above which it should start over:
/// 64 MB of 4 KB pages, the size it is cut back to when it does.
pub(super) const WAL_RESTART_FRAMES: i64 = 16_384;

/// How long the writer waits for readers to finish with the log before it
/// leaves the restart for later (it holds back the next write meanwhile).
const WAL_RESTART_WAIT_MS: u32 = 20;

/// How long a SQLite connection waits for a lock, as opened.
pub(super) const BUSY_TIMEOUT_MS: u64 = 10_000;

impl WalRestart {
    /// The checkpointer found `frames` in the log.
    pub(super) fn log_has(&self, frames: i64) {
        if frames > WAL_RESTART_FRAMES && !self.paused.holds() {
            self.wanted
                .store(true, std::sync::atomic::Ordering::Release);
        }
    }

    /// On the write connection, between transactions, when asked: the rest
    /// of the log is copied into the database and the log starts over. A
    /// reader still on the log (an export's snapshot) leaves it for later.
    async fn run_if_wanted(&self, write: &SqlitePool) -> AppResult<()> {
        if !self.wanted.swap(false, std::sync::atomic::Ordering::AcqRel) {
            return Ok(());
        }
        let mut conn = write.acquire().await?;
        sqlx::query(&format!("PRAGMA busy_timeout = {WAL_RESTART_WAIT_MS}"))
            .execute(&mut *conn)
            .await?;
        let done = sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(RESTART)")
            .fetch_one(&mut *conn)
            .await;
        sqlx::query(&format!("PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}"))
            .execute(&mut *conn)
            .await?;
        match done {
            Ok((0, _, _)) => {}
            // Held up by a reader: not again for a while.
            Ok(_) => self.paused.start(Duration::from_secs(5)),
            Err(error) => {
                tracing::warn!(%error, "write-ahead log restart failed");
                self.paused.start(Duration::from_secs(5));
            }
        }
        Ok(())
    }
}

/// A pause after a failed attempt, shared by the clones of a [`Db`]
/// (monotonic time: it measures a wait, not a date).
#[derive(Clone, Debug, Default)]
pub struct Backoff(Arc<Mutex<Option<Instant>>>);

impl Backoff {
    /// Whether the pause is still on.
    pub fn holds(&self) -> bool {
        let until = *self.0.lock().unwrap_or_else(|e| e.into_inner());
        until.is_some_and(|t| Instant::now() < t)
    }

    /// Pauses for `d` from now.
    pub fn start(&self, d: Duration) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + d);
    }
}

#[derive(Clone, Debug)]
pub(super) enum Pools {
    Sqlite {
        read: SqlitePool,
        /// Exactly one connection: the single writer.
        write: SqlitePool,
    },
    Postgres {
        pool: PgPool,
    },
}

/// A transaction: a write transaction (the caller holds the writer's turn
/// until it commits) or a read snapshot, with its database's clock.
pub struct Tx {
    conn: TxConn,
    clock: Clock,
    tail: Arc<super::Tail>,
    /// Events stored in it, for the tail once it commits (kept only while
    /// the tail is on).
    stored: Vec<super::tail::Batch>,
    /// It removes events a stream has not delivered: the tail forgets what
    /// it holds once it commits.
    forgets_tail: bool,
}

enum TxConn {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

/// A value of a column both backends can decode.
pub trait Value:
    for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}
impl<T> Value for T where
    T: for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}

/// A column name or position.
pub trait Col: ColumnIndex<SqliteRow> + ColumnIndex<PgRow> {}
impl<I: ColumnIndex<SqliteRow> + ColumnIndex<PgRow>> Col for I {}

/// A row of either backend.
pub enum DbRow {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

impl DbRow {
    /// The value of a column.
    pub fn get<T: Value>(&self, col: impl Col) -> AppResult<T> {
        Ok(match self {
            DbRow::Sqlite(r) => r.try_get(col)?,
            DbRow::Postgres(r) => r.try_get(col)?,
        })
    }

    /// The value of a column whose declared type the driver cannot tell (an
    /// expression SQLite gives no type).
    pub fn get_unchecked<T: Value>(&self, col: impl Col) -> AppResult<T> {
        Ok(match self {
            DbRow::Sqlite(r) => r.try_get_unchecked(col)?,
            DbRow::Postgres(r) => r.try_get_unchecked(col)?,
        })
    }
}

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Int(Option<i64>),
    Text(Option<String>),
    Blob(Option<Vec<u8>>),
    Bool(bool),
    /// A list of ids: JSON text for SQLite's `json_each`, an array for
    /// PostgreSQL (see [`Sql::push_in`]).
    Ids(Vec<i64>),
}

macro_rules! param_from {
    ($($t:ty => |$v:ident| $e:expr),* $(,)?) => {
        $(impl From<$t> for Param {
            fn from($v: $t) -> Self {
                $e
            }
        })*
    };
}

param_from! {
    i64 => |v| Param::Int(Some(v)),
    Option<i64> => |v| Param::Int(v),
    String => |v| Param::Text(Some(v)),
    Option<String> => |v| Param::Text(v),
    &str => |v| Param::Text(Some(v.to_string())),
    &String => |v| Param::Text(Some(v.clone())),
    Option<&str> => |v| Param::Text(v.map(str::to_string)),
    &Option<String> => |v| Param::Text(v.clone()),
    Vec<u8> => |v| Param::Blob(Some(v)),
    Option<Vec<u8>> => |v| Param::Blob(v),
    bool => |v| Param::Bool(v),
}

/// SQL text and its bound values. `?` is a placeholder (`?N` names one by
/// number); for PostgreSQL they become `$N` when the statement runs.
#[derive(Debug, Clone)]
pub struct Sql {
    backend: Backend,
    /// The text as the backend takes it (placeholders already numbered for
    /// PostgreSQL).
    text: String,
    params: Vec<Param>,
    /// Placeholders numbered so far.
    placeholders: u32,
}

impl Sql {
    pub fn new(backend: Backend, text: impl AsRef<str>) -> Self {
        let mut sql = Self {
            backend,
            text: String::new(),
            params: Vec::new(),
            placeholders: 0,
        };
        sql.push(text);
        sql
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn is_pg(&self) -> bool {
        self.backend == Backend::Postgres
    }

    /// Appends text.
    pub fn push(&mut self, text: impl AsRef<str>) -> &mut Self {
        match self.backend {
            Backend::Sqlite => self.text.push_str(text.as_ref()),
            Backend::Postgres => {
                dollar_placeholders(text.as_ref(), &mut self.placeholders, &mut self.text)
            }
        }
        self
    }

    /// Binds the value of the next `?` already in the text.
    pub fn bind(mut self, value: impl Into<Param>) -> Self {
        self.params.push(value.into());
        self
    }

    /// Appends a placeholder and binds its value.
    pub fn push_bind(&mut self, value: impl Into<Param>) -> &mut Self {
        self.push("?");
        self.params.push(value.into());
        self
    }

    /// Appends `<column> IN (<ids>)`, the list bound as one value.
    pub fn push_in(&mut self, column: &str, ids: &[i64]) -> &mut Self {
        match self.backend {
            Backend::Sqlite => self.push(format!("{column} IN (SELECT value FROM json_each(?))")),
            Backend::Postgres => self.push(format!("{column} = ANY(?)")),
        };
        self.params.push(Param::Ids(ids.to_vec()));
        self
    }

    /// The text as the backend takes it.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// Appends `text` to `out` with `?` → `$1, $2, …` (counting on from `next`)
/// and `?N` → `$N`, outside quoted text.
fn dollar_placeholders(text: &str, next: &mut u32, out: &mut String) {
    let mut quote: Option<char> = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '?' => {
                out.push('$');
                if chars.peek().is_some_and(char::is_ascii_digit) {
                    while let Some(d) = chars.next_if(char::is_ascii_digit) {
                        out.push(d);
                    }
                } else {
                    *next += 1;
                    out.push_str(&next.to_string());
                }
            }
            None => out.push(c),
        }
    }
}

fn sqlite_query<'q>(text: &'q str, params: &'q [Param]) -> Query<'q, Sqlite, SqliteArguments<'q>> {
    let mut q = sqlx::query(text);
    for p in params {
        q = match p {
            Param::Int(v) => q.bind(*v),
            Param::Text(v) => q.bind(v.as_deref()),
            Param::Blob(v) => q.bind(v.as_deref()),
            Param::Bool(v) => q.bind(*v),
            Param::Ids(v) => q.bind(serde_json::to_string(v).unwrap_or_default()),
        };
    }
    q
}

fn pg_query<'q>(text: &'q str, params: &'q [Param]) -> Query<'q, Postgres, PgArguments> {
    let mut q = sqlx::query(text);
    for p in params {
        q = match p {
            Param::Int(v) => q.bind(*v),
            Param::Text(v) => q.bind(v.as_deref()),
            Param::Blob(v) => q.bind(v.as_deref()),
            Param::Bool(v) => q.bind(*v),
            Param::Ids(v) => q.bind(v.as_slice()),
        };
    }
    q
}

/// Runs `$sql` on a SQLite executor or a PostgreSQL one with `$method`.
macro_rules! run {
    ($sql:expr, $sqlite:expr, $pg:expr, $method:ident) => {{
        let sql: &Sql = $sql;
        match (sqlite_pg($sqlite, $pg)) {
            Either::Sqlite(e) => run!(@sqlite sqlite_query(&sql.text, &sql.params), e, $method),
            Either::Postgres(e) => run!(@pg pg_query(&sql.text, &sql.params), e, $method),
        }
    }};
    (@sqlite $q:expr, $e:expr, fetch_all) => {
        $q.fetch_all($e).await.map(|rows| rows.into_iter().map(DbRow::Sqlite).collect())
    };
    (@pg $q:expr, $e:expr, fetch_all) => {
        $q.fetch_all($e).await.map(|rows| rows.into_iter().map(DbRow::Postgres).collect())
    };
    (@sqlite $q:expr, $e:expr, fetch_optional) => {
        $q.fetch_optional($e).await.map(|row| row.map(DbRow::Sqlite))
    };
    (@pg $q:expr, $e:expr, fetch_optional) => {
        $q.fetch_optional($e).await.map(|row| row.map(DbRow::Postgres))
    };
    (@sqlite $q:expr, $e:expr, execute) => {
        $q.execute($e).await.map(|done| done.rows_affected())
    };
    (@pg $q:expr, $e:expr, execute) => {
        $q.execute($e).await.map(|done| done.rows_affected())
    };
}

/// One of two executors (a helper of [`run!`]).
enum Either<S, P> {
    Sqlite(S),
    Postgres(P),
}

fn sqlite_pg<S, P>(sqlite: Option<S>, pg: Option<P>) -> Either<S, P> {
    match (sqlite, pg) {
        (Some(s), _) => Either::Sqlite(s),
        (None, Some(p)) => Either::Postgres(p),
        (None, None) => unreachable!("an executor of one backend is always given"),
    }
}

/// What runs statements: the read side of a [`Db`], or a [`Tx`].
pub trait Exec: Send {
    fn all(&mut self, sql: &Sql)
        -> impl std::future::Future<Output = AppResult<Vec<DbRow>>> + Send;
    fn optional(
        &mut self,
        sql: &Sql,
    ) -> impl std::future::Future<Output = AppResult<Option<DbRow>>> + Send;
    /// Runs a statement; the number of rows it changed.
    fn execute(&mut self, sql: &Sql) -> impl std::future::Future<Output = AppResult<u64>> + Send;

    /// The one row a statement returns.
    fn one(&mut self, sql: &Sql) -> impl std::future::Future<Output = AppResult<DbRow>> + Send {
        async move {
            self.optional(sql).await?.ok_or_else(|| {
                tracing::error!("a statement that returns one row returned none");
                AppError::Internal
            })
        }
    }

    /// The first column of the one row a statement returns.
    fn scalar<T: Value + Send>(
        &mut self,
        sql: &Sql,
    ) -> impl std::future::Future<Output = AppResult<T>> + Send {
        async move { self.one(sql).await?.get(0) }
    }

    /// The first column of the row a statement returns, if any.
    fn scalar_opt<T: Value + Send>(
        &mut self,
        sql: &Sql,
    ) -> impl std::future::Future<Output = AppResult<Option<T>>> + Send {
        async move { self.optional(sql).await?.map(|r| r.get(0)).transpose() }
    }

    /// The first column of every row.
    fn column<T: Value + Send>(
        &mut self,
        sql: &Sql,
    ) -> impl std::future::Future<Output = AppResult<Vec<T>>> + Send {
        async move { self.all(sql).await?.iter().map(|r| r.get(0)).collect() }
    }
}

impl Exec for &Db {
    async fn all(&mut self, sql: &Sql) -> AppResult<Vec<DbRow>> {
        let (s, p) = self.readers();
        Ok(run!(sql, s, p, fetch_all)?)
    }
    async fn optional(&mut self, sql: &Sql) -> AppResult<Option<DbRow>> {
        let (s, p) = self.readers();
        Ok(run!(sql, s, p, fetch_optional)?)
    }
    async fn execute(&mut self, sql: &Sql) -> AppResult<u64> {
        let (s, p) = match &self.pools {
            Pools::Sqlite { write, .. } => (Some(write), None),
            Pools::Postgres { pool } => (None, Some(pool)),
        };
        Ok(run!(sql, s, p, execute)?)
    }
}

impl Exec for Tx {
    async fn all(&mut self, sql: &Sql) -> AppResult<Vec<DbRow>> {
        let (s, p) = self.conns();
        Ok(run!(sql, s, p, fetch_all)?)
    }
    async fn optional(&mut self, sql: &Sql) -> AppResult<Option<DbRow>> {
        let (s, p) = self.conns();
        Ok(run!(sql, s, p, fetch_optional)?)
    }
    async fn execute(&mut self, sql: &Sql) -> AppResult<u64> {
        let (s, p) = self.conns();
        Ok(run!(sql, s, p, execute)?)
    }
}

impl Db {
    pub(super) fn new(pools: Pools) -> Self {
        Db {
            pools,
            clock: Clock::system(),
            partition_backoff: Backoff::default(),
            tail: Arc::default(),
            wal_restart: WalRestart::default(),
        }
    }

    /// The write-ahead log's restarts (SQLite), for the checkpointer.
    pub(super) fn wal_restart(&self) -> &WalRestart {
        &self.wal_restart
    }

    /// The insert path's pause between attempts to make a partition.
    pub(super) fn partition_backoff(&self) -> &Backoff {
        &self.partition_backoff
    }

    pub(super) fn pools(&self) -> &Pools {
        &self.pools
    }

    /// The same database read and written at the time `clock` tells.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The clock the server reads the time from.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The time now, by [`Db::clock`].
    pub fn now(&self) -> Micros {
        self.clock.now()
    }

    pub fn backend(&self) -> Backend {
        match self.pools {
            Pools::Sqlite { .. } => Backend::Sqlite,
            Pools::Postgres { .. } => Backend::Postgres,
        }
    }

    /// A statement for this database.
    pub fn sql(&self, text: impl AsRef<str>) -> Sql {
        Sql::new(self.backend(), text)
    }

    fn readers(&self) -> (Option<&SqlitePool>, Option<&PgPool>) {
        match &self.pools {
            Pools::Sqlite { read, .. } => (Some(read), None),
            Pools::Postgres { pool } => (None, Some(pool)),
        }
    }

    fn tx(&self, conn: TxConn) -> Tx {
        Tx {
            conn,
            clock: self.clock.clone(),
            tail: self.tail.clone(),
            stored: Vec::new(),
            forgets_tail: false,
        }
    }

    /// Reads: `&Db` runs statements on the read side.
    pub fn read(&self) -> &Self {
        self
    }

    /// A clone for a background task on a thread (and runtime) of its own:
    /// its reads go through a pool of their own, whose two connections open
    /// when first used. On SQLite each connection runs on a thread made by
    /// the thread that uses it, so a task of low priority reads at that
    /// priority too (writes keep the one writer). On PostgreSQL every
    /// statement goes through the new pool: its sockets belong to the
    /// task's runtime, and never outlive it in the pool the pages use.
    pub fn with_own_readers(&self) -> Db {
        let pools = match &self.pools {
            Pools::Sqlite { read, write } => Pools::Sqlite {
                read: sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(2)
                    .connect_lazy_with((*read.connect_options()).clone()),
                write: write.clone(),
            },
            Pools::Postgres { pool } => Pools::Postgres {
                pool: sqlx::postgres::PgPoolOptions::new()
                    .max_connections(2)
                    .connect_lazy_with((*pool.connect_options()).clone()),
            },
        };
        Db {
            pools,
            clock: self.clock.clone(),
            partition_backoff: self.partition_backoff.clone(),
            tail: self.tail.clone(),
            wal_restart: self.wal_restart.clone(),
        }
    }

    /// The events this process stored last, for streams at the head.
    pub fn tail(&self) -> &super::Tail {
        &self.tail
    }

    /// Begins a write transaction: it waits for the writer's turn (the one
    /// SQLite write connection; PostgreSQL's writer lock, shared by every
    /// server) and holds it until commit or rollback.
    pub async fn begin(&self) -> AppResult<Tx> {
        let conn = match &self.pools {
            Pools::Sqlite { write, .. } => {
                self.wal_restart.run_if_wanted(write).await?;
                TxConn::Sqlite(write.begin().await?)
            }
            Pools::Postgres { pool } => {
                let mut tx = pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(WRITER_LOCK)
                    .execute(&mut *tx)
                    .await?;
                TxConn::Postgres(tx)
            }
        };
        Ok(self.tx(conn))
    }

    /// Begins a transaction that does not take the writer's turn: for DDL
    /// that must not wait inside it, and for writes that touch no event and
    /// no link of the chain (a stream's delivery bookkeeping), so that they
    /// neither wait for ingest nor hold it up on PostgreSQL. On SQLite, the
    /// one write connection.
    pub async fn begin_unlocked(&self) -> AppResult<Tx> {
        let conn = match &self.pools {
            Pools::Sqlite { write, .. } => TxConn::Sqlite(write.begin().await?),
            Pools::Postgres { pool } => TxConn::Postgres(pool.begin().await?),
        };
        Ok(self.tx(conn))
    }

    /// Begins a read-only transaction that sees one snapshot throughout.
    pub async fn begin_snapshot(&self) -> AppResult<Tx> {
        let conn = match &self.pools {
            Pools::Sqlite { read, .. } => TxConn::Sqlite(read.begin().await?),
            Pools::Postgres { pool } => TxConn::Postgres(
                pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await?,
            ),
        };
        Ok(self.tx(conn))
    }

    /// Streams a statement's rows on a read connection.
    pub fn stream<'a>(&'a self, sql: &'a Sql) -> BoxStream<'a, AppResult<DbRow>> {
        match &self.pools {
            Pools::Sqlite { read, .. } => sqlite_query(&sql.text, &sql.params)
                .fetch(read)
                .map_ok(DbRow::Sqlite)
                .map_err(AppError::from)
                .boxed(),
            Pools::Postgres { pool } => pg_query(&sql.text, &sql.params)
                .fetch(pool)
                .map_ok(DbRow::Postgres)
                .map_err(AppError::from)
                .boxed(),
        }
    }

    /// Takes a lock only one holder may have at a time, across every server
    /// sharing the database, for as long as the guard lives; `None` when
    /// another holds it. (On SQLite, one server owns the file: always taken.)
    pub async fn try_exclusive(&self, key: i64) -> AppResult<Option<ExclusiveGuard>> {
        let Pools::Postgres { pool } = &self.pools else {
            return Ok(Some(ExclusiveGuard(None)));
        };
        // A connection of its own, out of the pool: the session-level lock
        // goes when it closes, whatever happens to the holder.
        use sqlx::Connection;
        let mut conn = pool.acquire().await?.detach();
        let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut conn)
            .await?;
        if !taken {
            let _ = conn.close().await;
            return Ok(None);
        }
        Ok(Some(ExclusiveGuard(Some(conn))))
    }

    pub async fn close(&self) {
        match &self.pools {
            Pools::Sqlite { read, write } => {
                read.close().await;
                write.close().await;
            }
            Pools::Postgres { pool } => pool.close().await,
        }
    }
}

/// Holds a lock of [`Db::try_exclusive`]; dropping it lets go.
pub struct ExclusiveGuard(#[allow(dead_code)] Option<sqlx::PgConnection>);

/// The lock a retention run holds (one at a time across servers).
pub const RETENTION_LOCK: i64 = 0x4175_6469_7464_6b02;

impl Tx {
    fn conns(
        &mut self,
    ) -> (
        Option<&mut sqlx::SqliteConnection>,
        Option<&mut sqlx::PgConnection>,
    ) {
        match &mut self.conn {
            TxConn::Sqlite(t) => (Some(&mut **t), None),
            TxConn::Postgres(t) => (None, Some(&mut **t)),
        }
    }

    pub fn backend(&self) -> Backend {
        match self.conn {
            TxConn::Sqlite(_) => Backend::Sqlite,
            TxConn::Postgres(_) => Backend::Postgres,
        }
    }

    /// The time now, by the database's clock.
    pub fn now(&self) -> Micros {
        self.clock.now()
    }

    /// A statement for this transaction's database.
    pub fn sql(&self, text: impl AsRef<str>) -> Sql {
        Sql::new(self.backend(), text)
    }

    /// Whether the events it stores should be kept for the tail.
    pub(super) fn keeps_tail(&self) -> bool {
        self.tail.is_on()
    }

    /// Events stored in it, for the tail once it commits.
    pub(super) fn stored(&mut self, batch: super::tail::Batch) {
        self.stored.push(batch);
    }

    /// It removes events some stream has not delivered yet.
    pub(super) fn forget_tail(&mut self) {
        self.forgets_tail = true;
    }

    pub async fn commit(self) -> AppResult<()> {
        match self.conn {
            TxConn::Sqlite(t) => t.commit().await?,
            TxConn::Postgres(t) => t.commit().await?,
        }
        if self.forgets_tail {
            self.tail.forget();
        }
        for batch in self.stored {
            self.tail.publish(batch);
        }
        Ok(())
    }

    pub async fn rollback(self) -> AppResult<()> {
        match self.conn {
            TxConn::Sqlite(t) => t.rollback().await?,
            TxConn::Postgres(t) => t.rollback().await?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_numbered_outside_quotes() {
        let mut sql = Sql::new(
            Backend::Postgres,
            "SELECT '?', x FROM t WHERE a = ? AND b = ? AND c = \"?\"",
        );
        sql.push(" AND d = ").push_bind(1i64);
        assert_eq!(
            sql.text(),
            "SELECT '?', x FROM t WHERE a = $1 AND b = $2 AND c = \"?\" AND d = $3"
        );
        let sql = Sql::new(Backend::Postgres, "WHERE u = ?1 OR e = ?1 AND r = ?2");
        assert_eq!(sql.text(), "WHERE u = $1 OR e = $1 AND r = $2");
        let sql = Sql::new(Backend::Sqlite, "WHERE u = ?1 AND r = ?");
        assert_eq!(sql.text(), "WHERE u = ?1 AND r = ?");
    }

    #[test]
    fn id_lists_are_one_value_in_each_dialect() {
        let mut sql = Sql::new(Backend::Sqlite, "SELECT 1 WHERE ");
        sql.push_in("e.id", &[1, 2]);
        assert_eq!(
            sql.text(),
            "SELECT 1 WHERE e.id IN (SELECT value FROM json_each(?))"
        );
        let mut sql = Sql::new(Backend::Postgres, "SELECT 1 WHERE a = ? AND ");
        sql.push_in("e.id", &[1, 2]);
        assert_eq!(sql.text(), "SELECT 1 WHERE a = $1 AND e.id = ANY($2)");
        assert_eq!(sql.params, vec![Param::Ids(vec![1, 2])]);
    }
}
