//! The integrity chain's jobs: verifications (started from the dashboard or
//! the command line), the hourly maintenance pass (a checkpoint, then the
//! retention policy), and the checkpoint download.

use super::auth::{self_event, ClientInfo, RequestUser};
use super::chain::Expected;
use super::config::AppConfig;
use super::state::AppState;
use super::store::{self, Db};
use crate::errors::{AppError, AppResult};
use crate::integrity::{RetentionPolicy, VerificationReport, VerifyMode};
use crate::models::{format_count, Role, UserInfo};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often the maintenance pass runs.
pub const MAINTENANCE_EVERY: Duration = Duration::from_secs(3600);
/// How often the partitions are seen to (PostgreSQL).
pub const PARTITIONS_EVERY: Duration = Duration::from_secs(60);
/// How often a running verification's progress is written down.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// The policy in force: Settings' when an admin set one, else Leptos.toml's
/// (and whether it came from Settings).
pub fn policy_in_force(
    stored: &store::StoredRetention,
    config: &AppConfig,
) -> (RetentionPolicy, bool) {
    match &stored.policy {
        Some(policy) => (policy.clone(), true),
        None => (config.retention.clone(), false),
    }
}

/// [`policy_in_force`], reading what Settings stored.
pub async fn effective_policy(db: &Db, config: &AppConfig) -> AppResult<(RetentionPolicy, bool)> {
    Ok(policy_in_force(&store::stored_retention(db).await?, config))
}

/// One line for the verification's event and the command line.
pub fn summary(report: &VerificationReport) -> String {
    let checked = format_count(report.checked);
    if report.intact() {
        format!(
            "Integrity verification ({}): intact, {checked} entries checked from {}",
            report.mode.as_str(),
            report.start.from
        )
    } else {
        let n = report.problems.len() as u64 + report.more_problems;
        let first = report
            .problems
            .first()
            .map(|p| p.describe())
            .unwrap_or_default();
        format!(
            "Integrity verification ({}): BROKEN, {} {} in {checked} entries; first: {first}",
            report.mode.as_str(),
            format_count(n),
            if n == 1 { "problem" } else { "problems" },
        )
    }
}

/// Runs verification `id` (already recorded as running) to its end:
/// progress written as it goes, then the outcome and its VERIFY event.
pub async fn run_verification(
    db: &Db,
    id: i64,
    mode: VerifyMode,
    external: Vec<Expected>,
    actor: Option<&UserInfo>,
    client: &ClientInfo,
) -> AppResult<VerificationReport> {
    let checked = Arc::new(AtomicU64::new(0));
    let total = Arc::new(AtomicU64::new(0));
    let reporter = {
        let (db, checked, total) = (db.clone(), checked.clone(), total.clone());
        tokio::spawn(async move {
            let mut last = u64::MAX;
            loop {
                tokio::time::sleep(PROGRESS_EVERY).await;
                let now = checked.load(Ordering::Relaxed);
                if now != last {
                    last = now;
                    let _ =
                        store::verification_progress(&db, id, now, total.load(Ordering::Relaxed))
                            .await;
                }
            }
        })
    };
    let outcome = store::verify_chain(db, mode, external, |c, t| {
        checked.store(c, Ordering::Relaxed);
        total.store(t, Ordering::Relaxed);
    })
    .await;
    reporter.abort();
    match &outcome {
        Ok(report) => {
            let record = self_event(db.now(), actor, client, "VERIFY", None, summary(report));
            store::finish_verification(db, id, Some(report), record).await?;
        }
        Err(error) => {
            tracing::error!(%error, "verification failed");
            let record = self_event(
                db.now(),
                actor,
                client,
                "VERIFY",
                None,
                "Integrity verification could not finish; the details are in the server log".into(),
            );
            store::finish_verification(db, id, None, record).await?;
        }
    }
    outcome
}

/// Starts a verification in the background; returns its id at once.
pub async fn start_verification(
    state: &AppState,
    user: &UserInfo,
    client: &ClientInfo,
    mode: VerifyMode,
) -> AppResult<i64> {
    let id = store::begin_verification(&state.db, &user.email, mode).await?;
    let (db, user, client) = (state.db.clone(), user.clone(), client.clone());
    tokio::spawn(async move {
        let _ = run_verification(&db, id, mode, Vec::new(), Some(&user), &client).await;
    });
    Ok(id)
}

