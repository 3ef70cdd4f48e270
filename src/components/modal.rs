//! A modal dialog on the browser's `<dialog>`: the page behind is inert,
//! Escape and the close button close it, Tab stays inside, and focus goes
//! back to what opened it.

use leptos::html::Dialog;
use leptos::prelude::*;

#[component]
pub fn Modal(
    /// The heading, also the dialog's accessible name.
    #[prop(into)]
    title: Signal<String>,
    /// Called once the dialog has closed.
    on_close: Callback<()>,
    #[prop(optional, into)] class: String,
    children: Children,
) -> impl IntoView {
    let dialog = NodeRef::<Dialog>::new();
    Effect::new(move |_| {
        if let Some(d) = dialog.get() {
            if !d.open() {
                let _ = d.show_modal();
            }
        }
    });
    let close = move |_| {
        if let Some(d) = dialog.get_untracked() {
            d.close();
        }
    };
    view! {
        <dialog
            node_ref=dialog
            class=format!("modal {class}")
            aria-labelledby="modal-title"
            on:close=move |_| on_close.run(())
            on:keydown=move |ev| trap_tab(&ev, dialog)
        >
            <header class="modal-header">
                <h2 id="modal-title">{move || title.get()}</h2>
                <button type="button" class="icon-button" aria-label="Close" on:click=close>
                    "✕"
                </button>
            </header>
            <div class="modal-body">{children()}</div>
        </dialog>
    }
}

/// Moves focus to the element with this id once the page has drawn.
#[cfg(feature = "hydrate")]
pub fn focus_by_id(id: String) {
    request_animation_frame(move || {
        use wasm_bindgen::JsCast;
        if let Some(el) = document().get_element_by_id(&id) {
            if let Ok(el) = el.dyn_into::<web_sys::HtmlElement>() {
                let _ = el.focus();
            }
        }
    });
}

#[cfg(not(feature = "hydrate"))]
pub fn focus_by_id(_: String) {}

/// Keeps Tab and Shift+Tab cycling through the dialog's own controls.
fn trap_tab(ev: &leptos::ev::KeyboardEvent, dialog: NodeRef<Dialog>) {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        if ev.key() != "Tab" {
            return;
        }
        let Some(d) = dialog.get_untracked() else {
            return;
        };
        let Ok(list) = d.query_selector_all(
            "button:not([disabled]), [href], input:not([disabled]), select, summary, [tabindex]:not([tabindex='-1'])",
        ) else {
            return;
        };
        let items: Vec<web_sys::HtmlElement> = (0..list.length())
            .filter_map(|i| list.item(i))
            .filter_map(|n| n.dyn_into::<web_sys::HtmlElement>().ok())
            .filter(|e| e.offset_parent().is_some())
            .collect();
        let (Some(first), Some(last)) = (items.first(), items.last()) else {
            return;
        };
        let active = document().active_element();
        let at = |e: &web_sys::HtmlElement| {
            active
                .as_ref()
                .is_some_and(|a| a == e.unchecked_ref::<web_sys::Element>())
        };
        let inside = active.as_ref().is_some_and(|a| d.contains(Some(a)));
        if ev.shift_key() && (at(first) || !inside) {
            ev.prevent_default();
            let _ = last.focus();
        } else if !ev.shift_key() && (at(last) || !inside) {
            ev.prevent_default();
            let _ = first.focus();
        }
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = (ev, dialog);
    }
}
