//! Request forgery protection and security headers.

use crate::errors::AppError;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use leptos::prelude::use_context;

/// Whether an unsafe request (POST, ...) comes from our own pages, as far as
/// the browser tells: `Sec-Fetch-Site`, else `Origin` against `Host`.
/// Requests with neither header come from non-browser clients, which carry
/// no ambient cookies to abuse, and pass.
pub fn is_same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return matches!(site, "same-origin" | "none");
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let origin_host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .unwrap_or("");
    !origin_host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

/// Middleware: refuses cross-site requests that could change something.
/// The ingest API is exempt: it is authenticated by a key, not a cookie.
pub async fn refuse_cross_site(request: Request, next: Next) -> Response {
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if safe || request.uri().path() == "/api/v1/events" || is_same_origin(request.headers()) {
        return next.run(request).await;
    }
    tracing::warn!(path = %request.uri().path(), "refused a cross-site request");
    AppError::Forbidden("Cross-site request refused.".into()).into_response()
}

/// The Content-Security-Policy of a page whose inline scripts carry `nonce`.
pub fn page_csp(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval' 'nonce-{nonce}'; \
         style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
         object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// For responses that are not pages (data, assets).
const DEFAULT_CSP: &str =
    "default-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'";

/// Leptos context for every rendered page: a fresh nonce for its inline
/// scripts, and the CSP header that admits exactly those.
pub fn page_context() {
    leptos::nonce::provide_nonce();
    if let (Some(nonce), Some(response)) = (
        leptos::nonce::use_nonce(),
        use_context::<leptos_axum::ResponseOptions>(),
    ) {
        if let Ok(value) = HeaderValue::from_str(&page_csp(&nonce)) {
            response.insert_header(header::CONTENT_SECURITY_POLICY, value);
        }
    }
}

/// Middleware: security headers on every response.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if !headers.contains_key(header::CACHE_CONTROL) {
        let html = headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("text/html"));
        if let Some(policy) = cache_policy(&path, html) {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(policy));
        }
    }
    // A build file is served brotli, gzip or plain by the request's
    // Accept-Encoding: caches must keep them apart.
    if headers.contains_key(header::CONTENT_ENCODING) && !headers.contains_key(header::VARY) {
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DEFAULT_CSP),
        );
    }
    response
}

/// How long a browser may keep a response. A build's files carry the hash
/// of their content in their name (`auditdeck.<hash>.wasm`), so they never
/// change under that name: kept a year, never revalidated. Other static
/// files are revalidated on every use; pages (which show the log) are
/// never stored. `None`: the handler's own choice stands.
pub fn cache_policy(path: &str, html: bool) -> Option<&'static str> {
    if html {
        return Some("no-store");
    }
    let name = path.rsplit('/').next().unwrap_or_default();
    if path.starts_with("/pkg/") && !path.contains("/snippets/") && has_content_hash(name) {
        Some("public, max-age=31536000, immutable")
    } else if super::is_static_asset(path) {
        Some("no-cache")
    } else {
        None
    }
}

/// Whether a file name carries cargo-leptos' content hash: one of its
/// dot-separated parts is 22 characters of unpadded base64url (an MD5),
/// not the placeholder that stands for one before hashing.
fn has_content_hash(name: &str) -> bool {
    name.split('.').any(|part| {
        part.len() == 22
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            // the placeholder of a file not yet hashed
            && !part.bytes().all(|b| b == b'_')
    })
}

/// Largest server-function error body we read back (errors are short).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Middleware: server_fn answers every error with 500; this gives it the
/// status of the [`AppError`] it carries (400 for malformed arguments, 403
/// for a role that may not, ...).
pub async fn server_fn_error_status(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if response.status() != axum::http::StatusCode::INTERNAL_SERVER_ERROR
        || !response.headers().contains_key("serverfnerror")
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_ERROR_BODY)
        .await
        .unwrap_or_default();
    if let Ok(error) = serde_json::from_slice::<AppError>(&bytes) {
        if let Ok(status) = axum::http::StatusCode::from_u16(error.status_code()) {
            parts.status = status;
        }
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn same_origin_by_fetch_metadata_or_origin() {
        assert!(is_same_origin(&headers(&[(
            "sec-fetch-site",
            "same-origin"
        )])));
        assert!(!is_same_origin(&headers(&[(
            "sec-fetch-site",
            "cross-site"
        )])));
        assert!(!is_same_origin(&headers(&[(
            "sec-fetch-site",
            "same-site"
        )])));
        assert!(is_same_origin(&headers(&[
            ("origin", "http://a.example:3000"),
            ("host", "a.example:3000")
        ])));
        assert!(!is_same_origin(&headers(&[
            ("origin", "https://evil.example"),
            ("host", "a.example:3000")
        ])));
        assert!(!is_same_origin(&headers(&[
            ("origin", "null"),
            ("host", "a.example")
        ])));
        assert!(
            is_same_origin(&HeaderMap::new()),
            "non-browser clients pass"
        );
    }

    #[test]
    fn hashed_build_files_are_kept_a_year_pages_never() {
        let year = Some("public, max-age=31536000, immutable");
        assert_eq!(
            cache_policy("/pkg/auditdeck.Ab3_-x9QwErTyUiOpAsDfG.wasm", false),
            year
        );
        assert_eq!(
            cache_policy("/pkg/auditdeck.Ab3_-x9QwErTyUiOpAsDfG.js", false),
            year
        );
        assert_eq!(
            cache_policy("/pkg/Ab3_-x9QwErTyUiOpAsDfG.wasm", false),
            year
        );
        assert_eq!(
            cache_policy("/pkg/__wasm_split.Ab3_-x9QwErTyUiOpAsDfG.js", false),
            year
        );
        // Unhashed names change content under the same name.
        assert_eq!(cache_policy("/pkg/auditdeck.wasm", false), Some("no-cache"));
        assert_eq!(
            cache_policy("/pkg/__wasm_split.______________________.js", false),
            Some("no-cache")
        );
        assert_eq!(
            cache_policy(
                "/pkg/snippets/leptos-Ab3_-x9QwErTyUiOpAsDfG/inline0.js",
                false
            ),
            Some("no-cache")
        );
        assert_eq!(cache_policy("/favicon.svg", false), Some("no-cache"));
        assert_eq!(cache_policy("/activity-log", true), Some("no-store"));
        assert_eq!(cache_policy("/api/v1/events", false), None);
    }

    #[test]
    fn page_csp_admits_only_the_nonce_and_wasm() {
        let csp = page_csp("abc123");
        assert!(csp.contains("'nonce-abc123'"));
        assert!(csp.contains("'wasm-unsafe-eval'"));
        assert!(!csp.contains("unsafe-inline"));
        assert!(csp.contains("frame-ancestors 'none'"));
    }
}
