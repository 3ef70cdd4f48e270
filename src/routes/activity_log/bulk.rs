//! The Activity Log's bulk actions: the selection bar (count, select all
//! matching, export, delete, clear), the export's progress with Cancel, and
//! the delete confirmation. Their state lives in [`Bulk`], made once by the
//! page, so it survives paging and auto refresh.

use crate::bulk::{
    DeletionPlan, ExportFormat, ExportStatus, ExportTicket, Selection, SessionSelection,
};
use crate::components::auto_refresh::Refresh;
use crate::components::modal::Modal;
use crate::components::selection::{PageSelected, SelectionState};
use crate::functions::bulk::{cancel_export, delete_events, plan_deletion, start_export};
use crate::models::{format_count, EventCount, Role};
use crate::query::EventQuery;
use leptos::prelude::*;
use leptos::task::spawn_local;

/// An export under way (or just ended).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRun {
    pub ticket: ExportTicket,
    pub status: ExportStatus,
}

/// The page's bulk-action state.
#[derive(Debug, Clone, Copy)]
pub struct Bulk {
    pub selected: RwSignal<SelectionState>,
    /// A short message about the last bulk action.
    pub notice: RwSignal<Option<String>>,
    pub export: RwSignal<Option<ExportRun>>,
    /// The deletion awaiting confirmation, and what it applies to.
    pub confirm: RwSignal<Option<(Selection, DeletionPlan)>>,
}

impl Bulk {
    pub fn new() -> Self {
        let bulk = Self {
            selected: RwSignal::new(SelectionState::default()),
            notice: RwSignal::new(None),
            export: RwSignal::new(None),
            confirm: RwSignal::new(None),
        };
        bulk.follow_exports();
        bulk
    }

    /// What the selection means for a view.
    pub fn selection(&self, view: &EventQuery) -> Option<Selection> {
        self.selected.with_untracked(|s| {
            if s.all_matching {
                Some(Selection::Filter(Box::new(view.clone())))
            } else if s.ids.is_empty() {
                None
            } else {
                Some(Selection::Ids(s.ids.iter().copied().collect()))
            }
        })
    }

    fn fail(&self, error: impl std::fmt::Display) {
        self.notice.set(Some(error.to_string()));
    }

    /// Prepares an export and starts its download.
    pub fn start_export(&self, selection: Selection, format: ExportFormat) {
        self.run_export(async move { start_export(selection, format).await });
    }

    /// Prepares an export of Admin Sessions records and starts its download.
    pub fn start_session_export(&self, selection: SessionSelection, format: ExportFormat) {
        self.run_export(async move {
            crate::functions::bulk::start_session_export(selection, format).await
        });
    }

    fn run_export(
        &self,
        ticket: impl std::future::Future<Output = Result<ExportTicket, crate::errors::AppError>>
            + 'static,
    ) {
        let this = *self;
        spawn_local(async move {
            match ticket.await {
                Ok(ticket) => {
                    download(&ticket.url());
                    this.notice.set(None);
                    this.export.set(Some(ExportRun {
                        status: ExportStatus {
                            total: ticket.total,
                            ..ExportStatus::default()
                        },
                        ticket,
                    }));
                }
                Err(e) => this.fail(e),
            }
        });
    }

    pub fn cancel_export(&self) {
        let this = *self;
        let Some(token) = self
            .export
            .with_untracked(|e| e.as_ref().map(|e| e.ticket.token.clone()))
        else {
            return;
        };
        spawn_local(async move {
            match cancel_export(token).await {
                Ok(status) => this.export.update(|e| {
                    if let Some(e) = e {
                        e.status = status;
                    }
                }),
                Err(e) => this.fail(e),
            }
        });
    }

    /// Asks the server for the exact count, then opens the confirmation.
    pub fn ask_delete(&self, selection: Selection) {
        let this = *self;
        spawn_local(async move {
            match plan_deletion(selection.clone()).await {
                Ok(plan) if plan.count == 0 => {
                    this.fail("Nothing to delete: the selection is empty.")
                }
                Ok(plan) => this.confirm.set(Some((selection, plan))),
                Err(e) => this.fail(e),
            }
        });
    }

