use crate::components::layout::Layout;
use crate::routes::activity_log::ActivityLogPage;
use crate::routes::admin_sessions::AdminSessionsPage;
use crate::routes::integrity::IntegrityPage;
use crate::routes::login::LoginPage;
use crate::routes::not_found::NotFound;
use crate::routes::settings_api_keys::ApiKeysPage;
use crate::routes::settings_retention::RetentionPage;
use crate::routes::settings_users::UsersPage;
use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::components::{ParentRoute, Route, Router, Routes};
use leptos_router::path;

/// The HTML document around the app, rendered on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <link rel="icon" type="image/svg+xml" href="/favicon.svg" />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// The app. Once hydrated in the browser, its root carries
/// `data-hydrated="true"` (tests wait for it before clicking).
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let (hydrated, set_hydrated) = signal(false);
    Effect::new(move |_| set_hydrated.set(true));
    view! {
        <Stylesheet id="leptos" href="/pkg/auditdeck.css" />
        <Title formatter=|page: String| format!("{page} · Auditdeck") />
        <Router>
            <div id="app" data-hydrated=move || hydrated.get().then_some("true")>
                <Routes fallback=NotFound>
                    <Route path=path!("/login") view=LoginPage />
                    <ParentRoute path=path!("") view=Layout>
                        <Route path=path!("/activity-log") view=ActivityLogPage />
                        <Route path=path!("/admin-sessions") view=AdminSessionsPage />
                        <Route path=path!("/settings/users") view=UsersPage />
                        <Route path=path!("/settings/api-keys") view=ApiKeysPage />
                        <Route path=path!("/settings/retention") view=RetentionPage />
                        <Route path=path!("/integrity") view=IntegrityPage />
                    </ParentRoute>
                </Routes>
            </div>
        </Router>
    }
}
