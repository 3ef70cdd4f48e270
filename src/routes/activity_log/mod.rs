//! Monitoring → Activity Log: every audit event, filtered, searched, sorted
//! and paged, with the whole view in the URL.

mod breakdowns;
mod bulk;
mod details;
mod filters;

use crate::bulk::Selection;
use crate::components::activity_chart::{chart_zone, ActivityChart};
use crate::components::auto_refresh::{url_setter, AutoRefresh, Fresh, Refresh, Settled, Shown};
use crate::components::bulk::Bulk;
use crate::components::error_notice::ErrorNotice;
use crate::components::layout::Breadcrumb;
use crate::components::pager::{
    live_count, CountLabel, LiveCount, PagePosition, PageSizeSelect, Pager,
};
use crate::components::selection::{PageCheckbox, RowCheckbox, SelectionState};
use crate::components::sort_header::SortHeader;
use crate::components::zone::{Time, UtcToggle};
use crate::errors::AppError;
use crate::functions::events::{count_events, event_histogram, get_filter_options, list_events};
use crate::models::{EventPage, EventRow, COMMON_ACTIONS};
use crate::models::{Role, UserInfo};
use crate::query::{highlight, Cursor, EventQuery, SortColumn};
use breakdowns::BreakdownsPanel;
use bulk::{BulkBar, DeleteDialog};
use details::{DetailModal, DiffModal};
use filters::FilterBar;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_query_map};
use std::sync::Arc;

pub const PATH: &str = "/activity-log";

pub(crate) fn href_of(q: &EventQuery) -> String {
    format!("{PATH}{}", q.to_query_string())
}

/// Which modal is open, and for which event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    Details(i64),
    Difference(i64),
}

