//! Alerts: rules evaluated as events are stored.
//!
//! One evaluator (the server holding the lease) reads the log after its
//! cursor, in id order, a span at a time. For each active rule it reads the
//! events of the span that the rule's filter passes (the Activity Log's own
//! query, so a rule and its link never disagree), decides which of them
//! fire ([`Evaluator`], plain code with no database), and writes the alerts
//! and the new cursor in one transaction: a restart neither loses nor
//! repeats an alert.
//!
//! Firings are grouped: a firing joins its group's newest alert while that
//! alert is not resolved and began less than the rule's window before it,
//! so a burst makes one alert with a count, not a thousand.
//!
//! What a rule remembers (a threshold's recent events per group, the
//! addresses each initiator was seen from) is bounded and rebuilt from the
//! log when the evaluator starts or a rule changes.

use crate::alerts::{RuleKind, RuleSettings};
use crate::errors::{AppError, AppResult};
use crate::query::{EventQuery, InitiatorKey, IpFilter};
use crate::server::clock::Micros;
use crate::server::store;
use crate::server::streams::filter_query;
use chrono::{Datelike, TimeZone, Timelike};
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::Duration;

const MINUTE: Micros = 60_000_000;
const DAY: Micros = 86_400_000_000;

/// The largest threshold a rule may set (a group keeps that many events).
pub const MAX_THRESHOLD: i64 = 10_000;
/// Initiator–network pairs the new-IP rules remember between reads of the
/// log (a miss asks the log).
const SEEN_KEPT: usize = 200_000;
/// Groups a threshold rule keeps (the oldest go first beyond it).
const GROUPS_KEPT: usize = 100_000;

/// One stored event, as much of it as the rules need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    pub id: i64,
    pub at: Micros,
    pub initiator: InitiatorKey,
    pub ip: Option<IpAddr>,
    pub action: String,
    pub table: Option<String>,
}

/// A rule, checked and ready to evaluate.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: i64,
    pub kind: RuleKind,
    pub settings: RuleSettings,
    pub query: EventQuery,
    pub zone: chrono_tz::Tz,
    pub updated_at: Micros,
    /// The filter's address range, as 16-byte keys.
    ip_range: Option<([u8; 16], [u8; 16])>,
}

impl Rule {
    /// Checks an admin's settings: every field that the kind uses.
    pub fn check(settings: &RuleSettings) -> AppResult<(RuleKind, EventQuery, chrono_tz::Tz)> {
        let bad = |m: String| Err(AppError::BadRequest(m));
        let name = settings.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return bad("name: give the rule a name (at most 100 characters)".into());
        }
        let Some(kind) = RuleKind::parse(&settings.kind) else {
            return bad(format!(
                "kind: \"{}\" is not one of match, threshold, new_ip, off_hours",
                settings.kind
            ));
        };
        if !crate::alerts::SEVERITIES.contains(&settings.severity.as_str()) {
            return bad(format!(
                "severity: \"{}\" is not one of info, warning, critical",
                settings.severity
            ));
        }
        let query = filter_query(&settings.filter)?;
        if query.range.is_some() || query.from.is_some() || query.to.is_some() {
            return bad("filter: a rule watches new events; leave the time range out".into());
        }
        if !crate::alerts::GROUPS
            .iter()
            .any(|(g, _)| *g == settings.group_by)
        {
            return bad(format!(
                "group_by: \"{}\" is not one of initiator, ip (or empty)",
                settings.group_by
            ));
        }
        if !(1..=7 * 24 * 60).contains(&settings.window_minutes) {
            return bad("window_minutes: from 1 minute to 7 days (10080)".into());
        }
        if kind == RuleKind::Threshold && !(1..=MAX_THRESHOLD).contains(&settings.threshold) {
            return bad(format!("threshold: from 1 to {MAX_THRESHOLD} events"));
        }
        if kind == RuleKind::NewIp {
            if !(1..=365).contains(&settings.lookback_days) {
                return bad("lookback_days: from 1 to 365 days".into());
            }
            if !["address", "network"].contains(&settings.network.as_str()) {
                return bad("network: address or network".into());
            }
        }
        let zone = match settings.zone.trim() {
            "" => chrono_tz::UTC,
            z => z.parse::<chrono_tz::Tz>().map_err(|_| {
                AppError::BadRequest(format!(
                    "zone: \"{z}\" is not a time zone (such as Europe/Berlin or UTC)"
                ))
            })?,
        };
        if kind == RuleKind::OffHours {
            if settings.work_days & !0x7f != 0 || settings.work_days == 0 {
                return bad("work_days: pick at least one working day".into());
            }
            let day = 0..=24 * 60;
            if !day.contains(&settings.work_start)
                || !day.contains(&settings.work_end)
                || settings.work_start == settings.work_end
            {
                return bad(
                    "work hours: a start and an end between 00:00 and 24:00, not equal".into(),
                );
            }
        }
        Ok((kind, query, zone))
    }

    pub fn new(id: i64, settings: RuleSettings, updated_at: Micros) -> AppResult<Self> {
        let (kind, query, zone) = Self::check(&settings)?;
        let ip_range = query
            .ip
            .as_deref()
            .map(IpFilter::parse)
            .transpose()?
            .map(|f| f.key_range());
        Ok(Self {
            id,
            kind,
            settings,
            query,
            zone,
            updated_at,
            ip_range,
        })
    }

    /// Whether `fact` passes the rule's filter, decided here when the
    /// filter has no keyword (`None` when it has: only the log's search
    /// index decides a keyword). The same tests as the Activity Log's SQL:
    /// the initiator's kind and id, the action among the chosen ones, the
    /// table, the address within the range (IPv4 mapped into IPv6).
    pub fn passes(&self, fact: &Fact) -> Option<bool> {
        let q = &self.query;
        if q.q.as_deref().is_some_and(|k| !k.trim().is_empty()) {
            return None;
        }
        let user = q.user.as_ref().is_none_or(|u| *u == fact.initiator);
        let action = q.actions.is_empty() || q.actions.contains(&fact.action);
        let table = q.table.is_none() || q.table == fact.table;
        let ip = match (&self.ip_range, fact.ip) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some((lo, hi)), Some(ip)) => {
                let key = match ip {
                    IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
                    IpAddr::V6(v6) => v6.octets(),
                };
                (*lo..=*hi).contains(&key)
            }
        };
        Some(user && action && table && ip)
    }

    /// Whether [`Rule::passes`] decides every event (no keyword).
    fn passes_all_known(&self) -> bool {
        self.query.q.as_deref().is_none_or(|k| k.trim().is_empty())
    }

    fn window(&self) -> Micros {
        self.settings.window_minutes * MINUTE
    }

    /// The key a firing of `fact` groups under.
    fn group_key(&self, fact: &Fact) -> String {
        match self.settings.group_by.as_str() {
            "initiator" => fact.initiator.to_param(),
            "ip" => fact.ip.map(|ip| ip.to_string()).unwrap_or_default(),
            _ => String::new(),
        }
    }

    /// The network a new-IP rule compares `ip` by.
    pub fn network_of(&self, ip: IpAddr) -> IpFilter {
        let prefix = match (self.settings.network.as_str(), ip) {
            ("network", IpAddr::V4(_)) => 24,
            ("network", IpAddr::V6(_)) => 48,
            (_, IpAddr::V4(_)) => 32,
            (_, IpAddr::V6(_)) => 128,
        };
        let (low, _) = IpFilter { addr: ip, prefix }.key_range();
        let addr = match ip {
            IpAddr::V4(_) => IpAddr::V4(
                std::net::Ipv6Addr::from(low)
                    .to_ipv4_mapped()
                    .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
            ),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(low)),
        };
        IpFilter { addr, prefix }
    }

    /// Whether `at` falls outside the rule's working hours, in its zone.
    pub fn off_hours(&self, at: Micros) -> bool {
        let Some(utc) = chrono::DateTime::from_timestamp_micros(at) else {
            return false;
        };
        let local = self.zone.from_utc_datetime(&utc.naive_utc());
        let day_bit = 1i64 << local.weekday().num_days_from_monday();
        let minute = i64::from(local.hour() * 60 + local.minute());
        let (start, end) = (self.settings.work_start, self.settings.work_end);
        let in_hours = if start < end {
            (start..end).contains(&minute)
        } else {
            // A shift over midnight belongs to the day it starts on.
            minute >= start || minute < end
        };
        let work_day = if start > end && minute < end {
            let yesterday = (local.weekday().num_days_from_monday() + 6) % 7;
            self.settings.work_days & (1 << yesterday) != 0
        } else {
            self.settings.work_days & day_bit != 0
        };
        !(in_hours && work_day)
    }
}

