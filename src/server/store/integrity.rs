//! The chain's SQL: its head, the walk a verification reads, checkpoints,
//! verification records, the retention policy, legal hold and retention runs.

use super::bulk::json_text;
use super::{insert_events_in, Backend, Db, DbRow, Exec, NewEvent, Sql, Tx};
use crate::errors::{AppError, AppResult};
use crate::integrity::{
    Checkpoint, DeletedBy, RetentionPolicy, RetentionRun, VerificationReport, VerificationRow,
    VerifyMode, WalkStart,
};
use crate::server::chain::{self, Entry, EventFields, Expected, Hash, Walker, GENESIS};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::time::{Duration, Instant};

/// The chain's last entry: its id, chain hash, and the number of entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    pub id: i64,
    pub hash: Hash,
    pub count: i64,
}

/// The retention cut: entries up to `id` are gone; `hash` is entry `id`'s
/// chain hash and `count` the entries up to it.
pub type ChainCut = ChainHead;

fn hash_of(bytes: Vec<u8>) -> AppResult<Hash> {
    bytes.try_into().map_err(|_| {
        tracing::error!("a stored chain hash is not 32 bytes");
        AppError::Internal
    })
}

pub(super) async fn chain_head(tx: &mut Tx) -> AppResult<ChainHead> {
    let sql = tx.sql("SELECT head_id, head_hash, head_count FROM chain_state");
    let row = tx.optional(&sql).await?.ok_or_else(|| {
        tracing::error!("chain_state is missing: the chain was never started");
        AppError::Internal
    })?;
    Ok(ChainHead {
        id: row.get(0)?,
        hash: hash_of(row.get(1)?)?,
        count: row.get(2)?,
    })
}

pub(super) async fn set_chain_head(tx: &mut Tx, head: &ChainHead) -> AppResult<()> {
    let sql = tx
        .sql("UPDATE chain_state SET head_id = ?, head_hash = ?, head_count = ?")
        .bind(head.id)
        .bind(head.hash.to_vec())
        .bind(head.count);
    tx.execute(&sql).await?;
    Ok(())
}

const CHAIN_STATE: &str =
    "SELECT head_id, head_hash, head_count, cut_id, cut_hash, cut_count FROM chain_state";

async fn chain_state_on(tx: &mut Tx) -> AppResult<(ChainHead, ChainCut)> {
    let row = tx.one(&tx.sql(CHAIN_STATE)).await?;
    chain_pair(&row)
}

/// The chain's head and retention cut, now.
pub async fn chain_state(db: &Db) -> AppResult<(ChainHead, ChainCut)> {
    let row = db.read().one(&db.sql(CHAIN_STATE)).await?;
    chain_pair(&row)
}

/// A hash column as hex text (upper or lower case), in the dialect.
fn hex_of(backend: Backend, column: &str) -> String {
    match backend {
        Backend::Sqlite => format!("hex({column})"),
        Backend::Postgres => format!("encode({column}, 'hex')"),
    }
}

/// Entries read per batch of a walk.
const WALK_BATCH: i64 = 2_000;

/// One event as a walk reads it, borrowed from the batch's JSON.
#[derive(serde::Deserialize)]
struct WalkRow<'a> {
    id: i64,
    occurred_at: i64,
    received_at: i64,
    #[serde(borrow)]
    ip: Option<Cow<'a, str>>,
    #[serde(borrow)]
    initiator_kind: Cow<'a, str>,
    #[serde(borrow)]
    initiator_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    initiator_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    initiator_email: Option<Cow<'a, str>>,
    #[serde(borrow)]
    initiator_role: Option<Cow<'a, str>>,
    #[serde(borrow)]
    action: Cow<'a, str>,
    #[serde(borrow)]
    table_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    primary_key: Option<Cow<'a, str>>,
    #[serde(borrow)]
    description: Cow<'a, str>,
    #[serde(borrow)]
    before: Option<&'a RawValue>,
    #[serde(borrow)]
    after: Option<&'a RawValue>,
    #[serde(borrow)]
    user_agent: Option<Cow<'a, str>>,
    #[serde(borrow)]
    request_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    session_id: Option<Cow<'a, str>>,
    api_key_id: Option<i64>,
    #[serde(borrow)]
    content_hash: Cow<'a, str>,
    #[serde(borrow)]
    chain_hash: Cow<'a, str>,
    #[serde(borrow)]
    field_sums: Cow<'a, str>,
}

/// A tombstone as a walk reads it.
struct TombRow {
    id: i64,
    occurred_at: i64,
    content_hash: Option<Vec<u8>>,
    chain_hash: Option<Vec<u8>>,
    by: DeletedBy,
}

/// Entries of an id range: the events as one JSON array, and the tombstones.
struct WalkBatch {
    events: String,
    tombstones: Vec<TombRow>,
}

async fn read_walk_batch(tx: &mut Tx, after: i64, to: i64) -> AppResult<WalkBatch> {
    let sql = match tx.backend() {
        Backend::Sqlite => tx.sql(
            "SELECT json_group_array(json_array(id, occurred_at, received_at, ip, initiator_kind, \
             initiator_id, initiator_name, initiator_email, initiator_role, action, table_name, \
             primary_key, description, before_data, after_data, user_agent, request_id, session_id, \
             api_key_id, hex(content_hash), hex(chain_hash), hex(field_sums))) \
             FROM (SELECT * FROM events WHERE id > ? AND id <= ? ORDER BY id)",
        ),
        // The JSON columns go in as JSON (text would be quoted).
        Backend::Postgres => tx.sql(
            "SELECT COALESCE(json_agg(json_build_array(id, occurred_at, received_at, ip, initiator_kind, \
             initiator_id, initiator_name, initiator_email, initiator_role, action, table_name, \
             primary_key, description, before_data::json, after_data::json, user_agent, request_id, \
             session_id, api_key_id, COALESCE(encode(content_hash, 'hex'), ''), \
             COALESCE(encode(chain_hash, 'hex'), ''), COALESCE(encode(field_sums, 'hex'), '')) \
             ORDER BY id), '[]')::text \
             FROM events WHERE id > ? AND id <= ?",
        ),
    }
    .bind(after)
    .bind(to);
    let events: String = tx.scalar(&sql).await?;
    let sql = tx
        .sql(
            "SELECT t.id, t.occurred_at, t.content_hash, t.chain_hash, t.deletion_event_id, \
             t.retention_run_id, r.event_id FROM event_tombstones t \
             LEFT JOIN retention_runs r ON r.id = t.retention_run_id \
             WHERE t.id > ? AND t.id <= ? ORDER BY t.id",
        )
        .bind(after)
        .bind(to);
    let tombstones = tx
        .all(&sql)
        .await?
        .iter()
        .map(|r| -> AppResult<TombRow> {
            let deletion: Option<i64> = r.get(4)?;
            let run: Option<i64> = r.get(5)?;
            Ok(TombRow {
                id: r.get(0)?,
                occurred_at: r.get(1)?,
                content_hash: r.get(2)?,
                chain_hash: r.get(3)?,
                by: match (deletion, run) {
                    (Some(event_id), _) => DeletedBy::Deletion { event_id },
                    (None, run) => DeletedBy::Retention {
                        run_id: run.unwrap_or(0),
                        event_id: r.get(6)?,
                    },
                },
            })
        })
        .collect::<AppResult<_>>()?;
    Ok(WalkBatch { events, tombstones })
}

