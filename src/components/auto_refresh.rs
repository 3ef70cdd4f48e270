//! Auto refresh, shared by every live page: an Off/On switch, the interval,
//! a bar and countdown to the next refresh, and Refresh now. The page keeps
//! its rows on screen while a refresh loads (its table sits in a
//! `<Transition>`), rows that a refresh brought are highlighted, refreshing
//! pauses while the tab is hidden, and a failed refresh is a quiet note that
//! the next tick retries.

use crate::errors::AppError;
use crate::query::RefreshEvery;
use leptos::prelude::*;
use std::collections::HashSet;

/// How often the countdown advances, in milliseconds.
#[cfg(feature = "hydrate")]
const STEP_MS: u64 = 250;

/// What a page shares with its [`AutoRefresh`] control.
#[derive(Debug, Clone, Copy)]
pub struct Refresh {
    /// Bumped by every refresh; the page's resources read it.
    pub tick: RwSignal<u64>,
    /// A refresh is loading.
    pub loading: RwSignal<bool>,
    /// The last refresh failed (cleared by the next good one).
    pub error: RwSignal<Option<String>>,
}

impl Default for Refresh {
    fn default() -> Self {
        Self::new()
    }
}

impl Refresh {
    pub fn new() -> Self {
        Self {
            tick: RwSignal::new(0),
            loading: RwSignal::new(false),
            error: RwSignal::new(None),
        }
    }

    /// Loads the page's data again.
    pub fn now(&self) {
        self.loading.set(true);
        self.tick.update(|t| *t += 1);
    }

    /// A load has finished (whatever its outcome).
    pub fn done(&self) {
        // The page may be gone by the time a load ends.
        if self.loading.try_get_untracked() == Some(true) {
            self.loading.try_set(false);
        }
    }

    /// The class that highlights a row a refresh brought: two names used in
    /// turn, so the highlight replays when the next refresh brings another.
    pub fn fresh_class(&self) -> &'static str {
        if self.tick.try_get_untracked().unwrap_or(0).is_multiple_of(2) {
            "fresh-a"
        } else {
            "fresh-b"
        }
    }
}

/// The rows a refresh brought, and the class that highlights them.
#[derive(Debug, Clone, Default)]
pub struct Fresh {
    pub ids: HashSet<i64>,
    pub class: &'static str,
}

impl Fresh {
    pub fn class_of(&self, id: i64) -> Option<&'static str> {
        self.ids.contains(&id).then_some(self.class)
    }
}

/// What a refreshed table shows: the data, and the ids a refresh brought.
#[derive(Debug, Clone)]
pub struct Settled<T> {
    pub data: T,
    pub fresh: HashSet<i64>,
}

/// The last good data of a view, kept so that a failed refresh leaves the
/// rows on screen and a good one can tell which rows are new.
#[derive(Debug)]
pub struct Shown<T: Send + Sync + 'static> {
    last: StoredValue<Option<(String, T)>>,
}

impl<T: Send + Sync + 'static> Clone for Shown<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Send + Sync + 'static> Copy for Shown<T> {}

impl<T: Clone + Send + Sync + 'static> Default for Shown<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clone + Send + Sync + 'static> Shown<T> {
    pub fn new() -> Self {
        Self {
            last: StoredValue::new(None),
        }
    }

    /// Settles a fetch of the view `key` (its query string). New data is
    /// shown with the ids that were not on screen before (none when the view
    /// changed); a failure of the view already on screen keeps that on screen
    /// and is reported quietly through `refresh`.
    pub fn settle(
        &self,
        key: String,
        result: Result<T, AppError>,
        refresh: Refresh,
        ids: impl Fn(&T) -> Vec<i64>,
    ) -> Result<Settled<T>, AppError> {
        // A load can end after its page is gone: then nothing is kept.
        refresh.done();
        let same_view = self
            .last
            .try_with_value(|last| last.as_ref().is_some_and(|(k, _)| *k == key))
            .unwrap_or(false);
        match result {
            Ok(data) => {
                let fresh = if same_view {
                    self.last
                        .try_with_value(|last| {
                            let before: HashSet<i64> = last
                                .as_ref()
                                .map(|(_, old)| ids(old).into_iter().collect())
                                .unwrap_or_default();
                            ids(&data)
                                .into_iter()
                                .filter(|id| !before.contains(id))
                                .collect()
                        })
                        .unwrap_or_default()
                } else {
                    HashSet::new()
                };
                self.last.try_set_value(Some((key, data.clone())));
                if refresh.error.try_with_untracked(Option::is_some) == Some(true) {
                    refresh.error.try_set(None);
                }
                Ok(Settled { data, fresh })
            }
            Err(error) if same_view => {
                refresh.error.try_set(Some(error.to_string()));
                let data = self
                    .last
                    .try_with_value(|last| last.as_ref().map(|(_, d)| d.clone()))
                    .flatten();
                data.map(|data| Settled {
                    data,
                    fresh: HashSet::new(),
                })
                .ok_or(error)
            }
            Err(error) => Err(error),
        }
    }
}

