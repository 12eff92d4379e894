//! After a failover everything is protected at once (issue 21 D19): every
//! recovered member gets a first point into the vault it was recovered from
//! (a bucket used in place, an instance's recovered directory), and the
//! instance's first point recovers again; a recovery fences the replica it
//! uses in place, so the old primary's replicator, back from a partition,
//! refuses to write into it until the fence is lifted; a drill's and a
//! recovery's reports are kept in the site's vault, so `report` on a host
//! whose history never saw the drill does not say "never drilled".

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::recovery::{World, source};

/// A web host that serves the greeting file it keeps in its own directory.
const WEB: &str =
    "#!/bin/sh\nexec python3 -m http.server --bind 127.0.0.1 \"$WEB_PORT\" --directory www\n";

/// The world with a web host (an instance) beside the bucket, and stack
/// `s` of both.
fn world() -> World {
    World::new(
        |w| {
            use std::os::unix::fs::PermissionsExt;
            let app = w.join("app/opt/web");
            std::fs::create_dir_all(app.join("www")).unwrap();
            std::fs::write(app.join("www/greeting.txt"), "hello\n").unwrap();
            std::fs::write(app.join("run.sh"), WEB).unwrap();
            std::fs::set_permissions(app.join("run.sh"), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        },
        |w| {
            format!(
                r#"[resource.web]
kind = "instance"
site = "primary"
paths = ["{app}"]
[resource.web.launch]
command = ["{app}/run.sh"]
cwd = "{app}"
env = {{ WEB_PORT = "${{port}}" }}
health = "http://${{listen}}/greeting.txt"
[stack.s]
members = ["assets", "web"]
check = "curl -fsS ${{web.url}}/greeting.txt | grep -qx hello"
"#,
                app = w.join("app/opt/web").display(),
            )
        },
    )
}

/// Points of the bucket and the web host; then an object written after
/// them, replicated: the replica is newer than the bucket point, so a
/// recovery uses it in place.
fn protected(w: &World) {
    std::fs::write(w.primary_bucket().join("logo.txt"), "logo").unwrap();
    w.backup_bucket();
    w.c.ok(&["jobs", "run", "--plan", "default"]);
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(w.primary_bucket().join("after.txt"), "after the point").unwrap();
    let o = w.replicate();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Every file below `dir` (the fence apart) with its content.
fn contents(dir: &Path) -> BTreeMap<String, String> {
    lifeboat_testkit::files_below(dir)
        .into_iter()
        // The replicator's fence and mark are no objects of the bucket.
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n != ".lifeboat-fence" && n != ".lifeboat-replicated")
        })
        .map(|p| {
            (
                p.strip_prefix(dir).unwrap().display().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect()
}

#[test]
fn after_a_failover_every_member_has_a_first_point_and_the_instances_recovers_again() {
    let w = world();
    protected(&w);
    let r = w.recover(&[]);
    assert_eq!(source(&r, "assets")["from"], "replica", "{r:#}");
    let prot = r["protection"].as_array().unwrap();
    let of = |m: &str| {
        prot.iter()
            .find(|p| p["member"] == m)
            .unwrap_or_else(|| panic!("`{m}` is not protected: {r:#}"))
    };
    assert_eq!(of("assets")["kind"], "bucket", "{r:#}");
    assert_eq!(of("assets")["vault"], "dr");
    assert_eq!(of("web")["kind"], "instance", "{r:#}");
    assert_eq!(of("web")["vault"], "dr");
    // The points are in the vault, tagged, of the recovered content.
    let points = w.c.json(&["points", "list"]);
    let point = |id: &serde_json::Value| {
        points
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == *id)
            .unwrap_or_else(|| panic!("no point {id}: {points:#}"))
            .clone()
    };
    let bucket = point(&of("assets")["snapshot"]);
    assert_eq!(bucket["resource"], "assets");
    assert_eq!(bucket["kind"], "bucket");
    assert!(bucket["tags"].to_string().contains("recovered"), "{bucket}");
    let web = point(&of("web")["snapshot"]);
    assert_eq!(web["resource"], "web");
    assert_eq!(web["kind"], "instance");
    // The bucket point holds the replica's objects (the one written after
    // the primary's point too), never the fence.
    let out = w.w().join("restored-assets");
    w.c.ok(&[
        "restore",
        "bucket",
        of("assets")["snapshot"].as_str().unwrap(),
        "--to-bucket",
        &format!("file://{}", out.display()),
    ]);
    assert_eq!(
        contents(&out),
        contents(&w.replica()),
        "the bucket's first point"
    );
    assert!(!out.join(".lifeboat-fence").exists());

    // The site recovers from those points again: the web host comes back
    // from its first point, with the launch spec it was started with.
    w.down();
    let r2 = w.recover(&[]);
    let web2 = source(&r2, "web");
    assert_eq!(web2["point"], of("web")["snapshot"], "{r2:#}");
    let url = r2["outputs"]["web.url"].as_str().unwrap();
    let o = Command::new("curl")
        .args(["-fsS", &format!("{url}/greeting.txt")])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hello\n", "{r2:#}");
}

#[test]
fn the_old_primarys_replicator_refuses_a_replica_a_recovery_uses() {
    let w = world();
    protected(&w);
    let r = w.recover(&[]);
    assert_eq!(source(&r, "assets")["from"], "replica", "{r:#}");
    assert!(w.replica().join(".lifeboat-fence").is_file(), "{r:#}");
    let before = contents(&w.replica());

    // The old primary comes back from a partition and its replicator runs
    // on: changed, new and deleted objects must not reach the replica.
    std::fs::write(w.primary_bucket().join("logo.txt"), "the old primary's").unwrap();
    std::fs::write(w.primary_bucket().join("late.txt"), "late").unwrap();
    std::fs::remove_file(w.primary_bucket().join("after.txt")).unwrap();
    let o = w.replicate();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("is fenced"), "{err}");
    assert!(err.contains("stack `s`"), "{err}");
    assert!(err.contains("replicate fence --lift"), "{err}");
    assert_eq!(contents(&w.replica()), before, "the replica changed");

    // The fence is shown, and lifted after failback: replication resumes.
    let replica = format!("file://{}", w.replica().display());
    let shown = w.c.ok(&["replicate", "fence", &replica]);
    assert!(shown.contains("is fenced"), "{shown}");
    w.down();
    let lifted = w.c.ok(&["replicate", "fence", "--lift", &replica]);
    assert!(lifted.contains("lifted"), "{lifted}");
    let o = w.replicate();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(w.replica().join("late.txt")).unwrap(),
        "late"
    );
}

#[test]
fn report_on_a_host_that_never_saw_the_drill_reads_it_from_the_vault() {
    let w = world();
    protected(&w);
    let d = w.c.json(&["drill", "--stack", "s", "--to", "secondary"]);
    assert_eq!(d["passed"], true, "{d:#}");
    // The secondary's host: a state directory that never saw the drill.
    let fresh = w.w().join("fresh-state");
    let o =
        w.c.command(&["report", "--json", "--state"])
            .arg(&fresh)
            .output()
            .unwrap();
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&o.stderr)));
    let st = &rep["stacks"][0];
    assert_eq!(st["stack"], "s", "{rep:#}");
    assert!(
        !st["failed"].to_string().contains("never drilled"),
        "{st:#}"
    );
    assert_eq!(st["compliant"], true, "{st:#}");
    assert_eq!(st["kept"]["vault"], "dr", "{st:#}");
    // A recovery's report is kept there too, beside the drill's.
    w.recover(&[]);
    let kept = std::fs::read_dir(w.w().join("dr/control/reports"))
        .unwrap()
        .count();
    assert_eq!(kept, 2, "a drill's and a recovery's report");
}
