//! `event_combos`: every distinct combination of an event's categorical
//! fields (initiator, action, table, IP network) and how many events hold it.
//!
//! The store keeps it in the transaction that inserts or removes events, so
//! it is exact whenever that transaction commits. It is small (one row per
//! combination seen, not per event) and tells, without reading the log,
//! which values of a sort column a set of filters can reach (a filter that
//! correlates with the sort, such as a user's own IPs, is found where it is
//! rather than walked to) and how many events a filter without keyword or
//! time range matches. A missing value is stored as the empty text or blob.
//! An IP counts under its network ([`ip_net`]), so that a log of very many
//! addresses keeps few combinations (and ingest stays fast): an IP filter is
//! then exact here only when it covers whole networks ([`whole_nets`]), and
//! otherwise a superset, which still rules out what it does not reach.

use super::db::{Backend, Db, Exec, Sql, Tx};
use super::{ip_key, NewEvent};
use crate::errors::AppResult;
use crate::query::InitiatorKey;
use std::collections::HashMap;

/// The key columns, in the table's order.
const KEY: &str = "initiator_kind, initiator_id, initiator_name, action, table_name, ip_net";

/// How a key is merged into a row that exists.
const UPSERT: &str = " ON CONFLICT (initiator_kind, initiator_id, initiator_name, action, \
                      table_name, ip_net) DO UPDATE SET n = event_combos.n + excluded.n";

/// Combinations written per statement (7 parameters each).
const CHUNK: usize = 500;

/// Beyond this many combinations (a log of very many IPs per initiator, say)
/// the table is no longer small and the queries read the log instead.
pub(super) const MAX_COMBOS: i64 = 200_000;

type Key = (String, String, String, String, String, Vec<u8>);

/// Adds `events`, about to be inserted in `tx`, to their combinations.
pub(super) async fn add(tx: &mut Tx, events: &[NewEvent]) -> AppResult<()> {
    let mut counts: HashMap<Key, i64> = HashMap::new();
    for e in events {
        let key = (
            e.initiator.kind.as_str().to_string(),
            e.initiator.id.clone().unwrap_or_default(),
            e.initiator.name.clone().unwrap_or_default(),
            e.action.clone(),
            e.table_name.clone().unwrap_or_default(),
            e.ip.map(|ip| ip_net(&ip_key(ip)).to_vec())
                .unwrap_or_default(),
        );
        *counts.entry(key).or_default() += 1;
    }
    let counts: Vec<(Key, i64)> = counts.into_iter().collect();
    add_ip_combos(tx, events).await?;
    for chunk in counts.chunks(CHUNK) {
        let mut b = tx.sql(format!("INSERT INTO event_combos ({KEY}, n) VALUES "));
        for (i, ((kind, id, name, action, table, ip), n)) in chunk.iter().enumerate() {
            b.push(if i == 0 { "(" } else { ", (" })
                .push_bind(kind.as_str())
                .push(", ")
                .push_bind(id.as_str())
                .push(", ")
                .push_bind(name.as_str())
                .push(", ")
                .push_bind(action.as_str())
                .push(", ")
                .push_bind(table.as_str())
                .push(", ")
                .push_bind(ip.clone())
                .push(", ")
                .push_bind(*n)
                .push(")");
        }
        b.push(UPSERT);
        tx.execute(&b).await?;
    }
    Ok(())
}

/// The key columns of `ip_combos`, in the table's order.
const IPS_KEY: &str = "ip_bin, initiator_kind, initiator_id, action, table_name";

/// How `ip_combos` merges a count into a row that exists.
const IPS_UPSERT: &str = " ON CONFLICT (ip_bin, initiator_kind, initiator_id, action, table_name) \
                          DO UPDATE SET n = ip_combos.n + excluded.n";

