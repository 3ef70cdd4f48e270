use crate::errors::AppError;
use crate::models::UserInfo;
use leptos::prelude::*;

/// Signs in with a username (or email) and password, then goes to `next`.
#[server(endpoint = "login")]
pub async fn login(
    username: String,
    password: String,
    next: Option<String>,
) -> Result<(), AppError> {
    use crate::server::{auth, state::app_state, with_status};
    with_status(async move {
        let state = app_state()?;
        let client = auth::client_from_context().await?;
        let session: tower_sessions::Session = leptos_axum::extract().await.map_err(|e| {
            tracing::error!(error = %e, "no session layer");
            AppError::Internal
        })?;
        let user = auth::sign_in(&state.db, &state.config, &client, &username, &password).await?;
        auth::start_session(&session, &user).await?;
        leptos_axum::redirect(&crate::models::safe_next_path(next.as_deref()));
        Ok(())
    })
    .await
}

/// Signs out and goes to the sign-in page.
#[server(endpoint = "logout")]
pub async fn logout() -> Result<(), AppError> {
    use crate::models::Role;
    use crate::server::{auth, store, with_status};
    with_status(async move {
        let (state, user, client) = auth::require(Role::Viewer).await?;
        let session: tower_sessions::Session = leptos_axum::extract().await.map_err(|e| {
            tracing::error!(error = %e, "no session layer");
            AppError::Internal
        })?;
        let event = auth::self_event(
            state.db.now(),
            Some(&user),
            &client,
            "LOGOUT",
            Some(("users", user.id.to_string())),
            format!("{} signed out", user.username),
        );
        store::insert_events(&state.db, &[event], None).await?;
        auth::end_session(&session).await?;
        leptos_axum::redirect("/login");
        Ok(())
    })
    .await
}

/// The signed-in user.
#[server(endpoint = "current_user")]
pub async fn current_user() -> Result<UserInfo, AppError> {
    use crate::models::Role;
    use crate::server::{auth, with_status};
    with_status(async move { Ok(auth::require(Role::Viewer).await?.1) }).await
}
