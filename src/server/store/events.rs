//! The Activity Log's queries: filters, sorting through a whitelist, keyset
//! (seek) paging, keyword search over the full-text index, counts that are
//! exact up to a limit and estimated beyond, the filter bar's choices, and
//! one event's details with the history of its record.

use super::{combos, Backend, Db, DbRow, Exec, Sql};
use crate::errors::{AppError, AppResult};
use crate::models::Page;
use crate::models::{
    EventCount, EventDetail, EventPage, EventRow, FilterOptions, Initiator, InitiatorKind,
    InitiatorOption,
};
use crate::query::{search_terms, Cursor, EventQuery, InitiatorKey, IpFilter, Paging, SortColumn};

/// Counts are exact up to this many matches, then estimated.
pub const COUNT_LIMIT: u64 = 10_000;
/// Windows of ids looked at to estimate a large count, and their width.
const WINDOW_WIDTH: i64 = 1_000;
/// Most entries in the record history of View details.
const HISTORY_LIMIT: i64 = 50;
/// Most initiators offered by the user filter.
const MAX_INITIATORS: usize = 1_000;

mod by_value;
mod charts;
mod pg;

pub use charts::{actions_since, event_breakdowns, event_histogram, new_ip_alerts_since};

const ROW_COLUMNS: &str = "e.id, e.occurred_at, e.ip, e.initiator_kind, e.initiator_id, \
     e.initiator_name, e.initiator_email, e.initiator_role, e.action, e.table_name, \
     e.primary_key, e.description, \
     (e.before_data IS NOT NULL OR e.after_data IS NOT NULL) AS has_changes";

fn event_row(row: &DbRow) -> AppResult<EventRow> {
    let kind: String = row.get("initiator_kind")?;
    Ok(EventRow {
        id: row.get("id")?,
        occurred_at: row.get("occurred_at")?,
        ip: row.get("ip")?,
        initiator: Initiator {
            kind: InitiatorKind::parse(&kind).ok_or_else(|| {
                tracing::error!(kind, "unknown initiator kind in the database");
                AppError::Internal
            })?,
            id: row.get("initiator_id")?,
            name: row.get("initiator_name")?,
            email: row.get("initiator_email")?,
            role: row.get("initiator_role")?,
        },
        action: row.get("action")?,
        table_name: row.get("table_name")?,
        primary_key: row.get("primary_key")?,
        description: row.get("description")?,
        has_changes: row.get("has_changes")?,
    })
}

/// The columns a keyword is looked for in (not the filter keys).
const TEXT_COLUMNS: &str = "{description initiator_name initiator_email table_name primary_key ip}";

/// The keyword search as an FTS5 query: every word and phrase quoted (so no
/// user text is FTS syntax), all of them required, in the text columns.
pub fn fts_query(q: &str) -> Option<String> {
    let terms = search_terms(q);
    if terms.is_empty() {
        return None;
    }
    let quoted: Vec<String> = terms
        .iter()
        .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
        .collect();
    Some(format!("{TEXT_COLUMNS} : ({})", quoted.join(" ")))
}

/// A filter value as the single token the index holds for it (see the
/// `filter_keys` column): a prefix letter and the value in hex.
fn filter_token(prefix: char, value: &str) -> String {
    let mut token = String::with_capacity(1 + value.len() * 2);
    token.push(prefix);
    for b in value.bytes() {
        token.push_str(&format!("{b:02x}"));
    }
    token
}

/// An initiator (kind, id; the empty text for none) as the single token the
/// index holds for it (`u<kind:id>`).
fn initiator_token(kind: &str, id: &str) -> String {
    filter_token('u', &format!("{kind}:{id}"))
}

/// The keyword query with the user, action and table filters joined in, so
/// the index intersects them before any row is read.
fn fts_with_filters(keyword: &str, q: &EventQuery) -> String {
    let mut parts = vec![keyword.to_string()];
    if let Some(user) = &q.user {
        let token = initiator_token(&user.kind, user.id.as_deref().unwrap_or(""));
        parts.push(format!("filter_keys : {token}"));
    }
    if !q.actions.is_empty() {
        let any: Vec<String> = q.actions.iter().map(|a| filter_token('a', a)).collect();
        parts.push(format!("filter_keys : ({})", any.join(" OR ")));
    }
    if let Some(table) = &q.table {
        parts.push(format!("filter_keys : {}", filter_token('t', table)));
    }
    parts.join(" AND ")
}

/// How the keyword condition joins the other filters.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Keyword {
    /// `id IN (all matches)`: for small match sets and ordered scans.
    InSet,
    /// Left out: the caller drives the search from the index.
    Skip,
}

/// One of the filters `event_combos` holds.
#[derive(Clone, Copy)]
enum Part {
    User,
    Actions,
    Table,
    Ip,
}

/// A query's filters, checked and ready for SQL.
pub(super) struct Filters {
    user: Option<InitiatorKey>,
    actions: Vec<String>,
    table: Option<String>,
    ip: Option<([u8; 16], [u8; 16])>,
    /// The CIDR range as text, for PostgreSQL's inet.
    cidr: Option<String>,
    /// SQLite: the FTS5 query. PostgreSQL: set when there are keywords.
    fts: Option<String>,
    /// The keyword search's words and phrases.
    terms: Vec<String>,
    from: Option<i64>,
    to: Option<i64>,
}

impl Filters {
    pub(super) fn new(q: &EventQuery, now: i64) -> AppResult<Self> {
        q.validate()?;
        let (from, to) = q.time_bounds(now);
        let ip = q.ip.as_deref().map(IpFilter::parse).transpose()?;
        Ok(Self {
            user: q.user.clone(),
            actions: q.actions.clone(),
            table: q.table.clone(),
            ip: ip.as_ref().map(IpFilter::key_range),
            cidr: ip.map(|f| format!("{}/{}", f.addr, f.prefix)),
            fts: q
                .q
                .as_deref()
                .and_then(fts_query)
                .map(|keyword| fts_with_filters(&keyword, q)),
            terms: q.q.as_deref().map(search_terms).unwrap_or_default(),
            from,
            to,
        })
    }

    /// SQLite, a keyword with an IP range and no user: the initiators who
    /// acted from the range (`ip_combos`) joined into the full-text query
    /// as tokens, so the index rules out every other initiator's matches
    /// before a row is read for its address. Unchanged when there are too
    /// many to name.
    pub(super) async fn narrow_keyword_by_ip(mut self, db: &Db) -> AppResult<Self> {
        let (Some(fts), Some(range), None, Backend::Sqlite) =
            (&self.fts, self.ip, &self.user, db.backend())
        else {
            return Ok(self);
        };
        let who = combos::initiators_in_range(db, range, |b| {
            self.push_combo_parts(b, &[Part::Actions, Part::Table]);
        })
        .await?;
        if let Some(who) = who {
            // No initiator: a token no event holds (filter_keys' tokens
            // start with u, a or t), so the search finds nothing.
            let tokens: Vec<String> = who
                .iter()
                .map(|(kind, id)| initiator_token(kind, id))
                .collect();
            let any = if tokens.is_empty() {
                "x".to_string()
            } else {
                tokens.join(" OR ")
            };
            self.fts = Some(format!("{fts} AND filter_keys : ({any})"));
        }
        Ok(self)
    }

    fn is_empty(&self) -> bool {
        self.user.is_none()
            && self.actions.is_empty()
            && self.table.is_none()
            && self.ip.is_none()
            && self.fts.is_none()
            && self.from.is_none()
            && self.to.is_none()
    }

    /// Appends ` AND …` for each filter.
    pub(super) fn push(&self, b: &mut Sql, keyword: Keyword) {
        for part in [Part::User, Part::Actions, Part::Table, Part::Ip] {
            self.push_part(b, part);
        }
        self.push_time(b);
        if let Some(fts) = &self.fts {
            match (b.backend(), keyword) {
                (Backend::Sqlite, Keyword::InSet) => {
                    b.push(" AND e.id IN (SELECT rowid FROM events_fts WHERE events_fts MATCH ")
                        .push_bind(fts)
                        .push(")");
                }
                (Backend::Postgres, _) => self.push_search(b),
                (Backend::Sqlite, Keyword::Skip) => {}
            }
        }
    }

    /// The IP filter's range of 16-byte keys, if there is one.
    pub(super) fn ip_range(&self) -> Option<([u8; 16], [u8; 16])> {
        self.ip
    }

    /// ` AND …` for one of the filters `event_combos` holds, if it is set.
    fn push_part(&self, b: &mut Sql, part: Part) {
        match part {
            Part::User => {
                if let Some(user) = &self.user {
                    b.push(" AND e.initiator_kind = ").push_bind(&user.kind);
                    match &user.id {
                        Some(id) => b.push(" AND e.initiator_id = ").push_bind(id),
                        None => b.push(" AND e.initiator_id IS NULL"),
                    };
                }
            }
            Part::Actions => {
                if !self.actions.is_empty() {
                    self.push_actions(b, "e.action");
                }
            }
            Part::Table => {
                if let Some(table) = &self.table {
                    b.push(" AND e.table_name = ").push_bind(table.clone());
                }
            }
            Part::Ip => {
                if let Some((lo, hi)) = self.ip {
                    if lo == hi || !b.is_pg() {
                        b.push(" AND e.ip_bin BETWEEN ")
                            .push_bind(lo.to_vec())
                            .push(" AND ")
                            .push_bind(hi.to_vec());
                    } else {
                        b.push(" AND e.ip_inet <<= CAST(")
                            .push_bind(self.cidr.clone())
                            .push(" AS inet)");
                    }
                }
            }
        }
    }

