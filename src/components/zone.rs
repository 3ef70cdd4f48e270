//! Times in the browser's time zone, with a UTC switch remembered per browser.
//!
//! The server renders UTC (it cannot know the browser's zone); once the page
//! is hydrated the remembered choice is applied, local time by default.

use crate::dates::Zone;
use leptos::prelude::*;

const STORAGE_KEY: &str = "auditdeck.utc";

/// Where times are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisplayZone {
    Utc,
    /// The browser's zone (its offset at each instant, so DST is right).
    Browser,
}

impl Zone for DisplayZone {
    fn offset_minutes(&self, utc_micros: i64) -> i32 {
        match self {
            Self::Utc => 0,
            Self::Browser => browser_offset_minutes(utc_micros),
        }
    }
}

impl DisplayZone {
    pub fn label(self) -> &'static str {
        match self {
            Self::Utc => "UTC",
            Self::Browser => "local time",
        }
    }
}

#[cfg(feature = "hydrate")]
fn browser_offset_minutes(utc_micros: i64) -> i32 {
    let date =
        web_sys::js_sys::Date::new(&wasm_bindgen::JsValue::from_f64((utc_micros / 1000) as f64));
    -(date.get_timezone_offset() as i32)
}

#[cfg(not(feature = "hydrate"))]
fn browser_offset_minutes(_: i64) -> i32 {
    0
}

/// Now, in microseconds since the epoch.
pub fn now_micros() -> i64 {
    #[cfg(feature = "hydrate")]
    {
        (web_sys::js_sys::Date::now() * 1000.0) as i64
    }
    // Rendering on the server: the server's own clock.
    #[cfg(all(feature = "ssr", not(feature = "hydrate")))]
    {
        leptos::prelude::use_context::<crate::server::state::AppState>()
            .map(|state| state.db.now())
            .unwrap_or_else(|| chrono::Utc::now().timestamp_micros())
    }
    #[cfg(not(any(feature = "ssr", feature = "hydrate")))]
    {
        chrono::Utc::now().timestamp_micros()
    }
}

fn storage() -> Option<web_sys_storage::Storage> {
    #[cfg(feature = "hydrate")]
    {
        window().local_storage().ok().flatten()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        None
    }
}

#[cfg(feature = "hydrate")]
mod web_sys_storage {
    pub use web_sys::Storage;
}

#[cfg(not(feature = "hydrate"))]
mod web_sys_storage {
    /// No storage on the server.
    pub struct Storage;
    impl Storage {
        pub fn get_item(&self, _: &str) -> Result<Option<String>, ()> {
            Ok(None)
        }
        pub fn set_item(&self, _: &str, _: &str) -> Result<(), ()> {
            Ok(())
        }
    }
}

/// The zone the UTC switch last chose in this browser (local time unless
/// it was switched on); UTC on the server.
pub fn remembered_display_zone() -> DisplayZone {
    if cfg!(not(feature = "hydrate")) {
        return DisplayZone::Utc;
    }
    let utc = storage()
        .and_then(|s| s.get_item(STORAGE_KEY).ok().flatten())
        .is_some_and(|v| v == "1");
    if utc {
        DisplayZone::Utc
    } else {
        DisplayZone::Browser
    }
}

/// The zone every time on the page is shown in (a context from the layout).
pub fn provide_display_zone() {
    let zone = RwSignal::new(DisplayZone::Utc);
    Effect::new(move |_| zone.set(remembered_display_zone()));
    provide_context(zone);
}

pub fn use_display_zone() -> RwSignal<DisplayZone> {
    use_context::<RwSignal<DisplayZone>>().unwrap_or_else(|| RwSignal::new(DisplayZone::Utc))
}

/// The UTC switch.
#[component]
pub fn UtcToggle() -> impl IntoView {
    let zone = use_display_zone();
    let toggle = move |_| {
        let next = if zone.get_untracked() == DisplayZone::Utc {
            DisplayZone::Browser
        } else {
            DisplayZone::Utc
        };
        if let Some(s) = storage() {
            let _ = s.set_item(
                STORAGE_KEY,
                if next == DisplayZone::Utc { "1" } else { "0" },
            );
        }
        zone.set(next);
    };
    view! {
        <button
            type="button"
            class="toggle"
            aria-pressed=move || (zone.get() == DisplayZone::Utc).to_string()
            title="Show times in UTC instead of your time zone"
            on:click=toggle
        >
            <span class="toggle-track" aria-hidden="true"><span class="toggle-thumb"></span></span>
            "UTC"
        </button>
    }
}

/// A `<time>` element in the display zone.
#[component]
pub fn Time(micros: i64) -> impl IntoView {
    let zone = use_display_zone();
    let text = move || crate::dates::format_instant(micros, &zone.get());
    view! {
        <time datetime=crate::models::format_rfc3339(micros) class="nowrap">
            {move || {
                let t = text();
                let (day, clock) = t.split_once(' ').map(|(d, c)| (d.to_string(), c.to_string())).unwrap_or((t, String::new()));
                view! {
                    <span class="day">{day}</span>
                    " "
                    <span class="clock">{clock}</span>
                }
            }}
        </time>
    }
}
