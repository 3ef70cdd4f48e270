//! Alerts: rules (Settings → Alerts, admins) and the inbox (Monitoring →
//! Alerts, auditors and admins). Every change to a rule and every
//! acknowledgement or resolution is audited in the same transaction.

use crate::alerts::{AlertInfo, DigestPage, RuleForm, RuleInfo};
use crate::errors::AppError;
use leptos::prelude::*;

/// Alerts shown in the inbox at most.
pub const ALERTS_SHOWN: u32 = 200;

#[cfg(feature = "ssr")]
mod server {
    use crate::alerts::{RuleForm, RuleSettings};
    use crate::errors::{AppError, AppResult};

    /// "09:00" as minutes after midnight ("24:00" is the day's end).
    fn minutes(name: &str, text: &str) -> AppResult<i64> {
        let bad = || {
            AppError::BadRequest(format!(
                "{name}: \"{text}\" is not a time of day (such as 09:00)"
            ))
        };
        let (h, m) = text.trim().split_once(':').ok_or_else(bad)?;
        let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if !(0..=24).contains(&h) || !(0..60).contains(&m) || (h == 24 && m != 0) {
            return Err(bad());
        }
        Ok(h * 60 + m)
    }

    fn number(name: &str, text: &str, default: i64) -> AppResult<i64> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(default);
        }
        text.parse()
            .map_err(|_| AppError::BadRequest(format!("{name}: \"{text}\" is not a whole number")))
    }

    /// The name of stream `id`, when alerts and digests can go to it (a
    /// signed or Slack-compatible webhook).
    pub async fn channel(db: &crate::server::store::Db, id: i64) -> AppResult<String> {
        let stream = crate::server::store::get_stream(db, id)
            .await?
            .ok_or_else(|| AppError::BadRequest(format!("stream: there is no stream {id}")))?;
        if !["webhook", "slack"].contains(&stream.kind.as_str()) {
            return Err(AppError::BadRequest(format!(
                "stream: \"{}\" is a {} stream; alerts go to signed or Slack-compatible webhooks",
                stream.name, stream.kind
            )));
        }
        Ok(stream.name)
    }

    /// What an admin entered, as a rule's settings, checked, with the name
    /// of the stream it is to be sent to.
    pub async fn checked(
        db: &crate::server::store::Db,
        form: &RuleForm,
    ) -> AppResult<(RuleSettings, Option<String>)> {
        let settings = settings(form)?;
        crate::server::alerts::Rule::check(&settings)?;
        let stream = match settings.stream_id {
            None => None,
            Some(id) => Some(channel(db, id).await?),
        };
        Ok((settings, stream))
    }

    /// What an admin entered, as a rule's settings (checked by the caller).
    pub fn settings(form: &RuleForm) -> AppResult<RuleSettings> {
        Ok(RuleSettings {
            name: form.name.trim().to_string(),
            severity: form.severity.trim().to_string(),
            kind: form.kind.trim().to_string(),
            filter: form.filter.trim().trim_start_matches('?').to_string(),
            threshold: number("threshold", &form.threshold, 1)?,
            window_minutes: number("window_minutes", &form.window_minutes, 60)?,
            group_by: form.group_by.trim().to_string(),
            lookback_days: number("lookback_days", &form.lookback_days, 30)?,
            network: match form.network.trim() {
                "" => "address".into(),
                n => n.to_string(),
            },
            work_days: number("work_days", &form.work_days, 31)?,
            work_start: if form.work_start.trim().is_empty() {
                540
            } else {
                minutes("work_start", &form.work_start)?
            },
            work_end: if form.work_end.trim().is_empty() {
                1080
            } else {
                minutes("work_end", &form.work_end)?
            },
            zone: match form.zone.trim() {
                "" => "UTC".into(),
                z => z.to_string(),
            },
            stream_id: match form.stream.trim() {
                "" => None,
                id => Some(id.parse().map_err(|_| {
                    AppError::BadRequest(format!("stream: \"{id}\" is not a stream"))
                })?),
            },
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn times_of_day_parse_to_minutes_and_nonsense_is_refused() {
            assert_eq!(minutes("t", "09:30").unwrap(), 570);
            assert_eq!(minutes("t", "24:00").unwrap(), 1440);
            for bad in ["9", "25:00", "24:01", "09:60", "x:y"] {
                assert!(minutes("t", bad).is_err(), "{bad}");
            }
        }
    }
}

/// Every rule, with its alerts counted. Admin.
#[server(endpoint = "list_alert_rules")]
pub async fn list_alert_rules() -> Result<Vec<RuleInfo>, AppError> {
    use crate::functions::settings::admin::admin;
    use crate::server::store;
    crate::server::with_status(async move {
        let (state, _, _) = admin().await?;
        Ok(store::list_alert_rules(&state.db)
            .await?
            .into_iter()
            .map(|r| RuleInfo {
                id: r.id,
                settings: r.settings,
                paused: r.paused,
                stream_name: r.stream_name,
                alerts: r.alerts,
                open: r.open,
            })
            .collect())
    })
    .await
}

/// The streams a rule's alerts can also go to (signed and Slack-compatible
/// webhooks): id and label. Admin.
#[server(endpoint = "alert_channels")]
pub async fn alert_channels() -> Result<Vec<(i64, String)>, AppError> {
    use crate::functions::settings::admin::admin;
    use crate::server::store;
    use crate::streams::StreamKind;
    crate::server::with_status(async move {
        let (state, _, _) = admin().await?;
        Ok(store::list_streams(&state.db)
            .await?
            .into_iter()
            .filter_map(|s| match StreamKind::parse(&s.kind) {
                Some(kind @ (StreamKind::Webhook | StreamKind::Slack)) => {
                    Some((s.id, format!("Stream \"{}\" ({})", s.name, kind.label())))
                }
                _ => None,
            })
            .collect())
    })
    .await
}

/// Adds a rule; it watches the events stored from now on. Admin.
#[server(endpoint = "create_alert_rule")]
pub async fn create_alert_rule(rule: RuleForm) -> Result<i64, AppError> {
    use crate::functions::settings::admin::{admin, audit_and_commit};
    use crate::server::store;
    crate::server::with_status(async move {
        let (state, me, client) = admin().await?;
        let (settings, stream) = server::checked(&state.db, &rule).await?;
        let mut tx = store::begin(&state.db).await?;
        let id = store::create_alert_rule_in(&mut tx, &settings).await?;
        let sent_to = stream
            .map(|name| format!("; sent to stream \"{name}\""))
            .unwrap_or_default();
        let description = format!(
            "Created alert rule \"{}\" ({}): {}{sent_to}",
            settings.name,
            settings.severity,
            crate::alerts::describe(&settings)
        );
        audit_and_commit(
            tx,
            &me,
            &client,
            "CREATE",
            ("alert_rules", id.to_string()),
            description,
        )
        .await?;
        Ok(id)
    })
    .await
}

/// Changes a rule's settings; the audit line says what changed. Admin.
#[server(endpoint = "update_alert_rule")]
pub async fn update_alert_rule(id: i64, rule: RuleForm) -> Result<(), AppError> {
    use crate::functions::settings::admin::{admin, audit_and_commit};
    use crate::server::store;
    crate::server::with_status(async move {
        let (state, me, client) = admin().await?;
        let (settings, stream) = server::checked(&state.db, &rule).await?;
        let mut tx = store::begin(&state.db).await?;
        let before = store::alert_rule_in(&mut tx, id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("alert rule {id}")))?;
        let changes = crate::alerts::rule_changes(
            &before.settings,
            &settings,
            (before.stream_name.as_deref(), stream.as_deref()),
        );
        if changes.is_empty() {
            return Err(AppError::BadRequest(format!(
                "alert rule \"{}\": nothing was changed",
                before.settings.name
            )));
        }
        store::update_alert_rule_in(&mut tx, id, &settings).await?;
        let description = format!(
            "Changed alert rule \"{}\": {}",
            before.settings.name,
            changes.join("; ")
        );
        audit_and_commit(
            tx,
            &me,
            &client,
            "UPDATE",
            ("alert_rules", id.to_string()),
            description,
        )
        .await
    })
    .await
}

