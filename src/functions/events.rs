//! The Activity Log's server functions. Every one admits viewers and up.

use crate::errors::AppError;
use crate::models::{EventCount, EventDetail, EventDiff, EventPage, FilterOptions};
use crate::query::EventQuery;
use leptos::prelude::*;

/// One page of the Activity Log for a view (filters, sort, cursor).
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

/// How many events match a view: exact up to 10,000, estimated beyond.
#[server(endpoint = "count_events")]
pub async fn count_events(query: EventQuery) -> Result<EventCount, AppError> {
    use crate::models::Role;
    use crate::server::{auth, store, with_status};
    with_status(async move {
        let (state, _, _) = auth::require(Role::Viewer).await?;
        store::count_matching(&state.db, &query).await
    })
    .await
}

/// The filter bar's choices: initiators, actions and tables in the log.
#[server(endpoint = "filter_options")]
pub async fn get_filter_options() -> Result<FilterOptions, AppError> {
    use crate::models::Role;
    use crate::server::{auth, store, with_status};
    with_status(async move {
        let (state, _, _) = auth::require(Role::Viewer).await?;
        store::filter_options(&state.db).await
    })
    .await
}

/// One event with its details and the history of its record.
#[server(endpoint = "event_detail")]
pub async fn get_event_detail(id: i64) -> Result<EventDetail, AppError> {
    use crate::models::Role;
    use crate::server::{auth, store, with_status};
    with_status(async move {
        let (state, _, _) = auth::require(Role::Viewer).await?;
        store::event_detail(&state.db, id).await
    })
    .await
}

/// Before and after of one event as a tree of changes.
#[server(endpoint = "event_diff")]
pub async fn get_event_diff(id: i64) -> Result<EventDiff, AppError> {
    use crate::models::Role;
    use crate::server::{auth, diff, store, with_status};
    with_status(async move {
        let (state, _, _) = auth::require(Role::Viewer).await?;
        let (before, after) = store::event_changes(&state.db, id).await?;
        let parse = |text: Option<String>| -> Result<Option<serde_json::Value>, AppError> {
            text.map(|t| {
                serde_json::from_str(&t).map_err(|e| {
                    tracing::error!(id, error = %e, "stored change data is not JSON");
                    AppError::Internal
                })
            })
            .transpose()
        };
        let (before, after) = (parse(before)?, parse(after)?);
        Ok(EventDiff {
            id,
            has_before: before.is_some(),
            has_after: after.is_some(),
            root: diff::diff_json(before.as_ref(), after.as_ref()),
        })
    })
    .await
}
