//! The View details and View Difference modals.

use super::{action_class, Open};
use crate::components::error_notice::ErrorNotice;
use crate::components::modal::{focus_by_id, Modal};
use crate::components::zone::Time;
use crate::functions::events::{get_event_detail, get_event_diff};
use crate::models::{Change, DiffBody, DiffLine, DiffNode, EventDetail, EventDiff};
use leptos::prelude::*;

/// Where focus goes back to when a modal about event `id` closes.
fn close_to(open: RwSignal<Option<Open>>, button: String) -> Callback<()> {
    Callback::new(move |_| {
        open.set(None);
        focus_by_id(button.clone());
    })
}

#[component]
pub fn DetailModal(id: i64, open: RwSignal<Option<Open>>) -> impl IntoView {
    let detail = Resource::new(move || id, get_event_detail);
    view! {
        <Modal
            title=format!("Event {id}")
            class="detail-modal"
            on_close=close_to(open, format!("view-{id}"))
        >
            <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match detail.await {
                        Ok(d) => view! { <DetailBody d open /> }.into_any(),
                        Err(error) => view! { <ErrorNotice error /> }.into_any(),
                    }
                })}
            </Transition>
        </Modal>
    }
}

#[component]
fn DetailBody(d: EventDetail, open: RwSignal<Option<Open>>) -> impl IntoView {
    let EventDetail {
        row,
        received_at,
        initiator_role,
        user_agent,
        request_id,
        session_id,
        api_key,
        history,
    } = d;
    let id = row.id;
    let field = |label: &'static str, value: Option<String>| {
        view! {
            <dt>{label}</dt>
            <dd>
                {match value {
                    Some(v) if !v.is_empty() => view! { <span>{v}</span> }.into_any(),
                    _ => view! { <span class="absent">"—"</span> }.into_any(),
                }}
            </dd>
        }
    };
    let record = match (&row.table_name, &row.primary_key) {
        (Some(t), Some(k)) => Some(format!("{t} {k}")),
        _ => None,
    };
    view! {
        <dl class="detail-fields">
            <dt>"Date"</dt>
            <dd><Time micros=row.occurred_at /></dd>
            <dt>"Received"</dt>
            <dd><Time micros=received_at /></dd>
            <dt>"Action"</dt>
            <dd><span class=format!("badge {}", action_class(&row.action))>{row.action.clone()}</span></dd>
            {field("Initiator", Some(row.initiator.display_name()))}
            {field("Email", row.initiator.email.clone())}
            {field("Initiator type", Some(row.initiator.kind.label().to_string()))}
            {field("Initiator ID", row.initiator.id.clone())}
            {field("Role", initiator_role)}
            {field("IP address", row.ip.clone())}
            {field("Table", row.table_name.clone())}
            {field("Primary key", row.primary_key.clone())}
            {field("Description", Some(row.description.clone()))}
            {field("User agent", user_agent)}
            {field("Request ID", request_id)}
            {field("Session ID", session_id)}
            {field("Delivered by API key", api_key)}
        </dl>
        {row.has_changes.then(|| view! {
            <p>
                <button
                    type="button"
                    class="button"
                    on:click=move |_| open.set(Some(Open::Difference(id)))
                >
                    "View Difference"
                </button>
            </p>
        })}
        {record.map(|record| view! {
            <section class="history" aria-label="Record history">
                <h3>{format!("History of {record}")}</h3>
                <ol class="history-list">
                    {history
                        .into_iter()
                        .map(|h| {
                            let current = h.id == id;
                            let hid = h.id;
                            view! {
                                <li>
                                    <button
                                        type="button"
                                        class="history-item"
                                        class:current=current
                                        aria-current=current.then_some("true")
                                        data-history-id=hid
                                        on:click=move |_| open.set(Some(Open::Details(hid)))
                                    >
                                        <span class="num">{format!("#{hid}")}</span>
                                        <Time micros=h.occurred_at />
                                        <span class=format!("badge {}", action_class(&h.action))>{h.action.clone()}</span>
                                        <span class="history-who">{h.initiator.display_name()}</span>
                                        <span class="history-what">{h.description.clone()}</span>
                                    </button>
                                </li>
                            }
                        })
                        .collect_view()}
                </ol>
            </section>
        })}
    }
}