#[component]
pub fn ActivityLogPage() -> impl IntoView {
    let params = use_query_map();
    let query = Memo::new(move |_| params.with(|p| EventQuery::from_params(|k| p.get_str(k))));
    // What the server is asked: the view without its auto-refresh setting,
    // so switching auto refresh does not reload anything.
    let asked = Memo::new(move |_| query.get().map(|q| EventQuery { refresh: None, ..q }));
    let refresh = Refresh::new();
    let events = Resource::new(
        move || (asked.get(), refresh.tick.get()),
        |(query, _)| async move {
            match query {
                Ok(query) => list_events(query).await,
                Err(e) => Err(e),
            }
        },
    );
    // The count does not change with the page, so paging does not refetch it.
    let count = live_count(
        move || asked.get().ok().map(EventQuery::first_page),
        refresh.tick.into(),
        |query| async move { count_events(query).await.ok() },
    );
    let options = Resource::new(|| (), |_| get_filter_options());
    let navigate = use_navigate();
    let go = Callback::new(move |q: EventQuery| navigate(&href_of(&q), Default::default()));
    // The chart and the breakdowns follow the filters, not the page or sort.
    let view_filters = Memo::new(move |_| asked.get().ok().map(EventQuery::filters_only));
    let zone = chart_zone();
    let histogram = Resource::new(
        move || (view_filters.get(), zone.get(), refresh.tick.get()),
        |(view, zone, _)| async move {
            match view {
                Some(view) => Some(event_histogram(view, zone).await),
                None => None,
            }
        },
    );
    let zoom = Callback::new(move |(from, to): (i64, i64)| {
        if let Ok(q) = query.get_untracked() {
            go.run(q.zoomed(from, to));
        }
    });
    let set_every = url_setter(move |every| {
        query.get_untracked().ok().map(|q| {
            href_of(&EventQuery {
                refresh: every,
                ..q
            })
        })
    });
    let every = Signal::derive(move || query.get().ok().and_then(|q| q.refresh));
    let open = RwSignal::new(None::<Open>);
    // The filter bar is drawn again only when the filters change, not the page.
    let filters_only = Memo::new(move |_| query.get().map(|q| q.first_page()).unwrap_or_default());
    let shown = Shown::<EventPage>::new();
    let bulk = Bulk::new();
    let me = use_context::<Resource<Result<UserInfo, AppError>>>();
    bulk.clear_on_filter_change(move || {
        query
            .get()
            .map(|q| Selection::Filter(Box::new(q)).describe())
            .unwrap_or_default()
    });

    view! {
        <Title text="Activity Log" />
        <Breadcrumb trail=vec!["Monitoring", "Activity Log"] />
        <div class="page-header">
            <div>
                <h1>"Activity Log"</h1>
                <p class="page-intro">"Every action in your systems: who did what, when, and from where."</p>
            </div>
            <AutoRefresh every set_every refresh />
        </div>
        <Transition fallback=|| view! { <div class="filter-bar card"></div> }>
            {move || Suspend::new(async move {
                let options = options.await.unwrap_or_default();
                filters_only
                    .try_get()
                    .map(|current| view! { <FilterBar current options go /> })
            })}
        </Transition>
        <section class="card chart-card">
            <Transition fallback=|| view! { <div class="chart-placeholder"></div> }>
                {move || Suspend::new(async move {
                    match histogram.await {
                        Some(Ok(Some(histogram))) => view! { <ActivityChart histogram zoom /> }.into_any(),
                        Some(Ok(None)) => view! { <p class="muted chart-empty">"No events yet."</p> }.into_any(),
                        Some(Err(error)) => view! { <ErrorNotice error /> }.into_any(),
                        None => ().into_any(),
                    }
                })}
            </Transition>
        </section>
        <BreakdownsPanel current=view_filters />
        <section class="card table-card">
            <Transition fallback=|| view! { <p class="loading">"Loading events…"</p> }>
                {move || Suspend::new(async move {
                    let result = events.await;
                    let role = match me {
                        Some(me) => me.await.ok().map(|u| u.role),
                        None => None,
                    };
                    // The page may be gone when the load ends: then draw nothing.
                    let (Some(asked), Some(query)) = (asked.try_get(), query.try_get()) else {
                        return ().into_any();
                    };
                    let settled = match asked {
                        Ok(asked) => shown.settle(asked.to_query_string(), result, refresh, EventPage::ids),
                        Err(error) => {
                            refresh.done();
                            Err(error)
                        }
                    };
                    match (settled, query) {
                        (Ok(Settled { data: page, fresh }), Ok(current)) => {
                            let fresh = Arc::new(Fresh { ids: fresh, class: refresh.fresh_class() });
                            view! { <EventsView page count current go open fresh bulk role /> }.into_any()
                        }
                        (Err(error), _) | (_, Err(error)) => view! { <ErrorNotice error /> }.into_any(),
                    }
                })}
            </Transition>
        </section>
        {move || match open.get() {
            Some(Open::Details(id)) => view! { <DetailModal id open /> }.into_any(),
            Some(Open::Difference(id)) => view! { <DiffModal id open /> }.into_any(),
            None => ().into_any(),
        }}
        <DeleteDialog bulk refresh />
    }
}

#[component]
fn EventsView(
    page: EventPage,
    count: LiveCount,
    current: EventQuery,
    go: Callback<EventQuery>,
    open: RwSignal<Option<Open>>,
    fresh: Arc<Fresh>,
    bulk: Bulk,
    /// The signed-in user's role: auditors and admins select rows.
    role: Option<Role>,
) -> impl IntoView {
    let position = PagePosition::of(&page);
    let page_ids = Arc::new(page.ids());
    let selecting = role.filter(|r| r.allows(Role::Auditor));
    let more = page.has_prev || page.has_next;
    let selected = bulk.selected;
    let EventPage { rows, .. } = page;
    let per_page = position.per_page;
    let empty = rows.is_empty();
    let terms = Arc::new(current.search_terms());
    let base = current.clone();
    let href = Callback::new(move |(page, cursor): (u32, Option<Cursor>)| {
        href_of(&base.clone().at(page, cursor))
    });
    let sized = current.clone();
    let on_page_size = Callback::new(move |size: u32| go.run(sized.clone().with_page_size(size)));
    let header = |label: &'static str, column: SortColumn| {
        view! {
            <SortHeader
                label
                active=current.sort == column
                descending=current.descending
                href=href_of(&current.clone().sorted_by(column))
            />
        }
    };
    let bar_query = current.clone();
    view! {
        {selecting.map(|role| {
            view! { <BulkBar bulk current=bar_query count role page=page_ids.clone() more /> }
        })}
        <div class="table-toolbar">
            <CountLabel count />
            <div class="toolbar-right">
                <UtcToggle />
                <PageSizeSelect per_page on_change=on_page_size />
            </div>
        </div>
        <div class="table-scroll">
            <table class="data-table events cards">
                <thead>
                    <tr>
                        {selecting.map(|_| view! { <PageCheckbox selected page=page_ids.clone() /> })}
                        <th scope="col">"ID"</th>
                        {header("Date", SortColumn::Date)}
                        {header("IP address", SortColumn::Ip)}
                        {header("Initiator", SortColumn::User)}
                        {header("Action", SortColumn::Action)}
                        {header("Table", SortColumn::Table)}
                        <th scope="col">"Primary key"</th>
                        <th scope="col">"Description"</th>
                        <th scope="col" class="actions-col">
                            <span class="sr-only">"Actions"</span>
                        </th>
                    </tr>
                </thead>
                <tbody>
                    {rows
                        .into_iter()
                        .map(|row| {
                            let fresh = fresh.class_of(row.id);
                            let check = selecting.map(|_| {
                                view! { <RowCheckbox id=row.id selected page=page_ids.clone() noun="event" /> }.into_any()
                            });
                            view! { <EventRowView row terms=terms.clone() open fresh check selected /> }
                        })
                        .collect_view()}
                </tbody>
            </table>
            {empty.then(|| view! { <p class="empty">"No events match this view."</p> })}
        </div>
        <Pager position count href />
    }
}

