//! Bulk export (auditors and admins) and deletion (admins only).

use crate::bulk::{
    DeletionDone, DeletionPlan, ExportFormat, ExportStatus, ExportTicket, Selection,
    SessionSelection,
};
use crate::errors::AppError;
use leptos::prelude::*;
// Selections are nested enums: they travel as JSON, not form fields.
use leptos::server_fn::codec::Json;

/// Prepares an export of a selection; the browser then downloads
/// `ticket.url()`.
#[server(endpoint = "start_export", input = Json)]
pub async fn start_export(
    selection: Selection,
    format: ExportFormat,
) -> Result<ExportTicket, AppError> {
    use crate::models::Role;
    use crate::server::{auth, export, with_status};
    with_status(async move {
        let (state, user, _) = auth::require(Role::Auditor).await?;
        export::prepare(
            &state,
            &user,
            crate::bulk::ExportSource::Events(selection),
            format,
        )
        .await
    })
    .await
}

/// Prepares an export of Admin Sessions records (admins only; CSV or JSON Lines).
#[server(endpoint = "start_session_export", input = Json)]
pub async fn start_session_export(
    selection: SessionSelection,
    format: ExportFormat,
) -> Result<ExportTicket, AppError> {
    use crate::models::Role;
    use crate::server::{auth, export, with_status};
    with_status(async move {
        let (state, user, _) = auth::require(Role::Admin).await?;
        export::prepare(
            &state,
            &user,
            crate::bulk::ExportSource::Sessions(selection),
            format,
        )
        .await
    })
    .await
}

/// How far one of my exports has come.
#[server(endpoint = "export_status")]
pub async fn get_export_status(token: String) -> Result<ExportStatus, AppError> {
    use crate::models::Role;
    use crate::server::{auth, with_status};
    with_status(async move {
        let (state, user, _) = auth::require(Role::Auditor).await?;
        state.exports.status(&state.db, &token, user.id).await
    })
    .await
}

/// Stops one of my exports.
#[server(endpoint = "cancel_export")]
pub async fn cancel_export(token: String) -> Result<ExportStatus, AppError> {
    use crate::models::Role;
    use crate::server::{auth, with_status};
    with_status(async move {
        let (state, user, _) = auth::require(Role::Auditor).await?;
        state.exports.cancel(&state.db, &token, user.id).await
    })
    .await
}

/// The exact count a deletion would remove, for its confirmation.
#[server(endpoint = "plan_deletion", input = Json)]
pub async fn plan_deletion(selection: Selection) -> Result<DeletionPlan, AppError> {
    use crate::models::Role;
    use crate::server::{auth, store, with_status};
    with_status(async move {
        let (state, _, _) = auth::require(Role::Admin).await?;
        selection.validate()?;
        if store::stored_retention(&state.db).await?.legal_hold {
            return Err(store::legal_hold_error());
        }
        let up_to_id = store::max_event_id(&state.db).await?;
        let count = store::count_selection(&state.db, &selection, Some(up_to_id)).await?;
        Ok(DeletionPlan { count, up_to_id })
    })
    .await
}

/// Deletes exactly the confirmed selection, in chunks, leaving tombstones;
/// the deletion is an event written with the first chunk.
#[server(endpoint = "delete_events", input = Json)]
pub async fn delete_events(
    selection: Selection,
    plan: DeletionPlan,
) -> Result<DeletionDone, AppError> {
    use crate::models::{format_count, Role};
    use crate::server::{auth, store, with_status};
    with_status(async move {
        let (state, user, client) = auth::require(Role::Admin).await?;
        selection.validate()?;
        let record = auth::self_event(
            state.db.now(),
            Some(&user),
            &client,
            "DELETE",
            None,
            format!(
                "Deleted {} {} from the log ({})",
                format_count(plan.count),
                if plan.count == 1 { "event" } else { "events" },
                selection.describe()
            ),
        );
        let (deleted, event_id) =
            store::delete_selection(&state.db, &selection, plan.up_to_id, plan.count, record)
                .await?;
        Ok(DeletionDone { deleted, event_id })
    })
    .await
}
