//! An idle database's restorable time (issue 21 C14): its binlog archive
//! moves the newest restorable second on each of its checks (every second by
//! default), not on a 30 s heartbeat, so an idle database's drill meets a
//! 5 s RPO objective and `report` judges the drill as the drill did; the
//! live exposure (`/metrics`) leaves stateless members out, as a recovery does.

mod support;

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use lifeboat_testkit::archive::{restorable_to, start_archive, wait_restorable};
use lifeboat_testkit::mariadb::MariaDb;
use lifeboat_testkit::serve::Serve;
use lifeboat_testkit::{Cli, tempdir};
use support::sites::two_sites;

/// The binary under test (`LIFEBOAT_TEST_BIN` runs the test against another
/// build, e.g. the code before a fix).
fn bin() -> String {
    std::env::var("LIFEBOAT_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_lifeboat").into())
}

/// Two sites; the database in the primary, archived straight into the
/// secondary's vault `dr`; stack `s` of it alone, with a 5 s RPO objective.
fn config(w: &Path, db: &MariaDb) -> String {
    format!(
        r#"{sites}[resource.db]
kind = "mysql"
site = "primary"
dsn = "{dsn}"
[stack.s]
members = ["db"]
objectives = {{ rpo = "5s", rto = "10m" }}
"#,
        sites = two_sites(w, "dr"),
        dsn = db.root_dsn()
    )
}

#[test]
fn an_idle_database_stays_restorable_to_about_now_and_its_drill_meets_a_5s_rpo() {
    let t = tempdir().unwrap();
    let w = t.path();
    let db = MariaDb::start();
    db.sql("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, v TEXT)");
    db.sql("INSERT INTO app.t VALUES (1, 'before the snapshot')");
    std::fs::write(w.join("lifeboat.toml"), config(w, &db)).unwrap();
    let c = Cli::new(bin(), &w.join("dr")).with_workdir(w);
    c.ok(&["apply", "--auto-approve"]);
    c.ok(&[
        "backup",
        "mysql",
        "--dsn",
        &db.root_dsn(),
        "--resource",
        "db",
    ]);
    // The archive with its default settings.
    let archive = start_archive(&c, &db.root_dsn(), w, &["--resource", "db"]);
    db.sql("INSERT INTO app.t VALUES (2, 'the last write')");
    let last = Utc::now();
    wait_restorable(&c, Some("db"), last, Duration::from_secs(60), || {
        format!(
            "the archive never held the last write: {}",
            std::fs::read_to_string(w.join("archive.err")).unwrap_or_default()
        )
    });

    // Idle for 12 s: the restorable time keeps up with the clock (with a
    // 30 s heartbeat it stood still at the last write, 12 s behind).
    std::thread::sleep(Duration::from_secs(12));
    let reach = restorable_to(&c, Some("db")).unwrap();
    let behind = (Utc::now() - reach).num_milliseconds() as f64 / 1000.0;
    assert!(
        behind < 6.0,
        "an idle database's newest restorable second is {behind:.1} s behind now (reach {reach}, last write {last})"
    );

    // A drill now meets the 5 s objective, and `report` agrees with it.
    let o = c.run(&["drill", "--stack", "s", "--to", "secondary", "--json"]);
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    let rpo = d["recovery"]["rpo_s"].as_f64().unwrap_or(f64::NAN);
    assert_eq!(d["passed"], true, "RPO {rpo} s: {d:#}");
    assert_eq!(o.status.code(), Some(0), "{d:#}");
    assert!(rpo <= 5.0, "{d:#}");
    let rep = c.run(&["report", "--json"]);
    let rep: serde_json::Value = serde_json::from_slice(&rep.stdout).unwrap();
    let stack = &rep["stacks"][0];
    assert_eq!(stack["stack"], "s");
    assert_eq!(stack["compliant"], true, "{stack:#}");
    assert_eq!(stack["summary"]["rpo_s"].as_f64(), Some(rpo), "{stack:#}");
    drop(archive);
}

/// The value of the series that starts with `name{labels}`.
fn value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {series}: {metrics}"))
}

/// The live exposure follows the recovery report's rule (issue 21 C14): the
/// stack's is the worst of its members' except those declared stateless (a
/// member whose content changes only by deploy is given apart).
#[test]
fn the_live_exposure_leaves_stateless_members_out_as_a_recovery_does() {
    let t = tempdir().unwrap();
    let w = t.path();
    for d in ["data/etc", "data/docs"] {
        std::fs::create_dir_all(w.join(d)).unwrap();
        std::fs::write(w.join(d).join("f.txt"), d).unwrap();
    }
    std::fs::write(
        w.join("lifeboat.toml"),
        format!(
            r#"{sites}[resource.etc]
kind = "files"
site = "primary"
paths = ["{w}/data/etc"]
[resource.docs]
kind = "files"
site = "primary"
stateless = true
paths = ["{w}/data/docs"]
[stack.t]
members = ["etc", "docs"]
"#,
            sites = two_sites(w, "dr"),
            w = w.display()
        ),
    )
    .unwrap();
    let c = Cli::new(bin(), &w.join("dr")).with_workdir(w);
    c.ok(&["apply", "--auto-approve"]);
    let backup = |name: &str| {
        let path = w.join("data").join(name);
        c.ok(&[
            "backup",
            "files",
            path.to_str().unwrap(),
            "--resource",
            name,
        ]);
    };
    // The stateless member's point is the older by 3 s.
    backup("docs");
    std::thread::sleep(Duration::from_secs(3));
    backup("etc");
    let m = Serve::start(&c).metrics(&w.join("state/api-token"));
    let member = |n: &str| {
        value(
            &m,
            &format!(
                "lifeboat_member_rpo_exposure_seconds{{stack=\"t\",site=\"secondary\",member=\"{n}\"}}"
            ),
        )
    };
    let stack = value(
        &m,
        "lifeboat_stack_rpo_exposure_seconds{stack=\"t\",site=\"secondary\"}",
    );
    let (etc, docs) = (member("etc"), member("docs"));
    assert!(docs > etc, "docs {docs} s, etc {etc} s");
    // The stack is as exposed as `etc`, not as the stateless `docs`.
    assert_eq!(stack, etc, "stack {stack} s, etc {etc} s, docs {docs} s");
}
