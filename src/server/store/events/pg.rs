//! How PostgreSQL reads a page with filters.
//!
//! Its planner cannot tell how filters correlate with an index's order or
//! how many rows a keyword keeps, and with a `LIMIT` it likes to walk an
//! index in the page's order testing each row: a second when the matches
//! are rare or far along it (a keyword none of a table's events hold, a
//! user whose rows are at the end of the IP order). So a page is read in
//! steps whose cost is bounded: a short walk along one index in the page's
//! order, each entry tested against every filter; if that does not fill the
//! page, a longer walk sized by the matches the first one met; if that does
//! not either, every match as a set (bitmaps over the filters' indexes,
//! which a walk this unproductive shows to be few) and the page sorted
//! from it.

use super::{event_row, ROW_COLUMNS};
use crate::errors::AppResult;
use crate::models::EventRow;
use crate::server::store::{Db, Exec, Sql};

/// Entries the first walk reads.
const FIRST_WALK: i64 = 300;
/// Most entries the second walk reads.
const LONGEST_WALK: i64 = 5_000;

/// One page: `walk` writes the condition an index serves in `order` (its
/// own value, the time range, where the page starts), `all` every
/// condition; `order` is the page's `ORDER BY` list over `e`.
pub(super) async fn walk_then_set(
    db: &Db,
    walk: impl Fn(&mut Sql),
    all: impl Fn(&mut Sql),
    order: &str,
    want: i64,
) -> AppResult<Vec<EventRow>> {
    let walk_for = |budget: i64| {
        let mut b = db.sql(format!(
            "SELECT {ROW_COLUMNS} FROM (SELECT e.* FROM events e WHERE 1 = 1"
        ));
        walk(&mut b);
        b.push(format!(" ORDER BY {order} LIMIT "))
            .push_bind(budget)
            .push(") e WHERE 1 = 1");
        all(&mut b);
        b.push(format!(" ORDER BY {order} LIMIT ")).push_bind(want);
        b
    };
    let got = fetch(db, &walk_for(FIRST_WALK)).await?;
    let found = got.len() as i64;
    if found >= want {
        return Ok(got);
    }
    if found > 0 {
        // The first walk's share of matches, with a margin.
        let budget = (FIRST_WALK * want * 3 / (found * 2)).min(LONGEST_WALK);
        let got = fetch(db, &walk_for(budget)).await?;
        if got.len() as i64 >= want {
            return Ok(got);
        }
    }
    // The set, behind a fence (`OFFSET 0`) so that the planner reads all of
    // it through the filters' indexes rather than walking the order again.
    let mut b = db.sql(format!(
        "SELECT {ROW_COLUMNS} FROM (SELECT e.* FROM events e WHERE 1 = 1"
    ));
    all(&mut b);
    b.push(format!(" OFFSET 0) e ORDER BY {order} LIMIT "))
        .push_bind(want);
    fetch(db, &b).await
}

async fn fetch(db: &Db, b: &Sql) -> AppResult<Vec<EventRow>> {
    db.read()
        .all(b)
        .await?
        .iter()
        .map(event_row)
        .collect::<AppResult<Vec<_>>>()
}
