//! Bulk actions shared by the tables: the page's bulk state ([`Bulk`]: the
//! selection, a note, the running export, a pending deletion), the export
//! menu, and the export's progress with Cancel.

use crate::bulk::{
    DeletionPlan, ExportFormat, ExportStatus, ExportTicket, Selection, SessionSelection,
};
use crate::components::selection::SelectionState;
use crate::functions::bulk::{cancel_export, plan_deletion, start_export};
use crate::models::format_count;
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

/// Closes the `<details>` menu a button sits in.
fn close_menu(ev: &leptos::ev::MouseEvent) {
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