    /// ` AND …` for the time range, if there is one.
    pub(super) fn push_time(&self, b: &mut Sql) {
        if let Some(from) = self.from {
            b.push(" AND e.occurred_at >= ").push_bind(from);
        }
        if let Some(to) = self.to {
            b.push(" AND e.occurred_at <= ").push_bind(to);
        }
    }

    /// ` AND <column> IN (<the action types>)`.
    fn push_actions(&self, b: &mut Sql, column: &str) {
        b.push(format!(" AND {column} IN ("));
        for (n, action) in self.actions.iter().enumerate() {
            b.push(if n == 0 { "" } else { ", " }).push_bind(action);
        }
        b.push(")");
    }

    /// ` AND …` for the filter on the sort column itself, if there is one
    /// (an IP range for the IP sort, the action types for the action sort,
    /// the table for the table sort): a range of the sort index, which a
    /// walk along it can keep to (SQLite).
    fn push_on_sort_column(&self, b: &mut Sql, column: SortColumn) {
        let part = match column {
            SortColumn::Ip => Part::Ip,
            SortColumn::Action => Part::Actions,
            SortColumn::Table => Part::Table,
            SortColumn::User | SortColumn::Date => return,
        };
        self.push_part(b, part);
    }

    /// ` AND …` for each filter but the keyword and the time range, over
    /// `event_combos c` (see [`super::combos`]).
    pub(super) fn push_on_combos(&self, b: &mut Sql) {
        self.push_combo_parts(b, &[Part::User, Part::Actions, Part::Table, Part::Ip]);
    }

    /// ` AND …` over `event_combos c` or `ip_combos c` for each of `parts`
    /// that is set.
    fn push_combo_parts(&self, b: &mut Sql, parts: &[Part]) {
        for part in parts {
            self.push_combo_part(b, *part);
        }
    }

    /// ` AND …` for one filter over `event_combos c`, if it is set.
    fn push_combo_part(&self, b: &mut Sql, part: Part) {
        match part {
            Part::User => {
                if let Some(user) = &self.user {
                    b.push(" AND c.initiator_kind = ")
                        .push_bind(&user.kind)
                        .push(" AND c.initiator_id = ")
                        .push_bind(user.id.clone().unwrap_or_default());
                }
            }
            Part::Actions => {
                if !self.actions.is_empty() {
                    self.push_actions(b, "c.action");
                }
            }
            Part::Table => {
                if let Some(table) = &self.table {
                    b.push(" AND c.table_name = ").push_bind(table.clone());
                }
            }
            Part::Ip => {
                // The networks the range reaches (exact for whole ones).
                if let Some((lo, hi)) = self.ip {
                    b.push(" AND c.ip_net BETWEEN ")
                        .push_bind(combos::ip_net(&lo).to_vec())
                        .push(" AND ")
                        .push_bind(combos::ip_net(&hi).to_vec());
                }
            }
        }
    }

    /// The filters set whose SQLite index gives their matches in time order
    /// (an equality, then `occurred_at`), with that index.
    fn time_ordered_indexes(&self) -> Vec<(Part, &'static str)> {
        let mut out = Vec::new();
        if self.user.is_some() {
            out.push((Part::User, "events_initiator"));
        }
        if self.actions.len() == 1 {
            out.push((Part::Actions, "events_action"));
        }
        if self.table.is_some() {
            out.push((Part::Table, "events_table"));
        }
        if self.ip.is_some_and(|(lo, hi)| lo == hi) {
            out.push((Part::Ip, "events_ip"));
        }
        out
    }

    /// Whether `event_combos` counts the filters exactly: no keyword, no
    /// time range, and an IP range (if any) of whole networks.
    fn categorical(&self) -> bool {
        self.fts.is_none()
            && self.from.is_none()
            && self.to.is_none()
            && self.ip.is_none_or(|(lo, hi)| combos::whole_nets(&lo, &hi))
    }

    /// PostgreSQL's keyword condition: every word and phrase, each cut and
    /// lower-cased as the `search` column is, must be in it.
    fn push_search(&self, b: &mut Sql) {
        b.push(" AND e.search @@ (");
        for (n, term) in self.terms.iter().enumerate() {
            b.push(if n == 0 { "" } else { " && " })
                .push("phraseto_tsquery('simple', regexp_replace(lower(")
                .push_bind(term)
                .push("), '[^[:alnum:]]+', ' ', 'g'))");
        }
        b.push(")");
    }
}

/// The column a sort reads (the whitelist); `None` for date, which is
/// `occurred_at` itself. Each has an index of its own over (column,
/// occurred_at, id), all ascending, so a page in either direction is a seek
/// and a short walk; ties are broken by time, then id, in the same direction.
fn sort_column(column: SortColumn) -> Option<&'static str> {
    match column {
        SortColumn::Date => None,
        SortColumn::User => Some("e.initiator_name"),
        SortColumn::Action => Some("e.action"),
        SortColumn::Table => Some("e.table_name"),
        SortColumn::Ip => Some("e.ip_bin"),
    }
}

/// SQLite's index for a sort column (see [`sort_column`]).
fn sort_index(column: SortColumn) -> &'static str {
    match column {
        SortColumn::Date => "events_occurred",
        SortColumn::User => "events_user_sort",
        SortColumn::Action => "events_action",
        SortColumn::Table => "events_table",
        SortColumn::Ip => "events_ip",
    }
}

/// Whether a sort column may be NULL (no table, no IP, a System initiator):
/// NULL sorts below every value.
fn nullable(column: SortColumn) -> bool {
    matches!(
        column,
        SortColumn::User | SortColumn::Table | SortColumn::Ip
    )
}

/// ` ORDER BY …` for a sort; `unindexed` writes it so that no index serves
/// it (SQLite: a unary `+`), and the filters' index is read instead.
fn push_order(b: &mut Sql, column: SortColumn, descending: bool, unindexed: bool) {
    let dir = if descending { "DESC" } else { "ASC" };
    let plus = if unindexed { "+" } else { "" };
    b.push(" ORDER BY ");
    if let Some(expr) = sort_column(column) {
        b.push(format!("{plus}{expr} {dir}, "));
    }
    b.push(format!("{plus}e.occurred_at {dir}, e.id {dir}"));
}

/// A sort value of the row a page starts from.
#[derive(PartialEq, Eq)]
enum SortValue {
    Text(String),
    Blob(Vec<u8>),
}

/// The row a cursor names, with the values the sort compares (`None`: the
/// date sort, or a NULL value).
struct Anchor {
    value: Option<SortValue>,
    occurred_at: i64,
    id: i64,
}

async fn load_anchor(db: &Db, column: SortColumn, id: i64) -> AppResult<Anchor> {
    let expr = sort_column(column).unwrap_or("NULL");
    let sql = db
        .sql(format!(
            "SELECT {expr} AS v, e.occurred_at, e.id FROM events e WHERE e.id = ?"
        ))
        .bind(id);
    let row = db.read().optional(&sql).await?.ok_or_else(|| {
        AppError::bad_request(format!(
            "after: event {id}, where this page started, is no longer in the log; go to the first page"
        ))
    })?;
    let value = match column {
        SortColumn::Date => None,
        SortColumn::Ip => row.get::<Option<Vec<u8>>>("v")?.map(SortValue::Blob),
        _ => row.get::<Option<String>>("v")?.map(SortValue::Text),
    };
    Ok(Anchor {
        value,
        occurred_at: row.get("occurred_at")?,
        id: row.get("id")?,
    })
}

/// ` AND (sort, occurred_at, id) < (anchor)` — rows past the anchor in the
/// fetch direction, within one [`Segment`] (the sort value is left out in
/// the NULL segment, where it is NULL throughout).
fn push_seek(b: &mut Sql, column: Option<&str>, anchor: &Anchor, desc: bool) {
    let op = if desc { "<" } else { ">" };
    b.push(" AND (");
    let value = column.and(anchor.value.as_ref());
    if let (Some(expr), Some(_)) = (column, value) {
        b.push(format!("{expr}, "));
    }
    b.push(format!("e.occurred_at, e.id) {op} ("));
    match value {
        Some(SortValue::Text(v)) => {
            b.push_bind(v).push(", ");
        }
        Some(SortValue::Blob(v)) => {
            b.push_bind(v.clone()).push(", ");
        }
        None => {}
    }
    b.push_bind(anchor.occurred_at)
        .push(", ")
        .push_bind(anchor.id)
        .push(")");
}

/// A sort over a nullable column reads in two parts, each an ordered walk
/// of the column's index: the rows with a value, and the rows without (NULL
/// sorts first ascending, last descending). Keeping them apart keeps every
/// comparison a plain row-value seek the index can serve (`COALESCE` or
/// `OR … IS NULL` would turn it into a scan), on both databases alike.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Segment {
    /// The whole result (date and action sorts: no NULLs).
    All,
    Values,
    Nulls,
}

