//! The activity chart and the top breakdowns of a view.
//!
//! The chart sums `event_volume` (events per quarter hour and action) when
//! the view filters by action or time only and its buckets are whole
//! quarters; the part of the range that cuts a quarter at either end is read
//! from the log, so the bars are exact. Any other view is grouped from the
//! log along its filters' indexes. The breakdowns of a view without keyword
//! or time range come from `event_combos`; the others from the log.

use super::super::{combos, volume, Backend, Db, Exec, Sql};
use super::{Filters, Keyword, Part};
use crate::charts::{Breakdowns, Histogram, Top, TOP_N};
use crate::errors::AppResult;
use crate::query::EventQuery;
use crate::server::charts::{boundaries, choose_unit, histogram as build, Unit};
use chrono_tz::Tz;
use std::collections::HashMap;

const MINUTE: i64 = 60_000_000;

/// The log's first and last event time, `None` when it is empty.
async fn time_span(db: &Db) -> AppResult<Option<(i64, i64)>> {
    let sql = db.sql(
        "SELECT (SELECT occurred_at FROM events ORDER BY occurred_at LIMIT 1), \
         (SELECT occurred_at FROM events ORDER BY occurred_at DESC LIMIT 1)",
    );
    let row = db.read().one(&sql).await?;
    let (first, last): (Option<i64>, Option<i64>) = (row.get(0)?, row.get(1)?);
    Ok(first.zip(last))
}

/// Views of more events than this are read from a sample of their ids.
const SAMPLE_ABOVE: u64 = 50_000;
/// About how many events a sample holds.
const SAMPLE_SIZE: u64 = 25_000;

/// `1 in k` as a condition on ids: Fibonacci hashing (the id times 2^32/φ,
/// the low 32 bits compared), so that not simply every k-th id is taken
/// and a pattern in the order events arrive in (CREATE, UPDATE, DELETE, …)
/// does not skew it.
/// Driven from the full-text index, the match's rowid is tested, before
/// its event is looked up.
fn push_sample(b: &mut Sql, filters: &Filters, k: u32) {
    let threshold = (1u64 << 32) / u64::from(k);
    let id = if fts_driven(filters, b.backend()) {
        "f.rowid"
    } else {
        "e.id"
    };
    b.push(format!(
        " AND ({id} * 2654435761) % 4294967296 < {threshold}"
    ));
}

/// Whether [`push_source`] reads the keyword's matches from the index.
fn fts_driven(filters: &Filters, backend: Backend) -> bool {
    filters.fts.is_some() && backend == Backend::Sqlite
}

/// `1` to read every event of a view, else `k` to read about one in `k`.
async fn sample_step(db: &Db, q: &EventQuery) -> AppResult<u32> {
    let n = super::count_matching(db, q).await?.total;
    Ok(if n > SAMPLE_ABOVE {
        u32::try_from(n.div_ceil(SAMPLE_SIZE))
            .unwrap_or(u32::MAX)
            .max(2)
    } else {
        1
    })
}

/// `n` sampled at one in `k` as an estimate of the whole.
fn scaled(n: u64, k: u32) -> u64 {
    if k <= 1 {
        return n;
    }
    let threshold = (1u64 << 32) / u64::from(k);
    ((n as f64) * (1u64 << 32) as f64 / threshold as f64).round() as u64
}

/// ` FROM … WHERE …` with the view's filters: on SQLite, a keyword search
/// is driven from the full-text index (each match looked up once), not
/// tested against every event, and otherwise `index` (see [`best_index`]).
fn push_source(b: &mut Sql, filters: &Filters, index: Option<&str>) {
    match (&filters.fts, b.backend()) {
        (Some(fts), Backend::Sqlite) => {
            b.push(
                " FROM events_fts f CROSS JOIN events e ON e.id = f.rowid \
                 WHERE events_fts MATCH ",
            )
            .push_bind(fts.clone());
            filters.push(b, Keyword::Skip);
        }
        _ => {
            match index {
                Some(index) => b.push(format!(" FROM events e INDEXED BY {index} WHERE 1 = 1")),
                None => b.push(" FROM events e WHERE 1 = 1"),
            };
            filters.push(b, Keyword::InSet);
        }
    }
}

