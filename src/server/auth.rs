//! Sign-in, sessions, roles and the client's address.

use super::config::AppConfig;
use super::state::AppState;
use super::store::{self, Db, NewEvent, NewUser, UserRecord};
use crate::errors::{AppError, AppResult};
use crate::models::{Initiator, InitiatorKind, Role, UserInfo};
use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use tower_sessions::Session;

/// The session key under which the signed-in user's id is kept.
const USER_ID_KEY: &str = "user_id";
pub const MIN_PASSWORD_LEN: usize = 10;

/// Who is asking, as far as the network tells: set on every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    pub ip: IpAddr,
    pub user_agent: Option<String>,
}

pub fn hash_password(password: &str) -> AppResult<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| {
            tracing::error!(error = %e, "password hashing failed");
            AppError::Internal
        })
}

pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A random 16-character password (for generated and demo accounts).
pub fn generate_password() -> String {
    super::api_keys::generate_key()[4..20].to_string()
}

pub fn check_new_password(password: &str) -> AppResult<()> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(AppError::bad_request(format!(
            "password: must be at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    if password.len() > 1024 {
        return Err(AppError::bad_request(
            "password: must be at most 1024 bytes",
        ));
    }
    Ok(())
}

/// An event that Auditdeck writes about itself.
pub fn self_event(
    at: i64,
    actor: Option<&UserInfo>,
    client: &ClientInfo,
    action: &str,
    table: Option<(&str, String)>,
    description: String,
) -> NewEvent {
    let initiator = match actor {
        Some(u) => Initiator {
            kind: InitiatorKind::User,
            // Our own users in a namespace of their own, apart from the ids
            // of the systems that send events.
            id: Some(format!("auditdeck:{}", u.id)),
            name: Some(u.name.clone()),
            email: Some(u.email.clone()),
            role: Some(u.role.as_str().to_string()),
        },
        None => Initiator {
            kind: InitiatorKind::System,
            id: None,
            name: None,
            email: None,
            role: None,
        },
    };
    let (table_name, primary_key) = match table {
        Some((t, k)) => (Some(t.to_string()), Some(k)),
        None => (None, None),
    };
    NewEvent {
        occurred_at: at,
        ip: Some(client.ip),
        initiator,
        action: action.to_string(),
        table_name,
        primary_key,
        description,
        before: None,
        after: None,
        user_agent: client.user_agent.clone(),
        request_id: None,
        session_id: None,
    }
}

/// A new user, as an admin or the command line gives it.
#[derive(Debug, Clone, Copy)]
pub struct UserForm<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub name: &'a str,
    pub role: Role,
    pub password: &'a str,
}

/// Creates a user and its audit event in one transaction.
pub async fn create_user(
    db: &Db,
    actor: Option<&UserInfo>,
    client: &ClientInfo,
    form: UserForm<'_>,
) -> AppResult<i64> {
    let UserForm {
        username,
        email,
        name,
        role,
        password,
    } = form;
    let username = username.trim();
    let email = email.trim();
    let name = name.trim();
    if username.is_empty()
        || username.len() > 64
        || !username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(AppError::bad_request(
            "username: 1 to 64 letters, digits, dots, dashes or underscores",
        ));
    }
    if !email.contains('@') || email.len() > 254 || email.chars().any(char::is_whitespace) {
        return Err(AppError::bad_request(format!(
            "email: \"{email}\" is not an email address"
        )));
    }
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AppError::bad_request("name: must be 1 to 100 characters"));
    }
    check_new_password(password)?;
    let password_hash = hash_password(password)?;
    let mut tx = store::begin(db).await?;
    let id = store::insert_user_in(
        &mut tx,
        &NewUser {
            username: username.to_string(),
            email: email.to_string(),
            name: name.to_string(),
            role,
            password_hash,
        },
    )
    .await?;
    let event = self_event(
        db.now(),
        actor,
        client,
        "CREATE",
        Some(("users", id.to_string())),
        format!(
            "Created user {username} <{email}> with role {}",
            role.as_str()
        ),
    );
    store::insert_events_in(&mut tx, &[event], None).await?;
    tx.commit().await?;
    Ok(id)
}

/// A fixed Argon2id hash to verify against when the account does not exist,
/// so that a wrong username takes as long as a wrong password.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password("not a real password").unwrap_or_default())
}