/// The segments a read goes through, in fetch order, from where the
/// anchor (if any) is.
fn segments(column: SortColumn, anchor: Option<&Anchor>, desc: bool) -> Vec<Segment> {
    if !nullable(column) {
        return vec![Segment::All];
    }
    let order = if desc {
        [Segment::Values, Segment::Nulls]
    } else {
        [Segment::Nulls, Segment::Values]
    };
    let start = match anchor {
        None => order[0],
        Some(a) if a.value.is_some() => Segment::Values,
        Some(_) => Segment::Nulls,
    };
    order.into_iter().skip_while(|s| *s != start).collect()
}

/// Whether a sort other than by date should walk its column's index and
/// test each row, rather than read a filter's index and sort its matches:
/// without filters, or when they match more than [`SMALL_SET`] events.
/// (SQLite plans without statistics; PostgreSQL chooses from its own.)
async fn walk_sort_order(db: &Db, filters: &Filters) -> AppResult<bool> {
    if filters.is_empty() {
        return Ok(true);
    }
    if filters.fts.is_some() {
        // The keyword's matches are a set read from the full-text index.
        return Ok(false);
    }
    matches_many(db, filters).await
}

/// Entries of a sort index a page walks before it reads the filter's
/// index instead (see [`rows_sorted_by_column`]).
const WALK_BUDGET: i64 = 10_000;

/// How a segment of a sorted page is read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Read {
    /// As the planner likes.
    Planned,
    /// Along the sort column's index (no filters to test).
    Indexed,
    /// Along the sort column's index, at most [`WALK_BUDGET`] entries.
    Walk,
    /// Through the filters' index, the matches sorted.
    Sorted,
}

/// ` AND …` keeping to one segment of a sort by `expr`; `unindexed` writes
/// it so that no index serves it (SQLite: a unary `+`).
fn push_segment(b: &mut Sql, segment: Segment, expr: Option<&str>, unindexed: bool) {
    let plus = if unindexed { "+" } else { "" };
    match (segment, expr) {
        (Segment::Nulls, Some(e)) => b.push(format!(" AND {plus}{e} IS NULL")),
        (Segment::Values, Some(e)) => b.push(format!(" AND {plus}{e} IS NOT NULL")),
        _ => b,
    };
}

/// One page sorted by a column other than date: each segment in turn, a
/// keyset seek where the page starts, until the page is full. `offset`
/// (a page reached by number, not by cursor) skips rows across segments.
async fn rows_sorted_by_column(
    db: &Db,
    filters: &Filters,
    column: SortColumn,
    anchor: Option<&Anchor>,
    desc: bool,
    limit: i64,
    mut offset: i64,
) -> AppResult<Vec<EventRow>> {
    // Value by value, unless a keyword matches so few that sorting them is
    // cheaper (SQLite).
    let few_matches = match (&filters.fts, db.backend()) {
        (Some(fts), Backend::Sqlite) => !keyword_matches_many(db, fts).await?,
        _ => false,
    };
    if offset == 0 && !filters.is_empty() && !few_matches {
        if let Some(rows) = by_value::rows(db, filters, column, anchor, desc, limit).await? {
            return Ok(rows);
        }
    }
    let expr = sort_column(column);
    // SQLite walks the sort index only as far as WALK_BUDGET entries: a
    // filter that correlates with the sort (a user's own name or IPs) finds
    // its rows only far along it, and then the filter's index and a sort of
    // its matches are cheaper.
    let sqlite = db.backend() == Backend::Sqlite;
    let unfiltered = sqlite && filters.is_empty();
    let walk = offset == 0 && sqlite && !unfiltered && walk_sort_order(db, filters).await?;
    let mut rows: Vec<EventRow> = Vec::new();
    for (n, segment) in segments(column, anchor, desc).into_iter().enumerate() {
        let want = limit - rows.len() as i64;
        if want <= 0 {
            break;
        }
        // NULLs in time order; values by value, then time.
        let (order_by, seek_by) = match segment {
            Segment::Nulls => (SortColumn::Date, None),
            _ => (column, expr),
        };
        // The anchor is in the first segment read; later ones start at
        // their own beginning.
        let seek = if n == 0 { anchor } else { None };
        let read = |how: Read| {
            let mut b = match how {
                Read::Walk => {
                    let mut b = db.sql(format!(
                        "SELECT {ROW_COLUMNS} FROM (SELECT e.* FROM events e INDEXED BY {} WHERE 1 = 1",
                        sort_index(column)
                    ));
                    push_segment(&mut b, segment, expr, false);
                    filters.push_on_sort_column(&mut b, order_by);
                    if let Some(anchor) = seek {
                        push_seek(&mut b, seek_by, anchor, desc);
                    }
                    push_order(&mut b, order_by, desc, false);
                    b.push(" LIMIT ")
                        .push_bind(WALK_BUDGET)
                        .push(") e WHERE 1 = 1");
                    b
                }
                Read::Indexed => db.sql(format!(
                    "SELECT {ROW_COLUMNS} FROM events e INDEXED BY {} WHERE 1 = 1",
                    sort_index(column)
                )),
                Read::Planned | Read::Sorted => {
                    db.sql(format!("SELECT {ROW_COLUMNS} FROM events e WHERE 1 = 1"))
                }
            };
            filters.push(&mut b, Keyword::InSet);
            // Sorted: the segment's test must not draw SQLite to the sort index.
            push_segment(&mut b, segment, expr, how == Read::Sorted);
            if let Some(anchor) = seek {
                push_seek(&mut b, seek_by, anchor, desc);
            }
            push_order(&mut b, order_by, desc, how == Read::Sorted);
            b.push(" LIMIT ").push_bind(want);
            if offset > 0 {
                b.push(" OFFSET ").push_bind(offset);
            }
            b
        };
        let fetch = |b: Sql| async move {
            db.read()
                .all(&b)
                .await?
                .iter()
                .map(event_row)
                .collect::<AppResult<Vec<_>>>()
        };
        let got = if unfiltered {
            // Nothing to test: the index walk is the page, row for row.
            fetch(read(Read::Indexed)).await?
        } else if walk {
            let got = fetch(read(Read::Walk)).await?;
            if (got.len() as i64) < want {
                fetch(read(Read::Sorted)).await?
            } else {
                got
            }
        } else {
            fetch(read(Read::Planned)).await?
        };
        if offset > 0 {
            offset = if got.is_empty() {
                // How many rows this segment held (fewer than `offset`):
                // the rest of the offset falls in the next one.
                let mut c = db.sql("SELECT COUNT(*) FROM (SELECT 1 FROM events e WHERE 1 = 1");
                filters.push(&mut c, Keyword::InSet);
                push_segment(&mut c, segment, expr, false);
                c.push(" LIMIT ").push_bind(offset).push(") m");
                let held: i64 = db.read().scalar(&c).await?;
                offset - held
            } else {
                0
            };
        }
        rows.extend(got);
    }
    Ok(rows)
}

