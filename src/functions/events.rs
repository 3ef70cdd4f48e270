use crate::errors::AppError;
use crate::models::{EventPage, EventQuery};
use leptos::prelude::*;

/// One page of the Activity Log.
#[server(endpoint = "list_events")]
pub async fn list_events(query: EventQuery) -> Result<EventPage, AppError> {
    let state = crate::server::state::app_state()?;
    crate::server::store::list_events(&state.db, &query).await
}
