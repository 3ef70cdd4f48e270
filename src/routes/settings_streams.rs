//! Settings → Streams (admins): destinations the log is delivered to, with
//! their health, delivery log and controls.

use crate::components::error_notice::ErrorNotice;
use crate::components::form_message::FormError;
use crate::components::layout::Breadcrumb;
use crate::functions::streams::{
    list_streams, stream_attempts, CreateStream, DeleteStream, ReplayStream, RotateStreamSecret,
    SendStreamTest, SetStreamPaused, UpdateStream,
};
use crate::models::{format_count, format_utc};
use crate::streams::{Health, StreamAttempt, StreamInfo, StreamKind};
use leptos::form::ActionForm;
use leptos::prelude::*;
use leptos_meta::Title;

/// The page's actions, shared by every stream card.
#[derive(Clone, Copy)]
struct Actions {
    update: ServerAction<UpdateStream>,
    paused: ServerAction<SetStreamPaused>,
    replay: ServerAction<ReplayStream>,
    rotate: ServerAction<RotateStreamSecret>,
    delete: ServerAction<DeleteStream>,
    test: ServerAction<SendStreamTest>,
    /// The stream whose test event was sent last (its card shows the result).
    tested: RwSignal<Option<i64>>,
    /// The stream whose secret was rotated last (its card shows the new one).
    rotated: RwSignal<Option<i64>>,
    tick: RwSignal<u64>,
}

