//! Settings → Streams: destinations Auditdeck delivers its events to.
//! Admins only; every change (creation, edit, pause, resume, replay, secret
//! rotation, deletion) is audited in the same transaction as the change.

use crate::errors::AppError;
use crate::streams::{CreatedStream, NewStream, StreamAttempt, StreamInfo};
use leptos::prelude::*;

#[cfg(feature = "ssr")]
mod admin {
    use crate::errors::{AppError, AppResult};
    use crate::models::format_count;
    use crate::server::auth::ClientInfo;
    use crate::server::state::AppState;
    use crate::server::store::{self, StreamRow, StreamSettings, Tx};
    use crate::server::streams::{check_url, filter_query, parse_headers};
    use crate::streams::{Health, StreamInfo, StreamKind, BEHIND_COUNTED};

    pub use crate::functions::settings::admin::{admin, audit_and_commit};
    use crate::models::UserInfo;

    /// How long the secret before a rotation keeps signing beside the new one.
    pub const ROTATION_OVERLAP: i64 = 24 * 3600 * 1_000_000;

    /// A stream as Settings shows it, with its lag.
    pub async fn info(db: &store::Db, s: StreamRow) -> AppResult<StreamInfo> {
        let now = db.now();
        let (behind, oldest) = store::stream_lag(db, s.cursor_id, BEHIND_COUNTED).await?;
        let kind = StreamKind::parse(&s.kind).unwrap_or(StreamKind::Webhook);
        Ok(StreamInfo {
            id: s.id,
            name: s.name.clone(),
            kind,
            url: s.url.clone(),
            filter: s.filter.clone(),
            headers: hide_credentials(&s.headers),
            health: Health::of(&s.state, s.failures),
            cursor_id: s.cursor_id,
            behind,
            oldest_undelivered_at: oldest,
            delivered_today: s.delivered_on(now),
            delivered: s.delivered,
            failures: s.failures,
            last_error: s.last_error.clone(),
            last_error_at: s.last_error_at,
            last_status: s.last_status,
            next_attempt_at: (s.failures > 0 && s.next_attempt_at > now)
                .then_some(s.next_attempt_at),
            previous_secret_until: (s.previous_secret_until > now)
                .then_some(s.previous_secret_until),
            created_at: s.created_at,
            as_of: now,
        })
    }

    /// Headers as shown: the value of an `Authorization` header hidden.
    pub fn hide_credentials(headers: &str) -> String {
        headers
            .lines()
            .map(|line| match line.split_once(':') {
                Some((name, _)) if name.trim().eq_ignore_ascii_case("authorization") => {
                    format!("{}: ••••••", name.trim())
                }
                _ => line.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Checks what an admin entered, trimmed.
    pub struct Checked {
        pub name: String,
        pub url: String,
        pub filter: String,
        pub headers: String,
    }

    pub fn check(
        kind: StreamKind,
        name: &str,
        url: &str,
        filter: &str,
        headers: &str,
    ) -> AppResult<Checked> {
        let name = store::check_stream_name(name)?.to_string();
        check_url(kind, url)?;
        let filter = filter.trim().trim_start_matches('?').to_string();
        filter_query(&filter)?;
        if kind == StreamKind::Syslog && !headers.trim().is_empty() {
            return Err(AppError::bad_request("headers: syslog has no headers"));
        }
        parse_headers(headers)?;
        Ok(Checked {
            name,
            url: url.trim().to_string(),
            filter,
            headers: headers.trim().to_string(),
        })
    }

    impl Checked {
        pub fn settings<'a>(&'a self, kind: StreamKind) -> StreamSettings<'a> {
            StreamSettings {
                name: &self.name,
                kind: kind.as_str(),
                url: &self.url,
                filter: &self.filter,
                headers: &self.headers,
            }
        }
    }

    /// Where delivery starts: after the log's head ("now"), at event `id`,
    /// or at the first event at or after a time (UTC); the cursor and how
    /// the audit event says it.
    pub async fn start_cursor(
        db: &store::Db,
        start: &str,
        start_id: Option<&str>,
        start_at: Option<&str>,
    ) -> AppResult<(i64, String)> {
        match start {
            "now" => Ok((store::max_event_id(db).await?, "from now".into())),
            "id" => {
                let text = start_id.unwrap_or("").trim();
                let id: i64 = text.parse().ok().filter(|id| *id >= 1).ok_or_else(|| {
                    AppError::BadRequest(format!(
                        "start_id: \"{text}\" is not an event id (a whole number from 1)"
                    ))
                })?;
                Ok((id - 1, format!("from event {}", format_count(id as u64))))
            }
            "time" => {
                let text = start_at.unwrap_or("").trim();
                let zoned = if text.ends_with(['Z', 'z'])
                    || text.len() > 16 && text[16..].contains(['+', '-'])
                {
                    text.to_string()
                } else {
                    format!("{text}Z")
                };
                let at = crate::query::parse_instant("start_at", &zoned).map_err(|_| {
                    AppError::BadRequest(format!(
                        "start_at: \"{text}\" is not a time; use UTC like 2026-12-01T09:00"
                    ))
                })?;
                let cursor = store::last_event_before(db, at).await?;
                Ok((
                    cursor,
                    format!("from {} UTC", crate::models::format_utc(at)),
                ))
            }
            other => Err(AppError::BadRequest(format!(
                "start: \"{other}\" is not one of now, id, time"
            ))),
        }
    }

    /// The stream an admin acts on, read in the change's transaction.
    pub async fn existing(tx: &mut Tx, id: i64) -> AppResult<StreamRow> {
        store::stream_in(tx, id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("stream {id}")))
    }

