//! PostgreSQL's events table is partitioned by month of `occurred_at`
//! (`events_pYYYYMM`, UTC). The insert path makes the partitions a batch
//! needs, under the writer lock; retention drops the months that lie wholly
//! before its cut-off.

use super::{Backend, Db, Exec, Tx};
use crate::errors::AppResult;
use chrono::{Datelike, TimeZone, Utc};
use std::collections::BTreeSet;

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

/// Makes the partitions that events at these times need and that do not
/// exist yet. Runs in the caller's write transaction (DDL is transactional
/// in PostgreSQL, and the writer lock keeps two servers from racing).
pub async fn ensure_partitions(tx: &mut Tx, times: impl Iterator<Item = i64>) -> AppResult<()> {
    let wanted: BTreeSet<Partition> = times.map(partition_of).collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = wanted.iter().map(|p| p.name.clone()).collect();
    let existing = tx
        .sql(
            "SELECT relname::text FROM pg_class WHERE relnamespace = current_schema()::regnamespace \
             AND relname = ANY(string_to_array(?, ','))",
        )
        .bind(names.join(","));
    let existing: BTreeSet<String> = tx.column::<String>(&existing).await?.into_iter().collect();
    for p in wanted.iter().filter(|p| !existing.contains(&p.name)) {
        let create = tx.sql(format!(
            "CREATE TABLE IF NOT EXISTS {} PARTITION OF events FOR VALUES FROM ({}) TO ({})",
            p.name, p.from, p.to
        ));
        tx.execute(&create).await?;
    }
    Ok(())
}

/// Makes this month's and next month's partitions before any event needs
/// them, so that the insert path seldom runs DDL: creating a partition waits
/// for the readers of `events` (a long export, say), and it gives up after a
/// moment here, to try again at the next maintenance pass. PostgreSQL only.
pub async fn prepare_partitions(db: &Db, now: i64) -> AppResult<()> {
    if db.backend() != Backend::Postgres {
        return Ok(());
    }
    let mut tx = db.begin().await?;
    tx.execute(&tx.sql("SET LOCAL lock_timeout = '2s'")).await?;
    ensure_partitions(&mut tx, [now, partition_of(now).to].into_iter()).await?;
    tx.commit().await
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
