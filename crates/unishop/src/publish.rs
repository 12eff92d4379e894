//! `unishop publish-frontend`: uploads the frontend to a bucket — the shop's
//! own HTML/CSS/JS, Bootstrap's compiled CSS and JS from the `bootstrap` npm
//! package (installed by `npm ci` in the frontend directory, never committed),
//! and the product images (generated SVG) — each with its content type.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::bucket::{Bucket, content_type};
use crate::catalogue::{KINDS, image_key, svg_image};
use crate::error::{Error, Result};

/// Bootstrap's files: where they are in the npm package → key in the bucket.
pub const BOOTSTRAP_FILES: &[(&str, &str)] = &[
    (
        "node_modules/bootstrap/dist/css/bootstrap.min.css",
        "vendor/bootstrap/bootstrap.min.css",
    ),
    (
        "node_modules/bootstrap/dist/js/bootstrap.bundle.min.js",
        "vendor/bootstrap/bootstrap.bundle.min.js",
    ),
];

/// Extensions of the shop's own files (at the top of the frontend directory).
const OWN: &[&str] = &["html", "css", "js", "svg", "ico", "txt"];

/// One uploaded object.
#[derive(Debug, Clone, Serialize)]
pub struct Published {
    /// Key in the bucket.
    pub key: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Content type it was uploaded with.
    pub content_type: String,
}

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/frontend.rs"));
}

/// The frontend embedded in this binary (its own files, Bootstrap's when it
/// was installed at build time, the product images): what
/// `publish-frontend` uploads when not given a directory.
pub fn embedded() -> Result<Vec<(String, Vec<u8>)>> {
    if !embedded::EMBEDDED_BOOTSTRAP {
        return Err(Error::Other(
            "this unishop binary was built without Bootstrap (no `npm ci` in crates/unishop/frontend before the build): rebuild after `npm ci --prefix crates/unishop/frontend`, or give the frontend directory with --frontend DIR".into(),
        ));
    }
    let mut out: Vec<(String, Vec<u8>)> = embedded::EMBEDDED
        .iter()
        .map(|(k, b)| (k.to_string(), b.to_vec()))
        .collect();
    for (kind, color) in KINDS {
        out.push((image_key(kind), svg_image(kind, color).into_bytes()));
    }
    Ok(out)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })
}

/// Everything to upload: (key, bytes). Fails, saying which command to run,
/// when Bootstrap is not installed.
pub fn collect(frontend: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    if !frontend.join("index.html").is_file() {
        return Err(Error::Other(format!(
            "{}: no index.html here; give the shop's frontend directory with --frontend DIR (crates/unishop/frontend in the source tree)",
            frontend.display()
        )));
    }
    let mut out = Vec::new();
    for (from, key) in BOOTSTRAP_FILES {
        let p = frontend.join(from);
        if !p.is_file() {
            return Err(Error::Other(format!(
                "Bootstrap is not installed: {} is missing. Run: npm ci --prefix {}",
                p.display(),
                frontend.display()
            )));
        }
        out.push((key.to_string(), read(&p)?));
    }
    let mut own: Vec<PathBuf> = std::fs::read_dir(frontend)
        .map_err(|e| Error::Io {
            path: frontend.display().to_string(),
            source: e,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| OWN.contains(&e))
        })
        .collect();
    own.sort();
    for p in own {
        let key = p.file_name().unwrap().to_string_lossy().into_owned();
        out.push((key, read(&p)?));
    }
    for (kind, color) in KINDS {
        out.push((image_key(kind), svg_image(kind, color).into_bytes()));
    }
    Ok(out)
}

/// Uploads the frontend in `frontend` (default: the one embedded in this
/// binary) to `bucket`; `index.html` last, so that a shop whose health check
/// looks for it never sees a half-published site.
#[tracing::instrument(skip(bucket), fields(bucket = %bucket.url()))]
pub async fn publish(frontend: Option<&Path>, bucket: &Bucket) -> Result<Vec<Published>> {
    let mut files = match frontend {
        Some(dir) => collect(dir)?,
        None => embedded()?,
    };
    files.sort_by_key(|(k, _)| k == "index.html");
    let mut done = Vec::new();
    for (key, data) in files {
        let bytes = data.len() as u64;
        bucket.write(&key, data).await?;
        done.push(Published {
            content_type: content_type(&key).to_string(),
            key,
            bytes,
        });
    }
    Ok(done)
}
