//! Alert rules, the alerts they fired, and the evaluator's cursor and
//! lease (see [`crate::server::alerts`]).

use super::events::{Filters, Keyword};
use super::{Backend, Db, DbRow, Exec, Tx};
use crate::alerts::{
    AlertInfo, Digest, DigestRule, DigestSubscription, RuleSettings, DIGEST_LISTED,
};
use crate::errors::AppResult;
use crate::query::{EventQuery, InitiatorKey};
use crate::server::alerts::{alert_link, group_firings, AlertWrite, Fact, Firing, LatestAlert};
use crate::server::clock::Micros;
use std::collections::{HashMap, HashSet};

/// A rule as stored.
#[derive(Debug, Clone)]
pub struct AlertRuleRow {
    pub id: i64,
    pub settings: RuleSettings,
    pub paused: bool,
    pub updated_at: Micros,
    pub stream_name: Option<String>,
    pub alerts: i64,
    pub open: i64,
}

const RULE_COLUMNS: &str = "r.id, r.name, r.severity, r.kind, r.filter, r.threshold, \
     r.window_minutes, r.group_by, r.lookback_days, r.network, r.work_days, r.work_start, \
     r.work_end, r.zone, r.state, r.updated_at, r.stream_id";

fn rule_row(r: &DbRow) -> AppResult<AlertRuleRow> {
    Ok(AlertRuleRow {
        id: r.get(0)?,
        settings: RuleSettings {
            name: r.get(1)?,
            severity: r.get(2)?,
            kind: r.get(3)?,
            filter: r.get(4)?,
            threshold: r.get(5)?,
            window_minutes: r.get(6)?,
            group_by: r.get(7)?,
            lookback_days: r.get(8)?,
            network: r.get(9)?,
            work_days: r.get(10)?,
            work_start: r.get(11)?,
            work_end: r.get(12)?,
            zone: r.get(13)?,
            stream_id: r.get(16)?,
        },
        paused: r.get::<String>(14)? == "paused",
        updated_at: r.get(15)?,
        stream_name: None,
        alerts: 0,
        open: 0,
    })
}

/// Binds a rule's settings in the order of the rule columns.
fn bind_settings(sql: super::Sql, s: &RuleSettings) -> super::Sql {
    sql.bind(s.name.as_str())
        .bind(s.severity.as_str())
        .bind(s.kind.as_str())
        .bind(s.filter.as_str())
        .bind(s.threshold)
        .bind(s.window_minutes)
        .bind(s.group_by.as_str())
        .bind(s.lookback_days)
        .bind(s.network.as_str())
        .bind(s.work_days)
        .bind(s.work_start)
        .bind(s.work_end)
        .bind(s.zone.as_str())
        .bind(s.stream_id)
}

/// A new rule, active; it looks at events stored from now on.
pub async fn create_alert_rule_in(tx: &mut Tx, s: &RuleSettings) -> AppResult<i64> {
    let now = tx.now();
    let sql = tx.sql(
        "INSERT INTO alert_rules (name, severity, kind, filter, threshold, window_minutes, \
         group_by, lookback_days, network, work_days, work_start, work_end, zone, stream_id, \
         created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         RETURNING id",
    );
    let sql = bind_settings(sql, s).bind(now).bind(now);
    tx.scalar(&sql).await
}

/// Replaces a rule's settings; whether there was one. Its new settings
/// apply from the next span the evaluator reads (which reloads it, and
/// rebuilds what it remembers from the log).
pub async fn update_alert_rule_in(tx: &mut Tx, id: i64, s: &RuleSettings) -> AppResult<bool> {
    let now = tx.now();
    let sql = tx.sql(
        "UPDATE alert_rules SET name = ?, severity = ?, kind = ?, filter = ?, threshold = ?, \
         window_minutes = ?, group_by = ?, lookback_days = ?, network = ?, work_days = ?, \
         work_start = ?, work_end = ?, zone = ?, stream_id = ?, \
         updated_at = CASE WHEN updated_at < ? THEN ? ELSE updated_at + 1 END WHERE id = ?",
    );
    // Always later than before: the evaluator sees the change by it.
    let sql = bind_settings(sql, s).bind(now).bind(now).bind(id);
    Ok(tx.execute(&sql).await? == 1)
}

