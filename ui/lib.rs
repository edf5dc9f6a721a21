//! Triad's web UI, built from `ui/src` by `build.rs` (npm, from `package-lock.json`) and
//! embedded in the binary, so `triad up` serves it with no extra step.

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// One file of the built UI.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// Path below the UI root, e.g. `index.html`, `assets/index-3f2a.js`.
    pub path: &'static str,
    /// `Content-Type` to serve it with.
    pub content_type: &'static str,
    /// Its bytes.
    pub bytes: &'static [u8],
    /// Whether the name carries a content hash (cache it forever).
    pub immutable: bool,
}

/// The file at `path` (no leading `/`), if the build has one.
pub fn asset(path: &str) -> Option<Asset> {
    ASSETS.iter().find(|a| a.path == path).copied()
}

/// The page every UI route loads.
pub fn index() -> Option<Asset> {
    asset("index.html")
}
