//! Monitoring → Integrity: the hash chain's state, verifications (admins
//! start them and watch their progress), what the last one found, and the
//! checkpoints (auditors and admins download them).

use crate::components::error_notice::ErrorNotice;
use crate::components::form_message::FormError;
use crate::components::integrity_badge::IntegrityVersion;
use crate::components::layout::Breadcrumb;
use crate::errors::AppError;
use crate::functions::integrity::{get_integrity_overview, IntegrityOverview, StartVerification};
use crate::integrity::{
    BackupRow, IntegrityStatus, VerificationReport, VerificationRow, VerifyMode,
};
use crate::models::{format_bytes, format_count, format_utc};
use leptos::prelude::*;
use leptos_meta::Title;

/// How often a running verification's progress is asked for.
#[cfg(feature = "hydrate")]
const POLL_MS: u64 = 500;

#[component]
pub fn IntegrityPage() -> impl IntoView {
    let version = expect_context::<IntegrityVersion>();
    let status = expect_context::<Resource<Result<IntegrityStatus, AppError>>>();
    let start = ServerAction::<StartVerification>::new();
    Effect::new(move |_| {
        if start.version().get() > 0 {
            version.bump();
        }
    });
    // The newest verification as the status last showed it: the page loads
    // again whenever it changes (one started, one finished).
    let newest = Memo::new(move |_| {
        status
            .get()
            .and_then(Result::ok)
            .and_then(|s| s.last)
            .map(|v| (v.id, v.status))
    });
    // While one is running, the status is asked for again every POLL_MS.
    let running = Signal::derive(move || newest.get().is_some_and(|(_, s)| s == "running"));
    poll(running, version);
    let overview = Resource::new(move || newest.get(), |_| get_integrity_overview());
    view! {
        <Title text="Integrity" />
        <Breadcrumb trail=vec!["Monitoring", "Integrity"] />
        <div class="page-header">
            <h1>"Integrity"</h1>
            <p class="page-intro">
                "Every event is chained to the one before it by SHA-256 hashes. A verification walks the chain and proves that no entry was altered, inserted or removed except by a recorded deletion or retention run."
            </p>
        </div>
        {move || start.value().get().and_then(Result::err).map(|e| view! { <FormError error=e /> })}
        <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match overview.await {
                    Ok(o) => view! { <Overview o start status /> }.into_any(),
                    Err(error) => view! { <ErrorNotice error /> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[cfg(feature = "hydrate")]
fn poll(running: Signal<bool>, version: IntegrityVersion) {
    use leptos_use_interval_fn::use_interval_fn;
    use_interval_fn(
        move || {
            if running.try_get_untracked().unwrap_or(false) {
                version.bump();
            }
        },
        POLL_MS,
    );
}

#[cfg(not(feature = "hydrate"))]
fn poll(_: Signal<bool>, _: IntegrityVersion) {}

#[component]
fn Overview(
    o: IntegrityOverview,
    start: ServerAction<StartVerification>,
    status: Resource<Result<IntegrityStatus, AppError>>,
) -> impl IntoView {
    let last = o.recent.iter().find(|v| !v.running()).cloned();
    let can_verify = o.can_verify;
    view! {
        <section class="card integrity-state">
            <h2>"The chain"</h2>
            <dl class="facts">
                <dt>"Head"</dt>
                <dd>
                    {if o.head_id == 0 { "empty".to_string() } else { format!("#{}", o.head_id) }}
                    " " <code class="hash" title=o.head_hash.clone()>{short(&o.head_hash)}</code>
                </dd>
                <dt>"Retention cut"</dt>
                <dd>
                    {if o.cut_id == 0 {
                        "none: the chain is whole from its first entry".to_string()
                    } else {
                        format!("entries up to #{} were removed by retention", o.cut_id)
                    }}
                </dd>
                <dt>"Retention policy"</dt>
                <dd>{o.policy.clone()}</dd>
                <dt>"Legal hold"</dt>
                <dd>{if o.legal_hold { "on: nothing can be deleted" } else { "off" }}</dd>
            </dl>
        </section>
        <Backups backups=o.backups next_at=o.next_backup_at />
        <section class="card verify-card">
            <h2>"Verification"</h2>
            <Progress status />
            {can_verify
                .then(|| {
                    view! {
                        <div class="verify-actions">
                            <button
                                class="button primary"
                                data-testid="verify-full"
                                disabled=move || start.pending().get()
                                on:click=move |_| {
                                    start.dispatch(StartVerification { mode: VerifyMode::Full });
                                }
                            >
                                "Verify the whole chain"
                            </button>
                            <button
                                class="button"
                                disabled=move || start.pending().get()
                                title="Start from the newest checkpoint an earlier verification confirmed"
                                on:click=move |_| {
                                    start.dispatch(StartVerification { mode: VerifyMode::Quick });
                                }
                            >
                                "Quick check since the last confirmed checkpoint"
                            </button>
                        </div>
                    }
                })}
            {match last {
                Some(v) => view! { <LastResult v /> }.into_any(),
                None => view! { <p class="empty">"No verification has finished yet."</p> }.into_any(),
            }}
        </section>
        <section class="card table-card">
            <div class="card-head">
                <h2>"Checkpoints"</h2>
                <p class="muted">
                    {checkpoint_count(o.checkpoint_total, o.checkpoints.len())}
                    " Keep the file somewhere else: " <code>"auditdeck verify --checkpoints FILE"</code>
                    " proves the chain still passes through each one."
                </p>
                {o
                    .can_export
                    .then(|| {
                        view! {
                            <a class="button" href="/api/integrity/checkpoints" download="auditdeck-checkpoints.jsonl" rel="external">
                                "Download checkpoints (JSON Lines)"
                            </a>
                        }
                    })}
            </div>
            <div class="table-scroll">
                <table class="data-table checkpoints">
                    <thead>
                        <tr>
                            <th scope="col">"#"</th>
                            <th scope="col">"Written (UTC)"</th>
                            <th scope="col">"Kind"</th>
                            <th scope="col">"Up to entry"</th>
                            <th scope="col">"Entries"</th>
                            <th scope="col">"Chain hash"</th>
                            <th scope="col">"Confirmed"</th>
                        </tr>
                    </thead>
                    <tbody>
                        {o
                            .checkpoints
                            .into_iter()
                            .map(|c| {
                                view! {
                                    <tr>
                                        <td>{c.id}</td>
                                        <td class="nowrap">{format_utc(c.created_at)}</td>
                                        <td>{c.kind.clone()}</td>
                                        <td>{format!("#{}", c.last_id)}</td>
                                        <td>{format_count(u64::try_from(c.entry_count).unwrap_or(0))}</td>
                                        <td>
                                            <code class="hash" title=c.chain_hash.clone()>{short(&c.chain_hash)}</code>
                                        </td>
                                        <td class="nowrap">
                                            {c.verified_at.map(format_utc).unwrap_or_else(|| "not yet".into())}
                                        </td>
                                    </tr>
                                }
                            })
                            .collect_view()}
                    </tbody>
                </table>
            </div>
        </section>
        <section class="card table-card">
            <h2 class="card-title">"Recent verifications"</h2>
            <div class="table-scroll">
                <table class="data-table verifications">
                    <thead>
                        <tr>
                            <th scope="col">"Started (UTC)"</th>
                            <th scope="col">"By"</th>
                            <th scope="col">"Mode"</th>
                            <th scope="col">"Result"</th>
                            <th scope="col">"Entries checked"</th>
                        </tr>
                    </thead>
                    <tbody>
                        {o
                            .recent
                            .into_iter()
                            .map(|v| {
                                view! {
                                    <tr>
                                        <td class="nowrap">{format_utc(v.started_at)}</td>
                                        <td>{v.started_by.clone()}</td>
                                        <td>{v.mode.as_str()}</td>
                                        <td>
                                            <span class=format!("badge verify-{}", v.status)>{v.status.clone()}</span>
                                        </td>
                                        <td>{format_count(v.checked)}</td>
                                    </tr>
                                }
                            })
                            .collect_view()}
                    </tbody>
                </table>
            </div>
        </section>
    }
}

/// The last backup (when, the head it covers, verified or why it failed),
/// the next scheduled one, and the few before.
#[component]
fn Backups(backups: Vec<BackupRow>, next_at: Option<i64>) -> impl IntoView {
    let last = backups.first().cloned();
    let next = match next_at {
        Some(at) => format!("{} UTC", format_utc(at)),
        None => {
            "none scheduled: set backup-folder in Leptos.toml, or run auditdeck backup DEST".into()
        }
    };
    let older: Vec<BackupRow> = backups.into_iter().skip(1).collect();
    view! {
        <section class="card backups-card" data-testid="backups">
            <h2>"Backups"</h2>
            <dl class="facts">
                <dt>"Last backup"</dt>
                <dd data-testid="last-backup">
                    {match last {
                        Some(b) => view! { <BackupLine b /> }.into_any(),
                        None => view! { <span class="muted">"none yet"</span> }.into_any(),
                    }}
                </dd>
                <dt>"Next scheduled"</dt>
                <dd data-testid="next-backup">{next}</dd>
            </dl>
            {(!older.is_empty())
                .then(|| {
                    view! {
                        <details class="older-backups">
                            <summary>"Earlier backups"</summary>
                            <ul>
                                {older.into_iter().map(|b| view! { <li><BackupLine b /></li> }).collect_view()}
                            </ul>
                        </details>
                    }
                })}
        </section>
    }
}

#[component]
fn BackupLine(b: BackupRow) -> impl IntoView {
    let when = format!("{} UTC", format_utc(b.finished_at));
    let file = b.path.rsplit('/').next().unwrap_or_default().to_string();
    if b.verified() {
        let hash = b.chain_hash.clone().unwrap_or_default();
        view! {
            <span class="badge backup-verified">"verified"</span>
            " " {when} " · up to " {format!("#{}", b.head_id.unwrap_or(0))} " "
            <code class="hash" title=hash.clone()>{short(&hash)}</code>
            " · " {format_bytes(u64::try_from(b.bytes.unwrap_or(0)).unwrap_or(0))} " · "
            <span class="muted" title=b.path.clone()>{file}</span>
            " (" {b.kind.clone()} ")"
        }
        .into_any()
    } else {
        view! {
            <span class="badge backup-failed">"failed"</span>
            " " {when} " · " <span class="backup-error">{b.error.clone().unwrap_or_default()}</span>
            " (" {b.kind.clone()} ")"
        }
        .into_any()
    }
}

/// "3 checkpoints." or "120 checkpoints; the newest 20 are shown."
fn checkpoint_count(total: u64, shown: usize) -> String {
    let noun = if total == 1 {
        "checkpoint"
    } else {
        "checkpoints"
    };
    if total > shown as u64 {
        format!(
            "{} {noun}; the newest {shown} are shown.",
            format_count(total)
        )
    } else {
        format!("{} {noun}.", format_count(total))
    }
}

/// The first and last 8 hex digits of a hash.
fn short(hash: &str) -> String {
    match (hash.get(..8), hash.get(hash.len().saturating_sub(8)..)) {
        (Some(a), Some(b)) if hash.len() > 16 => format!("{a}…{b}"),
        _ => hash.to_string(),
    }
}

/// A running verification's progress, from the polled status.
#[component]
fn Progress(status: Resource<Result<IntegrityStatus, AppError>>) -> impl IntoView {
    move || {
        status
            .try_get()
            .flatten()
            .and_then(Result::ok)
            .and_then(|s| s.last)
            .filter(VerificationRow::running)
            .map(|v| {
                view! {
                    <div class="verify-progress" role="status" data-testid="verify-progress">
                        <progress max=v.total.max(1) value=v.checked></progress>
                        <span>
                            {format!(
                                "Verifying ({}): {} of {} entries checked",
                                v.mode.as_str(),
                                format_count(v.checked),
                                format_count(v.total)
                            )}
                        </span>
                    </div>
                }
            })
    }
}

/// What the newest finished verification found.
#[component]
fn LastResult(v: VerificationRow) -> impl IntoView {
    let when = format_utc(v.finished_at.unwrap_or(v.started_at));
    let Some(report) = v.report.clone() else {
        return view! {
            <div class="verify-result verify-failed" data-testid="verify-result">
                <p>{format!("The verification of {when} UTC could not finish; the details are in the server log.")}</p>
            </div>
        }
        .into_any();
    };
    view! { <ReportView report when by=v.started_by /> }.into_any()
}

#[component]
fn ReportView(report: VerificationReport, when: String, by: String) -> impl IntoView {
    let intact = report.intact();
    let headline = if intact {
        format!(
            "Intact: {} entries checked ({} events, {} tombstones) from {} to #{}.",
            format_count(report.checked),
            format_count(report.events),
            format_count(report.tombstones),
            report.start.from,
            report.end_id
        )
    } else {
        format!(
            "Broken: {} {} found in {} entries.",
            report.problems.len() as u64 + report.more_problems,
            if report.problems.len() as u64 + report.more_problems == 1 {
                "problem"
            } else {
                "problems"
            },
            format_count(report.checked)
        )
    };
    let more_problems = report.more_problems;
    let more_deleted = report.more_deleted;
    view! {
        <div
            class=if intact { "verify-result verify-intact" } else { "verify-result verify-broken" }
            data-testid="verify-result"
        >
            <p class="verify-headline">
                <strong>{headline}</strong>
                <span class="muted">
                    {format!(
                        " {} walk from {}, started by {by}; finished {when} UTC.",
                        if report.mode == VerifyMode::Full { "Full" } else { "Quick" },
                        report.start.from,
                    )}
                </span>
            </p>
            {(!report.problems.is_empty())
                .then(|| {
                    view! {
                        <h3>"Problems"</h3>
                        <ul class="problems" data-testid="problems">
                            {report
                                .problems
                                .iter()
                                .map(|p| {
                                    view! {
                                        <li data-entry=p.id>
                                            {p.describe()}
                                            {problem_hashes(&p.kind)}
                                        </li>
                                    }
                                })
                                .collect_view()}
                        </ul>
                        {(more_problems > 0).then(|| view! { <p class="muted">{format!("… and {more_problems} more")}</p> })}
                    }
                })}
            {(!report.deleted.is_empty())
                .then(|| {
                    view! {
                        <h3>"Deleted entries (explained by their records)"</h3>
                        <ul class="deleted-ranges">
                            {report.deleted.iter().map(|d| view! { <li>{d.describe()}</li> }).collect_view()}
                        </ul>
                        {(more_deleted > 0).then(|| view! { <p class="muted">{format!("… and {more_deleted} more ranges")}</p> })}
                    }
                })}
            <p class="muted">
                {format!("Checkpoints confirmed on the way: {}. Chain hash at #{}: ", report.checkpoints_confirmed, report.end_id)}
                <code class="hash" title=report.end_hash.clone()>{short(&report.end_hash)}</code>
            </p>
        </div>
    }
}

fn problem_hashes(kind: &crate::integrity::ProblemKind) -> Option<impl IntoView> {
    use crate::integrity::ProblemKind;
    let (a, b) = match kind {
        ProblemKind::Content {
            stored, computed, ..
        }
        | ProblemKind::Link { stored, computed } => (stored.clone(), computed.clone()),
        _ => return None,
    };
    Some(view! {
        <span class="muted problem-hashes">
            " (stored " <code class="hash" title=a.clone()>{short(&a)}</code> ", computed "
            <code class="hash" title=b.clone()>{short(&b)}</code> ")"
        </span>
    })
}
