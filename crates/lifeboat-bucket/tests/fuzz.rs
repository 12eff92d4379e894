//! Fuzzing bucket key escaping and the directory bucket's key check: node
//! names from a point (untrusted) always unescape without panicking,
//! escaping is lossless, and a key the directory bucket accepts never leads
//! outside its root. Runs for `LIFEBOAT_FUZZ_SECS` (default 30 s).

use lifeboat_bucket::snapshot::{escape, unescape};
use lifeboat_bucket::store::dir::key_problem;
use lifeboat_testkit::fuzz::fuzz;

#[test]
fn fuzz_bucket_key_escaping() {
    let seeds: Vec<Vec<u8>> = [
        "a/b/c.txt",
        "%25/%",
        "a//b",
        "../x",
        "50%%",
        ".lifeboat-tmp/x",
        "é/ü",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    fuzz(
        "bucket key escaping",
        &seeds,
        &[b"%", b"%25", b"/", b"..", b".", b"\0", b"%2"],
        4096,
        |b| {
            let s = String::from_utf8_lossy(b);
            // Any name from a tree unescapes (the collision form too).
            let _ = unescape(&s);
            // Escaping each component of any key is lossless, and names never hold '/' or are empty.
            for c in s.split('/') {
                let e = escape(c);
                assert!(!e.is_empty());
                assert_eq!(unescape(&e), c);
                assert_eq!(unescape(&format!("{e}%")), c);
            }
            // An accepted key has no component that climbs or is absolute.
            if key_problem(&s).is_none() {
                assert!(!s.starts_with('/'));
                assert!(s.split('/').all(|c| !c.is_empty() && c != "." && c != ".."));
                assert!(!s.contains('\0'));
            }
        },
    );
}
