//! API keys for the API: random, shown once, stored as SHA-256, each with
//! its scopes (what it may do).
//!
//! A key is high-entropy (238 bits), so a fast hash is the right one: the
//! lookup is by hash, and no dictionary attack applies.

use super::store::{self, ApiKey, Db};
use crate::errors::{AppError, AppResult};
use crate::models::{parse_scopes, SCOPE_EVENTS_WRITE};
use rand::distributions::Alphanumeric;
use rand::Rng;
use sha2::{Digest, Sha256};

const PREFIX: &str = "adk_";
const SECRET_LEN: usize = 40;

pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

pub fn generate_key() -> String {
    let secret: String = rand::rngs::OsRng
        .sample_iter(&Alphanumeric)
        .take(SECRET_LEN)
        .map(char::from)
        .collect();
    format!("{PREFIX}{secret}")
}

/// Creates a key that sends events and returns its id and the key itself,
/// which is not stored.
pub async fn create(db: &Db, label: &str) -> AppResult<(i64, String)> {
    create_with_scopes(db, label, &[SCOPE_EVENTS_WRITE]).await
}

/// [`create`] with the scopes given (see [`crate::models::API_KEY_SCOPES`]).
pub async fn create_with_scopes(db: &Db, label: &str, scopes: &[&str]) -> AppResult<(i64, String)> {
    let mut tx = store::begin(db).await?;
    let created = create_in(&mut tx, label, scopes).await?;
    tx.commit().await?;
    Ok(created)
}

/// [`create_with_scopes`] inside the caller's transaction.
pub async fn create_in(
    tx: &mut store::Tx,
    label: &str,
    scopes: &[&str],
) -> AppResult<(i64, String)> {
    let label = label.trim();
    if label.is_empty() || label.chars().count() > 100 {
        return Err(AppError::bad_request("label: must be 1 to 100 characters"));
    }
    let scopes = parse_scopes(scopes.iter().copied()).map_err(AppError::BadRequest)?;
    let key = generate_key();
    let id = store::insert_api_key_in(
        tx,
        label,
        &key[..PREFIX.len() + 6],
        &hash_key(&key),
        &scopes,
    )
    .await?;
    Ok((id, key))
}

/// Refuses a key without `scope` (403, naming the scope).
pub fn require_scope(key: &ApiKey, scope: &str) -> AppResult<()> {
    if key.allows(scope) {
        Ok(())
    } else {
        Err(AppError::Forbidden(format!(
            "this API key lacks the {scope} scope (it has {}): create a key with {scope} in Settings → API keys",
            key.scopes.join(", ")
        )))
    }
}

/// The active key presented in an `Authorization: Bearer ...` header value.
pub async fn authenticate(db: &Db, authorization: Option<&str>) -> AppResult<ApiKey> {
    let unauthorized = || {
        AppError::Unauthorized(
            "a valid API key is required: send `Authorization: Bearer <key>`".into(),
        )
    };
    let header = authorization.ok_or_else(unauthorized)?;
    let (scheme, key) = header.trim().split_once(' ').ok_or_else(unauthorized)?;
    let key = key.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || !key.starts_with(PREFIX) || key.len() > 200 {
        return Err(unauthorized());
    }
    store::find_active_api_key(db, &hash_key(key))
        .await?
        .ok_or_else(unauthorized)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_prefixed_and_hash_stably() {
        let a = generate_key();
        let b = generate_key();
        assert_ne!(a, b);
        assert!(a.starts_with("adk_"));
        assert_eq!(a.len(), 44);
        assert_eq!(hash_key(&a), hash_key(&a));
        assert_ne!(hash_key(&a), hash_key(&b));
        assert_eq!(hash_key(&a).len(), 64);
    }
}