/// Where SQLite reads a view without keyword from: the index of the filter
/// that the combination counts say holds the fewest events (a grouping has
/// no order to keep, so any filter's index serves; left to itself, the
/// planner may walk an index that gives the groups in order instead).
/// `Err(())`: no event has the filters' values.
async fn best_index(db: &Db, filters: &Filters) -> AppResult<Result<Option<&'static str>, ()>> {
    if db.backend() != Backend::Sqlite || filters.fts.is_some() || !combos::usable(db).await? {
        return Ok(Ok(None));
    }
    let mut best: Option<(i64, &'static str)> = None;
    let parts = [
        (filters.user.is_some(), Part::User, "events_initiator"),
        (!filters.actions.is_empty(), Part::Actions, "events_action"),
        (filters.table.is_some(), Part::Table, "events_table"),
        (filters.ip.is_some(), Part::Ip, "events_ip"),
    ];
    for (set, part, index) in parts {
        if !set {
            continue;
        }
        let n = super::by_value::combo_sum(db, |b| filters.push_combo_part(b, part)).await?;
        if n == 0 {
            return Ok(Err(()));
        }
        if best.is_none_or(|(m, _)| n < m) {
            best = Some((n, index));
        }
    }
    Ok(Ok(best.map(|(_, index)| index)))
}

/// The view's events over its range in calendar buckets of `zone`; `None`
/// when there is nothing to draw (an empty log and no range).
pub async fn event_histogram(db: &Db, q: &EventQuery, zone: Tz) -> AppResult<Option<Histogram>> {
    let filters = Filters::new(q, db.now())?;
    let span = match (filters.from, filters.to) {
        (Some(from), Some(to)) => Some((from, to)),
        (from, to) => time_span(db)
            .await?
            .map(|(first, last)| {
                // From a time on (a rolling range): up to now, or the last
                // event if it is later.
                let last = if from.is_some() {
                    last.max(db.now())
                } else {
                    last
                };
                (from.unwrap_or(first), to.unwrap_or(last))
            })
            .filter(|(a, b)| a <= b),
    };
    let Some((lo, hi)) = span else {
        return Ok(None);
    };
    let unit = choose_unit(hi - lo);
    let edges = boundaries(lo, hi, unit, zone);
    let (counts, sample) = if by_rollup(&filters, unit, lo, hi) {
        (rollup_counts(db, &filters, &edges, lo, hi).await?, None)
    } else {
        let k = sample_step(db, q).await?;
        let counts = log_counts(db, &filters, &edges, k).await?;
        (counts, (k > 1).then_some(k))
    };
    let mut histogram = build(zone, unit, &edges, lo, hi, counts);
    histogram.sample = sample;
    Ok(Some(histogram))
}

/// Whether `event_volume` answers: the view filters by action and time only,
/// its buckets are whole quarters, and its range holds a whole quarter.
fn by_rollup(filters: &Filters, unit: Unit, lo: i64, hi: i64) -> bool {
    filters.user.is_none()
        && filters.table.is_none()
        && filters.ip.is_none()
        && filters.fts.is_none()
        && unit.typical() >= volume::QUARTER
        && volume::quarter_of(lo + volume::QUARTER - 1) < volume::quarter_of(hi.saturating_add(1))
}