/// What `set_every` of [`AutoRefresh`] usually is: the page's address with a
/// new interval (`href_with`), put in place of the current one (no history
/// entry, no scroll).
pub fn url_setter(
    href_with: impl Fn(Option<RefreshEvery>) -> Option<String> + Send + Sync + 'static,
) -> Callback<Option<RefreshEvery>> {
    let navigate = leptos_router::hooks::use_navigate();
    Callback::new(move |every| {
        if let Some(href) = href_with(every) {
            let options = leptos_router::NavigateOptions {
                replace: true,
                scroll: false,
                ..Default::default()
            };
            navigate(&href, options);
        }
    })
}

/// Whole seconds left, for the countdown: `4 s`, `1 min 30 s`.
pub fn countdown_label(left_ms: u64) -> String {
    let secs = left_ms.div_ceil(1_000);
    if secs >= 60 {
        let (m, s) = (secs / 60, secs % 60);
        if s == 0 {
            format!("{m} min")
        } else {
            format!("{m} min {s} s")
        }
    } else {
        format!("{secs} s")
    }
}

/// The control. `every` is the interval from the page's URL (`None`: off);
/// `set_every` puts a new choice into the URL.
#[component]
pub fn AutoRefresh(
    every: Signal<Option<RefreshEvery>>,
    set_every: Callback<Option<RefreshEvery>>,
    refresh: Refresh,
) -> impl IntoView {
    // The interval the selector shows (kept while auto refresh is off).
    let chosen = RwSignal::new(every.get_untracked().unwrap_or(RefreshEvery::DEFAULT));
    let elapsed = RwSignal::new(0u64);
    let on = move || every.get().is_some();
    let period = move || every.get().unwrap_or_else(|| chosen.get()).millis();
    timer(every, refresh, elapsed);

    let toggle = move |_| {
        elapsed.set(0);
        if every.get_untracked().is_some() {
            set_every.run(None);
        } else {
            set_every.run(Some(chosen.get_untracked()));
        }
    };
    let pick = move |ev| {
        if let Some(choice) = RefreshEvery::parse(&event_target_value(&ev)) {
            chosen.set(choice);
            elapsed.set(0);
            if every.get_untracked().is_some() {
                set_every.run(Some(choice));
            }
        }
    };
    let percent = move || {
        if on() {
            (elapsed.get().min(period()) * 100 / period().max(1)).to_string()
        } else {
            "0".to_string()
        }
    };
    view! {
        <div class="auto-refresh" data-testid="auto-refresh" class:active=on>
            <span class="auto-refresh-label" id="auto-refresh-label">"Auto refresh"</span>
            <button
                type="button"
                role="switch"
                class="switch"
                aria-labelledby="auto-refresh-label"
                aria-checked=move || if on() { "true" } else { "false" }
                on:click=toggle
            >
                <span class="switch-knob" aria-hidden="true"></span>
                <span class="switch-text">{move || if on() { "On" } else { "Off" }}</span>
            </button>
            <select class="refresh-every" aria-label="Refresh interval" on:change=pick>
                {RefreshEvery::ALL
                    .into_iter()
                    .map(|choice| {
                        view! {
                            <option
                                value=choice.code()
                                selected=move || every.get().unwrap_or_else(|| chosen.get()) == choice
                            >
                                {choice.label()}
                            </option>
                        }
                    })
                    .collect_view()}
            </select>
            // A native progress bar: no inline style, which the page's CSP forbids.
            <progress
                class="refresh-progress"
                aria-label="Time to the next refresh"
                max="100"
                value=percent
            ></progress>
            <span class="refresh-status" role="status" data-testid="refresh-status">
                {move || {
                    if refresh.loading.get() {
                        "Refreshing…".to_string()
                    } else if on() {
                        format!("in {}", countdown_label(period().saturating_sub(elapsed.get())))
                    } else {
                        String::new()
                    }
                }}
            </span>
            <button
                type="button"
                class="button small"
                on:click=move |_| {
                    elapsed.set(0);
                    refresh.now();
                }
            >
                "Refresh now"
            </button>
            {move || {
                refresh
                    .error
                    .get()
                    .map(|e| {
                        let title = e.clone();
                        view! {
                            <span class="refresh-error" data-testid="refresh-error" title=title>
                                "Refresh failed; retrying. "
                                {e}
                            </span>
                        }
                    })
            }}
        </div>
    }
}

