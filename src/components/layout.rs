use leptos::prelude::*;
use leptos_router::components::A;

/// The frame of every page: sidebar, top bar and the main area.
///
/// Once the app has hydrated in the browser, the frame carries
/// `data-hydrated="true"` (tests wait for it before clicking).
#[component]
pub fn Layout(children: Children) -> impl IntoView {
    let (hydrated, set_hydrated) = signal(false);
    Effect::new(move |_| set_hydrated.set(true));
    view! {
        <div class="frame" data-hydrated=move || hydrated.get().then_some("true")>
            <Sidebar />
            <div class="workspace">
                <TopBar />
                <main class="main">{children()}</main>
            </div>
        </div>
    }
}

#[component]
fn Sidebar() -> impl IntoView {
    view! {
        <nav class="sidebar" aria-label="Main">
            <a class="brand" href="/activity-log">
                <span class="brand-mark" aria-hidden="true">"◆"</span>
                "Auditdeck"
            </a>
            <div class="nav-group">
                <h2 class="nav-heading">"Monitoring"</h2>
                <ul>
                    <li>
                        <A href="/activity-log">"Activity Log"</A>
                    </li>
                </ul>
            </div>
        </nav>
    }
}

#[component]
fn TopBar() -> impl IntoView {
    view! {
        <header class="topbar">
            <span class="topbar-title">"Audit trail"</span>
            <span class="topbar-note">"Times in UTC"</span>
        </header>
    }
}

/// Where the page sits in the navigation, e.g. Monitoring / Activity Log.
#[component]
pub fn Breadcrumb(trail: Vec<&'static str>) -> impl IntoView {
    let last = trail.len().saturating_sub(1);
    view! {
        <nav class="breadcrumb" aria-label="Breadcrumb">
            <ol>
                {trail
                    .into_iter()
                    .enumerate()
                    .map(|(i, step)| {
                        view! {
                            <li aria-current=(i == last).then_some("page")>{step}</li>
                        }
                    })
                    .collect_view()}
            </ol>
        </nav>
    }
}