/// One page of the Activity Log for a query.
pub async fn list_events(db: &Db, q: &EventQuery) -> AppResult<EventPage> {
    let filters = Filters::new(q, db.now())?.narrow_keyword_by_ip(db).await?;
    // Before a row and the last page are read backwards, then turned round.
    let reverse = matches!(q.cursor, Some(Cursor::Before(_) | Cursor::End));
    let desc = q.descending != reverse;
    let anchor = match q.cursor {
        Some(Cursor::After(id) | Cursor::Before(id)) => Some(load_anchor(db, q.sort, id).await?),
        _ => None,
    };
    let offset = if q.cursor.is_none() { q.offset() } else { 0 };
    let limit = i64::from(q.per_page) + 1;

    let sqlite = db.backend() == Backend::Sqlite;
    let rows = if q.sort != SortColumn::Date {
        rows_sorted_by_column(
            db,
            &filters,
            q.sort,
            anchor.as_ref(),
            desc,
            limit,
            i64::try_from(offset).unwrap_or(i64::MAX),
        )
        .await?
    } else if sqlite && filters.fts.is_some() && offset == 0 {
        // The keyword's matches read in time order, unless no event has
        // the other filters' combination of values at all.
        if by_value::no_combination(db, &filters).await? {
            return Ok(page_of(Vec::new(), q.paging(), reverse, offset));
        }
        let scan = KeywordScan {
            filters: &filters,
            fts: filters.fts.as_deref().unwrap_or_default(),
            extra: &|_| {},
            anchor: anchor.as_ref(),
            newest: None,
        };
        let ids = keyword_matches_in_time_order(db, scan, desc, limit).await?;
        rows_by_ids(db, &ids, desc).await?
    } else {
        // A keyword that matches many: the time index is walked and each
        // row looked up in its matches, rather than all of them sorted.
        let many_keyword_matches = match filters.fts.as_deref() {
            Some(fts) if sqlite => keyword_matches_many(db, fts).await?,
            _ => false,
        };
        let few_keyword_matches = filters.fts.is_some() && !many_keyword_matches;
        let read = by_value::date_read(db, &filters, few_keyword_matches).await?;
        let ip_sums = match read {
            by_value::DateRead::Nothing => None,
            _ => ip_range_sums(db, &filters).await?,
        };
        let through_ip = match ip_sums {
            Some(sums) if sums.matching == 0 => {
                return Ok(page_of(Vec::new(), q.paging(), reverse, offset))
            }
            Some(sums) => {
                let walked = match read {
                    by_value::DateRead::Along(_, _, n) => n,
                    _ => {
                        let (low, high) = id_range(db).await?;
                        high - low + 1
                    }
                };
                fewer_through_ip(sums, walked, limit + i64::try_from(offset).unwrap_or(0))
            }
            None => false,
        };
        let from = match read {
            by_value::DateRead::Nothing => {
                return Ok(page_of(Vec::new(), q.paging(), reverse, offset))
            }
            _ if through_ip => "events e INDEXED BY events_ip".to_string(),
            _ if !sqlite && offset == 0 && !filters.is_empty() => {
                let part = match read {
                    by_value::DateRead::Along(part, _, _) => Some(part),
                    _ => None,
                };
                let dir = if desc { "DESC" } else { "ASC" };
                let seek = |b: &mut Sql| {
                    if let Some(anchor) = &anchor {
                        push_seek(b, None, anchor, desc);
                    }
                };
                let rows = pg::walk_then_set(
                    db,
                    |b| {
                        if let Some(part) = part {
                            filters.push_part(b, part);
                        }
                        filters.push_time(b);
                        seek(b);
                    },
                    |b| {
                        filters.push(b, Keyword::InSet);
                        seek(b);
                    },
                    &format!("e.occurred_at {dir}, e.id {dir}"),
                    limit,
                )
                .await?;
                return Ok(page_of(rows, q.paging(), reverse, offset));
            }
            by_value::DateRead::Along(_, index, _) if sqlite => {
                format!("events e INDEXED BY {index}")
            }
            by_value::DateRead::AsFilters
                if many_keyword_matches
                    || (sqlite
                        && walk_time_order(db, &filters, ip_sums.map(|s| s.matching)).await?) =>
            {
                "events e INDEXED BY events_occurred".to_string()
            }
            _ => "events e".to_string(),
        };
        let mut b = db.sql(format!("SELECT {ROW_COLUMNS} FROM {from} WHERE 1 = 1"));
        filters.push(&mut b, Keyword::InSet);
        if let Some(anchor) = &anchor {
            push_seek(&mut b, None, anchor, desc);
        }
        push_order(&mut b, q.sort, desc, false);
        b.push(" LIMIT ").push_bind(limit);
        if offset > 0 {
            b.push(" OFFSET ")
                .push_bind(i64::try_from(offset).unwrap_or(i64::MAX));
        }
        db.read()
            .all(&b)
            .await?
            .iter()
            .map(event_row)
            .collect::<AppResult<Vec<_>>>()?
    };
    Ok(page_of(rows, q.paging(), reverse, offset))
}

/// A page from the rows read for it: one more than the page size tells
/// whether another page follows; rows read backwards are turned round.
pub(super) fn page_of<T>(mut rows: Vec<T>, paging: Paging, reverse: bool, offset: u64) -> Page<T> {
    let more = rows.len() > paging.per_page as usize;
    rows.truncate(paging.per_page as usize);
    if reverse {
        rows.reverse();
    }
    let (has_prev, has_next) = match paging.cursor {
        None => (offset > 0, more),
        Some(Cursor::After(_)) => (true, more),
        Some(Cursor::Before(_)) => (more, true),
        Some(Cursor::End) => (more, false),
    };
    Page {
        rows,
        page: paging.page,
        per_page: paging.per_page,
        has_prev,
        has_next,
    }
}

/// Matches up to which a filter's own index is read and its rows sorted.
const SMALL_SET: i64 = 5_000;

/// SQLite, no keyword, an IP range wider than one address: how many events
/// the range holds, and how many of them the user, action and table filters
/// keep, at any time (`ip_combos`, exact); `None` when it cannot say.
async fn ip_range_sums(db: &Db, filters: &Filters) -> AppResult<Option<combos::RangeSums>> {
    let Some(range) = filters.ip.filter(|(lo, hi)| lo != hi) else {
        return Ok(None);
    };
    if db.backend() != Backend::Sqlite || filters.fts.is_some() || !combos::usable(db).await? {
        return Ok(None);
    }
    combos::range_sums(db, range, |b| {
        filters.push_combo_parts(b, &[Part::User, Part::Actions, Part::Table]);
    })
    .await
}

/// Whether reading an IP range through the IP index (every one of its
/// `events`, each row tested against the other filters) and sorting the
/// matches reads fewer rows than a walk in time order along an index of
/// `walked` entries, which meets a match every `walked / matching` rows, to
/// find `want` of them. The IP index gives a range's rows in address
/// order, not time order, so it is read whole; the walk never is.
fn fewer_through_ip(sums: combos::RangeSums, walked: i64, want: i64) -> bool {
    sums.events.saturating_mul(sums.matching) < want.saturating_mul(walked)
}

/// Whether a date-sorted page should walk the time index and test each row,
/// rather than let SQLite read a filter's index and sort every match. That
/// is the case for a filter whose index does not give rows in time order (a
/// CIDR range, several action types) when no filter that does (user, table,
/// one action, one address) narrows it, and the matches are many (`known`:
/// how many there are at any time, when `ip_combos` has said so).
async fn walk_time_order(db: &Db, filters: &Filters, known: Option<i64>) -> AppResult<bool> {
    let one_address = filters.ip.is_some_and(|(lo, hi)| lo == hi);
    let unordered = (filters.ip.is_some() && !one_address) || filters.actions.len() > 1;
    let ordered = filters.user.is_some()
        || filters.table.is_some()
        || filters.actions.len() == 1
        || one_address;
    if !unordered || ordered || filters.fts.is_some() {
        return Ok(false);
    }
    match known {
        // Known only at any time: with a time range, counted in it.
        Some(n) if filters.from.is_none() && filters.to.is_none() => Ok(n > SMALL_SET),
        _ => matches_many(db, filters).await,
    }
}

/// Whether the filters (but the keyword) match more than [`SMALL_SET`]
/// events: counted up to one more, through whichever index SQLite picks.
async fn matches_many(db: &Db, filters: &Filters) -> AppResult<bool> {
    let mut b = db.sql("SELECT COUNT(*) FROM (SELECT 1 FROM events e WHERE 1 = 1");
    filters.push(&mut b, Keyword::Skip);
    b.push(" LIMIT ").push_bind(SMALL_SET + 1).push(") m");
    let n: i64 = db.read().scalar(&b).await?;
    Ok(n > SMALL_SET)
}

/// Whether a keyword (SQLite's FTS query) matches more than [`SMALL_SET`]
/// events: its matches counted up to one more.
async fn keyword_matches_many(db: &Db, fts: &str) -> AppResult<bool> {
    let sql = db
        .sql("SELECT COUNT(*) FROM (SELECT rowid FROM events_fts WHERE events_fts MATCH ? LIMIT ?) m")
        .bind(fts.to_string())
        .bind(SMALL_SET + 1);
    let n: i64 = db.read().scalar(&sql).await?;
    Ok(n > SMALL_SET)
}

/// Rows by id, newest first (`desc`) or oldest first.
async fn rows_by_ids(db: &Db, ids: &[i64], desc: bool) -> AppResult<Vec<EventRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let dir = if desc { "DESC" } else { "ASC" };
    let mut b = db.sql(format!("SELECT {ROW_COLUMNS} FROM events e WHERE "));
    b.push_in("e.id", ids)
        .push(format!(" ORDER BY e.occurred_at {dir}, e.id {dir}"));
    db.read().all(&b).await?.iter().map(event_row).collect()
}

