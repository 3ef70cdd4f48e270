//! Tamper evidence and retention, as both builds see them: a verification's
//! report, checkpoints, and the retention policy with its legal hold.

use crate::errors::AppError;
use serde::{Deserialize, Serialize};

/// Most problems a report lists (the walk goes on and counts the rest).
pub const MAX_PROBLEMS: usize = 20;
/// Most deleted ranges a report lists (the rest are counted).
pub const MAX_DELETED_RANGES: usize = 100;
/// Longest retention period that can be set, in days (100 years).
pub const MAX_KEEP_DAYS: u32 = 36_500;

/// Where a verification starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyMode {
    /// From the start of the chain (or its retention cut).
    Full,
    /// From the newest checkpoint an earlier verification confirmed.
    Quick,
}

impl VerifyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Quick => "quick",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "full" => Some(Self::Full),
            "quick" => Some(Self::Quick),
            _ => None,
        }
    }
}

/// What is wrong with one chain entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The entry's fields no longer hash to its content hash.
    Content {
        /// The fields whose checksums differ ("id" when the row was moved).
        fields: Vec<String>,
        stored: String,
        computed: String,
    },
    /// The entry's chain hash is not the hash of the previous chain hash and
    /// its content hash: an entry before it was removed, inserted or altered
    /// together with its hashes.
    Link { stored: String, computed: String },
    /// Ids between the previous entry and this one are gone without tombstones.
    Missing { first: i64, last: i64 },
    /// The entry carries no hashes: it was not written by Auditdeck.
    Unchained,
    /// The chain ends before the head Auditdeck recorded, or at another hash.
    Head {
        recorded_id: i64,
        recorded_hash: String,
        found_id: i64,
        found_hash: String,
    },
    /// A checkpoint records another chain hash (or count) for its entry.
    Checkpoint {
        checkpoint: i64,
        recorded_hash: String,
        found_hash: String,
        recorded_count: i64,
        found_count: i64,
    },
}

/// One problem, at the entry it was found at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub id: i64,
    pub kind: ProblemKind,
}

impl Problem {
    /// One sentence for people.
    pub fn describe(&self) -> String {
        let id = self.id;
        match &self.kind {
            ProblemKind::Content { fields, .. } if fields.is_empty() => format!(
                "Event #{id}: its content does not match its hash (the changed field cannot be told)"
            ),
            ProblemKind::Content { fields, .. } if fields.iter().any(|f| f == "id") => format!(
                "Event #{id}: this row belongs at another position (it was moved or swapped); fields differing: {}",
                fields.join(", ")
            ),
            ProblemKind::Content { fields, .. } => format!(
                "Event #{id}: its content does not match its hash; changed: {}",
                fields.join(", ")
            ),
            ProblemKind::Link { .. } => format!(
                "Entry #{id}: its chain hash does not follow from the entry before it (an earlier entry was removed, inserted or rewritten with its hashes)"
            ),
            ProblemKind::Missing { first, last } if first == last => {
                format!("Event #{first} is missing and left no tombstone")
            }
            ProblemKind::Missing { first, last } => {
                format!("Events #{first} to #{last} are missing and left no tombstones")
            }
            ProblemKind::Unchained => {
                format!("Event #{id} has no hashes: it was not written by Auditdeck")
            }
            ProblemKind::Head {
                recorded_id,
                found_id,
                ..
            } if recorded_id != found_id => format!(
                "The chain ends at #{found_id}, but its recorded head is #{recorded_id}: the newest entries are missing"
            ),
            ProblemKind::Head { recorded_id, .. } => {
                format!("The chain's head #{recorded_id} has another hash than the one recorded")
            }
            ProblemKind::Checkpoint {
                checkpoint,
                recorded_hash,
                found_hash,
                recorded_count,
                found_count,
            } if recorded_hash == found_hash => format!(
                "Checkpoint {checkpoint} at #{id} counted {recorded_count} entries; the chain now has {found_count}"
            ),
            ProblemKind::Checkpoint { checkpoint, .. } => format!(
                "Checkpoint {checkpoint} at #{id} records another chain hash than the chain has now"
            ),
        }
    }
}

/// Why a run of entries is tombstones rather than events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeletedBy {
    /// A bulk deletion, recorded by this DELETE event.
    Deletion { event_id: i64 },
    /// A retention run (and the System event that records it, once written).
    Retention { run_id: i64, event_id: Option<i64> },
}

/// Consecutive tombstones removed by the same deletion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedRange {
    pub first: i64,
    pub last: i64,
    pub count: u64,
    pub by: DeletedBy,
}

