//! Sorted pages read one sort value at a time.
//!
//! A sort by a column other than date, with filters, goes through the
//! values of the sort column that the filters reach, which
//! [`event_combos`](super::super::combos) lists in a moment, in sort order;
//! for each, the events with that value that match, in time order, read
//! along whichever index holds the fewest entries for it (the sort column's
//! for the value, or a filter's), until the page is full. The IP sort goes
//! by network: each is one range of the IP index, read in its order. A filter that
//! correlates with the sort (a user's own name or addresses, a CIDR range
//! sorted by initiator) is then read where its rows are, instead of along
//! the whole sort order before them; and a value no match has is never read.
//! With a user filter the IP sort goes by the user's own addresses
//! (`ip_combos`), each one seek, not by their networks, whose other
//! addresses may hold most of the network's events.

use super::super::combos;
use super::{
    event_row, filter_token, initiator_token, keyword_matches_in_time_order, nullable, pg,
    push_seek, rows_by_ids, sort_column, sort_index, Anchor, Filters, Keyword, KeywordScan,
    NewestBounds, Part, SortValue, ROW_COLUMNS,
};
use crate::errors::AppResult;
use crate::models::EventRow;
use crate::query::SortColumn;
use crate::server::store::{Backend, Db, Exec, Sql};

/// The column of `event_combos` that holds a sort column's value.
fn combo_column(column: SortColumn) -> Option<&'static str> {
    match column {
        SortColumn::Date => None,
        SortColumn::User => Some("c.initiator_name"),
        SortColumn::Action => Some("c.action"),
        SortColumn::Table => Some("c.table_name"),
        SortColumn::Ip => Some("c.ip_net"),
    }
}

/// One value of the sort column (`None`: no value) and how many events
/// hold it: in all, and matching the filters.
struct Reach {
    value: Option<SortValue>,
    total: i64,
}

/// A sort value as `event_combos` holds it: an IP as its network.
fn combo_value(column: SortColumn, v: &SortValue) -> SortValue {
    match (column, v) {
        (SortColumn::Ip, SortValue::Blob(key)) => match <[u8; 16]>::try_from(key.as_slice()) {
            Ok(key) => SortValue::Blob(combos::ip_net(&key).to_vec()),
            Err(_) => SortValue::Blob(key.clone()),
        },
        (_, SortValue::Text(t)) => SortValue::Text(t.clone()),
        (_, SortValue::Blob(x)) => SortValue::Blob(x.clone()),
    }
}

fn bind_value(b: &mut Sql, v: &SortValue) {
    match v {
        SortValue::Text(t) => b.push_bind(t.clone()),
        SortValue::Blob(x) => b.push_bind(x.clone()),
    };
}

/// The sort column's values the filters reach, in fetch order from the
/// anchor's value on; `None` when `event_combos` cannot say (too large).
async fn reach(
    db: &Db,
    filters: &Filters,
    column: SortColumn,
    anchor: Option<&Anchor>,
    desc: bool,
) -> AppResult<Option<Vec<Reach>>> {
    let Some(col) = combo_column(column) else {
        return Ok(None);
    };
    if !combos::usable(db).await? {
        return Ok(None);
    }
    let mut b = db.sql(format!(
        "SELECT v, total FROM (SELECT {col} AS v, CAST(SUM(c.n) AS BIGINT) AS total, \
         CAST(SUM(CASE WHEN 1 = 1"
    ));
    filters.push_on_combos(&mut b);
    b.push(" THEN c.n ELSE 0 END) AS BIGINT) AS hits FROM event_combos c WHERE 1 = 1");
    if let Some(v) = anchor.and_then(|a| a.value.as_ref()) {
        b.push(format!(" AND {col} {} ", if desc { "<=" } else { ">=" }));
        bind_value(&mut b, &combo_value(column, v));
    }
    b.push(format!(
        " GROUP BY {col}) g WHERE hits > 0 ORDER BY v {}",
        if desc { "DESC" } else { "ASC" }
    ));
    let mut values = Vec::new();
    let mut none = None;
    for row in db.read().all(&b).await? {
        let value = match column {
            SortColumn::Ip => Some(row.get::<Vec<u8>>("v")?)
                .filter(|v| !v.is_empty())
                .map(SortValue::Blob),
            _ => Some(row.get::<String>("v")?)
                .filter(|v| !v.is_empty())
                .map(SortValue::Text),
        };
        let total = row.get::<i64>("total")?;
        match value {
            Some(value) => values.push(Reach {
                value: Some(value),
                total,
            }),
            None => none = Some(Reach { value: None, total }),
        }
    }
    // No value sorts below every value: first ascending, last descending;
    // an anchor in it (ascending) has every value still ahead, one with a
    // value (ascending) has left it behind.
    let anchor_in_none = anchor.is_some_and(|a| a.value.is_none());
    if nullable(column) {
        if let Some(n) = none {
            if desc {
                values.push(n);
            } else if anchor.is_none() || anchor_in_none {
                values.insert(0, n);
            }
        }
    }
    if desc && anchor_in_none {
        values.retain(|r| r.value.is_none());
    }
    Ok(Some(values))
}

