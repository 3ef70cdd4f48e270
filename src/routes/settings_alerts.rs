//! Settings → Alerts (admins): the rules that watch the log.

use crate::alerts::{RuleForm, RuleInfo, RuleKind, GROUPS, SEVERITIES};
use crate::components::error_notice::ErrorNotice;
use crate::components::form_message::FormError;
use crate::components::layout::Breadcrumb;
use crate::errors::AppError;
use crate::functions::alerts::{
    alert_channels, list_alert_rules, CreateAlertRule, DeleteAlertRule, SetAlertRulePaused,
    UpdateAlertRule,
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
    let update = ServerAction::<UpdateAlertRule>::new();
    let editing = RwSignal::new(None::<RuleInfo>);
    Effect::new(move |_| {
        if matches!(update.value().get(), Some(Ok(()))) {
            editing.set(None);
        }
    });
    let rules = Resource::new(
        move || {
            (
                create.version().get(),
                paused.version().get(),
                delete.version().get(),
                update.version().get(),
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
                let admin = me.await.is_ok_and(|u| u.role.allows(Role::Admin));
                admin.then_some(move || match editing.get() {
                    Some(rule) => view! { <EditRuleForm rule update editing /> }.into_any(),
                    None => view! { <NewRuleForm create /> }.into_any(),
                })
            })}
        </Transition>
        {move || paused.value().get().and_then(Result::err).map(|error| view! { <FormError error /> })}
        {move || delete.value().get().and_then(Result::err).map(|error| view! { <FormError error /> })}
        <section class="card table-card">
            <Transition fallback=|| view! { <p class="loading">"Loading rules…"</p> }>
                {move || Suspend::new(async move {
                    match rules.await {
                        Ok(rows) => view! { <RulesTable rows paused delete editing /> }.into_any(),
                        Err(error) => view! { <ErrorNotice error /> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn NewRuleForm(create: ServerAction<CreateAlertRule>) -> impl IntoView {
    let initial = RuleForm {
        kind: RuleKind::Match.as_str().into(),
        severity: "warning".into(),
        threshold: "10".into(),
        window_minutes: "60".into(),
        lookback_days: "30".into(),
        work_days: "31".into(),
        work_start: "09:00".into(),
        work_end: "18:00".into(),
        zone: "UTC".into(),
        ..RuleForm::default()
    };
    view! {
        <section class="card form-card">
            <h2>"Add a rule"</h2>
            <ActionForm action=create attr:class="settings-form rule-form">
                <RuleFields initial />
                <button type="submit" class="button primary">"Add rule"</button>
            </ActionForm>
            {move || create.value().get().and_then(Result::err).map(|error| view! { <FormError error /> })}
        </section>
    }
}

/// The rule being edited, in place of the form that adds one.
#[component]
fn EditRuleForm(
    rule: RuleInfo,
    update: ServerAction<UpdateAlertRule>,
    editing: RwSignal<Option<RuleInfo>>,
) -> impl IntoView {
    let initial = RuleForm::from(&rule.settings);
    let heading = NodeRef::<leptos::html::H2>::new();
    // Where the admin's eyes (and a screen reader) go on Edit.
    Effect::new(move |_| {
        if let Some(h) = heading.get() {
            let _ = h.focus();
        }
    });
    view! {
        <section class="card form-card">
            <h2 node_ref=heading tabindex="-1">{format!("Edit rule \"{}\"", rule.settings.name)}</h2>
            <ActionForm action=update attr:class="settings-form rule-form">
                <input type="hidden" name="id" value=rule.id.to_string() />
                <RuleFields initial />
                <div class="form-buttons">
                    <button type="submit" class="button primary">"Save rule"</button>
                    <button type="button" class="button" on:click=move |_| editing.set(None)>"Cancel"</button>
                </div>
            </ActionForm>
            {move || update.value().get().and_then(Result::err).map(|error| view! { <FormError error /> })}
        </section>
    }
}

/// A rule's fields, filled with `initial`; those its kind does not use
/// are hidden.
#[component]
fn RuleFields(initial: RuleForm) -> impl IntoView {
    let (kind, set_kind) = signal(RuleKind::parse(&initial.kind).unwrap_or(RuleKind::Match));
    let shows = move |k: RuleKind| move || kind.get() != k;
    let stream = initial.stream.parse::<i64>().ok();
    let RuleForm {
        name,
        severity,
        filter,
        threshold,
        window_minutes,
        group_by,
        lookback_days,
        network,
        work_days,
        work_start,
        work_end,
        zone,
        ..
    } = initial;
    let option = move |value: &'static str, label: &'static str, current: &str| {
        let selected = value == current;
        view! { <option value=value selected=selected>{label}</option> }
    };
    view! {
        <label>
            "Name" <input name="rule[name]" required maxlength="100" placeholder="e.g. Failed sign-ins" value=name />
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
                    .map(|k| view! { <option value=k.as_str() selected=move || kind.get_untracked() == k>{k.label()}</option> })
                    .collect_view()}
            </select>
        </label>
        <label>
            "Severity"
            <select name="rule[severity]">
                {SEVERITIES.into_iter().map(|s| option(s, s, &severity)).collect_view()}
            </select>
        </label>
        <label class="wide">
            "Filter (the Activity Log's, as in its address)"
            <input name="rule[filter]" placeholder="e.g. action=LOGIN_FAILED or action=DELETE&table=users" value=filter />
        </label>
        <label hidden=shows(RuleKind::Threshold)>
            "At least (events)" <input name="rule[threshold]" inputmode="numeric" value=threshold />
        </label>
        <label>
            "Window (minutes)" <input name="rule[window_minutes]" inputmode="numeric" value=window_minutes />
        </label>
        <label hidden=move || kind.get() == RuleKind::NewIp>
            "Group"
            <select name="rule[group_by]">
                {GROUPS.into_iter().map(|(value, label)| option(value, label, &group_by)).collect_view()}
            </select>
        </label>
        <label hidden=shows(RuleKind::NewIp)>
            "Not seen for (days)" <input name="rule[lookback_days]" inputmode="numeric" value=lookback_days />
        </label>
        <label hidden=shows(RuleKind::NewIp)>
            "Compare"
            <select name="rule[network]">
                {option("address", "Addresses", &network)}
                {option("network", "Networks (/24, /48)", &network)}
            </select>
        </label>
        <label hidden=shows(RuleKind::OffHours)>
            "Working days"
            <select name="rule[work_days]">
                {option("31", "Monday to Friday", &work_days)}
                {option("63", "Monday to Saturday", &work_days)}
                {option("127", "Every day", &work_days)}
            </select>
        </label>
        <label hidden=shows(RuleKind::OffHours)>
            "From" <input type="time" name="rule[work_start]" value=work_start />
        </label>
        <label hidden=shows(RuleKind::OffHours)>
            "To" <input type="time" name="rule[work_end]" value=work_end />
        </label>
        <label hidden=shows(RuleKind::OffHours)>
            "Time zone" <input name="rule[zone]" placeholder="e.g. Europe/Berlin" value=zone />
        </label>
        <ChannelSelect label="Also send to" name="rule[stream]" none="The inbox only" selected=stream />
    }
}

#[component]
fn RulesTable(
    rows: Vec<RuleInfo>,
    paused: ServerAction<SetAlertRulePaused>,
    delete: ServerAction<DeleteAlertRule>,
    editing: RwSignal<Option<RuleInfo>>,
) -> impl IntoView {
    let empty = rows.is_empty();
    view! {
        <div class="table-scroll">
            <table class="data-table alert-rules cards">
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
                            let edit = rule.clone();
                            view! {
                                <tr data-rule=name.clone()>
                                    <td class="c-rule">{name.clone()}</td>
                                    <td class="c-sev">
                                        <span class=format!("badge severity-{}", rule.settings.severity)>
                                            {rule.settings.severity.clone()}
                                        </span>
                                    </td>
                                    <td class="rule-summary c-summary">
                                        {summary}
                                        {rule
                                            .stream_name
                                            .clone()
                                            .map(|name| view! { <span class="hint">{format!(" → stream \"{name}\"")}</span> })}
                                    </td>
                                    <td class="num c-events" data-label="Alerts (open)">
                                        {format!("{} ({})", rule.alerts, rule.open)}
                                    </td>
                                    <td class="c-state">
                                        {if is_paused {
                                            view! { <span class="badge status-disabled">"Paused"</span> }.into_any()
                                        } else {
                                            view! { <span class="badge status-active">"Active"</span> }.into_any()
                                        }}
                                    </td>
                                    <td class="row-actions c-actions">
                                        <button
                                            class="button small"
                                            aria-label=format!("Edit {name}")
                                            on:click=move |_| editing.set(Some(edit.clone()))
                                        >
                                            "Edit"
                                        </button>
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