/// The newest `limit` events that match the keyword and the other filters
/// (and lie past `anchor`), without collecting every match.
///
/// One query streams the full-text matches (user, action and table are part
/// of the full-text query) from the highest id down, and the walk stops as
/// soon as no older id can hold a later event. Ids follow insertion order and
/// each event stores the latest time of any event inserted up to it
/// (`max_occurred_at`), so once the best `limit` candidates are all at least
/// that late, the rest cannot rank higher — after about `limit` matches when
/// events arrive in time order. It stops too once that mark falls before the
/// range's start.
///
/// With a range's end, the read starts below the first id whose mark is
/// past it (every event after that id is later than the end, but for late
/// arrivals, which are looked up on their own: [`RangeEnd`]), rather than
/// reading every match after the end first.
async fn newest_keyword_matches(db: &Db, scan: KeywordScan<'_>, limit: i64) -> AppResult<Vec<i64>> {
    use futures_util::TryStreamExt;
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    let filters = scan.filters;
    let limit = usize::try_from(limit).unwrap_or(usize::MAX).max(1);
    let own;
    let bounds = match scan.newest {
        Some(bounds) => bounds,
        None => {
            own = NewestBounds::find(db, filters).await?;
            &own
        }
    };
    let (floor, end) = (bounds.floor, bounds.end.as_ref());
    // The best candidates so far, the worst of them on top.
    let mut best: BinaryHeap<Reverse<(i64, i64)>> = BinaryHeap::with_capacity(limit + 1);
    let keep = |best: &mut BinaryHeap<Reverse<(i64, i64)>>, occurred_at: i64, id: i64| {
        best.push(Reverse((occurred_at, id)));
        if best.len() > limit {
            best.pop();
        }
    };
    if let Some(end) = end {
        if !end.late.is_empty() {
            let mut b = scan.candidates(db, true);
            b.push(" AND ");
            b.push_in("f.rowid", &end.late);
            for row in db.read().all(&b).await? {
                let (occurred_at, id, passes): (i64, i64, bool) =
                    (row.get(0)?, row.get(1)?, row.get(3)?);
                if passes {
                    keep(&mut best, occurred_at, id);
                }
            }
        }
    }
    let mut b = scan.candidates(db, true);
    b.push(" AND f.rowid >= ").push_bind(floor);
    if let Some(end) = end {
        b.push(" AND f.rowid <= ").push_bind(end.top);
    }
    b.push(" ORDER BY f.rowid DESC");
    let mut rows = db.stream(&b);
    while let Some(row) = rows.try_next().await? {
        let (occurred_at, id, mark, passes): (i64, i64, i64, bool) =
            (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
        if passes {
            keep(&mut best, occurred_at, id);
        }
        let full = best.len() >= limit && best.peek().is_some_and(|Reverse((t, _))| *t >= mark);
        let before_range = filters.from.is_some_and(|from| mark < from);
        if full || before_range {
            break;
        }
    }
    let mut found: Vec<(i64, i64)> = best.into_iter().map(|Reverse(c)| c).collect();
    found.sort_unstable_by(|a, b| b.cmp(a));
    Ok(found.into_iter().map(|(_, id)| id).collect())
}

/// Late arrivals past a range's end looked up one by one, at most: beyond
/// this many, a newest-first keyword read starts from the newest match.
const MAX_LATE_IDS: i64 = 256;

/// The ids a newest-first keyword read goes down through: from the range's
/// end (see [`RangeEnd`]) to `floor`, below which no event is at or after
/// the range's start.
pub(super) struct NewestBounds {
    floor: i64,
    end: Option<RangeEnd>,
}

impl NewestBounds {
    pub(super) async fn find(db: &Db, filters: &Filters) -> AppResult<Self> {
        let ids = id_range(db).await?;
        let floor = match filters.from {
            Some(from) => first_id_reaching(db, from, ids.0, ids.1).await?,
            None => 0,
        };
        let end = match filters.to {
            Some(to) => RangeEnd::find(db, filters.from, to, ids).await?,
            None => None,
        };
        Ok(NewestBounds { floor, end })
    }

    /// Whether the read starts at the range's end, or there is none: when
    /// not, every match after the end is read first.
    pub(super) fn starts_at_the_end(&self, filters: &Filters) -> bool {
        filters.to.is_none() || self.end.is_some()
    }
}

/// Where a newest-first read of a range with an end starts: every event
/// with an id above `top` occurred after the end, but for the `late` ones
/// (arrived after later events: backfills, delayed deliveries).
pub(super) struct RangeEnd {
    top: i64,
    late: Vec<i64>,
}

impl RangeEnd {
    /// `top` is the last id before the first whose `max_occurred_at` is
    /// past `to` (of the log's ids, `(low, high)`); the late ones above it
    /// come from the index of late arrivals (`events_late`). `None` when
    /// there are too many of them.
    async fn find(
        db: &Db,
        from: Option<i64>,
        to: i64,
        (low, high): (i64, i64),
    ) -> AppResult<Option<Self>> {
        // One past the highest id when no event is past the end.
        let top = first_id_reaching(db, to.saturating_add(1), low, high + 1).await? - 1;
        if top >= high {
            return Ok(Some(RangeEnd {
                top,
                late: Vec::new(),
            }));
        }
        let mut b = db.sql(
            "SELECT e.id FROM events e INDEXED BY events_late \
             WHERE e.occurred_at < e.max_occurred_at AND e.occurred_at <= ",
        );
        b.push_bind(to);
        if let Some(from) = from {
            b.push(" AND e.occurred_at >= ").push_bind(from);
        }
        b.push(" AND e.id > ")
            .push_bind(top)
            .push(" LIMIT ")
            .push_bind(MAX_LATE_IDS + 1);
        let late: Vec<i64> = db.read().column(&b).await?;
        if late.len() as i64 > MAX_LATE_IDS {
            return Ok(None);
        }
        Ok(Some(RangeEnd { top, late }))
    }
}

/// What a read of keyword matches in time order looks for: the full-text
/// query, the filters it cannot hold (tested on each match's row), more
/// conditions of the caller's (`extra`: ` AND …`, such as a sort value),
/// and the row the page starts after; for a newest-first read, its bounds
/// when the caller has found them already.
#[derive(Clone, Copy)]
struct KeywordScan<'a> {
    filters: &'a Filters,
    fts: &'a str,
    extra: &'a (dyn Fn(&mut Sql) + Sync),
    anchor: Option<&'a Anchor>,
    newest: Option<&'a NewestBounds>,
}

impl KeywordScan<'_> {
    /// The full-text matches joined to their events, with whether each
    /// passes the rest and lies past the anchor in the fetch direction:
    /// `occurred_at, id, max_occurred_at, passes`, for the caller to bound
    /// and order by `f.rowid`.
    fn candidates(&self, db: &Db, desc: bool) -> Sql {
        let mut b = db.sql("SELECT e.occurred_at, e.id, e.max_occurred_at, (1 = 1");
        self.filters.push(&mut b, Keyword::Skip);
        (self.extra)(&mut b);
        if let Some(anchor) = self.anchor {
            push_seek(&mut b, None, anchor, desc);
        }
        b.push(
            ") AS passes FROM events_fts f CROSS JOIN events e ON e.id = f.rowid \
             WHERE events_fts MATCH ",
        )
        .push_bind(self.fts.to_string());
        b
    }
}

/// The ids of the `limit` matches of `scan` first in time order (newest
/// first when `desc`), without collecting every match.
async fn keyword_matches_in_time_order(
    db: &Db,
    scan: KeywordScan<'_>,
    desc: bool,
    limit: i64,
) -> AppResult<Vec<i64>> {
    if desc {
        newest_keyword_matches(db, scan, limit).await
    } else {
        oldest_keyword_matches(db, scan, limit).await
    }
}

/// Full-text matches read at first by [`oldest_keyword_matches`], then
/// twice as many each time, up to [`MAX_KEYWORD_CHUNK`].
const FIRST_KEYWORD_CHUNK: i64 = 128;
const MAX_KEYWORD_CHUNK: i64 = 8_192;

/// The oldest `limit` events that match the keyword and the other filters
/// (and lie past `anchor`), without collecting every match: the mirror of
/// [`newest_keyword_matches`].
///
/// The full-text matches are read in chunks from the lowest id up (from the
/// first id that can hold an event late enough: `max_occurred_at`). Ids
/// follow insertion order, not time, so what stops the read is a look at
/// the time index: once the best `limit` candidates are found, it asks
/// whether any event not yet read (a higher id) is older than the latest of
/// them; when none is, no match still to come can rank higher. With a time
/// range's end it asks too, before the page is full, whether any event not
/// yet read lies in the range at all. Each look reads the time index over
/// the span the page covers, so they come after chunks of doubling size.
async fn oldest_keyword_matches(db: &Db, scan: KeywordScan<'_>, limit: i64) -> AppResult<Vec<i64>> {
    use std::collections::BinaryHeap;

    let (filters, anchor) = (scan.filters, scan.anchor);
    let limit = usize::try_from(limit).unwrap_or(usize::MAX).max(1);
    // Nothing before this time can be on the page.
    let lower = match (filters.from, anchor) {
        (Some(from), Some(a)) => Some(from.max(a.occurred_at)),
        (from, a) => from.or(a.map(|a| a.occurred_at)),
    };
    let mut after = match lower {
        Some(t) => first_id_at(db, t).await? - 1,
        None => i64::MIN,
    };
    // The best candidates so far, the latest of them on top.
    let mut best: BinaryHeap<(i64, i64)> = BinaryHeap::with_capacity(limit + 1);
    let mut chunk = FIRST_KEYWORD_CHUNK;
    loop {
        let mut b = scan.candidates(db, false);
        b.push(" AND f.rowid > ")
            .push_bind(after)
            .push(" ORDER BY f.rowid ASC LIMIT ")
            .push_bind(chunk);
        let rows = db.read().all(&b).await?;
        for row in &rows {
            let (occurred_at, id, passes): (i64, i64, bool) =
                (row.get(0)?, row.get(1)?, row.get(3)?);
            after = id;
            if passes {
                best.push((occurred_at, id));
                if best.len() > limit {
                    best.pop();
                }
            }
        }
        if (rows.len() as i64) < chunk {
            break;
        }
        // Whether an event not read yet could still be on the page.
        let before = if best.len() >= limit {
            best.peek().map(|(t, _)| *t)
        } else {
            filters.to.map(|to| to.saturating_add(1))
        };
        if let Some(before) = before {
            if !any_later_id_before(db, after, lower, before).await? {
                break;
            }
        }
        chunk = (chunk * 2).min(MAX_KEYWORD_CHUNK);
    }
    let mut found: Vec<(i64, i64)> = best.into_vec();
    found.sort_unstable();
    Ok(found.into_iter().map(|(_, id)| id).collect())
}

