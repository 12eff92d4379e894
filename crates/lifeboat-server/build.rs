//! Embeds the web console (`console/`: hand-written HTML, CSS and ES modules,
//! and the vendored chart library under `console/vendor/`) in the binary as a
//! table of (path, bytes). Nothing here runs node: the vendored files are
//! committed (`npm run vendor` in `console/` refreshes them), so a release
//! build needs only cargo.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What is served; everything else (node_modules, package files, the vendor script) is not.
const SERVED: &[&str] = &["html", "css", "js", "svg", "ico", "txt"];
const SKIP_DIRS: &[&str] = &["node_modules"];
const SKIP_FILES: &[&str] = &["vendor.mjs"];

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        if p.is_dir() {
            if !SKIP_DIRS.contains(&name.as_str()) {
                walk(root, &p, out);
            }
            continue;
        }
        let served = name == "LICENSE"
            || p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| SERVED.contains(&e));
        if served && !SKIP_FILES.contains(&name.as_str()) {
            let key = p
                .strip_prefix(root)
                .expect("under the root")
                .to_string_lossy()
                .to_string();
            out.push((key, p));
        }
    }
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("console");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    walk(&root, &root, &mut files);
    files.sort();
    let mut out = String::from(
        "/// The console's files, embedded at build time: (path under `/console/`, bytes).\npub const ASSETS: &[(&str, &[u8])] = &[\n",
    );
    for (key, p) in &files {
        println!("cargo:rerun-if-changed={}", p.display());
        writeln!(
            out,
            "    ({key:?}, include_bytes!({:?})),",
            p.display().to_string()
        )
        .unwrap();
    }
    for d in ["js", "vendor", "vendor/uplot"] {
        println!("cargo:rerun-if-changed={}", root.join(d).display());
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("console_assets.rs");
    std::fs::write(dest, out).unwrap();
}
