//! Serves the embedded web UI: built files by path, and `index.html` for every other
//! path outside `/api/`, so UI routes (`/traces/{id}`, `/logs?q=…`) are shareable links.

use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

/// The fallback handler of the query server's router.
pub async fn serve(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    if path == "api" || path.starts_with("api/") {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({"error": format!("no API endpoint {}", uri.path())})),
        )
            .into_response();
    }
    let asset = triad_ui::asset(path)
        .filter(|_| !path.is_empty())
        .or_else(triad_ui::index);
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