/// Adds `events`, about to be inserted in `tx`, to `ip_combos` (those with
/// an IP).
async fn add_ip_combos(tx: &mut Tx, events: &[NewEvent]) -> AppResult<()> {
    type IpKey<'a> = ([u8; 16], &'a str, &'a str, &'a str, &'a str);
    let mut counts: HashMap<IpKey, i64> = HashMap::new();
    for e in events {
        if let Some(ip) = e.ip {
            let key = (
                ip_key(ip),
                e.initiator.kind.as_str(),
                e.initiator.id.as_deref().unwrap_or_default(),
                e.action.as_str(),
                e.table_name.as_deref().unwrap_or_default(),
            );
            *counts.entry(key).or_default() += 1;
        }
    }
    let counts: Vec<_> = counts.into_iter().collect();
    for chunk in counts.chunks(CHUNK) {
        let mut b = tx.sql(format!("INSERT INTO ip_combos ({IPS_KEY}, n) VALUES "));
        for (i, ((ip, kind, id, action, table), n)) in chunk.iter().enumerate() {
            b.push(if i == 0 { "(" } else { ", (" })
                .push_bind(ip.to_vec())
                .push(", ")
                .push_bind(*kind)
                .push(", ")
                .push_bind(*id)
                .push(", ")
                .push_bind(*action)
                .push(", ")
                .push_bind(*table)
                .push(", ")
                .push_bind(*n)
                .push(")");
        }
        b.push(IPS_UPSERT);
        tx.execute(&b).await?;
    }
    Ok(())
}

/// Takes the events `source` names (it appends `events WHERE …`, or a
/// partition and a `WHERE`), about to be removed in `tx`, out of
/// `ip_combos`.
pub(super) async fn subtract_ip_combos(tx: &mut Tx, source: impl Fn(&mut Sql)) -> AppResult<()> {
    let mut sql = tx.sql(format!(
        "INSERT INTO ip_combos ({IPS_KEY}, n) SELECT ip_bin, initiator_kind, \
         COALESCE(initiator_id, ''), action, COALESCE(table_name, ''), -COUNT(*) FROM "
    ));
    source(&mut sql);
    sql.push(" AND ip_bin IS NOT NULL GROUP BY 1, 2, 3, 4, 5")
        .push(IPS_UPSERT);
    tx.execute(&sql).await?;
    Ok(())
}

/// One address of an initiator's, and how many events (anyone's) came
/// from there.
pub(super) struct InitiatorIp {
    pub ip: Vec<u8>,
    pub total: i64,
}

/// At most this many of an initiator's addresses in one network are listed
/// (see [`initiator_ips_in`]).
const MAX_IPS_LISTED: i64 = 1_000;

/// The addresses in `[lo, hi]` from which `initiator` sent events that
/// `push_filters` (` AND …` over `ip_combos c`: the action and table
/// filters) keeps, in key order (descending when `desc`); `None` when there
/// are more than [`MAX_IPS_LISTED`], which a walk of the range serves better
/// than a seek for each.
pub(super) async fn initiator_ips_in(
    db: &Db,
    initiator: &InitiatorKey,
    (lo, hi): ([u8; 16], [u8; 16]),
    push_filters: impl FnOnce(&mut Sql),
    desc: bool,
) -> AppResult<Option<Vec<InitiatorIp>>> {
    let dir = if desc { "DESC" } else { "ASC" };
    let mut b = db.sql(
        "SELECT c.ip_bin, \
         (SELECT CAST(SUM(t.n) AS BIGINT) FROM ip_combos t WHERE t.ip_bin = c.ip_bin) AS total \
         FROM ip_combos c WHERE c.initiator_kind = ",
    );
    b.push_bind(initiator.kind.clone())
        .push(" AND c.initiator_id = ")
        .push_bind(initiator.id.clone().unwrap_or_default())
        .push(" AND c.ip_bin BETWEEN ")
        .push_bind(lo.to_vec())
        .push(" AND ")
        .push_bind(hi.to_vec());
    push_filters(&mut b);
    b.push(format!(
        " GROUP BY c.ip_bin HAVING SUM(c.n) > 0 ORDER BY c.ip_bin {dir} LIMIT "
    ))
    .push_bind(MAX_IPS_LISTED + 1);
    let rows = db.read().all(&b).await?;
    if rows.len() as i64 > MAX_IPS_LISTED {
        return Ok(None);
    }
    rows.iter()
        .map(|row| {
            Ok(InitiatorIp {
                ip: row.get("ip_bin")?,
                total: row.get("total")?,
            })
        })
        .collect::<AppResult<Vec<_>>>()
        .map(Some)
}

/// At most this many rows of `ip_combos` are summed for a count (see
/// [`range_sums`]).
const MAX_IP_ROWS_SUMMED: i64 = 50_000;

/// How many events from the addresses of a range there are, and how many of
/// them some filters keep (see [`range_sums`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct RangeSums {
    /// Every event from the range: the entries of the IP index in it.
    pub(super) events: i64,
    /// Those the filters keep.
    pub(super) matching: i64,
}