/// Pauses or resumes a rule; whether there was one.
pub async fn set_alert_rule_paused_in(tx: &mut Tx, id: i64, paused: bool) -> AppResult<bool> {
    let now = tx.now();
    let sql = tx
        .sql("UPDATE alert_rules SET state = ?, updated_at = ? WHERE id = ?")
        .bind(if paused { "paused" } else { "active" })
        .bind(now)
        .bind(id);
    Ok(tx.execute(&sql).await? == 1)
}

/// One rule, with the name of the stream it is sent to, read in the
/// caller's transaction.
pub async fn alert_rule_in(tx: &mut Tx, id: i64) -> AppResult<Option<AlertRuleRow>> {
    let sql = tx
        .sql(format!(
            "SELECT {RULE_COLUMNS}, \
             (SELECT s.name FROM streams s WHERE s.id = r.stream_id) AS stream_name \
             FROM alert_rules r WHERE r.id = ?"
        ))
        .bind(id);
    let Some(r) = tx.optional(&sql).await? else {
        return Ok(None);
    };
    let mut row = rule_row(&r)?;
    row.stream_name = r.get("stream_name")?;
    Ok(Some(row))
}

/// Deletes a rule (its alerts stay, with its name); the rule as it was.
pub async fn delete_alert_rule_in(tx: &mut Tx, id: i64) -> AppResult<Option<AlertRuleRow>> {
    let before = alert_rule_in(tx, id).await?;
    if before.is_some() {
        let sql = tx
            .sql("UPDATE alerts SET rule_id = NULL WHERE rule_id = ?")
            .bind(id);
        tx.execute(&sql).await?;
        let sql = tx.sql("DELETE FROM alert_rules WHERE id = ?").bind(id);
        tx.execute(&sql).await?;
    }
    Ok(before)
}

/// Every rule, with how many alerts it fired and how many are open.
pub async fn list_alert_rules(db: &Db) -> AppResult<Vec<AlertRuleRow>> {
    let sql = db.sql(format!(
        "SELECT {RULE_COLUMNS}, \
         (SELECT COUNT(*) FROM alerts a WHERE a.rule_id = r.id) AS alerts, \
         (SELECT COUNT(*) FROM alerts a WHERE a.rule_id = r.id AND a.state = 'open') AS open, \
         (SELECT s.name FROM streams s WHERE s.id = r.stream_id) AS stream_name \
         FROM alert_rules r ORDER BY r.id"
    ));
    db.read()
        .all(&sql)
        .await?
        .iter()
        .map(|r| {
            let mut row = rule_row(r)?;
            row.alerts = r.get("alerts")?;
            row.open = r.get("open")?;
            row.stream_name = r.get("stream_name")?;
            Ok(row)
        })
        .collect()
}

/// The active rules, in id order.
pub async fn active_alert_rules(db: &Db) -> AppResult<Vec<AlertRuleRow>> {
    let sql = db.sql(format!(
        "SELECT {RULE_COLUMNS} FROM alert_rules r WHERE r.state = 'active' ORDER BY r.id"
    ));
    db.read().all(&sql).await?.iter().map(rule_row).collect()
}

/// How many of a window's events one read takes: a window is read in
/// steps, so no read holds a snapshot long (SQLite's write-ahead log cannot
/// start over while one does, and grew to 600 MB under ingest while a
/// 100,000-event window was read in one go at start).
const WINDOW_STEP: u32 = 5_000;