/// A rule firing on events: they count into the group's alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firing {
    pub rule_id: i64,
    pub group_key: String,
    pub first_id: i64,
    pub first_at: Micros,
    pub last_id: i64,
    pub last_at: Micros,
    /// Events it adds to the alert (a threshold's crossing brings the
    /// whole window).
    pub events: i64,
    /// The rule's grouping window.
    pub window: Micros,
}

/// The newest alert of a rule's group, as grouping needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatestAlert {
    pub id: i64,
    pub first_at: Micros,
    /// Not resolved.
    pub open: bool,
}

/// What a span's firings change among the alerts: one write per alert,
/// however many of its events the span holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertWrite {
    /// Adds the firings' events to alert `id` (or, should it have been
    /// resolved since it was read, begins a new alert with them).
    Add { id: i64, firing: Firing },
    /// A new alert (in the order they began).
    New(Firing),
}

impl AlertWrite {
    fn firing_mut(&mut self) -> &mut Firing {
        match self {
            Self::Add { firing, .. } | Self::New(firing) => firing,
        }
    }
}

impl Firing {
    /// Counts a later firing of the same group into this one.
    fn absorb(&mut self, later: &Firing) {
        self.events += later.events;
        self.last_id = self.last_id.max(later.last_id);
        self.last_at = self.last_at.max(later.last_at);
    }
}

/// Groups a span's firings (in id order) into alert writes: a firing joins
/// its group's newest alert while that is not resolved and began less than
/// one window before it; otherwise it begins a new one, which the group's
/// later firings join on the same terms.
pub fn group_firings(
    latest: &HashMap<(i64, String), LatestAlert>,
    firings: &[Firing],
) -> Vec<AlertWrite> {
    /// A group's newest alert before the span, and its write in `writes`.
    struct Slot {
        latest: Option<LatestAlert>,
        write: Option<usize>,
    }
    let mut writes: Vec<AlertWrite> = Vec::new();
    let mut slots: HashMap<(i64, &str), Slot> = HashMap::new();
    for f in firings {
        let slot = slots
            .entry((f.rule_id, f.group_key.as_str()))
            .or_insert_with(|| Slot {
                latest: latest.get(&(f.rule_id, f.group_key.clone())).copied(),
                write: None,
            });
        let joins_old = |a: &Option<LatestAlert>| {
            a.is_some_and(|a| a.open && f.last_at < a.first_at.saturating_add(f.window))
        };
        let joins = match slot.write.map(|i| &writes[i]) {
            Some(AlertWrite::New(first)) => f.last_at < first.first_at.saturating_add(f.window),
            Some(AlertWrite::Add { .. }) | None => joins_old(&slot.latest),
        };
        match (joins, slot.write, slot.latest) {
            (true, Some(i), _) => writes[i].firing_mut().absorb(f),
            (true, None, Some(a)) => {
                writes.push(AlertWrite::Add {
                    id: a.id,
                    firing: f.clone(),
                });
                slot.write = Some(writes.len() - 1);
            }
            _ => {
                writes.push(AlertWrite::New(f.clone()));
                slot.write = Some(writes.len() - 1);
            }
        }
    }
    writes
}

