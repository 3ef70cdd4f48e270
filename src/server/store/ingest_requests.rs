//! Ingest that is safe to retry. A request that carries an `Idempotency-Key`
//! is stored together with its answer (the ids it was given), in the one
//! transaction that stores its events: a request is either stored with its
//! answer or not at all. A retry with the same key and the same body finds
//! the answer and stores nothing; the same key with another body is refused.
//! The writer's turn (the write connection on SQLite, an advisory lock on
//! PostgreSQL) makes concurrent retries, on one server or several, wait for
//! each other, so the second always sees the first's answer.

use super::db::{Db, Exec};
use super::{insert_events_in, partitions, NewEvent};
use crate::errors::{AppError, AppResult};
use crate::server::clock::Micros;

/// How long a request's answer is kept for retries.
pub const IDEMPOTENCY_WINDOW: Micros = 24 * 3600 * 1_000_000;

/// A request's idempotency key and the hash of its body.
#[derive(Debug, Clone)]
pub struct Idempotency {
    pub key: String,
    pub body_hash: String,
}

/// What storing a batch came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    /// Stored now, with these ids.
    Stored(Vec<i64>),
    /// A retry of a request stored earlier: its ids, nothing stored now.
    Replayed(Vec<i64>),
}

impl Ingested {
    pub fn ids(&self) -> &[i64] {
        match self {
            Self::Stored(ids) | Self::Replayed(ids) => ids,
        }
    }
}

/// Stores `events` sent by `api_key_id`, once per idempotency key.
pub async fn ingest_events(
    db: &Db,
    events: &[NewEvent],
    api_key_id: i64,
    idempotency: Option<&Idempotency>,
) -> AppResult<Ingested> {
    partitions::make_months_for(db, events.iter().map(|e| e.occurred_at)).await?;
    let mut tx = db.begin().await?;
    let now = tx.now();
    if let Some(idem) = idempotency {
        let find = tx
            .sql(
                "SELECT body_hash, ids, created_at FROM ingest_requests \
                 WHERE api_key_id = ? AND idempotency_key = ?",
            )
            .bind(api_key_id)
            .bind(&idem.key);
        if let Some(row) = tx.optional(&find).await? {
            let created_at: i64 = row.get(2)?;
            if created_at > now - IDEMPOTENCY_WINDOW {
                let hash: String = row.get(0)?;
                if hash != idem.body_hash {
                    return Err(AppError::Unprocessable(format!(
                        "Idempotency-Key: \"{}\" was used for another request body in the last 24 hours; \
                         use a new key for a new request",
                        idem.key
                    )));
                }
                let ids: String = row.get(1)?;
                let ids: Vec<i64> = serde_json::from_str(&ids).map_err(|error| {
                    tracing::error!(%error, "a stored ingest answer is unreadable");
                    AppError::Internal
                })?;
                return Ok(Ingested::Replayed(ids));
            }
            // Older than the window: the key may be used again.
            let expired = tx
                .sql("DELETE FROM ingest_requests WHERE api_key_id = ? AND idempotency_key = ?")
                .bind(api_key_id)
                .bind(&idem.key);
            tx.execute(&expired).await?;
        }
    }
    let ids = insert_events_in(&mut tx, events, Some(api_key_id)).await?;
    if let Some(idem) = idempotency {
        let remember = tx
            .sql(
                "INSERT INTO ingest_requests (api_key_id, idempotency_key, body_hash, ids, created_at) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(api_key_id)
            .bind(&idem.key)
            .bind(&idem.body_hash)
            .bind(serde_json::to_string(&ids).unwrap_or_default())
            .bind(now);
        tx.execute(&remember).await?;
    }
    tx.commit().await?;
    Ok(Ingested::Stored(ids))
}

/// Forgets the answers older than the window; how many.
pub async fn purge_ingest_requests(db: &Db) -> AppResult<u64> {
    let mut db = db;
    let sql = db
        .sql("DELETE FROM ingest_requests WHERE created_at <= ?")
        .bind(db.now() - IDEMPOTENCY_WINDOW);
    db.execute(&sql).await
}