/// The events with ids in `(after_id, to]` that `q` passes, in id order, as
/// much of them as the rules need (at most `limit`: the latest by time, as
/// a window holds them, read from the window's end down a time-ordered
/// index, [`WINDOW_STEP`] at a time, with no sort of all the window's
/// events by id first).
pub async fn alert_facts(
    db: &Db,
    q: &EventQuery,
    after_id: i64,
    to: i64,
    limit: Option<u32>,
) -> AppResult<Vec<Fact>> {
    let filters = Filters::new(q, db.now())?;
    // A span of new events (no limit) is read by its id range alone: given
    // an index on a filter's column (an action, a table), SQLite's planner
    // would walk every event of that action in the log to find the few in
    // the span (10 ms for a rule's 31 events of a 1,000-event span on a
    // 1M-event log; 0.6 ms by the id range). PostgreSQL weighs both by its
    // statistics.
    let span = if limit.is_none() && db.backend() == Backend::Sqlite {
        " NOT INDEXED"
    } else {
        ""
    };
    let read = |before: Option<(Micros, i64)>, limit: Option<u32>| {
        let mut b = db.sql(format!(
            "SELECT e.id, e.occurred_at, e.initiator_kind, e.initiator_id, e.ip, e.action, \
             e.table_name FROM events e{span} WHERE e.id > "
        ));
        b.push_bind(after_id);
        b.push(" AND e.id <= ").push_bind(to);
        filters.push(&mut b, Keyword::InSet);
        if let Some((at, id)) = before {
            b.push(" AND (e.occurred_at, e.id) < (")
                .push_bind(at)
                .push(", ")
                .push_bind(id)
                .push(")");
        }
        match limit {
            Some(limit) => {
                b.push(" ORDER BY e.occurred_at DESC, e.id DESC LIMIT ")
                    .push_bind(i64::from(limit));
            }
            None => {
                b.push(" ORDER BY e.id");
            }
        }
        async move {
            db.read()
                .all(&b)
                .await?
                .iter()
                .map(|r| {
                    Ok(Fact {
                        id: r.get(0)?,
                        at: r.get(1)?,
                        initiator: InitiatorKey {
                            kind: r.get(2)?,
                            id: r.get(3)?,
                        },
                        ip: r.get::<Option<String>>(4)?.and_then(|ip| ip.parse().ok()),
                        action: r.get(5)?,
                        table: r.get(6)?,
                    })
                })
                .collect::<AppResult<Vec<_>>>()
        }
    };
    let Some(limit) = limit else {
        return read(None, None).await;
    };
    let mut facts: Vec<Fact> = Vec::new();
    loop {
        let want = (limit - facts.len() as u32).min(WINDOW_STEP);
        let before = facts.last().map(|f| (f.at, f.id));
        let got = read(before, Some(want)).await?;
        let done = (got.len() as u32) < want;
        facts.extend(got);
        if done || facts.len() as u32 >= limit {
            break;
        }
    }
    facts.sort_unstable_by_key(|f| f.id);
    Ok(facts)
}

/// Whether `initiator` acted from `network` (an address or CIDR range) at
/// a time in `[from, to]`.
pub async fn initiator_seen_from(
    db: &Db,
    initiator: &InitiatorKey,
    network: &str,
    from: Micros,
    to: Micros,
) -> AppResult<bool> {
    let q = EventQuery {
        user: Some(initiator.clone()),
        ip: Some(network.to_string()),
        from: Some(from),
        to: Some(to),
        ..EventQuery::default()
    };
    let filters = Filters::new(&q, db.now())?;
    // Never from that network in the whole log, as the log's combinations
    // (kept with every insert and removal) say at once: no event is read.
    // Read, a "no" walks all the initiator's events of the look-back (70 ms
    // a question on a 1M-event log, where the first span of a new-IP rule
    // held the evaluation up for 2.4 s).
    let range = filters.ip_range();
    if let Some((lo, hi)) = range {
        if super::combos::usable(db).await?
            && !super::combos::initiator_may_have_used(db, initiator, &lo, &hi).await?
        {
            return Ok(false);
        }
    }
    // One address, on SQLite: down the addresses' index, where a new
    // address has no entry at all (0.1 ms), not down the initiator's,
    // whose every event of the look-back a "no" reads (150-240 ms on a
    // 1M-event log of 15 initiators, 90 days back).
    let exact = range.filter(|(lo, hi)| lo == hi).map(|(lo, _)| lo);
    // On PostgreSQL the same: its planner, given the initiator's index,
    // took it (33 ms a question on average, 122 ms at most, on a log of
    // 200,000); comparing the initiator's columns as expressions leaves the
    // address's index the only way in.
    let index = if exact.is_some() && db.backend() == Backend::Sqlite {
        " INDEXED BY events_ip"
    } else {
        ""
    };
    let mut b = db.sql(format!(
        "SELECT COUNT(*) FROM (SELECT 1 FROM events e{index} WHERE 1 = 1"
    ));
    match (exact, db.backend()) {
        (Some(address), Backend::Postgres) => {
            b.push(" AND e.ip_bin = ").push_bind(address.to_vec());
            filters.push_time(&mut b);
            b.push(" AND e.initiator_kind || '' = ")
                .push_bind(&initiator.kind);
            match &initiator.id {
                Some(id) => b.push(" AND e.initiator_id || '' = ").push_bind(id),
                None => b.push(" AND e.initiator_id IS NULL"),
            };
        }
        _ => filters.push(&mut b, Keyword::InSet),
    }
    b.push(" LIMIT 1) s");
    let n: i64 = db.read().scalar(&b).await?;
    Ok(n > 0)
}

