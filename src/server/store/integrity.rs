//! The chain's SQL: its head, the walk a verification reads, checkpoints,
//! verification records, the retention policy, legal hold and retention runs.

use super::bulk::json_text;
use super::{insert_events_in, now_micros, Db, NewEvent, Tx};
use crate::errors::{AppError, AppResult};
use crate::integrity::{
    Checkpoint, DeletedBy, RetentionPolicy, RetentionRun, VerificationReport, VerificationRow,
    VerifyMode, WalkStart,
};
use crate::server::chain::{self, Entry, EventFields, Expected, Hash, Walker, GENESIS};
use serde_json::value::RawValue;
use sqlx::{Row, SqlitePool};
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
    let row = sqlx::query("SELECT head_id, head_hash, head_count FROM chain_state")
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| {
            tracing::error!("chain_state is missing: the chain was never started");
            AppError::Internal
        })?;
    Ok(ChainHead {
        id: row.try_get(0)?,
        hash: hash_of(row.try_get(1)?)?,
        count: row.try_get(2)?,
    })
}

pub(super) async fn set_chain_head(tx: &mut Tx, head: &ChainHead) -> AppResult<()> {
    sqlx::query("UPDATE chain_state SET head_id = ?, head_hash = ?, head_count = ?")
        .bind(head.id)
        .bind(head.hash.to_vec())
        .bind(head.count)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn chain_state_on(conn: &mut sqlx::SqliteConnection) -> AppResult<(ChainHead, ChainCut)> {
    let row = sqlx::query(
        "SELECT head_id, head_hash, head_count, cut_id, cut_hash, cut_count FROM chain_state",
    )
    .fetch_one(&mut *conn)
    .await?;
    chain_pair(&row)
}

/// The chain's head and retention cut, now.
pub async fn chain_state(db: &Db) -> AppResult<(ChainHead, ChainCut)> {
    let mut conn = db.read.acquire().await?;
    chain_state_on(&mut conn).await
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

async fn read_walk_batch(
    conn: &mut sqlx::SqliteConnection,
    after: i64,
    to: i64,
) -> AppResult<WalkBatch> {
    let events: String = sqlx::query_scalar(
        "SELECT json_group_array(json_array(id, occurred_at, received_at, ip, initiator_kind, \
         initiator_id, initiator_name, initiator_email, initiator_role, action, table_name, \
         primary_key, description, before_data, after_data, user_agent, request_id, session_id, \
         api_key_id, hex(content_hash), hex(chain_hash), hex(field_sums))) \
         FROM (SELECT * FROM events WHERE id > ? AND id <= ? ORDER BY id)",
    )
    .bind(after)
    .bind(to)
    .fetch_one(&mut *conn)
    .await?;
    let rows = sqlx::query(
        "SELECT t.id, t.occurred_at, t.content_hash, t.chain_hash, t.deletion_event_id, \
         t.retention_run_id, r.event_id FROM event_tombstones t \
         LEFT JOIN retention_runs r ON r.id = t.retention_run_id \
         WHERE t.id > ? AND t.id <= ? ORDER BY t.id",
    )
    .bind(after)
    .bind(to)
    .fetch_all(&mut *conn)
    .await?;
    let tombstones = rows
        .iter()
        .map(|r| -> AppResult<TombRow> {
            let deletion: Option<i64> = r.try_get(4)?;
            let run: Option<i64> = r.try_get(5)?;
            Ok(TombRow {
                id: r.try_get(0)?,
                occurred_at: r.try_get(1)?,
                content_hash: r.try_get(2)?,
                chain_hash: r.try_get(3)?,
                by: match (deletion, run) {
                    (Some(event_id), _) => DeletedBy::Deletion { event_id },
                    (None, run) => DeletedBy::Retention {
                        run_id: run.unwrap_or(0),
                        event_id: r.try_get(6)?,
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

/// Reads `(after, to]` in batches on `conn` and sends them down `out`.
async fn read_walk(
    mut conn: impl std::ops::DerefMut<Target = sqlx::SqliteConnection>,
    mut after: i64,
    to: i64,
    out: tokio::sync::mpsc::Sender<AppResult<WalkBatch>>,
) {
    while after < to {
        let upto = (after + WALK_BATCH).min(to);
        let batch = read_walk_batch(&mut conn, after, upto).await;
        let failed = batch.is_err();
        if out.send(batch).await.is_err() || failed {
            return;
        }
        after = upto;
    }
}

/// The checkpoints, oldest first.
pub async fn list_checkpoints(db: &Db) -> AppResult<Vec<Checkpoint>> {
    let mut conn = db.read.acquire().await?;
    checkpoints_on(&mut conn).await
}

async fn checkpoints_on(conn: &mut sqlx::SqliteConnection) -> AppResult<Vec<Checkpoint>> {
    let rows = sqlx::query(
        "SELECT id, created_at, kind, last_id, entry_count, hex(chain_hash), verified_at \
         FROM chain_checkpoints ORDER BY id",
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Checkpoint {
                id: r.try_get(0)?,
                created_at: r.try_get(1)?,
                kind: r.try_get(2)?,
                last_id: r.try_get(3)?,
                entry_count: r.try_get(4)?,
                chain_hash: r.try_get::<String, _>(5)?.to_lowercase(),
                verified_at: r.try_get(6)?,
            })
        })
        .collect()
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
    let mut tx = db.read.begin().await?;
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
    let max_id: Option<i64> = sqlx::query_scalar(
        "SELECT MAX(m) FROM (SELECT MAX(id) AS m FROM events UNION ALL SELECT MAX(id) FROM event_tombstones)",
    )
    .fetch_one(&mut *tx)
    .await?;
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

/// The stored chain hash of entry `id` (event or tombstone).
async fn entry_chain_hash(conn: &mut sqlx::SqliteConnection, id: i64) -> AppResult<Option<Hash>> {
    let bytes: Option<Option<Vec<u8>>> = sqlx::query_scalar(
        "SELECT chain_hash FROM events WHERE id = ?1 UNION ALL SELECT chain_hash FROM event_tombstones WHERE id = ?1 LIMIT 1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(bytes.flatten().and_then(|b| b.try_into().ok()))
}

/// Hashes the events and tombstones of a database written before the chain
/// existed, in id order, and starts the chain's state. Does nothing once
/// the chain is started.
pub(super) async fn backfill_chain(write: &SqlitePool) -> AppResult<()> {
    let started: Option<i64> = sqlx::query_scalar("SELECT singleton FROM chain_state")
        .fetch_optional(write)
        .await?;
    if started.is_some() {
        return Ok(());
    }
    let began = Instant::now();
    let mut tx = write.begin().await?;
    let to: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(m), 0) FROM (SELECT MAX(id) AS m FROM events UNION ALL SELECT MAX(id) FROM event_tombstones)",
    )
    .fetch_one(&mut *tx)
    .await?;
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
                sqlx::query(
                    "UPDATE events SET content_hash = ?, chain_hash = ?, field_sums = ? WHERE id = ?",
                )
                .bind(content.to_vec())
                .bind(link.to_vec())
                .bind(sums)
            } else {
                sqlx::query(
                    "UPDATE event_tombstones SET content_hash = ?, chain_hash = ? WHERE id = ?",
                )
                .bind(content.to_vec())
                .bind(link.to_vec())
            };
            update.bind(id).execute(&mut *tx).await?;
        }
        after = upto;
    }
    sqlx::query(
        "INSERT INTO chain_state (singleton, head_id, head_hash, head_count, cut_hash) VALUES (1, ?, ?, ?, zeroblob(32))",
    )
    .bind(head.id)
    .bind(head.hash.to_vec())
    .bind(head.count)
    .execute(&mut *tx)
    .await?;
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
    let newest: Option<i64> = sqlx::query_scalar(
        "SELECT last_id FROM chain_checkpoints WHERE kind = ? ORDER BY id DESC LIMIT 1",
    )
    .bind(kind)
    .fetch_optional(&mut **tx)
    .await?;
    if at.id == 0 || newest == Some(at.id) {
        return Ok(None);
    }
    let now = now_micros();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO chain_checkpoints (created_at, kind, last_id, entry_count, chain_hash, verified_at) \
         VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(now)
    .bind(kind)
    .bind(at.id)
    .bind(at.count)
    .bind(at.hash.to_vec())
    .bind(verified_at)
    .fetch_one(&mut **tx)
    .await?;
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
    let running: Option<i64> =
        sqlx::query_scalar("SELECT id FROM chain_verifications WHERE status = 'running' LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
    if running.is_some() {
        return Err(AppError::Conflict(
            "a verification is already running; its progress is on the Integrity page".into(),
        ));
    }
    let id = sqlx::query_scalar(
        "INSERT INTO chain_verifications (started_at, started_by, mode) VALUES (?, ?, ?) RETURNING id",
    )
    .bind(now_micros())
    .bind(started_by)
    .bind(mode.as_str())
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(id)
}

pub async fn verification_progress(db: &Db, id: i64, checked: u64, total: u64) -> AppResult<()> {
    sqlx::query(
        "UPDATE chain_verifications SET checked = ?, total = ? WHERE id = ? AND status = 'running'",
    )
    .bind(i64::try_from(checked).unwrap_or(i64::MAX))
    .bind(i64::try_from(total).unwrap_or(i64::MAX))
    .bind(id)
    .execute(&db.write)
    .await?;
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
    let now = now_micros();
    let mut tx = super::begin(db).await?;
    let (status, text, checked) = match report {
        Some(r) => (
            if r.intact() { "intact" } else { "broken" },
            serde_json::to_string(r).ok(),
            r.checked,
        ),
        None => ("failed", None, 0),
    };
    sqlx::query(
        "UPDATE chain_verifications SET status = ?, finished_at = ?, report = ?, checked = MAX(checked, ?) WHERE id = ?",
    )
    .bind(status)
    .bind(now)
    .bind(text)
    .bind(i64::try_from(checked).unwrap_or(i64::MAX))
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if let Some(r) = report {
        if r.intact() {
            sqlx::query(
                "UPDATE chain_checkpoints SET verified_at = ? WHERE last_id > ? AND last_id <= ? AND verified_at IS NULL",
            )
            .bind(now)
            .bind(r.start.after_id)
            .bind(r.end_id)
            .execute(&mut *tx)
            .await?;
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

/// Marks verifications left running by a server that stopped as failed.
pub async fn abandon_verifications(db: &Db) -> AppResult<u64> {
    Ok(sqlx::query(
        "UPDATE chain_verifications SET status = 'failed', finished_at = ? WHERE status = 'running'",
    )
    .bind(now_micros())
    .execute(&db.write)
    .await?
    .rows_affected())
}

fn verification_row(r: &sqlx::sqlite::SqliteRow) -> AppResult<VerificationRow> {
    let report: Option<String> = r.try_get("report")?;
    let mode: String = r.try_get("mode")?;
    Ok(VerificationRow {
        id: r.try_get("id")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
        started_by: r.try_get("started_by")?,
        mode: VerifyMode::parse(&mode).unwrap_or(VerifyMode::Full),
        status: r.try_get("status")?,
        checked: u64::try_from(r.try_get::<i64, _>("checked")?).unwrap_or(0),
        total: u64::try_from(r.try_get::<i64, _>("total")?).unwrap_or(0),
        report: report.and_then(|t| serde_json::from_str(&t).ok()),
    })
}

/// The newest verifications, newest first.
pub async fn recent_verifications(db: &Db, limit: u32) -> AppResult<Vec<VerificationRow>> {
    let rows = sqlx::query(
        "SELECT id, started_at, finished_at, started_by, mode, status, checked, total, report \
         FROM chain_verifications ORDER BY id DESC LIMIT ?",
    )
    .bind(i64::from(limit))
    .fetch_all(&db.read)
    .await?;
    rows.iter().map(verification_row).collect()
}

/// The newest finished verification.
pub async fn last_finished_verification(db: &Db) -> AppResult<Option<VerificationRow>> {
    let row = sqlx::query(
        "SELECT id, started_at, finished_at, started_by, mode, status, checked, total, report \
         FROM chain_verifications WHERE status <> 'running' ORDER BY id DESC LIMIT 1",
    )
    .fetch_optional(&db.read)
    .await?;
    row.as_ref().map(verification_row).transpose()
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
    let row =
        sqlx::query("SELECT policy, legal_hold, updated_at, updated_by FROM retention_settings")
            .fetch_optional(&db.read)
            .await?;
    let Some(r) = row else {
        return Ok(StoredRetention::default());
    };
    let policy: Option<String> = r.try_get(0)?;
    Ok(StoredRetention {
        policy: policy.and_then(|p| serde_json::from_str(&p).ok()),
        legal_hold: r.try_get::<i64, _>(1)? != 0,
        updated_at: r.try_get(2)?,
        updated_by: r.try_get(3)?,
    })
}

async fn legal_hold_in(tx: &mut Tx) -> AppResult<bool> {
    let hold: Option<i64> = sqlx::query_scalar("SELECT legal_hold FROM retention_settings")
        .fetch_optional(&mut **tx)
        .await?;
    Ok(hold.unwrap_or(0) != 0)
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
    sqlx::query(
        "INSERT INTO retention_settings (singleton, policy, legal_hold, updated_at, updated_by) \
         VALUES (1, ?1, ?2, ?3, ?4) ON CONFLICT (singleton) DO UPDATE SET \
         policy = ?1, legal_hold = ?2, updated_at = ?3, updated_by = ?4",
    )
    .bind(policy.map(|p| serde_json::to_string(p).unwrap_or_default()))
    .bind(i64::from(legal_hold))
    .bind(now_micros())
    .bind(by)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn retention_run(r: &sqlx::sqlite::SqliteRow) -> AppResult<RetentionRun> {
    Ok(RetentionRun {
        id: r.try_get(0)?,
        started_at: r.try_get(1)?,
        finished_at: r.try_get(2)?,
        removed: u64::try_from(r.try_get::<i64, _>(3)?).unwrap_or(0),
        status: r.try_get(4)?,
        event_id: r.try_get(5)?,
    })
}

pub async fn last_retention_run(db: &Db) -> AppResult<Option<RetentionRun>> {
    let row = sqlx::query(
        "SELECT id, started_at, finished_at, removed, status, event_id FROM retention_runs ORDER BY id DESC LIMIT 1",
    )
    .fetch_optional(&db.read)
    .await?;
    row.as_ref().map(retention_run).transpose()
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
    let run_id: i64 = sqlx::query_scalar(
        "INSERT INTO retention_runs (started_at, policy, status, finished_at) VALUES (?, ?, ?, ?) RETURNING id",
    )
    .bind(now_micros())
    .bind(&described)
    .bind(if held { "held" } else { "running" })
    .bind(held.then(now_micros))
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut chunks = 0u64;
    let mut times: Vec<Duration> = Vec::new();
    let mut status = if held { "held" } else { "done" };
    if !held {
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
    let mut b =
        sqlx::QueryBuilder::<sqlx::Sqlite>::new("SELECT id FROM events WHERE occurred_at < ");
    b.push_bind(rule.cutoff);
    if let Some(action) = &rule.action {
        b.push(" AND action = ").push_bind(action.clone());
    }
    if !rule.except.is_empty() {
        b.push(" AND action NOT IN (SELECT value FROM json_each(")
            .push_bind(serde_json::to_string(&rule.except).unwrap_or_default())
            .push("))");
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
    Ok(b.build_query_scalar().fetch_all(&db.read).await?)
}

/// One retention transaction: removes the events `ids` (those still there),
/// moves the cut, and tombstones the removed entries above it. Returns the
/// newest (occurred_at, id) removed, where the next chunk goes on from.
async fn retention_chunk(tx: &mut Tx, ids: &[i64], run_id: i64) -> AppResult<Option<(i64, i64)>> {
    let list = serde_json::to_string(&ids).unwrap_or_default();
    let gone = sqlx::query(
        "DELETE FROM events WHERE id IN (SELECT value FROM json_each(?)) \
         RETURNING id, occurred_at, content_hash, chain_hash",
    )
    .bind(&list)
    .fetch_all(&mut **tx)
    .await?;
    let mut removed: Vec<Removed> = gone
        .iter()
        .map(|r| {
            Ok(Removed {
                id: r.try_get(0)?,
                at: r.try_get(1)?,
                content: r.try_get(2)?,
                chain: r.try_get(3)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    removed.sort_unstable_by_key(|r| r.id);
    let newest = removed.iter().map(|r| (r.at, r.id)).max();
    let new_cut = advance_cut(tx, &removed).await?;
    let now = now_micros();
    let above: Vec<_> = removed.iter().filter(|r| r.id > new_cut.id).collect();
    if !above.is_empty() {
        let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO event_tombstones (id, occurred_at, deleted_at, retention_run_id, content_hash, chain_hash) ",
        );
        insert.push_values(above, |mut row, r| {
            row.push_bind(r.id)
                .push_bind(r.at)
                .push_bind(now)
                .push_bind(run_id)
                .push_bind(r.content.clone())
                .push_bind(r.chain.clone());
        });
        insert.build().execute(&mut **tx).await?;
    }
    sqlx::query("UPDATE retention_runs SET removed = removed + ? WHERE id = ?")
        .bind(removed.len() as i64)
        .bind(run_id)
        .execute(&mut **tx)
        .await?;
    Ok(newest)
}

async fn chain_state_cut(tx: &mut Tx) -> AppResult<i64> {
    Ok(sqlx::query_scalar("SELECT cut_id FROM chain_state")
        .fetch_one(&mut **tx)
        .await?)
}

/// Tombstones dropped at most per transaction when the cut moves over them.
const CUT_STEP: i64 = 5_000;

fn chain_pair(row: &sqlx::sqlite::SqliteRow) -> AppResult<(ChainHead, ChainCut)> {
    Ok((
        ChainHead {
            id: row.try_get(0)?,
            hash: hash_of(row.try_get(1)?)?,
            count: row.try_get(2)?,
        },
        ChainHead {
            id: row.try_get(3)?,
            hash: hash_of(row.try_get(4)?)?,
            count: row.try_get(5)?,
        },
    ))
}

/// Moves the retention cut up towards just below the oldest event left,
/// over entries that are all gone: `removed` (this transaction's, not yet
/// tombstoned) and tombstones, of which it drops at most [`CUT_STEP`].
/// Returns the cut; removed entries above it need tombstones.
async fn advance_cut(tx: &mut Tx, removed: &[Removed]) -> AppResult<ChainCut> {
    let (head, cut) = chain_state_on(tx).await?;
    let oldest_left: Option<i64> = sqlx::query_scalar("SELECT MIN(id) FROM events")
        .fetch_one(&mut **tx)
        .await?;
    let mut target = oldest_left.map_or(head.id, |id| id - 1);
    // A long run of tombstones goes in steps: no transaction grows long.
    let step_end: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM event_tombstones WHERE id > ? ORDER BY id LIMIT 1 OFFSET ?",
    )
    .bind(cut.id)
    .bind(CUT_STEP - 1)
    .fetch_optional(&mut **tx)
    .await?;
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
        sqlx::query_scalar::<_, Option<Vec<u8>>>(
            "SELECT chain_hash FROM event_tombstones WHERE id = ?",
        )
        .bind(target)
        .fetch_optional(&mut **tx)
        .await?
        .flatten()
        .and_then(|h| h.try_into().ok())
    };
    // Without the hash at the target (the chain has a hole there), the cut
    // stays, and every removed entry keeps a tombstone.
    let Some(hash) = hash else {
        return Ok(cut);
    };
    let dropped = sqlx::query("DELETE FROM event_tombstones WHERE id > ? AND id <= ?")
        .bind(cut.id)
        .bind(target)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    let below = removed
        .iter()
        .filter(|r| r.id > cut.id && r.id <= target)
        .count() as i64;
    let new_cut = ChainHead {
        id: target,
        hash,
        count: cut.count + below + i64::try_from(dropped).unwrap_or(0),
    };
    sqlx::query("UPDATE chain_state SET cut_id = ?, cut_hash = ?, cut_count = ?")
        .bind(new_cut.id)
        .bind(new_cut.hash.to_vec())
        .bind(new_cut.count)
        .execute(&mut **tx)
        .await?;
    Ok(new_cut)
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
    let (removed, policy_text): (i64, String) =
        sqlx::query_as("SELECT removed, policy FROM retention_runs WHERE id = ?")
            .bind(run_id)
            .fetch_one(&mut *tx)
            .await?;
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
            occurred_at: now_micros(),
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
    let row = sqlx::query(
        "UPDATE retention_runs SET status = ?, finished_at = COALESCE(finished_at, ?), event_id = ? \
         WHERE id = ? RETURNING id, started_at, finished_at, removed, status, event_id",
    )
    .bind(status)
    .bind(now_micros())
    .bind(event_id)
    .bind(run_id)
    .fetch_one(&mut *tx)
    .await?;
    let run = retention_run(&row)?;
    tx.commit().await?;
    Ok(run)
}

/// Runs left "running" by a server that stopped mid-way get their System
/// event now, so no removal goes unrecorded.
async fn close_interrupted_runs(db: &Db) -> AppResult<()> {
    let stale: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM retention_runs WHERE status = 'running'")
            .fetch_all(&db.read)
            .await?;
    for id in stale {
        finish_run(db, id, "interrupted", None).await?;
    }
    Ok(())
}

/// The ids of stored tombstones, in order (for tests).
pub async fn tombstone_ids(db: &Db) -> AppResult<Vec<i64>> {
    Ok(
        sqlx::query_scalar("SELECT id FROM event_tombstones ORDER BY id")
            .fetch_all(&db.read)
            .await?,
    )
}
