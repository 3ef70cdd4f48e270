//! Tamper evidence and retention: the badge's status (everyone signed in),
//! the Integrity page, starting a verification (admins), and the retention
//! policy with its legal hold (admins; every change audited).

use crate::errors::AppError;
use crate::integrity::{
    BackupRow, Checkpoint, IntegrityStatus, RetentionPolicy, RetentionSettings, VerificationRow,
    VerifyMode,
};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
// The policy is nested: it travels as JSON.
use leptos::server_fn::codec::Json;

/// What the Integrity page shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntegrityOverview {
    pub recent: Vec<VerificationRow>,
    /// Newest first, at most [`CHECKPOINTS_SHOWN`].
    pub checkpoints: Vec<Checkpoint>,
    pub checkpoint_total: u64,
    pub head_id: i64,
    pub head_hash: String,
    pub cut_id: i64,
    pub legal_hold: bool,
    pub policy: String,
    /// May this user start a verification (admins)?
    pub can_verify: bool,
    /// May this user download the checkpoints (auditors and admins)?
    pub can_export: bool,
    /// The newest backups, newest first (at most [`BACKUPS_SHOWN`]).
    pub backups: Vec<BackupRow>,
    /// When the next scheduled backup is due; `None` when none is scheduled.
    pub next_backup_at: Option<i64>,
}

pub const BACKUPS_SHOWN: u32 = 5;

pub const CHECKPOINTS_SHOWN: usize = 20;

/// The last verification's result, for the top bar's badge. Any signed-in user.
#[server(endpoint = "integrity_status")]
pub async fn get_integrity_status() -> Result<IntegrityStatus, AppError> {
    use crate::models::Role;
    use crate::server::{auth, store, with_status};
    with_status(async move {
        let (state, user, _) = auth::require(Role::Viewer).await?;
        let last = store::recent_verifications(&state.db, 1).await?.pop();
        let last_finished = match &last {
            Some(v) if v.running() => store::last_finished_verification(&state.db).await?,
            _ => None,
        };
        Ok(IntegrityStatus {
            last,
            last_finished,
            legal_hold: store::stored_retention(&state.db).await?.legal_hold,
            failing_streams: if user.role.allows(Role::Admin) {
                store::failing_streams(&state.db).await?
            } else {
                0
            },
            backup_failed: user.role.allows(Role::Auditor)
                && store::recent_backups(&state.db, None, 1)
                    .await?
                    .first()
                    .is_some_and(|b| !b.verified()),
            open_alerts: if user.role.allows(Role::Auditor) {
                store::open_alerts(&state.db).await?
            } else {
                0
            },
        })
    })
    .await
}

/// Everything the Integrity page shows. Any signed-in user.
#[server(endpoint = "integrity_overview")]
pub async fn get_integrity_overview() -> Result<IntegrityOverview, AppError> {
    use crate::models::Role;
    use crate::server::{auth, backup, maintenance, store, with_status};
    with_status(async move {
        let (state, user, _) = auth::require(Role::Viewer).await?;
        let recent = store::recent_verifications(&state.db, 10).await?;
        let backups = store::recent_backups(&state.db, None, BACKUPS_SHOWN).await?;
        let next_backup_at = match &state.config.backup {
            Some(schedule) => Some(backup::next_due(&state.db, schedule).await?),
            None => None,
        };
        let mut checkpoints = store::list_checkpoints(&state.db).await?;
        let checkpoint_total = checkpoints.len() as u64;
        checkpoints.reverse();
        checkpoints.truncate(CHECKPOINTS_SHOWN);
        let (head, cut) = store::chain_state(&state.db).await?;
        let stored = store::stored_retention(&state.db).await?;
        let (policy, _) = maintenance::policy_in_force(&stored, &state.config);
        Ok(IntegrityOverview {
            recent,
            checkpoints,
            checkpoint_total,
            head_id: head.id,
            head_hash: hex::encode(head.hash),
            cut_id: cut.id,
            legal_hold: stored.legal_hold,
            policy: policy.describe(),
            can_verify: user.role.allows(Role::Admin),
            can_export: user.role.allows(Role::Auditor),
            backups,
            next_backup_at,
        })
    })
    .await
}