/// When event `id` happened and when it was stored, if it is.
pub async fn event_times(db: &Db, id: i64) -> AppResult<Option<(Micros, Micros)>> {
    let sql = db
        .sql("SELECT occurred_at, received_at FROM events WHERE id = ?")
        .bind(id);
    match db.read().optional(&sql).await? {
        Some(r) => Ok(Some((r.get(0)?, r.get(1)?))),
        None => Ok(None),
    }
}

/// The last event id the rules were evaluated on.
pub async fn alert_cursor(db: &Db) -> AppResult<i64> {
    let sql = db.sql("SELECT cursor_id FROM alert_evaluator WHERE id = 1");
    Ok(db.read().scalar_opt(&sql).await?.unwrap_or(0))
}

/// Takes (or renews) the evaluator's lease for `holder`; whether it holds it.
pub async fn take_alert_lease(db: &Db, holder: &str, ttl: Micros) -> AppResult<bool> {
    let mut db = db;
    let now = db.now();
    let sql = db
        .sql(
            "UPDATE alert_evaluator SET lease_holder = ?, lease_until = ? WHERE id = 1 \
             AND (lease_holder IS NULL OR lease_holder = ? OR lease_until <= ?)",
        )
        .bind(holder)
        .bind(now + ttl)
        .bind(holder)
        .bind(now);
    Ok(db.execute(&sql).await? == 1)
}

/// Lets go of the evaluator's lease (a server that stops).
pub async fn release_alert_lease(db: &Db, holder: &str) -> AppResult<()> {
    let mut db = db;
    let sql = db
        .sql("UPDATE alert_evaluator SET lease_holder = NULL, lease_until = 0 WHERE lease_holder = ?")
        .bind(holder);
    db.execute(&sql).await?;
    Ok(())
}

/// Sets the evaluator's cursor (tests, and a restore).
pub async fn set_alert_cursor(db: &Db, cursor: i64) -> AppResult<()> {
    let mut db = db;
    let sql = db
        .sql("UPDATE alert_evaluator SET cursor_id = ? WHERE id = 1")
        .bind(cursor);
    db.execute(&sql).await?;
    Ok(())
}

/// The newest alert of each group that `firings` fire in.
async fn latest_alerts(
    db: &Db,
    firings: &[Firing],
) -> AppResult<HashMap<(i64, String), LatestAlert>> {
    let mut latest = HashMap::new();
    let mut asked: HashSet<(i64, &str)> = HashSet::new();
    for f in firings {
        if !asked.insert((f.rule_id, f.group_key.as_str())) {
            continue;
        }
        let sql = db
            .sql(
                "SELECT id, first_at, state FROM alerts WHERE rule_id = ? AND group_key = ? \
                 ORDER BY id DESC LIMIT 1",
            )
            .bind(f.rule_id)
            .bind(f.group_key.as_str());
        if let Some(r) = db.read().optional(&sql).await? {
            latest.insert(
                (f.rule_id, f.group_key.clone()),
                LatestAlert {
                    id: r.get(0)?,
                    first_at: r.get(1)?,
                    open: r.get::<String>(2)? != "resolved",
                },
            );
        }
    }
    Ok(latest)
}