/// How many events from an address in `[lo, hi]` there are, and how many
/// of them `push_filters` (` AND …` over `ip_combos c`: the user, action and
/// table filters) keeps: exact, whatever the range; `None` when the range
/// holds more than [`MAX_IP_ROWS_SUMMED`] rows of the table.
pub(super) async fn range_sums(
    db: &Db,
    (lo, hi): ([u8; 16], [u8; 16]),
    push_filters: impl FnOnce(&mut Sql),
) -> AppResult<Option<RangeSums>> {
    let mut b = db.sql(
        "SELECT CAST(COUNT(*) AS BIGINT) AS seen, \
         CAST(COALESCE(SUM(c.n), 0) AS BIGINT) AS events, \
         CAST(COALESCE(SUM(CASE WHEN 1 = 1",
    );
    push_filters(&mut b);
    b.push(
        " THEN c.n ELSE 0 END), 0) AS BIGINT) AS n FROM (SELECT * FROM ip_combos \
            WHERE ip_bin BETWEEN ",
    )
    .push_bind(lo.to_vec())
    .push(" AND ")
    .push_bind(hi.to_vec())
    .push(" LIMIT ")
    .push_bind(MAX_IP_ROWS_SUMMED + 1)
    .push(") c");
    let row = db.read().one(&b).await?;
    let seen: i64 = row.get("seen")?;
    if seen > MAX_IP_ROWS_SUMMED {
        return Ok(None);
    }
    Ok(Some(RangeSums {
        events: row.get("events")?,
        matching: row.get("n")?,
    }))
}

/// At most this many initiators of an IP range are named to the full-text
/// index (see [`initiators_in_range`]).
const MAX_RANGE_INITIATORS: i64 = 64;

/// The initiators (kind, id; the empty text for none) who sent events from
/// an address in `[lo, hi]` that `push_filters` (` AND …` over `ip_combos
/// c`: the action and table filters) keeps; `None` when the range holds
/// more than [`MAX_IP_ROWS_SUMMED`] rows of the table or more than
/// [`MAX_RANGE_INITIATORS`] initiators.
pub(super) async fn initiators_in_range(
    db: &Db,
    (lo, hi): ([u8; 16], [u8; 16]),
    push_filters: impl FnOnce(&mut Sql),
) -> AppResult<Option<Vec<(String, String)>>> {
    let rows = db
        .sql(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM (SELECT 1 FROM ip_combos \
             WHERE ip_bin BETWEEN ? AND ? LIMIT ?) r",
        )
        .bind(lo.to_vec())
        .bind(hi.to_vec())
        .bind(MAX_IP_ROWS_SUMMED + 1);
    if db.read().scalar::<i64>(&rows).await? > MAX_IP_ROWS_SUMMED {
        return Ok(None);
    }
    let mut b =
        db.sql("SELECT c.initiator_kind, c.initiator_id FROM ip_combos c WHERE c.ip_bin BETWEEN ");
    b.push_bind(lo.to_vec())
        .push(" AND ")
        .push_bind(hi.to_vec());
    push_filters(&mut b);
    b.push(" GROUP BY c.initiator_kind, c.initiator_id HAVING SUM(c.n) > 0 LIMIT ")
        .push_bind(MAX_RANGE_INITIATORS + 1);
    let found = db.read().all(&b).await?;
    if found.len() as i64 > MAX_RANGE_INITIATORS {
        return Ok(None);
    }
    found
        .iter()
        .map(|row| Ok((row.get("initiator_kind")?, row.get("initiator_id")?)))
        .collect::<AppResult<Vec<_>>>()
        .map(Some)
}

/// The first 12 bytes of an IPv4 address's key (mapped into IPv6).
const V4_MAPPED: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

/// The network an IP (its 16-byte key) is counted under: an IPv4 address's
/// /16 (14 bytes of the key), an IPv6 one's /32 (4 bytes), or the whole key
/// when its first 32 bits are zero and it is not IPv4. No network is the
/// start of another, so networks sort as the addresses in them do, and each
/// is one range of keys.
pub(super) fn ip_net(key: &[u8; 16]) -> &[u8] {
    if key[..12] == V4_MAPPED {
        &key[..14]
    } else if key[..4] == [0; 4] {
        &key[..]
    } else {
        &key[..4]
    }
}

