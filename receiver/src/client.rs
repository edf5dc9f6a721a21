//! How this process calls other Triad servers: the agent its collectors, a query server
//! the collectors' internal and remote-read APIs and the alert engine's snapshot.
//!
//! The client identity — the token sent as `Authorization: Bearer` — belongs to the
//! process, like its host name: set once at start from `client_token_file` or
//! `TRIAD_TOKEN` ([`configure`]) and applied by [`http_client`] to every HTTP client and
//! by [`bearer`] to the agent's gRPC client. The tenant a call reads for travels per
//! request in [`crate::auth::ORG_ID_HEADER`] (honoured for trusted tokens).

use std::sync::OnceLock;
use std::time::Duration;

use axum::http::HeaderValue;

static TOKEN: OnceLock<Option<HeaderValue>> = OnceLock::new();

/// Sets the token this process sends; the first call wins (call it once, at start).
/// Returns an error when the token cannot be a header value.
pub fn configure(token: Option<&str>) -> Result<(), String> {
    let value = token
        .map(|t| {
            let mut v = HeaderValue::from_str(&format!("Bearer {t}"))
                .map_err(|_| "the client token has characters a header cannot carry".to_string())?;
            v.set_sensitive(true);
            Ok::<_, String>(v)
        })
        .transpose()?;
    let _ = TOKEN.set(value);
    Ok(())
}

/// The `Authorization` value to send, if a token is configured.
pub fn bearer() -> Option<HeaderValue> {
    TOKEN.get().cloned().flatten()
}

/// An HTTP client for calls to Triad servers, with the process's token and `timeout`.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(v) = bearer() {
        headers.insert(reqwest::header::AUTHORIZATION, v);
    }
    reqwest::Client::builder()
        .timeout(timeout)
        .default_headers(headers)
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))
}
