//! Activity over time as an SVG histogram, drawn on the server: bars
//! stacked by action, a readout of the bar under the pointer or keyboard
//! cursor, drag (or Shift+arrows) across bars to zoom to their range, click
//! (or Enter) to zoom to one, and the counts as a table for screen readers.

use crate::charts::{Bar, Histogram};
use crate::components::zone::{use_display_zone, DisplayZone};
use crate::models::format_count;
use leptos::prelude::*;

/// Drawing units per bar (the SVG stretches to the card's width).
const BAR_WIDTH: f64 = 10.0;
const HEIGHT: f64 = 100.0;

/// The zone charts are bucketed in: UTC on the server and when the UTC
/// switch is on, else the browser's own (its IANA name).
pub fn chart_zone() -> Signal<String> {
    let zone = use_display_zone();
    Signal::derive(move || match zone.get() {
        DisplayZone::Utc => "UTC".to_string(),
        DisplayZone::Browser => browser_zone(),
    })
}

#[cfg(feature = "hydrate")]
fn browser_zone() -> String {
    use web_sys::js_sys::{Array, Intl, Object, Reflect};
    let options = Intl::DateTimeFormat::new(&Array::new(), &Object::new()).resolved_options();
    Reflect::get(&options, &"timeZone".into())
        .ok()
        .and_then(|v| v.as_string())
        .unwrap_or_else(|| "UTC".into())
}

#[cfg(not(feature = "hydrate"))]
fn browser_zone() -> String {
    "UTC".into()
}

/// What one bar says in words.
fn describe(bar: &Bar, series: &[String]) -> String {
    let parts: Vec<String> = series
        .iter()
        .zip(&bar.counts)
        .filter(|(_, n)| **n > 0)
        .map(|(s, n)| format!("{s} {}", format_count(*n)))
        .collect();
    let total = bar.total();
    let noun = if total == 1 { "event" } else { "events" };
    if parts.is_empty() {
        format!("{}: no events", bar.label)
    } else {
        format!(
            "{}: {} {noun} ({})",
            bar.label,
            format_count(total),
            parts.join(", ")
        )
    }
}