/// The keys of a network: from its first to its last address.
pub(super) fn net_range(net: &[u8]) -> ([u8; 16], [u8; 16]) {
    let (mut lo, mut hi) = ([0u8; 16], [0xffu8; 16]);
    lo[..net.len()].copy_from_slice(net);
    hi[..net.len()].copy_from_slice(net);
    (lo, hi)
}

/// A network as a CIDR range (`10.1.0.0/16`, `2001:db8::/32`, or a single
/// address), `None` for no IP.
pub(super) fn net_cidr(net: &[u8]) -> Option<String> {
    let (lo, _) = net_range(net);
    let v6 = std::net::Ipv6Addr::from(lo);
    match net.len() {
        0 => None,
        14 => v6.to_ipv4_mapped().map(|v4| format!("{v4}/16")),
        4 => Some(format!("{v6}/32")),
        _ => Some(v6.to_string()),
    }
}

/// Whether an IP range (keys, inclusive) is made of whole networks, so that
/// the combinations count it exactly.
pub(super) fn whole_nets(lo: &[u8; 16], hi: &[u8; 16]) -> bool {
    net_range(ip_net(lo)).0 == *lo && net_range(ip_net(hi)).1 == *hi
}

/// The SQL of [`ip_net`] over `ip_bin` (the empty blob for no IP).
fn net_of_ip_bin(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => {
            "CASE WHEN ip_bin IS NULL THEN x'' \
             WHEN substr(ip_bin, 1, 12) = x'00000000000000000000ffff' THEN substr(ip_bin, 1, 14) \
             WHEN substr(ip_bin, 1, 4) = x'00000000' THEN ip_bin ELSE substr(ip_bin, 1, 4) END"
        }
        Backend::Postgres => {
            "CASE WHEN ip_bin IS NULL THEN '\\x'::bytea \
             WHEN substring(ip_bin from 1 for 12) = '\\x00000000000000000000ffff'::bytea \
             THEN substring(ip_bin from 1 for 14) \
             WHEN substring(ip_bin from 1 for 4) = '\\x00000000'::bytea THEN ip_bin \
             ELSE substring(ip_bin from 1 for 4) END"
        }
    }
}

/// `SELECT <key of each event>, -COUNT(*) FROM ` ready for the source and
/// its `WHERE` (see [`subtract`]).
fn subtract_head(backend: Backend) -> String {
    let net = net_of_ip_bin(backend);
    format!(
        "INSERT INTO event_combos ({KEY}, n) SELECT initiator_kind, COALESCE(initiator_id, ''), \
         COALESCE(initiator_name, ''), action, COALESCE(table_name, ''), {net}, \
         -COUNT(*) FROM "
    )
}

/// Takes the events `sql` names, about to be removed in `tx`, out of their
/// combinations: `sql` is [`subtract_sql`]'s statement with the source
/// (`events WHERE …`, or a partition and a `WHERE`) appended.
pub(super) async fn subtract(tx: &mut Tx, mut sql: Sql) -> AppResult<()> {
    sql.push(" GROUP BY 1, 2, 3, 4, 5, 6").push(UPSERT);
    tx.execute(&sql).await?;
    Ok(())
}

/// The statement that [`subtract`] finishes: append the source and its
/// `WHERE` clause (SQLite needs one before the upsert).
pub(super) fn subtract_sql(tx: &Tx) -> Sql {
    tx.sql(subtract_head(tx.backend()))
}

/// Whether the table is small enough to answer from (see [`MAX_COMBOS`]);
/// its highest id bounds its rows, which are never deleted.
pub(super) async fn usable(db: &Db) -> AppResult<bool> {
    let sql = db.sql("SELECT id FROM event_combos ORDER BY id DESC LIMIT 1");
    let newest: Option<i64> = db.read().scalar_opt(&sql).await?;
    Ok(newest.unwrap_or(0) <= MAX_COMBOS)
}

/// Whether `initiator` has events from an address in `[lo, hi]` by the
/// table: `false` means none in the whole log; `true` may mean only a
/// neighbour in the same network (an IPv4 /16, an IPv6 /32).
pub(super) async fn initiator_may_have_used(
    db: &Db,
    initiator: &InitiatorKey,
    lo: &[u8; 16],
    hi: &[u8; 16],
) -> AppResult<bool> {
    // The networks of the addresses in [lo, hi] lie in [net(lo), hi]: no
    // network is the start of another, so they sort as their addresses.
    let sql = db
        .sql(
            "SELECT EXISTS (SELECT 1 FROM event_combos WHERE initiator_kind = ? \
             AND initiator_id = ? AND ip_net BETWEEN ? AND ? AND n > 0)",
        )
        .bind(initiator.kind.clone())
        .bind(initiator.id.clone().unwrap_or_default())
        .bind(ip_net(lo).to_vec())
        .bind(hi.to_vec());
    db.read().scalar(&sql).await
}

