//! PostgreSQL's events table is partitioned by month of `occurred_at`
//! (`events_pYYYYMM`, UTC), with a DEFAULT partition for events of a month
//! that has none yet. No DDL runs inside a write transaction that waits
//! without a bound: maintenance makes the coming months ahead, the insert
//! path makes a missing month in a short transaction of its own before it
//! takes the writer's turn (or lets the batch land in the DEFAULT partition
//! when a reader is in the way), and maintenance later moves those events
//! into their months. Retention drops the months that lie wholly before its
//! cut-off.

use super::{Backend, Db, Exec, Sql, Tx};
use crate::errors::AppResult;
use chrono::{Datelike, TimeZone, Utc};
use std::collections::BTreeSet;
use std::time::Duration;

/// One month's partition: its name and its bounds (microseconds, the upper
/// one excluded).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Partition {
    pub name: String,
    pub from: i64,
    pub to: i64,
}

/// The partition that holds an event at `micros`.
pub fn partition_of(micros: i64) -> Partition {
    let at = Utc
        .timestamp_micros(micros)
        .single()
        .unwrap_or_else(|| Utc.timestamp_micros(0).single().unwrap_or_default());
    month_partition(at.year(), at.month())
}

fn month_start(year: i32, month: u32) -> i64 {
    Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0)
        .single()
        .map(|t| t.timestamp_micros())
        .unwrap_or(0)
}

fn month_partition(year: i32, month: u32) -> Partition {
    let (next_year, next_month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    Partition {
        name: format!("events_p{year:04}{month:02}"),
        from: month_start(year, month),
        to: month_start(next_year, next_month),
    }
}

/// The partition a name stands for, if it is one of ours.
pub fn parse_partition(name: &str) -> Option<Partition> {
    let digits = name.strip_prefix("events_p")?;
    if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: i32 = digits[..4].parse().ok()?;
    let month: u32 = digits[4..].parse().ok()?;
    (1..=12)
        .contains(&month)
        .then(|| month_partition(year, month))
}

/// Where events of a month without a partition land (PostgreSQL's DEFAULT
/// partition); [`prepare_partitions`] moves them into their month.
pub const DEFAULT_PARTITION: &str = "events_default";

/// How long the insert path's attempt to make a missing month waits for the
/// readers of `events` (every later query on `events` waits behind it that
/// long at most). When it gives up, the batch goes into the DEFAULT partition.
const INSERT_PATH_LOCK_TIMEOUT: &str = "200ms";
/// How long maintenance waits for the readers before it tries again later.
const MAINTENANCE_LOCK_TIMEOUT: &str = "500ms";
/// After a failed attempt, the insert path does not try again for this long
/// (a backfill behind a long export would otherwise stall every page once a
/// batch).
const INSERT_PATH_BACKOFF: Duration = Duration::from_secs(10);

/// The columns an event is stored with (not the generated ones).
const STORED_COLUMNS: &str = "id, occurred_at, received_at, ip, ip_bin, initiator_kind, \
    initiator_id, initiator_name, initiator_email, initiator_role, action, table_name, \
    primary_key, description, before_data, after_data, user_agent, request_id, session_id, \
    api_key_id, max_occurred_at, content_hash, chain_hash, field_sums";

/// The months among `wanted` that have no partition yet.
async fn missing(
    exec: &mut impl Exec,
    backend: Backend,
    wanted: BTreeSet<Partition>,
) -> AppResult<Vec<Partition>> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<String> = wanted.iter().map(|p| p.name.clone()).collect();
    let sql = Sql::new(
        backend,
        "SELECT relname::text FROM pg_class WHERE relnamespace = current_schema()::regnamespace \
         AND relname = ANY(string_to_array(?, ','))",
    )
    .bind(names.join(","));
    let existing: BTreeSet<String> = exec.column::<String>(&sql).await?.into_iter().collect();
    Ok(wanted
        .into_iter()
        .filter(|p| !existing.contains(&p.name))
        .collect())
}