/// A threshold rule's recent matching events of one group.
#[derive(Debug, Default)]
struct Window {
    events: BTreeSet<(Micros, i64)>,
    newest: Micros,
    /// The newest event counted into an alert.
    counted_through: Option<(Micros, i64)>,
}

/// Asks the log whether an initiator acted from a network within a time
/// range (the new-IP rules' memory when theirs has no answer).
pub trait SeenLog {
    fn seen(
        &mut self,
        initiator: &InitiatorKey,
        network: IpFilter,
        from: Micros,
        to: Micros,
    ) -> impl std::future::Future<Output = AppResult<bool>>;
}

/// What the log said of an initiator and a network before one event: the
/// shortest look-back it was seen within, the longest it was not. An answer
/// for one look-back implies those for the others on its side (seen within
/// 7 days is seen within 30; not within 90 is not within 30).
#[derive(Debug, Default, Clone, Copy)]
struct Asked {
    seen_within: Option<Micros>,
    unseen_within: Option<Micros>,
}

impl Asked {
    fn implies(self, lookback: Micros) -> Option<bool> {
        if self.seen_within.is_some_and(|s| s <= lookback) {
            Some(true)
        } else if self.unseen_within.is_some_and(|u| u >= lookback) {
            Some(false)
        } else {
            None
        }
    }

    fn learn(&mut self, lookback: Micros, seen: bool) {
        if seen {
            self.seen_within = Some(self.seen_within.map_or(lookback, |s| s.min(lookback)));
        } else {
            self.unseen_within = Some(self.unseen_within.map_or(lookback, |u| u.max(lookback)));
        }
    }
}

/// What the rules remember between spans.
#[derive(Debug, Default)]
pub struct Evaluator {
    windows: HashMap<(i64, String), Window>,
    /// (rule, initiator, network) → the newest time seen. (Shared by the
    /// rules it made every rule after the first ask the log again about
    /// the event it had just seen: 20 s of lag in the bench.)
    seen: HashMap<(i64, String, IpFilter), Micros>,
    /// What the log said for an event of this span: (initiator, network,
    /// event id) → its answers. New-IP rules comparing the same way share
    /// them: one question per event answers every rule whose look-back it
    /// implies.
    asked: HashMap<(String, IpFilter, i64), Asked>,
}

impl Evaluator {
    /// Feeds a threshold rule's earlier events (from the log, when the
    /// evaluator starts) without firing; `counted`: whether those that
    /// crossed its threshold count as already in an alert (they do unless
    /// the rule changed after they were evaluated).
    pub fn remember(&mut self, rule: &Rule, facts: &[Fact], counted: bool) {
        for fact in facts {
            self.threshold(rule, fact);
        }
        if !counted {
            for ((id, _), w) in self.windows.iter_mut() {
                if *id == rule.id {
                    w.counted_through = None;
                }
            }
        }
    }

    /// Starts a span: what the log said about the last one goes.
    pub fn begin_span(&mut self) {
        self.asked.clear();
    }

    /// Which of `facts` (the events of a span that `rule`'s filter passes,
    /// in id order) fire.
    pub async fn evaluate(
        &mut self,
        rule: &Rule,
        facts: &[Fact],
        log: &mut impl SeenLog,
    ) -> AppResult<Vec<Firing>> {
        let mut out = Vec::new();
        for fact in facts {
            let firing = |first: (i64, Micros), events: i64, group_key: String| Firing {
                rule_id: rule.id,
                group_key,
                first_id: first.0,
                first_at: first.1,
                last_id: fact.id,
                last_at: fact.at,
                events,
                window: rule.window(),
            };
            match rule.kind {
                RuleKind::Match => out.push(firing((fact.id, fact.at), 1, rule.group_key(fact))),
                RuleKind::OffHours => {
                    if rule.off_hours(fact.at) {
                        out.push(firing((fact.id, fact.at), 1, rule.group_key(fact)));
                    }
                }
                RuleKind::Threshold => {
                    if let Some((first, events)) = self.threshold(rule, fact) {
                        out.push(firing(first, events, rule.group_key(fact)));
                    }
                }
                RuleKind::NewIp => {
                    if let Some(network) = self.new_network(rule, fact, log).await? {
                        let key = format!("{} {}", fact.initiator.to_param(), show(network));
                        out.push(firing((fact.id, fact.at), 1, key));
                    }
                }
            }
        }
        self.bound();
        Ok(out)
    }

    /// Counts `fact` into its group's window: `Some` when the window (the
    /// events within the rule's window up to and including `fact`) holds at
    /// least the threshold, with the window's first event not yet counted
    /// into an alert and how many there are.
    fn threshold(&mut self, rule: &Rule, fact: &Fact) -> Option<((i64, Micros), i64)> {
        let n = rule.settings.threshold.max(1) as usize;
        let w = self
            .windows
            .entry((rule.id, rule.group_key(fact)))
            .or_default();
        // The window is (at − W, at]: an event exactly W earlier is out.
        let start = fact.at.saturating_sub(rule.window()).saturating_add(1);
        let before = w
            .events
            .range((start, i64::MIN)..=(fact.at, fact.id))
            .count();
        w.events.insert((fact.at, fact.id));
        w.newest = w.newest.max(fact.at);
        // Events older than any later window needs, and beyond N, go.
        let keep_from = w.newest.saturating_sub(rule.window()).saturating_add(1);
        while w.events.first().is_some_and(|(at, _)| *at < keep_from) || w.events.len() > n {
            w.events.pop_first();
        }
        if before + 1 < n {
            return None;
        }
        // Every event of the window not yet counted into an alert: the
        // whole window when it crosses, the event alone while above.
        let fresh: Vec<(Micros, i64)> = w
            .events
            .range((start, i64::MIN)..)
            .filter(|e| w.counted_through.is_none_or(|c| **e > c))
            .copied()
            .collect();
        w.counted_through = w.counted_through.max(Some((fact.at, fact.id)));
        let first = fresh.first().copied().unwrap_or((fact.at, fact.id));
        Some(((first.1, first.0), fresh.len().max(1) as i64))
    }

