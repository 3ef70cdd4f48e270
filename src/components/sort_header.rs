//! A sortable column header: a link to the view sorted by it, with the
//! direction shown and announced (`aria-sort`).

use leptos::prelude::*;
use leptos_router::components::A;

/// `active`: the view is sorted by this column; `descending` its direction;
/// `href` the view sorted by it (flipped when active); `numeric` aligns it
/// with a column of numbers.
#[component]
pub fn SortHeader(
    label: &'static str,
    active: bool,
    descending: bool,
    href: String,
    #[prop(optional)] numeric: bool,
) -> impl IntoView {
    let (aria, arrow) = match (active, descending) {
        (false, _) => ("none", "↕"),
        (true, true) => ("descending", "▼"),
        (true, false) => ("ascending", "▲"),
    };
    view! {
        <th scope="col" aria-sort=aria class:sorted=active class:num=numeric>
            <A href=href attr:class="sort-link" attr:title=format!("Sort by {}", label.to_lowercase())>
                {label}
                <span class="sort-arrow" aria-hidden="true">{arrow}</span>
            </A>
        </th>
    }
}
