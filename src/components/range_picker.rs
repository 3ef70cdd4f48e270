//! The calendar date-range picker: a button showing the range, opening a
//! popover with presets, two month grids (click or keyboard, hover preview),
//! typed dates and times for both ends, Apply and Cancel.

use crate::components::modal::focus_by_id;
use crate::components::zone::{now_micros, use_display_zone};
use crate::dates::{
    add_months, end_of_day, first_of_month, format_clock, format_day, format_day_time, from_local,
    iso_day, long_day, month_grid, month_title, move_day, ordered, parse_clock, parse_day,
    to_local, Preset, Zone,
};
use crate::query::TimeRange;
use chrono::{Datelike, NaiveDate, NaiveTime};
use leptos::prelude::*;

/// Microseconds added to an end minute so the range includes all of it.
const REST_OF_MINUTE: i64 = 59_999_999;

/// A chosen time range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeValue {
    Any,
    /// Rolling: always the last N minutes up to now.
    Rolling(Preset),
    /// Fixed instants (microseconds, inclusive); either end may be open.
    Between(Option<i64>, Option<i64>),
}

impl RangeValue {
    /// The picker's value for a view's time filter.
    pub fn of(times: &TimeRange) -> Self {
        match times.range.as_deref().and_then(Preset::from_code) {
            Some(preset) => Self::Rolling(preset),
            None if times.from.is_some() || times.to.is_some() => {
                Self::Between(times.from, times.to)
            }
            None => Self::Any,
        }
    }

    /// The time filter this value stands for.
    pub fn time_range(self) -> TimeRange {
        match self {
            Self::Any => TimeRange::default(),
            Self::Rolling(preset) => TimeRange {
                range: preset.code().map(str::to_string),
                ..TimeRange::default()
            },
            Self::Between(from, to) => TimeRange {
                range: None,
                from,
                to,
            },
        }
    }

    /// What the picker's button says, in `zone`.
    pub fn label(&self, zone: &impl Zone) -> String {
        let at = |t: i64| format_day_time(to_local(t, zone));
        match *self {
            Self::Any => "Any time".to_string(),
            Self::Rolling(preset) => preset.label().to_string(),
            Self::Between(Some(from), Some(to)) => format!("{} - {}", at(from), at(to)),
            Self::Between(Some(from), None) => format!("From {}", at(from)),
            Self::Between(None, Some(to)) => format!("Until {}", at(to)),
            Self::Between(None, None) => "Any time".to_string(),
        }
    }
}

/// What the picker's inputs hold before Apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Draft {
    pub start_day: String,
    pub start_clock: String,
    pub end_day: String,
    pub end_clock: String,
    /// A preset chosen and not edited since.
    pub preset: Option<Preset>,
}

/// The range a draft stands for, or a message saying what is wrong with it.
pub fn draft_to_range(draft: &Draft, zone: &impl Zone) -> Result<RangeValue, String> {
    if let Some(preset) = draft.preset.filter(|p| p.code().is_some()) {
        return Ok(RangeValue::Rolling(preset));
    }
    let blank = |s: &str| s.trim().is_empty();
    if blank(&draft.start_day) && blank(&draft.end_day) {
        return Ok(RangeValue::Any);
    }
    let day = |text: &str, which: &str| -> Result<NaiveDate, String> {
        if blank(text) {
            return Err(format!("{which} date: choose a day"));
        }
        parse_day(text).map_err(|e| format!("{which} date: {e}"))
    };
    let clock = |text: &str, which: &str, default: NaiveTime| -> Result<NaiveTime, String> {
        if blank(text) {
            return Ok(default);
        }
        parse_clock(text).map_err(|e| format!("{which} time: {e}"))
    };
    let start = day(&draft.start_day, "Start")?.and_time(clock(
        &draft.start_clock,
        "Start",
        NaiveTime::MIN,
    )?);
    let end = day(&draft.end_day, "End")?.and_time(clock(&draft.end_clock, "End", end_of_day())?);
    let from = from_local(start, zone).map_err(|e| format!("Start: {e}"))?;
    let to = from_local(end, zone).map_err(|e| format!("End: {e}"))? + REST_OF_MINUTE;
    if to < from {
        return Err("The end is before the start".to_string());
    }
    Ok(RangeValue::Between(Some(from), Some(to)))
}