    /// The network `fact` came from when its initiator was not seen from it
    /// in the rule's lookback before it.
    async fn new_network(
        &mut self,
        rule: &Rule,
        fact: &Fact,
        log: &mut impl SeenLog,
    ) -> AppResult<Option<IpFilter>> {
        let Some(ip) = fact.ip else {
            return Ok(None);
        };
        let network = rule.network_of(ip);
        let initiator = fact.initiator.to_param();
        let key = (rule.id, initiator.clone(), network);
        // Seen within [at − D, at): exactly D days ago still counts.
        let from = fact.at.saturating_sub(rule.settings.lookback_days * DAY);
        let to = fact.at - 1;
        let known = self.seen.get(&key).copied();
        let seen = match known {
            Some(last) if (from..=to).contains(&last) => true,
            _ => {
                let lookback = fact.at - from;
                let asked = self.asked.entry((initiator, network, fact.id)).or_default();
                match asked.implies(lookback) {
                    Some(seen) => seen,
                    None => {
                        let seen = log.seen(&fact.initiator, network, from, to).await?;
                        asked.learn(lookback, seen);
                        seen
                    }
                }
            }
        };
        self.seen
            .insert(key, known.map_or(fact.at, |last| last.max(fact.at)));
        Ok((!seen).then_some(network))
    }

    /// Keeps what is remembered within its bounds.
    fn bound(&mut self) {
        if self.seen.len() > SEEN_KEPT {
            self.seen.clear();
        }
        if self.windows.len() > GROUPS_KEPT {
            let mut newest: Vec<Micros> = self.windows.values().map(|w| w.newest).collect();
            let cut = newest.len() - GROUPS_KEPT / 2;
            let (_, at, _) = newest.select_nth_unstable(cut);
            let at = *at;
            self.windows.retain(|_, w| w.newest >= at);
        }
    }
}

/// A network as it reads in a group key and a link (`10.1.2.0/24`, an
/// address alone without its prefix).
pub fn show(network: IpFilter) -> String {
    let full = matches!(
        (network.addr, network.prefix),
        (IpAddr::V4(_), 32) | (IpAddr::V6(_), 128)
    );
    if full {
        network.addr.to_string()
    } else {
        format!("{}/{}", network.addr, network.prefix)
    }
}

/// The Activity Log on an alert's events: the rule's filter, its group, and
/// the alert's time span.
pub fn alert_link(
    filter: &str,
    kind: &str,
    group_by: &str,
    group_key: &str,
    first_at: Micros,
    last_at: Micros,
) -> String {
    let mut parts: Vec<String> = filter
        .split('&')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    let enc = crate::query::encode_component;
    let mut set = |name: &str, value: &str| {
        parts.retain(|p| !p.starts_with(&format!("{name}=")));
        parts.push(format!("{name}={}", enc(value)));
    };
    if kind == RuleKind::NewIp.as_str() {
        if let Some((initiator, network)) = group_key.split_once(' ') {
            set("user", initiator);
            set("ip", network);
        }
    } else if !group_key.is_empty() {
        match group_by {
            "initiator" => set("user", group_key),
            "ip" => set("ip", group_key),
            _ => {}
        }
    }
    set("from", &crate::query::format_instant_param(first_at));
    set("to", &crate::query::format_instant_param(last_at));
    format!("/activity-log?{}", parts.join("&"))
}

/// An alert as its rule's stream takes it: a signed JSON object for a
/// webhook, one line of text for a chat; `None` for kinds that take events
/// only (Splunk, syslog).
pub fn alert_message(
    alert: &crate::alerts::AlertInfo,
    kind: crate::streams::StreamKind,
) -> Option<Vec<u8>> {
    use crate::models::{format_rfc3339, format_utc};
    use crate::streams::StreamKind;
    match kind {
        StreamKind::Webhook => Some(
            serde_json::json!({
                "type": "alert",
                "alert": {
                    "id": alert.id,
                    "rule": alert.rule_name,
                    "severity": alert.severity,
                    "kind": alert.kind,
                    "group": alert.group_key,
                    "events": alert.events,
                    "first_event_id": alert.first_event_id,
                    "last_event_id": alert.last_event_id,
                    "first_at": format_rfc3339(alert.first_at),
                    "last_at": format_rfc3339(alert.last_at),
                    "link": alert.link,
                }
            })
            .to_string()
            .into_bytes(),
        ),
        StreamKind::Slack => {
            let group = if alert.group_key.is_empty() {
                String::new()
            } else {
                format!(" for {}", alert.group_key)
            };
            let events = if alert.events == 1 { "event" } else { "events" };
            let line = format!(
                "⚠ [{}] {}: {} {events}{group}, {} UTC · {}",
                alert.severity,
                alert.rule_name,
                alert.events,
                format_utc(alert.first_at),
                alert.link
            );
            Some(crate::server::stream_format::slack_text(&[line], 1))
        }
        StreamKind::SplunkHec | StreamKind::Syslog => None,
    }
}

/// How the evaluator runs.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// How often it looks for new events when it has caught up.
    pub poll: Duration,
    /// How long it lets new events gather after a span that caught up
    /// (each turn reads, updates and writes per alert group, whatever the
    /// span holds: a turn per ingest batch cost ingest the most).
    pub settle: Duration,
    /// How long its lease lasts without renewal.
    pub lease: Duration,
    /// Event ids read at most a turn.
    pub span: i64,
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(500),
            settle: Duration::from_millis(200),
            lease: Duration::from_secs(30),
            span: 20_000,
        }
    }
}

