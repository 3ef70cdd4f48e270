//! Settings → Retention (admins): how long events are kept, per action type
//! if wanted, and the legal hold that suspends every deletion.

use crate::components::error_notice::ErrorNotice;
use crate::components::form_message::{FormError, FormOk};
use crate::components::integrity_badge::IntegrityVersion;
use crate::components::layout::Breadcrumb;
use crate::errors::AppError;
use crate::functions::integrity::{get_retention_settings, SaveRetention};
use crate::integrity::{parse_days, ActionRetention, RetentionPolicy, RetentionSettings};
use crate::models::format_utc;
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn RetentionPage() -> impl IntoView {
    let save = ServerAction::<SaveRetention>::new();
    let version = use_context::<IntegrityVersion>();
    Effect::new(move |_| {
        if save.version().get() > 0 {
            if let Some(v) = version {
                v.bump();
            }
        }
    });
    let settings = Resource::new(move || save.version().get(), |_| get_retention_settings());
    view! {
        <Title text="Retention" />
        <Breadcrumb trail=vec!["Settings", "Retention"] />
        <div class="page-header">
            <h1>"Retention"</h1>
            <p class="page-intro">
                "Events older than the policy allows are removed every hour, in small steps, each run recorded as a System event. The hash chain still verifies afterwards. A legal hold stops every deletion and retention until it is lifted."
            </p>
        </div>
        <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match settings.await {
                    Ok(s) => view! { <RetentionForm s save /> }.into_any(),
                    Err(error) => view! { <ErrorNotice error /> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// One per-action rule as typed.
#[derive(Clone, Debug, PartialEq)]
struct RuleDraft {
    key: u64,
    action: RwSignal<String>,
    days: RwSignal<String>,
}

fn days_text(days: Option<u32>) -> String {
    days.map(|d| d.to_string())
        .unwrap_or_else(|| "forever".into())
}

/// The policy the form describes, or the field that is wrong.
fn policy_of(
    keep_forever: bool,
    days: &str,
    rules: &[(String, String)],
) -> Result<RetentionPolicy, AppError> {
    let keep_days = if keep_forever {
        None
    } else {
        match days.trim().parse::<u32>() {
            Ok(d) => Some(d),
            Err(_) => {
                return Err(AppError::bad_request(format!(
                    "keep events: \"{}\" is not a number of days",
                    days.trim()
                )))
            }
        }
    };
    let by_action = rules
        .iter()
        .filter(|(a, _)| !a.trim().is_empty())
        .map(|(action, d)| {
            let keep_days = parse_days(d.trim()).ok_or_else(|| {
                AppError::bad_request(format!(
                    "action rule {}: \"{}\" is not a number of days or forever",
                    action.trim(),
                    d.trim()
                ))
            })?;
            Ok(ActionRetention {
                action: action.trim().to_string(),
                keep_days,
            })
        })
        .collect::<Result<Vec<_>, AppError>>()?;
    let policy = RetentionPolicy {
        keep_days,
        by_action,
    };
    policy.validate()?;
    Ok(policy)
}

#[component]
fn RetentionForm(s: RetentionSettings, save: ServerAction<SaveRetention>) -> impl IntoView {
    let forever = RwSignal::new(s.policy.keep_days.is_none());
    let days = RwSignal::new(s.policy.keep_days.unwrap_or(365).to_string());
    let next_key = StoredValue::new(0u64);
    let new_rule = move |action: String, days: String| {
        let key = next_key.get_value();
        next_key.set_value(key + 1);
        RuleDraft {
            key,
            action: RwSignal::new(action),
            days: RwSignal::new(days),
        }
    };
    let rules = RwSignal::new(
        s.policy
            .by_action
            .iter()
            .map(|r| new_rule(r.action.clone(), days_text(r.keep_days)))
            .collect::<Vec<_>>(),
    );
    let hold = RwSignal::new(s.legal_hold);
    let local_error = RwSignal::new(None::<AppError>);
    let submit = move |use_file: bool| {
        let policy = if use_file {
            None
        } else {
            let typed: Vec<(String, String)> = rules
                .get_untracked()
                .iter()
                .map(|r| (r.action.get_untracked(), r.days.get_untracked()))
                .collect();
            match policy_of(forever.get_untracked(), &days.get_untracked(), &typed) {
                Ok(p) => Some(p),
                Err(e) => {
                    local_error.set(Some(e));
                    return;
                }
            }
        };
        local_error.set(None);
        save.dispatch(SaveRetention {
            policy,
            legal_hold: hold.get_untracked(),
        });
    };
    let source = if s.from_settings {
        match (&s.updated_by, s.updated_at) {
            (Some(by), Some(at)) => format!("Set in Settings by {by}, {} UTC.", format_utc(at)),
            _ => "Set in Settings.".to_string(),
        }
    } else {
        "From Leptos.toml (retention-days, retention-by-action); saving here overrides it."
            .to_string()
    };
    let last_run = s.last_run.clone().map(|r| {
        format!(
            "Last run {} UTC: {}, {} {} removed{}.",
            format_utc(r.started_at),
            r.status,
            r.removed,
            if r.removed == 1 { "event" } else { "events" },
            r.event_id
                .map(|id| format!(" (event #{id})"))
                .unwrap_or_default()
        )
    });
    view! {
        <section class="card form-card retention-form">
            <h2>"Policy"</h2>
            <p class="muted" data-testid="policy-source">{source}</p>
            <p class="muted">{format!("In force: {}.", s.policy.describe())}</p>
            <fieldset class="keep">
                <legend>"Keep events"</legend>
                <label class="inline">
                    <input
                        type="radio"
                        name="keep"
                        prop:checked=move || forever.get()
                        on:change=move |_| forever.set(true)
                    />
                    "Forever"
                </label>
                <label class="inline">
                    <input
                        type="radio"
                        name="keep"
                        prop:checked=move || !forever.get()
                        on:change=move |_| forever.set(false)
                    />
                    "For"
                    <input
                        class="days"
                        type="number"
                        min="1"
                        max=crate::integrity::MAX_KEEP_DAYS
                        aria-label="Days to keep events"
                        prop:value=move || days.get()
                        disabled=move || forever.get()
                        on:input=move |ev| days.set(event_target_value(&ev))
                    />
                    "days"
                </label>
            </fieldset>
            <fieldset class="rules">
                <legend>"By action type (optional)"</legend>
                <p class="muted">"A rule overrides the period above for one action, e.g. LOGIN for 30 days, DELETE forever."</p>
                <ul class="rule-list">
                    <For each=move || rules.get() key=|r| r.key let:rule>
                        <li class="rule">
                            <input
                                aria-label="Action"
                                placeholder="ACTION"
                                prop:value=move || rule.action.get()
                                on:input=move |ev| rule.action.set(event_target_value(&ev))
                            />
                            <input
                                class="days"
                                aria-label="Days to keep, or forever"
                                placeholder="days or forever"
                                prop:value=move || rule.days.get()
                                on:input=move |ev| rule.days.set(event_target_value(&ev))
                            />
                            <button
                                type="button"
                                class="button small"
                                aria-label="Remove this rule"
                                on:click=move |_| rules.update(|list| list.retain(|r| r.key != rule.key))
                            >
                                "Remove"
                            </button>
                        </li>
                    </For>
                </ul>
                <button
                    type="button"
                    class="button small"
                    on:click=move |_| rules.update(|list| list.push(new_rule(String::new(), "30".into())))
                >
                    "Add a rule"
                </button>
            </fieldset>
            <fieldset class="hold">
                <legend>"Legal hold"</legend>
                <label class="inline">
                    <input
                        type="checkbox"
                        data-testid="legal-hold"
                        prop:checked=move || hold.get()
                        on:change=move |ev| hold.set(event_target_checked(&ev))
                    />
                    "Suspend all deletion: no bulk delete, no retention"
                </label>
            </fieldset>
            <div class="form-actions">
                <button class="button primary" disabled=move || save.pending().get() on:click=move |_| submit(false)>
                    "Save"
                </button>
                {s
                    .from_settings
                    .then(|| {
                        view! {
                            <button class="button" disabled=move || save.pending().get() on:click=move |_| submit(true)>
                                "Use Leptos.toml's policy"
                            </button>
                        }
                    })}
            </div>
            {move || local_error.get().map(|error| view! { <FormError error /> })}
            {move || {
                save.value()
                    .get()
                    .map(|r| match r {
                        Ok(_) => view! { <FormOk text="Saved." /> }.into_any(),
                        Err(error) => view! { <FormError error /> }.into_any(),
                    })
            }}
            {last_run.map(|text| view! { <p class="muted" data-testid="last-run">{text}</p> })}
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::policy_of;

    #[test]
    fn the_form_reads_into_a_policy() {
        let p = policy_of(
            false,
            "90",
            &[("LOGIN".into(), "30".into()), ("".into(), "x".into())],
        )
        .unwrap();
        assert_eq!(p.describe(), "keep 90 days; LOGIN 30 days");
        assert!(policy_of(false, "ninety", &[])
            .unwrap_err()
            .to_string()
            .contains("ninety"));
        assert!(policy_of(true, "", &[("DELETE".into(), "soon".into())]).is_err());
        assert_eq!(policy_of(true, "", &[]).unwrap().keep_days, None);
    }
}