/// The histogram; `zoom(from, to)` (inclusive microseconds) narrows the view.
#[component]
pub fn ActivityChart(histogram: Histogram, zoom: Callback<(i64, i64)>) -> impl IntoView {
    let Histogram {
        unit,
        series,
        bars,
        total,
        zone,
        ..
    } = histogram.clone();
    let n = bars.len();
    let peak = histogram.peak() as f64;
    // The keyboard cursor and the end a drag or Shift+arrow started from.
    let cursor = RwSignal::new(None::<usize>);
    let anchor = RwSignal::new(None::<usize>);
    let dragging = RwSignal::new(false);
    let bars = StoredValue::new(bars);
    let series = StoredValue::new(series);
    let selection = move || match (anchor.get(), cursor.get()) {
        (Some(a), Some(c)) => Some((a.min(c), a.max(c))),
        _ => None,
    };
    let zoom_to = move |(a, b): (usize, usize)| {
        let range =
            bars.with_value(|bars| Some((bars.get(a)?.start, bars.get(b)?.end.saturating_sub(1))));
        if let Some(range) = range {
            zoom.run(range);
        }
    };
    let readout = move || {
        cursor.get().and_then(|i| {
            bars.with_value(|bars| {
                let bar = bars.get(i)?;
                Some(series.with_value(|s| describe(bar, s)))
            })
        })
    };
    let on_key = move |ev: leptos::ev::KeyboardEvent| {
        if n == 0 {
            return;
        }
        let at = cursor.get_untracked();
        let step = |d: isize| {
            let from = at.unwrap_or(if d > 0 { n - 1 } else { 0 }) as isize;
            (from + d).clamp(0, n as isize - 1) as usize
        };
        let moved = match ev.key().as_str() {
            "ArrowRight" => Some(if at.is_none() { 0 } else { step(1) }),
            "ArrowLeft" => Some(if at.is_none() { n - 1 } else { step(-1) }),
            "Home" => Some(0),
            "End" => Some(n - 1),
            "Enter" | " " => {
                ev.prevent_default();
                if let Some(range) = selection() {
                    zoom_to(range);
                }
                return;
            }
            "Escape" => {
                anchor.set(None);
                cursor.set(None);
                return;
            }
            _ => None,
        };
        if let Some(to) = moved {
            ev.prevent_default();
            if !ev.shift_key() || anchor.get_untracked().is_none() {
                anchor.set(Some(if ev.shift_key() { at.unwrap_or(to) } else { to }));
            }
            cursor.set(Some(to));
        }
    };
    let finish_drag = move || {
        if dragging.get_untracked() {
            dragging.set(false);
            if let Some(range) = selection() {
                zoom_to(range);
            }
        }
    };
    let bar_views = bars.with_value(|bars| {
        bars.iter()
            .enumerate()
            .map(|(i, bar)| {
                let x = i as f64 * BAR_WIDTH;
                let mut y = HEIGHT;
                let rects = bar
                    .counts
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| **c > 0)
                    .map(|(s, c)| {
                        let h = (*c as f64 / peak * (HEIGHT - 4.0)).max(0.8);
                        y -= h;
                        view! {
                            <rect
                                class=format!("series-{s}")
                                x={x + 1.0}
                                y=y
                                width={BAR_WIDTH - 2.0}
                                height=h
                            />
                        }
                    })
                    .collect_view();
                let title = series.with_value(|s| describe(bar, s));
                view! {
                    <g
                        class="bar"
                        class:current=move || cursor.get() == Some(i)
                        on:pointerdown=move |ev: leptos::ev::PointerEvent| {
                            ev.prevent_default();
                            dragging.set(true);
                            anchor.set(Some(i));
                            cursor.set(Some(i));
                        }
                        on:pointerenter=move |_| cursor.set(Some(i))
                        on:pointerup=move |_| {
                            cursor.set(Some(i));
                            finish_drag();
                        }
                    >
                        <title>{title}</title>
                        <rect class="hit" x=x y=0 width=BAR_WIDTH height=HEIGHT />
                        {rects}
                    </g>
                }
            })
            .collect_view()
    });
    let ticks = tick_indexes(n)
        .into_iter()
        .map(|i| {
            let label = bars.with_value(|b| b[i].label.clone());
            let left = format!("left: {:.2}%", (i as f64 + 0.5) / n as f64 * 100.0);
            view! { <span class="tick" style=left>{label}</span> }
        })
        .collect_view();
    let legend = series.with_value(|s| {
        s.iter()
            .enumerate()
            .map(|(i, name)| {
                view! {
                    <li>
                        <span class=format!("swatch series-{i}") aria-hidden="true"></span>
                        {name.clone()}
                    </li>
                }
            })
            .collect_view()
    });
    let table_rows = bars.with_value(|bars| {
        bars.iter()
            .map(|bar| {
                let cells = bar
                    .counts
                    .iter()
                    .map(|c| view! { <td>{format_count(*c)}</td> })
                    .collect_view();
                view! {
                    <tr>
                        <th scope="row">{bar.label.clone()}</th>
                        <td>{format_count(bar.total())}</td>
                        {cells}
                    </tr>
                }
            })
            .collect_view()
    });
    let heads = series.with_value(|s| {
        s.iter()
            .map(|name| view! { <th scope="col">{name.clone()}</th> })
            .collect_view()
    });
    let summary = format!(
        "{} {} in {} bars of one {unit} each ({zone})",
        format_count(total),
        if total == 1 { "event" } else { "events" },
        n
    );
    let band = move || {
        selection()
            .filter(|_| dragging.get() || anchor.get().is_some())
            .map(|(a, b)| {
                view! {
                    <rect
                        class="band"
                        x={a as f64 * BAR_WIDTH}
                        y=0
                        width={(b - a + 1) as f64 * BAR_WIDTH}
                        height=HEIGHT
                    />
                }
            })
    };
    view! {
        <figure class="activity-chart">
            <figcaption class="chart-head">
                <span class="chart-title">"Activity over time"</span>
                <span class="chart-summary muted">{summary.clone()}</span>
                <span class="chart-readout" aria-live="polite">
                    {move || readout().unwrap_or_else(|| "Drag across bars to zoom in".into())}
                </span>
            </figcaption>
            <div
                class="chart-plot"
                tabindex="0"
                role="group"
                aria-label=format!(
                    "Activity over time: {summary}. Arrow keys move between bars, Shift+arrows select several, Enter zooms to them."
                )
                on:keydown=on_key
                on:pointerleave=move |_| {
                    if !dragging.get_untracked() {
                        cursor.set(None);
                    }
                }
                on:pointerup=move |_| finish_drag()
            >
                <svg
                    viewBox=format!("0 0 {} {HEIGHT}", (n.max(1) as f64) * BAR_WIDTH)
                    preserveAspectRatio="none"
                    aria-hidden="true"
                    focusable="false"
                >
                    <line class="baseline" x1=0 y1=HEIGHT x2={(n.max(1) as f64) * BAR_WIDTH} y2=HEIGHT />
                    {band}
                    {bar_views}
                </svg>
                <span class="peak muted" aria-hidden="true">{format_count(peak as u64)}</span>
            </div>
            <div class="chart-axis" aria-hidden="true">{ticks}</div>
            <ul class="chart-legend">{legend}</ul>
            <table class="visually-hidden">
                <caption>{format!("Events per {unit}")}</caption>
                <thead>
                    <tr>
                        <th scope="col">{unit.clone()}</th>
                        <th scope="col">"Events"</th>
                        {heads}
                    </tr>
                </thead>
                <tbody>{table_rows}</tbody>
            </table>
        </figure>
    }
}

/// Which bars get an axis label: about five, evenly spread.
fn tick_indexes(n: usize) -> Vec<usize> {
    match n {
        0 => vec![],
        1..=5 => (0..n).collect(),
        _ => (0..5).map(|k| k * (n - 1) / 4).collect(),
    }
}