/// The weekly digest as a stream takes it: signed JSON for a webhook, a few
/// chat lines for a Slack-compatible one.
pub fn digest_message(
    d: &crate::alerts::Digest,
    kind: crate::streams::StreamKind,
) -> Option<Vec<u8>> {
    use crate::models::format_rfc3339;
    let format_count = |n: i64| crate::models::format_count(n.max(0) as u64);
    use crate::streams::StreamKind;
    let link = crate::alerts::digest_link(d.from, &d.zone);
    let zone = crate::server::charts::parse_zone(&d.zone).unwrap_or(chrono_tz::UTC);
    let local = |at: i64| {
        use chrono::TimeZone;
        zone.timestamp_micros(at)
            .single()
            .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_default()
    };
    let pairs = |v: &[(String, i64)]| {
        v.iter()
            .map(|(k, n)| serde_json::json!({ "name": k, "events": n }))
            .collect::<Vec<_>>()
    };
    match kind {
        StreamKind::Webhook => Some(
            serde_json::json!({
                "type": "digest",
                "digest": {
                    "from": format_rfc3339(d.from),
                    "to": format_rfc3339(d.to),
                    "zone": d.zone,
                    "events": d.events,
                    "by_action": pairs(&d.by_action),
                    "rules": d.rules.iter().map(|r| serde_json::json!({
                        "rule": r.name, "severity": r.severity, "alerts": r.alerts, "events": r.events,
                    })).collect::<Vec<_>>(),
                    "new_ips": d.new_ips,
                    "new_ip_count": d.new_ip_count,
                    "deletions": d.deletions,
                    "deleted_by": pairs(&d.deleted_by),
                    "exports": d.exports,
                    "exported_by": pairs(&d.exported_by),
                    "link": link,
                }
            })
            .to_string()
            .into_bytes(),
        ),
        StreamKind::Slack => {
            let actions = d
                .by_action
                .iter()
                .take(5)
                .map(|(a, n)| format!("{a} {}", format_count(*n)))
                .collect::<Vec<_>>()
                .join(", ");
            let alerts: i64 = d.rules.iter().map(|r| r.alerts).sum();
            let lines = vec![
                format!(
                    "Weekly digest {} – {} {} · {link}",
                    local(d.from),
                    local(d.to),
                    d.zone
                ),
                format!("{} events: {actions}", format_count(d.events)),
                format!("{} alerts from {} rules", format_count(alerts), d.rules.len()),
                format!("{} new IPs", format_count(d.new_ip_count)),
                format!(
                    "{} deletions, {} exports",
                    format_count(d.deletions),
                    format_count(d.exports)
                ),
            ];
            Some(crate::server::stream_format::slack_text(&lines, lines.len()))
        }
        StreamKind::SplunkHec | StreamKind::Syslog => None,
    }
}

/// The log as the new-IP rules ask it.
struct Log<'a>(&'a store::Db);

impl SeenLog for Log<'_> {
    async fn seen(
        &mut self,
        initiator: &InitiatorKey,
        network: IpFilter,
        from: Micros,
        to: Micros,
    ) -> AppResult<bool> {
        store::initiator_seen_from(self.0, initiator, &show(network), from, to).await
    }
}

/// The running evaluator; [`AlertWorker::stop`] ends it and lets its lease go.
pub struct AlertWorker {
    stop: tokio::sync::watch::Sender<bool>,
    finished: tokio::sync::oneshot::Receiver<()>,
}

impl AlertWorker {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.finished.await;
    }
}

/// Starts evaluating the rules, on this server while it holds the lease.
/// It runs on a thread of its own, at the normal priority: it writes
/// through the one writer, and a lowered priority made ingest wait on a
/// descheduled evaluator holding it.
pub fn spawn_alerts(db: store::Db, settings: AlertSettings) -> AlertWorker {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (done, finished) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("auditdeck-alerts".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                // Its own readers, made inside the runtime they belong to.
                Ok(runtime) => runtime
                    .block_on(async move { run(db.with_own_readers(), settings, stopped).await }),
                Err(e) => tracing::error!(error = %e, "alerts: cannot start the evaluator"),
            }
            let _ = done.send(());
        })
        .expect("a thread for alerts");
    AlertWorker { stop, finished }
}

/// The rules as loaded, and what they remember.
struct Loaded {
    rules: Vec<Rule>,
    evaluator: Evaluator,
}

async fn run(
    db: store::Db,
    settings: AlertSettings,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let (poll, settle) = (settings.poll, settings.settle);
    let mut runner = AlertRunner::new(settings);
    loop {
        if *stopped.borrow() {
            break;
        }
        let busy = match runner.turn(&db).await {
            Ok(busy) => busy,
            Err(e) => {
                tracing::warn!(error = %e, "alerts: evaluation failed; trying again");
                runner.loaded = None;
                runner.lease_until = None;
                runner.evaluated = false;
                false
            }
        };
        // More waiting: at once; a span that caught up: after a moment for
        // more to gather; nothing new: at the next look.
        let wait = match (busy, runner.evaluated) {
            (true, _) => continue,
            (false, true) => settle,
            (false, false) => poll,
        };
        if !crate::server::streams::pause(&mut stopped, wait).await {
            break;
        }
    }
    let _ = runner.release(&db).await;
}

/// The evaluator of one server: its lease holder name and what its rules
/// remember.
pub struct AlertRunner {
    holder: String,
    settings: AlertSettings,
    loaded: Option<Loaded>,
    client: Option<crate::server::streams::HttpClient>,
    /// Until when this runner last made the lease its own (by the clock as
    /// it read before asking: never later than the lease's real end).
    lease_until: Option<Micros>,
    /// Whether the last turn evaluated a span.
    evaluated: bool,
}

impl AlertRunner {
    pub fn new(settings: AlertSettings) -> Self {
        Self {
            holder: crate::server::streams::holder_name(),
            settings,
            loaded: None,
            client: None,
            lease_until: None,
            evaluated: false,
        }
    }

