//! The view's top initiators, actions, tables and IPs, each a link that
//! adds it to the filters. Fetched when the panel is first opened.

use super::href_of;
use crate::charts::{share_percent, Breakdowns, Top};
use crate::components::error_notice::ErrorNotice;
use crate::functions::events::event_breakdowns;
use crate::models::format_count;
use crate::query::{EventQuery, InitiatorKey};
use leptos::prelude::*;

/// Which filter a list's entries set.
#[derive(Clone, Copy)]
enum Field {
    User,
    Action,
    Table,
    Ip,
}

fn with_filter(q: &EventQuery, field: Field, value: &str) -> Option<EventQuery> {
    let mut q = q.clone().first_page();
    match field {
        Field::User => q.user = Some(InitiatorKey::parse(value).ok()?),
        Field::Action => q.actions = vec![value.to_string()],
        Field::Table => q.table = Some(value.to_string()),
        Field::Ip => q.ip = Some(value.to_string()),
    }
    Some(q)
}

#[component]
pub fn BreakdownsPanel(current: Memo<Option<EventQuery>>) -> impl IntoView {
    let open = RwSignal::new(false);
    let data = Resource::new(
        move || open.get().then(|| current.get()).flatten(),
        |query| async move {
            match query {
                Some(q) => event_breakdowns(q).await.map(Some),
                None => Ok(None),
            }
        },
    );
    view! {
        <details
            class="card breakdowns"
            // Each toggle event follows one change of the element's state.
            on:toggle=move |_| open.update(|o| *o = !*o)
        >
            <summary>"Top initiators, actions, tables and IPs"</summary>
            <Transition fallback=|| view! { <p class="loading">"Counting…"</p> }>
                {move || Suspend::new(async move {
                    let result = data.await;
                    let current = current.get_untracked().unwrap_or_default();
                    match result {
                        Ok(Some(b)) => view! { <Lists b current /> }.into_any(),
                        Ok(None) => ().into_any(),
                        Err(error) => view! { <ErrorNotice error /> }.into_any(),
                    }
                })}
            </Transition>
        </details>
    }
}

#[component]
fn Lists(b: Breakdowns, current: EventQuery) -> impl IntoView {
    let total = b.total;
    let sample = b.sample;
    let ip_title = if b.ip_networks {
        "Networks"
    } else {
        "IP addresses"
    };
    let list = |title: &'static str, field: Field, items: Vec<Top>| {
        let rows = items
            .into_iter()
            .map(|t| {
                let share = share_percent(t.n, total);
                let href = t
                    .filter
                    .as_deref()
                    .and_then(|v| with_filter(&current, field, v))
                    .map(|q| href_of(&q));
                let label = match href {
                    Some(href) => view! { <a href=href>{t.label.clone()}</a> }.into_any(),
                    None => view! { <span class="muted">{t.label.clone()}</span> }.into_any(),
                };
                view! {
                    <li>
                        <span class="top-label">{label}</span>
                        <span class="top-count">{format_count(t.n)}</span>
                        <svg class="share" viewBox="0 0 100 1" preserveAspectRatio="none" aria-hidden="true">
                            <rect width=share height="1" />
                        </svg>
                        <span class="visually-hidden">{format!("{share}% of the view")}</span>
                    </li>
                }
            })
            .collect_view();
        view! {
            <section class="top-list">
                <h3>{title}</h3>
                <ol>{rows}</ol>
            </section>
        }
    };
    view! {
        <div class="top-lists">
            {list("Initiators", Field::User, b.initiators)}
            {list("Actions", Field::Action, b.actions)}
            {list("Tables", Field::Table, b.tables)}
            {list(ip_title, Field::Ip, b.ips)}
        </div>
        <p class="muted small">
            {match sample {
                None => format!("Of {} events in this view.", format_count(total)),
                Some(k) => format!(
                    "Of ≈ {} events in this view: estimated from 1 event in {k}.",
                    format_count(total)
                ),
            }}
        </p>
    }
}