/// Whether an event with an id above `after` occurred before `before` (and
/// at or after `lower`): the time index over that span, read from its end,
/// where such late ids are when there are any.
async fn any_later_id_before(
    db: &Db,
    after: i64,
    lower: Option<i64>,
    before: i64,
) -> AppResult<bool> {
    let mut b =
        db.sql("SELECT e.id FROM events e INDEXED BY events_occurred WHERE e.occurred_at < ");
    b.push_bind(before);
    if let Some(lower) = lower {
        b.push(" AND e.occurred_at >= ").push_bind(lower);
    }
    b.push(" AND e.id > ").push_bind(after).push(" LIMIT 1");
    Ok(db.read().scalar_opt::<i64>(&b).await?.is_some())
}

/// Ids of the events a keyword search matches, newest first.
pub async fn search_event_ids(db: &Db, keyword: &str, limit: u32) -> AppResult<Vec<i64>> {
    let q = EventQuery {
        q: Some(keyword.to_string()),
        ..EventQuery::default()
    };
    let filters = Filters::new(&q, db.now())?;
    let mut b = db.sql("SELECT e.id FROM events e WHERE 1 = 1");
    filters.push(&mut b, Keyword::InSet);
    b.push(" ORDER BY e.occurred_at DESC, e.id DESC LIMIT ")
        .push_bind(i64::from(limit));
    db.read().column(&b).await
}

/// How many events match: exact up to [`COUNT_LIMIT`], then an estimate from
/// windows of ids sampled over the part of the log the time range allows.
pub async fn count_matching(db: &Db, q: &EventQuery) -> AppResult<EventCount> {
    // Not narrowed by the range's initiators (`narrow_keyword_by_ip`): the
    // count reads every match either way, and the alternative of their
    // tokens measured slower (CIDR + keyword counts at 1M: p95 145-187 ms
    // without, 193-234 ms with).
    let filters = Filters::new(q, db.now())?;
    let usable = combos::usable(db).await?;
    if usable {
        // The sum over the filters' combinations: the count itself without
        // keyword or time range, and with them, when it is 0.
        let n = by_value::combo_sum(db, |b| filters.push_on_combos(b)).await?;
        if filters.categorical() || n == 0 {
            return Ok(EventCount::exact(u64::try_from(n).unwrap_or(0)));
        }
    }
    if filters.fts.is_none() && usable {
        if let Some(range) = filters.ip {
            let sums = combos::range_sums(db, range, |b| {
                filters.push_combo_parts(b, &[Part::User, Part::Actions, Part::Table]);
            })
            .await?;
            if let Some(sums) = sums {
                // An IP range that is not whole networks, without time
                // range: summed over its addresses' combinations.
                if filters.from.is_none() && filters.to.is_none() {
                    return Ok(EventCount::exact(u64::try_from(sums.matching).unwrap_or(0)));
                }
                // With a time range, a range wider than one address of few
                // events at any time (SQLite): they are counted through the
                // IP index, at most COUNT_LIMIT rows, rather than along
                // whichever filter index the planner likes, which may hold
                // many times more rows in the range.
                if db.backend() == Backend::Sqlite
                    && range.0 != range.1
                    && sums.events <= i64::try_from(COUNT_LIMIT).unwrap_or(i64::MAX)
                {
                    let mut b =
                        db.sql("SELECT COUNT(*) FROM events e INDEXED BY events_ip WHERE 1 = 1");
                    filters.push(&mut b, Keyword::Skip);
                    let n: i64 = db.read().scalar(&b).await?;
                    return Ok(EventCount::exact(u64::try_from(n).unwrap_or(0)));
                }
            }
        }
    }
    let cap = i64::try_from(COUNT_LIMIT).unwrap_or(i64::MAX) + 1;
    let (mut low, high) = id_range(db).await?;
    if let Some(from) = filters.from {
        low = first_id_reaching(db, from, low, high).await?;
    }
    let fts_index = filters
        .fts
        .as_ref()
        .filter(|_| db.backend() == Backend::Sqlite);
    // With a keyword and a range's end: the matches from the range's end
    // down, and its late arrivals on their own (see [`RangeEnd`]), rather
    // than every match after the end first.
    let end = match (fts_index, filters.to) {
        (Some(_), Some(to)) => RangeEnd::find(db, filters.from, to, (low, high)).await?,
        _ => None,
    };
    let mut late = 0;
    if let (Some(fts), Some(end)) = (fts_index, &end) {
        if !end.late.is_empty() {
            let mut b = db.sql(
                "SELECT COUNT(*) FROM events_fts f CROSS JOIN events e ON e.id = f.rowid \
                 WHERE events_fts MATCH ",
            );
            b.push_bind(fts).push(" AND ");
            b.push_in("f.rowid", &end.late);
            filters.push(&mut b, Keyword::Skip);
            late = u64::try_from(db.read().scalar::<i64>(&b).await?).unwrap_or(0);
        }
    }
    let high = end.as_ref().map_or(high, |end| end.top);
    let mut b = if let Some(fts) = fts_index {
        // Driven by the full-text index, newest first and never below the
        // first id the range can reach, so it stops at the cap.
        let mut b = db.sql(
            "SELECT COUNT(*) FROM (SELECT 1 FROM events_fts f CROSS JOIN events e ON e.id = f.rowid \
             WHERE events_fts MATCH ",
        );
        b.push_bind(fts)
            .push(" AND f.rowid BETWEEN ")
            .push_bind(low)
            .push(" AND ")
            .push_bind(high);
        b
    } else {
        db.sql("SELECT COUNT(*) FROM (SELECT 1 FROM events e WHERE 1 = 1")
    };
    filters.push(&mut b, Keyword::Skip);
    if fts_index.is_some() {
        b.push(" ORDER BY f.rowid DESC");
    }
    b.push(" LIMIT ").push_bind(cap).push(") m");
    let n: i64 = db.read().scalar(&b).await?;
    let n = u64::try_from(n).unwrap_or(0);
    if n + late <= COUNT_LIMIT {
        return Ok(EventCount::exact(n + late));
    }
    if filters.is_empty() {
        // Every id in the span is an event, but for the few deleted.
        return Ok(EventCount::estimate(round_estimate(span_of(low, high)), 1));
    }
    // Each window is a short range scan of the primary key (NOT INDEXED
    // keeps the planner off the filter indexes, which would read every
    // match of the filter per window). Late arrivals past the range's end,
    // if any, are counted already.
    let estimate = estimate_by_windows(low, high, |start, end| {
        let mut b = if let Some(fts) = fts_index {
            let mut b = db.sql(
                "SELECT COUNT(*) FROM events_fts f CROSS JOIN events e NOT INDEXED \
                 ON e.id = f.rowid WHERE events_fts MATCH ",
            );
            b.push_bind(fts)
                .push(" AND f.rowid BETWEEN ")
                .push_bind(start)
                .push(" AND ")
                .push_bind(end);
            b
        } else {
            let hint = if db.backend() == Backend::Sqlite {
                " NOT INDEXED"
            } else {
                ""
            };
            let mut b = db.sql(format!(
                "SELECT COUNT(*) FROM events e{hint} WHERE e.id BETWEEN "
            ));
            b.push_bind(start).push(" AND ").push_bind(end);
            b
        };
        filters.push(&mut b, Keyword::Skip);
        async move { db.read().scalar::<i64>(&b).await }
    })
    .await?;
    Ok(EventCount {
        total: round_estimate(estimate.total + late),
        ..estimate
    })
}

fn span_of(low: i64, high: i64) -> u64 {
    u64::try_from(high - low + 1).unwrap_or(0)
}

/// Windows of ids a count estimate reads: at least this many, then more in
/// steps of as many, up to [`MAX_WINDOWS`].
const MIN_WINDOWS: u32 = 16;
const MAX_WINDOWS: u32 = 64;
/// The margin (95%, relative) at which an estimate stops adding windows.
const TARGET_MARGIN: f64 = 0.05;