#[component]
pub fn StreamsPage() -> impl IntoView {
    let create = ServerAction::<CreateStream>::new();
    let actions = Actions {
        update: ServerAction::new(),
        paused: ServerAction::new(),
        replay: ServerAction::new(),
        rotate: ServerAction::new(),
        delete: ServerAction::new(),
        test: ServerAction::new(),
        tested: RwSignal::new(None),
        rotated: RwSignal::new(None),
        tick: RwSignal::new(0),
    };
    // The streams' health, read again every two seconds while the tab is seen.
    crate::components::poll::while_visible(2_000, move || actions.tick.update(|t| *t += 1));
    let streams = Resource::new(
        move || {
            (
                create.version().get(),
                actions.update.version().get(),
                actions.paused.version().get(),
                actions.replay.version().get(),
                actions.delete.version().get(),
                actions.test.version().get(),
                actions.tick.get(),
            )
        },
        |_| list_streams(),
    );
    view! {
        <Title text="Streams" />
        <Breadcrumb trail=vec!["Settings", "Streams"] />
        <div class="page-header">
            <h1>"Streams"</h1>
            <p class="page-intro">
                "Streams deliver the log to the systems you already run, in id order and at least once: "
                "a destination that is down keeps its place, and its events wait in the log until it takes them."
            </p>
        </div>
        <NewStreamForm create />
        <ActionErrors actions />
        <section aria-label="Streams" class="stream-list">
            <Transition fallback=|| view! { <p class="loading">"Loading streams…"</p> }>
                {move || Suspend::new(async move {
                    match streams.await {
                        Ok(rows) if rows.is_empty() => {
                            view! { <p class="card empty">"No streams yet: add one above."</p> }.into_any()
                        }
                        Ok(rows) => {
                            rows.into_iter()
                                .map(|s| view! { <StreamCard s actions /> })
                                .collect_view()
                                .into_any()
                        }
                        Err(error) => view! { <ErrorNotice error /> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

/// The failures of the page's actions, one line each.
#[component]
fn ActionErrors(actions: Actions) -> impl IntoView {
    let error = move |e: Option<Result<(), crate::errors::AppError>>| {
        e.and_then(Result::err)
            .map(|error| view! { <FormError error /> })
    };
    view! {
        {move || error(actions.update.value().get())}
        {move || error(actions.paused.value().get())}
        {move || error(actions.replay.value().get())}
        {move || error(actions.delete.value().get())}
        {move || actions.rotate.value().get().and_then(Result::err).map(|error| view! { <FormError error /> })}
    }
}

/// The start of delivery: from now, from an event id, or from a time (UTC).
/// `prefix` names the fields as their form's server function takes them
/// (`stream[start]` when they are part of a new stream).
#[component]
fn StartChoice(
    #[prop(optional)] replay: bool,
    #[prop(optional)] prefix: Option<&'static str>,
) -> impl IntoView {
    let field = move |name: &str| match prefix {
        Some(p) => format!("{p}[{name}]"),
        None => name.to_string(),
    };
    let (start, set_start) = signal(if replay { "id" } else { "now" }.to_string());
    let choice = move |value: &'static str, label: &'static str| {
        view! {
            <label class="scope">
                <input
                    type="radio"
                    name=field("start")
                    value=value
                    checked=move || start.get() == value
                    on:change=move |_| set_start.set(value.to_string())
                />
                {label}
            </label>
        }
    };
    view! {
        <fieldset class="scopes start-choice">
            <legend>{if replay { "Deliver again" } else { "Start" }}</legend>
            {choice("now", if replay { "From now on (skip the backlog)" } else { "From now" })}
            {choice("id", "From event id")}
            <input
                name=field("start_id")
                inputmode="numeric"
                aria-label="Event id to start from"
                placeholder="e.g. 1200"
                disabled=move || start.get() != "id"
            />
            {choice("time", "From a time (UTC)")}
            <input
                type="datetime-local"
                name=field("start_at")
                aria-label="Time to start from (UTC)"
                disabled=move || start.get() != "time"
            />
        </fieldset>
    }
}

#[component]
fn NewStreamForm(create: ServerAction<CreateStream>) -> impl IntoView {
    let (kind, set_kind) = signal(StreamKind::Webhook);
    view! {
        <section class="card form-card">
            <h2>"Add a stream"</h2>
            <ActionForm action=create attr:class="settings-form stream-form">
                <label>
                    "Name" <input name="stream[name]" required maxlength="100" placeholder="e.g. SIEM" />
                </label>
                <label>
                    "Kind"
                    <select
                        name="stream[kind]"
                        on:change=move |ev| {
                            if let Some(k) = StreamKind::parse(&event_target_value(&ev)) {
                                set_kind.set(k);
                            }
                        }
                    >
                        {StreamKind::ALL
                            .into_iter()
                            .map(|k| view! { <option value=k.as_str()>{k.label()}</option> })
                            .collect_view()}
                    </select>
                </label>
                <label class="wide">
                    "Address" <input name="stream[url]" required placeholder=move || kind.get().url_hint() />
                </label>
                <label class:hidden=move || !kind.get().needs_token()>
                    "HEC token" <input name="stream[token]" autocomplete="off" placeholder="from Splunk's HTTP Event Collector" />
                </label>
                <label class="wide">
                    "Filter (the Activity Log's, as in its address)"
                    <input name="stream[filter]" placeholder="e.g. action=DELETE,UPDATE&table=users — empty sends every event" />
                </label>
                <label class="wide" class:hidden=move || kind.get() == StreamKind::Syslog>
                    "Custom headers (one Name: value a line)"
                    <textarea name="stream[headers]" rows="2" placeholder="X-Team: security"></textarea>
                </label>
                <StartChoice prefix="stream" />
                <button type="submit" class="button primary">"Add stream"</button>
            </ActionForm>
            {move || {
                create
                    .value()
                    .get()
                    .map(|result| match result {
                        Ok(created) => {
                            match created.secret {
                                Some(secret) => {
                                    view! {
                                        <div class="new-key" role="status">
                                            <p>"Stream added. Its signing secret, shown this once: check the webhook-signature header with it."</p>
                                            <code data-testid="stream-secret">{secret}</code>
                                        </div>
                                    }
                                        .into_any()
                                }
                                None => view! { <p class="form-ok" role="status">"Stream added."</p> }.into_any(),
                            }
                        }
                        Err(e) => view! { <FormError error=e /> }.into_any(),
                    })
            }}
        </section>
    }
}

/// Which of a card's panels is open.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Panel {
    None,
    Edit,
    Replay,
    Log,
    Delete,
}

#[component]
fn StreamCard(s: StreamInfo, actions: Actions) -> impl IntoView {
    let id = s.id;
    let (panel, set_panel) = signal(Panel::None);
    let toggle =
        move |p: Panel| set_panel.update(|open| *open = if *open == p { Panel::None } else { p });
    let paused = s.health == Health::Paused;
    let health = s.health;
    let lag = match s.lag_age() {
        Some(age) => format!("{} (oldest waiting {age})", s.behind_label()),
        None => "none: caught up".to_string(),
    };
    let last_error = s.last_error.clone().map(|error| {
        let at = s.last_error_at.map(format_utc).unwrap_or_default();
        // The status, unless the error already names it.
        let status = s
            .last_status
            .map(|st| format!("HTTP {st}"))
            .filter(|st| !error.contains(st.as_str()))
            .map(|st| format!(" · {st}"))
            .unwrap_or_default();
        (error, format!("{at} UTC{status}"))
    });
    let next = s.next_attempt_at.map(|t| format!("{} UTC", format_utc(t)));
    let rotating = s
        .previous_secret_until
        .map(|t| format!("{} UTC", format_utc(t)));
    let filter = if s.filter.is_empty() {
        "every event".to_string()
    } else {
        s.filter.clone()
    };
    let name = s.name.clone();
    let signs = s.kind.signs();
    let test_result = move || {
        actions.test.value().get().map(|r| match r {
            Ok(text) => view! { <p class="form-ok" role="status">{text}</p> }.into_any(),
            Err(error) => view! { <FormError error /> }.into_any(),
        })
    };
    view! {
        <article class="card stream-card" data-stream=s.name.clone() data-health=health.as_str()>
            <header class="stream-head">
                <h2>{s.name.clone()}</h2>
                <span class=format!("badge health-{}", health.as_str()) data-testid="stream-health">
                    {health.label()}
                </span>
                <span class="stream-kind">{s.kind.label()}</span>
                <code class="stream-url">{s.url.clone()}</code>
            </header>
            <dl class="stream-figures">
                <div>
                    <dt>"Filter"</dt>
                    <dd><code>{filter}</code></dd>
                </div>
                <div>
                    <dt>"Lag"</dt>
                    <dd data-testid="stream-lag" data-behind=s.behind.to_string()>{lag}</dd>
                </div>
                <div>
                    <dt>"Delivered"</dt>
                    <dd data-testid="stream-delivered">
                        {format!("{} today · {} in all · up to event {}", format_count(s.delivered_today as u64), format_count(s.delivered as u64), s.cursor_id)}
                    </dd>
                </div>
                {last_error
                    .map(|(error, when)| {
                        view! {
                            <div class="stream-error">
                                <dt>"Last error"</dt>
                                <dd data-testid="stream-error">
                                    {error} <span class="hint">{format!(" ({when})")}</span>
                                </dd>
                            </div>
                        }
                    })}
                {next
                    .map(|at| {
                        view! {
                            <div>
                                <dt>"Next attempt"</dt>
                                <dd>{at}</dd>
                            </div>
                        }
                    })}
                {rotating
                    .map(|until| {
                        view! {
                            <div>
                                <dt>"Secret rotation"</dt>
                                <dd>{format!("the previous secret also signs until {until}")}</dd>
                            </div>
                        }
                    })}
            </dl>
            <div class="stream-actions">
                <button
                    type="button"
                    class="button small"
                    on:click=move |_| {
                        actions.tested.set(Some(id));
                        actions.test.dispatch(SendStreamTest { id });
                    }
                >
                    "Send test event"
                </button>
                <button
                    type="button"
                    class="button small"
                    on:click=move |_| {
                        actions.paused.dispatch(SetStreamPaused { id, paused: !paused });
                    }
                >
                    {if paused { "Resume" } else { "Pause" }}
                </button>
                <button type="button" class="button small" aria-expanded=move || (panel.get() == Panel::Edit).to_string() on:click=move |_| toggle(Panel::Edit)>
                    "Edit"
                </button>
                <button type="button" class="button small" aria-expanded=move || (panel.get() == Panel::Replay).to_string() on:click=move |_| toggle(Panel::Replay)>
                    "Replay"
                </button>
                {signs
                    .then(|| {
                        view! {
                            <button
                                type="button"
                                class="button small"
                                on:click=move |_| {
                                    actions.rotated.set(Some(id));
                                    actions.rotate.dispatch(RotateStreamSecret { id });
                                }
                            >
                                "Rotate secret"
                            </button>
                        }
                    })}
                <button type="button" class="button small" aria-expanded=move || (panel.get() == Panel::Log).to_string() on:click=move |_| toggle(Panel::Log)>
                    "Delivery log"
                </button>
                <button type="button" class="button small danger" on:click=move |_| toggle(Panel::Delete)>
                    "Delete"
                </button>
            </div>
            {move || {
                (actions.tested.get() == Some(id) && !actions.test.pending().get())
                    .then(test_result)
            }}
            {move || {
                actions
                    .rotate
                    .value()
                    .get()
                    .and_then(Result::ok)
                    .filter(|_| actions.rotated.get() == Some(id))
                    .map(|secret| {
                        view! {
                            <div class="new-key" role="status">
                                <p>"The new signing secret, shown this once:"</p>
                                <code data-testid="stream-secret">{secret}</code>
                            </div>
                        }
                    })
            }}
            {
                let s = s.clone();
                let name = name.clone();
                move || match panel.get() {
                    Panel::None => ().into_any(),
                    Panel::Edit => view! { <EditPanel s=s.clone() actions /> }.into_any(),
                    Panel::Replay => {
                        view! {
                            <ActionForm action=actions.replay attr:class="settings-form stream-panel">
                                <input type="hidden" name="id" value=id />
                                <StartChoice replay=true />
                                <button type="submit" class="button primary">"Move the cursor"</button>
                            </ActionForm>
                        }
                            .into_any()
                    }
                    Panel::Log => view! { <AttemptLog id tick=actions.tick /> }.into_any(),
                    Panel::Delete => {
                        view! {
                            <div class="stream-panel confirm" role="alertdialog" aria-label="Delete stream">
                                <p>
                                    {format!("Delete stream \"{name}\"? Delivery stops; the events stay in the log.")}
                                </p>
                                <button
                                    type="button"
                                    class="button danger"
                                    on:click=move |_| {
                                        actions.delete.dispatch(DeleteStream { id });
                                    }
                                >
                                    "Delete stream"
                                </button>
                                <button type="button" class="button" on:click=move |_| set_panel.set(Panel::None)>
                                    "Cancel"
                                </button>
                            </div>
                        }
                            .into_any()
                    }
                }
            }
        </article>
    }
}

#[component]
fn EditPanel(s: StreamInfo, actions: Actions) -> impl IntoView {
    view! {
        <ActionForm action=actions.update attr:class="settings-form stream-panel">
            <input type="hidden" name="id" value=s.id />
            <label>"Name" <input name="name" required maxlength="100" value=s.name.clone() /></label>
            <label class="wide">"Address" <input name="url" required value=s.url.clone() /></label>
            {s.kind
                .needs_token()
                .then(|| {
                    view! {
                        <label>
                            "New HEC token" <input name="token" autocomplete="off" placeholder="unchanged when empty" />
                        </label>
                    }
                })}
            <label class="wide">"Filter" <input name="filter" value=s.filter.clone() /></label>
            {(s.kind != StreamKind::Syslog)
                .then(|| {
                    view! {
                        <label class="wide">
                            "Custom headers" <textarea name="headers" rows="2">{s.headers.clone()}</textarea>
                        </label>
                    }
                })}
            <button type="submit" class="button primary">"Save"</button>
        </ActionForm>
    }
}

/// A stream's last attempts, read again as the page polls.
#[component]
fn AttemptLog(id: i64, tick: RwSignal<u64>) -> impl IntoView {
    let attempts = Resource::new(move || tick.get(), move |_| stream_attempts(id));
    view! {
        <Transition fallback=|| view! { <p class="loading">"Loading the delivery log…"</p> }>
            {move || Suspend::new(async move {
                match attempts.await {
                    Ok(rows) => view! { <AttemptTable rows /> }.into_any(),
                    Err(error) => view! { <ErrorNotice error /> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn AttemptTable(rows: Vec<StreamAttempt>) -> impl IntoView {
    let empty = rows.is_empty();
    view! {
        <div class="table-scroll stream-panel">
            <table class="data-table stream-attempts">
                <caption>"The last 100 attempts, newest first"</caption>
                <thead>
                    <tr>
                        <th scope="col">"Time (UTC)"</th>
                        <th scope="col">"Outcome"</th>
                        <th scope="col">"Events"</th>
                        <th scope="col">"Ids"</th>
                        <th scope="col">"Took"</th>
                        <th scope="col">"Error"</th>
                    </tr>
                </thead>
                <tbody>
                    {rows
                        .into_iter()
                        .map(|a| {
                            let ids = match (a.first_id, a.last_id) {
                                (Some(f), Some(l)) if f == l => f.to_string(),
                                (Some(f), Some(l)) => format!("{f}–{l}"),
                                _ => "—".into(),
                            };
                            let error = match (a.status, a.error) {
                                (Some(st), Some(e)) => format!("{e} (HTTP {st})"),
                                (_, Some(e)) => e,
                                _ => String::new(),
                            };
                            let ok = matches!(a.outcome.as_str(), "delivered" | "test");
                            view! {
                                <tr class:failed=!ok>
                                    <td class="nowrap">{format_utc(a.at)}</td>
                                    <td>{outcome_label(&a.outcome)}</td>
                                    <td class="nowrap">{a.events}</td>
                                    <td class="nowrap">{ids}</td>
                                    <td class="nowrap">{crate::models::format_duration(a.duration_us)}</td>
                                    <td>{error}</td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
            {empty.then(|| view! { <p class="empty">"No attempts yet."</p> })}
        </div>
    }
}

fn outcome_label(outcome: &str) -> &'static str {
    match outcome {
        "delivered" => "✓ Delivered",
        "test" => "✓ Test event",
        "test_failed" => "✗ Test event failed",
        "gap" => "⚠ Deleted before delivery",
        _ => "✗ Failed",
    }
}