/// Writes the firings of the events `(from, to]` and moves the cursor to
/// `to`, in one transaction; only while `holder` holds the lease and the
/// cursor is still at `from`. Whether it did.
pub async fn record_alerts(
    db: &Db,
    holder: &str,
    from: i64,
    to: i64,
    firings: &[Firing],
) -> AppResult<bool> {
    // Each group's newest alert, read before the writer is taken: the
    // writer is the log's, and ingest waits while it is held.
    let latest = latest_alerts(db, firings).await?;
    let writes = group_firings(&latest, firings);
    // The evaluator's own bookkeeping: no event, no link of the chain.
    let mut tx = db.begin_unlocked().await?;
    let now = tx.now();
    let sql = tx
        .sql(
            "UPDATE alert_evaluator SET cursor_id = ? \
             WHERE id = 1 AND cursor_id = ? AND lease_holder = ? AND lease_until > ?",
        )
        .bind(to)
        .bind(from)
        .bind(holder)
        .bind(now);
    if tx.execute(&sql).await? != 1 {
        tx.rollback().await?;
        return Ok(false);
    }
    for write in writes {
        let f = match write {
            AlertWrite::Add { id, firing: f } => {
                // Resolved since it was read: the firings begin a new one.
                let sql = tx
                    .sql(
                        "UPDATE alerts SET events = events + ?, \
                         last_event_id = CASE WHEN last_event_id < ? THEN ? ELSE last_event_id END, \
                         last_at = CASE WHEN last_at < ? THEN ? ELSE last_at END, updated_at = ? \
                         WHERE id = ? AND state <> 'resolved'",
                    )
                    .bind(f.events)
                    .bind(f.last_id)
                    .bind(f.last_id)
                    .bind(f.last_at)
                    .bind(f.last_at)
                    .bind(now)
                    .bind(id);
                if tx.execute(&sql).await? == 1 {
                    continue;
                }
                f
            }
            AlertWrite::New(f) => f,
        };
        let sql = tx
            .sql(
                "INSERT INTO alerts (rule_id, rule_name, severity, kind, filter, group_by, \
                 notify_stream_id, group_key, first_event_id, last_event_id, first_at, \
                 last_at, events, created_at, updated_at) \
                 SELECT r.id, r.name, r.severity, r.kind, r.filter, r.group_by, r.stream_id, \
                 ?, ?, ?, ?, ?, ?, ?, ? FROM alert_rules r WHERE r.id = ?",
            )
            .bind(f.group_key.as_str())
            .bind(f.first_id)
            .bind(f.last_id)
            .bind(f.first_at)
            .bind(f.last_at)
            .bind(f.events)
            .bind(now)
            .bind(now)
            .bind(f.rule_id);
        tx.execute(&sql).await?;
    }
    tx.commit().await?;
    Ok(true)
}

const ALERT_COLUMNS: &str = "id, rule_id, rule_name, severity, kind, filter, group_by, group_key, \
     events, first_event_id, last_event_id, first_at, last_at, state, acknowledged_by, resolved_by, \
     notify_stream_id, notified_at, notify_error";

fn alert_row(r: &DbRow) -> AppResult<AlertInfo> {
    let filter: String = r.get(5)?;
    let kind: String = r.get(4)?;
    let group_by: String = r.get(6)?;
    let group_key: String = r.get(7)?;
    let first_at: Micros = r.get(11)?;
    let last_at: Micros = r.get(12)?;
    Ok(AlertInfo {
        id: r.get(0)?,
        rule_id: r.get(1)?,
        rule_name: r.get(2)?,
        severity: r.get(3)?,
        link: alert_link(&filter, &kind, &group_by, &group_key, first_at, last_at),
        kind,
        group_key,
        events: r.get(8)?,
        first_event_id: r.get(9)?,
        last_event_id: r.get(10)?,
        first_at,
        last_at,
        state: r.get(13)?,
        acknowledged_by: r.get(14)?,
        resolved_by: r.get(15)?,
        delivery: match (
            r.get::<Option<i64>>(16)?,
            r.get::<Option<i64>>(17)?,
            r.get::<Option<String>>(18)?,
        ) {
            (None, _, _) => None,
            (Some(_), Some(_), _) => Some("sent".into()),
            (Some(_), None, Some(error)) => Some(format!("waiting: {error}")),
            (Some(_), None, None) => Some("waiting".into()),
        },
    })
}