fn hex_hash(text: &str) -> Option<Hash> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// Calls `f` with each entry of a batch, in id order.
fn each_entry(batch: &WalkBatch, mut f: impl FnMut(Entry<'_>)) -> AppResult<()> {
    let rows: Vec<WalkRow<'_>> = serde_json::from_str(&batch.events).map_err(|e| {
        tracing::error!(error = %e, "chain batch is not the JSON expected");
        AppError::Internal
    })?;
    let mut tombs = batch.tombstones.iter().peekable();
    let mut sums_buf = Vec::new();
    for row in &rows {
        while let Some(t) = tombs.next_if(|t| t.id < row.id) {
            f(tomb_entry(t));
        }
        let before = row.before.map(json_text);
        let after = row.after.map(json_text);
        let content = hex_hash(&row.content_hash);
        let chain = hex_hash(&row.chain_hash);
        sums_buf.clear();
        sums_buf.extend(hex::decode(row.field_sums.as_ref()).unwrap_or_default());
        f(Entry::Event {
            fields: EventFields {
                id: row.id,
                occurred_at: row.occurred_at,
                received_at: row.received_at,
                ip: row.ip.as_deref(),
                initiator_kind: &row.initiator_kind,
                initiator_id: row.initiator_id.as_deref(),
                initiator_name: row.initiator_name.as_deref(),
                initiator_email: row.initiator_email.as_deref(),
                initiator_role: row.initiator_role.as_deref(),
                action: &row.action,
                table_name: row.table_name.as_deref(),
                primary_key: row.primary_key.as_deref(),
                description: &row.description,
                before: before.as_deref(),
                after: after.as_deref(),
                user_agent: row.user_agent.as_deref(),
                request_id: row.request_id.as_deref(),
                session_id: row.session_id.as_deref(),
                api_key_id: row.api_key_id,
            },
            content_hash: content.as_ref().map(|h| &h[..]),
            chain_hash: chain.as_ref().map(|h| &h[..]),
            field_sums: Some(&sums_buf),
        });
    }
    for t in tombs {
        f(tomb_entry(t));
    }
    Ok(())
}

fn tomb_entry(t: &TombRow) -> Entry<'_> {
    Entry::Tombstone {
        id: t.id,
        content_hash: t.content_hash.as_deref(),
        chain_hash: t.chain_hash.as_deref(),
        by: t.by.clone(),
    }
}

/// Reads `(after, to]` in batches in the snapshot `tx` and sends them down `out`.
async fn read_walk(
    mut tx: Tx,
    mut after: i64,
    to: i64,
    out: tokio::sync::mpsc::Sender<AppResult<WalkBatch>>,
) {
    while after < to {
        let upto = (after + WALK_BATCH).min(to);
        let batch = read_walk_batch(&mut tx, after, upto).await;
        let failed = batch.is_err();
        if out.send(batch).await.is_err() || failed {
            return;
        }
        after = upto;
    }
}

/// The checkpoints, oldest first.
pub async fn list_checkpoints(db: &Db) -> AppResult<Vec<Checkpoint>> {
    let rows = db.read().all(&checkpoints_sql(db.backend())).await?;
    rows.iter().map(checkpoint_row).collect()
}

async fn checkpoints_on(tx: &mut Tx) -> AppResult<Vec<Checkpoint>> {
    let rows = tx.all(&checkpoints_sql(tx.backend())).await?;
    rows.iter().map(checkpoint_row).collect()
}

fn checkpoints_sql(backend: Backend) -> Sql {
    Sql::new(
        backend,
        format!(
            "SELECT id, created_at, kind, last_id, entry_count, {}, verified_at \
             FROM chain_checkpoints ORDER BY id",
            hex_of(backend, "chain_hash")
        ),
    )
}

fn checkpoint_row(r: &DbRow) -> AppResult<Checkpoint> {
    Ok(Checkpoint {
        id: r.get(0)?,
        created_at: r.get(1)?,
        kind: r.get(2)?,
        last_id: r.get(3)?,
        entry_count: r.get(4)?,
        chain_hash: r.get::<String>(5)?.to_lowercase(),
        verified_at: r.get(6)?,
    })
}

/// Walks the chain and reports what it finds. The walk reads one snapshot
/// (a read transaction), so writes going on meanwhile never confuse it; it
/// holds at most two batches in memory. `external` are checkpoints kept
/// outside the database (an exported file), held to the chain like the
/// stored ones. `progress(checked, total)` is called after every batch.
pub async fn verify_chain(
    db: &Db,
    mode: VerifyMode,
    external: Vec<Expected>,
    mut progress: impl FnMut(u64, u64),
) -> AppResult<VerificationReport> {
    let mut tx = db.begin_snapshot().await?;
    let (head, cut) = chain_state_on(&mut tx).await?;
    let checkpoints = checkpoints_on(&mut tx).await?;
    let mut expected: Vec<Expected> = checkpoints.iter().filter_map(Expected::of).collect();
    expected.extend(external);
    let mut start = walk_start(mode, &cut, &checkpoints);
    // A quick walk starts at a checkpoint inside the chain: the entry there
    // must still carry the checkpoint's hash, or the walk starts at the cut
    // (and the checkpoint shows as broken on the way).
    if start.0.after_id != cut.id
        && entry_chain_hash(&mut tx, start.0.after_id).await?.as_ref() != Some(&start.1)
    {
        start = (cut_start(&cut), cut.hash, cut.count);
    }
    let (start, hash, count) = start;
    // Rows written around the chain may sit above its head: walk to them too.
    let max_id: Option<i64> = tx.scalar(&tx.sql(MAX_ENTRY_ID)).await?;
    let to = head.id.max(max_id.unwrap_or(0));
    let total = u64::try_from(to - start.after_id).unwrap_or(0);
    let after = start.after_id;
    let mut walker = Walker::new(mode, start, hash, count, expected);
    let (sender, mut batches) = tokio::sync::mpsc::channel(2);
    let reader = tokio::spawn(read_walk(tx, after, to, sender));
    let outcome = async {
        while let Some(batch) = batches.recv().await {
            let batch = batch?;
            each_entry(&batch, |entry| walker.push(entry))?;
            progress(walker.checked(), total);
        }
        Ok::<_, AppError>(())
    }
    .await;
    reader.abort();
    outcome?;
    Ok(walker.finish(head.id, &head.hash))
}

