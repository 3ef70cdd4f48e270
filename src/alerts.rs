//! Alerts as the dashboard and the server both see them: the kinds of rule,
//! a rule's settings, and an alert in the inbox.

use serde::{Deserialize, Serialize};

/// What makes a rule fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RuleKind {
    /// Every event matching the filter.
    Match,
    /// At least N matching events within W minutes (per group).
    Threshold,
    /// An initiator acting from an address (or network) not seen for them
    /// in the last D days.
    NewIp,
    /// Matching events outside working hours and days, in a time zone.
    OffHours,
}

impl RuleKind {
    pub const ALL: [RuleKind; 4] = [Self::Match, Self::Threshold, Self::NewIp, Self::OffHours];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Match => "match",
            Self::Threshold => "threshold",
            Self::NewIp => "new_ip",
            Self::OffHours => "off_hours",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == value)
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Match => "Any matching event",
            Self::Threshold => "Threshold",
            Self::NewIp => "New IP for an initiator",
            Self::OffHours => "Off hours",
        }
    }
}

/// How urgent a rule's alerts are.
pub const SEVERITIES: [&str; 3] = ["info", "warning", "critical"];

/// How a rule's firings are grouped into alerts.
pub const GROUPS: [(&str, &str); 3] = [
    ("", "One group"),
    ("initiator", "Per initiator"),
    ("ip", "Per IP"),
];

/// Days of the week as a rule's `work_days` bits (Monday first).
pub const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// A rule as an admin writes it (Settings → Alerts).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RuleSettings {
    pub name: String,
    pub severity: String,
    pub kind: String,
    /// The Activity Log's filters, as its query string.
    pub filter: String,
    pub threshold: i64,
    pub window_minutes: i64,
    pub group_by: String,
    pub lookback_days: i64,
    /// `address` or `network` (/24 for IPv4, /48 for IPv6).
    pub network: String,
    /// Bits of [`WEEKDAYS`], Monday = 1.
    pub work_days: i64,
    /// Minutes after midnight: start inclusive, end exclusive.
    pub work_start: i64,
    pub work_end: i64,
    /// An IANA time zone (Europe/Berlin).
    pub zone: String,
    /// The stream new alerts are also sent to (a webhook or a chat).
    pub stream_id: Option<i64>,
}

/// A rule on Settings → Alerts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleInfo {
    pub id: i64,
    pub settings: RuleSettings,
    pub paused: bool,
    /// The name of the stream its alerts go to.
    pub stream_name: Option<String>,
    /// Alerts it has fired, and how many of them are open.
    pub alerts: i64,
    pub open: i64,
}

impl RuleInfo {
    /// What the rule watches for, in a line.
    pub fn summary(&self) -> String {
        describe(&self.settings)
    }
}

/// A rule's condition in words ("at least 10 in 5 min per IP").
pub fn describe(s: &RuleSettings) -> String {
    let filter = if s.filter.is_empty() {
        "any event".to_string()
    } else {
        format!("events matching {}", s.filter)
    };
    let group = match s.group_by.as_str() {
        "initiator" => " per initiator",
        "ip" => " per IP",
        _ => "",
    };
    match RuleKind::parse(&s.kind) {
        Some(RuleKind::Match) => format!("{filter}{group}"),
        Some(RuleKind::Threshold) => format!(
            "at least {} {filter} within {} min{group}",
            s.threshold, s.window_minutes
        ),
        Some(RuleKind::NewIp) => format!(
            "{filter} from an {} not seen for the initiator in {} days",
            if s.network == "network" {
                "IP network (/24, /48)"
            } else {
                "IP address"
            },
            s.lookback_days
        ),
        Some(RuleKind::OffHours) => {
            let days = WEEKDAYS
                .iter()
                .enumerate()
                .filter(|(i, _)| s.work_days & (1 << i) != 0)
                .map(|(_, d)| *d)
                .collect::<Vec<_>>()
                .join(" ");
            format!(
                "{filter} outside {}–{} on {days} ({}){group}",
                clock(s.work_start),
                clock(s.work_end),
                s.zone
            )
        }
        None => filter,
    }
}

/// Minutes after midnight as "09:00".
pub fn clock(minutes: i64) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// One alert in the inbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertInfo {
    pub id: i64,
    pub rule_id: Option<i64>,
    pub rule_name: String,
    pub severity: String,
    pub kind: String,
    pub group_key: String,
    pub events: i64,
    pub first_event_id: i64,
    pub last_event_id: i64,
    pub first_at: i64,
    pub last_at: i64,
    pub state: String,
    pub acknowledged_by: Option<String>,
    pub resolved_by: Option<String>,
    /// The Activity Log on exactly the events that fired it.
    pub link: String,
    /// Sending it to its rule's stream: `None` when it has none; "sent",
    /// or "waiting: <the last error>".
    pub delivery: Option<String>,
}

/// A rule as the form sends it: every field as typed (numbers and times
/// are checked on the server, with a message that names the field).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RuleForm {
    pub name: String,
    pub severity: String,
    pub kind: String,
    pub filter: String,
    pub threshold: String,
    pub window_minutes: String,
    pub group_by: String,
    pub lookback_days: String,
    pub network: String,
    pub work_days: String,
    pub work_start: String,
    pub work_end: String,
    pub zone: String,
    /// A stream's id, or empty: the inbox only.
    pub stream: String,
}

