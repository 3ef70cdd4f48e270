//! Monitoring → Admin Sessions: every request a signed-in person made to
//! Auditdeck, newest first, filtered and paged, with the view in the URL and
//! auto refresh — built from the same pieces as the Activity Log.

use crate::bulk::{ExportFormat, SessionSelection};
use crate::components::auto_refresh::{url_setter, AutoRefresh, Fresh, Refresh, Settled, Shown};
use crate::components::bulk::{Bulk, ExportMenu, ExportProgress};
use crate::components::error_notice::ErrorNotice;
use crate::components::layout::Breadcrumb;
use crate::components::pager::{
    live_count, CountLabel, LiveCount, PagePosition, PageSizeSelect, Pager,
};
use crate::components::range_picker::{DateRangePicker, RangeValue};
use crate::components::selection::{PageCheckbox, PageSelected, RowCheckbox, SelectionState};
use crate::components::sort_header::SortHeader;
use crate::components::zone::{Time, UtcToggle};
use crate::functions::sessions::{count_admin_sessions, list_admin_sessions};
use crate::models::{format_count, format_duration, SessionPage, SessionRow};
use crate::query::{Cursor, TimeRange};
use crate::routes::activity_log::marked;
use crate::session_query::{SessionQuery, SessionSort, METHODS, REQUEST_KINDS};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::{use_navigate, use_query_map};
use std::sync::Arc;

pub const PATH: &str = "/admin-sessions";

fn href_of(q: &SessionQuery) -> String {
    format!("{PATH}{}", q.to_query_string())
}

