//! Activity over time as an SVG histogram, drawn on the server: bars
//! stacked by action, a readout of the bar under the pointer or keyboard
//! cursor, drag (or Shift+arrows) across bars to zoom to their range, click
//! (or Enter) to zoom to one, and the counts as a table for screen readers.

use crate::charts::{Bar, Histogram};
use crate::components::zone::{remembered_display_zone, use_display_zone, DisplayZone};
use crate::models::format_count;
use leptos::prelude::*;

/// Drawing units per bar (the SVG stretches to the card's width).
const BAR_WIDTH: f64 = 10.0;
const HEIGHT: f64 = 100.0;

/// The cookie that tells the server the zone the browser last drew charts
/// in, so that it draws them in the same one and hydration fetches nothing.
pub const ZONE_COOKIE: &str = "auditdeck_zone";

/// The zone a `Cookie` header carries (an IANA name's characters only).
pub fn zone_from_cookies(header: &str) -> Option<String> {
    crate::components::theme::cookie_in(header, ZONE_COOKIE)
        .map(str::to_string)
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/_+-".contains(&b))
        })
}

/// The zone the last page was drawn in: the request's cookie on the server,
/// the same cookie in the browser.
fn remembered_zone() -> Option<String> {
    #[cfg(feature = "ssr")]
    {
        crate::components::theme::from_request_cookies(zone_from_cookies)
    }
    #[cfg(all(feature = "hydrate", not(feature = "ssr")))]
    {
        use wasm_bindgen::JsCast;
        document()
            .dyn_into::<web_sys::HtmlDocument>()
            .ok()
            .and_then(|d| d.cookie().ok())
            .and_then(|c| zone_from_cookies(&c))
    }
    #[cfg(not(any(feature = "ssr", feature = "hydrate")))]
    {
        None
    }
}

