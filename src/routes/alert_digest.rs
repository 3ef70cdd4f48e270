//! Monitoring → Alerts → Weekly digest: a week of the log at a glance (the
//! actions, the rules that fired, new IPs, deletions and exports), each
//! figure linked to the events behind it, and an admin's subscription to
//! have it sent every Monday.

use crate::alerts::{digest_link, Digest, DigestPage};
use crate::components::error_notice::ErrorNotice;
use crate::components::form_message::FormError;
use crate::functions::alerts::{weekly_digest, SetDigestSubscription};
use crate::models::format_count;
use crate::query::encode_component;
use crate::routes::settings_alerts::ChannelSelect;
use leptos::prelude::*;

/// The digest of the week beginning `week` (none: the week just ended),
/// its weeks in `zone` (none: the viewer's, as the activity chart has it).
#[component]
pub fn DigestView(week: Signal<Option<i64>>, zone: Signal<Option<String>>) -> impl IntoView {
    let subscribe = ServerAction::<SetDigestSubscription>::new();
    let viewer = crate::components::activity_chart::chart_zone();
    let zone = Signal::derive(move || zone.get().unwrap_or_else(|| viewer.get()));
    let page = Resource::new(
        move || (week.get(), zone.get(), subscribe.version().get()),
        |(week, zone, _)| weekly_digest(week, Some(zone)),
    );
    view! {
        <Transition fallback=|| view! { <p class="loading">"Loading the digest…"</p> }>
            {move || Suspend::new(async move {
                match page.await {
                    Ok(page) => view! { <DigestBody page subscribe /> }.into_any(),
                    Err(error) => view! { <ErrorNotice error /> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// The Activity Log on the digest's week, with `filter` (`action=DELETE`).
fn week_link(d: &Digest, filter: &str) -> String {
    if filter.is_empty() {
        d.activity_link.clone()
    } else {
        format!("{}&{filter}", d.activity_link)
    }
}

fn count(n: i64) -> String {
    format_count(n.max(0) as u64)
}

#[component]
fn DigestBody(page: DigestPage, subscribe: ServerAction<SetDigestSubscription>) -> impl IntoView {
    let d = page.digest;
    let heading = page.title;
    let zone = page.zone;
    let previous = digest_link(page.previous, &zone);
    let next = page.next.map(|week| digest_link(week, &zone));
    let alerts: i64 = d.rules.iter().map(|r| r.alerts).sum();
    let action_link = |action: &str| week_link(&d, &format!("action={}", encode_component(action)));
    let figures = vec![
        ("Events", count(d.events), week_link(&d, "")),
        ("Alerts", count(alerts), "#digest-rules".to_string()),
        (
            "New IPs",
            count(d.new_ip_count),
            "#digest-new-ips".to_string(),
        ),
        ("Deletions", count(d.deletions), action_link("DELETE")),
        ("Exports", count(d.exports), action_link("EXPORT")),
    ];
    let by_action = d
        .by_action
        .iter()
        .map(|(action, n)| {
            let link = action_link(action);
            view! {
                <tr>
                    <td>
                        <a href=link>{action.clone()}</a>
                    </td>
                    <td class="num">{count(*n)}</td>
                </tr>
            }
        })
        .collect_view();
    let rules = d
        .rules
        .iter()
        .map(|r| {
            view! {
                <tr>
                    <td>{r.name.clone()}</td>
                    <td>
                        <span class=format!("badge severity-{}", r.severity)>{r.severity.clone()}</span>
                    </td>
                    <td class="num">{count(r.alerts)}</td>
                    <td class="num">{count(r.events)}</td>
                </tr>
            }
        })
        .collect_view();
    let no_rules = d.rules.is_empty();
    let new_ips = d.new_ips.clone();
    let more_ips = d.new_ip_count - new_ips.len() as i64;
    let who = |label: &'static str, rows: Vec<(String, i64)>| {
        view! {
            <div class="digest-who">
                <h3>{label}</h3>
                {if rows.is_empty() {
                    view! { <p class="empty">"No one."</p> }.into_any()
                } else {
                    view! {
                        <ul>
                            {rows
                                .into_iter()
                                .map(|(name, n)| view! { <li>{name} " · " {count(n)}</li> })
                                .collect_view()}
                        </ul>
                    }
                        .into_any()
                }}
            </div>
        }
    };
    view! {
        <section class="card digest" id="digest" aria-labelledby="digest-heading">
            <div class="card-head">
                <h2 id="digest-heading">{heading}</h2>
                <nav class="digest-weeks" aria-label="Weeks">
                    <a class="button small" href=previous>"← Previous week"</a>
                    {next.map(|href| view! { <a class="button small" href=href>"Next week →"</a> })}
                </nav>
            </div>
            <ul class="digest-figures">
                {figures
                    .into_iter()
                    .map(|(label, value, href)| {
                        view! {
                            <li>
                                <a href=href>
                                    <span class="digest-value">{value}</span>
                                    <span class="digest-label">{label}</span>
                                </a>
                            </li>
                        }
                    })
                    .collect_view()}
            </ul>
            <div class="digest-parts">
                <div>
                    <h3>"Events by action"</h3>
                    <table class="data-table digest-table">
                        <thead>
                            <tr>
                                <th scope="col">"Action"</th>
                                <th scope="col" class="num">"Events"</th>
                            </tr>
                        </thead>
                        <tbody>{by_action}</tbody>
                    </table>
                    {(d.events == 0).then(|| view! { <p class="empty">"No events this week."</p> })}
                </div>
                <div id="digest-rules">
                    <h3>"Rules that fired"</h3>
                    <table class="data-table digest-table">
                        <thead>
                            <tr>
                                <th scope="col">"Rule"</th>
                                <th scope="col">"Severity"</th>
                                <th scope="col" class="num">"Alerts"</th>
                                <th scope="col" class="num">"Events"</th>
                            </tr>
                        </thead>
                        <tbody>{rules}</tbody>
                    </table>
                    {no_rules.then(|| view! { <p class="empty">"No rule fired this week."</p> })}
                </div>
                <div id="digest-new-ips">
                    <h3>"New IPs"</h3>
                    {if new_ips.is_empty() {
                        view! { <p class="empty">"None found by the new-IP rules."</p> }.into_any()
                    } else {
                        view! {
                            <ul class="mono">
                                {new_ips.into_iter().map(|key| view! { <li>{key}</li> }).collect_view()}
                            </ul>
                        }
                            .into_any()
                    }}
                    {(more_ips > 0).then(|| view! { <p class="hint">{format!("… and {} more", count(more_ips))}</p> })}
                </div>
                <div>
                    {who("Most deletions by", d.deleted_by.clone())}
                    {who("Most exports by", d.exported_by.clone())}
                </div>
            </div>
            {page.can_subscribe.then(|| view! { <DigestSubscribe page_sub=page.subscription subscribe zone /> })}
        </section>
    }
}

/// An admin's subscription: the stream the digest goes to every Monday.
#[component]
fn DigestSubscribe(
    page_sub: Option<crate::alerts::DigestSubscription>,
    subscribe: ServerAction<SetDigestSubscription>,
    /// The zone the page shows weeks in: a subscription's weeks are too.
    zone: String,
) -> impl IntoView {
    let current = page_sub.as_ref().map(|s| s.stream_id);
    let (choice, set_choice) = signal(current.map(|id| id.to_string()).unwrap_or_default());
    let status = match &page_sub {
        None => "You do not get this digest.".to_string(),
        Some(s) => match &s.error {
            None => format!(
                "Sent to you every Monday through stream \"{}\" (weeks from Monday 00:00, {}).",
                s.stream_name, s.zone
            ),
            Some(e) => format!(
                "Sent to you every Monday through stream \"{}\" (weeks from Monday 00:00, {}). The last try failed: {e}",
                s.stream_name, s.zone
            ),
        },
    };
    view! {
        <div class="digest-subscribe">
            <h3>"Send me the digest"</h3>
            <p class="hint digest-status">{status}</p>
            // A plain form (no ActionForm: its form decoding weighed on this
            // page's code); the select's changes bubble up to it.
            <form
                class="settings-form"
                method="post"
                action="/api/set_digest_subscription"
                on:change=move |ev| set_choice.set(event_target_value(&ev))
                on:submit=move |ev| {
                    ev.prevent_default();
                    subscribe.dispatch(SetDigestSubscription {
                        stream: choice.get_untracked(),
                        zone: Some(zone.clone()),
                    });
                }
            >
                <ChannelSelect label="Through" name="stream" none="Nothing (unsubscribe)" selected=current />
                <button type="submit" class="button">"Save"</button>
            </form>
            {move || subscribe.value().get().and_then(Result::err).map(|error| view! { <FormError error /> })}
        </div>
    }
}
