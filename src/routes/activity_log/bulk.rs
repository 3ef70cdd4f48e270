//! The Activity Log's bulk actions: the selection bar (count, select all
//! matching, export, delete, clear) and the delete confirmation. The state
//! and the pieces shared with Admin Sessions are in `components::bulk`.

use crate::bulk::{ExportFormat, Selection};
use crate::components::auto_refresh::Refresh;
use crate::components::bulk::{Bulk, ExportMenu, ExportProgress};
use crate::components::modal::Modal;
use crate::components::pager::LiveCount;
use crate::components::selection::{PageSelected, SelectionState};
use crate::functions::bulk::delete_events;
use crate::models::{format_count, Role};
use crate::query::EventQuery;
use leptos::prelude::*;
use leptos::task::spawn_local;

/// The bar above the table: what is selected and what can be done with it.
#[component]
pub fn BulkBar(
    bulk: Bulk,
    current: EventQuery,
    count: LiveCount,
    role: Role,
    page: std::sync::Arc<Vec<i64>>,
    /// Whether more rows match than this page shows.
    more: bool,
) -> impl IntoView {
    let may_export = role.allows(Role::Auditor);
    let may_delete = role.allows(Role::Admin);
    let view_q = StoredValue::new(current);
    let selected = bulk.selected;
    let count_label = move || {
        count
            .get()
            .flatten()
            .map(|c| c.number())
            .unwrap_or_else(|| "the".into())
    };
    let summary = move || {
        selected.with(|s| {
            if s.all_matching {
                format!("All {} matching entries selected", count_label())
            } else {
                let n = s.ids.len() as u64;
                format!("{} selected", format_count(n))
            }
        })
    };
    let page_len = page.len();
    let page_all = move || selected.try_with(|s| s.page_selected(&page)) == Some(PageSelected::All);
    let offer_all = move || more && page_all() && !selected.with(|s| s.all_matching);
    let chosen = move || view_q.try_with_value(|q| bulk.selection(q)).flatten();
    let export_menu = move |label: &'static str, whole: bool| {
        let on_pick = Callback::new(move |format| {
            let selection = if whole {
                view_q
                    .try_get_value()
                    .map(|q| Selection::Filter(Box::new(q)))
            } else {
                chosen()
            };
            if let Some(selection) = selection {
                bulk.start_export(selection, format);
            }
        });
        view! { <ExportMenu label formats=&ExportFormat::ALL on_pick /> }
    };
    view! {
        <div class="bulk-bar" data-testid="bulk-bar">
            {move || {
                if selected.with(SelectionState::is_empty) {
                    may_export
                        .then(|| export_menu("Export all matching", true))
                        .into_any()
                } else {
                    view! {
                        <span class="bulk-count" data-testid="selection-count">{summary}</span>
                        {may_export.then(|| export_menu("Export", false))}
                        {may_delete
                            .then(|| {
                                view! {
                                    <button
                                        type="button"
                                        class="button danger"
                                        on:click=move |_| {
                                            if let Some(selection) = chosen() {
                                                bulk.ask_delete(selection);
                                            }
                                        }
                                    >
                                        "Delete"
                                    </button>
                                }
                            })}
                        <button type="button" class="button" on:click=move |_| selected.update(SelectionState::clear)>
                            "Clear selection"
                        </button>
                    }
                        .into_any()
                }
            }}
            {move || {
                offer_all()
                    .then(|| {
                        view! {
                            <span class="select-all-offer">
                                {format!("All {page_len} on this page are selected.")}
                                " "
                                <button
                                    type="button"
                                    class="link-button"
                                    on:click=move |_| selected.update(SelectionState::select_all_matching)
                                >
                                    {move || format!("Select all {} entries that match this filter", count_label())}
                                </button>
                            </span>
                        }
                    })
            }}
        </div>
        <ExportProgress bulk />
        {move || bulk.notice.get().map(|n| view! { <p class="bulk-notice" role="status">{n}</p> })}
    }
}

/// The confirmation of a deletion: the exact count, typed when large.
#[component]
pub fn DeleteDialog(bulk: Bulk, refresh: Refresh) -> impl IntoView {
    move || {
        bulk.confirm.get().map(|(selection, plan)| {
            let typed = RwSignal::new(String::new());
            let error = RwSignal::new(None::<String>);
            let busy = RwSignal::new(false);
            let count = format_count(plan.count);
            let noun = if plan.count == 1 { "event" } else { "events" };
            let needs_typing = plan.needs_typed_count();
            let expected = plan.count.to_string();
            let ready = move || !busy.get() && (!needs_typing || typed.with(|t| t.trim().replace(',', "") == expected));
            let selection = StoredValue::new(selection);
            let confirm = move |_| {
                busy.set(true);
                let selection = selection.get_value();
                spawn_local(async move {
                    match delete_events(selection, plan).await {
                        Ok(done) => {
                            bulk.confirm.set(None);
                            bulk.selected.update(SelectionState::clear);
                            bulk.notice.set(Some(format!(
                                "Deleted {} {}. The deletion is event {} in the log.",
                                format_count(done.deleted),
                                if done.deleted == 1 { "event" } else { "events" },
                                done.event_id
                            )));
                            refresh.now();
                        }
                        Err(e) => {
                            busy.set(false);
                            error.set(Some(e.to_string()));
                        }
                    }
                });
            };
            view! {
                <Modal
                    title=format!("Delete {count} {noun}?")
                    on_close=Callback::new(move |_| bulk.confirm.set(None))
                    class="confirm-dialog"
                >
                    <p>
                        {format!("This removes {count} {noun} from the log for good. ")}
                        "Each leaves a tombstone (its id and time), and the deletion itself is recorded as an event."
                    </p>
                    {needs_typing
                        .then(|| {
                            view! {
                                <label class="form-field">
                                    {format!("Type {} to confirm", plan.count)}
                                    <input
                                        type="text"
                                        inputmode="numeric"
                                        autocomplete="off"
                                        on:input=move |ev| typed.set(event_target_value(&ev))
                                    />
                                </label>
                            }
                        })}
                    {move || error.get().map(|e| view! { <p class="form-error" role="alert">{e}</p> })}
                    <div class="dialog-actions">
                        <button type="button" class="button" on:click=move |_| bulk.confirm.set(None)>
                            "Cancel"
                        </button>
                        <button
                            type="button"
                            class="button danger-solid"
                            disabled=move || !ready()
                            on:click=confirm
                        >
                            {move || if busy.get() { "Deleting…".to_string() } else { format!("Delete {count} {noun}") }}
                        </button>
                    </div>
                </Modal>
            }
        })
    }
}
