//! Serves the web UI: built files by path, and `index.html` for the UI's routes
//! (`/traces/{id}`, `/logs?q=…`), so they are shareable links. Any other path answers
//! 404 with a JSON error, so a data source pointed at the wrong path (a Loki or Tempo
//! client, say) gets a clear error rather than a page of HTML.
//!
//! The files come from whoever builds the router ([`crate::AppState::ui`]): the `triad`
//! binary embeds the UI that `ui/` builds with npm, so this crate builds and tests
//! without Node.

use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// One file of the web UI.
#[derive(Debug, Clone, Copy)]
pub struct UiAsset {
    /// Path below the UI root, e.g. `index.html`, `assets/index-3f2a.js`.
    pub path: &'static str,
    /// `Content-Type` to serve it with.
    pub content_type: &'static str,
    /// Its bytes.
    pub bytes: &'static [u8],
    /// Whether the name carries a content hash (cache it forever).
    pub immutable: bool,
}

/// Finds the UI's file at a path (no leading `/`); `None` if there is none.
pub type UiAssets = fn(&str) -> Option<UiAsset>;

/// For a server without a UI: no file at any path.
pub fn no_ui(_: &str) -> Option<UiAsset> {
    None
}

/// The first path segments of the UI's own routes (`ui/src/main.tsx`'s route table).
const UI_ROUTES: &[&str] = &["traces", "services", "graph", "alerts", "logs"];

/// Whether `path` (no leading `/`) is one of the UI's pages.
fn is_ui_route(path: &str) -> bool {
    let first = path.split('/').next().unwrap_or("");
    path.is_empty() || UI_ROUTES.contains(&first)
}

/// The fallback handler of the query server's router.
pub async fn serve(State(state): State<AppState>, uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    let lookup = state.ui;
    let asset = match lookup(path).filter(|_| !path.is_empty()) {
        Some(a) => Some(a),
        None if is_ui_route(path) => lookup("index.html"),
        None => {
            return crate::error::json_error(
                StatusCode::NOT_FOUND,
                format!("no endpoint {}", uri.path()),
            );
        }
    };
    match asset {
        Some(a) => {
            let cache = if a.immutable {
                "public, max-age=31536000, immutable"
            } else {
                "no-cache"
            };
            (
                [
                    (header::CONTENT_TYPE, a.content_type),
                    (header::CACHE_CONTROL, cache),
                ],
                a.bytes,
            )
                .into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            "the web UI is not part of this build",
        )
            .into_response(),
    }
}