/// The SQLite indexes (besides the sort column's) that give a filter's
/// matches in time order, with how many events each holds for it.
async fn filter_indexes(db: &Db, filters: &Filters) -> AppResult<Vec<(Part, &'static str, i64)>> {
    let mut out = Vec::new();
    for (part, index) in filters.time_ordered_indexes() {
        let n = combo_sum(db, |b| filters.push_combo_part(b, part)).await?;
        out.push((part, index, n));
    }
    Ok(out)
}

/// How many events the combinations `push` selects (`AND …` over
/// `event_combos c`) hold.
pub(in crate::server::store) async fn combo_sum(
    db: &Db,
    push: impl FnOnce(&mut Sql),
) -> AppResult<i64> {
    let mut b =
        db.sql("SELECT CAST(COALESCE(SUM(c.n), 0) AS BIGINT) FROM event_combos c WHERE 1 = 1");
    push(&mut b);
    db.read().scalar::<i64>(&b).await
}

/// Whether no event has the filters' combination of user, actions, table
/// and IP network at any time (`event_combos`), so nothing can match.
pub(in crate::server::store) async fn no_combination(
    db: &Db,
    filters: &Filters,
) -> AppResult<bool> {
    Ok(combos::usable(db).await? && combo_sum(db, |b| filters.push_on_combos(b)).await? == 0)
}

