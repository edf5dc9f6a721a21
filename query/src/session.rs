//! The web UI's sign-in: `POST /api/session` with a token sets it as an HttpOnly,
//! SameSite=Strict cookie for the browser session (so the page's requests, its
//! EventSource live tail included, carry it without script access to it);
//! `GET /api/session` says who is signed in; `DELETE /api/session` signs out.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use triad_model::auth::Principal;
use triad_receiver::auth::{SESSION_COOKIE, refusal};

use crate::AppState;

/// The most a sign-in body may hold.
const MAX_BODY: usize = 4096;

fn who(p: &Principal, auth: bool) -> serde_json::Value {
    json!({"tenant": p.tenant, "role": p.role.as_str(), "name": p.name.as_ref(), "auth": auth})
}

/// `GET /api/session`: the caller's tenant, role and token name, and whether this server
/// checks tokens at all (`auth: false` — the UI then shows no sign-out).
pub async fn current(State(st): State<AppState>, Extension(p): Extension<Principal>) -> Response {
    Json(who(&p, st.gate.enabled())).into_response()
}

/// `POST /api/session` with `{"token": "…"}`: checks the token (it needs the `read`
/// role) and sets the session cookie.
pub async fn sign_in(State(st): State<AppState>, body: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    struct SignIn {
        token: String,
    }
    if body.len() > MAX_BODY {
        return crate::error::json_error(StatusCode::PAYLOAD_TOO_LARGE, "sign-in body too large");
    }
    let req: SignIn = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return crate::error::json_error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"token\": \"…\"}}: {e}"),
            );
        }
    };
    let token = req.token.trim();
    // The cookie carries the token as it is: only characters a cookie value may hold.
    if token.is_empty()
        || !token
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b';' && b != b',')
    {
        return crate::error::json_error(StatusCode::BAD_REQUEST, "not a token");
    }
    let p = match st.gate.sign_in(token) {
        Ok(p) => p,
        Err(e) => return refusal(&e),
    };
    let mut resp = Json(who(&p, st.gate.enabled())).into_response();
    let cookie = format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
    match HeaderValue::from_str(&cookie) {
        Ok(mut v) => {
            v.set_sensitive(true);
            resp.headers_mut().insert(header::SET_COOKIE, v);
            resp
        }
        Err(_) => crate::error::json_error(StatusCode::BAD_REQUEST, "not a token"),
    }
}

/// `DELETE /api/session`: forgets the cookie.
pub async fn sign_out() -> Response {
    (
        StatusCode::NO_CONTENT,
        [(
            header::SET_COOKIE,
            format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
        )],
    )
        .into_response()
}