    /// Audits a change to stream `id` and commits it.
    pub async fn audit(
        tx: Tx,
        me: &UserInfo,
        client: &ClientInfo,
        action: &str,
        id: i64,
        description: String,
    ) -> AppResult<()> {
        audit_and_commit(
            tx,
            me,
            client,
            action,
            ("streams", id.to_string()),
            description,
        )
        .await
    }

    pub type Admin = (AppState, UserInfo, ClientInfo);
}

/// Every stream with its health. Admin.
#[server(endpoint = "list_streams")]
pub async fn list_streams() -> Result<Vec<StreamInfo>, AppError> {
    use crate::server::store;
    crate::server::with_status(async move {
        let (state, _, _) = admin::admin().await?;
        let mut out = Vec::new();
        for s in store::list_streams(&state.db).await? {
            out.push(admin::info(&state.db, s).await?);
        }
        Ok(out)
    })
    .await
}

/// A stream's last attempts, newest first. Admin.
#[server(endpoint = "stream_attempts")]
pub async fn stream_attempts(id: i64) -> Result<Vec<StreamAttempt>, AppError> {
    use crate::server::store;
    crate::server::with_status(async move {
        let (state, _, _) = admin::admin().await?;
        store::get_stream(&state.db, id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("stream {id}")))?;
        store::stream_attempts(&state.db, id).await
    })
    .await
}

