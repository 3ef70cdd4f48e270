//! Monitoring → Alerts (auditors and admins): the alerts the rules fired,
//! newest first, to acknowledge and resolve.

use crate::alerts::AlertInfo;
use crate::components::error_notice::ErrorNotice;
use crate::components::form_message::FormError;
use crate::components::integrity_badge::IntegrityVersion;
use crate::components::layout::Breadcrumb;
use crate::functions::alerts::{list_alerts, SetAlertState};
use crate::models::{format_count, format_utc};
use crate::routes::alert_digest::DigestView;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

#[component]
pub fn AlertsPage() -> impl IntoView {
    let params = use_query_map();
    // `?digest=` shows the weekly digest (`last` or a week's Monday in µs).
    let digest = Memo::new(move |_| params.with(|p| p.get("digest")));
    let week = Signal::derive(move || digest.get().and_then(|w| w.parse::<i64>().ok()));
    // A digest's link names the zone of its weeks (a subscriber's).
    let zone = Signal::derive(move || params.with(|p| p.get("zone")));
    let change = ServerAction::<SetAlertState>::new();
    let (open_only, set_open_only) = signal(true);
    let tick = RwSignal::new(0u64);
    // Read again every five seconds while the tab is seen, the top bar's
    // count with it.
    let version = use_context::<IntegrityVersion>();
    crate::components::poll::while_visible(5_000, move || {
        // The inbox's own list only while it is the tab shown.
        if digest.get_untracked().is_none() {
            tick.update(|t| *t += 1);
        }
        if let Some(version) = version {
            version.bump();
        }
    });
    Effect::new(move |_| {
        if change.version().get() > 0 {
            if let Some(version) = version {
                version.bump();
            }
        }
    });
    let alerts = Resource::new(
        move || {
            digest
                .get()
                .is_none()
                .then(|| (open_only.get(), change.version().get(), tick.get()))
        },
        |shown| async move {
            match shown {
                Some((open_only, _, _)) => list_alerts(open_only).await,
                None => Ok(Vec::new()),
            }
        },
    );
    view! {
        <Title text="Alerts" />
        <Breadcrumb trail=vec!["Monitoring", "Alerts"] />
        <div class="page-header">
            <h1>"Alerts"</h1>
            <p class="page-intro">
                "What the " <a href="/settings/alerts">"alert rules"</a>
                " found, newest first. Acknowledge an alert when someone is on it; resolve it when it is dealt with."
            </p>
        </div>
        <nav class="tabs" aria-label="Alerts">
            <a href="/alerts" aria-current=move || digest.get().is_none().then_some("page")>
                "Inbox"
            </a>
            <a href="/alerts?digest=last" aria-current=move || digest.get().is_some().then_some("page")>
                "Weekly digest"
            </a>
        </nav>
        <Show when=move || digest.get().is_some()>
            <DigestView week zone />
        </Show>
        <div class="alert-filter" role="group" aria-label="Which alerts" hidden=move || digest.get().is_some()>
            <button
                type="button"
                class="button small"
                aria-pressed=move || if open_only.get() { "true" } else { "false" }
                on:click=move |_| set_open_only.set(true)
            >
                "Open"
            </button>
            <button
                type="button"
                class="button small"
                aria-pressed=move || if open_only.get() { "false" } else { "true" }
                on:click=move |_| set_open_only.set(false)
            >
                "All"
            </button>
        </div>
        {move || change.value().get().and_then(Result::err).map(|error| view! { <FormError error /> })}
        <section class="card table-card" hidden=move || digest.get().is_some()>
            <Transition fallback=|| view! { <p class="loading">"Loading alerts…"</p> }>
                {move || Suspend::new(async move {
                    match alerts.await {
                        Ok(rows) => view! { <AlertsTable rows change /> }.into_any(),
                        Err(error) => view! { <ErrorNotice error /> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn AlertsTable(rows: Vec<AlertInfo>, change: ServerAction<SetAlertState>) -> impl IntoView {
    let empty = rows.is_empty();
    view! {
        <div class="table-scroll">
            <table class="data-table alerts cards">
                <thead>
                    <tr>
                        <th scope="col">"Severity"</th>
                        <th scope="col">"Rule"</th>
                        <th scope="col">"Group"</th>
                        <th scope="col">"Events"</th>
                        <th scope="col">"First – last (UTC)"</th>
                        <th scope="col">"State"</th>
                        <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody>
                    {rows.into_iter().map(|alert| view! { <AlertRow alert change /> }).collect_view()}
                </tbody>
            </table>
            {empty.then(|| view! { <p class="empty">"No alerts here."</p> })}
        </div>
    }
}

#[component]
fn AlertRow(alert: AlertInfo, change: ServerAction<SetAlertState>) -> impl IntoView {
    let id = alert.id;
    let state = alert.state.clone();
    let set = move |to: &'static str| {
        change.dispatch(SetAlertState {
            id,
            state: to.to_string(),
        });
    };
    let who = match (&alert.resolved_by, &alert.acknowledged_by) {
        (Some(by), _) => format!(" by {by}"),
        (None, Some(by)) => format!(" by {by}"),
        _ => String::new(),
    };
    let group = if alert.group_key.is_empty() {
        "—".to_string()
    } else {
        alert.group_key.clone()
    };
    view! {
        <tr data-alert=id data-state=state.clone()>
            <td class="c-sev">
                <span class=format!("badge severity-{}", alert.severity)>{alert.severity.clone()}</span>
            </td>
            <td class="c-rule">{alert.rule_name.clone()}</td>
            <td class="mono c-group" data-label="Group">{group}</td>
            <td class="num c-events" data-label="Events">{format_count(alert.events.max(0) as u64)}</td>
            <td class="nowrap c-when" data-label="First – last (UTC)">
                {format_utc(alert.first_at)} <br /> {format_utc(alert.last_at)}
            </td>
            <td class="c-state">
                <span class=format!("badge alert-{state}")>{state.clone()}</span>
                <span class="hint">{who}</span>
                {alert
                    .delivery
                    .clone()
                    .map(|d| view! { <span class="hint alert-delivery">{format!(" · {d}")}</span> })}
            </td>
            <td class="row-actions c-actions">
                <a class="button small" href=alert.link.clone()>"View events"</a>
                {(state == "open")
                    .then(|| {
                        view! {
                            <button class="button small" on:click=move |_| set("acknowledged")>
                                "Acknowledge"
                            </button>
                        }
                    })}
                {(state != "resolved")
                    .then(|| {
                        view! {
                            <button class="button small" on:click=move |_| set("resolved")>
                                "Resolve"
                            </button>
                        }
                    })}
            </td>
        </tr>
    }
}