fn cut_start(cut: &ChainCut) -> WalkStart {
    WalkStart {
        after_id: cut.id,
        hash: hex::encode(cut.hash),
        from: if cut.id == 0 {
            "the beginning".into()
        } else {
            format!("the retention cut after #{}", cut.id)
        },
    }
}

/// Where a walk of `mode` starts: the retention cut, or the newest checkpoint
/// an earlier verification confirmed (quick).
fn walk_start(
    mode: VerifyMode,
    cut: &ChainCut,
    checkpoints: &[Checkpoint],
) -> (WalkStart, Hash, i64) {
    if mode == VerifyMode::Quick {
        let trusted = checkpoints
            .iter()
            .filter(|c| c.verified_at.is_some() && c.last_id > cut.id)
            .max_by_key(|c| c.last_id);
        if let Some(c) = trusted {
            if let Some(e) = Expected::of(c) {
                return (
                    WalkStart {
                        after_id: c.last_id,
                        hash: c.chain_hash.clone(),
                        from: format!("checkpoint {} at #{}", c.id, c.last_id),
                    },
                    e.hash,
                    c.entry_count,
                );
            }
        }
    }
    (cut_start(cut), cut.hash, cut.count)
}

/// The highest id of any entry, event or tombstone.
const MAX_ENTRY_ID: &str = "SELECT MAX(m) FROM (SELECT MAX(id) AS m FROM events \
     UNION ALL SELECT MAX(id) FROM event_tombstones) ids";

/// The stored chain hash of entry `id` (event or tombstone).
async fn entry_chain_hash(tx: &mut Tx, id: i64) -> AppResult<Option<Hash>> {
    let sql = tx
        .sql(
            "SELECT chain_hash FROM events WHERE id = ?1 UNION ALL \
             SELECT chain_hash FROM event_tombstones WHERE id = ?1 LIMIT 1",
        )
        .bind(id);
    let bytes: Option<Option<Vec<u8>>> = tx.scalar_opt(&sql).await?;
    Ok(bytes.flatten().and_then(|b| b.try_into().ok()))
}

/// Hashes the events and tombstones of a SQLite database written before
/// the chain existed, in id order, and starts the chain's state. Does
/// nothing once the chain is started (a PostgreSQL database starts with it).
pub(super) async fn backfill_chain(db: &Db) -> AppResult<()> {
    let started: Option<i64> = db
        .read()
        .scalar_opt(&db.sql("SELECT singleton FROM chain_state"))
        .await?;
    if started.is_some() {
        return Ok(());
    }
    let began = Instant::now();
    let mut tx = db.begin().await?;
    let to: Option<i64> = tx.scalar(&tx.sql(MAX_ENTRY_ID)).await?;
    let to = to.unwrap_or(0);
    let mut head = ChainHead {
        id: 0,
        hash: GENESIS,
        count: 0,
    };
    let mut after = 0;
    let mut buf = Vec::new();
    while after < to {
        let upto = (after + WALK_BATCH).min(to);
        let batch = read_walk_batch(&mut tx, after, upto).await?;
        let mut updates: Vec<(bool, i64, Hash, Hash, Vec<u8>)> = Vec::new();
        each_entry(&batch, |entry| {
            let (is_event, id, content, sums) = match entry {
                Entry::Event { fields, .. } => {
                    let h = chain::hash_event(&fields, &mut buf);
                    (true, fields.id, h.content, h.sums.to_vec())
                }
                Entry::Tombstone { id, .. } => {
                    let at = batch
                        .tombstones
                        .iter()
                        .find(|t| t.id == id)
                        .map_or(0, |t| t.occurred_at);
                    (false, id, chain::old_tombstone_content(id, at), Vec::new())
                }
            };
            head.hash = chain::link(&head.hash, &content);
            head.id = id;
            head.count += 1;
            updates.push((is_event, id, content, head.hash, sums));
        })?;
        for (is_event, id, content, link, sums) in updates {
            let update = if is_event {
                tx.sql(
                    "UPDATE events SET content_hash = ?, chain_hash = ?, field_sums = ? WHERE id = ?",
                )
                .bind(content.to_vec())
                .bind(link.to_vec())
                .bind(sums)
            } else {
                tx.sql("UPDATE event_tombstones SET content_hash = ?, chain_hash = ? WHERE id = ?")
                    .bind(content.to_vec())
                    .bind(link.to_vec())
            };
            tx.execute(&update.bind(id)).await?;
        }
        after = upto;
    }
    let start = tx
        .sql("INSERT INTO chain_state (singleton, head_id, head_hash, head_count, cut_hash) VALUES (1, ?, ?, ?, ?)")
        .bind(head.id)
        .bind(head.hash.to_vec())
        .bind(head.count)
        .bind(GENESIS.to_vec());
    tx.execute(&start).await?;
    tx.commit().await?;
    tracing::info!(
        entries = head.count,
        seconds = began.elapsed().as_secs_f64(),
        "hashed the events stored before the chain"
    );
    Ok(())
}

/// Writes a checkpoint of the chain's head, unless the newest checkpoint is
/// already there (or the chain is empty). `verified`: a verification has
/// just confirmed the chain up to this head.
pub async fn write_checkpoint(db: &Db, kind: &str) -> AppResult<Option<Checkpoint>> {
    let mut tx = super::begin(db).await?;
    let head = chain_head(&mut tx).await?;
    let checkpoint = checkpoint_in(&mut tx, kind, &head, None).await?;
    tx.commit().await?;
    Ok(checkpoint)
}