/// The countdown: one interval timer (leptos-use) that advances `elapsed`
/// and refreshes when it reaches the period; it runs only while auto
/// refresh is on and the tab is visible, and waits for a refresh in flight.
#[cfg(feature = "hydrate")]
fn timer(every: Signal<Option<RefreshEvery>>, refresh: Refresh, elapsed: RwSignal<u64>) {
    use leptos_use_document_visibility::use_document_visibility;
    use leptos_use_interval_fn::{use_interval_fn, Pausable};

    let Pausable { pause, resume, .. } = use_interval_fn(
        move || {
            let Some(every) = every.get_untracked() else {
                return;
            };
            if refresh.loading.get_untracked() {
                return;
            }
            let next = elapsed.get_untracked() + STEP_MS;
            if next >= every.millis() {
                elapsed.set(0);
                refresh.now();
            } else {
                elapsed.set(next);
            }
        },
        STEP_MS,
    );
    let visibility = use_document_visibility();
    Effect::new(move |_| {
        let visible = visibility.get() != web_sys::VisibilityState::Hidden;
        if every.get().is_some() && visible {
            resume();
        } else {
            pause();
        }
    });
}

#[cfg(not(feature = "hydrate"))]
fn timer(_: Signal<Option<RefreshEvery>>, _: Refresh, _: RwSignal<u64>) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countdown_reads_in_seconds_and_minutes() {
        assert_eq!(countdown_label(4_001), "5 s");
        assert_eq!(countdown_label(2_000), "2 s");
        assert_eq!(countdown_label(0), "0 s");
        assert_eq!(countdown_label(60_000), "1 min");
        assert_eq!(countdown_label(90_000), "1 min 30 s");
    }

    fn owner() -> Owner {
        let owner = Owner::new();
        owner.set();
        owner
    }

    #[test]
    fn a_refresh_marks_new_rows_and_a_failed_one_keeps_the_old() {
        let _owner = owner();
        let refresh = Refresh::new();
        let shown = Shown::<Vec<i64>>::new();
        let ids = |v: &Vec<i64>| v.clone();
        let first = shown
            .settle("?q=a".into(), Ok(vec![3, 2, 1]), refresh, ids)
            .unwrap();
        assert!(first.fresh.is_empty(), "a first load highlights nothing");
        let next = shown
            .settle("?q=a".into(), Ok(vec![5, 4, 3]), refresh, ids)
            .unwrap();
        assert_eq!(next.fresh, HashSet::from([5, 4]));
        // A failed refresh of the same view keeps its rows and says so.
        let failed = shown
            .settle(
                "?q=a".into(),
                Err(AppError::Transport("offline".into())),
                refresh,
                ids,
            )
            .unwrap();
        assert_eq!(failed.data, vec![5, 4, 3]);
        assert!(refresh.error.get_untracked().unwrap().contains("offline"));
        // The next good one clears the note.
        shown
            .settle("?q=a".into(), Ok(vec![5, 4, 3]), refresh, ids)
            .unwrap();
        assert_eq!(refresh.error.get_untracked(), None);
        // Another view: nothing is new, and its failure is an error.
        let other = shown
            .settle("?q=b".into(), Ok(vec![9]), refresh, ids)
            .unwrap();
        assert!(other.fresh.is_empty());
        assert!(shown
            .settle("?q=c".into(), Err(AppError::Internal), refresh, ids)
            .is_err());
    }
}