/// A well-mixed 64-bit hash (SplitMix64's finaliser).
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Estimates how many ids in `low..=high` match (more than [`COUNT_LIMIT`]:
/// the caller found that many), from windows of consecutive ids:
/// `count(start, end)` counts one window's matches. Windows start at
/// pseudo-random places over the span (a simple random sample of windows:
/// evenly spaced ones would line up with any periodic pattern in the log and
/// miss it). The margin is worked out from how much the windows' rates
/// differ, so runs of alike events, which a window of neighbours sees
/// together, widen it; windows are added [`MIN_WINDOWS`] at a time until it
/// is within [`TARGET_MARGIN`] (and at least twice that many are read:
/// stopping at the first lucky batch would overstate its precision) or there
/// are [`MAX_WINDOWS`]. Measured on skewed logs (see the tests), the stated
/// margin holds for 94–100% of estimates.
pub(super) async fn estimate_by_windows<F, Fut>(
    low: i64,
    high: i64,
    count: F,
) -> AppResult<EventCount>
where
    F: Fn(i64, i64) -> Fut,
    Fut: std::future::Future<Output = AppResult<i64>>,
{
    let span = (high - low + 1).max(1);
    let width = (span / i64::from(4 * MAX_WINDOWS)).clamp(1, WINDOW_WIDTH);
    let places = u64::try_from(span - width + 1).unwrap_or(1).max(1);
    let seed = mix(low.unsigned_abs() ^ (high.unsigned_abs() << 20));
    let mut rates: Vec<f64> = Vec::new();
    let (mean, margin) = loop {
        for _ in 0..MIN_WINDOWS {
            let k = rates.len() as u64;
            let start = low + i64::try_from(mix(seed ^ k) % places).unwrap_or(0);
            let hits = count(start, start + width - 1).await?;
            rates.push(hits as f64 / width as f64);
        }
        let n = rates.len() as f64;
        let mean = rates.iter().sum::<f64>() / n;
        let var = rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let sampled = (n * width as f64 / span as f64).min(1.0);
        let se = (var / n * (1.0 - sampled)).sqrt();
        // Student's t for 95% (few windows: wider than 1.96).
        let t = match rates.len() {
            0..=16 => 2.13,
            17..=32 => 2.04,
            33..=48 => 2.01,
            _ => 2.0,
        };
        let margin = if mean > 0.0 { t * se / mean } else { 1.0 };
        if (margin <= TARGET_MARGIN && rates.len() >= 2 * MIN_WINDOWS as usize)
            || rates.len() >= MAX_WINDOWS as usize
        {
            break (mean, margin);
        }
    };
    let total = ((mean * span as f64) as u64).max(COUNT_LIMIT + 1);
    let percent = (margin * 100.0).ceil().clamp(1.0, 100.0) as u8;
    Ok(EventCount::estimate(round_estimate(total), percent))
}

/// The lowest and highest event id (0, 0 when empty).
pub async fn id_range(db: &Db) -> AppResult<(i64, i64)> {
    // Two scalar subqueries: each is one step down the primary key.
    let sql = db.sql("SELECT (SELECT MIN(id) FROM events), (SELECT MAX(id) FROM events)");
    let row = db.read().one(&sql).await?;
    let (low, high): (Option<i64>, Option<i64>) = (row.get(0)?, row.get(1)?);
    Ok((low.unwrap_or(0), high.unwrap_or(0)))
}

/// The first id that can hold an event at or after `from`: `max_occurred_at`
/// never decreases along the ids, so a binary search over the primary key
/// finds it, and every id below it holds only earlier events.
async fn first_id_reaching(db: &Db, from: i64, mut low: i64, mut high: i64) -> AppResult<i64> {
    while low < high {
        let mid = low + (high - low) / 2;
        let sql = db
            .sql("SELECT max_occurred_at FROM events WHERE id >= ? ORDER BY id LIMIT 1")
            .bind(mid);
        let mark: Option<i64> = db.read().scalar_opt(&sql).await?;
        if mark.is_some_and(|m| m >= from) {
            high = mid;
        } else {
            low = mid + 1;
        }
    }
    Ok(low)
}

/// The first id of the log that can hold an event at or after `t` (see
/// [`first_id_reaching`]).
async fn first_id_at(db: &Db, t: i64) -> AppResult<i64> {
    let (low, high) = id_range(db).await?;
    first_id_reaching(db, t, low, high).await
}

/// An estimate to three significant digits.
pub(super) fn round_estimate(n: u64) -> u64 {
    let mut unit = 1;
    while n / unit >= 1_000 {
        unit *= 10;
    }
    (n + unit / 2) / unit * unit
}

/// The filter bar's choices: every initiator, action and table in the log.
/// Each is read by skipping along an index (one seek per distinct value),
/// so the cost follows the number of choices, not of events.
pub async fn filter_options(db: &Db) -> AppResult<FilterOptions> {
    let mut actions = Vec::new();
    let mut last = String::new();
    while let Some(action) = db
        .read()
        .scalar_opt::<String>(
            &db.sql("SELECT action FROM events WHERE action > ? ORDER BY action LIMIT 1")
                .bind(&last),
        )
        .await?
    {
        last.clone_from(&action);
        actions.push(action);
    }
    let mut tables = Vec::new();
    let mut last = String::new();
    while let Some(table) = db
        .read()
        .scalar_opt::<String>(
            &db.sql(
                "SELECT table_name FROM events WHERE table_name > ? ORDER BY table_name LIMIT 1",
            )
            .bind(&last),
        )
        .await?
    {
        last.clone_from(&table);
        tables.push(table);
    }
    let mut initiators = Vec::new();
    for kind in InitiatorKind::ALL {
        let mut ids: Vec<Option<String>> = Vec::new();
        let anonymous: bool = db
            .read()
            .scalar(
                &db.sql(
                    "SELECT EXISTS (SELECT 1 FROM events WHERE initiator_kind = ? AND initiator_id IS NULL)",
                )
                .bind(kind.as_str()),
            )
            .await?;
        if anonymous {
            ids.push(None);
        }
        let mut last = String::new();
        while ids.len() < MAX_INITIATORS {
            let sql = db
                .sql(
                    "SELECT initiator_id FROM events WHERE initiator_kind = ? AND initiator_id > ? \
                     ORDER BY initiator_id LIMIT 1",
                )
                .bind(kind.as_str())
                .bind(&last);
            let next: Option<String> = db.read().scalar_opt(&sql).await?;
            let Some(id) = next else { break };
            last.clone_from(&id);
            ids.push(Some(id));
        }
        for id in ids {
            let mut sql = db
                .sql(
                    "SELECT initiator_kind, initiator_id, initiator_name, initiator_email FROM events \
                     WHERE initiator_kind = ?",
                )
                .bind(kind.as_str());
            match &id {
                Some(id) => sql.push(" AND initiator_id = ").push_bind(id),
                None => sql.push(" AND initiator_id IS NULL"),
            };
            sql.push(" ORDER BY occurred_at DESC LIMIT 1");
            let row = db.read().one(&sql).await?;
            let initiator = Initiator {
                kind,
                id: id.clone(),
                name: row.get("initiator_name")?,
                email: row.get("initiator_email")?,
                role: None,
            };
            let mut label = initiator.display_name();
            if let Some(email) = &initiator.email {
                label = format!("{label} <{email}>");
            } else if let (Some(id), InitiatorKind::User) = (&id, kind) {
                label = format!("{label} ({id})");
            }
            initiators.push(InitiatorOption {
                key: InitiatorKey {
                    kind: kind.as_str().to_string(),
                    id,
                },
                label,
            });
        }
    }
    initiators.sort_by_key(|i| i.label.to_lowercase());
    initiators.truncate(MAX_INITIATORS);
    Ok(FilterOptions {
        initiators,
        actions,
        tables,
    })
}

/// One event with everything View details shows.
pub async fn event_detail(db: &Db, id: i64) -> AppResult<EventDetail> {
    let row = one_event(
        db,
        id,
        ", k.label AS api_key FROM events e LEFT JOIN api_keys k ON k.id = e.api_key_id",
    )
    .await?;
    let event = event_row(&row)?;
    let history = match (&event.table_name, &event.primary_key) {
        (Some(table), Some(key)) => {
            let sql = db
                .sql(format!(
                    "SELECT {ROW_COLUMNS} FROM events e WHERE e.table_name = ? AND e.primary_key = ? \
                     ORDER BY e.occurred_at DESC, e.id DESC LIMIT ?"
                ))
                .bind(table)
                .bind(key)
                .bind(HISTORY_LIMIT);
            db.read()
                .all(&sql)
                .await?
                .iter()
                .map(event_row)
                .collect::<AppResult<Vec<_>>>()?
        }
        _ => Vec::new(),
    };
    Ok(EventDetail {
        initiator_role: event.initiator.role.clone(),
        row: event,
        received_at: row.get("received_at")?,
        user_agent: row.get("user_agent")?,
        request_id: row.get("request_id")?,
        session_id: row.get("session_id")?,
        api_key: row.get("api_key")?,
        history,
    })
}

/// Checkpoint mode of the read API: the events matching `q`'s filters with
/// an id above `after_id`, in id order, at most `limit`. Ids are given in
/// the writer's turn and committed in that order, so the ids a reader sees
/// are always every id up to some point: a poller that continues from the
/// last id it got never skips an event (not one stamped with an old time,
/// which a time cursor would pass over) and never gets one twice.
pub async fn events_after_id(
    db: &Db,
    q: &EventQuery,
    after_id: i64,
    limit: u32,
) -> AppResult<Vec<EventRow>> {
    let filters = Filters::new(q, db.now())?;
    let mut b = db.sql(format!("SELECT {ROW_COLUMNS} FROM events e WHERE e.id > "));
    b.push_bind(after_id);
    filters.push(&mut b, Keyword::InSet);
    b.push(" ORDER BY e.id LIMIT ").push_bind(i64::from(limit));
    db.read().all(&b).await?.iter().map(event_row).collect()
}

/// One event as the read API shows it: the row, its details, before and
/// after as stored (JSON text), and its chain hash (hex).
pub struct ApiEvent {
    pub row: EventRow,
    pub received_at: i64,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub session_id: Option<String>,
    pub before: Option<String>,
    pub after: Option<String>,
    pub chain_hash: Option<String>,
}

/// Event `id`'s row with its details and the columns of `rest` (`, more
/// columns FROM events e ...`); 404 when there is none.
async fn one_event(db: &Db, id: i64, rest: &str) -> AppResult<DbRow> {
    let sql = db
        .sql(format!(
            "SELECT {ROW_COLUMNS}, e.received_at, e.user_agent, e.request_id, e.session_id\
             {rest} WHERE e.id = ?"
        ))
        .bind(id);
    db.read()
        .optional(&sql)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("event {id}")))
}

