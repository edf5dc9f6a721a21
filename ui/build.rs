//! Builds the web UI with npm (`npm ci` from the lockfile, then `vite build`) into
//! OUT_DIR and writes `assets.rs`, the table `lib.rs` serves from.
//!
//! Needs Node.js 20+ and npm on the build machine (Debian: `apt install nodejs npm`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn npm(dir: &Path, args: &[&str], envs: &[(&str, &Path)]) {
    let mut cmd = Command::new("npm");
    cmd.args(args).current_dir(dir);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let status = cmd.status().unwrap_or_else(|e| {
        panic!(
            "the web UI is built with npm, which could not be started ({e}); \
             install Node.js 20+ and npm (Debian: apt install nodejs npm)"
        )
    });
    if !status.success() {
        panic!(
            "`npm {}` failed in {} ({status})",
            args.join(" "),
            dir.display()
        );
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "json" => "application/json",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

fn files(dir: &Path, root: &Path, out: &mut Vec<(String, PathBuf)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files(&p, root, out);
        } else if let Ok(rel) = p.strip_prefix(root) {
            out.push((rel.to_string_lossy().replace('\\', "/"), p.clone()));
        }
    }
}

fn main() {
    let ui = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    for p in [
        "src",
        "index.html",
        "package.json",
        "package-lock.json",
        "vite.config.ts",
        "tsconfig.json",
    ] {
        println!("cargo:rerun-if-changed={}", ui.join(p).display());
    }
    // Install exactly the lockfile's packages when they are missing or the lockfile moved.
    let installed = ui.join("node_modules").join(".package-lock.json");
    let stale = match (
        std::fs::metadata(&installed),
        std::fs::metadata(ui.join("package-lock.json")),
    ) {
        (Ok(i), Ok(l)) => match (i.modified(), l.modified()) {
            (Ok(i), Ok(l)) => l > i,
            _ => true,
        },
        _ => true,
    };
    if stale {
        npm(
            &ui,
            &["ci", "--no-audit", "--no-fund", "--loglevel=error"],
            &[],
        );
    }
    let dist = out.join("dist");
    npm(
        &ui,
        &["run", "build", "--silent"],
        &[("TRIAD_UI_OUT", &dist)],
    );
    let mut found = Vec::new();
    files(&dist, &dist, &mut found);
    let mut code = String::from("/// The built UI's files.\npub static ASSETS: &[Asset] = &[\n");
    for (rel, path) in &found {
        code += &format!(
            "    Asset {{ path: {rel:?}, content_type: {:?}, bytes: include_bytes!({:?}), immutable: {} }},\n",
            content_type(rel),
            path.display().to_string(),
            rel.starts_with("assets/"),
        );
    }
    code += "];\n";
    std::fs::write(out.join("assets.rs"), code).expect("write assets.rs");
}
