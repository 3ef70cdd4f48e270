//! `event_volume`: how many events of each action every quarter of an hour
//! holds (see its migration). Kept in the transactions that insert or
//! remove events, like [`super::combos`], so it is exact whenever they
//! commit; the activity chart and the Overview read it instead of the log.

use super::db::{Exec, Sql, Tx};
use super::{combos, NewEvent};
use crate::errors::AppResult;
use std::collections::HashMap;

/// A quarter of an hour in microseconds: every zone's offset is a multiple.
pub const QUARTER: i64 = 15 * 60 * 1_000_000;

/// The quarter an instant falls in (its start), in SQL.
const QUARTER_OF: &str = "occurred_at - ((occurred_at % 900000000) + 900000000) % 900000000";

const UPSERT: &str = " ON CONFLICT (quarter, action) DO UPDATE SET n = event_volume.n + excluded.n";

/// Rows written per statement (3 parameters each).
const CHUNK: usize = 1_000;

/// The start of the quarter `micros` falls in.
pub fn quarter_of(micros: i64) -> i64 {
    micros - micros.rem_euclid(QUARTER)
}

/// Adds `events`, about to be inserted in `tx`, to their quarters.
pub(super) async fn add(tx: &mut Tx, events: &[NewEvent]) -> AppResult<()> {
    let mut counts: HashMap<(i64, &str), i64> = HashMap::new();
    for e in events {
        *counts
            .entry((quarter_of(e.occurred_at), e.action.as_str()))
            .or_default() += 1;
    }
    let counts: Vec<_> = counts.into_iter().collect();
    for chunk in counts.chunks(CHUNK) {
        let mut b = tx.sql("INSERT INTO event_volume (quarter, action, n) VALUES ");
        for (i, ((quarter, action), n)) in chunk.iter().enumerate() {
            b.push(if i == 0 { "(" } else { ", (" })
                .push_bind(*quarter)
                .push(", ")
                .push_bind(*action)
                .push(", ")
                .push_bind(*n)
                .push(")");
        }
        b.push(UPSERT);
        tx.execute(&b).await?;
    }
    Ok(())
}

/// Takes the events `source` names (it appends `events WHERE …`, or a
/// partition and a `WHERE`), about to be removed in `tx`, out of both
/// rollups: their combinations (by network and by address) and their
/// quarters.
pub(super) async fn subtract_removed(tx: &mut Tx, source: impl Fn(&mut Sql)) -> AppResult<()> {
    let mut sql = combos::subtract_sql(tx);
    source(&mut sql);
    combos::subtract(tx, sql).await?;
    combos::subtract_ip_combos(tx, &source).await?;
    let mut sql = tx.sql(format!(
        "INSERT INTO event_volume (quarter, action, n) SELECT {QUARTER_OF}, action, -COUNT(*) FROM "
    ));
    source(&mut sql);
    sql.push(" GROUP BY 1, 2").push(UPSERT);
    tx.execute(&sql).await?;
    Ok(())
}

/// How many quarters' counts differ from the log's own (a recount of every
/// event): 0 when the table is exact. For tests and checks.
pub async fn volume_differences(db: &super::Db) -> AppResult<i64> {
    let sql = db.sql(format!(
        "SELECT COUNT(*) FROM (SELECT 1 FROM (\
         SELECT quarter, action, n FROM event_volume UNION ALL \
         SELECT {QUARTER_OF}, action, -COUNT(*) FROM events GROUP BY 1, 2) d \
         GROUP BY quarter, action HAVING SUM(n) <> 0) x"
    ));
    db.read().scalar(&sql).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instant_falls_in_the_quarter_that_starts_at_or_before_it() {
        assert_eq!(quarter_of(0), 0);
        assert_eq!(quarter_of(QUARTER - 1), 0);
        assert_eq!(quarter_of(QUARTER), QUARTER);
        assert_eq!(quarter_of(-1), -QUARTER);
        assert_eq!(quarter_of(-QUARTER), -QUARTER);
    }
}