async fn checkpoint_in(
    tx: &mut Tx,
    kind: &str,
    at: &ChainHead,
    verified_at: Option<i64>,
) -> AppResult<Option<Checkpoint>> {
    let sql = tx
        .sql("SELECT last_id FROM chain_checkpoints WHERE kind = ? ORDER BY id DESC LIMIT 1")
        .bind(kind);
    let newest: Option<i64> = tx.scalar_opt(&sql).await?;
    if at.id == 0 || newest == Some(at.id) {
        return Ok(None);
    }
    let now = tx.now();
    let sql = tx
        .sql(
            "INSERT INTO chain_checkpoints (created_at, kind, last_id, entry_count, chain_hash, verified_at) \
             VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(now)
        .bind(kind)
        .bind(at.id)
        .bind(at.count)
        .bind(at.hash.to_vec())
        .bind(verified_at);
    let id: i64 = tx.scalar(&sql).await?;
    Ok(Some(Checkpoint {
        id,
        created_at: now,
        kind: kind.to_string(),
        last_id: at.id,
        entry_count: at.count,
        chain_hash: hex::encode(at.hash),
        verified_at,
    }))
}

/// Records that a verification started. Only one runs at a time: another
/// one still running is a conflict.
pub async fn begin_verification(db: &Db, started_by: &str, mode: VerifyMode) -> AppResult<i64> {
    let mut tx = super::begin(db).await?;
    // A verification whose server stopped (no progress for a minute) is
    // given up first; on PostgreSQL another server's may be running.
    let stale = tx
        .sql(
            "UPDATE chain_verifications SET status = 'failed', finished_at = ? \
             WHERE status = 'running' AND heartbeat_at < ?",
        )
        .bind(db.now())
        .bind(db.now() - STALE_AFTER_MICROS);
    tx.execute(&stale).await?;
    let running = tx.sql("SELECT id FROM chain_verifications WHERE status = 'running' LIMIT 1");
    let running: Option<i64> = tx.scalar_opt(&running).await?;
    if running.is_some() {
        return Err(AppError::Conflict(
            "a verification is already running; its progress is on the Integrity page".into(),
        ));
    }
    let sql = tx
        .sql(
            "INSERT INTO chain_verifications (started_at, started_by, mode, heartbeat_at) \
             VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(db.now())
        .bind(started_by)
        .bind(mode.as_str())
        .bind(db.now());
    let id: i64 = tx.scalar(&sql).await?;
    tx.commit().await?;
    Ok(id)
}

pub async fn verification_progress(db: &Db, id: i64, checked: u64, total: u64) -> AppResult<()> {
    let sql = db
        .sql(
            "UPDATE chain_verifications SET checked = ?, total = ?, heartbeat_at = ? \
             WHERE id = ? AND status = 'running'",
        )
        .bind(i64::try_from(checked).unwrap_or(i64::MAX))
        .bind(i64::try_from(total).unwrap_or(i64::MAX))
        .bind(db.now())
        .bind(id);
    db.read().execute(&sql).await?;
    Ok(())
}

/// Records a verification's outcome, with its event (`record`, whose text
/// the caller wrote), in one transaction. An intact walk marks the
/// checkpoints it confirmed as trusted and leaves one at its end. `None`:
/// the walk could not finish.
pub async fn finish_verification(
    db: &Db,
    id: i64,
    report: Option<&VerificationReport>,
    record: NewEvent,
) -> AppResult<()> {
    let now = db.now();
    let mut tx = super::begin(db).await?;
    let (status, text, checked) = match report {
        Some(r) => (
            if r.intact() { "intact" } else { "broken" },
            serde_json::to_string(r).ok(),
            r.checked,
        ),
        None => ("failed", None, 0),
    };
    let greatest = match tx.backend() {
        Backend::Sqlite => "MAX",
        Backend::Postgres => "GREATEST",
    };
    let sql = tx
        .sql(format!(
            "UPDATE chain_verifications SET status = ?, finished_at = ?, report = ?, \
             checked = {greatest}(checked, ?) WHERE id = ?"
        ))
        .bind(status)
        .bind(now)
        .bind(text)
        .bind(i64::try_from(checked).unwrap_or(i64::MAX))
        .bind(id);
    tx.execute(&sql).await?;
    if let Some(r) = report {
        if r.intact() {
            let sql = tx
                .sql(
                    "UPDATE chain_checkpoints SET verified_at = ? WHERE last_id > ? AND last_id <= ? \
                     AND verified_at IS NULL",
                )
                .bind(now)
                .bind(r.start.after_id)
                .bind(r.end_id);
            tx.execute(&sql).await?;
            if let Some(hash) = hex_hash(&r.end_hash) {
                let end = ChainHead {
                    id: r.end_id,
                    hash,
                    count: r.end_count,
                };
                checkpoint_in(&mut tx, "verification", &end, Some(now)).await?;
            }
        }
    }
    insert_events_in(&mut tx, std::slice::from_ref(&record), None).await?;
    tx.commit().await?;
    Ok(())
}

/// A running verification whose progress has not moved for this long has
/// lost its server.
const STALE_AFTER_MICROS: i64 = 60_000_000;

/// Marks verifications left running by a server that stopped as failed:
/// on SQLite (one server) every running one, on PostgreSQL (several) those
/// whose progress has stopped.
pub async fn abandon_verifications(db: &Db) -> AppResult<u64> {
    let before = match db.backend() {
        Backend::Sqlite => i64::MAX,
        Backend::Postgres => db.now() - STALE_AFTER_MICROS,
    };
    let sql = db
        .sql(
            "UPDATE chain_verifications SET status = 'failed', finished_at = ? \
             WHERE status = 'running' AND heartbeat_at < ?",
        )
        .bind(db.now())
        .bind(before);
    db.read().execute(&sql).await
}

fn verification_row(r: &DbRow) -> AppResult<VerificationRow> {
    let report: Option<String> = r.get("report")?;
    let mode: String = r.get("mode")?;
    Ok(VerificationRow {
        id: r.get("id")?,
        started_at: r.get("started_at")?,
        finished_at: r.get("finished_at")?,
        started_by: r.get("started_by")?,
        mode: VerifyMode::parse(&mode).unwrap_or(VerifyMode::Full),
        status: r.get("status")?,
        checked: u64::try_from(r.get::<i64>("checked")?).unwrap_or(0),
        total: u64::try_from(r.get::<i64>("total")?).unwrap_or(0),
        report: report.and_then(|t| serde_json::from_str(&t).ok()),
    })
}

/// The newest verifications, newest first.
pub async fn recent_verifications(db: &Db, limit: u32) -> AppResult<Vec<VerificationRow>> {
    let sql = db
        .sql(
            "SELECT id, started_at, finished_at, started_by, mode, status, checked, total, report \
             FROM chain_verifications ORDER BY id DESC LIMIT ?",
        )
        .bind(i64::from(limit));
    db.read()
        .all(&sql)
        .await?
        .iter()
        .map(verification_row)
        .collect()
}

/// The newest finished verification.
pub async fn last_finished_verification(db: &Db) -> AppResult<Option<VerificationRow>> {
    let sql = db.sql(
        "SELECT id, started_at, finished_at, started_by, mode, status, checked, total, report \
         FROM chain_verifications WHERE status <> 'running' ORDER BY id DESC LIMIT 1",
    );
    db.read()
        .optional(&sql)
        .await?
        .as_ref()
        .map(verification_row)
        .transpose()
}

// ---------------------------------------------------------------------------
// Retention policy, legal hold and retention runs.

/// What Settings stored: the policy (None: Leptos.toml's), the legal hold,
/// and who changed them when.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredRetention {
    pub policy: Option<RetentionPolicy>,
    pub legal_hold: bool,
    pub updated_at: Option<i64>,
    pub updated_by: Option<String>,
}

pub async fn stored_retention(db: &Db) -> AppResult<StoredRetention> {
    let sql = db.sql("SELECT policy, legal_hold, updated_at, updated_by FROM retention_settings");
    let row = db.read().optional(&sql).await?;
    let Some(r) = row else {
        return Ok(StoredRetention::default());
    };
    let policy: Option<String> = r.get(0)?;
    Ok(StoredRetention {
        policy: policy.and_then(|p| serde_json::from_str(&p).ok()),
        legal_hold: r.get(1)?,
        updated_at: r.get(2)?,
        updated_by: r.get(3)?,
    })
}

async fn legal_hold_in(tx: &mut Tx) -> AppResult<bool> {
    let sql = tx.sql("SELECT legal_hold FROM retention_settings");
    let hold: Option<bool> = tx.scalar_opt(&sql).await?;
    Ok(hold.unwrap_or(false))
}

/// The answer to a deletion while the legal hold is on.
pub fn legal_hold_error() -> AppError {
    AppError::Conflict(
        "a legal hold is on: no event can be deleted until an admin lifts it in Settings → Retention".into(),
    )
}

/// Refuses (409) when the legal hold is on: called in each deletion
/// transaction, so a hold switched on mid-way stops the next chunk.
pub async fn refuse_under_hold(tx: &mut Tx) -> AppResult<()> {
    if legal_hold_in(tx).await? {
        return Err(legal_hold_error());
    }
    Ok(())
}

/// Stores the policy (None: back to Leptos.toml's) and the hold, by `by`,
/// in the caller's transaction (with its audit event).
pub async fn save_retention_in(
    tx: &mut Tx,
    policy: Option<&RetentionPolicy>,
    legal_hold: bool,
    by: &str,
) -> AppResult<()> {
    let sql = tx
        .sql(
            "INSERT INTO retention_settings (singleton, policy, legal_hold, updated_at, updated_by) \
             VALUES (1, ?1, ?2, ?3, ?4) ON CONFLICT (singleton) DO UPDATE SET \
             policy = ?1, legal_hold = ?2, updated_at = ?3, updated_by = ?4",
        )
        .bind(policy.map(|p| serde_json::to_string(p).unwrap_or_default()))
        .bind(legal_hold)
        .bind(tx.now())
        .bind(by);
    tx.execute(&sql).await?;
    Ok(())
}

fn retention_run(r: &DbRow) -> AppResult<RetentionRun> {
    Ok(RetentionRun {
        id: r.get(0)?,
        started_at: r.get(1)?,
        finished_at: r.get(2)?,
        removed: u64::try_from(r.get::<i64>(3)?).unwrap_or(0),
        status: r.get(4)?,
        event_id: r.get(5)?,
    })
}

pub async fn last_retention_run(db: &Db) -> AppResult<Option<RetentionRun>> {
    let sql = db.sql(
        "SELECT id, started_at, finished_at, removed, status, event_id FROM retention_runs \
         ORDER BY id DESC LIMIT 1",
    );
    db.read()
        .optional(&sql)
        .await?
        .as_ref()
        .map(retention_run)
        .transpose()
}

/// Events removed per retention transaction.
pub const RETENTION_CHUNK: usize = 1_000;
/// The first transaction of a rule removes this many: its pages are cold
/// (read from disk under the write lock), so it starts small and doubles.
const FIRST_CHUNK: usize = 100;
const DAY_MICROS: i64 = 86_400_000_000;

/// What a retention run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionOutcome {
    pub run: RetentionRun,
    /// Transactions it took, the longest one, and the median.
    pub chunks: u64,
    pub longest_chunk: Duration,
    pub median_chunk: Duration,
    /// Transactions that took over 100 ms.
    pub slow_chunks: u64,
    /// The retention cut after the run.
    pub cut_id: i64,
}