/// The newest alerts (those in `state` when it is given), at most `limit`.
pub async fn list_alerts(db: &Db, state: Option<&str>, limit: u32) -> AppResult<Vec<AlertInfo>> {
    let mut b = db.sql(format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE 1 = 1"));
    if let Some(state) = state {
        b.push(" AND state = ").push_bind(state.to_string());
    }
    b.push(" ORDER BY id DESC LIMIT ")
        .push_bind(i64::from(limit));
    db.read().all(&b).await?.iter().map(alert_row).collect()
}

/// One alert, read in the caller's transaction.
pub async fn alert_in(tx: &mut Tx, id: i64) -> AppResult<Option<AlertInfo>> {
    let sql = tx
        .sql(format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?"))
        .bind(id);
    tx.optional(&sql).await?.as_ref().map(alert_row).transpose()
}

/// Acknowledges (`acknowledged`) or resolves (`resolved`) an alert, by
/// `who`; whether it changed.
pub async fn set_alert_state_in(tx: &mut Tx, id: i64, state: &str, who: &str) -> AppResult<bool> {
    let now = tx.now();
    let column = if state == "resolved" {
        "resolved"
    } else {
        "acknowledged"
    };
    let sql = tx
        .sql(format!(
            "UPDATE alerts SET state = ?, {column}_by = ?, {column}_at = ?, updated_at = ? \
             WHERE id = ? AND state <> ? AND state <> 'resolved'"
        ))
        .bind(state)
        .bind(who)
        .bind(now)
        .bind(now)
        .bind(id)
        .bind(state);
    Ok(tx.execute(&sql).await? == 1)
}

/// How many alerts are open (not yet acknowledged or resolved).
pub async fn open_alerts(db: &Db) -> AppResult<i64> {
    let sql = db.sql("SELECT COUNT(*) FROM alerts WHERE state = 'open'");
    db.read().scalar(&sql).await
}

/// A new alert waiting to be sent to its rule's stream.
#[derive(Debug, Clone)]
pub struct AlertToSend {
    pub alert: AlertInfo,
    pub stream_id: i64,
    pub failures: i64,
}

/// Up to `limit` alerts whose sending is due, oldest first.
pub async fn alerts_to_send(db: &Db, limit: u32) -> AppResult<Vec<AlertToSend>> {
    let sql = db
        .sql(format!(
            "SELECT {ALERT_COLUMNS}, notify_failures FROM alerts \
             WHERE notify_stream_id IS NOT NULL AND notified_at IS NULL AND notify_next_at <= ? \
             ORDER BY id LIMIT ?"
        ))
        .bind(db.now())
        .bind(i64::from(limit));
    db.read()
        .all(&sql)
        .await?
        .iter()
        .map(|r| {
            Ok(AlertToSend {
                alert: alert_row(r)?,
                stream_id: r.get(16)?,
                failures: r.get("notify_failures")?,
            })
        })
        .collect()
}

/// Writes down how sending an alert went: sent, or failed (with its error
/// and when to try again).
pub async fn record_alert_sending(
    db: &Db,
    id: i64,
    outcome: Result<(), (&str, Micros)>,
) -> AppResult<()> {
    // The evaluator's own bookkeeping: no event, no link of the chain.
    let mut tx = db.begin_unlocked().await?;
    let now = tx.now();
    let sql = match outcome {
        Ok(()) => tx
            .sql("UPDATE alerts SET notified_at = ?, notify_error = NULL WHERE id = ?")
            .bind(now)
            .bind(id),
        Err((error, retry_at)) => tx
            .sql(
                "UPDATE alerts SET notify_failures = notify_failures + 1, notify_error = ?, \
                 notify_next_at = ? WHERE id = ?",
            )
            .bind(error)
            .bind(retry_at)
            .bind(id),
    };
    tx.execute(&sql).await?;
    tx.commit().await?;
    Ok(())
}

/// Who made most of one action's events in `[from, to)`: name (or the
/// initiator's key when nameless) and count.
async fn top_initiators(
    db: &Db,
    action: &str,
    from: Micros,
    to: Micros,
) -> AppResult<(i64, Vec<(String, i64)>)> {
    let sql = db
        .sql(
            "SELECT COALESCE(NULLIF(initiator_name, ''), \
             CASE WHEN COALESCE(initiator_id, '') = '' THEN initiator_kind \
             ELSE initiator_kind || ':' || initiator_id END), \
             COUNT(*) FROM events WHERE action = ? AND occurred_at >= ? AND occurred_at < ? \
             GROUP BY 1 ORDER BY 2 DESC, 1",
        )
        .bind(action)
        .bind(from)
        .bind(to);
    let rows = db.read().all(&sql).await?;
    let mut total = 0;
    let mut top = Vec::new();
    for r in &rows {
        let n: i64 = r.get(1)?;
        total += n;
        if top.len() < 5 {
            top.push((r.get(0)?, n));
        }
    }
    Ok((total, top))
}

/// The weekly digest of `[from, to)`: the log's actions, the rules that
/// fired, new IPs, deletions and exports.
pub async fn digest(db: &Db, from: Micros, to: Micros, zone: &str) -> AppResult<Digest> {
    let sql = db
        .sql(
            "SELECT action, COUNT(*) FROM events WHERE occurred_at >= ? AND occurred_at < ? \
             GROUP BY action ORDER BY 2 DESC, 1",
        )
        .bind(from)
        .bind(to);
    let by_action = db
        .read()
        .all(&sql)
        .await?
        .iter()
        .map(|r| Ok((r.get::<String>(0)?, r.get::<i64>(1)?)))
        .collect::<AppResult<Vec<_>>>()?;
    let sql = db
        .sql(
            "SELECT rule_name, severity, COUNT(*), CAST(SUM(events) AS BIGINT) FROM alerts \
             WHERE first_at >= ? AND first_at < ? \
             GROUP BY rule_id, rule_name, severity ORDER BY 3 DESC, 1",
        )
        .bind(from)
        .bind(to);
    let rules = db
        .read()
        .all(&sql)
        .await?
        .iter()
        .map(|r| {
            Ok(DigestRule {
                name: r.get(0)?,
                severity: r.get(1)?,
                alerts: r.get(2)?,
                events: r.get(3)?,
            })
        })
        .collect::<AppResult<Vec<_>>>()?;
    let sql = db
        .sql(
            "SELECT group_key FROM alerts WHERE kind = 'new_ip' AND first_at >= ? AND first_at < ? \
             GROUP BY group_key ORDER BY MIN(first_at), group_key",
        )
        .bind(from)
        .bind(to);
    let new_ips = db
        .read()
        .all(&sql)
        .await?
        .iter()
        .map(|r| r.get::<String>(0))
        .collect::<AppResult<Vec<_>>>()?;
    let (deletions, deleted_by) = top_initiators(db, "DELETE", from, to).await?;
    let (exports, exported_by) = top_initiators(db, "EXPORT", from, to).await?;
    Ok(Digest {
        from,
        to,
        events: by_action.iter().map(|(_, n)| n).sum(),
        by_action,
        rules,
        new_ip_count: new_ips.len() as i64,
        new_ips: new_ips.into_iter().take(DIGEST_LISTED).collect(),
        deletions,
        deleted_by,
        exports,
        exported_by,
        zone: zone.to_string(),
        activity_link: format!(
            "/activity-log?from={}&to={}",
            crate::query::format_instant_param(from),
            crate::query::format_instant_param(to - 1)
        ),
    })
}

/// An admin's digest subscription, if they have one.
pub async fn digest_subscription(db: &Db, user_id: i64) -> AppResult<Option<DigestSubscription>> {
    let sql = db
        .sql(
            "SELECT d.stream_id, s.name, d.sent_week, d.error, d.zone FROM alert_digests d \
             JOIN streams s ON s.id = d.stream_id WHERE d.user_id = ?",
        )
        .bind(user_id);
    db.read()
        .optional(&sql)
        .await?
        .map(|r| {
            Ok(DigestSubscription {
                stream_id: r.get(0)?,
                stream_name: r.get(1)?,
                sent_week: r.get(2)?,
                error: r.get(3)?,
                zone: r.get(4)?,
            })
        })
        .transpose()
}

/// Subscribes an admin (or moves their subscription to another stream or
/// zone): the first digest sent is that of the week after `sent_week` (or
/// after the one already sent, when that is later), its weeks in `zone`.
pub async fn subscribe_digest_in(
    tx: &mut Tx,
    user_id: i64,
    stream_id: i64,
    sent_week: Micros,
    zone: &str,
) -> AppResult<()> {
    let now = tx.now();
    let sql = tx
        .sql(
            "INSERT INTO alert_digests (user_id, stream_id, sent_week, zone, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET \
             stream_id = excluded.stream_id, zone = excluded.zone, failures = 0, next_at = 0, \
             error = NULL, updated_at = excluded.updated_at, sent_week = CASE \
             WHEN excluded.sent_week > alert_digests.sent_week THEN excluded.sent_week \
             ELSE alert_digests.sent_week END",
        )
        .bind(user_id)
        .bind(stream_id)
        .bind(sent_week)
        .bind(zone)
        .bind(now)
        .bind(now);
    tx.execute(&sql).await?;
    Ok(())
}

/// Ends an admin's subscription; whether they had one.
pub async fn unsubscribe_digest_in(tx: &mut Tx, user_id: i64) -> AppResult<bool> {
    let sql = tx
        .sql("DELETE FROM alert_digests WHERE user_id = ?")
        .bind(user_id);
    Ok(tx.execute(&sql).await? > 0)
}

/// A subscription that may have a digest to send: to whom (user id),
/// through which stream, after how many failures, the newest week sent and
/// the zone its weeks are in.
pub struct DigestDue {
    pub user_id: i64,
    pub stream_id: i64,
    pub failures: i64,
    pub sent_week: Micros,
    pub zone: String,
}

/// The subscriptions not waiting out a failure's backoff (the caller
/// checks which have a week ended since the one they were sent).
pub async fn digests_due(db: &Db) -> AppResult<Vec<DigestDue>> {
    let sql = db
        .sql(
            "SELECT user_id, stream_id, failures, sent_week, zone FROM alert_digests \
             WHERE next_at <= ? ORDER BY user_id",
        )
        .bind(db.now());
    db.read()
        .all(&sql)
        .await?
        .iter()
        .map(|r| {
            Ok(DigestDue {
                user_id: r.get(0)?,
                stream_id: r.get(1)?,
                failures: r.get(2)?,
                sent_week: r.get(3)?,
                zone: r.get(4)?,
            })
        })
        .collect()
}

/// Writes down that the digest of `week` went to `user_id` (or why not,
/// and when to try again).
pub async fn record_digest_sending(
    db: &Db,
    user_id: i64,
    week: Micros,
    outcome: Result<(), (&str, Micros)>,
) -> AppResult<()> {
    // The evaluator's own bookkeeping: no event, no link of the chain.
    let mut tx = db.begin_unlocked().await?;
    let now = tx.now();
    let sql = match outcome {
        Ok(()) => tx
            .sql(
                "UPDATE alert_digests SET sent_week = ?, failures = 0, next_at = 0, error = NULL, \
                 updated_at = ? WHERE user_id = ?",
            )
            .bind(week)
            .bind(now)
            .bind(user_id),
        Err((error, retry_at)) => tx
            .sql(
                "UPDATE alert_digests SET failures = failures + 1, error = ?, next_at = ?, \
                 updated_at = ? WHERE user_id = ?",
            )
            .bind(error)
            .bind(retry_at)
            .bind(now)
            .bind(user_id),
    };
    tx.execute(&sql).await?;
    tx.commit().await?;
    Ok(())
}