    /// Polls the running export's progress (in the browser).
    fn follow_exports(&self) {
        #[cfg(feature = "hydrate")]
        {
            let export = self.export;
            let _ = leptos_use_interval_fn::use_interval_fn(
                move || {
                    let Some(token) = export.with_untracked(|e| {
                        e.as_ref()
                            .filter(|e| !e.status.finished())
                            .map(|e| e.ticket.token.clone())
                    }) else {
                        return;
                    };
                    spawn_local(async move {
                        let status = crate::functions::bulk::get_export_status(token.clone()).await;
                        if let Ok(status) = status {
                            export.update(|e| {
                                if let Some(e) = e.as_mut().filter(|e| e.ticket.token == token) {
                                    e.status = status;
                                }
                            });
                        }
                    });
                },
                400,
            );
        }
    }
}

impl Bulk {
    /// A selection belongs to its filters: when `filters` (a text naming
    /// them) changes, the selection is cleared, with a note.
    pub fn clear_on_filter_change(&self, filters: impl Fn() -> String + Send + Sync + 'static) {
        let bulk = *self;
        Effect::new(move |previous: Option<String>| {
            let key = filters();
            if previous.is_some_and(|p| p != key)
                && !bulk.selected.with_untracked(SelectionState::is_empty)
            {
                bulk.selected.update(SelectionState::clear);
                bulk.notice
                    .set(Some("Selection cleared: the filters changed.".into()));
            }
            key
        });
    }
}

/// An Export button opening the formats; `on_pick` gets the one chosen.
#[component]
pub fn ExportMenu(
    label: &'static str,
    formats: &'static [ExportFormat],
    on_pick: Callback<ExportFormat>,
) -> impl IntoView {
    view! {
        <details class="menu export-menu">
            <summary class="button">{label}</summary>
            <div class="menu-items" role="group" aria-label="Export format">
                {formats
                    .iter()
                    .map(|&format| {
                        view! {
                            <button
                                type="button"
                                class="button small"
                                on:click=move |ev| {
                                    close_menu(&ev);
                                    on_pick.run(format);
                                }
                            >
                                {format.label()}
                            </button>
                        }
                    })
                    .collect_view()}
            </div>
        </details>
    }
}

impl Default for Bulk {
    fn default() -> Self {
        Self::new()
    }
}

/// Starts a download of `url` in this page (the browser saves the file).
fn download(url: &str) {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        let document = document();
        if let Ok(a) = document.create_element("a") {
            let _ = a.set_attribute("href", url);
            let _ = a.set_attribute("download", "");
            if let Some(body) = document.body() {
                let _ = body.append_child(&a);
                if let Ok(a) = a.dyn_into::<web_sys::HtmlElement>() {
                    a.click();
                    a.remove();
                }
            }
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = url;
}

/// The bar above the table: what is selected and what can be done with it.
#[component]
pub fn BulkBar(
    bulk: Bulk,
    current: EventQuery,
    count: Resource<Option<EventCount>>,
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
            .map(|c| {
                if c.exact {
                    format_count(c.total)
                } else {
                    format!("≈ {}", format_count(c.total))
                }
            })
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

/// Closes the `<details>` menu a button sits in.
pub fn close_menu(ev: &leptos::ev::MouseEvent) {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        let details = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            .and_then(|el| el.closest("details").ok().flatten());
        if let Some(details) = details {
            let _ = details.remove_attribute("open");
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = ev;
}

/// The running export: a bar, the rows so far, Cancel.
#[component]
pub fn ExportProgress(bulk: Bulk) -> impl IntoView {
    move || {
        bulk.export.get().map(|run| {
            let s = run.status;
            let what = format!(
                "{} {} as {}",
                format_count(s.total),
                if s.total == 1 { "entry" } else { "entries" },
                run.ticket.format.label()
            );
            let text = if s.done {
                format!("Exported {what}.")
            } else if s.cancelled {
                format!("Export of {what} cancelled.")
            } else if s.failed {
                format!("Export of {what} failed; the download is incomplete.")
            } else {
                format!(
                    "Exporting {what}: {} of {} rows…",
                    format_count(s.rows),
                    format_count(s.total)
                )
            };
            view! {
                <div class="export-progress" data-testid="export-progress">
                    <progress max="100" value=s.percent().to_string() aria-label="Export progress"></progress>
                    <span role="status">{text}</span>
                    {(!s.finished())
                        .then(|| {
                            view! {
                                <button type="button" class="button small" on:click=move |_| bulk.cancel_export()>
                                    "Cancel export"
                                </button>
                            }
                        })}
                    {s.finished()
                        .then(|| {
                            view! {
                                <button type="button" class="icon-button" aria-label="Dismiss" on:click=move |_| bulk.export.set(None)>
                                    "✕"
                                </button>
                            }
                        })}
                </div>
            }
        })
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
