use crate::models::{format_count, EventCount, Keyed, Page, PAGE_SIZES};
use crate::query::Cursor;
use leptos::prelude::*;
use leptos_router::components::A;

/// Where a page sits, for the pager: its number, whether rows lie before
/// and after it, and its first and last row (the keyset cursors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PagePosition {
    pub page: u32,
    pub per_page: u32,
    pub has_prev: bool,
    pub has_next: bool,
    pub first_id: Option<i64>,
    pub last_id: Option<i64>,
}

impl PagePosition {
    pub fn of<T: Keyed>(page: &Page<T>) -> Self {
        Self {
            page: page.page,
            per_page: page.per_page,
            has_prev: page.has_prev,
            has_next: page.has_next,
            first_id: page.rows.first().map(Keyed::key),
            last_id: page.rows.last().map(Keyed::key),
        }
    }
}

/// The result count above a table. It arrives after the rows; while a
/// refresh recounts, the last count stays.
#[component]
pub fn CountLabel(
    count: Resource<Option<EventCount>>,
    /// What is counted, singular and plural (default: events).
    #[prop(default = ("event", "events"))]
    noun: (&'static str, &'static str),
) -> impl IntoView {
    let last = StoredValue::new(String::from("Counting…"));
    view! {
        <span class="result-count" data-testid="result-count">
            <Transition fallback=move || last.try_get_value().unwrap_or_default()>
                {move || Suspend::new(async move {
                    let label = count
                        .await
                        .map(|c| c.label_of(noun.0, noun.1))
                        .unwrap_or_else(|| "Count unavailable".into());
                    last.try_set_value(label.clone());
                    label
                })}
            </Transition>
        </span>
    }
}

/// First, previous, next and last page links over a keyset-paged table, so
/// page 10,000 costs what page 1 does. `href` gives the address of a page
/// number with its cursor; `count` arrives separately (it may be estimated).
#[component]
pub fn Pager(
    position: PagePosition,
    /// Arrives on its own; the links that need it wait for it, the rest not.
    count: Resource<Option<EventCount>>,
    href: Callback<(u32, Option<Cursor>), String>,
) -> impl IntoView {
    let PagePosition {
        page,
        per_page,
        has_prev,
        has_next,
        first_id,
        last_id,
    } = position;
    let link = move |enabled: bool,
                     target: (u32, Option<Cursor>),
                     label: &'static str,
                     text: &'static str| {
        if enabled {
            // `try_run`: a count can arrive after its page is gone.
            let href = href.try_run(target).unwrap_or_default();
            view! { <A href=href attr:class="page-link" attr:aria-label=label>{text}</A> }
                .into_any()
        } else {
            view! { <span class="page-link disabled" aria-disabled="true" aria-label=label>{text}</span> }
                .into_any()
        }
    };
    let page = if has_prev { page } else { 1 };
    let last_page = move |count: Option<EventCount>| {
        count
            .map(|c| c.page_count(per_page).max(page + 1))
            .unwrap_or(page + 1)
    };
    view! {
        <nav class="pager" aria-label="Pagination">
            <span class="pager-summary" data-testid="pager-summary">
                <Transition fallback=move || format!("Page {}", format_count(page.into()))>
                    {move || Suspend::new(async move {
                        match count.await {
                            Some(c) if c.exact => {
                                format!("Page {} of {}", format_count(page.into()), format_count(c.page_count(per_page).into()))
                            }
                            Some(c) => {
                                format!("Page {} of ≈ {}", format_count(page.into()), format_count(c.page_count(per_page).into()))
                            }
                            None => format!("Page {}", format_count(page.into())),
                        }
                    })}
                </Transition>
            </span>
            <div class="pager-links">
                {link(has_prev, (1, None), "First page", "«")}
                {link(has_prev, (page.saturating_sub(1).max(1), first_id.map(Cursor::Before)), "Previous page", "‹")}
                <span class="page-link current" aria-current="page" aria-label=format!("Page {page}")>
                    {format_count(page.into())}
                </span>
                {link(has_next, (page + 1, last_id.map(Cursor::After)), "Next page", "›")}
                <Transition fallback=move || link(has_next, (page + 1, Some(Cursor::End)), "Last page", "»")>
                    {move || Suspend::new(async move {
                        link(has_next, (last_page(count.await), Some(Cursor::End)), "Last page", "»")
                    })}
                </Transition>
            </div>
        </nav>
    }
}

/// The rows-per-page selector; `on_change` receives the chosen size.
#[component]
pub fn PageSizeSelect(per_page: u32, on_change: Callback<u32>) -> impl IntoView {
    view! {
        <label class="page-size">
            "Rows per page"
            <select on:change=move |ev| {
                if let Ok(size) = event_target_value(&ev).parse::<u32>() {
                    on_change.run(size);
                }
            }>
                {PAGE_SIZES
                    .into_iter()
                    .map(|size| {
                        view! {
                            <option value=size.to_string() selected=size == per_page>
                                {size.to_string()}
                            </option>
                        }
                    })
                    .collect_view()}
            </select>
        </label>
    }
}