    /// Sends the new alerts whose rules name a stream (those that are due:
    /// a failure waits the streams' backoff before the next try).
    pub async fn send_due(&mut self, db: &store::Db) -> AppResult<usize> {
        use crate::server::streams::retry_delay;
        let due = store::alerts_to_send(db, 20).await?;
        if due.is_empty() {
            return Ok(0);
        }
        let mut sent = 0;
        for a in due {
            let now = db.now();
            let outcome = self
                .send_to(
                    db,
                    a.stream_id,
                    &format!("adk_alert_{}", a.alert.id),
                    "alerts",
                    |kind| alert_message(&a.alert, kind),
                )
                .await?;
            match outcome {
                Ok(()) => {
                    sent += 1;
                    store::record_alert_sending(db, a.alert.id, Ok(())).await?;
                }
                Err(error) => {
                    let retry_at = now + retry_delay(a.failures + 1, rand::random::<f64>());
                    store::record_alert_sending(db, a.alert.id, Err((&error, retry_at))).await?;
                }
            }
        }
        Ok(sent)
    }

    /// Sends one message (`make` shapes it for the stream's kind) to stream
    /// `stream_id`, as `message_id`: what went wrong, if anything.
    async fn send_to(
        &mut self,
        db: &store::Db,
        stream_id: i64,
        message_id: &str,
        what: &str,
        make: impl FnOnce(crate::streams::StreamKind) -> Option<Vec<u8>>,
    ) -> AppResult<Result<(), String>> {
        use crate::server::streams::{post, Destination};
        let Some(stream) = store::get_stream(db, stream_id).await? else {
            return Ok(Err("its stream is gone".to_string()));
        };
        let now = db.now();
        let dest = Destination::of(&stream, now)?;
        let Some(body) = make(dest.kind) else {
            return Ok(Err(format!(
                "a {} stream does not take {what}",
                dest.kind.label()
            )));
        };
        let client = self
            .client
            .get_or_insert_with(crate::server::streams::http_client)
            .clone();
        Ok(post(&client, &dest, message_id, body, now)
            .await
            .map_err(|f| f.error))
    }

    /// Sends the digest of the week just ended to each admin who asked for
    /// it and has not had it (once; a failure waits the streams' backoff).
    pub async fn send_digests(&mut self, db: &store::Db) -> AppResult<usize> {
        use crate::server::charts::{next_week_in, parse_zone, week_start_in};
        use crate::server::streams::retry_delay;
        let now = db.now();
        // Each subscriber's week just ended, in their zone; one digest per
        // distinct week however many share it.
        let mut digests: HashMap<(Micros, Micros), crate::alerts::Digest> = HashMap::new();
        let mut sent = 0;
        for d in store::digests_due(db).await? {
            let zone = parse_zone(&d.zone).unwrap_or(chrono_tz::UTC);
            let week = week_start_in(week_start_in(now, zone) - 1, zone);
            if d.sent_week >= week {
                continue;
            }
            let range = (week, next_week_in(week, zone));
            if let std::collections::hash_map::Entry::Vacant(slot) = digests.entry(range) {
                slot.insert(store::digest(db, range.0, range.1, zone.name()).await?);
            }
            let digest = &digests[&range];
            let id = format!("adk_digest_{}_{}", d.user_id, week / 1_000_000);
            let outcome = self
                .send_to(db, d.stream_id, &id, "digests", |kind| {
                    digest_message(digest, kind)
                })
                .await?;
            match outcome {
                Ok(()) => {
                    sent += 1;
                    store::record_digest_sending(db, d.user_id, week, Ok(())).await?;
                }
                Err(error) => {
                    let retry_at = now + retry_delay(d.failures + 1, rand::random::<f64>());
                    store::record_digest_sending(db, d.user_id, week, Err((&error, retry_at)))
                        .await?;
                }
            }
        }
        Ok(sent)
    }

    /// Lets the lease go (a server that stops).
    pub async fn release(&mut self, db: &store::Db) -> AppResult<()> {
        self.lease_until = None;
        store::release_alert_lease(db, &self.holder).await
    }

    /// One turn: takes (or renews) the lease, evaluates the next span and
    /// moves the cursor. Whether there is more to read at once (the span
    /// was cut short).
    pub async fn turn(&mut self, db: &store::Db) -> AppResult<bool> {
        self.evaluated = false;
        // The lease is renewed once a third of it has gone, not every turn:
        // each renewal is a write, and the writer is ingest's (the cursor's
        // move checks the lease all the same).
        let lease = self.settings.lease.as_micros() as Micros;
        let now = db.now();
        if self
            .lease_until
            .is_none_or(|until| until - now < lease * 2 / 3)
        {
            if !store::take_alert_lease(db, &self.holder, lease).await? {
                // Another server evaluates: what this one remembers goes stale.
                self.loaded = None;
                self.lease_until = None;
                return Ok(false);
            }
            self.lease_until = Some(now + lease);
        }
        self.send_due(db).await?;
        self.send_digests(db).await?;
        let cursor = store::alert_cursor(db).await?;
        let rows = store::active_alert_rules(db).await?;
        let changed = match &self.loaded {
            Some(l) => {
                l.rules.len() != rows.len()
                    || l.rules
                        .iter()
                        .zip(&rows)
                        .any(|(a, b)| a.id != b.id || a.updated_at != b.updated_at)
            }
            None => true,
        };
        if changed {
            self.loaded = Some(load(db, rows, cursor).await?);
        }
        let Some(state) = self.loaded.as_mut() else {
            return Ok(false);
        };
        let newest = store::max_event_id(db).await?;
        let head = newest.min(cursor + self.settings.span);
        self.evaluated = head > cursor;
        if head <= cursor {
            return Ok(false);
        }
        let mut firings = Vec::new();
        let mut log = Log(db);
        state.evaluator.begin_span();
        // One read of the span for every rule without a keyword; a rule
        // with one asks the search index.
        let all = if state.rules.iter().any(|r| r.passes_all_known()) {
            store::alert_facts(db, &EventQuery::default(), cursor, head, None).await?
        } else {
            Vec::new()
        };
        for rule in &state.rules {
            let facts = if rule.passes_all_known() {
                all.iter()
                    .filter(|f| rule.passes(f) == Some(true))
                    .cloned()
                    .collect()
            } else {
                store::alert_facts(db, &rule.query, cursor, head, None).await?
            };
            firings.extend(state.evaluator.evaluate(rule, &facts, &mut log).await?);
        }
        firings.sort_by_key(|f| (f.last_id, f.rule_id));
        if !store::record_alerts(db, &self.holder, cursor, head, &firings).await? {
            // The lease ran out under us: another server has the span.
            self.loaded = None;
            self.lease_until = None;
            return Ok(false);
        }
        Ok(newest > head)
    }
}

