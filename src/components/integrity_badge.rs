//! The top bar's integrity badge: the last verification's result and time,
//! or a running one's progress. It links to the Integrity page.

use crate::errors::AppError;
use crate::functions::integrity::get_integrity_status;
use crate::integrity::{IntegrityStatus, VerificationRow};
use crate::models::format_utc;
use leptos::prelude::*;

/// Bumped whenever the integrity status may have changed (a verification
/// started or moved on): the badge loads again.
#[derive(Clone, Copy)]
pub struct IntegrityVersion(pub RwSignal<u64>);

impl IntegrityVersion {
    pub fn bump(self) {
        self.0.update(|v| *v += 1);
    }
}

/// Provides the version signal and the status resource for the frame.
pub fn provide_integrity() -> Resource<Result<IntegrityStatus, AppError>> {
    let version = IntegrityVersion(RwSignal::new(0));
    provide_context(version);
    let status = Resource::new(move || version.0.get(), |_| get_integrity_status());
    // The top bar's warnings (open alerts, failing streams, a failed
    // backup) come up within half a minute on any page.
    crate::components::poll::while_visible(30_000, move || version.bump());
    provide_context(status);
    status
}

/// (class, text, title) of the badge.
pub fn badge_parts(status: &IntegrityStatus) -> (&'static str, String, String) {
    let finished = |v: &VerificationRow| {
        let at = format_utc(v.finished_at.unwrap_or(v.started_at));
        let at = at.get(..16).unwrap_or(&at).to_string();
        match v.status.as_str() {
            "intact" => (
                "integrity-intact",
                format!("Chain intact · {at} UTC"),
                format!(
                    "Last verification ({}) by {}: intact",
                    v.mode.as_str(),
                    v.started_by
                ),
            ),
            "broken" => (
                "integrity-broken",
                format!("Chain broken · {at} UTC"),
                format!(
                    "Last verification ({}) by {}: problems found",
                    v.mode.as_str(),
                    v.started_by
                ),
            ),
            _ => (
                "integrity-unknown",
                format!("Verification failed · {at} UTC"),
                "The last verification could not finish".to_string(),
            ),
        }
    };
    match (&status.last, &status.last_finished) {
        (Some(v), _) if v.running() => {
            let pct = (v.checked * 100).checked_div(v.total).unwrap_or(0).min(100);
            (
                "integrity-running",
                format!("Verifying… {pct}%"),
                format!("{} entries of {} checked", v.checked, v.total),
            )
        }
        (Some(v), _) => finished(v),
        (None, _) => (
            "integrity-unknown",
            "Chain not verified yet".to_string(),
            "No verification has run yet".to_string(),
        ),
    }
}

#[component]
pub fn IntegrityBadge(status: Resource<Result<IntegrityStatus, AppError>>) -> impl IntoView {
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                status
                    .await
                    .ok()
                    .map(|s| {
                        let (class, text, title) = badge_parts(&s);
                        view! {
                            <a
                                class=format!("integrity-badge {class}")
                                href="/integrity"
                                title=title
                                data-testid="integrity-badge"
                            >
                                <span class="integrity-dot" aria-hidden="true"></span>
                                {text}
                            </a>
                            {(s.failing_streams > 0)
                                .then(|| {
                                    let n = s.failing_streams;
                                    let words = if n == 1 { "stream failing" } else { "streams failing" };
                                    view! {
                                        <WarningBadge
                                            class="stream-failing"
                                            href="/settings/streams"
                                            title="Events wait in the log until the destination takes them"
                                            testid="streams-badge"
                                            count=Some(n)
                                            words
                                        />
                                    }
                                })}
                            {(s.open_alerts > 0)
                                .then(|| {
                                    let n = s.open_alerts;
                                    let words = if n == 1 { "open alert" } else { "open alerts" };
                                    view! {
                                        <WarningBadge
                                            class="alerts-open"
                                            href="/alerts"
                                            title="Alerts nobody has acknowledged yet"
                                            testid="alerts-badge"
                                            count=Some(n)
                                            words
                                        />
                                    }
                                })}
                            {s
                                .backup_failed
                                .then(|| {
                                    view! {
                                        <WarningBadge
                                            class="backup-failing"
                                            href="/integrity"
                                            title="The last backup failed: the Integrity page says why"
                                            testid="backup-badge"
                                            count=None
                                            words="Backup failed"
                                        />
                                    }
                                })}
                            {s
                                .legal_hold
                                .then(|| {
                                    view! {
                                        <span class="badge legal-hold" title="No event can be deleted while the hold is on">
                                            "Legal hold"
                                        </span>
                                    }
                                })}
                        }
                    })
            })}
        </Transition>
    }
}

/// A warning in the top bar that links to where it is explained: a sign,
/// an optional count, and words that phones leave to screen readers.
#[component]
fn WarningBadge(
    class: &'static str,
    href: &'static str,
    title: &'static str,
    testid: &'static str,
    count: Option<i64>,
    words: &'static str,
) -> impl IntoView {
    let words = match count {
        Some(_) => format!(" {words}"),
        None => words.to_string(),
    };
    view! {
        <a class=format!("badge {class}") href=href title=title data-testid=testid>
            <span aria-hidden="true">"⚠ "</span>
            {count}
            <span class="badge-words">{words}</span>
        </a>
    }
}
