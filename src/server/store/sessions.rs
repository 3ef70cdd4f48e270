//! Admin Sessions: the background writer's batch insert, and the page's
//! queries (filters, keyset paging newest first, counts).

use super::db::Param;
use super::events::COUNT_LIMIT;
use super::{ip_key, Backend, Db, DbRow, Exec, RowSink, Sql};
use crate::bulk::SessionSelection;
use crate::errors::{AppError, AppResult};
use crate::models::{EventCount, SessionPage, SessionRow};
use crate::query::Cursor;
use crate::session_query::{SessionQuery, SessionSort};
use std::net::IpAddr;

/// A request that a signed-in admin made to Auditdeck.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAdminSession {
    pub occurred_at: i64,
    pub user_id: Option<String>,
    pub user_name: String,
    pub user_email: String,
    pub ip: Option<IpAddr>,
    pub url: String,
    /// `WEB` or `API`.
    pub kind: &'static str,
    pub method: String,
    pub status: u16,
    pub duration_us: i64,
}

/// Records per multi-row INSERT (11 parameters each).
const INSERT_CHUNK: usize = 250;

/// Stores a batch of admin-session records in one transaction.
pub async fn insert_admin_sessions(db: &Db, records: &[NewAdminSession]) -> AppResult<()> {
    let mut tx = db.begin().await?;
    for chunk in records.chunks(INSERT_CHUNK) {
        let mut insert = tx.sql(
            "INSERT INTO admin_sessions (occurred_at, user_id, user_name, user_email, ip, ip_bin, \
             url, kind, method, status, duration_us) VALUES ",
        );
        for (n, r) in chunk.iter().enumerate() {
            insert
                .push(if n == 0 { "(" } else { ", (" })
                .push_bind(r.occurred_at)
                .push(", ")
                .push_bind(&r.user_id)
                .push(", ")
                .push_bind(&r.user_name)
                .push(", ")
                .push_bind(&r.user_email)
                .push(", ")
                .push_bind(r.ip.map(|ip| ip.to_string()))
                .push(", ")
                .push_bind(r.ip.map(|ip| ip_key(ip).to_vec()).unwrap_or_default())
                .push(", ")
                .push_bind(&r.url)
                .push(", ")
                .push_bind(r.kind)
                .push(", ")
                .push_bind(&r.method)
                .push(", ")
                .push_bind(i64::from(r.status))
                .push(", ")
                .push_bind(r.duration_us)
                .push(")");
        }
        tx.execute(&insert).await?;
    }
    tx.commit().await?;
    Ok(())
}

const SESSION_COLUMNS: &str =
    "s.id, s.occurred_at, s.user_id, s.user_name, s.user_email, s.ip, s.url, s.kind, s.method, \
     s.status, s.duration_us";

fn session_row(r: &DbRow) -> AppResult<SessionRow> {
    let status: i64 = r.get("status")?;
    Ok(SessionRow {
        id: r.get("id")?,
        occurred_at: r.get("occurred_at")?,
        user_id: r.get("user_id")?,
        user_name: r.get("user_name")?,
        user_email: r.get("user_email")?,
        ip: r.get("ip")?,
        url: r.get("url")?,
        kind: r.get("kind")?,
        method: r.get("method")?,
        status: u16::try_from(status).unwrap_or(0),
        duration_us: r.get("duration_us")?,
    })
}

/// The newest admin-session records, newest first.
pub async fn latest_admin_sessions(db: &Db, limit: u32) -> AppResult<Vec<SessionRow>> {
    let sql = db
        .sql(format!(
            "SELECT {SESSION_COLUMNS} FROM admin_sessions s \
             ORDER BY s.occurred_at DESC, s.id DESC LIMIT ?"
        ))
        .bind(i64::from(limit));
    db.read().all(&sql).await?.iter().map(session_row).collect()
}

