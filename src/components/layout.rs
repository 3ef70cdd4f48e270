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
    view! {
        <div class="frame">
            <Sidebar me />
            <div class="workspace">
                <header class="topbar">
                    <div class="topbar-left">
                        <span class="topbar-title">"Audit trail"</span>
                        <crate::components::integrity_badge::IntegrityBadge status=integrity />
                    </div>
                    <Transition fallback=|| ()>
                        {move || Suspend::new(async move {
                            me.await.ok().map(|user| view! { <UserMenu user /> })
                        })}
                    </Transition>
                </header>
                <main class="main">
                    <Outlet />
                </main>
            </div>
        </div>
    }
}

#[component]
fn Sidebar(me: Resource<Result<UserInfo, AppError>>) -> impl IntoView {
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
                    <li>
                        <A href="/integrity">"Integrity"</A>
                    </li>
                    <Transition fallback=|| ()>
                        {move || Suspend::new(async move {
                            is_admin(me.await).then(|| {
                                view! {
                                    <li>
                                        <A href="/admin-sessions">"Admin Sessions"</A>
                                    </li>
                                }
                            })
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
                                    </ul>
                                </div>
                            }
                        })
                })}
            </Transition>
        </nav>
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
