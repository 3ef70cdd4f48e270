//! Settings: users and API keys. Admins only; every change is audited in
//! the same transaction as the change.

use crate::errors::AppError;
use crate::models::{ApiKeyRow, Role, UserRow};
use leptos::prelude::*;

#[cfg(feature = "ssr")]
pub(crate) mod admin {
    use crate::errors::{AppError, AppResult};
    use crate::models::{Role, UserInfo};
    use crate::server::auth::{self, ClientInfo};
    use crate::server::state::AppState;
    use crate::server::store::{self, Tx};

    pub async fn admin() -> AppResult<(AppState, UserInfo, ClientInfo)> {
        auth::require(Role::Admin).await
    }

    /// The user an admin acts on; never the admin themselves (no lock-out).
    pub async fn target(state: &AppState, me: &UserInfo, id: i64) -> AppResult<UserInfo> {
        if id == me.id {
            return Err(AppError::bad_request(
                "You cannot change your own role, status or password here.",
            ));
        }
        Ok(store::get_user(&state.db, id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("user {id}")))?
            .info)
    }

    /// A change an admin makes to another user.
    pub enum UserChange {
        Role(Role),
        Disabled(bool),
        Password(String),
    }

    /// Applies a change to user `id` and audits it, in one transaction.
    pub async fn change_user(id: i64, change: UserChange) -> AppResult<()> {
        let (state, me, client) = admin().await?;
        let user = target(&state, &me, id).await?;
        let password_hash = match &change {
            UserChange::Password(password) => {
                auth::check_new_password(password)?;
                Some(auth::hash_password(password)?)
            }
            _ => None,
        };
        let mut tx = store::begin(&state.db).await?;
        let description = match change {
            UserChange::Role(role) => {
                store::set_user_role_in(&mut tx, id, role).await?;
                format!(
                    "Changed the role of {} from {} to {}",
                    user.username,
                    user.role.as_str(),
                    role.as_str()
                )
            }
            UserChange::Disabled(disabled) => {
                store::set_user_disabled_in(&mut tx, id, disabled).await?;
                let verb = if disabled { "Disabled" } else { "Enabled" };
                format!("{verb} user {}", user.username)
            }
            UserChange::Password(_) => {
                let hash = password_hash.unwrap_or_default();
                store::set_password_in(&mut tx, id, &hash).await?;
                format!("Reset the password of {}", user.username)
            }
        };
        audit_and_commit(
            tx,
            &me,
            &client,
            "UPDATE",
            ("users", id.to_string()),
            description,
        )
        .await
    }

    /// Writes the audit event of a change inside its transaction, then commits.
    pub async fn audit_and_commit(
        mut tx: Tx,
        me: &UserInfo,
        client: &ClientInfo,
        action: &str,
        record: (&str, String),
        description: String,
    ) -> AppResult<()> {
        let event = auth::self_event(
            tx.now(),
            Some(me),
            client,
            action,
            Some(record),
            description,
        );
        store::insert_events_in(&mut tx, &[event], None).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Every user. Admin.
#[server(endpoint = "list_users")]
pub async fn list_users() -> Result<Vec<UserRow>, AppError> {
    crate::server::with_status(async move {
        let (state, _, _) = admin::admin().await?;
        crate::server::store::list_users(&state.db).await
    })
    .await
}

/// Creates a user. Admin.
#[server(endpoint = "create_user")]
pub async fn create_user(
    username: String,
    name: String,
    email: String,
    role: Role,
    password: String,
) -> Result<i64, AppError> {
    use crate::server::auth;
    crate::server::with_status(async move {
        let (state, me, client) = admin::admin().await?;
        let form = auth::UserForm {
            username: &username,
            email: &email,
            name: &name,
            role,
            password: &password,
        };
        auth::create_user(&state.db, Some(&me), &client, form).await
    })
    .await
}

/// Changes a user's role. Admin.
#[server(endpoint = "set_user_role")]
pub async fn set_user_role(id: i64, role: Role) -> Result<(), AppError> {
    crate::server::with_status(admin::change_user(id, admin::UserChange::Role(role))).await
}

/// Disables or enables a user. Admin.
#[server(endpoint = "set_user_disabled")]
pub async fn set_user_disabled(id: i64, disabled: bool) -> Result<(), AppError> {
    crate::server::with_status(admin::change_user(
        id,
        admin::UserChange::Disabled(disabled),
    ))
    .await
}

/// Sets a new password for a user. Admin.
#[server(endpoint = "reset_password")]
pub async fn reset_password(id: i64, password: String) -> Result<(), AppError> {
    crate::server::with_status(admin::change_user(
        id,
        admin::UserChange::Password(password),
    ))
    .await
}

/// Every API key (never the keys themselves). Admin.
#[server(endpoint = "list_api_keys")]
pub async fn list_api_keys() -> Result<Vec<ApiKeyRow>, AppError> {
    crate::server::with_status(async move {
        let (state, _, _) = admin::admin().await?;
        crate::server::store::list_api_keys(&state.db).await
    })
    .await
}

/// Creates an API key with the scopes ticked and returns it: the only time
/// it is shown. Admin. Each scope is a checkbox named after it (with `_`
/// for `:`), so the form needs no list encoding.
#[server(endpoint = "create_api_key")]
pub async fn create_api_key(
    label: String,
    #[server(default)] events_write: Option<String>,
    #[server(default)] events_read: Option<String>,
    #[server(default)] sessions_read: Option<String>,
) -> Result<String, AppError> {
    use crate::server::{api_keys, store};
    crate::server::with_status(async move {
        let (state, me, client) = admin::admin().await?;
        let ticked: Vec<&str> = [
            ("events:write", &events_write),
            ("events:read", &events_read),
            ("sessions:read", &sessions_read),
        ]
        .into_iter()
        .filter(|(_, on)| on.is_some())
        .map(|(scope, _)| scope)
        .collect();
        let mut tx = store::begin(&state.db).await?;
        let (id, key) = api_keys::create_in(&mut tx, &label, &ticked).await?;
        let description = format!(
            "Created API key \"{}\" ({})",
            label.trim(),
            crate::models::parse_scopes(ticked.iter().copied())
                .unwrap_or_default()
                .join(", ")
        );
        admin::audit_and_commit(
            tx,
            &me,
            &client,
            "CREATE",
            ("api_keys", id.to_string()),
            description,
        )
        .await?;
        Ok(key)
    })
    .await
}

/// Revokes an API key. Admin.
#[server(endpoint = "revoke_api_key")]
pub async fn revoke_api_key(id: i64) -> Result<(), AppError> {
    use crate::server::store;
    crate::server::with_status(async move {
        let (state, me, client) = admin::admin().await?;
        let mut tx = store::begin(&state.db).await?;
        let label = store::revoke_api_key_in(&mut tx, id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("active API key {id}")))?;
        let description = format!("Revoked API key \"{label}\"");
        admin::audit_and_commit(
            tx,
            &me,
            &client,
            "DELETE",
            ("api_keys", id.to_string()),
            description,
        )
        .await
    })
    .await
}
