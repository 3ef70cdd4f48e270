use crate::errors::AppError;
use crate::functions::auth::{current_user, Logout};
use crate::models::{Role, UserInfo};
use leptos::form::ActionForm;
use leptos::prelude::*;
use leptos_router::components::{Outlet, A};

/// The frame of every signed-in page: sidebar, top bar and the page.
#[component]
pub fn Layout() -> impl IntoView {
    crate::components::zone::provide_display_zone();
    let me = Resource::new(|| (), |_| current_user());
    // Pages read the signed-in user (their role) from here.
    provide_context(me);
    let integrity = crate::components::integrity_badge::provide_integrity();
    // On a narrow screen the sidebar is a drawer: open by the menu button,
    // closed by a choice, the backdrop or Escape.
    let (nav_open, set_nav_open) = signal(false);
    let escape = window_event_listener(leptos::ev::keydown, move |ev| {
        if ev.key() == "Escape" && nav_open.get_untracked() {
            set_nav_open.set(false);
        }
    });
    on_cleanup(move || escape.remove());
    view! {
        <a
            class="skip-link"
            href="#main"
            on:click=|ev| {
                // Past the router (which would only scroll): focus the page.
                ev.prevent_default();
                focus_main();
            }
        >
            "Skip to content"
        </a>
        <div class="frame">
            <Sidebar me open=nav_open close=move || set_nav_open.set(false) />
            <button
                type="button"
                class="nav-backdrop"
                class:open=nav_open
                tabindex="-1"
                aria-hidden="true"
                on:click=move |_| set_nav_open.set(false)
            ></button>
            <div class="workspace">
                <header class="topbar">
                    <div class="topbar-left">
                        <button
                            type="button"
                            class="button menu-button"
                            aria-label="Menu"
                            aria-controls="sidebar"
                            aria-expanded=move || if nav_open.get() { "true" } else { "false" }
                            on:click=move |_| set_nav_open.update(|open| *open = !*open)
                        >
                            "☰"
                        </button>
                        <span class="topbar-title">"Audit trail"</span>
                        <crate::components::integrity_badge::IntegrityBadge status=integrity />
                    </div>
                    <Transition fallback=|| ()>
                        {move || Suspend::new(async move {
                            me.await.ok().map(|user| view! { <UserMenu user /> })
                        })}
                    </Transition>
                </header>
                <main class="main" id="main" tabindex="-1">
                    <Outlet />
                </main>
            </div>
        </div>
    }
}

#[component]
fn Sidebar(
    me: Resource<Result<UserInfo, AppError>>,
    open: ReadSignal<bool>,
    close: impl Fn() + Copy + 'static,
) -> impl IntoView {
    view! {
        <nav
            class="sidebar"
            id="sidebar"
            class:open=open
            aria-label="Main"
            on:click=move |ev| {
                if is_link(&ev) {
                    close();
                }
            }
        >
            <a class="brand" href="/overview">
                <span class="brand-mark" aria-hidden="true">"◆"</span>
                "Auditdeck"
            </a>
            <div class="nav-group">
                <h2 class="nav-heading">"Monitoring"</h2>
                <ul>
                    <li>
                        <A href="/overview">"Overview"</A>
                    </li>
                    <li>
                        <A href="/activity-log">"Activity Log"</A>
                    </li>
                    <li>
                        <A href="/integrity">"Integrity"</A>
                    </li>
                    <Transition fallback=|| ()>
                        {move || Suspend::new(async move {
                            let me = me.await;
                            let auditor = me.as_ref().is_ok_and(|u| u.role.allows(Role::Auditor));
                            view! {
                                {auditor
                                    .then(|| {
                                        view! {
                                            <li>
                                                <A href="/alerts">"Alerts"</A>
                                            </li>
                                        }
                                    })}
                                {is_admin(me)
                                    .then(|| {
                                        view! {
                                            <li>
                                                <A href="/admin-sessions">"Admin Sessions"</A>
                                            </li>
                                        }
                                    })}
                            }
                        })}
                    </Transition>
                </ul>
            </div>
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    is_admin(me.await)
                        .then(|| {
                            view! {
                                <div class="nav-group">
                                    <h2 class="nav-heading">"Settings"</h2>
                                    <ul>
                                        <li>
                                            <A href="/settings/users">"Users"</A>
                                        </li>
                                        <li>
                                            <A href="/settings/api-keys">"API keys"</A>
                                        </li>
                                        <li>
                                            <A href="/settings/retention">"Retention"</A>
                                        </li>
                                        <li>
                                            <A href="/settings/streams">"Streams"</A>
                                        </li>
                                        <li>
                                            <A href="/settings/alerts">"Alerts"</A>
                                        </li>
                                    </ul>
                                </div>
                            }
                        })
                })}
            </Transition>
        </nav>
    }
}

/// Whether a click was on a link (or inside one).
fn is_link(ev: &leptos::ev::MouseEvent) -> bool {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        ev.target()
            .and_then(|target| target.dyn_into::<web_sys::Element>().ok())
            .and_then(|element| element.closest("a").ok().flatten())
            .is_some()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = ev;
        false
    }
}

/// Moves the keyboard focus to the page's main region.
fn focus_main() {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        if let Some(main) = document()
            .get_element_by_id("main")
            .and_then(|element| element.dyn_into::<web_sys::HtmlElement>().ok())
        {
            _ = main.focus();
        }
    }
}

fn is_admin(me: Result<UserInfo, AppError>) -> bool {
    me.is_ok_and(|u| u.role.allows(Role::Admin))
}

/// The signed-in user and the sign-out button.
#[component]
fn UserMenu(user: UserInfo) -> impl IntoView {
    let logout = ServerAction::<Logout>::new();
    view! {
        <div class="user-menu" data-testid="user-menu">
            <div class="user-who">
                <span class="user-name">{user.name}</span>
                <span class="user-email">{user.email}</span>
            </div>
            <crate::components::theme::ThemeSwitch />
            <span class=format!("badge role-{}", user.role.as_str())>{user.role.label()}</span>
            <ActionForm action=logout>
                <button type="submit" class="button">"Sign out"</button>
            </ActionForm>
        </div>
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
                        view! { <li aria-current=(i == last).then_some("page")>{step}</li> }
                    })
                    .collect_view()}
            </ol>
        </nav>
    }
}
