//! `POST /restores/bucket`: a bucket point restored into a new location as a
//! job; the live bucket and a target holding objects refused (400, named)
//! unless asked to overwrite; a point of another kind is a 404.

use lifeboat_testkit::tempdir;

use crate::support::{end_of, site};

#[test]
fn a_bucket_point_is_restored_into_an_empty_location_and_nowhere_else() {
    let d = tempdir().unwrap();
    let w = d.path().display().to_string();
    let s = site(d.path(), &format!("restore_roots = [\"{w}\"]"));
    let srv = s.serve(&[], None);
    let post = |body: String| srv.post("/api/v1/restores/bucket", Some(&body));
    let point = |resource: &str| {
        s.cli.json(&["points", "list", "--resource", resource])[0]["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (bucket, files) = (point("front"), point("data"));
    std::fs::create_dir_all(d.path().join("busy")).unwrap();
    std::fs::write(d.path().join("busy/keep.txt"), b"mine").unwrap();
    for (to, pt, code, says) in [
        ("ftp://x".to_string(), &bucket, 400, "not a bucket address"),
        (
            format!("file://{w}/bucket"),
            &bucket,
            400,
            "live bucket of resource `front`",
        ),
        (
            format!("file://{w}/busy"),
            &bucket,
            400,
            "already holds 1 object",
        ),
        (format!("file://{w}/new"), &files, 404, ""),
    ] {
        let (c, b) = post(format!(r#"{{"vault":"main","point":"{pt}","to":"{to}"}}"#));
        assert_eq!(c, code, "{to}: {b}");
        assert!(b["error"].as_str().unwrap().contains(says), "{b}");
    }
    assert!(!d.path().join("new").exists());
    // An empty location: restored, as a job.
    let (c, started) = post(format!(
        r#"{{"vault":"main","point":"{bucket}","to":"file://{w}/new"}}"#
    ));
    assert_eq!(c, 202, "{started}");
    let end = end_of(&srv.events(started["jobs"][0].as_i64().unwrap()));
    assert_eq!(
        (
            end["kind"].as_str(),
            end["status"].as_str(),
            end["resource"].as_str()
        ),
        (Some("restore"), Some("succeeded"), Some("front")),
        "{end}"
    );
    assert_eq!(
        std::fs::read(d.path().join("new/site/index.html")).unwrap(),
        b"<h1>shop</h1>"
    );
    // Over a busy one when asked: its own key is left as it was.
    let (c, started) = post(format!(
        r#"{{"vault":"main","point":"{bucket}","to":"file://{w}/busy","overwrite":true,"prefix":"site/"}}"#
    ));
    assert_eq!(c, 202, "{started}");
    let end = end_of(&srv.events(started["jobs"][0].as_i64().unwrap()));
    assert_eq!(end["status"], "succeeded", "{end}");
    assert!(d.path().join("busy/site/index.html").exists());
    assert_eq!(
        std::fs::read(d.path().join("busy/keep.txt")).unwrap(),
        b"mine"
    );
}
