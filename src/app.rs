use crate::components::layout::Layout;
use crate::routes::not_found::NotFound;
use leptos::prelude::*;
use leptos_meta::{provide_meta_context, HashedStylesheet, MetaTags, Title};
use leptos_router::components::{ParentRoute, Route, Router, Routes};
use leptos_router::{lazy_route, path, Lazy, LazyRoute};

/// The HTML document around the app, rendered on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html
            lang="en"
            data-theme=crate::components::theme::chosen_theme().map(|theme| theme.as_str())
        >
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <link rel="icon" type="image/svg+xml" href="/favicon.svg" />
                <AutoReload options=options.clone() />
                <HashedStylesheet id="leptos" options=options.clone() />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// Set once the page the browser opened is hydrated (see
/// [`mark_hydrated_after_page`]).
#[derive(Clone, Copy)]
struct Hydrated(WriteSignal<bool>);

/// Marks the app hydrated once the page being built is: called as a page's
/// view is made, its effect first runs after that view has been hydrated. A
/// page is a lazy route, hydrated only once its chunk has loaded, after the
/// app around it; an effect of the app itself ran before then, and a click
/// on the page in between did nothing. (A function, not a component: each
/// page's chunk then holds only the call.)
pub fn mark_hydrated_after_page() {
    if let Some(Hydrated(set)) = use_context::<Hydrated>() {
        Effect::new(move |_| set.set(true));
    }
}

/// The app. Once the page it opened is hydrated in the browser, its root
/// carries `data-hydrated="true"` (tests wait for it before clicking).
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let (hydrated, set_hydrated) = signal(false);
    provide_context(Hydrated(set_hydrated));
    view! {
        <Title formatter=|page: String| format!("{page} · Auditdeck") />
        <Router>
            <div id="app" data-hydrated=move || hydrated.get().then_some("true")>
                <Routes fallback=NotFound>
                    <Route path=path!("/login") view={Lazy::<LoginRoute>::new()} />
                    <ParentRoute path=path!("") view=Layout>
                        <Route path=path!("/overview") view={Lazy::<OverviewRoute>::new()} />
                        <Route path=path!("/activity-log") view={Lazy::<ActivityLogRoute>::new()} />
                        <Route path=path!("/admin-sessions") view={Lazy::<AdminSessionsRoute>::new()} />
                        <Route path=path!("/settings/users") view={Lazy::<UsersRoute>::new()} />
                        <Route path=path!("/settings/api-keys") view={Lazy::<ApiKeysRoute>::new()} />
                        <Route path=path!("/settings/retention") view={Lazy::<RetentionRoute>::new()} />
                        <Route path=path!("/settings/streams") view={Lazy::<StreamsRoute>::new()} />
                        <Route path=path!("/integrity") view={Lazy::<IntegrityRoute>::new()} />
                        <Route path=path!("/alerts") view={Lazy::<AlertsRoute>::new()} />
                        <Route path=path!("/settings/alerts") view={Lazy::<AlertRulesRoute>::new()} />
                    </ParentRoute>
                </Routes>
            </div>
        </Router>
    }
}

/// A page whose code the browser loads when it is first visited (its own
/// WebAssembly chunk, split out by `cargo leptos build --split`), not with
/// every other page's.
macro_rules! lazy_page {
    ($route:ident, $page:path) => {
        struct $route;

        #[lazy_route]
        impl LazyRoute for $route {
            fn data() -> Self {
                Self
            }

            fn view(_this: Self) -> AnyView {
                mark_hydrated_after_page();
                view! { <$page /> }.into_any()
            }
        }
    };
}

lazy_page!(LoginRoute, crate::routes::login::LoginPage);
lazy_page!(OverviewRoute, crate::routes::overview::OverviewPage);
lazy_page!(
    ActivityLogRoute,
    crate::routes::activity_log::ActivityLogPage
);
lazy_page!(
    AdminSessionsRoute,
    crate::routes::admin_sessions::AdminSessionsPage
);
lazy_page!(UsersRoute, crate::routes::settings_users::UsersPage);
lazy_page!(ApiKeysRoute, crate::routes::settings_api_keys::ApiKeysPage);
lazy_page!(
    RetentionRoute,
    crate::routes::settings_retention::RetentionPage
);
lazy_page!(StreamsRoute, crate::routes::settings_streams::StreamsPage);
lazy_page!(IntegrityRoute, crate::routes::integrity::IntegrityPage);
lazy_page!(AlertsRoute, crate::routes::alerts::AlertsPage);
lazy_page!(
    AlertRulesRoute,
    crate::routes::settings_alerts::AlertRulesPage
);
