//! Monitoring → Overview, the first page after sign-in: the last day's and
//! week's events, failed sign-ins, deletions, exports and new IPs, the
//! week's activity, and the chain, streams and alerts at a glance. Every
//! figure links to the view behind it.

use crate::charts::{Overview, OverviewWindow};
use crate::components::activity_chart::{chart_zone, ActivityChart};
use crate::components::error_notice::ErrorNotice;
use crate::components::integrity_badge::badge_parts;
use crate::components::layout::Breadcrumb;
use crate::errors::AppError;
use crate::functions::events::{event_histogram, get_overview};
use crate::integrity::IntegrityStatus;
use crate::models::{format_count, Role, UserInfo};
use crate::query::EventQuery;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_navigate;

/// How often the figures are read again while the tab is visible.
const REFRESH_MS: u64 = 30_000;

fn log_href(range: &str, action: Option<&str>) -> String {
    let q = EventQuery {
        range: Some(range.to_string()),
        actions: action.map(|a| vec![a.to_string()]).unwrap_or_default(),
        ..EventQuery::default()
    };
    crate::routes::activity_log::href_of(&q)
}

#[component]
pub fn OverviewPage() -> impl IntoView {
    let tick = RwSignal::new(0u64);
    crate::components::poll::while_visible(REFRESH_MS, move || tick.update(|t| *t += 1));
    let figures = Resource::new(move || tick.get(), |_| get_overview());
    let zone = chart_zone();
    let week = EventQuery {
        range: Some("7d".into()),
        ..EventQuery::default()
    };
    let week_for_chart = week.clone();
    let histogram = Resource::new(
        move || (zone.get(), tick.get()),
        move |(zone, _)| event_histogram(week_for_chart.clone(), zone),
    );
    let navigate = use_navigate();
    let zoom = Callback::new(move |(from, to): (i64, i64)| {
        let q = week.clone().zoomed(from, to);
        navigate(
            &crate::routes::activity_log::href_of(&q),
            Default::default(),
        );
    });
    let status = use_context::<Resource<Result<IntegrityStatus, AppError>>>();
    let me = use_context::<Resource<Result<UserInfo, AppError>>>();
    view! {
        <Title text="Overview" />
        <Breadcrumb trail=vec!["Monitoring", "Overview"] />
        <div class="page-header">
            <div>
                <h1>"Overview"</h1>
                <p class="page-intro">"The last day and week at a glance. Every figure opens the events behind it."</p>
            </div>
        </div>
        <Transition fallback=|| view! { <p class="loading">"Loading figures…"</p> }>
            {move || Suspend::new(async move {
                match figures.await {
                    Ok(Overview { windows }) => windows
                        .into_iter()
                        .map(|w| view! { <WindowFigures w /> })
                        .collect_view()
                        .into_any(),
                    Err(error) => view! { <ErrorNotice error /> }.into_any(),
                }
            })}
        </Transition>
        <section class="card chart-card">
            <Transition fallback=|| view! { <div class="chart-placeholder"></div> }>
                {move || Suspend::new(async move {
                    match histogram.await {
                        Ok(Some(histogram)) => {
                            view! { <ActivityChart histogram zoom title="Activity in the last 7 days" /> }.into_any()
                        }
                        Ok(None) => ().into_any(),
                        Err(error) => view! { <ErrorNotice error /> }.into_any(),
                    }
                })}
            </Transition>
        </section>
        {status.zip(me).map(|(status, me)| view! { <StatusCards status me /> })}
    }
}

/// One window's figures, each a link to its view.
#[component]
fn WindowFigures(w: OverviewWindow) -> impl IntoView {
    let figure = |label: &'static str, n: u64, href: String, testid: String, warn: bool| {
        view! {
            <a class="figure" class:warn={warn && n > 0} href=href data-testid=testid>
                <span class="figure-value">{format_count(n)}</span>
                <span class="figure-label">{label}</span>
            </a>
        }
    };
    let r = w.range.clone();
    let id = |name: &str| format!("figure-{}-{name}", w.range);
    view! {
        <section class="card figures" aria-label=w.label.clone()>
            <h2 class="card-title">{w.label.clone()}</h2>
            <div class="figure-row">
                {figure("Events", w.events, log_href(&r, None), id("events"), false)}
                {figure("Failed sign-ins", w.failed_sign_ins, log_href(&r, Some("LOGIN_FAILED")), id("failed"), true)}
                {figure("Deletions", w.deletions, log_href(&r, Some("DELETE")), id("deletions"), true)}
                {figure("Exports", w.exports, log_href(&r, Some("EXPORT")), id("exports"), false)}
                {w.new_ips.map(|n| figure("New IPs", n, "/alerts".to_string(), id("new-ips"), true))}
            </div>
        </section>
    }
}

/// The chain, streams and alerts, from the top bar's status.
#[component]
fn StatusCards(
    status: Resource<Result<IntegrityStatus, AppError>>,
    me: Resource<Result<UserInfo, AppError>>,
) -> impl IntoView {
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                let role = me.await.ok().map(|u| u.role);
                let allows = move |r: Role| role.is_some_and(|role| role.allows(r));
                status.await.ok().map(|s| {
                    let (class, text, title) = badge_parts(&s);
                    view! {
                        <section class="card figures" aria-label="State">
                            <h2 class="card-title">"State"</h2>
                            <div class="figure-row">
                                <a class=format!("figure {class}") href="/integrity" title=title data-testid="figure-chain">
                                    <span class="figure-value small">{text}</span>
                                    <span class="figure-label">"Hash chain"</span>
                                </a>
                                {allows(Role::Auditor).then(|| view! {
                                    <a class="figure" class:warn={s.open_alerts > 0} href="/alerts" data-testid="figure-open-alerts">
                                        <span class="figure-value">{format_count(u64::try_from(s.open_alerts).unwrap_or(0))}</span>
                                        <span class="figure-label">"Open alerts"</span>
                                    </a>
                                })}
                                {allows(Role::Admin).then(|| view! {
                                    <a class="figure" class:warn={s.failing_streams > 0} href="/settings/streams" data-testid="figure-failing-streams">
                                        <span class="figure-value">{format_count(u64::try_from(s.failing_streams).unwrap_or(0))}</span>
                                        <span class="figure-label">"Failing streams"</span>
                                    </a>
                                })}
                            </div>
                        </section>
                    }
                })
            })}
        </Transition>
    }
}