fn draft_of(value: RangeValue, zone: &impl Zone, now: i64) -> Draft {
    let (from, to) = match value {
        RangeValue::Any => (None, None),
        RangeValue::Rolling(preset) => {
            let length = preset.rolling_micros().unwrap_or_default();
            (Some(now - length), Some(now))
        }
        RangeValue::Between(from, to) => (from, to),
    };
    let local = |t: Option<i64>| t.map(|t| to_local(t, zone));
    let (from, to) = (local(from), local(to));
    Draft {
        start_day: from.map(|t| format_day(t.date())).unwrap_or_default(),
        start_clock: from.map(|t| format_clock(t.time())).unwrap_or_default(),
        end_day: to.map(|t| format_day(t.date())).unwrap_or_default(),
        end_clock: to.map(|t| format_clock(t.time())).unwrap_or_default(),
        preset: match value {
            RangeValue::Rolling(p) => Some(p),
            _ => None,
        },
    }
}

fn day_id(day: NaiveDate) -> String {
    format!("day-{}", iso_day(day))
}

#[component]
pub fn DateRangePicker(
    #[prop(into)] value: Signal<RangeValue>,
    on_apply: Callback<RangeValue>,
) -> impl IntoView {
    let zone = use_display_zone();
    let open = RwSignal::new(false);
    let draft = RwSignal::new(Draft::default());
    let picking_end = RwSignal::new(false);
    let hover = RwSignal::new(None::<NaiveDate>);
    let today = move || to_local(now_micros(), &zone.get_untracked()).date();
    let focus_day = RwSignal::new(NaiveDate::default());
    let month = RwSignal::new(NaiveDate::default());
    let error = RwSignal::new(None::<String>);

    let show_day = move |day: NaiveDate| {
        focus_day.set(day);
        let first = month.get_untracked();
        if day < first || day >= add_months(first, 2) {
            month.set(if day < first {
                first_of_month(day)
            } else {
                add_months(day, -1)
            });
        }
    };
    let open_picker = move |_| {
        let z = zone.get_untracked();
        let d = draft_of(value.get_untracked(), &z, now_micros());
        let start = parse_day(&d.start_day).unwrap_or_else(|_| today());
        draft.set(d);
        picking_end.set(false);
        hover.set(None);
        error.set(None);
        focus_day.set(start);
        month.set(first_of_month(start));
        open.set(true);
        focus_by_id(day_id(start));
    };
    let close = move || {
        open.set(false);
        focus_by_id("range-picker-button".into());
    };
    let pick = move |day: NaiveDate| {
        let d = draft.get_untracked();
        let start = parse_day(&d.start_day).ok();
        let finishing = picking_end.get_untracked() && start.is_some();
        draft.update(|d| {
            d.preset = None;
            match (finishing, start) {
                (true, Some(start)) => {
                    let (a, b) = ordered(start, day);
                    d.start_day = format_day(a);
                    d.end_day = format_day(b);
                    if d.start_clock.trim().is_empty() {
                        d.start_clock = format_clock(NaiveTime::MIN);
                    }
                    if d.end_clock.trim().is_empty() {
                        d.end_clock = format_clock(end_of_day());
                    }
                }
                _ => {
                    d.start_day = format_day(day);
                    d.end_day = String::new();
                    if d.start_clock.trim().is_empty() {
                        d.start_clock = format_clock(NaiveTime::MIN);
                    }
                }
            }
        });
        picking_end.set(!finishing);
        hover.set(None);
        error.set(None);
        focus_day.set(day);
    };
    let choose_preset = move |preset: Preset| {
        let z = zone.get_untracked();
        match preset.calendar_bounds(now_micros(), &z) {
            Ok((from, to)) => {
                let mut d = draft_of(RangeValue::Between(Some(from), Some(to)), &z, 0);
                d.preset = Some(preset);
                let start = parse_day(&d.start_day).unwrap_or_else(|_| today());
                draft.set(d);
                picking_end.set(false);
                error.set(None);
                focus_day.set(start);
                month.set(first_of_month(start));
            }
            Err(e) => error.set(Some(e.to_string())),
        }
    };
    let apply = move |_| match draft_to_range(&draft.get_untracked(), &zone.get_untracked()) {
        Ok(range) => {
            on_apply.run(range);
            close();
        }
        Err(message) => error.set(Some(message)),
    };
    // The days drawn as chosen: the picked ends, or the start and the hovered day.
    let shown_range = Memo::new(move |_| {
        let d = draft.get();
        let start = parse_day(&d.start_day).ok()?;
        let end = if picking_end.get() {
            hover.get().unwrap_or(start)
        } else {
            parse_day(&d.end_day).ok().unwrap_or(start)
        };
        Some(ordered(start, end))
    });
    let grid = NodeRef::<leptos::html::Div>::new();
    let on_grid_key = move |ev: leptos::ev::KeyboardEvent| {
        if let Some(next) = move_day(focus_day.get_untracked(), &ev.key()) {
            ev.prevent_default();
            // The grid holds the focus until the next day's button has it:
            // a move into another month draws the months anew, and a key
            // pressed meanwhile must still land here, not on the page.
            #[cfg(feature = "hydrate")]
            if let Some(grid) = grid.get_untracked() {
                let _ = grid.focus();
            }
            show_day(next);
            if picking_end.get_untracked() {
                hover.set(Some(next));
            }
            focus_by_id(day_id(next));
        }
    };

    let text_input = move |label: &'static str,
                           placeholder: &'static str,
                           get: fn(&Draft) -> &String,
                           set: fn(&mut Draft, String)| {
        view! {
            <label class="picker-field">
                <span>{label}</span>
                <input
                    type="text"
                    inputmode="numeric"
                    placeholder=placeholder
                    prop:value=move || draft.with(|d| get(d).clone())
                    on:input=move |ev| {
                        let text = event_target_value(&ev);
                        draft.update(|d| {
                            d.preset = None;
                            set(d, text.clone());
                        });
                        if let Ok(day) = parse_day(&text) {
                            show_day(day);
                        }
                    }
                />
            </label>
        }
    };

    let day_cell = move |day: NaiveDate, month_no: u32| {
        if day.month() != month_no {
            return view! { <td role="gridcell" class="outside"></td> }.into_any();
        }
        let in_range = move || shown_range.get().is_some_and(|(a, b)| a <= day && day <= b);
        let is_end = move || shown_range.get().is_some_and(|(a, b)| a == day || b == day);
        let class = move || {
            let mut c = String::from("day");
            if in_range() {
                c.push_str(" in-range");
            }
            if is_end() {
                c.push_str(" range-end");
            }
            if day == today() {
                c.push_str(" today");
            }
            c
        };
        view! {
            <td role="gridcell" aria-selected=move || in_range().to_string()>
                <button
                    type="button"
                    id=day_id(day)
                    class=class
                    tabindex=move || if focus_day.get() == day { "0" } else { "-1" }
                    aria-label=long_day(day)
                    on:click=move |_| pick(day)
                    on:mouseenter=move |_| {
                        if picking_end.get_untracked() {
                            hover.set(Some(day));
                        }
                    }
                >
                    {day.day()}
                </button>
            </td>
        }
        .into_any()
    };

    let month_view = move |offset: i32| {
        move || {
            let first = add_months(month.get(), offset);
            let title = month_title(first);
            let weeks = month_grid(first);
            view! {
                <div class="month">
                    <h3 class="month-title">{title.clone()}</h3>
                    <table role="grid" aria-label=title class="month-grid">
                        <thead>
                            <tr>
                                {["Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"]
                                    .map(|d| view! { <th scope="col">{d}</th> })}
                            </tr>
                        </thead>
                        <tbody>
                            {weeks
                                .into_iter()
                                .map(|week| {
                                    view! {
                                        <tr>
                                            {week
                                                .into_iter()
                                                .map(|day| day_cell(day, first.month()))
                                                .collect_view()}
                                        </tr>
                                    }
                                })
                                .collect_view()}
                        </tbody>
                    </table>
                </div>
            }
        }
    };

    view! {
        <div class="range-picker">
            <button
                type="button"
                id="range-picker-button"
                class="range-button"
                aria-haspopup="dialog"
                aria-expanded=move || open.get().to_string()
                on:click=move |ev| {
                    if open.get_untracked() { close() } else { open_picker(ev) }
                }
            >
                <svg class="range-icon" aria-hidden="true" viewBox="0 0 16 16" width="16" height="16">
                    <rect x="1.5" y="2.5" width="13" height="12" rx="2" fill="none" stroke="currentColor" />
                    <path d="M1.5 6.5h13M5 1v3M11 1v3" stroke="currentColor" />
                </svg>
                <span class="range-label">{move || value.get().label(&zone.get())}</span>
            </button>
            <Show when=move || open.get()>
                <div
                    class="range-popover"
                    role="dialog"
                    aria-label="Choose a date range"
                    on:keydown=move |ev| {
                        if ev.key() == "Escape" {
                            ev.prevent_default();
                            close();
                        }
                    }
                >
                    <div class="presets" role="group" aria-label="Presets">
                        {Preset::ALL
                            .map(|p| {
                                view! {
                                    <button
                                        type="button"
                                        class="preset"
                                        aria-pressed=move || {
                                            draft.with(|d| d.preset == Some(p)).to_string()
                                        }
                                        on:click=move |_| choose_preset(p)
                                    >
                                        {p.label()}
                                    </button>
                                }
                            })}
                    </div>
                    <div class="picker-main">
                        <div class="month-nav">
                            <button
                                type="button"
                                class="icon-button"
                                aria-label="Previous month"
                                on:click=move |_| month.update(|m| *m = add_months(*m, -1))
                            >
                                "‹"
                            </button>
                            <button
                                type="button"
                                class="icon-button"
                                aria-label="Next month"
                                on:click=move |_| month.update(|m| *m = add_months(*m, 1))
                            >
                                "›"
                            </button>
                        </div>
                        <div
                            class="months"
                            node_ref=grid
                            tabindex="-1"
                            on:keydown=on_grid_key
                            on:mouseleave=move |_| hover.set(None)
                        >
                            {month_view(0)}
                            {month_view(1)}
                        </div>
                        <div class="picker-times">
                            <fieldset>
                                <legend>"Start"</legend>
                                {text_input("Start date", "DD-MM-YYYY", |d| &d.start_day, |d, v| d.start_day = v)}
                                {text_input("Start time", "HH:MM", |d| &d.start_clock, |d, v| d.start_clock = v)}
                            </fieldset>
                            <fieldset>
                                <legend>"End"</legend>
                                {text_input("End date", "DD-MM-YYYY", |d| &d.end_day, |d, v| d.end_day = v)}
                                {text_input("End time", "HH:MM", |d| &d.end_clock, |d, v| d.end_clock = v)}
                            </fieldset>
                        </div>
                        <p class="picker-zone">
                            {move || format!("Times in {}", zone.get().label())}
                        </p>
                        {move || {
                            error
                                .get()
                                .map(|e| view! { <p class="picker-error" role="alert">{e}</p> })
                        }}
                        <div class="picker-actions">
                            <button type="button" class="button" on:click=move |_| close()>
                                "Cancel"
                            </button>
                            <button type="button" class="button primary" on:click=apply>
                                "Apply"
                            </button>
                        </div>
                    </div>
                </div>
            </Show>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dates::{FixedZone, UTC};

    fn draft(start: (&str, &str), end: (&str, &str)) -> Draft {
        Draft {
            start_day: start.0.into(),
            start_clock: start.1.into(),
            end_day: end.0.into(),
            end_clock: end.1.into(),
            preset: None,
        }
    }

    const OCT_27_NOON: i64 = 1_761_566_400_000_000;

    #[test]
    fn a_typed_range_becomes_instants_in_the_zone() {
        let d = draft(("27-10-2025", "12:00"), ("29-10-2025", "12:00"));
        assert_eq!(
            draft_to_range(&d, &UTC),
            Ok(RangeValue::Between(
                Some(OCT_27_NOON),
                Some(OCT_27_NOON + 2 * 86_400_000_000 + REST_OF_MINUTE)
            ))
        );
        let RangeValue::Between(Some(from), _) = draft_to_range(&d, &FixedZone(60)).unwrap() else {
            panic!()
        };
        assert_eq!(from, OCT_27_NOON - 3_600_000_000);
        assert_eq!(
            RangeValue::Between(
                Some(OCT_27_NOON),
                Some(OCT_27_NOON + 2 * 86_400_000_000 + REST_OF_MINUTE)
            )
            .label(&UTC),
            "27-10-2025 12:00 - 29-10-2025 12:00"
        );
    }

    #[test]
    fn bad_drafts_say_what_is_wrong() {
        let err = |d: Draft| draft_to_range(&d, &UTC).unwrap_err();
        assert!(err(draft(("31-02-2025", ""), ("01-03-2025", ""))).starts_with("Start date:"));
        assert!(err(draft(("27-10-2025", "25:00"), ("28-10-2025", ""))).starts_with("Start time:"));
        assert!(err(draft(("27-10-2025", ""), ("", ""))).starts_with("End date:"));
        assert_eq!(
            err(draft(("29-10-2025", "12:00"), ("27-10-2025", "12:00"))),
            "The end is before the start"
        );
    }

    #[test]
    fn empty_drafts_and_presets() {
        assert_eq!(draft_to_range(&Draft::default(), &UTC), Ok(RangeValue::Any));
        let rolling = Draft {
            preset: Some(Preset::Last7Days),
            ..draft(("01-01-2025", "00:00"), ("08-01-2025", "00:00"))
        };
        assert_eq!(
            draft_to_range(&rolling, &UTC),
            Ok(RangeValue::Rolling(Preset::Last7Days))
        );
        // A calendar preset is its instants.
        let today = Draft {
            preset: Some(Preset::Today),
            ..draft(("27-10-2025", "00:00"), ("27-10-2025", "23:59"))
        };
        assert!(matches!(
            draft_to_range(&today, &UTC),
            Ok(RangeValue::Between(Some(_), Some(_)))
        ));
    }

    #[test]
    fn a_range_fills_the_draft_and_back() {
        let range = RangeValue::Between(
            Some(OCT_27_NOON),
            Some(OCT_27_NOON + 86_400_000_000 + REST_OF_MINUTE),
        );
        let d = draft_of(range, &UTC, 0);
        assert_eq!(d, draft(("27-10-2025", "12:00"), ("28-10-2025", "12:00")));
        assert_eq!(draft_to_range(&d, &UTC), Ok(range));
    }
}