#[component]
pub fn DiffModal(id: i64, open: RwSignal<Option<Open>>) -> impl IntoView {
    let diff = Resource::new(move || id, get_event_diff);
    let only_changes = RwSignal::new(false);
    view! {
        <Modal
            title=format!("Difference — event {id}")
            class="diff-modal"
            on_close=close_to(open, format!("diff-{id}"))
        >
            <div class="diff-toolbar">
                <label class="check">
                    <input
                        type="checkbox"
                        on:change=move |ev| only_changes.set(event_target_checked(&ev))
                    />
                    <span>"Only changes"</span>
                </label>
                <span class="diff-legend" aria-hidden="true">
                    <span class="changed">"~ changed"</span>
                    <span class="added">"+ added"</span>
                    <span class="removed">"− removed"</span>
                </span>
            </div>
            <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match diff.await {
                        Ok(d) => view! { <DiffBodyView d only_changes /> }.into_any(),
                        Err(error) => view! { <ErrorNotice error /> }.into_any(),
                    }
                })}
            </Transition>
        </Modal>
    }
}

#[component]
fn DiffBodyView(d: EventDiff, only_changes: RwSignal<bool>) -> impl IntoView {
    let EventDiff {
        has_before,
        has_after,
        root,
        ..
    } = d;
    let rows = match root.body {
        DiffBody::Branch { children, .. } => children
            .into_iter()
            .map(|c| node_view(c, 0))
            .collect_view()
            .into_any(),
        body => node_view(
            DiffNode {
                key: "value".into(),
                change: root.change,
                body,
            },
            0,
        ),
    };
    view! {
        // Not an ARIA table: objects and arrays are disclosure groups
        // (details) that a table's rows may not sit in. Each value says
        // which side it is on instead, for screen readers.
        <div class="diff" class:only-changes=move || only_changes.get() role="group" aria-label="Before and after">
            <div class="diff-head" aria-hidden="true">
                <span>"Field"</span>
                <span>{if has_before { "Before" } else { "Before (none)" }}</span>
                <span>{if has_after { "After" } else { "After (none)" }}</span>
            </div>
            {rows}
        </div>
    }
}

fn symbol(change: Change) -> impl IntoView {
    view! {
        <span class="diff-symbol" aria-hidden="true">{change.symbol()}</span>
        <span class="sr-only">{format!("{}: ", change.label())}</span>
    }
}

fn side(value: Option<String>, lines: &[DiffLine], keep: Change) -> AnyView {
    if !lines.is_empty() {
        return view! {
            <ol class="diff-lines">
                {lines
                    .iter()
                    .filter(|l| l.change == Change::Same || l.change == keep)
                    .map(|l| {
                        view! {
                            <li class=l.change.class()>
                                <span class="diff-symbol" aria-hidden="true">{l.change.symbol()}</span>
                                <span class="line-text">{l.text.clone()}</span>
                            </li>
                        }
                    })
                    .collect_view()}
            </ol>
        }
        .into_any();
    }
    match value {
        Some(v) => view! { <span class="value">{v}</span> }.into_any(),
        None => view! { <span class="absent">"—"</span> }.into_any(),
    }
}

/// `1 field`, `3 fields`.
fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// One field of the tree: a row for a value, an expandable group for an
/// object or array.
fn node_view(node: DiffNode, depth: usize) -> AnyView {
    let DiffNode { key, change, body } = node;
    let data_key = key.clone();
    // Nested fields are indented inside the key column, so the before and
    // after columns stay aligned at every depth (a class per level: the page's
    // CSP allows no inline styles).
    let indent = format!("depth-{}", depth.min(8));
    match body {
        DiffBody::Leaf {
            before,
            after,
            lines,
        } => view! {
            <div class=format!("diff-row {} {indent}", change.class()) data-key=data_key>
                <span class="diff-key">{symbol(change)}{key}</span>
                <span class="diff-side before">
                    <span class="sr-only">"Before: "</span>
                    {side(before, &lines, Change::Removed)}
                </span>
                <span class="diff-side after">
                    <span class="sr-only">"After: "</span>
                    {side(after, &lines, Change::Added)}
                </span>
            </div>
        }
        .into_any(),
        DiffBody::Branch { array, children } => {
            let summary = if array {
                format!("[{}]", plural(children.len(), "item"))
            } else {
                format!("{{{}}}", plural(children.len(), "field"))
            };
            view! {
                <details class=format!("diff-branch {} {indent}", change.class()) open data-key=data_key>
                    <summary>
                        {symbol(change)}
                        <span class="diff-key">{key}</span>
                        <span class="diff-kind">{summary}</span>
                    </summary>
                    <div class="diff-children">
                        {children.into_iter().map(|c| node_view(c, depth + 1)).collect_view()}
                    </div>
                </details>
            }
            .into_any()
        }
    }
}