pub async fn count_admin_sessions(db: &Db) -> AppResult<u64> {
    let n: i64 = db
        .read()
        .scalar(&db.sql("SELECT COUNT(*) FROM admin_sessions"))
        .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// `%text%` for LIKE, with the wildcards in the text taken literally.
fn like_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Matches of the indexed search words up to which a page reads them as a
/// set and sorts it; beyond, it walks its sort order and tests each row
/// (many matches: the page fills at once).
const SMALL_SEARCH: i64 = 5_000;

/// Entries of a sort index a searched page walks before it reads the
/// search's matches as a set instead.
const WALK_BUDGET: i64 = 2_000;
/// Most entries the second walk reads, when the first met a few matches.
const LONGEST_WALK: i64 = 50_000;

/// The search words as an FTS5 query: each quoted (a trigram phrase
/// matches anywhere in a column), all required. Every word has at least
/// three characters (`SessionQuery::validate`), so the index answers it.
fn trigram_query(q: &SessionQuery) -> Option<String> {
    let words: Vec<String> = q
        .search_terms()
        .into_iter()
        .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// How the search words are tested.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Search {
    /// SQLite: the trigram index's matches, a set the rows are read from.
    IndexSet,
    /// Every word on each row, along the page's order (many matches; and
    /// PostgreSQL, whose trigram index serves these).
    EachRow,
}

/// How a view's search is best read: as the index's set of matches when
/// they are few, else row by row along the page's order.
async fn search_plan(db: &Db, q: &SessionQuery) -> AppResult<Search> {
    let Some(fts) = trigram_query(q).filter(|_| db.backend() == Backend::Sqlite) else {
        return Ok(Search::EachRow);
    };
    let sql = db
        .sql(
            "SELECT COUNT(*) FROM (SELECT 1 FROM admin_sessions_fts \
             WHERE admin_sessions_fts MATCH ? LIMIT ?)",
        )
        .bind(fts)
        .bind(SMALL_SEARCH + 1);
    let n: i64 = db.read().scalar(&sql).await?;
    Ok(if n <= SMALL_SEARCH {
        Search::IndexSet
    } else {
        Search::EachRow
    })
}

/// The columns a search looks in, as one text (PostgreSQL's trigram index
/// is built on exactly this expression).
const PG_SEARCH_TEXT: &str =
    "(s.user_name || chr(31) || s.user_email || chr(31) || s.url || chr(31) || COALESCE(s.ip, ''))";

fn push_search(b: &mut Sql, q: &SessionQuery, search: Search) {
    if b.is_pg() {
        for term in q.search_terms() {
            b.push(format!(" AND {PG_SEARCH_TEXT} ILIKE "))
                .push_bind(like_pattern(&term))
                .push(" ESCAPE '\\'");
        }
        return;
    }
    if search == Search::IndexSet {
        if let Some(fts) = trigram_query(q) {
            b.push(
                " AND s.id IN (SELECT rowid FROM admin_sessions_fts WHERE admin_sessions_fts MATCH ",
            )
            .push_bind(fts)
            .push(")");
        }
        return;
    }
    for term in q.search_terms() {
        // SQLite's LIKE ignores case (ASCII).
        let pattern = like_pattern(&term);
        b.push(" AND (");
        for (i, column) in ["s.user_name", "s.user_email", "s.url", "s.ip"]
            .into_iter()
            .enumerate()
        {
            if i > 0 {
                b.push(" OR ");
            }
            b.push(format!("{column} LIKE "))
                .push_bind(pattern.clone())
                .push(" ESCAPE '\\'");
        }
        b.push(")");
    }
}

/// ` AND …` for every filter of the view. `me` is the signed-in user's id,
/// left out when the view hides their own requests.
fn push_filters(b: &mut Sql, q: &SessionQuery, me: i64, now: i64, search: Search) {
    let (from, to) = q.times().bounds(now);
    if let Some(from) = from {
        b.push(" AND s.occurred_at >= ").push_bind(from);
    }
    if let Some(to) = to {
        b.push(" AND s.occurred_at <= ").push_bind(to);
    }
    if let Some(kind) = &q.kind {
        b.push(" AND s.kind = ").push_bind(kind);
    }
    if let Some(method) = &q.method {
        b.push(" AND s.method = ").push_bind(method);
    }
    if q.hide_me {
        b.push(" AND s.user_id IS DISTINCT FROM ")
            .push_bind(me.to_string());
    }
    push_search(b, q, search);
}

/// The column a sort reads; `None` for date, which is `occurred_at` itself.
/// Each has an index over (column, occurred_at, id), none is ever NULL.
fn sort_column(sort: SessionSort) -> Option<&'static str> {
    match sort {
        SessionSort::Date => None,
        SessionSort::Admin => Some("s.user_name"),
        SessionSort::Ip => Some("s.ip_bin"),
        SessionSort::Url => Some("s.url"),
        SessionSort::Type => Some("s.kind"),
        SessionSort::Method => Some("s.method"),
        SessionSort::Status => Some("s.status"),
        SessionSort::Duration => Some("s.duration_us"),
    }
}

