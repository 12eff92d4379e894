//! An instance restored at another site and started there: the real Unishop
//! binary with its launch spec, restored with site B's database (a real
//! mariadbd) and bucket, started, healthy, stopped; and starts that fail
//! (health timeout, a command that exits) leave nothing running.

mod instance_fixture;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use lifeboat_testkit::mariadb::{MariaDb, MariaDbOptions, free_port};
use lifeboat_testkit::tempdir;

fn unishop_bin() -> PathBuf {
    lifeboat_testkit::procs::unishop_bin(env!("CARGO_BIN_EXE_lifeboat"))
}

use instance_fixture::{cli, s, stderr};
use lifeboat_testkit::procs::alive;

/// GET a URL; the status code.
fn status(url: &str) -> Option<u16> {
    lifeboat_instance::supervise::http_status(url, std::time::Duration::from_secs(2)).ok()
}

#[test]
fn unishop_restored_at_another_site_starts_against_its_database_and_bucket() {
    let t = tempdir().unwrap();
    // Site A: the shop's host, with its binary and a config file.
    let app = t.path().join("a/opt/unishop");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::copy(unishop_bin(), app.join("unishop")).unwrap();
    std::fs::write(app.join("VERSION"), b"unishop as deployed on site A\n").unwrap();
    let spec = t.path().join("shop-host.toml");
    std::fs::write(
        &spec,
        format!(
            r#"name = "shop-host"
paths = ["{app}"]
[launch]
command = ["{app}/unishop", "serve"]
cwd = "{app}"
env = {{ UNISHOP_DATABASE_URL = "${{DATABASE_URL}}", UNISHOP_BUCKET = "${{BUCKET_URL}}", UNISHOP_LISTEN = "127.0.0.1:${{PORT}}", UNISHOP_LOG = "info" }}
health = "http://127.0.0.1:${{PORT}}/health"
health_timeout = "60s"
databases = ["shop-db"]
buckets = ["shop-assets"]
"#,
            app = app.display()
        ),
    )
    .unwrap();
    let c = cli(&t.path().join("vault"));
    c.ok(&["vault", "init"]);
    let b = c.json(&["backup", "instance", "--spec", s(&spec)]);
    assert_eq!(b["kind"], "instance");
    // Site A is lost.
    std::fs::remove_dir_all(t.path().join("a")).unwrap();

    // Site B: its own database and bucket.
    let db = MariaDb::start_with(&MariaDbOptions {
        binlog: false,
        server_id: 2,
        ..Default::default()
    });
    let bucket = t.path().join("b-bucket");
    std::fs::create_dir_all(&bucket).unwrap();
    std::fs::write(
        bucket.join("index.html"),
        "<!doctype html><title>Unishop</title>",
    )
    .unwrap();
    let port = free_port();
    let to = t.path().join("site-b");
    let r = c.json(&[
        "restore",
        "instance",
        "latest",
        "--to",
        s(&to),
        "--env",
        &format!("DATABASE_URL=mysql://root@127.0.0.1:{}/shop_b", db.port),
        "--env",
        &format!("BUCKET_URL=file://{}", bucket.display()),
        "--env",
        &format!("PORT={port}"),
        "--start",
    ]);
    assert_eq!(r["started"], true, "{r}");
    let took = r["started_in_s"].as_f64().unwrap();
    assert!(took > 0.0 && took < 60.0, "{r}");
    let pid = r["pid"].as_i64().unwrap();
    let health = format!("http://127.0.0.1:{port}/health");
    assert_eq!(status(&health), Some(200));
    // It is the restored binary that runs, against site B's database.
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(exe.starts_with(&to), "{}", exe.display());
    assert_eq!(
        db.sql("SELECT COUNT(*) > 0 FROM information_schema.tables WHERE table_schema = 'shop_b'"),
        "1\n"
    );
    assert!(to.join("launch.log").exists());
    let l = &r["launch"];
    assert_eq!(l["databases"][0], "shop-db");
    assert_eq!(
        l["env"]["UNISHOP_BUCKET"],
        format!("file://{}", bucket.display())
    );

    // A second start while it runs is refused.
    let again = lifeboat_instance::supervise::start(&to)
        .unwrap_err()
        .to_string();
    assert!(again.contains("already running"), "{again}");
    let o = c.run(&["instance", "stop", s(&to), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(st["was_running"], true);
    assert!(!alive(pid), "pid {pid} still runs after instance stop");
    assert_eq!(status(&health), None);
    assert!(!to.join("launch.pid").exists());
}

/// A restored "application" that never answers its health URL, and starts a
/// helper process of its own; both pids are written where the test sees them.
fn never_healthy(dir: &Path) -> PathBuf {
    let app = dir.join("a/opt/stuck");
    std::fs::create_dir_all(&app).unwrap();
    let run = app.join("run.sh");
    std::fs::write(
        &run,
        "#!/bin/sh\necho starting up, never listening\nsleep 1000 &\necho $$ $! > \"$PIDS\"\nexec sleep 1000\n",
    )
    .unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).unwrap();
    app
}

#[test]
fn a_start_that_does_not_become_healthy_is_stopped_with_the_cause_named() {
    let t = tempdir().unwrap();
    let app = never_healthy(t.path());
    let pids = t.path().join("pids");
    let spec = t.path().join("stuck.toml");
    std::fs::write(
        &spec,
        format!(
            r#"paths = ["{app}"]
[launch]
command = ["{app}/run.sh"]
env = {{ PIDS = "{pids}" }}
health = "http://127.0.0.1:${{PORT}}/health"
health_timeout = "2s"
"#,
            app = app.display(),
            pids = pids.display()
        ),
    )
    .unwrap();
    let c = cli(&t.path().join("vault"));
    c.ok(&["vault", "init"]);
    c.ok(&["backup", "instance", "--spec", s(&spec)]);
    let to = t.path().join("b");
    let port = free_port().to_string();
    let o = c.run(&[
        "restore",
        "instance",
        "latest",
        "--to",
        s(&to),
        "--env",
        &format!("PORT={port}"),
        "--start",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("did not become healthy within 2s"), "{e}");
    assert!(e.contains("refused"), "the cause: {e}");
    assert!(e.contains("it was stopped"), "{e}");
    assert!(
        e.contains("starting up, never listening"),
        "launch.log quoted: {e}"
    );
    let text = std::fs::read_to_string(&pids).unwrap();
    for p in text.split_whitespace() {
        let p: i64 = p.parse().unwrap();
        assert!(!alive(p), "pid {p} left running");
    }
    assert!(!to.join("launch.pid").exists());

    // A command that exits at once: named with its exit status.
    std::fs::write(
        app.join("run.sh"),
        "#!/bin/sh\necho no config >&2\nexit 4\n",
    )
    .unwrap();
    c.ok(&["backup", "instance", "--spec", s(&spec)]);
    let to2 = t.path().join("b2");
    let o = c.run(&[
        "restore",
        "instance",
        "latest",
        "--to",
        s(&to2),
        "--env",
        &format!("PORT={port}"),
        "--start",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("exited (exit status: 4)") && e.contains("no config"),
        "{e}"
    );
}