/// One rule of a policy: events (of `action`, or of every action not named
/// in `except`) older than `cutoff` go.
struct Rule {
    action: Option<String>,
    except: Vec<String>,
    cutoff: i64,
}

fn rules(policy: &RetentionPolicy, now: i64) -> Vec<Rule> {
    let mut rules: Vec<Rule> = policy
        .by_action
        .iter()
        .filter_map(|r| {
            r.keep_days.map(|d| Rule {
                action: Some(r.action.clone()),
                except: Vec::new(),
                cutoff: now - i64::from(d) * DAY_MICROS,
            })
        })
        .collect();
    if let Some(d) = policy.keep_days {
        rules.push(Rule {
            action: None,
            except: policy.by_action.iter().map(|r| r.action.clone()).collect(),
            cutoff: now - i64::from(d) * DAY_MICROS,
        });
    }
    rules
}

/// Applies `policy` as of `now`: removes every event older than its period
/// (an event exactly at the boundary stays), in transactions of
/// [`RETENTION_CHUNK`] (starting at [`FIRST_CHUNK`]), oldest first. Each transaction advances the
/// retention cut over the removed prefix of the chain, and leaves
/// tombstones for removed entries above it, so the chain still verifies.
/// The run ends with its System event (count removed) and a retention
/// checkpoint. A legal hold stops it (between chunks too). `None` when the
/// policy removes nothing.
pub async fn apply_retention(
    db: &Db,
    policy: &RetentionPolicy,
    now: i64,
) -> AppResult<Option<RetentionOutcome>> {
    // One run at a time, whichever server: the holder of the lock is the
    // only one running, so a run still marked running was interrupted.
    let Some(_running) = db.try_exclusive(super::RETENTION_LOCK).await? else {
        tracing::info!("retention is running on another server");
        return Ok(None);
    };
    close_interrupted_runs(db).await?;
    if !policy.removes_anything() {
        return Ok(None);
    }
    let rules = rules(policy, now);
    let described = serde_json::json!({
        "policy": policy,
        "text": policy.describe(),
        "cutoffs": rules.iter().map(|r| serde_json::json!({
            "action": r.action, "except": r.except, "before": r.cutoff,
        })).collect::<Vec<_>>(),
    })
    .to_string();
    let mut tx = super::begin(db).await?;
    let held = legal_hold_in(&mut tx).await?;
    let sql = tx
        .sql(
            "INSERT INTO retention_runs (started_at, policy, status, finished_at) \
             VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(db.now())
        .bind(&described)
        .bind(if held { "held" } else { "running" })
        .bind(held.then(|| db.now()));
    let run_id: i64 = tx.scalar(&sql).await?;
    tx.commit().await?;
    let mut chunks = 0u64;
    let mut times: Vec<Duration> = Vec::new();
    let mut status = if held { "held" } else { "done" };
    if let (false, Some(cutoff)) = (held, partition_cutoff(db, policy, &rules)) {
        if drop_old_partitions(db, cutoff, run_id, &mut times).await? {
            status = "held";
        }
        chunks = times.len() as u64;
    }
    if status == "done" {
        'rules: for rule in &rules {
            let mut last: Option<(i64, i64)> = None;
            let mut size = FIRST_CHUNK;
            loop {
                // Chosen before the write lock is taken: only a deletion
                // could change them meanwhile, and then fewer go.
                let ids = retention_candidates(db, rule, last, size).await?;
                if ids.is_empty() {
                    break;
                }
                let began = Instant::now();
                let mut tx = super::begin(db).await?;
                if legal_hold_in(&mut tx).await? {
                    status = "held";
                    break 'rules;
                }
                last = retention_chunk(&mut tx, &ids, run_id).await?.or(last);
                tx.commit().await?;
                chunks += 1;
                times.push(began.elapsed());
                if ids.len() < size {
                    break;
                }
                size = (size * 2).min(RETENTION_CHUNK);
                tokio::task::yield_now().await;
            }
        }
    }
    // The cut catches up over tombstones left below the oldest event.
    let mut catching_up = status == "done";
    while catching_up {
        let began = Instant::now();
        let mut tx = super::begin(db).await?;
        let before = chain_state_cut(&mut tx).await?;
        let after = advance_cut(&mut tx, &[]).await?;
        tx.commit().await?;
        catching_up = after.id != before;
        if catching_up {
            times.push(began.elapsed());
            chunks += 1;
            tokio::task::yield_now().await;
        }
    }
    let run = finish_run(db, run_id, status, Some(policy)).await?;
    let (_, cut) = chain_state(db).await?;
    Ok(Some(RetentionOutcome {
        run,
        chunks,
        longest_chunk: times.iter().max().copied().unwrap_or_default(),
        slow_chunks: times.iter().filter(|t| t.as_millis() > 100).count() as u64,
        median_chunk: {
            times.sort_unstable();
            times.get(times.len() / 2).copied().unwrap_or_default()
        },
        cut_id: cut.id,
    }))
}