/// Loads the active rules and rebuilds what the threshold rules remember
/// from the log: their matching events within a window before the cursor.
async fn load(db: &store::Db, rows: Vec<store::AlertRuleRow>, cursor: i64) -> AppResult<Loaded> {
    let mut rules = Vec::new();
    for row in rows {
        match Rule::new(row.id, row.settings, row.updated_at) {
            Ok(rule) => rules.push(rule),
            Err(e) => {
                tracing::warn!(rule = row.id, error = %e, "alerts: a rule cannot be evaluated")
            }
        }
    }
    let mut evaluator = Evaluator::default();
    let cursor_at = store::event_times(db, cursor).await?;
    for rule in rules.iter().filter(|r| r.kind == RuleKind::Threshold) {
        if let Some((until, received)) = cursor_at {
            let mut q = rule.query.clone();
            q.from = Some(until - rule.window());
            // A rule of one group needs only its newest N; per-group rules
            // read more, within a bound.
            let limit = if rule.settings.group_by.is_empty() {
                rule.settings.threshold.clamp(1, MAX_THRESHOLD) as u32
            } else {
                MAX_THRESHOLD as u32 * 10
            };
            let facts = store::alert_facts(db, &q, 0, cursor, Some(limit)).await?;
            // Changed since the events before the cursor were evaluated:
            // those were weighed by its old settings, so none of them is in
            // an alert of its new ones.
            evaluator.remember(rule, &facts, rule.updated_at <= received);
        }
    }
    Ok(Loaded { rules, evaluator })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(kind: RuleKind, f: impl FnOnce(&mut RuleSettings)) -> Rule {
        let mut s = RuleSettings {
            name: "r".into(),
            severity: "warning".into(),
            kind: kind.as_str().into(),
            threshold: 3,
            window_minutes: 5,
            lookback_days: 30,
            network: "address".into(),
            work_days: 31,
            work_start: 9 * 60,
            work_end: 18 * 60,
            zone: "UTC".into(),
            ..RuleSettings::default()
        };
        f(&mut s);
        Rule::new(1, s, 0).unwrap()
    }

    fn fact(id: i64, at: Micros) -> Fact {
        Fact {
            id,
            at,
            initiator: InitiatorKey::parse("user:u-1").unwrap(),
            ip: Some("10.1.2.3".parse().unwrap()),
            action: "LOGIN_FAILED".into(),
            table: None,
        }
    }

    struct NoLog;
    impl SeenLog for NoLog {
        async fn seen(
            &mut self,
            _: &InitiatorKey,
            _: IpFilter,
            _: Micros,
            _: Micros,
        ) -> AppResult<bool> {
            Ok(false)
        }
    }

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn a_spans_firings_become_one_write_per_alert() {
        let firing = |rule_id: i64, key: &str, id: i64, at: Micros| Firing {
            rule_id,
            group_key: key.into(),
            first_id: id,
            first_at: at,
            last_id: id,
            last_at: at,
            events: 1,
            window: 100,
        };
        let latest: HashMap<(i64, String), LatestAlert> = [
            (
                (1, "a".to_string()),
                LatestAlert {
                    id: 7,
                    first_at: 0,
                    open: true,
                },
            ),
            (
                (1, "b".to_string()),
                LatestAlert {
                    id: 8,
                    first_at: 50,
                    open: false,
                },
            ),
        ]
        .into();
        let firings = [
            firing(1, "a", 1, 10),
            firing(1, "b", 2, 60),
            firing(1, "a", 3, 99),
            // One window after the open alert began: a new one.
            firing(1, "a", 4, 100),
            firing(1, "b", 5, 70),
            firing(2, "a", 6, 120),
            firing(1, "a", 7, 199),
            firing(1, "a", 8, 200),
        ];
        let writes = group_firings(&latest, &firings);
        let new_firing =
            |first: (i64, Micros), last: (i64, Micros), events: i64, rule_id: i64| Firing {
                first_id: first.0,
                first_at: first.1,
                last_id: last.0,
                last_at: last.1,
                events,
                ..firing(rule_id, "", 0, 0)
            };
        let new = |first, last, events, rule_id| {
            AlertWrite::New(new_firing(first, last, events, rule_id))
        };
        let mut expected = vec![
            AlertWrite::Add {
                id: 7,
                firing: new_firing((1, 10), (3, 99), 2, 1),
            },
            // A resolved alert is not joined.
            new((2, 60), (5, 70), 2, 1),
            new((4, 100), (7, 199), 2, 1),
            new((6, 120), (6, 120), 1, 2),
            new((8, 200), (8, 200), 1, 1),
        ];
        for (w, key) in expected.iter_mut().zip(["a", "b", "a", "a", "a"]) {
            w.firing_mut().group_key = key.into();
        }
        assert_eq!(writes, expected);
        // Without firings, nothing is written.
        assert!(group_firings(&latest, &[]).is_empty());
    }

    #[test]
    fn a_threshold_fires_at_n_within_the_window_and_not_at_n_minus_one() {
        let r = rule(RuleKind::Threshold, |_| {});
        let w = 5 * MINUTE;
        let mut e = Evaluator::default();
        // Two events, then the third exactly W after the first: the first is out.
        let out = run(e.evaluate(&r, &[fact(1, 0), fact(2, 10), fact(3, w)], &mut NoLog)).unwrap();
        assert!(out.is_empty(), "{out:?}");
        // A fourth 1 µs later: 2, 3 and 4 are within W.
        let out = run(e.evaluate(&r, &[fact(4, w + 1)], &mut NoLog)).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].first_id, out[0].events, out[0].last_id), (2, 3, 4));
        // While above, each event adds itself.
        let out = run(e.evaluate(&r, &[fact(5, w + 2)], &mut NoLog)).unwrap();
        assert_eq!((out[0].first_id, out[0].events), (5, 1));
    }

    #[test]
    fn off_hours_follow_the_zone_across_a_dst_change() {
        let r = rule(RuleKind::OffHours, |s| s.zone = "Europe/Berlin".into());
        let at = |text: &str| {
            chrono::DateTime::parse_from_rfc3339(text)
                .unwrap()
                .timestamp_micros()
        };
        // 29 March 2026: Berlin goes from UTC+1 to UTC+2. Monday 30 March:
        // 17:59 local (15:59 UTC) is in hours, 18:00 local (16:00 UTC) is not.
        assert!(!r.off_hours(at("2026-03-30T15:59:59.999999Z")));
        assert!(r.off_hours(at("2026-03-30T16:00:00Z")));
        // The Friday before, in winter time: 18:00 local is 17:00 UTC.
        assert!(!r.off_hours(at("2026-03-27T16:59:00Z")));
        assert!(r.off_hours(at("2026-03-27T17:00:00Z")));
        // Saturday is not a working day.
        assert!(r.off_hours(at("2026-03-28T10:00:00Z")));
    }

    /// A log that saw the initiator from everywhere at `last`, and counts
    /// the questions it was asked.
    struct LastSeen {
        last: Micros,
        asked: usize,
    }
    impl SeenLog for LastSeen {
        async fn seen(
            &mut self,
            _: &InitiatorKey,
            _: IpFilter,
            from: Micros,
            to: Micros,
        ) -> AppResult<bool> {
            self.asked += 1;
            Ok((from..=to).contains(&self.last))
        }
    }

    #[test]
    fn new_ip_rules_share_the_logs_answers_and_keep_their_own_look_back() {
        let at = 200 * DAY;
        let with = |id: i64, days: i64| {
            let mut r = rule(RuleKind::NewIp, |s| s.lookback_days = days);
            r.id = id;
            r
        };
        let fired = |e: &mut Evaluator, rules: &[Rule], id: i64, t: Micros, log: &mut LastSeen| {
            rules
                .iter()
                .map(|r| run(e.evaluate(r, &[fact(id, t)], log)).unwrap().len())
                .collect::<Vec<_>>()
        };
        // Not seen for 100 days: one question answers every look-back.
        let rules = [with(1, 90), with(2, 7), with(3, 30)];
        let mut log = LastSeen {
            last: at - 100 * DAY,
            asked: 0,
        };
        let mut e = Evaluator::default();
        e.begin_span();
        assert_eq!(fired(&mut e, &rules, 1, at, &mut log), vec![1, 1, 1]);
        assert_eq!(log.asked, 1, "not within 90 days: not within 7 or 30");
        // Last seen 8 days before: new for the 7-day rules only; seen
        // within 30 answers 90 too, not within 7 answers the other 7.
        let rules = [with(1, 30), with(2, 7), with(3, 90), with(4, 7)];
        let mut log = LastSeen {
            last: at - 8 * DAY,
            asked: 0,
        };
        let mut e = Evaluator::default();
        e.begin_span();
        assert_eq!(fired(&mut e, &rules, 1, at, &mut log), vec![0, 1, 0, 1]);
        assert_eq!(log.asked, 2, "two questions for four rules");
        // The next span asks afresh, but each rule now remembers the event
        // it saw 1 µs before.
        e.begin_span();
        assert_eq!(fired(&mut e, &rules, 2, at + 1, &mut log), vec![0, 0, 0, 0]);
        assert_eq!(log.asked, 2);
        // Exactly D days after the last sighting still counts as seen.
        let mut log = LastSeen {
            last: at - 7 * DAY,
            asked: 0,
        };
        let mut e = Evaluator::default();
        e.begin_span();
        assert_eq!(fired(&mut e, &rules[1..2], 1, at, &mut log), vec![0]);
    }

    #[test]
    fn networks_compare_by_address_or_prefix() {
        let a = rule(RuleKind::NewIp, |_| {});
        let n = rule(RuleKind::NewIp, |s| s.network = "network".into());
        let v4: IpAddr = "10.1.2.3".parse().unwrap();
        let v6: IpAddr = "2001:db8:1:2::5".parse().unwrap();
        assert_eq!(show(a.network_of(v4)), "10.1.2.3");
        assert_eq!(show(n.network_of(v4)), "10.1.2.0/24");
        assert_eq!(show(n.network_of(v6)), "2001:db8:1::/48");
    }

    #[test]
    fn links_carry_the_group_and_the_span() {
        let link = alert_link(
            "action=LOGIN_FAILED",
            "threshold",
            "ip",
            "10.0.0.9",
            0,
            60_000_000,
        );
        assert_eq!(
            link,
            "/activity-log?action=LOGIN_FAILED&ip=10.0.0.9&from=1970-01-01T00:00Z&to=1970-01-01T00:01Z"
        );
        let link = alert_link("", "new_ip", "", "user:u-1 10.1.2.0/24", 1, 2);
        assert!(
            link.starts_with("/activity-log?user=user:u-1&ip=10.1.2.0%2F24&from="),
            "{link}"
        );
    }
}