const WRONG_CREDENTIALS: &str = "Wrong username or password.";

/// Checks a sign-in attempt: rate limit, then credentials. Every failure is
/// recorded (for the rate limit) and audited with the username tried.
pub async fn sign_in(
    db: &Db,
    config: &AppConfig,
    client: &ClientInfo,
    login: &str,
    password: &str,
) -> AppResult<UserInfo> {
    let login = login.trim();
    if login.is_empty() || password.is_empty() {
        return Err(AppError::bad_request(
            "Enter your username or email and your password.",
        ));
    }
    let login: String = login.chars().take(254).collect();
    let ip = client.ip.to_string();
    let since = db.now() - i64::from(config.login_window_minutes) * 60_000_000;
    let (by_account, by_ip) = store::count_login_failures(db, &login, &ip, since).await?;
    if by_account >= config.login_max_failures_per_account
        || by_ip >= config.login_max_failures_per_ip
    {
        return Err(AppError::TooManyRequests(format!(
            "Too many failed sign-ins. Try again in {} minutes.",
            config.login_window_minutes
        )));
    }

    let user = store::find_user_by_login(db, &login).await?;
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| dummy_hash().to_string());
    let password = password.to_string();
    let password_ok = tokio::task::spawn_blocking(move || verify_password(&hash, &password))
        .await
        .unwrap_or(false);

    match user {
        Some(UserRecord {
            info,
            disabled: false,
            ..
        }) if password_ok => {
            let mut tx = store::begin(db).await?;
            store::clear_login_failures_in(&mut tx, &login).await?;
            let event = self_event(
                tx.now(),
                Some(&info),
                client,
                "LOGIN",
                Some(("users", info.id.to_string())),
                format!("{} signed in", info.username),
            );
            store::insert_events_in(&mut tx, &[event], None).await?;
            tx.commit().await?;
            Ok(info)
        }
        user => {
            let disabled = matches!(&user, Some(u) if u.disabled && password_ok);
            let reason = if disabled {
                "account disabled"
            } else {
                "wrong username or password"
            };
            let mut tx = store::begin(db).await?;
            store::insert_login_failure_in(&mut tx, &login, &ip).await?;
            let event = self_event(
                tx.now(),
                None,
                client,
                "LOGIN_FAILED",
                user.as_ref().map(|u| ("users", u.info.id.to_string())),
                format!("Failed sign-in as \"{login}\": {reason}"),
            );
            store::insert_events_in(&mut tx, &[event], None).await?;
            tx.commit().await?;
            if disabled {
                Err(AppError::Unauthorized("This account is disabled.".into()))
            } else {
                Err(AppError::Unauthorized(WRONG_CREDENTIALS.into()))
            }
        }
    }
}

/// Starts a session for a user (a new session id, against fixation).
pub async fn start_session(session: &Session, user: &UserInfo) -> AppResult<()> {
    session.cycle_id().await.map_err(session_error)?;
    session
        .insert(USER_ID_KEY, user.id)
        .await
        .map_err(session_error)?;
    Ok(())
}

pub async fn end_session(session: &Session) -> AppResult<()> {
    session.flush().await.map_err(session_error)
}

fn session_error(error: tower_sessions::session::Error) -> AppError {
    tracing::error!(%error, "session store error");
    AppError::Internal
}

/// The user signed in when the request began, looked up once per request by
/// the recording middleware and reused by the sign-in gate and by [`require`].
#[derive(Clone, Debug)]
pub struct RequestUser(pub Option<UserInfo>);

/// The request's [`RequestUser`] when the middleware found it, else a lookup.
async fn user_of_request(
    db: &Db,
    session: &Session,
    known: Option<&RequestUser>,
) -> AppResult<Option<UserInfo>> {
    match known {
        Some(RequestUser(user)) => Ok(user.clone()),
        None => session_user(db, session).await,
    }
}

/// The signed-in, enabled user of a session, if any.
pub async fn session_user(db: &Db, session: &Session) -> AppResult<Option<UserInfo>> {
    let Some(id) = session
        .get::<i64>(USER_ID_KEY)
        .await
        .map_err(session_error)?
    else {
        return Ok(None);
    };
    Ok(store::get_user(db, id)
        .await?
        .filter(|u| !u.disabled)
        .map(|u| u.info))
}