#[component]
pub fn AdminSessionsPage() -> impl IntoView {
    let params = use_query_map();
    let query = Memo::new(move |_| params.with(|p| SessionQuery::from_params(|k| p.get_str(k))));
    let asked = Memo::new(move |_| query.get().map(|q| SessionQuery { refresh: None, ..q }));
    let refresh = Refresh::new();
    let sessions = Resource::new(
        move || (asked.get(), refresh.tick.get()),
        |(query, _)| async move {
            match query {
                Ok(query) => list_admin_sessions(query).await,
                Err(e) => Err(e),
            }
        },
    );
    let count = live_count(
        move || asked.get().ok().map(SessionQuery::first_page),
        refresh.tick.into(),
        |query| async move { count_admin_sessions(query).await.ok() },
    );
    let navigate = use_navigate();
    let go = Callback::new(move |q: SessionQuery| navigate(&href_of(&q), Default::default()));
    let set_every = url_setter(move |every| {
        query.get_untracked().ok().map(|q| {
            href_of(&SessionQuery {
                refresh: every,
                ..q
            })
        })
    });
    let every = Signal::derive(move || query.get().ok().and_then(|q| q.refresh));
    let filters_only = Memo::new(move |_| match query.get() {
        Ok(q) => q.first_page(),
        // A refused view keeps what was typed in the search box, to be mended.
        Err(_) => SessionQuery {
            q: params.with(|p| p.get_str("q").map(str::to_string)),
            ..SessionQuery::default()
        },
    });
    let shown = Shown::<SessionPage>::new();
    let bulk = Bulk::new();
    bulk.clear_on_filter_change(move || {
        query
            .get()
            .map(|q| SessionSelection::Filter(Box::new(q)).describe())
            .unwrap_or_default()
    });

    view! {
        <Title text="Admin Sessions" />
        <Breadcrumb trail=vec!["Monitoring", "Admin Sessions"] />
        <div class="page-header">
            <div>
                <h1>"Admin Sessions"</h1>
                <p class="page-intro">"Every request made to Auditdeck by a signed-in person: pages opened and calls made."</p>
            </div>
            <AutoRefresh every set_every refresh />
        </div>
        {move || {
            let current = filters_only.get();
            view! { <SessionFilters current go /> }
        }}
        <section class="card table-card">
            <Transition fallback=|| view! { <p class="loading">"Loading requests…"</p> }>
                {move || Suspend::new(async move {
                    let result = sessions.await;
                    // The page may be gone when the load ends: then draw nothing.
                    let (Some(asked), Some(query)) = (asked.try_get(), query.try_get()) else {
                        return ().into_any();
                    };
                    let settled = match asked {
                        Ok(asked) => shown.settle(asked.to_query_string(), result, refresh, SessionPage::ids),
                        Err(error) => {
                            refresh.done();
                            Err(error)
                        }
                    };
                    match (settled, query) {
                        (Ok(Settled { data: page, fresh }), Ok(current)) => {
                            let fresh = Arc::new(Fresh { ids: fresh, class: refresh.fresh_class() });
                            view! { <SessionsView page count current go fresh bulk /> }.into_any()
                        }
                        (Err(error), _) | (_, Err(error)) => view! { <ErrorNotice error /> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

/// Date range, search, type, method and Hide Me. Choices apply at once;
/// the search on Enter or Apply.
#[component]
fn SessionFilters(current: SessionQuery, go: Callback<SessionQuery>) -> impl IntoView {
    let base = StoredValue::new(current.clone());
    let search_text = RwSignal::new(current.q.clone().unwrap_or_default());
    let apply = move |change: &dyn Fn(&mut SessionQuery)| {
        let mut q = base.get_value();
        change(&mut q);
        go.run(q.first_page());
    };
    let choice = |value: &'static str, selected: bool| {
        view! { <option value=value selected=selected>{value}</option> }
    };
    let kind = current.kind.clone();
    let method = current.method.clone();
    let clear = href_of(&SessionQuery {
        refresh: current.refresh,
        ..SessionQuery::default()
    });
    let filtered = current.is_filtered();
    view! {
        <form
            class="filter-bar card"
            role="search"
            aria-label="Filter requests"
            on:submit=move |ev| {
                ev.prevent_default();
                let search = search_text.get_untracked().trim().to_string();
                apply(&|q| q.q = (!search.is_empty()).then(|| search.clone()));
            }
        >
            <div class="filter-row">
                <DateRangePicker
                    value=Signal::stored(RangeValue::of(&current.times()))
                    on_apply=Callback::new(move |range: RangeValue| {
                        let TimeRange { range, from, to } = range.time_range();
                        apply(&|q| {
                            q.range = range.clone();
                            q.from = from;
                            q.to = to;
                        })
                    })
                />
                <label class="filter search-filter">
                    <span class="filter-label">"Search"</span>
                    <input
                        type="search"
                        placeholder="Admin, URL or IP"
                        value=current.q.clone()
                        on:input=move |ev| search_text.set(event_target_value(&ev))
                    />
                </label>
                <label class="filter">
                    <span class="filter-label">"Type"</span>
                    <select on:change=move |ev| {
                        let value = event_target_value(&ev);
                        apply(&|q| q.kind = (!value.is_empty()).then(|| value.clone()))
                    }>
                        <option value="" selected=kind.is_none()>"Any type"</option>
                        {REQUEST_KINDS
                            .into_iter()
                            .map(|k| choice(k, kind.as_deref() == Some(k)))
                            .collect_view()}
                    </select>
                </label>
                <label class="filter">
                    <span class="filter-label">"Method"</span>
                    <select on:change=move |ev| {
                        let value = event_target_value(&ev);
                        apply(&|q| q.method = (!value.is_empty()).then(|| value.clone()))
                    }>
                        <option value="" selected=method.is_none()>"Any method"</option>
                        {METHODS
                            .into_iter()
                            .map(|m| choice(m, method.as_deref() == Some(m)))
                            .collect_view()}
                    </select>
                </label>
                <label class="check hide-me">
                    <input
                        type="checkbox"
                        checked=current.hide_me
                        on:change=move |ev| {
                            let hide = event_target_checked(&ev);
                            apply(&|q| q.hide_me = hide)
                        }
                    />
                    <span>"Hide Me"</span>
                </label>
                <div class="filter-actions">
                    <button type="submit" class="button primary">"Apply"</button>
                    {filtered.then(|| view! { <A href=clear attr:class="button">"Clear filters"</A> })}
                </div>
            </div>
        </form>
    }
}

#[component]
fn SessionsView(
    page: SessionPage,
    count: LiveCount,
    current: SessionQuery,
    go: Callback<SessionQuery>,
    fresh: Arc<Fresh>,
    bulk: Bulk,
) -> impl IntoView {
    let position = PagePosition::of(&page);
    let page_ids = Arc::new(page.ids());
    let more = page.has_prev || page.has_next;
    let selected = bulk.selected;
    let bar_query = current.clone();
    let SessionPage { rows, .. } = page;
    let empty = rows.is_empty();
    let terms = Arc::new(current.search_terms());
    let base = current.clone();
    let href = Callback::new(move |(page, cursor): (u32, Option<Cursor>)| {
        href_of(&base.clone().at(page, cursor))
    });
    let sized = current.clone();
    let on_page_size = Callback::new(move |size: u32| go.run(sized.clone().with_page_size(size)));
    let header = |label: &'static str, column: SessionSort| {
        view! {
            <SortHeader
                label
                numeric=column == SessionSort::Duration
                active=current.sort == column
                descending=current.descending
                href=href_of(&current.clone().sorted_by(column))
            />
        }
    };
    view! {
        <SessionsBar bulk current=bar_query count page=page_ids.clone() more />
        <div class="table-toolbar">
            <CountLabel count noun=("request", "requests") />
            <div class="toolbar-right">
                <UtcToggle />
                <PageSizeSelect per_page=position.per_page on_change=on_page_size />
            </div>
        </div>
        <div class="table-scroll">
            <table class="data-table sessions cards">
                <thead>
                    <tr>
                        <PageCheckbox selected page=page_ids.clone() />
                        {header("Date", SessionSort::Date)}
                        {header("Admin", SessionSort::Admin)}
                        {header("IP address", SessionSort::Ip)}
                        {header("URL", SessionSort::Url)}
                        {header("Type", SessionSort::Type)}
                        {header("Method", SessionSort::Method)}
                        {header("Status", SessionSort::Status)}
                        {header("Duration", SessionSort::Duration)}
                    </tr>
                </thead>
                <tbody>
                    {rows
                        .into_iter()
                        .map(|row| {
                            let fresh = fresh.class_of(row.id);
                            view! { <SessionRowView row terms=terms.clone() fresh selected page=page_ids.clone() /> }
                        })
                        .collect_view()}
                </tbody>
            </table>
            {empty.then(|| view! { <p class="empty">"No requests match this view."</p> })}
        </div>
        <Pager position count href />
    }
}

/// The selection bar of Admin Sessions: count, select all matching, export
/// (CSV, JSON Lines), clear — the same selection as the Activity Log's.
#[component]
fn SessionsBar(
    bulk: Bulk,
    current: SessionQuery,
    count: LiveCount,
    page: Arc<Vec<i64>>,
    more: bool,
) -> impl IntoView {
    let view_q = StoredValue::new(current);
    let selected = bulk.selected;
    let total = move || {
        count
            .get()
            .flatten()
            .map(|c| c.number())
            .unwrap_or_else(|| "the".into())
    };
    let chosen = move |whole: bool| -> Option<SessionSelection> {
        let view_q = view_q.try_get_value()?;
        selected.with_untracked(move |s| {
            if whole || s.all_matching {
                Some(SessionSelection::Filter(Box::new(view_q.clone())))
            } else if s.ids.is_empty() {
                None
            } else {
                Some(SessionSelection::Ids(s.ids.iter().copied().collect()))
            }
        })
    };
    let menu = move |label: &'static str, whole: bool| {
        let on_pick = Callback::new(move |format| {
            if let Some(selection) = chosen(whole) {
                bulk.start_session_export(selection, format);
            }
        });
        view! { <ExportMenu label formats=&[ExportFormat::Csv, ExportFormat::JsonLines] on_pick /> }
    };
    let page_all = move || selected.try_with(|s| s.page_selected(&page)) == Some(PageSelected::All);
    view! {
        <div class="bulk-bar" data-testid="bulk-bar">
            {move || {
                selected.with(|s| {
                    if s.is_empty() {
                        menu("Export all matching", true).into_any()
                    } else {
                        let summary = if s.all_matching {
                            format!("All {} matching requests selected", total())
                        } else {
                            format!("{} selected", format_count(s.ids.len() as u64))
                        };
                        view! {
                            <span class="bulk-count" data-testid="selection-count">{summary}</span>
                            {menu("Export", false)}
                            <button type="button" class="button" on:click=move |_| selected.update(SelectionState::clear)>
                                "Clear selection"
                            </button>
                        }
                            .into_any()
                    }
                })
            }}
            {move || {
                (more && page_all() && !selected.with(|s| s.all_matching))
                    .then(|| {
                        view! {
                            <button
                                type="button"
                                class="link-button"
                                on:click=move |_| selected.update(SelectionState::select_all_matching)
                            >
                                {move || format!("Select all {} requests that match this filter", total())}
                            </button>
                        }
                    })
            }}
        </div>
        <ExportProgress bulk />
        {move || bulk.notice.get().map(|n| view! { <p class="bulk-notice" role="status">{n}</p> })}
    }
}

/// CSS class of a status: 2xx, 3xx, 4xx, 5xx.
pub fn status_class(status: u16) -> &'static str {
    match status {
        200..=299 => "status-ok",
        300..=399 => "status-redirect",
        400..=499 => "status-client-error",
        _ => "status-server-error",
    }
}

#[component]
fn SessionRowView(
    row: SessionRow,
    terms: Arc<Vec<String>>,
    fresh: Option<&'static str>,
    selected: RwSignal<SelectionState>,
    page: Arc<Vec<i64>>,
) -> impl IntoView {
    let t = &terms;
    let id = row.id;
    let kind_class = format!("badge kind-{}", row.kind.to_ascii_lowercase());
    let method_class = format!("badge method-{}", row.method.to_ascii_lowercase());
    view! {
        <tr data-session-id=id class=fresh class:selected=move || selected.try_with(|s| s.is_selected(id)).unwrap_or(false)>
            <RowCheckbox id selected page noun="request" />
            <td class="nowrap c-date"><Time micros=row.occurred_at /></td>
            <td class="c-who">
                <div class="initiator">{marked(&row.user_name, t)}</div>
                <div class="initiator-email">{marked(&row.user_email, t)}</div>
            </td>
            <td class="mono c-ip" data-label="IP">{marked(row.ip.as_deref().unwrap_or_default(), t)}</td>
            <td class="mono url-cell c-url">{marked(&row.url, t)}</td>
            <td class="c-kind"><span class=kind_class>{row.kind.clone()}</span></td>
            <td class="c-method"><span class=method_class>{row.method.clone()}</span></td>
            <td class="c-status"><span class=format!("status {}", status_class(row.status))>{row.status}</span></td>
            <td class="num nowrap c-duration">{format_duration(row.duration_us)}</td>
        </tr>
    }
}

#[cfg(test)]
mod tests {
    use super::status_class;

    #[test]
    fn statuses_are_classed_by_family() {
        assert_eq!(status_class(200), "status-ok");
        assert_eq!(status_class(302), "status-redirect");
        assert_eq!(status_class(403), "status-client-error");
        assert_eq!(status_class(500), "status-server-error");
    }
}
