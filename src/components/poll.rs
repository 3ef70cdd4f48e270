//! Polling: something read again every so often while the tab is seen.

/// Calls `tick` every `ms` milliseconds while the tab is visible (in the
/// browser; on the server, never).
#[cfg(feature = "hydrate")]
pub fn while_visible(ms: u64, tick: impl Fn() + Clone + 'static) {
    leptos_use_interval_fn::use_interval_fn(
        move || {
            if leptos::prelude::document().visibility_state() != web_sys::VisibilityState::Hidden {
                tick();
            }
        },
        ms,
    );
}

#[cfg(not(feature = "hydrate"))]
pub fn while_visible(_: u64, _: impl Fn() + Clone + 'static) {}