/// Starts a verification in the background and returns its id; its
/// progress shows in [`get_integrity_status`]. Admin.
#[server(endpoint = "start_verification")]
pub async fn start_verification(mode: VerifyMode) -> Result<i64, AppError> {
    use crate::models::Role;
    use crate::server::{auth, maintenance, with_status};
    with_status(async move {
        let (state, user, client) = auth::require(Role::Admin).await?;
        maintenance::start_verification(&state, &user, &client, mode).await
    })
    .await
}

/// The retention policy in force, the legal hold, and the last run. Admin.
#[server(endpoint = "retention_settings")]
pub async fn get_retention_settings() -> Result<RetentionSettings, AppError> {
    use crate::models::Role;
    use crate::server::{auth, with_status};
    with_status(async move {
        let (state, _, _) = auth::require(Role::Admin).await?;
        server::settings(&state).await
    })
    .await
}

/// Saves the retention policy (`None`: back to Leptos.toml's) and the legal
/// hold, audited in the same transaction. Admin.
#[server(endpoint = "save_retention", input = Json)]
pub async fn save_retention(
    policy: Option<RetentionPolicy>,
    legal_hold: bool,
) -> Result<RetentionSettings, AppError> {
    use crate::models::Role;
    use crate::server::{auth, store, with_status};
    with_status(async move {
        let (state, user, client) = auth::require(Role::Admin).await?;
        let mut policy = policy;
        if let Some(p) = &mut policy {
            for rule in &mut p.by_action {
                rule.action = rule.action.trim().to_string();
            }
            p.validate()?;
        }
        let before = server::settings(&state).await?;
        let mut changes = Vec::new();
        if before.legal_hold != legal_hold {
            changes.push(if legal_hold {
                "put the log under legal hold (no deletion, no retention)".to_string()
            } else {
                "lifted the legal hold".to_string()
            });
        }
        let new_policy = policy.clone().unwrap_or_else(|| state.config.retention.clone());
        if before.from_settings != policy.is_some() || before.policy != new_policy {
            changes.push(match &policy {
                Some(p) => format!("set the retention policy to {}", p.describe()),
                None => format!(
                    "returned the retention policy to Leptos.toml's ({})",
                    new_policy.describe()
                ),
            });
        }
        if changes.is_empty() {
            return Ok(before);
        }
        let mut tx = store::begin(&state.db).await?;
        store::save_retention_in(&mut tx, policy.as_ref(), legal_hold, &user.email).await?;
        let mut first = changes.remove(0);
        if let Some(c) = first.get(..1) {
            first = c.to_uppercase() + &first[1..];
        }
        let description = std::iter::once(first).chain(changes).collect::<Vec<_>>().join("; ");
        let mut event = auth::self_event(
            tx.now(),
            Some(&user),
            &client,
            "UPDATE",
            Some(("retention", "policy".into())),
            description,
        );
        event.before = serde_json::to_string(&serde_json::json!({
            "policy": before.policy, "from_settings": before.from_settings, "legal_hold": before.legal_hold,
        }))
        .ok();
        event.after = serde_json::to_string(&serde_json::json!({
            "policy": new_policy, "from_settings": policy.is_some(), "legal_hold": legal_hold,
        }))
        .ok();
        store::insert_events_in(&mut tx, &[event], None).await?;
        tx.commit().await?;
        server::settings(&state).await
    })
    .await
}

#[cfg(feature = "ssr")]
mod server {
    use crate::errors::AppResult;
    use crate::integrity::RetentionSettings;
    use crate::server::state::AppState;
    use crate::server::{maintenance, store};

    pub async fn settings(state: &AppState) -> AppResult<RetentionSettings> {
        let stored = store::stored_retention(&state.db).await?;
        let (policy, from_settings) = maintenance::policy_in_force(&stored, &state.config);
        Ok(RetentionSettings {
            policy,
            from_settings,
            legal_hold: stored.legal_hold,
            updated_by: stored.updated_by,
            updated_at: stored.updated_at,
            last_run: store::last_retention_run(&state.db).await?,
        })
    }
}
