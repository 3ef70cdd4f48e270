//! The sign-in page.

use crate::components::form_message::FormError;
use crate::functions::auth::Login;
use leptos::form::ActionForm;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

#[component]
pub fn LoginPage() -> impl IntoView {
    let login = ServerAction::<Login>::new();
    let params = use_query_map();
    let next = move || params.read().get("next").unwrap_or_default();
    let error = move || login.value().get().and_then(Result::err);
    view! {
        <Title text="Sign in" />
        <div class="login-page">
            <section class="card login-card">
                <div class="login-brand">
                    <span class="brand-mark" aria-hidden="true">"◆"</span>
                    "Auditdeck"
                </div>
                <h1>"Sign in"</h1>
                <ActionForm action=login attr:class="login-form">
                    <input type="hidden" name="next" prop:value=next />
                    <label>
                        "Username or email"
                        <input name="username" autocomplete="username" required autofocus />
                    </label>
                    <label>
                        "Password"
                        <input type="password" name="password" autocomplete="current-password" required />
                    </label>
                    {move || {
                        error().map(|e| view! { <FormError error=e /> })
                    }}
                    <button type="submit" class="button primary" disabled=move || login.pending().get()>
                        {move || if login.pending().get() { "Signing in…" } else { "Sign in" }}
                    </button>
                </ActionForm>
            </section>
        </div>
    }
}