/// The sort values of the row a cursor names: (column, occurred_at, id).
async fn load_anchor(db: &Db, sort: SessionSort, id: i64) -> AppResult<(Option<Param>, i64)> {
    let expr = sort_column(sort).unwrap_or("NULL");
    let sql = db
        .sql(format!(
            "SELECT {expr} AS v, s.occurred_at FROM admin_sessions s WHERE s.id = ?"
        ))
        .bind(id);
    let row = db.read().optional(&sql).await?.ok_or_else(|| {
        AppError::bad_request(format!(
            "after: request {id}, where this page started, is no longer recorded; go to the first page"
        ))
    })?;
    let value = match sort {
        SessionSort::Date => None,
        SessionSort::Ip => Some(Param::from(row.get::<Vec<u8>>("v")?)),
        SessionSort::Status | SessionSort::Duration => Some(Param::from(row.get::<i64>("v")?)),
        _ => Some(Param::from(row.get::<String>("v")?)),
    };
    Ok((value, row.get("occurred_at")?))
}

/// One page of Admin Sessions in the view's order, for the user `me`.
pub async fn list_admin_sessions(db: &Db, q: &SessionQuery, me: i64) -> AppResult<SessionPage> {
    q.validate()?;
    // Before a row and the last page are read the other way, then turned round.
    let reverse = matches!(q.cursor, Some(Cursor::Before(_) | Cursor::End));
    let desc = q.descending != reverse;
    let anchor = match q.cursor {
        Some(Cursor::After(id) | Cursor::Before(id)) => {
            Some((load_anchor(db, q.sort, id).await?, id))
        }
        _ => None,
    };
    let offset = if q.cursor.is_none() {
        q.paging().offset()
    } else {
        0
    };
    let search = search_plan(db, q).await?;
    let column = sort_column(q.sort);
    let dir = if desc { "DESC" } else { "ASC" };
    let order = {
        let by = column.map_or(String::new(), |expr| format!("{expr} {dir}, "));
        format!(" ORDER BY {by}s.occurred_at {dir}, s.id {dir}")
    };
    let limit = i64::from(q.per_page) + 1;
    let seek = |b: &mut Sql| {
        if let Some(((value, at), id)) = &anchor {
            let op = if desc { "<" } else { ">" };
            b.push(" AND (");
            if let Some(expr) = column {
                b.push(format!("{expr}, "));
            }
            b.push(format!("s.occurred_at, s.id) {op} ("));
            if let Some(value) = value {
                b.push_bind(value.clone()).push(", ");
            }
            b.push_bind(*at).push(", ").push_bind(*id).push(")");
        }
    };
    // `walk`: along the sort column's index (SQLite), each row tested, at
    // most `budget` entries when one is given.
    let read = |search: Search, walk: bool, budget: Option<i64>| {
        let hint = if walk {
            format!(" INDEXED BY admin_sessions_sort_{}", q.sort.as_str())
        } else {
            String::new()
        };
        let mut b = match budget {
            Some(budget) => {
                let mut b = db.sql(format!(
                    "SELECT {SESSION_COLUMNS} FROM (SELECT s.* FROM admin_sessions s{hint} WHERE 1 = 1"
                ));
                seek(&mut b);
                b.push(format!("{order} LIMIT "))
                    .push_bind(budget)
                    .push(") s WHERE 1 = 1");
                b
            }
            None => db.sql(format!(
                "SELECT {SESSION_COLUMNS} FROM admin_sessions s{hint} WHERE 1 = 1"
            )),
        };
        push_filters(&mut b, q, me, db.now(), search);
        seek(&mut b);
        b.push(format!("{order} LIMIT ")).push_bind(limit);
        if offset > 0 {
            b.push(" OFFSET ")
                .push_bind(i64::try_from(offset).unwrap_or(i64::MAX));
        }
        b
    };
    let fetch = |b: Sql| async move {
        db.read()
            .all(&b)
            .await?
            .iter()
            .map(session_row)
            .collect::<AppResult<Vec<_>>>()
    };
    // SQLite, sorted by a column: walk that column's index and test each
    // row. Its planner would rather read a type or method filter's index
    // and sort the half of the table it matches (0.8 s at 1M); the filters
    // here match broadly, so the walk fills a page soon. A small set from
    // the search index is read and sorted instead. A search whose many
    // matches lie far along the order (one admin's name, sorted by IP)
    // walks at most WALK_BUDGET entries (a longer walk if it met a few),
    // then reads its matches as a set.
    let walk = db.backend() == Backend::Sqlite && column.is_some() && search == Search::EachRow;
    let rows = if walk && offset == 0 && q.q.is_some() {
        let got = fetch(read(search, true, Some(WALK_BUDGET))).await?;
        let found = got.len() as i64;
        let again = if found >= limit {
            Some(got)
        } else if found > 0 {
            // Sparse but near: a longer walk, sized by the share it met.
            let budget = (WALK_BUDGET * limit * 3 / (found * 2)).min(LONGEST_WALK);
            let got = fetch(read(search, true, Some(budget))).await?;
            (got.len() as i64 >= limit).then_some(got)
        } else {
            None
        };
        match again {
            Some(rows) => rows,
            None => fetch(read(Search::IndexSet, false, None)).await?,
        }
    } else {
        fetch(read(search, walk, None)).await?
    };
    Ok(super::events::page_of(rows, q.paging(), reverse, offset))
}