/// How many combinations' counts, by network (`event_combos`) and by
/// address (`ip_combos`), differ from the log's own (a recount of every event):
/// 0 when both tables are exact. For tests and checks; it reads
/// the whole log.
pub async fn combo_differences(db: &Db) -> AppResult<i64> {
    let net = net_of_ip_bin(db.backend());
    let sql = db.sql(format!(
        "SELECT COUNT(*) FROM (SELECT 1 FROM (\
         SELECT {KEY}, n FROM event_combos UNION ALL \
         SELECT initiator_kind, COALESCE(initiator_id, ''), COALESCE(initiator_name, ''), action, \
         COALESCE(table_name, ''), {net}, -COUNT(*) FROM events \
         GROUP BY 1, 2, 3, 4, 5, 6) d GROUP BY {KEY} HAVING SUM(n) <> 0) x"
    ));
    let combos: i64 = db.read().scalar(&sql).await?;
    let sql = db.sql(format!(
        "SELECT COUNT(*) FROM (SELECT 1 FROM (\
         SELECT {IPS_KEY}, n FROM ip_combos UNION ALL \
         SELECT ip_bin, initiator_kind, COALESCE(initiator_id, ''), action, \
         COALESCE(table_name, ''), -COUNT(*) FROM events \
         WHERE ip_bin IS NOT NULL GROUP BY 1, 2, 3, 4, 5) d \
         GROUP BY {IPS_KEY} HAVING SUM(n) <> 0) x"
    ));
    let ips: i64 = db.read().scalar(&sql).await?;
    Ok(combos + ips)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn key(ip: &str) -> [u8; 16] {
        ip_key(ip.parse::<IpAddr>().unwrap())
    }

    #[test]
    fn networks_sort_as_their_addresses_and_cover_whole_ranges() {
        let ips = [
            "::1",
            "0.0.0.1",
            "9.255.255.255",
            "10.0.0.1",
            "10.0.255.255",
            "10.1.0.0",
            "255.255.255.255",
            "::2:0:0:1",
            "0:0:0:1::",
            "2001:db8::1",
            "2001:db8:ffff::1",
            "2001:db9::",
            "ffff::1",
        ];
        for pair in ips.windows(2) {
            let (a, b) = (key(pair[0]), key(pair[1]));
            assert!(a < b, "{pair:?} in key order");
            assert!(
                ip_net(&a) <= ip_net(&b),
                "{pair:?}: networks in the same order"
            );
            let (lo, hi) = net_range(ip_net(&a));
            assert!(lo <= a && a <= hi, "{} is in its network", pair[0]);
        }
        assert_eq!(ip_net(&key("10.0.0.1")), ip_net(&key("10.0.255.255")));
        assert_eq!(net_cidr(ip_net(&key("10.0.9.1"))).unwrap(), "10.0.0.0/16");
        assert_eq!(
            net_cidr(ip_net(&key("2001:db8::1"))).unwrap(),
            "2001:db8::/32"
        );
        assert_eq!(net_cidr(ip_net(&key("::1"))).unwrap(), "::1");
        assert_eq!(net_cidr(&[]), None);
        assert_ne!(ip_net(&key("10.0.0.1")), ip_net(&key("10.1.0.0")));
        assert_eq!(
            ip_net(&key("2001:db8::1")),
            ip_net(&key("2001:db8:ffff::1"))
        );
        let range = |cidr: &str| crate::query::IpFilter::parse(cidr).unwrap().key_range();
        for (cidr, whole) in [
            ("10.0.0.0/8", true),
            ("192.168.0.0/16", true),
            ("203.0.113.0/24", false),
            ("10.0.0.9", false),
            ("2001:db8::/32", true),
            ("2001:db8::/48", false),
            ("::/0", true),
            ("0.0.0.0/0", true),
        ] {
            let (lo, hi) = range(cidr);
            assert_eq!(whole_nets(&lo, &hi), whole, "{cidr}");
        }
    }
}