/// Pauses or resumes a rule. Admin.
#[server(endpoint = "set_alert_rule_paused")]
pub async fn set_alert_rule_paused(id: i64, paused: bool) -> Result<(), AppError> {
    use crate::functions::settings::admin::{admin, audit_and_commit};
    use crate::server::store;
    crate::server::with_status(async move {
        let (state, me, client) = admin().await?;
        let mut tx = store::begin(&state.db).await?;
        let rule = store::alert_rule_in(&mut tx, id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("alert rule {id}")))?;
        store::set_alert_rule_paused_in(&mut tx, id, paused).await?;
        let verb = if paused { "Paused" } else { "Resumed" };
        let description = format!("{verb} alert rule \"{}\"", rule.settings.name);
        audit_and_commit(
            tx,
            &me,
            &client,
            "UPDATE",
            ("alert_rules", id.to_string()),
            description,
        )
        .await
    })
    .await
}

/// Deletes a rule; the alerts it fired stay in the inbox. Admin.
#[server(endpoint = "delete_alert_rule")]
pub async fn delete_alert_rule(id: i64) -> Result<(), AppError> {
    use crate::functions::settings::admin::{admin, audit_and_commit};
    use crate::server::store;
    crate::server::with_status(async move {
        let (state, me, client) = admin().await?;
        let mut tx = store::begin(&state.db).await?;
        let rule = store::delete_alert_rule_in(&mut tx, id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("alert rule {id}")))?;
        let description = format!(
            "Deleted alert rule \"{}\": {}",
            rule.settings.name,
            crate::alerts::describe(&rule.settings)
        );
        audit_and_commit(
            tx,
            &me,
            &client,
            "DELETE",
            ("alert_rules", id.to_string()),
            description,
        )
        .await
    })
    .await
}