/// Makes each of `months` in a transaction of its own that waits at most
/// `lock_timeout` for the readers of `events`. Stops at the first that
/// cannot be made (a reader is in the way, or the DEFAULT partition holds
/// events of that month: [`prepare_partitions`] moves them first).
async fn create_months(db: &Db, months: &[Partition], lock_timeout: &str) -> AppResult<()> {
    for p in months {
        let mut tx = db.begin_unlocked().await?;
        tx.execute(&tx.sql(format!("SET LOCAL lock_timeout = '{lock_timeout}'")))
            .await?;
        let create = tx.sql(format!(
            "CREATE TABLE IF NOT EXISTS {} PARTITION OF events FOR VALUES FROM ({}) TO ({})",
            p.name, p.from, p.to
        ));
        tx.execute(&create).await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Called by the insert path before it takes the writer's turn: makes the
/// months a batch needs that have no partition, never inside the writer's
/// transaction and never waiting long. When it cannot (a long reader holds
/// `events`), the batch is stored all the same, in the DEFAULT partition,
/// and maintenance moves it later: nothing is refused, nothing waits.
pub async fn make_months_for(db: &Db, times: impl Iterator<Item = i64>) -> AppResult<()> {
    if db.backend() != Backend::Postgres {
        return Ok(());
    }
    let wanted: BTreeSet<Partition> = times.map(partition_of).collect();
    let months = missing(&mut db.read(), db.backend(), wanted).await?;
    if months.is_empty() || db.partition_backoff().holds() {
        return Ok(());
    }
    if let Err(error) = create_months(db, &months, INSERT_PATH_LOCK_TIMEOUT).await {
        db.partition_backoff().start(INSERT_PATH_BACKOFF);
        tracing::info!(
            %error,
            months = ?months.iter().map(|p| &p.name).collect::<Vec<_>>(),
            "a month's partition could not be made at once; its events go into the default partition until maintenance moves them"
        );
    }
    Ok(())
}

/// What a pass of [`prepare_partitions`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PartitionPass {
    /// Partitions made.
    pub made: Vec<String>,
    /// Events moved out of the DEFAULT partition into their months.
    pub moved: u64,
}

/// The months the DEFAULT partition holds events of, oldest first (one
/// index seek a month).
async fn default_months(exec: &mut impl Exec, backend: Backend) -> AppResult<Vec<Partition>> {
    let mut months = Vec::new();
    let mut from = i64::MIN;
    loop {
        let sql = Sql::new(
            backend,
            format!("SELECT MIN(occurred_at) FROM {DEFAULT_PARTITION} WHERE occurred_at >= ?"),
        )
        .bind(from);
        let Some(at) = exec.scalar::<Option<i64>>(&sql).await? else {
            break;
        };
        let month = partition_of(at);
        from = month.to;
        months.push(month);
    }
    Ok(months)
}

/// Makes this month's and next month's partitions before any event needs
/// them, and moves the events that went into the DEFAULT partition (a
/// backfill while a long export was open, say) into partitions of their
/// months. It waits at most a moment for the readers of `events` and tries
/// again at the next pass; PostgreSQL only.
pub async fn prepare_partitions(db: &Db, now: i64) -> AppResult<PartitionPass> {
    let mut pass = PartitionPass::default();
    if db.backend() != Backend::Postgres {
        return Ok(pass);
    }
    let backend = db.backend();
    let ahead: BTreeSet<Partition> = [partition_of(now), partition_of(partition_of(now).to)]
        .into_iter()
        .collect();
    let stranded = default_months(&mut db.read(), backend).await?;
    if stranded.is_empty() {
        let months = missing(&mut db.read(), backend, ahead).await?;
        create_months(db, &months, MAINTENANCE_LOCK_TIMEOUT).await?;
        pass.made = months.into_iter().map(|p| p.name).collect();
        return Ok(pass);
    }
    // The default partition holds events of months that need partitions:
    // in one transaction (holding the writer's turn, so no batch lands in
    // it meanwhile), it is detached, the months are made and its events
    // moved into them, and it is attached again. Ids, times and hashes are
    // unchanged: the chain does not notice.
    let mut tx = db.begin().await?;
    tx.execute(&tx.sql(format!(
        "SET LOCAL lock_timeout = '{MAINTENANCE_LOCK_TIMEOUT}'"
    )))
    .await?;
    let wanted: BTreeSet<Partition> = ahead.into_iter().chain(stranded.iter().cloned()).collect();
    let months = missing(&mut tx, backend, wanted).await?;
    tx.execute(&tx.sql(format!(
        "ALTER TABLE events DETACH PARTITION {DEFAULT_PARTITION}"
    )))
    .await?;
    for p in &months {
        let create = tx.sql(format!(
            "CREATE TABLE IF NOT EXISTS {} PARTITION OF events FOR VALUES FROM ({}) TO ({})",
            p.name, p.from, p.to
        ));
        tx.execute(&create).await?;
    }
    for p in &stranded {
        let sql = tx
            .sql(format!(
                "WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE occurred_at >= ? AND occurred_at < ? \
                 RETURNING {STORED_COLUMNS}) INSERT INTO events ({STORED_COLUMNS}) SELECT {STORED_COLUMNS} FROM moved"
            ))
            .bind(p.from)
            .bind(p.to);
        pass.moved += tx.execute(&sql).await?;
    }
    tx.execute(&tx.sql(format!(
        "ALTER TABLE events ATTACH PARTITION {DEFAULT_PARTITION} DEFAULT"
    )))
    .await?;
    tx.commit().await?;
    pass.made = months.into_iter().map(|p| p.name).collect();
    tracing::info!(made = ?pass.made, moved = pass.moved, "events moved out of the default partition");
    Ok(pass)
}

/// How many events the DEFAULT partition holds (PostgreSQL; 0 on SQLite).
pub async fn default_partition_count(db: &Db) -> AppResult<u64> {
    if db.backend() != Backend::Postgres {
        return Ok(0);
    }
    let n: i64 = db
        .read()
        .scalar(&db.sql(format!("SELECT COUNT(*) FROM {DEFAULT_PARTITION}")))
        .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Brings the planner's statistics up to date after a bulk load (the demo
/// data, a bench's data set). PostgreSQL plans each partition from its own
/// statistics, and a partition that was never analysed is planned from
/// guesses that turn a filtered page into a scan of the month; autovacuum
/// keeps them current in service, this is for the moment before it has run
/// (or where it is off). SQLite plans without them: nothing to do.
pub async fn refresh_statistics(db: &Db) -> AppResult<()> {
    if db.backend() != Backend::Postgres {
        return Ok(());
    }
    // Outside the writer's lock: ingest goes on while it reads the months.
    db.read().execute(&db.sql("ANALYZE events")).await?;
    Ok(())
}

/// Every partition of the events table, oldest first.
pub async fn list_partitions(tx: &mut Tx) -> AppResult<Vec<Partition>> {
    let sql = tx.sql(
        "SELECT c.relname::text FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid \
         JOIN pg_class p ON p.oid = i.inhparent \
         WHERE p.relname = 'events' AND p.relnamespace = current_schema()::regnamespace",
    );
    let mut parts: Vec<Partition> = tx
        .column::<String>(&sql)
        .await?
        .iter()
        .filter_map(|n| parse_partition(n))
        .collect();
    parts.sort();
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_have_names_and_bounds() {
        let nov = partition_of(1_763_942_400_000_000); // 2025-11-24
        assert_eq!(nov.name, "events_p202511");
        assert_eq!(nov.from, 1_761_955_200_000_000); // 2025-11-01
        assert_eq!(nov.to, 1_764_547_200_000_000); // 2025-12-01
        let dec = partition_of(nov.to);
        assert_eq!(dec.name, "events_p202512");
        assert_eq!(partition_of(dec.to).name, "events_p202601");
        assert_eq!(partition_of(nov.to - 1), nov);
        assert_eq!(parse_partition("events_p202512"), Some(dec));
        assert_eq!(parse_partition("events_p202513"), None);
        assert_eq!(parse_partition("events"), None);
    }
}
