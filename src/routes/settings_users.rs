//! Settings → Users (admins).

use crate::components::error_notice::ErrorNotice;
use crate::components::form_message::{FormError, FormOk};
use crate::components::layout::Breadcrumb;
use crate::functions::settings::{
    list_users, CreateUser, ResetPassword, SetUserDisabled, SetUserRole,
};
use crate::models::{format_utc, Role, UserRow};
use leptos::form::ActionForm;
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn UsersPage() -> impl IntoView {
    let create = ServerAction::<CreateUser>::new();
    let set_role = ServerAction::<SetUserRole>::new();
    let set_disabled = ServerAction::<SetUserDisabled>::new();
    let reset = ServerAction::<ResetPassword>::new();
    let users = Resource::new(
        move || {
            (
                create.version().get(),
                set_role.version().get(),
                set_disabled.version().get(),
            )
        },
        |_| list_users(),
    );
    let row_error = move || {
        set_role
            .value()
            .get()
            .and_then(Result::err)
            .or_else(|| set_disabled.value().get().and_then(Result::err))
            .or_else(|| reset.value().get().and_then(Result::err))
    };
    let actions = RowActions {
        set_role,
        set_disabled,
        reset,
    };
    view! {
        <Title text="Users" />
        <Breadcrumb trail=vec!["Settings", "Users"] />
        <div class="page-header">
            <h1>"Users"</h1>
            <p class="page-intro">"Who may sign in, and what their role lets them do."</p>
        </div>
        <section class="card form-card">
            <h2>"Add a user"</h2>
            <ActionForm action=create attr:class="settings-form">
                <label>"Username" <input name="username" required autocomplete="off" /></label>
                <label>"Full name" <input name="name" required autocomplete="off" /></label>
                <label>"Email" <input name="email" type="email" required autocomplete="off" /></label>
                <label>
                    "Role"
                    <select name="role">
                        {Role::ALL
                            .into_iter()
                            .map(|r| view! { <option value=r.as_str()>{r.label()}</option> })
                            .collect_view()}
                    </select>
                </label>
                <label>
                    "Password"
                    <input name="password" type="password" required minlength="10" autocomplete="new-password" />
                </label>
                <button type="submit" class="button primary">"Add user"</button>
            </ActionForm>
            {move || {
                create
                    .value()
                    .get()
                    .map(|result| match result {
                        Ok(_) => view! { <FormOk text="User added." /> }.into_any(),
                        Err(e) => view! { <FormError error=e /> }.into_any(),
                    })
            }}
        </section>
        {move || row_error().map(|e| view! { <FormError error=e /> })}
        {move || {
            reset
                .value()
                .get()
                .and_then(Result::ok)
                .map(|_| view! { <FormOk text="Password changed." /> })
        }}
        <section class="card table-card">
            <Transition fallback=|| view! { <p class="loading">"Loading users…"</p> }>
                {move || Suspend::new(async move {
                    match users.await {
                        Ok(rows) => view! { <UsersTable rows actions /> }.into_any(),
                        Err(error) => view! { <ErrorNotice error /> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[derive(Clone, Copy)]
struct RowActions {
    set_role: ServerAction<SetUserRole>,
    set_disabled: ServerAction<SetUserDisabled>,
    reset: ServerAction<ResetPassword>,
}

#[component]
fn UsersTable(rows: Vec<UserRow>, actions: RowActions) -> impl IntoView {
    view! {
        <div class="table-scroll">
            <table class="data-table users">
                <thead>
                    <tr>
                        <th scope="col">"Name"</th>
                        <th scope="col">"Username"</th>
                        <th scope="col">"Role"</th>
                        <th scope="col">"Status"</th>
                        <th scope="col">"Added (UTC)"</th>
                        <th scope="col">"Password"</th>
                    </tr>
                </thead>
                <tbody>
                    {rows.into_iter().map(|row| view! { <UserRowView row actions /> }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}

#[component]
fn UserRowView(row: UserRow, actions: RowActions) -> impl IntoView {
    let UserRow {
        user,
        disabled,
        created_at,
    } = row;
    let id = user.id;
    let current = user.role;
    let username = user.username.clone();
    let password_label = format!("New password for {}", user.username);
    view! {
        <tr data-username=user.username.clone()>
            <td>
                <div class="initiator">{user.name.clone()}</div>
                <div class="initiator-email">{user.email.clone()}</div>
            </td>
            <td class="mono">{user.username.clone()}</td>
            <td>
                <select
                    aria-label=format!("Role of {username}")
                    on:change=move |ev| {
                        if let Some(role) = Role::parse(&event_target_value(&ev)) {
                            actions.set_role.dispatch(SetUserRole { id, role });
                        }
                    }
                >
                    {Role::ALL
                        .into_iter()
                        .map(|r| view! { <option value=r.as_str() selected=r == current>{r.label()}</option> })
                        .collect_view()}
                </select>
            </td>
            <td>
                <span class=if disabled { "badge status-disabled" } else { "badge status-active" }>
                    {if disabled { "Disabled" } else { "Active" }}
                </span>
                " "
                <button
                    class="button small"
                    on:click=move |_| {
                        actions.set_disabled.dispatch(SetUserDisabled { id, disabled: !disabled });
                    }
                >
                    {if disabled { "Enable" } else { "Disable" }}
                </button>
            </td>
            <td class="nowrap">{format_utc(created_at)}</td>
            <td>
                <ActionForm action=actions.reset attr:class="inline-form">
                    <input type="hidden" name="id" value=id.to_string() />
                    <input
                        type="password"
                        name="password"
                        required
                        minlength="10"
                        autocomplete="new-password"
                        placeholder="New password"
                        aria-label=password_label
                    />
                    <button type="submit" class="button small">"Set"</button>
                </ActionForm>
            </td>
        </tr>
    }
}
