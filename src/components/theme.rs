//! Light or dark: the system's choice (`prefers-color-scheme`) until the
//! switch makes one, which a cookie keeps for this browser, so the server
//! renders the page in it from the first byte (no flash of the other theme).

use leptos::prelude::*;

pub const THEME_COOKIE: &str = "auditdeck_theme";

/// A theme the switch chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Theme {
    Light,
    Dark,
}

impl Theme {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Light => "light",
            Self::Dark => "dark",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "light" => Some(Self::Light),
            "dark" => Some(Self::Dark),
            _ => None,
        }
    }
}

/// The value of the cookie `name` in a `Cookie` header.
pub fn cookie_in<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.trim())
}

/// What `read` finds in the request's `Cookie` headers, rendering on the
/// server.
#[cfg(feature = "ssr")]
pub fn from_request_cookies<T>(read: impl Fn(&str) -> Option<T>) -> Option<T> {
    use_context::<axum::http::request::Parts>().and_then(|parts| {
        parts
            .headers
            .get_all(axum::http::header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find_map(read)
    })
}

/// The theme a `Cookie` header carries, if any (anything else in it is
/// ignored, a value that is not a theme too).
pub fn theme_from_cookies(header: &str) -> Option<Theme> {
    cookie_in(header, THEME_COOKIE).and_then(Theme::parse)
}

/// The theme the page is rendered in: on the server, the request's cookie;
/// in the browser, what the server rendered (the root's `data-theme`).
pub fn chosen_theme() -> Option<Theme> {
    #[cfg(feature = "ssr")]
    {
        from_request_cookies(theme_from_cookies)
    }
    #[cfg(all(feature = "hydrate", not(feature = "ssr")))]
    {
        document()
            .document_element()
            .and_then(|root| root.get_attribute("data-theme"))
            .and_then(|value| Theme::parse(&value))
    }
    #[cfg(not(any(feature = "ssr", feature = "hydrate")))]
    {
        None
    }
}

/// Whether the system asks for dark pages (in the browser; never on the server).
fn system_prefers_dark() -> bool {
    #[cfg(feature = "hydrate")]
    {
        window()
            .match_media("(prefers-color-scheme: dark)")
            .ok()
            .flatten()
            .is_some_and(|query| query.matches())
    }
    #[cfg(not(feature = "hydrate"))]
    {
        false
    }
}

/// Applies a choice to the page and keeps it for a year in this browser.
fn remember(theme: Theme) {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        let document = document();
        if let Some(root) = document.document_element() {
            _ = root.set_attribute("data-theme", theme.as_str());
        }
        if let Ok(html) = document.dyn_into::<web_sys::HtmlDocument>() {
            _ = html.set_cookie(&format!(
                "{THEME_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax",
                theme.as_str()
            ));
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = theme;
}

/// The top bar's dark-mode switch: pressed while the page is dark.
#[component]
pub fn ThemeSwitch() -> impl IntoView {
    let chosen = RwSignal::new(chosen_theme());
    // Known once hydrated: the server cannot see the system's preference.
    let system_dark = RwSignal::new(false);
    Effect::new(move |_| system_dark.set(system_prefers_dark()));
    let dark = move || match chosen.get() {
        Some(theme) => theme == Theme::Dark,
        None => system_dark.get(),
    };
    view! {
        <button
            type="button"
            class="button theme-switch"
            aria-pressed=move || if dark() { "true" } else { "false" }
            title="Dark mode"
            on:click=move |_| {
                let next = if dark() { Theme::Light } else { Theme::Dark };
                remember(next);
                chosen.set(Some(next));
            }
        >
            <span aria-hidden="true">{move || if dark() { "☾" } else { "☀" }}</span>
            <span class="sr-only">"Dark mode"</span>
        </button>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_header_names_the_theme() {
        assert_eq!(
            theme_from_cookies("auditdeck_theme=dark"),
            Some(Theme::Dark)
        );
        assert_eq!(
            theme_from_cookies("auditdeck_session=abc; auditdeck_theme=light; x=1"),
            Some(Theme::Light)
        );
        assert_eq!(theme_from_cookies("auditdeck_session=abc"), None);
        assert_eq!(theme_from_cookies("auditdeck_theme=purple"), None);
        assert_eq!(theme_from_cookies("my_auditdeck_theme=dark"), None);
        assert_eq!(theme_from_cookies(""), None);
    }
}