/// The longest stretch that every bucket edge is a whole number of from
/// the first edge (a day from local midnight, say, while no clock change
/// comes between), and that first edge: the log is grouped by it, so that
/// few rows come back and none straddles two bars.
fn grain(edges: &[i64]) -> (i64, i64) {
    const STRETCHES: [i64; 12] = [
        24 * 60 * MINUTE,
        12 * 60 * MINUTE,
        6 * 60 * MINUTE,
        3 * 60 * MINUTE,
        2 * 60 * MINUTE,
        60 * MINUTE,
        30 * MINUTE,
        15 * MINUTE,
        10 * MINUTE,
        5 * MINUTE,
        2 * MINUTE,
        MINUTE,
    ];
    let origin = edges.first().copied().unwrap_or(0);
    let g = STRETCHES
        .into_iter()
        .find(|g| edges.iter().all(|e| (e - origin).rem_euclid(*g) == 0))
        .unwrap_or(1);
    (g, origin.rem_euclid(g))
}

/// `(instant, action, n)` from the log: each instant starts a stretch of
/// [`grain`] in one bucket; `k` reads one id in `k` and scales up.
async fn log_counts(
    db: &Db,
    filters: &Filters,
    edges: &[i64],
    k: u32,
) -> AppResult<Vec<(i64, String, u64)>> {
    let Ok(index) = best_index(db, filters).await? else {
        return Ok(Vec::new());
    };
    let (g, c) = grain(edges);
    let mut b = db.sql(format!(
        "SELECT e.occurred_at - (((e.occurred_at - {c}) % {g}) + {g}) % {g}, e.action, COUNT(*)"
    ));
    push_source(&mut b, filters, index);
    if k > 1 {
        push_sample(&mut b, filters, k);
    }
    b.push(" GROUP BY 1, 2");
    let mut out = triples(db, &b).await?;
    for row in &mut out {
        row.2 = scaled(row.2, k);
    }
    Ok(out)
}

/// `(instant, action, n)` per bucket from `event_volume` (each instant in
/// its bucket), the cut quarters at the range's ends from the log: exact.
async fn rollup_counts(
    db: &Db,
    filters: &Filters,
    edges: &[i64],
    lo: i64,
    hi: i64,
) -> AppResult<Vec<(i64, String, u64)>> {
    let first_whole = volume::quarter_of(lo + volume::QUARTER - 1);
    let after_whole = volume::quarter_of(hi.saturating_add(1));
    // Each bucket's whole quarters: one range of the primary key each.
    let mut b = db.sql("WITH b (lo, hi) AS (VALUES ");
    let mut any = false;
    for pair in edges.windows(2) {
        let (start, end) = (pair[0].max(first_whole), pair[1].min(after_whole));
        if start < end {
            b.push(if any { ", (" } else { "(" })
                .push("CAST(")
                .push_bind(start)
                .push(" AS BIGINT), CAST(")
                .push_bind(end)
                .push(" AS BIGINT))");
            any = true;
        }
    }
    let mut out = Vec::new();
    if any {
        b.push(
            ") SELECT b.lo, v.action, CAST(SUM(v.n) AS BIGINT) FROM b CROSS JOIN event_volume v \
             WHERE v.quarter >= b.lo AND v.quarter < b.hi",
        );
        if !filters.actions.is_empty() {
            filters.push_actions(&mut b, "v.action");
        }
        b.push(" GROUP BY b.lo, v.action");
        out = triples(db, &b).await?;
    }
    // The cut quarters at the ends, from the log.
    for (start, end) in [(lo, first_whole), (after_whole, hi.saturating_add(1))] {
        if start >= end {
            continue;
        }
        let mut b = db.sql(format!(
            "SELECT {start}, e.action, COUNT(*) FROM events e WHERE e.occurred_at >= "
        ));
        b.push_bind(start)
            .push(" AND e.occurred_at < ")
            .push_bind(end);
        if !filters.actions.is_empty() {
            filters.push_actions(&mut b, "e.action");
        }
        b.push(" GROUP BY e.action");
        out.extend(triples(db, &b).await?);
    }
    Ok(out)
}

