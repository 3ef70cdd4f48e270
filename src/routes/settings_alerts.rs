//! Settings → Alerts (admins): the rules that watch the log.

use crate::alerts::{RuleInfo, RuleKind, GROUPS, SEVERITIES};
use crate::components::error_notice::ErrorNotice;
use crate::components::form_message::FormError;
use crate::components::layout::Breadcrumb;
use crate::errors::AppError;
use crate::functions::alerts::{
    alert_channels, list_alert_rules, CreateAlertRule, DeleteAlertRule, SetAlertRulePaused,
};
use crate::models::{Role, UserInfo};
use leptos::form::ActionForm;
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn AlertRulesPage() -> impl IntoView {
    let me = expect_context::<Resource<Result<UserInfo, AppError>>>();
    let create = ServerAction::<CreateAlertRule>::new();
    let paused = ServerAction::<SetAlertRulePaused>::new();
    let delete = ServerAction::<DeleteAlertRule>::new();
    let rules = Resource::new(
        move || {
            (
                create.version().get(),
                paused.version().get(),
                delete.version().get(),
            )
        },
        |_| list_alert_rules(),
    );
    view! {
        <Title text="Alert rules" />
        <Breadcrumb trail=vec!["Settings", "Alerts"] />
        <div class="page-header">
            <h1>"Alert rules"</h1>
            <p class="page-intro">
                "Rules watch events as they are stored and put alerts in "
                <a href="/alerts">"Monitoring → Alerts"</a>
                ". Repeated firings of a rule for one group within its window make one alert with a count."
            </p>
        </div>
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                // Only admins get the form; anyone else gets the list's refusal.
                me.await
                    .is_ok_and(|u| u.role.allows(Role::Admin))
                    .then(|| view! { <NewRuleForm create /> })
            })}
        </Transition>
        {move || paused.value().get().and_then(Result::err).map(|error| view! { <FormError error /> })}
        {move || delete.value().get().and_then(Result::err).map(|error| view! { <FormError error /> })}
        <section class="card table-card">
            <Transition fallback=|| view! { <p class="loading">"Loading rules…"</p> }>
                {move || Suspend::new(async move {
                    match rules.await {
                        Ok(rows) => view! { <RulesTable rows paused delete /> }.into_any(),
                        Err(error) => view! { <ErrorNotice error /> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn NewRuleForm(create: ServerAction<CreateAlertRule>) -> impl IntoView {
    let (kind, set_kind) = signal(RuleKind::Match);
    let shows = move |k: RuleKind| move || kind.get() != k;
    view! {
        <section class="card form-card">
            <h2>"Add a rule"</h2>
            <ActionForm action=create attr:class="settings-form rule-form">
                <label>
                    "Name" <input name="rule[name]" required maxlength="100" placeholder="e.g. Failed sign-ins" />
                </label>
                <label>
                    "Kind"
                    <select
                        name="rule[kind]"
                        on:change=move |ev| {
                            if let Some(k) = RuleKind::parse(&event_target_value(&ev)) {
                                set_kind.set(k);
                            }
                        }
                    >
                        {RuleKind::ALL
                            .into_iter()
                            .map(|k| view! { <option value=k.as_str()>{k.label()}</option> })
                            .collect_view()}
                    </select>
                </label>
                <label>
                    "Severity"
                    <select name="rule[severity]">
                        {SEVERITIES
                            .into_iter()
                            .map(|s| view! { <option value=s selected=s == "warning">{s}</option> })
                            .collect_view()}
                    </select>
                </label>
                <label class="wide">
                    "Filter (the Activity Log's, as in its address)"
                    <input name="rule[filter]" placeholder="e.g. action=LOGIN_FAILED or action=DELETE&table=users" />
                </label>
                <label hidden=shows(RuleKind::Threshold)>
                    "At least (events)" <input name="rule[threshold]" inputmode="numeric" value="10" />
                </label>
                <label>
                    "Window (minutes)" <input name="rule[window_minutes]" inputmode="numeric" value="60" />
                </label>
                <label hidden=move || kind.get() == RuleKind::NewIp>
                    "Group"
                    <select name="rule[group_by]">
                        {GROUPS
                            .into_iter()
                            .map(|(value, label)| view! { <option value=value>{label}</option> })
                            .collect_view()}
                    </select>
                </label>
                <label hidden=shows(RuleKind::NewIp)>
                    "Not seen for (days)" <input name="rule[lookback_days]" inputmode="numeric" value="30" />
                </label>
                <label hidden=shows(RuleKind::NewIp)>
                    "Compare"
                    <select name="rule[network]">
                        <option value="address">"Addresses"</option>
                        <option value="network">"Networks (/24, /48)"</option>
                    </select>
                </label>
                <label hidden=shows(RuleKind::OffHours)>
                    "Working days"
                    <select name="rule[work_days]">
                        <option value="31">"Monday to Friday"</option>
                        <option value="63">"Monday to Saturday"</option>
                        <option value="127">"Every day"</option>
                    </select>
                </label>
                <label hidden=shows(RuleKind::OffHours)>
                    "From" <input type="time" name="rule[work_start]" value="09:00" />
                </label>
                <label hidden=shows(RuleKind::OffHours)>
                    "To" <input type="time" name="rule[work_end]" value="18:00" />
                </label>
                <label hidden=shows(RuleKind::OffHours)>
                    "Time zone" <input name="rule[zone]" value="UTC" placeholder="e.g. Europe/Berlin" />
                </label>
                <ChannelSelect label="Also send to" name="rule[stream]" none="The inbox only" selected=None />
                <button type="submit" class="button primary">"Add rule"</button>
            </ActionForm>
            {move || create.value().get().and_then(Result::err).map(|error| view! { <FormError error /> })}
        </section>
    }
}

#[component]
fn RulesTable(
    rows: Vec<RuleInfo>,
    paused: ServerAction<SetAlertRulePaused>,
    delete: ServerAction<DeleteAlertRule>,
) -> impl IntoView {
    let empty = rows.is_empty();
    view! {
        <div class="table-scroll">
            <table class="data-table alert-rules">
                <thead>
                    <tr>
                        <th scope="col">"Rule"</th>
                        <th scope="col">"Severity"</th>
                        <th scope="col">"Fires on"</th>
                        <th scope="col">"Alerts (open)"</th>
                        <th scope="col">"Status"</th>
                        <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody>
                    {rows
                        .into_iter()
                        .map(|rule| {
                            let id = rule.id;
                            let is_paused = rule.paused;
                            let name = rule.settings.name.clone();
                            let summary = rule.summary();
                            view! {
                                <tr data-rule=name.clone()>
                                    <td>{name.clone()}</td>
                                    <td>
                                        <span class=format!("badge severity-{}", rule.settings.severity)>
                                            {rule.settings.severity.clone()}
                                        </span>
                                    </td>
                                    <td class="rule-summary">
                                        {summary}
                                        {rule
                                            .stream_name
                                            .clone()
                                            .map(|name| view! { <span class="hint">{format!(" → stream \"{name}\"")}</span> })}
                                    </td>
                                    <td class="num">{format!("{} ({})", rule.alerts, rule.open)}</td>
                                    <td>
                                        {if is_paused {
                                            view! { <span class="badge status-disabled">"Paused"</span> }.into_any()
                                        } else {
                                            view! { <span class="badge status-active">"Active"</span> }.into_any()
                                        }}
                                    </td>
                                    <td class="row-actions">
                                        <button
                                            class="button small"
                                            aria-label=format!("{} {name}", if is_paused { "Resume" } else { "Pause" })
                                            on:click=move |_| {
                                                paused.dispatch(SetAlertRulePaused { id, paused: !is_paused });
                                            }
                                        >
                                            {if is_paused { "Resume" } else { "Pause" }}
                                        </button>
                                        <button
                                            class="button small danger"
                                            aria-label=format!("Delete {name}")
                                            on:click=move |_| {
                                                delete.dispatch(DeleteAlertRule { id });
                                            }
                                        >
                                            "Delete"
                                        </button>
                                    </td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
            {empty.then(|| view! { <p class="empty">"No rules yet: add one above."</p> })}
        </div>
    }
}

/// A choice of the streams alerts and digests can go to (signed and
/// Slack-compatible webhooks), or none.
#[component]
pub fn ChannelSelect(
    label: &'static str,
    name: &'static str,
    none: &'static str,
    selected: Option<i64>,
) -> impl IntoView {
    let streams = Resource::new(|| (), |_| alert_channels());
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                let options = streams
                    .await
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(id, text)| {
                        view! { <option value=id.to_string() selected=selected == Some(id)>{text}</option> }
                    })
                    .collect_view();
                view! {
                    <label>
                        {label}
                        <select name=name>
                            <option value="">{none}</option>
                            {options}
                        </select>
                    </label>
                }
            })}
        </Transition>
    }
}