/// How a date-sorted page with filters but no keyword is read.
pub(in crate::server::store) enum DateRead {
    /// No event has the filters' combination of values: nothing to read.
    Nothing,
    /// Along the filter index with the fewest entries that gives its
    /// matches in time order (SQLite names it; PostgreSQL walks its filter
    /// first), with how many entries it holds for the filter.
    Along(Part, &'static str, i64),
    /// As the filters alone decide (see `walk_time_order`).
    AsFilters,
}

/// `few_keyword_matches`: a keyword matches so few events that reading
/// them and sorting them is cheaper than any walk.
pub(in crate::server::store) async fn date_read(
    db: &Db,
    filters: &Filters,
    few_keyword_matches: bool,
) -> AppResult<DateRead> {
    if filters.is_empty() || !combos::usable(db).await? {
        return Ok(DateRead::AsFilters);
    }
    if combo_sum(db, |b| filters.push_on_combos(b)).await? == 0 {
        return Ok(DateRead::Nothing);
    }
    if few_keyword_matches {
        return Ok(DateRead::AsFilters);
    }
    Ok(filter_indexes(db, filters)
        .await?
        .into_iter()
        .min_by_key(|(_, _, n)| *n)
        .map_or(DateRead::AsFilters, |(part, index, n)| {
            DateRead::Along(part, index, n)
        }))
}

/// Which rows of the sort column one read keeps to.
enum Target<'a> {
    /// One value (an IP sort: one address).
    Value(&'a SortValue),
    /// An IP network: one range of the IP index, read in its order.
    Network(&'a [u8]),
    /// The rows with no value.
    Null,
}

/// One sorted page with filters (`None`: read it another way). A keyword's
/// matches are read from the full-text index for each value: in time order
/// as far as the page needs where the index holds the value as a token, else
/// as a set.
pub(in crate::server::store) async fn rows(
    db: &Db,
    filters: &Filters,
    column: SortColumn,
    anchor: Option<&Anchor>,
    desc: bool,
    limit: i64,
) -> AppResult<Option<Vec<EventRow>>> {
    let (Some(_), Some(values)) = (
        sort_column(column),
        reach(db, filters, column, anchor, desc).await?,
    ) else {
        return Ok(None);
    };
    let read = ValueRead {
        db,
        filters,
        column,
        indexes: filter_indexes(db, filters).await?,
        anchor,
        desc,
        // Only the sort columns whose values the full-text index holds.
        newest: match &filters.fts {
            Some(_)
                if desc
                    && db.backend() == Backend::Sqlite
                    && matches!(
                        column,
                        SortColumn::Action | SortColumn::Table | SortColumn::User
                    ) =>
            {
                Some(NewestBounds::find(db, filters).await?)
            }
            _ => None,
        },
    };
    let mut rows: Vec<EventRow> = Vec::new();
    for value in values {
        if rows.len() as i64 >= limit {
            break;
        }
        let target = match &value.value {
            Some(SortValue::Blob(net)) if column == SortColumn::Ip => {
                // A user's own addresses in the network, each a seek,
                // rather than a walk past everyone else's before them.
                if let Some(ips) = read.users_addresses(net).await? {
                    for ip in ips {
                        let want = limit - rows.len() as i64;
                        if want <= 0 {
                            break;
                        }
                        let ip_value = SortValue::Blob(ip.ip);
                        let got = read.one(Target::Value(&ip_value), ip.total, want).await?;
                        rows.extend(got);
                    }
                    continue;
                }
                Target::Network(net)
            }
            Some(v) => Target::Value(v),
            None => Target::Null,
        };
        let want = limit - rows.len() as i64;
        rows.extend(read.one(target, value.total, want).await?);
    }
    Ok(Some(rows))
}

/// What every read of one sorted page shares.
struct ValueRead<'a> {
    db: &'a Db,
    filters: &'a Filters,
    column: SortColumn,
    /// The filters' time-ordered indexes, with their entries.
    indexes: Vec<(Part, &'static str, i64)>,
    anchor: Option<&'a Anchor>,
    desc: bool,
    /// Where newest-first keyword reads go, for a keyword page newest first.
    newest: Option<NewestBounds>,
}

impl ValueRead<'_> {
    /// With a user filter: the user's addresses in the network `net`
    /// within the IP filter's range, from the anchor's address on, that
    /// hold events of the action and table filters, in fetch order (`None`:
    /// no user filter, or too many addresses to seek each).
    async fn users_addresses(&self, net: &[u8]) -> AppResult<Option<Vec<combos::InitiatorIp>>> {
        let Some(user) = &self.filters.user else {
            return Ok(None);
        };
        let (mut lo, mut hi) = combos::net_range(net);
        if let Some((flo, fhi)) = self.filters.ip {
            lo = lo.max(flo);
            hi = hi.min(fhi);
        }
        if let Some(SortValue::Blob(at)) = self.anchor.and_then(|a| a.value.as_ref()) {
            if let Ok(at) = <[u8; 16]>::try_from(at.as_slice()) {
                if self.desc {
                    hi = hi.min(at);
                } else {
                    lo = lo.max(at);
                }
            }
        }
        if lo > hi {
            return Ok(Some(Vec::new()));
        }
        let filters = self.filters;
        combos::initiator_ips_in(
            self.db,
            user,
            (lo, hi),
            |b| filters.push_combo_parts(b, &[Part::Actions, Part::Table]),
            self.desc,
        )
        .await
    }

    /// Up to `want` rows of `target` that match, in the page's order:
    /// along whichever index holds the fewest entries for it (the sort
    /// column's, `total` of them, or a filter's).
    async fn one(&self, target: Target<'_>, total: i64, want: i64) -> AppResult<Vec<EventRow>> {
        let (db, filters, column, desc) = (self.db, self.filters, self.column, self.desc);
        let Some(expr) = sort_column(column) else {
            return Ok(Vec::new());
        };
        let network = matches!(target, Target::Network(_));
        let along = self
            .indexes
            .iter()
            .copied()
            .filter(|(_, _, n)| *n < total && !network)
            .min_by_key(|(_, _, n)| *n);
        let index = along.map_or(sort_index(column), |(_, index, _)| index);
        let push_value = |b: &mut Sql| {
            b.push(format!(" AND {expr}"));
            match &target {
                Target::Network(net) => {
                    let (lo, hi) = combos::net_range(net);
                    b.push(" BETWEEN ")
                        .push_bind(lo.to_vec())
                        .push(" AND ")
                        .push_bind(hi.to_vec());
                }
                Target::Value(v) => {
                    b.push(" = ");
                    bind_value(b, v);
                }
                Target::Null => {
                    b.push(" IS NULL");
                }
            }
        };
        // The anchor's row is in this read's rows when its value is the
        // value (its network, for a network).
        let anchor_here = self.anchor.filter(|a| match (&target, &a.value) {
            (Target::Null, None) => true,
            (Target::Value(v), Some(av)) => *v == av,
            (Target::Network(net), Some(av)) => {
                combo_value(column, av) == SortValue::Blob(net.to_vec())
            }
            _ => false,
        });
        let push_anchor = |b: &mut Sql| {
            if let Some(a) = anchor_here {
                push_seek(b, network.then_some(expr), a, desc);
            }
        };
        let dir = if desc { "DESC" } else { "ASC" };
        let by_ip = if network {
            format!("{expr} {dir}, ")
        } else {
            String::new()
        };
        let order = format!("{by_ip}e.occurred_at {dir}, e.id {dir}");
        if db.backend() != Backend::Sqlite {
            return pg::walk_then_set(
                db,
                |b| {
                    match along {
                        Some((part, _, _)) => filters.push_part(b, part),
                        None => push_value(b),
                    }
                    filters.push_time(b);
                    push_anchor(b);
                },
                |b| {
                    push_value(b);
                    filters.push(b, Keyword::InSet);
                    push_anchor(b);
                },
                &order,
                want,
            )
            .await;
        }
        // A keyword's matches with this value, where the index holds the
        // value as a token (an action, a table, the initiators who have a
        // name): read in time order from the full-text index, as far as the
        // page needs. Not newest first with a range's end the read cannot
        // start at, which would not stop it: every match after the end
        // would be read first, for each value.
        let at_the_end = self
            .newest
            .as_ref()
            .is_none_or(|bounds| bounds.starts_at_the_end(filters));
        if let Some(fts) = filters.fts.as_deref().filter(|_| at_the_end) {
            let token = match (column, &target) {
                (SortColumn::Action, Target::Value(SortValue::Text(v))) => {
                    Some(filter_token('a', v))
                }
                (SortColumn::Table, Target::Value(SortValue::Text(v))) => {
                    Some(filter_token('t', v))
                }
                (SortColumn::User, Target::Value(SortValue::Text(name))) => {
                    named_initiators_token(db, name).await?
                }
                _ => None,
            };
            if let Some(token) = token {
                let fts = format!("{fts} AND filter_keys : {token}");
                let scan = KeywordScan {
                    filters,
                    fts: &fts,
                    extra: &push_value,
                    anchor: anchor_here,
                    newest: self.newest.as_ref(),
                };
                let ids = keyword_matches_in_time_order(db, scan, desc, want).await?;
                return rows_by_ids(db, &ids, desc).await;
            }
        }
        let mut b = db.sql(format!(
            "SELECT {ROW_COLUMNS} FROM events e INDEXED BY {index} WHERE 1 = 1"
        ));
        push_value(&mut b);
        match filters.fts.as_deref() {
            // Otherwise the keyword's matches as a set.
            Some(fts) => {
                filters.push(&mut b, Keyword::Skip);
                b.push(" AND e.id IN (SELECT rowid FROM events_fts WHERE events_fts MATCH ")
                    .push_bind(fts.to_string())
                    .push(")");
            }
            None => filters.push(&mut b, Keyword::InSet),
        }
        push_anchor(&mut b);
        b.push(format!(" ORDER BY {order} LIMIT ")).push_bind(want);
        db.read().all(&b).await?.iter().map(event_row).collect()
    }
}

/// At most this many initiators with one name are joined into a keyword
/// search as tokens (see [`named_initiators_token`]).
const MAX_NAMESAKES: usize = 32;

/// The index tokens of the initiators called `name` (`event_combos` knows
/// them), as one full-text alternative: a keyword search sorted by user
/// then intersects them with the words in the index, rather than reading
/// every match of the words and keeping those with the name. `None` when
/// `event_combos` cannot say or too many initiators share the name.
async fn named_initiators_token(db: &Db, name: &str) -> AppResult<Option<String>> {
    if !combos::usable(db).await? {
        return Ok(None);
    }
    let sql = db
        .sql(
            "SELECT DISTINCT initiator_kind, initiator_id FROM event_combos \
             WHERE initiator_name = ? AND n > 0 LIMIT ?",
        )
        .bind(name.to_string())
        .bind(MAX_NAMESAKES as i64 + 1);
    let keys: Vec<String> = db
        .read()
        .all(&sql)
        .await?
        .iter()
        .map(|row| {
            let kind: String = row.get("initiator_kind")?;
            let id: String = row.get("initiator_id")?;
            Ok(initiator_token(&kind, &id))
        })
        .collect::<AppResult<_>>()?;
    Ok(match keys.len() {
        0 => None,
        n if n > MAX_NAMESAKES => None,
        _ => Some(format!("({})", keys.join(" OR "))),
    })
}
