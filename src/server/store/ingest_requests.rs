//! Ingest that is safe to retry. A request that carries an `Idempotency-Key`
//! is stored together with its answer (the ids it was given), in the one
//! transaction that stores its events: a request is either stored with its
//! answer or not at all. A retry with the same key and the same body finds
//! the answer and stores nothing; the same key with another body is refused.
//! The writer's turn (the write connection on SQLite, an advisory lock on
//! PostgreSQL) makes concurrent retries, on one server or several, wait for
//! each other, so the second always sees the first's answer.

use super::db::{Db, Exec, Tx};
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

/// An event's own id as its sender gave it (`event_id`, unique per API
/// key) and the hash of the event as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventKey {
    pub event_id: String,
    pub content_hash: String,
}

/// The answer to an ingest: an id for each event, in the order sent, and the
/// positions of the events whose `event_id` was stored before (their ids are
/// the stored events').
#[derive(
    Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[schema(example = json!({"ids": [100001, 100002, 17], "duplicates": [2]}))]
pub struct IngestAnswer {
    /// The events' ids, in the order sent.
    pub ids: Vec<i64>,
    /// The positions (from 0) of the events whose `event_id` was stored
    /// before: not stored again; their ids are the stored events'. Left out
    /// when there is none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub duplicates: Vec<usize>,
}

/// What storing a batch came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    /// Stored now (but for the duplicates it names).
    Stored(IngestAnswer),
    /// A retry of a request stored earlier: its answer, nothing stored now.
    Replayed(IngestAnswer),
}

impl Ingested {
    pub fn answer(&self) -> &IngestAnswer {
        match self {
            Self::Stored(a) | Self::Replayed(a) => a,
        }
    }

    pub fn ids(&self) -> &[i64] {
        &self.answer().ids
    }
}

/// Stored answers: an object, or (before `event_id`) the array of ids.
fn read_answer(text: &str) -> AppResult<IngestAnswer> {
    serde_json::from_str::<IngestAnswer>(text)
        .or_else(|_| {
            serde_json::from_str::<Vec<i64>>(text).map(|ids| IngestAnswer {
                ids,
                duplicates: Vec::new(),
            })
        })
        .map_err(|error| {
            tracing::error!(%error, "a stored ingest answer is unreadable");
            AppError::Internal
        })
}

/// Rows a statement with a list of values takes at once.
const KEYS_AT_ONCE: usize = 400;

/// Stores `events` sent by `api_key_id`, once per idempotency key, and each
/// event that has an `event_id` (`keys`, beside `events`) once per event id.
pub async fn ingest_events(
    db: &Db,
    events: Vec<NewEvent>,
    keys: &[Option<EventKey>],
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
                let answer: String = row.get(1)?;
                return Ok(Ingested::Replayed(read_answer(&answer)?));
            }
            // Older than the window: the key may be used again.
            let expired = tx
                .sql("DELETE FROM ingest_requests WHERE api_key_id = ? AND idempotency_key = ?")
                .bind(api_key_id)
                .bind(&idem.key);
            tx.execute(&expired).await?;
        }
    }
    let answer = if keys.iter().all(Option::is_none) {
        IngestAnswer {
            ids: insert_events_in(&mut tx, events, Some(api_key_id)).await?,
            duplicates: Vec::new(),
        }
    } else {
        insert_keyed(&mut tx, events, keys, api_key_id).await?
    };
    if let Some(idem) = idempotency {
        let remember = tx
            .sql(
                "INSERT INTO ingest_requests (api_key_id, idempotency_key, body_hash, ids, created_at) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(api_key_id)
            .bind(&idem.key)
            .bind(&idem.body_hash)
            .bind(serde_json::to_string(&answer).unwrap_or_default())
            .bind(now);
        tx.execute(&remember).await?;
    }
    tx.commit().await?;
    Ok(Ingested::Stored(answer))
}

/// Stores the events whose `event_id` is new and answers the stored ids of
/// the others; an `event_id` stored with other content is refused (409).
async fn insert_keyed(
    tx: &mut Tx,
    events: Vec<NewEvent>,
    keys: &[Option<EventKey>],
    api_key_id: i64,
) -> AppResult<IngestAnswer> {
    let keyed: Vec<(usize, &EventKey)> = keys
        .iter()
        .enumerate()
        .filter_map(|(i, k)| k.as_ref().map(|k| (i, k)))
        .collect();
    let mut known = std::collections::HashMap::new();
    for chunk in keyed.chunks(KEYS_AT_ONCE) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let mut find = tx
            .sql(format!(
                "SELECT event_id, id, content_hash FROM ingest_event_ids \
                 WHERE api_key_id = ? AND event_id IN ({marks})"
            ))
            .bind(api_key_id);
        for (_, key) in chunk {
            find = find.bind(&key.event_id);
        }
        for row in tx.all(&find).await? {
            known.insert(
                row.get::<String>(0)?,
                (row.get::<i64>(1)?, row.get::<String>(2)?),
            );
        }
    }
    let mut ids = vec![0; events.len()];
    let mut duplicates = Vec::new();
    for &(i, key) in &keyed {
        if let Some((id, hash)) = known.get(&key.event_id) {
            if *hash != key.content_hash {
                let at = if events.len() > 1 {
                    format!("[{i}].")
                } else {
                    String::new()
                };
                return Err(AppError::Conflict(format!(
                    "{at}event_id: \"{}\" was stored as event #{id} with other content; \
                     an event_id names one event (send a new one for a new event)",
                    key.event_id
                )));
            }
            ids[i] = *id;
            duplicates.push(i);
        }
    }
    let fresh: Vec<usize> = (0..events.len())
        .filter(|i| !duplicates.contains(i))
        .collect();
    let to_store: Vec<NewEvent> = events
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !duplicates.contains(i))
        .map(|(_, e)| e)
        .collect();
    let stored = insert_events_in(tx, to_store, Some(api_key_id)).await?;
    let mut remember = Vec::new();
    for (&i, id) in fresh.iter().zip(&stored) {
        ids[i] = *id;
        if let Some(key) = &keys[i] {
            remember.push((key, *id));
        }
    }
    for chunk in remember.chunks(KEYS_AT_ONCE) {
        let rows = vec!["(?, ?, ?, ?)"; chunk.len()].join(", ");
        let mut insert = tx.sql(format!(
            "INSERT INTO ingest_event_ids (api_key_id, event_id, id, content_hash) VALUES {rows}"
        ));
        for (key, id) in chunk {
            insert = insert
                .bind(api_key_id)
                .bind(&key.event_id)
                .bind(*id)
                .bind(&key.content_hash);
        }
        tx.execute(&insert).await?;
    }
    Ok(IngestAnswer { ids, duplicates })
}

/// Forgets the answers older than the window; how many.
pub async fn purge_ingest_requests(db: &Db) -> AppResult<u64> {
    let mut db = db;
    let sql = db
        .sql("DELETE FROM ingest_requests WHERE created_at <= ?")
        .bind(db.now() - IDEMPOTENCY_WINDOW);
    db.execute(&sql).await
}

/// Forgets the event ids of events that are no longer in the log (removed
/// by retention or deletion): their ids may be sent again; how many.
pub async fn purge_event_ids(db: &Db) -> AppResult<u64> {
    let mut db = db;
    let sql =
        db.sql("DELETE FROM ingest_event_ids WHERE id < (SELECT COALESCE(MIN(id), 0) FROM events)");
    db.execute(&sql).await
}