async fn triples(db: &Db, sql: &Sql) -> AppResult<Vec<(i64, String, u64)>> {
    db.read()
        .all(sql)
        .await?
        .iter()
        .map(|r| {
            let n: i64 = r.get(2)?;
            Ok((r.get(0)?, r.get(1)?, u64::try_from(n).unwrap_or(0)))
        })
        .collect()
}

/// The view's top initiators, actions, tables and IPs.
pub async fn event_breakdowns(db: &Db, q: &EventQuery) -> AppResult<Breakdowns> {
    let filters = Filters::new(q, db.now())?;
    if filters.categorical() && combos::usable(db).await? {
        return from_combos(db, &filters).await;
    }
    let k = sample_step(db, q).await?;
    let Ok(index) = best_index(db, &filters).await? else {
        return Ok(Breakdowns::default());
    };
    // One pass over the view (or its sample): its events grouped by every
    // field the lists count, then added up per list here.
    let mut b = db.sql(
        "SELECT e.initiator_kind, e.initiator_id, MAX(e.initiator_name), e.action, e.table_name, \
         e.ip, COUNT(*)",
    );
    push_source(&mut b, &filters, index);
    if k > 1 {
        push_sample(&mut b, &filters, k);
    }
    // SQLite: `+` keeps the planner off an index that would give the groups
    // in order by walking every event.
    b.push(if db.backend() == Backend::Sqlite {
        " GROUP BY +e.initiator_kind, +e.initiator_id, +e.action, +e.table_name, +e.ip"
    } else {
        " GROUP BY e.initiator_kind, e.initiator_id, e.action, e.table_name, e.ip"
    });
    let mut lists: [HashMap<(String, Option<String>), u64>; 4] = Default::default();
    let mut total = 0;
    for r in db.read().all(&b).await? {
        let n = u64::try_from(r.get::<i64>(6)?).unwrap_or(0);
        total += n;
        let action: String = r.get(3)?;
        let table: Option<String> = r.get(4)?;
        let ip: Option<String> = r.get(5)?;
        for (list, key) in lists.iter_mut().zip([
            initiator(&r)?,
            (action.clone(), Some(action)),
            label_or_none(table, "(no table)"),
            label_or_none(ip, "(no IP)"),
        ]) {
            *list.entry(key).or_default() += n;
        }
    }
    let [initiators, actions, tables, ips] = lists.map(|list| top_of(list, k));
    Ok(Breakdowns {
        initiators,
        actions,
        tables,
        ips,
        ip_networks: false,
        total: scaled(total, k),
        sample: (k > 1).then_some(k),
    })
}

/// The [`TOP_N`] largest of `counts`, largest first (then by label), each
/// scaled up from a sample of one in `k`.
fn top_of(counts: HashMap<(String, Option<String>), u64>, k: u32) -> Vec<Top> {
    let mut all: Vec<_> = counts.into_iter().collect();
    all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    all.into_iter()
        .take(TOP_N)
        .map(|((label, filter), n)| Top {
            label,
            filter,
            n: scaled(n, k),
        })
        .collect()
}