/// Rows recorded before IPs had a sort key get theirs (once, when the
/// server starts: the partial index lists them, and is empty afterwards).
pub(super) async fn backfill_ip_keys(db: &Db) -> AppResult<u64> {
    let pending = if db.backend() == Backend::Sqlite {
        "x''"
    } else {
        "'\\x'::bytea"
    };
    let mut done = 0;
    loop {
        let sql = db.sql(format!(
            "SELECT id, ip FROM admin_sessions WHERE ip IS NOT NULL AND ip_bin = {pending} \
                 ORDER BY id LIMIT 1000"
        ));
        let rows = db.read().all(&sql).await?;
        if rows.is_empty() {
            return Ok(done);
        }
        let mut tx = db.begin().await?;
        for row in &rows {
            let id: i64 = row.get("id")?;
            let ip: String = row.get("ip")?;
            // A stored IP that does not parse (none should) keeps no key
            // but leaves the list, so the loop ends.
            let key = ip
                .parse()
                .map(|ip| ip_key(ip).to_vec())
                .unwrap_or_else(|_| vec![0]);
            let update = tx
                .sql("UPDATE admin_sessions SET ip_bin = ? WHERE id = ?")
                .bind(key)
                .bind(id);
            tx.execute(&update).await?;
            done += 1;
        }
        tx.commit().await?;
    }
}

/// ` AND …` restricting `admin_sessions s` to a selection and ids up to `up_to`.
fn push_session_selection(
    b: &mut Sql,
    selection: &SessionSelection,
    me: i64,
    up_to: i64,
    now: i64,
) {
    match selection {
        SessionSelection::Ids(ids) => {
            b.push(" AND ").push_in("s.id", ids);
        }
        SessionSelection::Filter(q) => push_filters(b, q, me, now, Search::EachRow),
    }
    b.push(" AND s.id <= ").push_bind(up_to);
}