pub async fn api_event(db: &Db, id: i64) -> AppResult<ApiEvent> {
    let row = one_event(db, id, DETAIL_COLUMNS).await?;
    api_event_of(&row)
}

/// The columns after a row's and its details that make an [`ApiEvent`].
const DETAIL_COLUMNS: &str = ", e.before_data, e.after_data, e.chain_hash FROM events e";

/// An event of the tail, as [`api_event`] would read it back.
pub fn api_event_of_tail(stored: &super::TailEvent) -> ApiEvent {
    let e = &stored.event;
    ApiEvent {
        row: EventRow {
            id: stored.id,
            occurred_at: e.occurred_at,
            ip: e.ip.map(|ip| ip.to_string()),
            initiator: e.initiator.clone(),
            action: e.action.clone(),
            table_name: e.table_name.clone(),
            primary_key: e.primary_key.clone(),
            description: e.description.clone(),
            has_changes: e.before.is_some() || e.after.is_some(),
        },
        received_at: stored.received_at,
        user_agent: e.user_agent.clone(),
        request_id: e.request_id.clone(),
        session_id: e.session_id.clone(),
        before: e.before.clone(),
        after: e.after.clone(),
        chain_hash: Some(hex::encode(stored.chain_hash)),
    }
}

fn api_event_of(row: &DbRow) -> AppResult<ApiEvent> {
    let chain_hash: Option<Vec<u8>> = row.get("chain_hash")?;
    Ok(ApiEvent {
        row: event_row(row)?,
        received_at: row.get("received_at")?,
        user_agent: row.get("user_agent")?,
        request_id: row.get("request_id")?,
        session_id: row.get("session_id")?,
        before: row.get("before_data")?,
        after: row.get("after_data")?,
        chain_hash: chain_hash.map(hex::encode),
    })
}

/// A stream's next batch: the events after its cursor that its filter
/// passes, in id order, with their details and chain hashes; and the id the
/// read covered, where the cursor moves once the batch is acknowledged (the
/// last event's when the batch is full, else the log's head as the read
/// began), so the events the filter passed over are not read again.
#[derive(Debug)]
pub struct StreamBatch {
    pub events: Vec<ApiEvent>,
    pub scanned_to: i64,
}

impl std::fmt::Debug for ApiEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiEvent")
            .field("id", &self.row.id)
            .finish_non_exhaustive()
    }
}

/// Up to `limit` events after `after_id` that `q` passes, among the next
/// `span` ids at most. Ids are given and committed in one order, so every
/// id up to the head read first is there to be read: none is passed over.
pub async fn stream_batch(
    db: &Db,
    q: &EventQuery,
    after_id: i64,
    limit: u32,
    span: i64,
) -> AppResult<StreamBatch> {
    let head = super::max_event_id(db)
        .await?
        .min(after_id.saturating_add(span.max(1)));
    if head <= after_id {
        return Ok(StreamBatch {
            events: Vec::new(),
            scanned_to: after_id,
        });
    }
    let events = api_events_between(db, q, after_id, head, limit).await?;
    let scanned_to = match events.last() {
        Some(last) if events.len() == limit as usize => last.row.id,
        _ => head,
    };
    Ok(StreamBatch { events, scanned_to })
}

/// Up to `limit` events with ids in `(after_id, to]` that `q` passes, in id
/// order, with their details and chain hashes.
pub async fn api_events_between(
    db: &Db,
    q: &EventQuery,
    after_id: i64,
    to: i64,
    limit: u32,
) -> AppResult<Vec<ApiEvent>> {
    let filters = Filters::new(q, db.now())?;
    let mut b = db.sql(format!(
        "SELECT {ROW_COLUMNS}, e.received_at, e.user_agent, e.request_id, e.session_id\
         {DETAIL_COLUMNS} WHERE e.id > "
    ));
    b.push_bind(after_id);
    b.push(" AND e.id <= ").push_bind(to);
    filters.push(&mut b, Keyword::InSet);
    b.push(" ORDER BY e.id LIMIT ").push_bind(i64::from(limit));
    db.read().all(&b).await?.iter().map(api_event_of).collect()
}

/// The ids of a stream's next batch, as [`stream_batch`] reads it but
/// without the rows (which streams at the same place share): up to `limit`
/// ids after `after_id` that `q` passes among the next `span`, and the id
/// the read covered.
pub async fn stream_batch_ids(
    db: &Db,
    q: &EventQuery,
    after_id: i64,
    limit: u32,
    span: i64,
) -> AppResult<(Vec<i64>, i64)> {
    let head = super::max_event_id(db)
        .await?
        .min(after_id.saturating_add(span.max(1)));
    if head <= after_id {
        return Ok((Vec::new(), after_id));
    }
    let filters = Filters::new(q, db.now())?;
    let mut b = db.sql("SELECT e.id FROM events e WHERE e.id > ");
    b.push_bind(after_id);
    b.push(" AND e.id <= ").push_bind(head);
    filters.push(&mut b, Keyword::InSet);
    b.push(" ORDER BY e.id LIMIT ").push_bind(i64::from(limit));
    let ids = db
        .read()
        .all(&b)
        .await?
        .iter()
        .map(|row| row.get::<i64>("id"))
        .collect::<AppResult<Vec<_>>>()?;
    let scanned_to = match ids.last() {
        Some(&last) if ids.len() == limit as usize => last,
        _ => head,
    };
    Ok((ids, scanned_to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyword_text_never_becomes_fts_syntax() {
        assert_eq!(
            fts_query("alice"),
            Some(format!("{TEXT_COLUMNS} : (\"alice\")"))
        );
        assert_eq!(
            fts_query(r#""disk full" OR NEAR(x)"#),
            Some(format!(r#"{TEXT_COLUMNS} : ("disk full" "OR" "NEAR(x)")"#))
        );
        assert_eq!(fts_query("  \"\" "), None);
    }

    #[test]
    fn filters_join_the_keyword_as_index_tokens() {
        let q = EventQuery {
            user: Some(InitiatorKey::parse("user:u-1").unwrap()),
            actions: vec!["CREATE".into(), "LOGIN".into()],
            table: Some("invoices".into()),
            ..EventQuery::default()
        };
        assert_eq!(
            fts_with_filters("K", &q),
            "K AND filter_keys : u757365723a752d31 AND filter_keys : (a435245415445 OR a4c4f47494e) \
             AND filter_keys : t696e766f69636573"
        );
    }

    #[test]
    fn estimates_keep_three_digits() {
        assert_eq!(round_estimate(10_001), 10_000);
        assert_eq!(round_estimate(1_234_567), 1_230_000);
        assert_eq!(round_estimate(999), 999);
        assert_eq!(round_estimate(99_951), 100_000);
    }

    /// How often an estimate's stated margin holds, over 200 logs of 2 to
    /// 10 million ids each, for shares spread evenly, in long runs and in
    /// short periodic runs. Prints the figures (`--no-capture`).
    #[test]
    fn estimates_hold_their_margin_on_skewed_logs() {
        type Pattern = fn(i64) -> bool;
        let patterns: [(&str, Pattern); 4] = [
            ("30% spread", |id| mix(id as u64) % 10 < 3),
            ("90% in runs of 500", |id| (id / 500) % 10 != 3),
            ("5% in runs of 20,000", |id| (id / 20_000) % 20 == 7),
            ("1% every 100th id", |id| id % 100 == 0),
        ];
        for (name, matches) in patterns {
            let (mut held, mut worst, mut margins) = (0, 0.0f64, 0u32);
            let trials = 200;
            for t in 0..trials {
                let low = 1 + t * 7_919;
                let high = low + 2_000_000 + t * 40_000;
                let truth = (low..=high).filter(|&id| matches(id)).count() as f64;
                let got = futures_executor(estimate_by_windows(low, high, |start, end| {
                    let n = (start..=end).filter(|&id| matches(id)).count() as i64;
                    async move { Ok(n) }
                }));
                let error = (got.total as f64 - truth).abs() / truth * 100.0;
                // The estimate is rounded to three digits: allow that too.
                if error <= f64::from(got.margin) + 0.5 {
                    held += 1;
                }
                worst = worst.max(error);
                margins += u32::from(got.margin);
            }
            println!(
                "{name}: margin held in {held}/{trials}, mean stated ± {:.1}%, worst error {worst:.1}%",
                f64::from(margins) / trials as f64
            );
            assert!(held >= trials * 85 / 100, "{name}: held in {held}/{trials}");
        }
    }

    /// Runs a future that never waits (the counts above are at hand).
    fn futures_executor<T>(f: impl std::future::Future<Output = AppResult<T>>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
            .unwrap()
    }
}