/// The breakdowns from the combination counts: exact, IPs by network.
async fn from_combos(db: &Db, filters: &Filters) -> AppResult<Breakdowns> {
    let top = |select: &str, group: &str, limit: bool| {
        let mut b = db.sql(format!(
            "SELECT {select}, CAST(SUM(c.n) AS BIGINT) FROM event_combos c WHERE 1 = 1"
        ));
        filters.push_on_combos(&mut b);
        b.push(format!(
            " GROUP BY {group} HAVING SUM(c.n) > 0 ORDER BY SUM(c.n) DESC, {group}{}",
            if limit {
                format!(" LIMIT {TOP_N}")
            } else {
                String::new()
            }
        ));
        b
    };
    let actions = db.read().all(&top("c.action", "c.action", false)).await?;
    let initiators = top(
        "c.initiator_kind, c.initiator_id, MAX(c.initiator_name)",
        "c.initiator_kind, c.initiator_id",
        true,
    );
    let tables = top("c.table_name", "c.table_name", true);
    let nets = top("c.ip_net", "c.ip_net", true);
    Ok(Breakdowns {
        total: actions
            .iter()
            .map(|r| r.get::<i64>(1))
            .sum::<AppResult<i64>>()? as u64,
        actions: tops(&actions, 1, |r| {
            let a: String = r.get(0)?;
            Ok((a.clone(), Some(a)))
        })?,
        initiators: tops(&db.read().all(&initiators).await?, 3, initiator)?,
        tables: tops(&db.read().all(&tables).await?, 1, |r| {
            let t: String = r.get(0)?;
            Ok(label_or_none(Some(t), "(no table)"))
        })?,
        ips: tops(&db.read().all(&nets).await?, 1, |r| {
            let net: Vec<u8> = r.get(0)?;
            Ok(label_or_none(combos::net_cidr(&net), "(no IP)"))
        })?,
        ip_networks: true,
        sample: None,
    })
}

/// The first [`TOP_N`] rows as entries: `label` reads a row's label and
/// filter value, `count` is the column of its count.
fn tops(
    rows: &[super::super::DbRow],
    count: usize,
    label: impl Fn(&super::super::DbRow) -> AppResult<(String, Option<String>)>,
) -> AppResult<Vec<Top>> {
    rows.iter()
        .take(TOP_N)
        .map(|r| {
            let (label, filter) = label(r)?;
            let n: i64 = r.get(count)?;
            Ok(Top {
                label,
                filter,
                n: u64::try_from(n).unwrap_or(0),
            })
        })
        .collect()
}

/// A value as its label and filter, or `none` (and no filter) when missing.
fn label_or_none(value: Option<String>, none: &str) -> (String, Option<String>) {
    match value.filter(|v| !v.is_empty()) {
        Some(v) => (v.clone(), Some(v)),
        None => (none.to_string(), None),
    }
}

/// An initiator row (kind, id, name) as its name and its `user` filter.
fn initiator(r: &super::super::DbRow) -> AppResult<(String, Option<String>)> {
    let kind: String = r.get(0)?;
    let id: Option<String> = r.get(1)?;
    let name: Option<String> = r.get(2)?;
    let id = id.filter(|i| !i.is_empty());
    let key = format!("{kind}:{}", id.as_deref().unwrap_or(""));
    let label = match (name.filter(|n| !n.is_empty()), &id) {
        (Some(name), _) => name,
        (None, Some(_)) => key.clone(),
        (None, None) => kind,
    };
    Ok((label, Some(key)))
}

/// How many events of each action lie at or after `from` (as a rolling
/// range counts them, later ones included), exactly: whole quarters from
/// `event_volume`, the cut one at the start from the log.
pub async fn actions_since(
    db: &Db,
    from: i64,
) -> AppResult<std::collections::HashMap<String, u64>> {
    let to = i64::MAX - volume::QUARTER;
    let q = EventQuery {
        from: Some(from),
        to: Some(to),
        ..EventQuery::default()
    };
    let filters = Filters::new(&q, db.now())?;
    let mut out = std::collections::HashMap::new();
    let counts = if by_rollup(&filters, Unit::Hours(1), from, to) {
        rollup_counts(db, &filters, &[from, to + 1], from, to).await?
    } else {
        log_counts(db, &filters, &[from, to + 1], 1).await?
    };
    for (_, action, n) in counts {
        *out.entry(action).or_default() += n;
    }
    Ok(out)
}

/// How many new-IP alerts began at or after `from`.
pub async fn new_ip_alerts_since(db: &Db, from: i64) -> AppResult<u64> {
    let sql = db
        .sql("SELECT COUNT(*) FROM alerts WHERE kind = 'new_ip' AND first_at >= ?")
        .bind(from);
    let n: i64 = db.read().scalar(&sql).await?;
    Ok(u64::try_from(n).unwrap_or(0))
}
