//! Admin Sessions' server functions: admins only (the page shows what every
//! signed-in person did in Auditdeck).

use crate::errors::AppError;
use crate::models::{EventCount, SessionPage};
use crate::session_query::SessionQuery;
use leptos::prelude::*;

/// One page of Admin Sessions, newest first.
#[server(endpoint = "list_admin_sessions")]
pub async fn list_admin_sessions(query: SessionQuery) -> Result<SessionPage, AppError> {
    use crate::models::Role;
    use crate::server::{auth, store, with_status};
    with_status(async move {
        let (state, me, _) = auth::require(Role::Admin).await?;
        store::list_admin_sessions(&state.db, &query, me.id).await
    })
    .await
}

/// How many recorded requests match: exact up to 10,000, estimated beyond.
#[server(endpoint = "count_admin_sessions")]
pub async fn count_admin_sessions(query: SessionQuery) -> Result<EventCount, AppError> {
    use crate::models::Role;
    use crate::server::{auth, store, with_status};
    with_status(async move {
        let (state, me, _) = auth::require(Role::Admin).await?;
        store::count_admin_sessions_matching(&state.db, &query, me.id).await
    })
    .await
}