/// Before which whole partitions may be dropped (PostgreSQL): the earliest
/// cut-off of the policy, when it has a default period and no action is
/// kept forever.
fn partition_cutoff(db: &Db, policy: &RetentionPolicy, rules: &[Rule]) -> Option<i64> {
    let forever = policy.by_action.iter().any(|r| r.keep_days.is_none());
    if db.backend() != Backend::Postgres || policy.keep_days.is_none() || forever {
        return None;
    }
    rules.iter().map(|r| r.cutoff).min()
}

/// Drops, one transaction each, the partitions wholly before `cutoff`.
/// `true` when a legal hold stopped it.
/// How long dropping a partition waits for the readers of `events`.
const DROP_LOCK_TIMEOUT: &str = "2s";

async fn drop_old_partitions(
    db: &Db,
    cutoff: i64,
    run_id: i64,
    times: &mut Vec<Duration>,
) -> AppResult<bool> {
    let mut tx = db.begin_snapshot().await?;
    let partitions = super::list_partitions(&mut tx).await?;
    tx.commit().await?;
    for partition in partitions.iter().filter(|p| p.to <= cutoff) {
        let began = Instant::now();
        let mut tx = super::begin(db).await?;
        if legal_hold_in(&mut tx).await? {
            return Ok(true);
        }
        // DROP TABLE waits for every reader of `events` (an export's cursor,
        // say) and makes every later one wait behind it: it gives up after
        // a moment, and the rows go one transaction at a time instead.
        tx.execute(&tx.sql(format!("SET LOCAL lock_timeout = '{DROP_LOCK_TIMEOUT}'")))
            .await?;
        if drop_partition(&mut tx, partition, run_id).await.is_err() {
            tracing::warn!(
                partition = %partition.name,
                "retention could not drop a partition in time; its rows are deleted instead"
            );
            break;
        }
        tx.commit().await?;
        times.push(began.elapsed());
        tokio::task::yield_now().await;
    }
    Ok(false)
}