impl From<&RuleSettings> for RuleForm {
    /// A rule's settings as its edit form shows them.
    fn from(s: &RuleSettings) -> Self {
        RuleForm {
            name: s.name.clone(),
            severity: s.severity.clone(),
            kind: s.kind.clone(),
            filter: s.filter.clone(),
            threshold: s.threshold.to_string(),
            window_minutes: s.window_minutes.to_string(),
            group_by: s.group_by.clone(),
            lookback_days: s.lookback_days.to_string(),
            network: s.network.clone(),
            work_days: s.work_days.to_string(),
            work_start: clock(s.work_start),
            work_end: clock(s.work_end),
            zone: s.zone.clone(),
            stream: s.stream_id.map(|id| id.to_string()).unwrap_or_default(),
        }
    }
}

/// What an edit changed in a rule, part by part ("severity: warning →
/// critical"), for its audit line; `streams` are the names of the streams
/// it was and is sent to.
pub fn rule_changes(
    before: &RuleSettings,
    after: &RuleSettings,
    streams: (Option<&str>, Option<&str>),
) -> Vec<String> {
    let mut out = Vec::new();
    if before.name != after.name {
        out.push(format!("name: \"{}\" → \"{}\"", before.name, after.name));
    }
    if before.severity != after.severity {
        out.push(format!(
            "severity: {} → {}",
            before.severity, after.severity
        ));
    }
    let (was, is) = (describe(before), describe(after));
    if was != is {
        out.push(format!("fires on: {was} → {is}"));
    }
    if before.stream_id != after.stream_id {
        let show = |name: Option<&str>| {
            name.map_or("the inbox only".to_string(), |n| format!("stream \"{n}\""))
        };
        out.push(format!(
            "sent to: {} → {}",
            show(streams.0),
            show(streams.1)
        ));
    }
    out
}

/// A week of the log at a glance: the weekly digest (Monday 00:00 to the
/// next Monday, in a time zone).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Digest {
    /// The week: `[from, to)`, in µs.
    pub from: i64,
    pub to: i64,
    /// Events stored in the week, and how many of each action (most first).
    pub events: i64,
    pub by_action: Vec<(String, i64)>,
    /// The rules whose alerts began in the week.
    pub rules: Vec<DigestRule>,
    /// Initiators and the IPs (networks) new for them, as the new-IP rules
    /// found them (at most [`DIGEST_LISTED`]), and how many in all.
    pub new_ips: Vec<String>,
    pub new_ip_count: i64,
    /// DELETE and EXPORT events, and who made most of them.
    pub deletions: i64,
    pub deleted_by: Vec<(String, i64)>,
    pub exports: i64,
    pub exported_by: Vec<(String, i64)>,
    /// The time zone whose Mondays bound the week (an IANA name).
    pub zone: String,
    /// The Activity Log on the week (a filter can be appended: `&action=…`).
    pub activity_link: String,
}

/// Rows a digest lists at most in each part.
pub const DIGEST_LISTED: usize = 20;

/// A rule that fired during a digest's week.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestRule {
    pub name: String,
    pub severity: String,
    pub alerts: i64,
    pub events: i64,
}

/// An admin's digest subscription as Monitoring → Alerts → Weekly digest
/// shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestSubscription {
    pub stream_id: i64,
    pub stream_name: String,
    /// The newest week sent (its Monday, µs), and the last failure.
    pub sent_week: i64,
    /// The zone its weeks are in.
    pub zone: String,
    pub error: Option<String>,
}

/// Where the digest of the week beginning `from` in `zone` is shown.
pub fn digest_link(from: i64, zone: &str) -> String {
    format!("/alerts?digest={from}&zone={zone}")
}

/// Monitoring → Alerts → Weekly digest: a week's digest (Monday 00:00 to
/// Monday 00:00 in the viewer's time zone), the weeks before and after it
/// (none after the week now running), and the caller's own subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestPage {
    pub digest: Digest,
    /// The zone the weeks are in (an IANA name), and the week's days in
    /// it ("Week of 2027-03-22 to 2027-03-28 (Europe/Berlin)").
    pub zone: String,
    pub title: String,
    pub previous: i64,
    pub next: Option<i64>,
    /// Whether the caller may subscribe (an admin), and their subscription.
    pub can_subscribe: bool,
    pub subscription: Option<DigestSubscription>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn threshold() -> RuleSettings {
        RuleSettings {
            name: "Failed sign-ins".into(),
            severity: "warning".into(),
            kind: "threshold".into(),
            filter: "action=LOGIN_FAILED".into(),
            threshold: 10,
            window_minutes: 5,
            group_by: "ip".into(),
            lookback_days: 30,
            network: "address".into(),
            work_days: 31,
            work_start: 540,
            work_end: 1080,
            zone: "Europe/Berlin".into(),
            stream_id: None,
        }
    }

    #[test]
    fn an_edit_names_each_part_it_changed_and_nothing_else() {
        let before = threshold();
        assert!(rule_changes(&before, &before, (None, None)).is_empty());
        let mut after = before.clone();
        after.severity = "critical".into();
        after.threshold = 20;
        after.stream_id = Some(3);
        assert_eq!(
            rule_changes(&before, &after, (None, Some("SIEM"))),
            vec![
                "severity: warning → critical".to_string(),
                "fires on: at least 10 events matching action=LOGIN_FAILED within 5 min per IP \
                 → at least 20 events matching action=LOGIN_FAILED within 5 min per IP"
                    .to_string(),
                "sent to: the inbox only → stream \"SIEM\"".to_string(),
            ]
        );
    }

    #[test]
    fn a_rule_reads_back_into_its_form_as_it_was_typed() {
        let form = RuleForm::from(&threshold());
        assert_eq!(
            (
                form.threshold.as_str(),
                form.work_start.as_str(),
                form.work_end.as_str()
            ),
            ("10", "09:00", "18:00")
        );
        assert_eq!(form.stream, "");
    }
}
