//! Embeds the frontend (the shop's own files and Bootstrap's dist files) in
//! the binary, so that `unishop publish-frontend` works on a recovery host
//! that has only the binary. Bootstrap comes from `npm ci` in `frontend/`;
//! when it is not installed the binary is built without it and says so when
//! asked to publish (pass `--frontend DIR`, or rebuild after `npm ci`).

use std::fmt::Write as _;
use std::path::PathBuf;

const OWN: &[&str] = &["html", "css", "js", "svg", "ico", "txt"];
const BOOTSTRAP: &[(&str, &str)] = &[
    (
        "node_modules/bootstrap/dist/css/bootstrap.min.css",
        "vendor/bootstrap/bootstrap.min.css",
    ),
    (
        "node_modules/bootstrap/dist/js/bootstrap.bundle.min.js",
        "vendor/bootstrap/bootstrap.bundle.min.js",
    ),
];

fn main() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("frontend");
    // Only the embedded files are watched (each below, and the build script
    // itself), never `frontend/` as a directory: cargo takes a directory's
    // newest modification time of anything beneath it, `node_modules`
    // included, so every `npm ci` rebuilt the release binary. The limit: a
    // new file added to `frontend/` alone is not noticed (a directory's own
    // entries cannot be watched without its whole tree); a page serves a new
    // file only once `index.html`, `app.js` or `shop.css` names it, and that
    // change, to a watched file, embeds it.
    println!("cargo:rerun-if-changed=build.rs");
    let mut own: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && p.extension()
                            .and_then(|e| e.to_str())
                            .is_some_and(|e| OWN.contains(&e))
                })
                .collect()
        })
        .unwrap_or_default();
    own.sort();
    let mut out = String::from(
        "/// The frontend embedded at build time: (key, bytes).\npub const EMBEDDED: &[(&str, &[u8])] = &[\n",
    );
    for p in &own {
        println!("cargo:rerun-if-changed={}", p.display());
        let key = p.file_name().unwrap().to_string_lossy();
        writeln!(
            out,
            "    ({key:?}, include_bytes!({:?})),",
            p.display().to_string()
        )
        .unwrap();
    }
    let mut bootstrap = true;
    for (from, key) in BOOTSTRAP {
        let p = dir.join(from);
        println!("cargo:rerun-if-changed={}", p.display());
        if p.is_file() {
            writeln!(
                out,
                "    ({key:?}, include_bytes!({:?})),",
                p.display().to_string()
            )
            .unwrap();
        } else {
            bootstrap = false;
        }
    }
    out.push_str("];\n");
    writeln!(
        out,
        "/// Whether Bootstrap was installed (`npm ci`) when this binary was built.\npub const EMBEDDED_BOOTSTRAP: bool = {bootstrap};"
    )
    .unwrap();
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("frontend.rs");
    std::fs::write(dest, out).unwrap();
}
