//! Monitoring → Activity Log: every audit event, newest first.

use crate::components::error_notice::ErrorNotice;
use crate::components::layout::Breadcrumb;
use crate::components::pager::{PageSizeSelect, Pager};
use crate::functions::events::list_events;
use crate::models::{
    format_count, format_rfc3339, format_utc, EventPage, EventQuery, EventRow, COMMON_ACTIONS,
};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_query_map};

const PATH: &str = "/activity-log";

#[component]
pub fn ActivityLogPage() -> impl IntoView {
    let params = use_query_map();
    let query = Memo::new(move |_| params.with(|p| EventQuery::from_params(|k| p.get_str(k))));
    let events = Resource::new(
        move || query.get(),
        |query| async move {
            match query {
                Ok(query) => list_events(query).await,
                Err(e) => Err(e),
            }
        },
    );
    let navigate = use_navigate();
    let href = Callback::new(move |page: u32| {
        let q = query.get_untracked().unwrap_or_default();
        format!("{PATH}{}", q.with_page(page).to_query_string())
    });
    let on_page_size = Callback::new(move |size: u32| {
        let q = query.get_untracked().unwrap_or_default();
        navigate(
            &format!("{PATH}{}", q.with_page_size(size).to_query_string()),
            Default::default(),
        );
    });

    view! {
        <Title text="Activity Log" />
        <Breadcrumb trail=vec!["Monitoring", "Activity Log"] />
        <div class="page-header">
            <h1>"Activity Log"</h1>
            <p class="page-intro">"Every action in your systems: who did what, when, and from where."</p>
        </div>
        <section class="card table-card">
            <Transition fallback=|| view! { <p class="loading">"Loading events…"</p> }>
                {move || Suspend::new(async move {
                    match events.await {
                        Ok(page) => view! { <EventsView page href on_page_size /> }.into_any(),
                        Err(error) => view! { <ErrorNotice error /> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn EventsView(
    page: EventPage,
    href: Callback<u32, String>,
    on_page_size: Callback<u32>,
) -> impl IntoView {
    let page_count = page.page_count();
    let EventPage {
        rows,
        total,
        page: current,
        per_page,
    } = page;
    let empty = rows.is_empty();
    view! {
        <div class="table-toolbar">
            <span class="result-count" data-testid="result-count">
                {format!("{} events", format_count(total))}
            </span>
            <PageSizeSelect per_page on_change=on_page_size />
        </div>
        <div class="table-scroll">
            <table class="data-table events">
                <thead>
                    <tr>
                        <th scope="col">"ID"</th>
                        <th scope="col">"Date (UTC)"</th>
                        <th scope="col">"IP address"</th>
                        <th scope="col">"Initiator"</th>
                        <th scope="col">"Action"</th>
                        <th scope="col">"Table"</th>
                        <th scope="col">"Primary key"</th>
                        <th scope="col">"Description"</th>
                    </tr>
                </thead>
                <tbody>
                    {rows.into_iter().map(|row| view! { <EventRowView row /> }).collect_view()}
                </tbody>
            </table>
            {empty.then(|| view! { <p class="empty">"No events match this view."</p> })}
        </div>
        <Pager page=current page_count total per_page href />
    }
}

#[component]
fn EventRowView(row: EventRow) -> impl IntoView {
    let action_class = action_class(&row.action);
    let initiator_name = row.initiator.display_name();
    let when = format_utc(row.occurred_at);
    let (day, time) = when.split_once(' ').unwrap_or((when.as_str(), ""));
    let (day, time) = (day.to_string(), time.to_string());
    view! {
        <tr data-event-id=row.id>
            <td class="num">{row.id}</td>
            <td class="nowrap">
                <time datetime=format_rfc3339(row.occurred_at)>
                    <span class="day">{day}</span>
                    " "
                    <span class="clock">{time}</span>
                </time>
            </td>
            <td class="mono">{row.ip.unwrap_or_default()}</td>
            <td>
                <div class="initiator">{initiator_name}</div>
                {row.initiator.email.map(|email| view! { <div class="initiator-email">{email}</div> })}
            </td>
            <td>
                <span class=format!("badge {action_class}")>{row.action}</span>
            </td>
            <td class="mono">{row.table_name.unwrap_or_default()}</td>
            <td class="mono">{row.primary_key.unwrap_or_default()}</td>
            <td class="description">{row.description}</td>
        </tr>
    }
}

/// CSS class of an action badge: one per common verb, one for custom verbs.
pub fn action_class(action: &str) -> String {
    if COMMON_ACTIONS.contains(&action) {
        format!("action-{}", action.to_ascii_lowercase().replace('_', "-"))
    } else {
        "action-custom".to_string()
    }
}
