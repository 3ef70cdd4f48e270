use crate::errors::AppError;
use crate::models::{EventPage, EventQuery};
use leptos::prelude::*;

/// One page of the Activity Log. Viewer and up.
#[server(endpoint = "list_events")]
pub async fn list_events(query: EventQuery) -> Result<EventPage, AppError> {
    use crate::models::Role;
    use crate::server::{auth, store, with_status};
    with_status(async move {
        let (state, _, _) = auth::require(Role::Viewer).await?;
        store::list_events(&state.db, &query).await
    })
    .await
}
