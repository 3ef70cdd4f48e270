use crate::models::{format_count, EventCount, Keyed, Page, PAGE_SIZES};
use crate::query::Cursor;
use leptos::prelude::*;
use leptos_router::components::A;
use std::future::Future;

/// A table's count as the page shows it: `None` until the first answer,
/// then the last answer (`Some(None)` when the count could not be had).
#[derive(Clone, Copy)]
pub struct LiveCount(RwSignal<Option<Option<EventCount>>>);

impl LiveCount {
    pub fn get(&self) -> Option<Option<EventCount>> {
        self.0.get()
    }
}

/// A table's count, fetched by the browser once the page is up: the server
/// renders "Counting…" in its place and never waits for it (the page's last
/// byte, and so hydration, would wait too), and a client-side navigation
/// shows the rows as soon as they come. It is fetched again only when the
/// query's first page or the refresh tick changes, not when the page does;
/// while it is on its way the last count stays, and an answer to an older
/// question is dropped.
pub fn live_count<Q, F, Fut>(
    first_page: impl Fn() -> Option<Q> + Send + Sync + 'static,
    tick: Signal<u64>,
    fetch: F,
) -> LiveCount
where
    Q: Clone + PartialEq + Send + Sync + 'static,
    F: Fn(Q) -> Fut + 'static,
    Fut: Future<Output = Option<EventCount>> + 'static,
{
    let value = RwSignal::new(None);
    let source = Memo::new(move |_| (first_page(), tick.get()));
    let asked = StoredValue::new(0u64);
    // An effect: it runs in the browser only, after hydration.
    Effect::new(move |_| {
        let Some(query) = source.get().0 else {
            return;
        };
        let this = asked.try_update_value(|n| {
            *n += 1;
            *n
        });
        let fetching = fetch(query);
        leptos::task::spawn_local(async move {
            let answer = fetching.await;
            if asked.try_get_value() == this {
                value.try_set(Some(answer));
            }
        });
    });
    LiveCount(value)
}

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
    count: LiveCount,
    /// What is counted, singular and plural (default: events).
    #[prop(default = ("event", "events"))]
    noun: (&'static str, &'static str),
) -> impl IntoView {
    view! {
        <span class="result-count" data-testid="result-count">
            {move || match count.get() {
                None => "Counting…".to_string(),
                Some(Some(c)) => c.label_of(noun.0, noun.1),
                Some(None) => "Count unavailable".to_string(),
            }}
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
    count: LiveCount,
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
                {move || match count.get().flatten() {
                    Some(c) if c.exact => {
                        format!("Page {} of {}", format_count(page.into()), format_count(c.page_count(per_page).into()))
                    }
                    Some(c) => {
                        format!("Page {} of ≈ {}", format_count(page.into()), format_count(c.page_count(per_page).into()))
                    }
                    None => format!("Page {}", format_count(page.into())),
                }}
            </span>
            <div class="pager-links">
                {link(has_prev, (1, None), "First page", "«")}
                {link(has_prev, (page.saturating_sub(1).max(1), first_id.map(Cursor::Before)), "Previous page", "‹")}
                <span class="page-link current" aria-current="page" aria-label=format!("Page {page}")>
                    {format_count(page.into())}
                </span>
                {link(has_next, (page + 1, last_id.map(Cursor::After)), "Next page", "›")}
                {move || link(has_next, (last_page(count.get().flatten()), Some(Cursor::End)), "Last page", "»")}
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
