//! Streams as the dashboard and the server both see them: the kinds of
//! destination, a stream's health, and what Settings → Streams shows of it.

use serde::{Deserialize, Serialize};

/// Where a stream delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamKind {
    /// JSON batches, signed as the Standard Webhooks specification says.
    Webhook,
    /// A chat incoming webhook (`{"text": …}`, Slack's shape).
    Slack,
    /// Splunk's HTTP Event Collector.
    SplunkHec,
    /// RFC 5424 syslog over TCP (or TLS), octet-counting framing (RFC 6587).
    Syslog,
}

impl StreamKind {
    pub const ALL: [StreamKind; 4] = [Self::Webhook, Self::Slack, Self::SplunkHec, Self::Syslog];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Slack => "slack",
            Self::SplunkHec => "splunk_hec",
            Self::Syslog => "syslog",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == value)
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Webhook => "Signed webhook",
            Self::Slack => "Slack-compatible webhook",
            Self::SplunkHec => "Splunk HEC",
            Self::Syslog => "Syslog (TCP or TLS)",
        }
    }

    /// What its address looks like.
    pub fn url_hint(self) -> &'static str {
        match self {
            Self::Webhook => "https://siem.example/auditdeck",
            Self::Slack => "https://chat.example/hooks/T000/B000/XXXX",
            Self::SplunkHec => "https://splunk.example:8088/services/collector/event",
            Self::Syslog => "tls://syslog.example:6514 or tcp://syslog.example:514",
        }
    }

    /// Whether Auditdeck makes a signing secret for it (shown once).
    pub fn signs(self) -> bool {
        matches!(self, Self::Webhook | Self::Slack)
    }

    /// Whether it needs a token from the destination (Splunk's HEC token).
    pub fn needs_token(self) -> bool {
        self == Self::SplunkHec
    }
}

/// Failed attempts in a row after which a stream counts as failing (it is
/// still retried, on the backoff's slower schedule, and never skipped).
pub const FAILING_AFTER: i64 = 3;

/// How a stream is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Health {
    Healthy,
    /// Retrying after a failure; not yet failing.
    Retrying,
    Failing,
    Paused,
}

impl Health {
    pub fn of(state: &str, failures: i64) -> Self {
        if state == "paused" {
            Self::Paused
        } else if failures >= FAILING_AFTER {
            Self::Failing
        } else if failures > 0 {
            Self::Retrying
        } else {
            Self::Healthy
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Retrying => "retrying",
            Self::Failing => "failing",
            Self::Paused => "paused",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Healthy => "Healthy",
            Self::Retrying => "Retrying",
            Self::Failing => "Failing",
            Self::Paused => "Paused",
        }
    }
}

/// One stream on Settings → Streams: its settings (never its secret) and
/// its health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamInfo {
    pub id: i64,
    pub name: String,
    pub kind: StreamKind,
    pub url: String,
    /// The Activity Log's filters, as its query string.
    pub filter: String,
    /// Custom headers, one `Name: value` a line (values of
    /// `Authorization` hidden).
    pub headers: String,
    pub health: Health,
    /// The last event id the destination acknowledged.
    pub cursor_id: i64,
    /// Events in the log after the cursor (the filter decides which of
    /// them go), at most [`BEHIND_COUNTED`].
    pub behind: u64,
    /// When the oldest event after the cursor was stored.
    pub oldest_undelivered_at: Option<i64>,
    pub delivered_today: i64,
    pub delivered: i64,
    pub failures: i64,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    pub last_status: Option<i64>,
    /// When the next attempt is due, while retrying.
    pub next_attempt_at: Option<i64>,
    /// Until when the previous signing secret still signs (a rotation).
    pub previous_secret_until: Option<i64>,
    pub created_at: i64,
    /// The server's time when this was read (the lag's age is to it).
    pub as_of: i64,
}

/// The lag is counted up to this many events (then shown as "100,000+").
pub const BEHIND_COUNTED: u64 = 100_000;

impl StreamInfo {
    /// "1,234 events", or "100,000+ events" when counting stopped there.
    pub fn behind_label(&self) -> String {
        let n = crate::models::format_count(self.behind);
        let plus = if self.behind >= BEHIND_COUNTED {
            "+"
        } else {
            ""
        };
        let noun = if self.behind == 1 { "event" } else { "events" };
        format!("{n}{plus} {noun}")
    }

    /// How long the oldest undelivered event has waited.
    pub fn lag_age(&self) -> Option<String> {
        self.oldest_undelivered_at
            .map(|at| format_age(self.as_of - at))
    }
}

/// `0.4 s`, `12 s`, `4 min 10 s`, `3 h 5 min`, `2 d 3 h`: how long ago.
pub fn format_age(micros: i64) -> String {
    let micros = micros.max(0);
    if micros < 10_000_000 {
        return format!("{:.1} s", micros as f64 / 1e6);
    }
    let s = micros / 1_000_000;
    match s {
        0..60 => format!("{s} s"),
        60..3_600 => format!("{} min {} s", s / 60, s % 60),
        3_600..86_400 => format!("{} h {} min", s / 3_600, s % 3_600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3_600),
    }
}

/// One attempt in a stream's delivery log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamAttempt {
    pub id: i64,
    pub at: i64,
    /// `delivered`, `failed`, `test` (a test event that arrived),
    /// `test_failed`, or `gap` (events deleted before delivery).
    pub outcome: String,
    pub events: i64,
    pub first_id: Option<i64>,
    pub last_id: Option<i64>,
    pub status: Option<i64>,
    pub error: Option<String>,
    pub duration_us: i64,
}

/// A stream as an admin adds it (the form's fields, `stream[name]` …).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NewStream {
    pub name: String,
    /// A [`StreamKind`], as its `as_str`.
    pub kind: String,
    pub url: String,
    /// The Activity Log's filters, as its query string.
    #[serde(default)]
    pub filter: String,
    /// Custom headers, one `Name: value` a line.
    #[serde(default)]
    pub headers: String,
    /// Splunk's HEC token.
    #[serde(default)]
    pub token: String,
    /// `now`, `id` (from `start_id`) or `time` (from `start_at`, UTC).
    pub start: String,
    #[serde(default)]
    pub start_id: Option<String>,
    #[serde(default)]
    pub start_at: Option<String>,
}

/// A stream just created: its id and, for a signing kind, the secret,
/// shown this once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedStream {
    pub id: i64,
    pub secret: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_read_back_and_health_follows_failures() {
        for kind in StreamKind::ALL {
            assert_eq!(StreamKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(StreamKind::parse("kafka"), None);
        assert_eq!(Health::of("active", 0), Health::Healthy);
        assert_eq!(Health::of("active", FAILING_AFTER - 1), Health::Retrying);
        assert_eq!(Health::of("active", FAILING_AFTER), Health::Failing);
        assert_eq!(Health::of("paused", 9), Health::Paused);
    }

    #[test]
    fn ages_read_in_the_unit_that_fits() {
        let s = 1_000_000;
        assert_eq!(format_age(400_000), "0.4 s");
        assert_eq!(format_age(-5), "0.0 s");
        assert_eq!(format_age(59 * s), "59 s");
        assert_eq!(format_age(250 * s), "4 min 10 s");
        assert_eq!(format_age(3 * 3_600 * s + 300 * s), "3 h 5 min");
        assert_eq!(format_age(2 * 86_400 * s + 3 * 3_600 * s), "2 d 3 h");
    }
}