/// Text with the search terms marked.
pub fn marked(text: &str, terms: &[String]) -> impl IntoView {
    highlight(text, terms)
        .into_iter()
        .map(|(run, hit)| {
            if hit {
                view! { <mark>{run}</mark> }.into_any()
            } else {
                view! { <span>{run}</span> }.into_any()
            }
        })
        .collect_view()
}

#[component]
fn EventRowView(
    row: EventRow,
    terms: Arc<Vec<String>>,
    open: RwSignal<Option<Open>>,
    /// The highlight of a row a refresh brought.
    fresh: Option<&'static str>,
    /// The row's selection checkbox, when the user may select.
    check: Option<AnyView>,
    selected: RwSignal<SelectionState>,
) -> impl IntoView {
    let id = row.id;
    let action_class = action_class(&row.action);
    let name = row.initiator.display_name();
    let t = &terms;
    view! {
        <tr data-event-id=id class=fresh class:selected=move || selected.try_with(|s| s.is_selected(id)).unwrap_or(false)>
            {check}
            <td class="num c-id" data-label="ID">{id}</td>
            <td class="nowrap c-date"><Time micros=row.occurred_at /></td>
            <td class="mono c-ip" data-label="IP">{marked(row.ip.as_deref().unwrap_or_default(), t)}</td>
            <td class="c-who">
                <div class="initiator">{marked(&name, t)}</div>
                {row
                    .initiator
                    .email
                    .as_deref()
                    .map(|email| view! { <div class="initiator-email">{marked(email, t)}</div> })}
            </td>
            <td class="c-action">
                <span class=format!("badge {action_class}")>{row.action.clone()}</span>
            </td>
            <td class="mono c-table" data-label="Table">{marked(row.table_name.as_deref().unwrap_or_default(), t)}</td>
            <td class="mono c-key" data-label="Key">{marked(row.primary_key.as_deref().unwrap_or_default(), t)}</td>
            <td class="description c-desc">{marked(&row.description, t)}</td>
            <td class="row-actions c-actions">
                <button
                    type="button"
                    class="button small"
                    id=format!("view-{id}")
                    aria-label=format!("View event {id}")
                    on:click=move |_| open.set(Some(Open::Details(id)))
                >
                    "View"
                </button>
                {row.has_changes.then(|| view! {
                    <button
                        type="button"
                        class="button small"
                        id=format!("diff-{id}")
                        aria-label=format!("View Difference of event {id}")
                        on:click=move |_| open.set(Some(Open::Difference(id)))
                    >
                        "View Difference"
                    </button>
                })}
            </td>
        </tr>
    }
}

/// CSS class of an action badge: one per common verb, one for custom verbs.
pub fn action_class(action: &str) -> String {
    if COMMON_ACTIONS.contains(&action) {
        format!("action-{}", action.to_ascii_lowercase().replace('_', "-"))
    } else {
        "action-custom".to_string()
    }
}
