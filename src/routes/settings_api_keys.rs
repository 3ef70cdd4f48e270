//! Settings → API keys (admins): keys for the ingest API.

use crate::components::error_notice::ErrorNotice;
use crate::components::form_message::FormError;
use crate::components::layout::Breadcrumb;
use crate::functions::settings::{list_api_keys, CreateApiKey, RevokeApiKey};
use crate::models::{format_utc, ApiKeyRow, API_KEY_SCOPES, SCOPE_EVENTS_WRITE};
use leptos::form::ActionForm;
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn ApiKeysPage() -> impl IntoView {
    let create = ServerAction::<CreateApiKey>::new();
    let revoke = ServerAction::<RevokeApiKey>::new();
    let keys = Resource::new(
        move || (create.version().get(), revoke.version().get()),
        |_| list_api_keys(),
    );
    view! {
        <Title text="API keys" />
        <Breadcrumb trail=vec!["Settings", "API keys"] />
        <div class="page-header">
            <h1>"API keys"</h1>
            <p class="page-intro">
                "Keys let other systems send events to " <code>"POST /api/v1/events"</code>
                " and read the log, as far as their scopes allow. A key is shown once, when it is created."
            </p>
        </div>
        <section class="card form-card">
            <h2>"Create a key"</h2>
            <ActionForm action=create attr:class="settings-form">
                <label>
                    "Label" <input name="label" required maxlength="100" placeholder="e.g. billing-service" />
                </label>
                <fieldset class="scopes">
                    <legend>"What the key may do"</legend>
                    {API_KEY_SCOPES
                        .iter()
                        .map(|(scope, meaning)| {
                            view! {
                                <label class="scope">
                                    <input
                                        type="checkbox"
                                        name=scope.replace(':', "_")
                                        checked=*scope == SCOPE_EVENTS_WRITE
                                    />
                                    <code>{*scope}</code>
                                    <span class="hint">{*meaning}</span>
                                </label>
                            }
                        })
                        .collect_view()}
                </fieldset>
                <button type="submit" class="button primary">"Create key"</button>
            </ActionForm>
            {move || {
                create
                    .value()
                    .get()
                    .map(|result| match result {
                        Ok(key) => {
                            view! {
                                <div class="new-key" role="status">
                                    <p>"Copy this key now: it is not shown again."</p>
                                    <code data-testid="new-api-key">{key}</code>
                                </div>
                            }
                                .into_any()
                        }
                        Err(e) => view! { <FormError error=e /> }.into_any(),
                    })
            }}
        </section>
        {move || {
            revoke
                .value()
                .get()
                .and_then(Result::err)
                .map(|e| view! { <FormError error=e /> })
        }}
        <section class="card table-card">
            <Transition fallback=|| view! { <p class="loading">"Loading keys…"</p> }>
                {move || Suspend::new(async move {
                    match keys.await {
                        Ok(rows) => view! { <KeysTable rows revoke /> }.into_any(),
                        Err(error) => view! { <ErrorNotice error /> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn KeysTable(rows: Vec<ApiKeyRow>, revoke: ServerAction<RevokeApiKey>) -> impl IntoView {
    let empty = rows.is_empty();
    view! {
        <div class="table-scroll">
            <table class="data-table api-keys">
                <thead>
                    <tr>
                        <th scope="col">"Label"</th>
                        <th scope="col">"Key"</th>
                        <th scope="col">"Scopes"</th>
                        <th scope="col">"Created (UTC)"</th>
                        <th scope="col">"Last used (UTC)"</th>
                        <th scope="col">"Status"</th>
                        <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody>
                    {rows
                        .into_iter()
                        .map(|key| {
                            let id = key.id;
                            let active = key.revoked_at.is_none();
                            view! {
                                <tr data-key-label=key.label.clone()>
                                    <td>{key.label.clone()}</td>
                                    <td class="mono">{format!("{}…", key.prefix)}</td>
                                    <td class="key-scopes" data-testid="key-scopes">
                                        {key
                                            .scopes
                                            .iter()
                                            .map(|s| view! { <code class="scope-tag">{s.clone()}</code> })
                                            .collect_view()}
                                    </td>
                                    <td class="nowrap">{format_utc(key.created_at)}</td>
                                    <td class="nowrap">
                                        {key.last_used_at.map(format_utc).unwrap_or_else(|| "never".into())}
                                    </td>
                                    <td>
                                        {match key.revoked_at {
                                            None => view! { <span class="badge status-active">"Active"</span> }.into_any(),
                                            Some(t) => {
                                                view! {
                                                    <span class="badge status-disabled" title=format_utc(t)>"Revoked"</span>
                                                }
                                                    .into_any()
                                            }
                                        }}
                                    </td>
                                    <td>
                                        {active
                                            .then(|| {
                                                view! {
                                                    <button
                                                        class="button small danger"
                                                        aria-label=format!("Revoke {}", key.label)
                                                        on:click=move |_| {
                                                            revoke.dispatch(RevokeApiKey { id });
                                                        }
                                                    >
                                                        "Revoke"
                                                    </button>
                                                }
                                            })}
                                    </td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
            {empty.then(|| view! { <p class="empty">"No API keys yet."</p> })}
        </div>
    }
}
