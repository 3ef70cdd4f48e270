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

/// The view's activity over its time range, in calendar buckets of `zone`
/// (an IANA name); `None` when the log is empty and the view has no range.
#[server(endpoint = "event_histogram")]
pub async fn event_histogram(
    query: EventQuery,
    zone: String,
) -> Result<Option<crate::charts::Histogram>, AppError> {
    use crate::models::Role;
    use crate::server::{auth, charts, store, with_status};
    with_status(async move {
        let (state, _, _) = auth::require(Role::Viewer).await?;
        let zone = charts::parse_zone(&zone)?;
        store::event_histogram(&state.db, &query, zone).await
    })
    .await
}

/// The view's top initiators, actions, tables and IPs.
#[server(endpoint = "event_breakdowns")]
pub async fn event_breakdowns(query: EventQuery) -> Result<crate::charts::Breakdowns, AppError> {
    use crate::models::Role;
    use crate::server::{auth, store, with_status};
    with_status(async move {
        let (state, _, _) = auth::require(Role::Viewer).await?;
        store::event_breakdowns(&state.db, &query).await
    })
    .await
}

/// The Overview's figures for the last day and week.
#[server(endpoint = "overview")]
pub async fn get_overview() -> Result<crate::charts::Overview, AppError> {
    use crate::charts::{Overview, OverviewWindow, OVERVIEW_WINDOWS};
    use crate::dates::Preset;
    use crate::models::Role;
    use crate::server::{auth, store, with_status};
    with_status(async move {
        let (state, user, _) = auth::require(Role::Viewer).await?;
        let now = state.db.now();
        let mut windows = Vec::new();
        for (code, label) in OVERVIEW_WINDOWS {
            let length = Preset::from_code(code)
                .and_then(Preset::rolling_micros)
                .unwrap_or_default();
            let from = now - length;
            let by_action = store::actions_since(&state.db, from).await?;
            let of = |action: &str| by_action.get(action).copied().unwrap_or(0);
            windows.push(OverviewWindow {
                range: code.to_string(),
                label: label.to_string(),
                events: by_action.values().sum(),
                failed_sign_ins: of("LOGIN_FAILED"),
                deletions: of("DELETE"),
                exports: of("EXPORT"),
                new_ips: if user.role.allows(Role::Auditor) {
                    Some(store::new_ip_alerts_since(&state.db, from).await?)
                } else {
                    None
                },
            });
        }
        Ok(Overview { windows })
    })
    .await
}
