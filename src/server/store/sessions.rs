//! Admin Sessions: the background writer's batch insert, and the page's
//! queries (filters, keyset paging newest first, counts).

use super::events::{round_estimate, COUNT_LIMIT};
use super::{Db, DbRow, Exec, RowSink, Sql};
use crate::bulk::SessionSelection;
use crate::errors::{AppError, AppResult};
use crate::models::{EventCount, SessionPage, SessionRow};
use crate::query::Cursor;
use crate::session_query::SessionQuery;
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

/// Records per multi-row INSERT (10 parameters each).
const INSERT_CHUNK: usize = 250;

/// Stores a batch of admin-session records in one transaction.
pub async fn insert_admin_sessions(db: &Db, records: &[NewAdminSession]) -> AppResult<()> {
    let mut tx = db.begin().await?;
    for chunk in records.chunks(INSERT_CHUNK) {
        let mut insert = tx.sql(
            "INSERT INTO admin_sessions (occurred_at, user_id, user_name, user_email, ip, url, \
             kind, method, status, duration_us) VALUES ",
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

/// ` AND …` for every filter of the view. `me` is the signed-in user's id,
/// left out when the view hides their own requests.
fn push_filters(b: &mut Sql, q: &SessionQuery, me: i64, now: i64) {
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
    for term in q.search_terms() {
        let pattern = like_pattern(&term);
        // SQLite's LIKE ignores case (ASCII); PostgreSQL's needs ILIKE.
        let like = if b.is_pg() { "ILIKE" } else { "LIKE" };
        b.push(" AND (");
        for (i, column) in ["s.user_name", "s.user_email", "s.url", "s.ip"]
            .into_iter()
            .enumerate()
        {
            if i > 0 {
                b.push(" OR ");
            }
            b.push(format!("{column} {like} "))
                .push_bind(pattern.clone())
                .push(" ESCAPE '\\'");
        }
        b.push(")");
    }
}

/// One page of Admin Sessions, newest first, for the user `me`.
pub async fn list_admin_sessions(db: &Db, q: &SessionQuery, me: i64) -> AppResult<SessionPage> {
    q.validate()?;
    // Before a row and the last page are read oldest first, then turned round.
    let reverse = matches!(q.cursor, Some(Cursor::Before(_) | Cursor::End));
    let anchor = match q.cursor {
        Some(Cursor::After(id) | Cursor::Before(id)) => {
            let sql = db
                .sql("SELECT occurred_at FROM admin_sessions WHERE id = ?")
                .bind(id);
            let at: Option<i64> = db.read().scalar_opt(&sql).await?;
            let at = at.ok_or_else(|| {
                AppError::bad_request(format!(
                    "after: request {id}, where this page started, is no longer recorded; go to the first page"
                ))
            })?;
            Some((at, id))
        }
        _ => None,
    };
    let offset = if q.cursor.is_none() {
        q.paging().offset()
    } else {
        0
    };
    let mut b = db.sql(format!(
        "SELECT {SESSION_COLUMNS} FROM admin_sessions s WHERE 1 = 1"
    ));
    push_filters(&mut b, q, me, db.now());
    if let Some((at, id)) = anchor {
        let op = if reverse { ">" } else { "<" };
        b.push(format!(" AND (s.occurred_at, s.id) {op} ("))
            .push_bind(at)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    let dir = if reverse { "ASC" } else { "DESC" };
    b.push(format!(" ORDER BY s.occurred_at {dir}, s.id {dir} LIMIT "))
        .push_bind(i64::from(q.per_page) + 1);
    if offset > 0 {
        b.push(" OFFSET ")
            .push_bind(i64::try_from(offset).unwrap_or(i64::MAX));
    }
    let rows = db
        .read()
        .all(&b)
        .await?
        .iter()
        .map(session_row)
        .collect::<AppResult<Vec<_>>>()?;
    Ok(super::events::page_of(rows, q.paging(), reverse, offset))
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
        SessionSelection::Filter(q) => push_filters(b, q, me, now),
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

/// Rows sampled to estimate a count beyond [`COUNT_LIMIT`].
const SAMPLE: i64 = 10_000;

/// How many records match: exact up to [`COUNT_LIMIT`]; beyond, the share
/// of matches among the newest records in the time range, times the records
/// in that range (ids follow arrival, so the id span counts them).
pub async fn count_admin_sessions_matching(
    db: &Db,
    q: &SessionQuery,
    me: i64,
) -> AppResult<EventCount> {
    q.validate()?;
    let now = db.now();
    let cap = i64::try_from(COUNT_LIMIT).unwrap_or(i64::MAX) + 1;
    let mut b = db.sql("SELECT COUNT(*) FROM (SELECT 1 FROM admin_sessions s WHERE 1 = 1");
    push_filters(&mut b, q, me, now);
    b.push(" LIMIT ").push_bind(cap).push(") m");
    let n: i64 = db.read().scalar(&b).await?;
    if n < cap {
        return Ok(EventCount {
            total: u64::try_from(n).unwrap_or(0),
            exact: true,
        });
    }
    let unfiltered = SessionQuery {
        range: q.range.clone(),
        from: q.from,
        to: q.to,
        ..SessionQuery::default()
    };
    let mut span = db.sql("SELECT MIN(s.id), MAX(s.id) FROM admin_sessions s WHERE 1 = 1");
    push_filters(&mut span, &unfiltered, me, now);
    let row = db.read().one(&span).await?;
    let (low, high): (Option<i64>, Option<i64>) = (row.get(0)?, row.get(1)?);
    let in_range = high.unwrap_or(0) - low.unwrap_or(0) + 1;
    let mut sample = db.sql("SELECT COUNT(*) FROM (SELECT s.id FROM admin_sessions s WHERE 1 = 1");
    push_filters(&mut sample, &unfiltered, me, now);
    sample.push(" ORDER BY s.id DESC LIMIT ").push_bind(SAMPLE);
    sample.push(") w JOIN admin_sessions s ON s.id = w.id WHERE 1 = 1");
    push_filters(&mut sample, q, me, now);
    let hits: i64 = db.read().scalar(&sample).await?;
    let seen = in_range.clamp(1, SAMPLE);
    let estimate = (in_range as f64 * hits as f64 / seen as f64) as u64;
    Ok(EventCount {
        total: round_estimate(estimate.max(COUNT_LIMIT + 1)),
        exact: false,
    })
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
