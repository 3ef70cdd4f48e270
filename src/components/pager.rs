use crate::models::{format_count, EventCount, PAGE_SIZES};
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
            view! { <A href=href.run(target) attr:class="page-link" attr:aria-label=label>{text}</A> }
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
                <Suspense fallback=move || format!("Page {}", format_count(page.into()))>
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
                </Suspense>
            </span>
            <div class="pager-links">
                {link(has_prev, (1, None), "First page", "«")}
                {link(has_prev, (page.saturating_sub(1).max(1), first_id.map(Cursor::Before)), "Previous page", "‹")}
                <span class="page-link current" aria-current="page" aria-label=format!("Page {page}")>
                    {format_count(page.into())}
                </span>
                {link(has_next, (page + 1, last_id.map(Cursor::After)), "Next page", "›")}
                <Suspense fallback=move || link(has_next, (page + 1, Some(Cursor::End)), "Last page", "»")>
                    {move || Suspend::new(async move {
                        link(has_next, (last_page(count.await), Some(Cursor::End)), "Last page", "»")
                    })}
                </Suspense>
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