/// The client IP: the socket peer, unless the peer is a trusted proxy, in
/// which case the right-most untrusted address of `X-Forwarded-For` (or
/// `X-Real-IP`).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    if let Some(ip) = forwarded.iter().rev().find(|ip| !is_trusted(ip)) {
        return *ip;
    }
    if let Some(ip) = headers
        .get("x-real-ip")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
    {
        return ip;
    }
    forwarded.first().copied().unwrap_or(peer)
}

/// Middleware: works out [`ClientInfo`] for every request.
pub async fn client_info(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let info = ClientInfo {
        ip: client_ip(peer, request.headers(), &state.config.trusted_proxies),
        user_agent: request
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(512).collect()),
    };
    request.extensions_mut().insert(info);
    next.run(request).await
}

/// Paths anyone may open: the sign-in page, the browser bundle, and the API
/// (server functions check the user themselves; ingest checks its key).
fn is_public(path: &str) -> bool {
    path == "/" || path == "/login" || path.starts_with("/api/") || super::is_static_asset(path)
}

/// Middleware: a signed-out visit to a page goes to the sign-in page, and
/// back to where it was going after signing in.
pub async fn require_sign_in(
    State(state): State<AppState>,
    session: Session,
    request: Request,
    next: Next,
) -> Response {
    if is_public(request.uri().path()) {
        return next.run(request).await;
    }
    let known = request.extensions().get::<RequestUser>().cloned();
    match user_of_request(&state.db, &session, known.as_ref()).await {
        Ok(Some(_)) => next.run(request).await,
        Ok(None) => {
            let target = request
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| "/".into());
            let next_param: String = url_encode(&target);
            Redirect::to(&format!("/login?next={next_param}")).into_response()
        }
        Err(e) => e.into_response(),
    }
}

fn url_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// From inside a server function: the signed-in user, if their role allows
/// `needed`; else 401 (not signed in) or 403 (role too low).
pub async fn require(needed: Role) -> AppResult<(AppState, UserInfo, ClientInfo)> {
    let state = super::state::app_state()?;
    let session: Session = leptos_axum::extract().await.map_err(|e| {
        tracing::error!(error = %e, "no session layer");
        AppError::Internal
    })?;
    let client = client_from_context().await?;
    let known: Option<axum::Extension<RequestUser>> = leptos_axum::extract().await.unwrap_or(None);
    let user = user_of_request(&state.db, &session, known.as_ref().map(|k| &k.0))
        .await?
        .ok_or_else(|| AppError::Unauthorized("Sign in to continue.".into()))?;
    if !user.role.allows(needed) {
        return Err(AppError::Forbidden(format!(
            "Your role ({}) may not do this; it needs the {} role.",
            user.role.as_str(),
            needed.as_str()
        )));
    }
    Ok((state, user, client))
}

/// The [`ClientInfo`] of the request a server function is answering.
pub async fn client_from_context() -> AppResult<ClientInfo> {
    let axum::Extension(client): axum::Extension<ClientInfo> =
        leptos_axum::extract().await.map_err(|e| {
            tracing::error!(error = %e, "client info missing");
            AppError::Internal
        })?;
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(&hash, "correct horse battery"));
        assert!(!verify_password(&hash, "correct horse battery "));
        assert!(!verify_password("garbage", "x"));
        assert!(check_new_password("short").is_err());
        assert!(check_new_password("long enough!").is_ok());
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let spoof = headers(&[("x-forwarded-for", "1.2.3.4"), ("x-real-ip", "5.6.7.8")]);
        let stranger: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(client_ip(stranger, &spoof, &trusted), stranger);
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(
            client_ip(proxy, &spoof, &trusted),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        // A client cannot hide behind a forged left-most entry: the right-most
        // untrusted hop is the one the proxy saw.
        let chain = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.5")]);
        assert_eq!(
            client_ip(proxy, &chain, &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        let real = headers(&[("x-real-ip", "198.51.100.8")]);
        assert_eq!(
            client_ip(proxy, &real, &trusted),
            "198.51.100.8".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), proxy);
        assert_eq!(client_ip(proxy, &spoof, &[]), proxy);
    }

    #[test]
    fn next_parameter_is_encoded() {
        assert_eq!(
            url_encode("/activity-log?page=2&size=10"),
            "/activity-log%3Fpage%3D2%26size%3D10"
        );
    }
}