/// One maintenance pass: a periodic checkpoint of the head, the ingest
/// answers kept for retries that are past their 24 hours, retention, then
/// the event ids of the events retention removed.
pub async fn maintain(db: &Db, config: &AppConfig) -> AppResult<()> {
    store::write_checkpoint(db, "periodic").await?;
    let forgotten = store::purge_ingest_requests(db).await?;
    if forgotten > 0 {
        tracing::info!(forgotten, "ingest answers older than 24 hours forgotten");
    }
    let (policy, _) = effective_policy(db, config).await?;
    if let Some(outcome) = store::apply_retention(db, &policy, db.now()).await? {
        tracing::info!(
            removed = outcome.run.removed,
            status = %outcome.run.status,
            chunks = outcome.chunks,
            longest_ms = outcome.longest_chunk.as_millis() as u64,
            "retention run"
        );
    }
    let released = store::purge_event_ids(db).await?;
    if released > 0 {
        tracing::info!(released, "event ids of events retention removed forgotten");
    }
    Ok(())
}

/// The partitions' upkeep (PostgreSQL): this month's and the next made
/// ahead, and events that landed in the DEFAULT partition moved into their
/// months. A reader in the way makes it give up after a moment; the next
/// pass tries again.
pub async fn upkeep_partitions(db: &Db) {
    match store::prepare_partitions(db, db.now()).await {
        Ok(pass) if !pass.made.is_empty() || pass.moved > 0 => {
            tracing::info!(made = ?pass.made, moved = pass.moved, "partitions");
        }
        Ok(_) => {}
        Err(error) => {
            tracing::warn!(%error, "partition upkeep could not finish; the next pass tries again");
        }
    }
}

/// Closes the verifications a stopped server left running, then keeps the
/// partitions every [`PARTITIONS_EVERY`] and runs [`maintain`] a minute
/// after start and then every [`MAINTENANCE_EVERY`], until the server stops.
pub fn spawn_maintenance(db: Db, config: Arc<AppConfig>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(error) = store::abandon_verifications(&db).await {
            tracing::error!(%error, "could not close abandoned verifications");
        }
        let mut every = tokio::time::interval(PARTITIONS_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_pass = tokio::time::Instant::now() + PARTITIONS_EVERY;
        loop {
            every.tick().await;
            upkeep_partitions(&db).await;
            if tokio::time::Instant::now() >= next_pass {
                next_pass += MAINTENANCE_EVERY;
                if let Err(error) = maintain(&db, &config).await {
                    tracing::error!(%error, "maintenance pass failed");
                }
            }
        }
    })
}

/// A checkpoint as a line of the exported file.
pub fn checkpoint_line(c: &crate::integrity::Checkpoint) -> String {
    serde_json::json!({
        "checkpoint": c.id,
        "kind": c.kind,
        "last_id": c.last_id,
        "entry_count": c.entry_count,
        "chain_hash": c.chain_hash,
        "created_at": chrono::DateTime::from_timestamp_micros(c.created_at)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    })
    .to_string()
}

/// Reads an exported checkpoint file back (JSON Lines).
pub fn parse_checkpoints(text: &str) -> Result<Vec<Expected>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, line)| {
            let v: serde_json::Value =
                serde_json::from_str(line).map_err(|e| format!("line {}: {e}", n + 1))?;
            let field = |k: &str| {
                v.get(k)
                    .and_then(serde_json::Value::as_i64)
                    .ok_or_else(|| format!("line {}: {k} is missing", n + 1))
            };
            let hash = v
                .get("chain_hash")
                .and_then(serde_json::Value::as_str)
                .and_then(|h| {
                    let mut out = [0u8; 32];
                    hex::decode_to_slice(h, &mut out).ok().map(|()| out)
                })
                .ok_or_else(|| format!("line {}: chain_hash is not 64 hex digits", n + 1))?;
            Ok(Expected {
                checkpoint: field("checkpoint")?,
                last_id: field("last_id")?,
                entry_count: field("entry_count")?,
                hash,
            })
        })
        .collect()
}

/// `GET /api/integrity/checkpoints`: every checkpoint as JSON Lines, to keep
/// somewhere else (auditors and admins).
pub async fn download_checkpoints(
    State(state): State<AppState>,
    user: Option<Extension<RequestUser>>,
) -> Response {
    let result = async {
        let user = user
            .and_then(|Extension(RequestUser(u))| u)
            .ok_or_else(|| AppError::Unauthorized("Sign in to continue.".into()))?;
        if !user.role.allows(Role::Auditor) {
            return Err(AppError::Forbidden(
                "Your role may not export checkpoints; it needs the auditor role.".into(),
            ));
        }
        let list = store::list_checkpoints(&state.db).await?;
        let mut body = String::new();
        for c in &list {
            body.push_str(&checkpoint_line(c));
            body.push('\n');
        }
        Ok::<_, AppError>(body)
    }
    .await;
    match result {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, "application/x-ndjson; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"auditdeck-checkpoints.jsonl\"",
                ),
            ],
            body,
        )
            .into_response(),
        Err(error) => error.into_response(),
    }
}