impl DeletedRange {
    pub fn describe(&self) -> String {
        let ids = if self.first == self.last {
            format!("#{}", self.first)
        } else {
            format!("#{}–#{} ({} entries)", self.first, self.last, self.count)
        };
        match &self.by {
            DeletedBy::Deletion { event_id } => {
                format!("{ids} deleted; recorded by event #{event_id}")
            }
            DeletedBy::Retention {
                run_id,
                event_id: Some(event_id),
            } => format!("{ids} removed by retention run {run_id}; recorded by event #{event_id}"),
            DeletedBy::Retention { run_id, .. } => {
                format!("{ids} removed by retention run {run_id} (still running)")
            }
        }
    }
}

/// Where a walk started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalkStart {
    /// The entry before the first one walked (0: the chain's beginning).
    pub after_id: i64,
    pub hash: String,
    /// "the beginning", "the retention cut", "checkpoint 12".
    pub from: String,
}

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerificationReport {
    pub mode: VerifyMode,
    pub start: WalkStart,
    /// The last entry walked, and its chain hash.
    pub end_id: i64,
    pub end_hash: String,
    /// Entries in the chain up to `end_id` (those cut by retention included).
    pub end_count: i64,
    /// Entries walked (events and tombstones).
    pub checked: u64,
    pub events: u64,
    pub tombstones: u64,
    pub problems: Vec<Problem>,
    /// Problems beyond [`MAX_PROBLEMS`].
    pub more_problems: u64,
    pub deleted: Vec<DeletedRange>,
    /// Ranges beyond [`MAX_DELETED_RANGES`].
    pub more_deleted: u64,
    /// Checkpoints the walk confirmed.
    pub checkpoints_confirmed: u64,
}

impl VerificationReport {
    pub fn intact(&self) -> bool {
        self.problems.is_empty() && self.more_problems == 0
    }
}

/// A verification as the dashboard shows it: running, or finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerificationRow {
    pub id: i64,
    /// Microseconds since the epoch.
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub started_by: String,
    pub mode: VerifyMode,
    /// "running", "intact", "broken" or "failed".
    pub status: String,
    pub checked: u64,
    pub total: u64,
    pub report: Option<VerificationReport>,
}

impl VerificationRow {
    pub fn running(&self) -> bool {
        self.status == "running"
    }
}

/// A checkpoint: the chain's head at a moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub id: i64,
    pub created_at: i64,
    /// "periodic", "verification" or "retention".
    pub kind: String,
    pub last_id: i64,
    pub entry_count: i64,
    /// Hex.
    pub chain_hash: String,
    pub verified_at: Option<i64>,
}

/// How long events are kept: a default and optional rules per action.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RetentionPolicy {
    /// Days an event is kept; `None` keeps events forever.
    pub keep_days: Option<u32>,
    /// Per action type (exact action name), overriding the default.
    pub by_action: Vec<ActionRetention>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionRetention {
    pub action: String,
    pub keep_days: Option<u32>,
}

impl RetentionPolicy {
    /// Does this policy ever remove anything?
    pub fn removes_anything(&self) -> bool {
        self.keep_days.is_some() || self.by_action.iter().any(|r| r.keep_days.is_some())
    }

    pub fn validate(&self) -> Result<(), AppError> {
        let check = |days: Option<u32>, what: &str| match days {
            Some(0) => Err(AppError::bad_request(format!(
                "{what}: keep at least 1 day (or choose forever)"
            ))),
            Some(d) if d > MAX_KEEP_DAYS => Err(AppError::bad_request(format!(
                "{what}: at most {MAX_KEEP_DAYS} days (or choose forever)"
            ))),
            _ => Ok(()),
        };
        check(self.keep_days, "keep events")?;
        let mut seen = std::collections::HashSet::new();
        for rule in &self.by_action {
            let action = rule.action.trim();
            if action.is_empty() || action.len() > 100 {
                return Err(AppError::bad_request(
                    "action rule: the action must be 1 to 100 characters",
                ));
            }
            if !seen.insert(action) {
                return Err(AppError::bad_request(format!(
                    "action rule: {action} is listed twice"
                )));
            }
            check(rule.keep_days, &format!("action rule {action}"))?;
        }
        Ok(())
    }

    /// How the policy reads: `keep 90 days; LOGIN 30 days; DELETE forever`.
    pub fn describe(&self) -> String {
        fn days(d: Option<u32>) -> String {
            match d {
                Some(1) => "1 day".into(),
                Some(d) => format!("{d} days"),
                None => "forever".into(),
            }
        }
        let mut text = format!("keep {}", days(self.keep_days));
        for rule in &self.by_action {
            text.push_str(&format!("; {} {}", rule.action, days(rule.keep_days)));
        }
        text
    }