/// Drops one month of events: the retention cut moves up to just below the
/// oldest event in any other month, and the partition's events above it
/// (sent late, with old times) are tombstoned first, so the chain still
/// verifies; then the table goes, whatever its size, in one statement.
async fn drop_partition(tx: &mut Tx, partition: &super::Partition, run_id: i64) -> AppResult<()> {
    let name = &partition.name;
    let (head, cut) = chain_state_on(tx).await?;
    let sql = tx
        .sql(
            "SELECT MIN(m) FROM (SELECT MIN(id) AS m FROM events WHERE occurred_at < ? \
             UNION ALL SELECT MIN(id) FROM events WHERE occurred_at >= ?) o",
        )
        .bind(partition.from)
        .bind(partition.to);
    let oldest_left: Option<i64> = tx.scalar(&sql).await?;
    let target = oldest_left.map_or(head.id, |id| id - 1);
    let held: i64 = tx
        .scalar(&tx.sql(format!("SELECT COUNT(*) FROM {name}")))
        .await?;
    let mut keep_above = cut.id;
    if target > cut.id {
        let hash = if target == head.id {
            Some(head.hash.to_vec())
        } else {
            let sql = tx
                .sql(format!(
                    "SELECT chain_hash FROM {name} WHERE id = ?1 UNION ALL \
                     SELECT chain_hash FROM event_tombstones WHERE id = ?1 LIMIT 1"
                ))
                .bind(target);
            tx.scalar_opt::<Option<Vec<u8>>>(&sql).await?.flatten()
        };
        if let Some(hash) = hash.and_then(|h| Hash::try_from(h).ok()) {
            let sql = tx
                .sql(format!(
                    "SELECT COUNT(*) FROM {name} WHERE id > ? AND id <= ?"
                ))
                .bind(cut.id)
                .bind(target);
            let below: i64 = tx.scalar(&sql).await?;
            let sql = tx
                .sql("DELETE FROM event_tombstones WHERE id > ? AND id <= ?")
                .bind(cut.id)
                .bind(target);
            let dropped = i64::try_from(tx.execute(&sql).await?).unwrap_or(0);
            let new_cut = ChainHead {
                id: target,
                hash,
                count: cut.count + below + dropped,
            };
            set_cut(tx, &new_cut).await?;
            keep_above = target;
        }
    }
    super::note_stream_gaps_of_table_in(
        tx,
        name,
        &format!("retention:{run_id}"),
        &format!("removed by retention run {run_id} before delivery"),
    )
    .await?;
    let sql = tx
        .sql(format!(
            "INSERT INTO event_tombstones (id, occurred_at, deleted_at, retention_run_id, content_hash, chain_hash) \
             SELECT id, occurred_at, ?, ?, content_hash, chain_hash FROM {name} WHERE id > ?"
        ))
        .bind(tx.now())
        .bind(run_id)
        .bind(keep_above);
    tx.execute(&sql).await?;
    super::volume::subtract_removed(tx, |s| {
        s.push(format!("{name} WHERE true"));
    })
    .await?;
    tx.execute(&tx.sql(format!("DROP TABLE {name}"))).await?;
    add_removed(tx, run_id, held).await?;
    tracing::info!(partition = %name, events = held, "retention dropped a partition");
    Ok(())
}

/// An event a retention transaction removed.
struct Removed {
    id: i64,
    at: i64,
    content: Option<Vec<u8>>,
    chain: Option<Vec<u8>>,
}