/// The newest alerts (only the open ones when `open_only`). Auditor.
#[server(endpoint = "list_alerts")]
pub async fn list_alerts(open_only: bool) -> Result<Vec<AlertInfo>, AppError> {
    use crate::models::Role;
    use crate::server::{auth, store};
    crate::server::with_status(async move {
        let (state, _, _) = auth::require(Role::Auditor).await?;
        store::list_alerts(&state.db, open_only.then_some("open"), ALERTS_SHOWN).await
    })
    .await
}

/// Acknowledges (`acknowledged`: someone is on it) or resolves
/// (`resolved`: done; the next firing starts a new alert) an alert.
/// Auditor.
#[server(endpoint = "set_alert_state")]
pub async fn set_alert_state(id: i64, state: String) -> Result<(), AppError> {
    use crate::functions::settings::admin::audit_and_commit;
    use crate::models::Role;
    use crate::server::{auth, store};
    crate::server::with_status(async move {
        let (app, me, client) = auth::require(Role::Auditor).await?;
        if !["acknowledged", "resolved"].contains(&state.as_str()) {
            return Err(AppError::BadRequest(format!(
                "state: \"{state}\" is not one of acknowledged, resolved"
            )));
        }
        let mut tx = store::begin(&app.db).await?;
        let alert = store::alert_in(&mut tx, id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("alert {id}")))?;
        if !store::set_alert_state_in(&mut tx, id, &state, &me.name).await? {
            return Err(AppError::Conflict(format!(
                "Alert {id} is already {}.",
                alert.state
            )));
        }
        let verb = if state == "resolved" {
            "Resolved"
        } else {
            "Acknowledged"
        };
        let group = if alert.group_key.is_empty() {
            String::new()
        } else {
            format!(" for {}", alert.group_key)
        };
        let description = format!(
            "{verb} alert {id} of rule \"{}\"{group} ({} events)",
            alert.rule_name, alert.events
        );
        audit_and_commit(
            tx,
            &me,
            &client,
            "UPDATE",
            ("alerts", id.to_string()),
            description,
        )
        .await
    })
    .await
}

