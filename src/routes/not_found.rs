use crate::app::mark_hydrated_after_page;
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn NotFound() -> impl IntoView {
    mark_hydrated_after_page();
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(axum::http::StatusCode::NOT_FOUND);
    }
    view! {
        <Title text="Not found" />
        <div class="login-page">
            <section class="card notice">
                <h1>"Page not found"</h1>
                <p>"There is no page at this address. "<a href="/activity-log">"Go to the Activity Log"</a></p>
            </section>
        </div>
    }
}
