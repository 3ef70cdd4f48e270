use crate::models::{format_count, page_window, PAGE_SIZES};
use leptos::prelude::*;
use leptos_router::components::A;

/// Page links for a paged table: first, previous, a window of page numbers,
/// next and last. `href` gives the address of a page number.
#[component]
pub fn Pager(
    page: u32,
    page_count: u32,
    total: u64,
    per_page: u32,
    href: Callback<u32, String>,
) -> impl IntoView {
    let first_row = if total == 0 {
        0
    } else {
        u64::from(page - 1) * u64::from(per_page) + 1
    };
    let last_row = (u64::from(page) * u64::from(per_page)).min(total);
    let link = move |target: u32, label: &'static str, text: &'static str| {
        if target == page || target == 0 || target > page_count {
            view! { <span class="page-link disabled" aria-disabled="true" aria-label=label>{text}</span> }
                .into_any()
        } else {
            view! { <A href=href.run(target) attr:class="page-link" attr:aria-label=label>{text}</A> }
                .into_any()
        }
    };
    view! {
        <nav class="pager" aria-label="Pagination">
            <span class="pager-summary">
                {format!(
                    "{}–{} of {}",
                    format_count(first_row),
                    format_count(last_row),
                    format_count(total),
                )}
            </span>
            <div class="pager-links">
                {link(1, "First page", "«")}
                {link(page.saturating_sub(1), "Previous page", "‹")}
                {page_window(page, page_count)
                    .into_iter()
                    .map(|p| match p {
                        None => view! { <span class="page-gap" aria-hidden="true">"…"</span> }.into_any(),
                        Some(p) if p == page => {
                            view! {
                                <span class="page-link current" aria-current="page" aria-label=format!("Page {p}")>
                                    {format_count(u64::from(p))}
                                </span>
                            }
                                .into_any()
                        }
                        Some(p) => {
                            view! {
                                <A href=href.run(p) attr:class="page-link" attr:aria-label=format!("Page {p}")>
                                    {format_count(u64::from(p))}
                                </A>
                            }
                                .into_any()
                        }
                    })
                    .collect_view()}
                {link(page + 1, "Next page", "›")}
                {link(page_count, "Last page", "»")}
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