    /// Parses the Leptos.toml form of the per-action rules:
    /// `LOGIN=30, EXPORT=forever`.
    pub fn parse_by_action(text: &str) -> Result<Vec<ActionRetention>, String> {
        text.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                let (action, days) = item
                    .split_once('=')
                    .ok_or_else(|| format!("\"{item}\" is not ACTION=DAYS"))?;
                Ok(ActionRetention {
                    action: action.trim().to_string(),
                    keep_days: parse_days(days.trim()).ok_or_else(|| {
                        format!("\"{}\" is not a number of days or forever", days.trim())
                    })?,
                })
            })
            .collect()
    }
}

/// `30` → `Some(30)`; `forever` (or `0`) → `None`.
pub fn parse_days(text: &str) -> Option<Option<u32>> {
    match text {
        "forever" | "0" => Some(None),
        other => other.parse::<u32>().ok().map(Some),
    }
}

/// Retention as Settings shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionSettings {
    pub policy: RetentionPolicy,
    /// True when Settings set the policy; false when Leptos.toml's applies.
    pub from_settings: bool,
    pub legal_hold: bool,
    /// Who last changed the settings, and when.
    pub updated_by: Option<String>,
    pub updated_at: Option<i64>,
    pub last_run: Option<RetentionRun>,
}

/// One pass of the retention job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionRun {
    pub id: i64,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub removed: u64,
    /// "running", "done", "held" or "failed".
    pub status: String,
    pub event_id: Option<i64>,
}

/// A backup, made by `auditdeck backup` or the schedule, or one that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRow {
    pub id: i64,
    pub started_at: i64,
    pub finished_at: i64,
    /// "scheduled" or "command".
    pub kind: String,
    /// "verified" or "failed".
    pub status: String,
    /// Where it was written (a file for SQLite, a folder for PostgreSQL).
    pub path: String,
    /// The chain's head it covers (verified backups).
    pub head_id: Option<i64>,
    /// Hex.
    pub chain_hash: Option<String>,
    pub bytes: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
}

impl BackupRow {
    pub fn verified(&self) -> bool {
        self.status == "verified"
    }
}

/// What the top bar's badge shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntegrityStatus {
    /// The newest verification, running or finished.
    pub last: Option<VerificationRow>,
    /// The newest finished one (when `last` is still running).
    pub last_finished: Option<VerificationRow>,
    pub legal_hold: bool,
    /// Active streams that keep failing (counted for admins only).
    pub failing_streams: i64,
    /// The newest backup failed (shown to auditors and admins).
    pub backup_failed: bool,
    /// Alerts nobody has acknowledged or resolved (auditors and admins).
    pub open_alerts: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_action_rules_parse_and_describe() {
        let rules = RetentionPolicy::parse_by_action("LOGIN=30, EXPORT=forever,").unwrap();
        let policy = RetentionPolicy {
            keep_days: Some(90),
            by_action: rules,
        };
        assert_eq!(
            policy.describe(),
            "keep 90 days; LOGIN 30 days; EXPORT forever"
        );
        assert!(policy.validate().is_ok());
        assert!(RetentionPolicy::parse_by_action("LOGIN").is_err());
        assert!(RetentionPolicy::parse_by_action("LOGIN=soon").is_err());
    }

    #[test]
    fn zero_and_duplicate_rules_are_refused() {
        let zero = RetentionPolicy {
            keep_days: Some(0),
            by_action: vec![],
        };
        assert!(zero.validate().is_err());
        let twice = RetentionPolicy {
            keep_days: None,
            by_action: vec![
                ActionRetention {
                    action: "LOGIN".into(),
                    keep_days: Some(3),
                },
                ActionRetention {
                    action: "LOGIN".into(),
                    keep_days: None,
                },
            ],
        };
        assert!(twice.validate().unwrap_err().to_string().contains("twice"));
        assert!(!RetentionPolicy::default().removes_anything());
    }

    #[test]
    fn problems_read_as_sentences() {
        let moved = Problem {
            id: 7,
            kind: ProblemKind::Content {
                fields: vec!["id".into()],
                stored: "a".into(),
                computed: "b".into(),
            },
        };
        assert!(moved.describe().contains("moved or swapped"));
        let gone = Problem {
            id: 9,
            kind: ProblemKind::Missing { first: 8, last: 8 },
        };
        assert_eq!(gone.describe(), "Event #8 is missing and left no tombstone");
    }
}