fn remember_zone(name: &str) {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        if let Ok(html) = document().dyn_into::<web_sys::HtmlDocument>() {
            _ = html.set_cookie(&format!(
                "{ZONE_COOKIE}={name}; Path=/; Max-Age=31536000; SameSite=Lax"
            ));
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = name;
}

/// The zone charts are bucketed in: the one the last page was drawn in
/// (a cookie; UTC at first), then, once the page runs, UTC when the UTC
/// switch is on, else the browser's own (its IANA name).
pub fn chart_zone() -> Signal<String> {
    let display = use_display_zone();
    let zone_name = |shown: DisplayZone| match shown {
        DisplayZone::Utc => "UTC".to_string(),
        DisplayZone::Browser => browser_zone(),
    };
    // A page drawn in the browser (reached by a link, after the first
    // page's hydration) starts in the zone it shows: a resource made there
    // fetches at once, and (lazy routes) does not follow a change made
    // after. A page being hydrated starts in the zone the server drew.
    let first = if drawn_in_browser() {
        zone_name(remembered_display_zone())
    } else {
        remembered_zone().unwrap_or_else(|| "UTC".into())
    };
    let zone = RwSignal::new(first);
    Effect::new(move |first: Option<()>| {
        // The switch's own effect may not have run yet the first time.
        let shown = if first.is_none() {
            display.track();
            remembered_display_zone()
        } else {
            display.get()
        };
        let name = zone_name(shown);
        remember_zone(&name);
        if zone.get_untracked() != name {
            zone.set(name);
        }
    });
    zone.into()
}

/// Whether this part of the page is made in the browser rather than
/// hydrated from the server's HTML.
fn drawn_in_browser() -> bool {
    #[cfg(feature = "hydrate")]
    {
        !Owner::current_shared_context().is_some_and(|sc| sc.during_hydration())
    }
    #[cfg(not(feature = "hydrate"))]
    {
        false
    }
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
pub fn ActivityChart(
    histogram: Histogram,
    zoom: Callback<(i64, i64)>,
    #[prop(default = "Activity over time")] title: &'static str,
) -> impl IntoView {
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
    let plot = NodeRef::<leptos::html::Div>::new();
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
                    <g class="bar" class:current=move || cursor.get() == Some(i)>
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
            view! { <span class="tick">{label}</span> }
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
    let size = if unit.starts_with(|c: char| c.is_ascii_digit()) {
        unit.clone()
    } else {
        format!("one {unit}")
    };
    let about = if histogram.sample.is_some() {
        "≈ "
    } else {
        ""
    };
    let sampled = histogram
        .sample
        .map(|k| format!(", estimated from 1 event in {k}"))
        .unwrap_or_default();
    let summary = format!(
        "{about}{} {} in {n} bars of {size} each ({zone}{sampled})",
        format_count(total),
        if total == 1 { "event" } else { "events" },
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
                <span class="chart-title">{title}</span>
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
                    "{title}: {summary}. Arrow keys move between bars, Shift+arrows select several, Enter zooms to them."
                )
                node_ref=plot
                on:keydown=on_key
                on:pointerdown=move |ev: leptos::ev::PointerEvent| {
                    if let Some(i) = bar_at(plot, n, &ev) {
                        ev.prevent_default();
                        capture(plot, &ev);
                        dragging.set(true);
                        anchor.set(Some(i));
                        cursor.set(Some(i));
                    }
                }
                on:pointermove=move |ev: leptos::ev::PointerEvent| {
                    let at = bar_at(plot, n, &ev);
                    if at.is_some() && cursor.get_untracked() != at {
                        cursor.set(at);
                    }
                }
                on:pointerup=move |ev: leptos::ev::PointerEvent| {
                    if let Some(i) = bar_at(plot, n, &ev) {
                        cursor.set(Some(i));
                    }
                    finish_drag();
                }
                on:pointercancel=move |_| dragging.set(false)
                on:pointerleave=move |_| {
                    if !dragging.get_untracked() {
                        cursor.set(None);
                    }
                }
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
            // In a box of its own: a table is as wide as its cells, whatever its own width.
            <div class="visually-hidden">
                <table>
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
            </div>
        </figure>
    }
}

/// The bar under the pointer: its place across the plot's width (so a
/// finger dragging over the bars, whose events all go to where it started,
/// selects as a mouse does).
fn bar_at(
    plot: NodeRef<leptos::html::Div>,
    n: usize,
    ev: &leptos::ev::PointerEvent,
) -> Option<usize> {
    #[cfg(feature = "hydrate")]
    {
        let rect = plot.get_untracked()?.get_bounding_client_rect();
        if n == 0 || rect.width() <= 0.0 {
            return None;
        }
        let x = (f64::from(ev.client_x()) - rect.left()) / rect.width();
        Some(((x * n as f64).floor().max(0.0) as usize).min(n - 1))
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = (plot, n, ev);
        None
    }
}

/// Keeps a drag's pointer events on the plot until it is let go.
fn capture(plot: NodeRef<leptos::html::Div>, ev: &leptos::ev::PointerEvent) {
    #[cfg(feature = "hydrate")]
    if let Some(el) = plot.get_untracked() {
        _ = el.set_pointer_capture(ev.pointer_id());
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (plot, ev);
}

/// Which bars get an axis label: about five, evenly spread (the axis
/// spreads them out evenly too: no inline style, which the page's content
/// security policy refuses).
fn tick_indexes(n: usize) -> Vec<usize> {
    match n {
        0 => vec![],
        1..=5 => (0..n).collect(),
        _ => (0..5).map(|k| k * (n - 1) / 4).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_zone_cookie_is_read_and_anything_odd_in_it_is_ignored() {
        assert_eq!(
            zone_from_cookies("a=b; auditdeck_zone=America/Argentina/Buenos_Aires").as_deref(),
            Some("America/Argentina/Buenos_Aires")
        );
        assert_eq!(
            zone_from_cookies("auditdeck_zone=Etc/GMT+3").as_deref(),
            Some("Etc/GMT+3")
        );
        assert_eq!(zone_from_cookies("auditdeck_zone=<script>"), None);
        assert_eq!(zone_from_cookies("auditdeck_zone="), None);
        assert_eq!(zone_from_cookies("other=UTC"), None);
    }

    #[test]
    fn about_five_axis_labels_spread_over_the_bars() {
        assert_eq!(tick_indexes(0), Vec::<usize>::new());
        assert_eq!(tick_indexes(3), [0, 1, 2]);
        assert_eq!(tick_indexes(97), [0, 24, 48, 72, 96]);
    }
}