/// Adds a stream. A webhook's signing secret is made here and returned:
/// the only time it is shown. Admin.
#[server(endpoint = "create_stream")]
pub async fn create_stream(stream: NewStream) -> Result<CreatedStream, AppError> {
    use crate::server::store;
    use crate::server::stream_format::WebhookSecret;
    use crate::streams::StreamKind;
    let NewStream {
        name,
        kind,
        url,
        filter,
        headers,
        token,
        start,
        start_id,
        start_at,
    } = stream;
    crate::server::with_status(async move {
        let (state, me, client): admin::Admin = admin::admin().await?;
        let kind = StreamKind::parse(&kind).ok_or_else(|| {
            AppError::BadRequest(format!(
                "kind: \"{kind}\" is not one of webhook, slack, splunk_hec, syslog"
            ))
        })?;
        let checked = admin::check(kind, &name, &url, &filter, &headers)?;
        let token = token.trim();
        let secret = if kind.signs() {
            Some(WebhookSecret::generate().encode())
        } else if kind.needs_token() {
            if token.is_empty() || token.len() > 200 || !token.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(AppError::bad_request(
                    "token: give the HEC token Splunk shows for this input",
                ));
            }
            None
        } else {
            None
        };
        let (cursor, from) =
            admin::start_cursor(&state.db, &start, start_id.as_deref(), start_at.as_deref())
                .await?;
        let mut tx = store::begin(&state.db).await?;
        let stored_secret =
            secret
                .as_deref()
                .unwrap_or(if kind.needs_token() { token } else { "" });
        let id = store::create_stream_in(&mut tx, &checked.settings(kind), stored_secret, cursor)
            .await?;
        let filtered = if checked.filter.is_empty() {
            "every event".to_string()
        } else {
            format!("events matching {}", checked.filter)
        };
        let description = format!(
            "Created stream \"{}\": {} to {}, {filtered}, {from}",
            checked.name,
            kind.label(),
            checked.url
        );
        admin::audit(tx, &me, &client, "CREATE", id, description).await?;
        Ok(CreatedStream { id, secret })
    })
    .await
}

/// Changes a stream's name, address, filter and headers (a Splunk stream's
/// token too, when one is given). Admin.
#[server(endpoint = "update_stream")]
pub async fn update_stream(
    id: i64,
    name: String,
    url: String,
    #[server(default)] filter: String,
    #[server(default)] headers: String,
    #[server(default)] token: String,
) -> Result<(), AppError> {
    use crate::server::store;
    use crate::streams::StreamKind;
    crate::server::with_status(async move {
        let (state, me, client): admin::Admin = admin::admin().await?;
        let mut tx = store::begin(&state.db).await?;
        let before = admin::existing(&mut tx, id).await?;
        let kind = StreamKind::parse(&before.kind).unwrap_or(StreamKind::Webhook);
        // Headers shown with a hidden credential come back as they were.
        let headers = if headers.trim() == admin::hide_credentials(&before.headers).trim() {
            before.headers.clone()
        } else {
            headers
        };
        let checked = admin::check(kind, &name, &url, &filter, &headers)?;
        let token = token.trim();
        let new_token = (kind.needs_token() && !token.is_empty()).then_some(token);
        // The stream was read above in this transaction: no second read.
        let secret = new_token.unwrap_or(&before.secret);
        store::update_stream_in(&mut tx, id, &checked.settings(kind), secret).await?;
        let mut changes = Vec::new();
        if before.name != checked.name {
            changes.push(format!("name \"{}\" → \"{}\"", before.name, checked.name));
        }
        if before.url != checked.url {
            changes.push(format!("address {} → {}", before.url, checked.url));
        }
        if before.filter != checked.filter {
            let shown = |f: &str| {
                if f.is_empty() {
                    "(every event)".to_string()
                } else {
                    f.to_string()
                }
            };
            changes.push(format!(
                "filter {} → {}",
                shown(&before.filter),
                shown(&checked.filter)
            ));
        }
        if before.headers != checked.headers {
            changes.push("headers".into());
        }
        if new_token.is_some() {
            changes.push("token".into());
        }
        let description = if changes.is_empty() {
            format!("Saved stream \"{}\" unchanged", checked.name)
        } else {
            format!(
                "Changed stream \"{}\": {}",
                checked.name,
                changes.join("; ")
            )
        };
        admin::audit(tx, &me, &client, "UPDATE", id, description).await
    })
    .await
}

/// Pauses (delivery stops, the cursor stays) or resumes a stream. Admin.
#[server(endpoint = "set_stream_paused")]
pub async fn set_stream_paused(id: i64, paused: bool) -> Result<(), AppError> {
    use crate::server::store;
    crate::server::with_status(async move {
        let (state, me, client): admin::Admin = admin::admin().await?;
        let mut tx = store::begin(&state.db).await?;
        let stream = admin::existing(&mut tx, id).await?;
        store::set_stream_state_in(&mut tx, id, !paused).await?;
        let verb = if paused { "Paused" } else { "Resumed" };
        let description = format!(
            "{verb} stream \"{}\" at event {}",
            stream.name, stream.cursor_id
        );
        admin::audit(tx, &me, &client, "UPDATE", id, description).await
    })
    .await
}