/// The weekly digest of the week beginning `week` (a Monday 00:00 in
/// `zone`, in µs; none: the week just ended), and the caller's own
/// subscription when they are an admin. `zone`: the viewer's (an IANA
/// name; none: UTC). Auditor.
#[server(endpoint = "weekly_digest")]
pub async fn weekly_digest(
    week: Option<i64>,
    zone: Option<String>,
) -> Result<DigestPage, AppError> {
    use crate::models::Role;
    use crate::server::charts::{next_week_in, parse_zone, week_start_in};
    use crate::server::{auth, store};
    crate::server::with_status(async move {
        let (state, me, _) = auth::require(Role::Auditor).await?;
        let zone_name = zone.unwrap_or_else(|| "UTC".into());
        let tz = parse_zone(&zone_name)?;
        let this_week = week_start_in(state.db.now(), tz);
        let week = week.unwrap_or_else(|| week_start_in(this_week - 1, tz));
        if week != week_start_in(week, tz) {
            return Err(AppError::BadRequest(format!(
                "week: {week} is not the start of a week (a Monday 00:00 in {zone_name}, in microseconds)"
            )));
        }
        if week > this_week {
            return Err(AppError::BadRequest(
                "week: that week has not begun yet".to_string(),
            ));
        }
        let end = next_week_in(week, tz);
        let digest = store::digest(&state.db, week, end, tz.name()).await?;
        let can_subscribe = me.role == Role::Admin;
        let subscription = if can_subscribe {
            store::digest_subscription(&state.db, me.id).await?
        } else {
            None
        };
        let day = |at: i64| {
            use chrono::TimeZone;
            tz.timestamp_micros(at)
                .single()
                .map(|t| t.format("%Y-%m-%d").to_string())
                .unwrap_or_default()
        };
        Ok(DigestPage {
            title: format!("Week of {} to {} ({})", day(week), day(end - 1), tz.name()),
            digest,
            zone: tz.name().to_string(),
            previous: week_start_in(week - 1, tz),
            next: (week < this_week).then_some(end),
            can_subscribe,
            subscription,
        })
    })
    .await
}

/// Subscribes the calling admin to the weekly digest through `stream` (a
/// stream's id; empty: unsubscribes). Audited. Admin.
#[server(endpoint = "set_digest_subscription")]
pub async fn set_digest_subscription(stream: String, zone: Option<String>) -> Result<(), AppError> {
    use crate::functions::settings::admin::{admin, audit_and_commit};
    use crate::server::charts::{parse_zone, week_start_in};
    use crate::server::store;
    crate::server::with_status(async move {
        let (state, me, client) = admin().await?;
        let mut tx;
        let description = match stream.trim() {
            "" => {
                tx = store::begin(&state.db).await?;
                if !store::unsubscribe_digest_in(&mut tx, me.id).await? {
                    return Err(AppError::Conflict(
                        "You are not subscribed to the weekly digest.".to_string(),
                    ));
                }
                "Unsubscribed from the weekly digest".to_string()
            }
            id => {
                let id: i64 = id.parse().map_err(|_| {
                    AppError::BadRequest(format!("stream: \"{id}\" is not a stream"))
                })?;
                let name = server::channel(&state.db, id).await?;
                let tz = parse_zone(zone.as_deref().unwrap_or("UTC"))?;
                tx = store::begin(&state.db).await?;
                // The first digest is that of the week now running.
                let sent = week_start_in(week_start_in(tx.now(), tz) - 1, tz);
                store::subscribe_digest_in(&mut tx, me.id, id, sent, tz.name()).await?;
                format!(
                    "Subscribed to the weekly digest through stream \"{name}\" (weeks from Monday 00:00 {})",
                    tz.name()
                )
            }
        };
        audit_and_commit(
            tx,
            &me,
            &client,
            "UPDATE",
            ("alert_digests", me.id.to_string()),
            description,
        )
        .await
    })
    .await
}