/// The next `size` events of `rule`, oldest first after `last`.
async fn retention_candidates(
    db: &Db,
    rule: &Rule,
    last: Option<(i64, i64)>,
    size: usize,
) -> AppResult<Vec<i64>> {
    let mut b = db.sql("SELECT id FROM events WHERE occurred_at < ");
    b.push_bind(rule.cutoff);
    if let Some(action) = &rule.action {
        b.push(" AND action = ").push_bind(action);
    }
    if !rule.except.is_empty() {
        b.push(" AND action NOT IN (");
        for (n, action) in rule.except.iter().enumerate() {
            b.push(if n == 0 { "" } else { ", " }).push_bind(action);
        }
        b.push(")");
    }
    if let Some((at, id)) = last {
        b.push(" AND (occurred_at, id) > (")
            .push_bind(at)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    b.push(" ORDER BY occurred_at, id LIMIT ")
        .push_bind(size as i64);
    db.read().column(&b).await
}

/// One retention transaction: removes the events `ids` (those still there),
/// moves the cut, and tombstones the removed entries above it. Returns the
/// newest (occurred_at, id) removed, where the next chunk goes on from.
async fn retention_chunk(tx: &mut Tx, ids: &[i64], run_id: i64) -> AppResult<Option<(i64, i64)>> {
    super::volume::subtract_removed(tx, |s| {
        s.push("events WHERE ").push_in("id", ids);
    })
    .await?;
    super::note_stream_gaps_in(
        tx,
        ids,
        &format!("retention:{run_id}"),
        &format!("removed by retention run {run_id} before delivery"),
    )
    .await?;
    let mut delete = tx.sql("DELETE FROM events WHERE ");
    delete
        .push_in("id", ids)
        .push(" RETURNING id, occurred_at, content_hash, chain_hash");
    let mut removed: Vec<Removed> = tx
        .all(&delete)
        .await?
        .iter()
        .map(|r| {
            Ok(Removed {
                id: r.get(0)?,
                at: r.get(1)?,
                content: r.get(2)?,
                chain: r.get(3)?,
            })
        })
        .collect::<AppResult<_>>()?;
    removed.sort_unstable_by_key(|r| r.id);
    let newest = removed.iter().map(|r| (r.at, r.id)).max();
    let new_cut = advance_cut(tx, &removed).await?;
    let now = tx.now();
    let above: Vec<_> = removed.iter().filter(|r| r.id > new_cut.id).collect();
    if !above.is_empty() {
        let mut insert = tx.sql(
            "INSERT INTO event_tombstones (id, occurred_at, deleted_at, retention_run_id, content_hash, chain_hash) VALUES ",
        );
        for (n, r) in above.into_iter().enumerate() {
            insert
                .push(if n == 0 { "(" } else { ", (" })
                .push_bind(r.id)
                .push(", ")
                .push_bind(r.at)
                .push(", ")
                .push_bind(now)
                .push(", ")
                .push_bind(run_id)
                .push(", ")
                .push_bind(r.content.clone())
                .push(", ")
                .push_bind(r.chain.clone())
                .push(")");
        }
        tx.execute(&insert).await?;
    }
    add_removed(tx, run_id, removed.len() as i64).await?;
    Ok(newest)
}

async fn add_removed(tx: &mut Tx, run_id: i64, n: i64) -> AppResult<()> {
    let sql = tx
        .sql("UPDATE retention_runs SET removed = removed + ? WHERE id = ?")
        .bind(n)
        .bind(run_id);
    tx.execute(&sql).await?;
    Ok(())
}

async fn chain_state_cut(tx: &mut Tx) -> AppResult<i64> {
    tx.scalar(&tx.sql("SELECT cut_id FROM chain_state")).await
}

/// Tombstones dropped at most per transaction when the cut moves over them.
const CUT_STEP: i64 = 5_000;

fn chain_pair(row: &DbRow) -> AppResult<(ChainHead, ChainCut)> {
    Ok((
        ChainHead {
            id: row.get(0)?,
            hash: hash_of(row.get(1)?)?,
            count: row.get(2)?,
        },
        ChainHead {
            id: row.get(3)?,
            hash: hash_of(row.get(4)?)?,
            count: row.get(5)?,
        },
    ))
}

/// Moves the retention cut up towards just below the oldest event left,
/// over entries that are all gone: `removed` (this transaction's, not yet
/// tombstoned) and tombstones, of which it drops at most [`CUT_STEP`].
/// Returns the cut; removed entries above it need tombstones.
async fn advance_cut(tx: &mut Tx, removed: &[Removed]) -> AppResult<ChainCut> {
    let (head, cut) = chain_state_on(tx).await?;
    let oldest_left: Option<i64> = tx.scalar(&tx.sql("SELECT MIN(id) FROM events")).await?;
    let mut target = oldest_left.map_or(head.id, |id| id - 1);
    // A long run of tombstones goes in steps: no transaction grows long.
    let step = tx
        .sql("SELECT id FROM event_tombstones WHERE id > ? ORDER BY id LIMIT 1 OFFSET ?")
        .bind(cut.id)
        .bind(CUT_STEP - 1);
    let step_end: Option<i64> = tx.scalar_opt(&step).await?;
    if let Some(end) = step_end {
        target = target.min(end);
    }
    if target <= cut.id {
        return Ok(cut);
    }
    let hash = if target == head.id {
        Some(head.hash)
    } else if let Some(r) = removed.iter().find(|r| r.id == target) {
        r.chain.clone().and_then(|h| h.try_into().ok())
    } else {
        let sql = tx
            .sql("SELECT chain_hash FROM event_tombstones WHERE id = ?")
            .bind(target);
        tx.scalar_opt::<Option<Vec<u8>>>(&sql)
            .await?
            .flatten()
            .and_then(|h| h.try_into().ok())
    };
    // Without the hash at the target (the chain has a hole there), the cut
    // stays, and every removed entry keeps a tombstone.
    let Some(hash) = hash else {
        return Ok(cut);
    };
    let drop = tx
        .sql("DELETE FROM event_tombstones WHERE id > ? AND id <= ?")
        .bind(cut.id)
        .bind(target);
    let dropped = tx.execute(&drop).await?;
    let below = removed
        .iter()
        .filter(|r| r.id > cut.id && r.id <= target)
        .count() as i64;
    let new_cut = ChainHead {
        id: target,
        hash,
        count: cut.count + below + i64::try_from(dropped).unwrap_or(0),
    };
    set_cut(tx, &new_cut).await?;
    Ok(new_cut)
}

async fn set_cut(tx: &mut Tx, cut: &ChainCut) -> AppResult<()> {
    let sql = tx
        .sql("UPDATE chain_state SET cut_id = ?, cut_hash = ?, cut_count = ?")
        .bind(cut.id)
        .bind(cut.hash.to_vec())
        .bind(cut.count);
    tx.execute(&sql).await?;
    Ok(())
}

/// Ends a run: its System event with the count removed, its status, and a
/// retention checkpoint at the cut, in one transaction.
async fn finish_run(
    db: &Db,
    run_id: i64,
    status: &str,
    policy: Option<&RetentionPolicy>,
) -> AppResult<RetentionRun> {
    let mut tx = super::begin(db).await?;
    let sql = tx
        .sql("SELECT removed, policy FROM retention_runs WHERE id = ?")
        .bind(run_id);
    let row = tx.one(&sql).await?;
    let (removed, policy_text): (i64, String) = (row.get(0)?, row.get(1)?);
    let (_, cut) = chain_state_on(&mut tx).await?;
    let mut event_id = None;
    if status != "held" {
        let policy_line = policy
            .map(RetentionPolicy::describe)
            .unwrap_or_else(|| "the policy of an interrupted run".into());
        let description = match status {
            "done" => format!("Retention removed {removed} events ({policy_line})"),
            _ => format!(
                "Retention run {run_id} was interrupted after removing {removed} events ({policy_line})"
            ),
        };
        let policy_json: serde_json::Value =
            serde_json::from_str(&policy_text).unwrap_or(serde_json::Value::Null);
        let record = NewEvent {
            occurred_at: db.now(),
            ip: None,
            initiator: crate::models::Initiator {
                kind: crate::models::InitiatorKind::System,
                id: Some("retention".into()),
                name: Some("Retention".into()),
                email: None,
                role: None,
            },
            action: "RETENTION".into(),
            table_name: Some("events".into()),
            primary_key: None,
            description,
            before: None,
            after: Some(
                serde_json::json!({
                    "run": run_id,
                    "removed": removed,
                    "status": status,
                    "cut_id": cut.id,
                    "policy": policy_json,
                })
                .to_string(),
            ),
            user_agent: None,
            request_id: None,
            session_id: None,
        };
        event_id = insert_events_in(&mut tx, std::slice::from_ref(&record), None)
            .await?
            .first()
            .copied();
        if cut.id > 0 {
            checkpoint_in(&mut tx, "retention", &cut, None).await?;
        }
    }
    let sql = tx
        .sql(
            "UPDATE retention_runs SET status = ?, finished_at = COALESCE(finished_at, ?), event_id = ? \
             WHERE id = ? RETURNING id, started_at, finished_at, removed, status, event_id",
        )
        .bind(status)
        .bind(db.now())
        .bind(event_id)
        .bind(run_id);
    let row = tx.one(&sql).await?;
    let run = retention_run(&row)?;
    tx.commit().await?;
    Ok(run)
}

/// Runs left "running" by a server that stopped mid-way get their System
/// event now, so no removal goes unrecorded.
async fn close_interrupted_runs(db: &Db) -> AppResult<()> {
    let stale: Vec<i64> = db
        .read()
        .column(&db.sql("SELECT id FROM retention_runs WHERE status = 'running'"))
        .await?;
    for id in stale {
        finish_run(db, id, "interrupted", None).await?;
    }
    Ok(())
}

/// The ids of stored tombstones, in order (for tests).
pub async fn tombstone_ids(db: &Db) -> AppResult<Vec<i64>> {
    db.read()
        .column(&db.sql("SELECT id FROM event_tombstones ORDER BY id"))
        .await
}