/// Moves a stream's cursor: the events from an id or a time go again (a
/// replay), or from now on only. Admin.
#[server(endpoint = "replay_stream")]
pub async fn replay_stream(
    id: i64,
    start: String,
    #[server(default)] start_id: Option<String>,
    #[server(default)] start_at: Option<String>,
) -> Result<(), AppError> {
    use crate::server::store;
    crate::server::with_status(async move {
        let (state, me, client): admin::Admin = admin::admin().await?;
        let (cursor, from) =
            admin::start_cursor(&state.db, &start, start_id.as_deref(), start_at.as_deref())
                .await?;
        let mut tx = store::begin(&state.db).await?;
        let stream = admin::existing(&mut tx, id).await?;
        store::set_stream_cursor_in(&mut tx, id, cursor).await?;
        let description = format!(
            "Replayed stream \"{}\" {from} (its cursor moved from event {} to {cursor})",
            stream.name, stream.cursor_id
        );
        admin::audit(tx, &me, &client, "UPDATE", id, description).await
    })
    .await
}

/// A new signing secret for a webhook stream, returned once; the old one
/// keeps signing beside it for a day, so receivers can switch. Admin.
#[server(endpoint = "rotate_stream_secret")]
pub async fn rotate_stream_secret(id: i64) -> Result<String, AppError> {
    use crate::server::store;
    use crate::server::stream_format::WebhookSecret;
    use crate::streams::StreamKind;
    crate::server::with_status(async move {
        let (state, me, client): admin::Admin = admin::admin().await?;
        let mut tx = store::begin(&state.db).await?;
        let stream = admin::existing(&mut tx, id).await?;
        if !StreamKind::parse(&stream.kind).is_some_and(StreamKind::signs) {
            return Err(AppError::bad_request(
                "this stream's kind is not signed by Auditdeck: nothing to rotate",
            ));
        }
        let secret = WebhookSecret::generate().encode();
        let until = tx.now() + admin::ROTATION_OVERLAP;
        store::rotate_stream_secret_in(&mut tx, id, &secret, until).await?;
        let description = format!(
            "Rotated the signing secret of stream \"{}\" (the previous one also signs until {} UTC)",
            stream.name,
            crate::models::format_utc(until)
        );
        admin::audit(tx, &me, &client, "UPDATE", id, description).await?;
        Ok(secret)
    })
    .await
}

/// Deletes a stream and its delivery log. Admin.
#[server(endpoint = "delete_stream")]
pub async fn delete_stream(id: i64) -> Result<(), AppError> {
    use crate::server::store;
    crate::server::with_status(async move {
        let (state, me, client): admin::Admin = admin::admin().await?;
        let mut tx = store::begin(&state.db).await?;
        let stream = store::delete_stream_in(&mut tx, id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("stream {id}")))?;
        let description = format!(
            "Deleted stream \"{}\" ({} to {}; {} events delivered, cursor at event {})",
            stream.name, stream.kind, stream.url, stream.delivered, stream.cursor_id
        );
        admin::audit(tx, &me, &client, "DELETE", id, description).await
    })
    .await
}

/// Sends a test event (action TEST, not in the log) to a stream's
/// destination now; what happened, in words. Admin.
#[server(endpoint = "send_stream_test")]
pub async fn send_stream_test(id: i64) -> Result<String, AppError> {
    use crate::server::{store, streams};
    crate::server::with_status(async move {
        let (state, _, _) = admin::admin().await?;
        let stream = store::get_stream(&state.db, id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("stream {id}")))?;
        let client = streams::http_client();
        match streams::send_test_event(&state.db, &client, &stream).await? {
            Ok(()) => Ok(format!("The test event reached {}.", stream.url)),
            Err(failure) => Err(AppError::Conflict(format!(
                "The test event did not arrive: {}",
                failure.error
            ))),
        }
    })
    .await
}