/// The highest admin-session id, and how many records a selection holds up to it.
pub async fn count_session_selection(
    db: &Db,
    selection: &SessionSelection,
    me: i64,
) -> AppResult<(u64, i64)> {
    selection.validate()?;
    let up_to: Option<i64> = db
        .read()
        .scalar(&db.sql("SELECT MAX(id) FROM admin_sessions"))
        .await?;
    let up_to = up_to.unwrap_or(0);
    let mut b = db.sql("SELECT COUNT(*) FROM admin_sessions s WHERE 1 = 1");
    push_session_selection(&mut b, selection, me, up_to, db.now());
    let n: i64 = db.read().scalar(&b).await?;
    Ok((u64::try_from(n).unwrap_or(0), up_to))
}

/// Streams a selection of Admin Sessions records, newest first, into `sink`.
pub async fn export_session_rows(
    db: &Db,
    selection: &SessionSelection,
    me: i64,
    up_to: i64,
    sink: &mut impl RowSink,
) -> AppResult<u64> {
    use futures_util::TryStreamExt;
    selection.validate()?;
    let mut b = db.sql(format!(
        "SELECT {SESSION_COLUMNS} FROM admin_sessions s WHERE 1 = 1"
    ));
    push_session_selection(&mut b, selection, me, up_to, db.now());
    b.push(" ORDER BY s.occurred_at DESC, s.id DESC");
    let mut rows = db.stream(&b);
    let mut sent = 0;
    while let Some(row) = rows.try_next().await? {
        sink.session(session_row(&row)?).await?;
        sent += 1;
    }
    Ok(sent)
}

/// How many records match: exact up to [`COUNT_LIMIT`]; beyond, estimated
/// from windows of ids over the time range's span (ids follow arrival, so
/// the span counts the records in it), with its margin of error.
pub async fn count_admin_sessions_matching(
    db: &Db,
    q: &SessionQuery,
    me: i64,
) -> AppResult<EventCount> {
    q.validate()?;
    let now = db.now();
    let search = search_plan(db, q).await?;
    let cap = i64::try_from(COUNT_LIMIT).unwrap_or(i64::MAX) + 1;
    let mut b = db.sql("SELECT COUNT(*) FROM (SELECT 1 FROM admin_sessions s WHERE 1 = 1");
    push_filters(&mut b, q, me, now, search);
    b.push(" LIMIT ").push_bind(cap).push(") m");
    let n: i64 = db.read().scalar(&b).await?;
    if n < cap {
        return Ok(EventCount::exact(u64::try_from(n).unwrap_or(0)));
    }
    // The first and last ids of the time range, by the time index.
    let (from, to) = q.times().bounds(now);
    let edge = |asc: bool| {
        let mut b = db.sql("SELECT s.id FROM admin_sessions s WHERE 1 = 1");
        if let Some(from) = from {
            b.push(" AND s.occurred_at >= ").push_bind(from);
        }
        if let Some(to) = to {
            b.push(" AND s.occurred_at <= ").push_bind(to);
        }
        let dir = if asc { "ASC" } else { "DESC" };
        b.push(format!(" ORDER BY s.occurred_at {dir}, s.id {dir} LIMIT 1"));
        async move { db.read().scalar_opt::<i64>(&b).await }
    };
    let (Some(low), Some(high)) = (edge(true).await?, edge(false).await?) else {
        return Ok(EventCount::exact(0));
    };
    let (low, high) = (low.min(high), low.max(high));
    // Each window a short range scan of the primary key, every filter
    // tested on its rows (NOT INDEXED: SQLite would otherwise read a
    // filter's index over the whole table for each).
    let hint = if db.backend() == Backend::Sqlite {
        " NOT INDEXED"
    } else {
        ""
    };
    super::events::estimate_by_windows(low, high, |start, end| {
        let mut b = db.sql(format!(
            "SELECT COUNT(*) FROM admin_sessions s{hint} WHERE s.id BETWEEN "
        ));
        b.push_bind(start).push(" AND ").push_bind(end);
        push_filters(&mut b, q, me, now, Search::EachRow);
        async move { db.read().scalar::<i64>(&b).await }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::like_pattern;

    #[test]
    fn like_wildcards_in_a_search_are_literal() {
        assert_eq!(like_pattern("ann"), "%ann%");
        assert_eq!(like_pattern("50%_x\\"), "%50\\%\\_x\\\\%");
    }
}
