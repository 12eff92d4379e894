//! The daemon end to end over two sites (issue 12, item 6): a directory
//! vault and an S3 vault on moto; files, mysql (a real mariadbd with its
//! binlog archive on) and bucket resources (replicated too) in a plan every
//! 10 seconds with a copy to the second site and retention. The daemon makes
//! points, copies them, keeps the archive running and follows it into the
//! second site; it is killed with SIGKILL
//! while a run is held before its point; after a restart the history shows
//! the interrupted job, the next run succeeds, and both vaults check clean.

mod control_fixture;

use std::time::{Duration, Instant};

use control_fixture::{Daemon, TwoSites, bin, jobs, point_kinds};
use lifeboat_testkit::{Cli, tempdir};
use serde_json::Value;

const T: Duration = Duration::from_secs(180);

/// The vault's `resource:kind`s, each once.
fn kinds(v: &Cli) -> Vec<String> {
    let mut k = point_kinds(v);
    k.sort();
    k.dedup();
    k
}

fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + T;
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {T:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_daemon_protects_two_sites_survives_sigkill_mid_job_and_both_vaults_check_clean() {
    let d = tempdir().unwrap();
    let w = d.path();
    let sites = TwoSites::start(w);
    let text = format!(
        r#"{}
[plan.often]
resources = ["shop-db", "shop-files", "shop-assets"]
schedule = "*/10 * * * * *"
vault = "main"
retention = {{ keep_last = 3 }}
copy = [{{ vault = "dr", retention = {{ keep_last = 2 }} }}]

[replication.assets-dr]
from = "shop-assets"
to = "file://{w}/assets-dr"

[daemon]
retention_schedule = "*/20 * * * * *"
"#,
        sites.toml(w, "archive = { copy_to = [\"dr\"] }"),
        w = w.display()
    );
    std::fs::write(w.join("lifeboat.toml"), &text).unwrap();
    let c = sites.cli(w);
    c.ok(&["apply", "--auto-approve"]);
    let mut main = Cli::new(bin(), &w.join("main"));
    main.env = c.env.clone();
    let mut dr = Cli::at(bin(), &sites.dr);
    dr.env = c.env.clone();
    dr.password = "dr password for tests".into();

    // 1. Points are made (a catch-up at start: the vaults are empty) and copied;
    //    the archive and the replication run.
    let mut dm = Daemon::start(&c, &["--grace", "5s"]);
    let ready = dm.wait_event(T, "ready");
    assert_eq!(ready["caught_up"], serde_json::json!(["often"]), "{ready}");
    let end = dm.wait_for(T, "a good run", |v| {
        v["event"] == "run-ended" && v["ok"] == true
    });
    assert_eq!(end["jobs"].as_array().unwrap().len(), 3, "{end}");
    for k in ["shop-db:mysql", "shop-files:files", "shop-assets:bucket"] {
        assert!(kinds(&main).contains(&k.to_string()), "{:?}", kinds(&main));
        assert!(
            kinds(&dr).contains(&k.to_string()),
            "copied: {:?}",
            kinds(&dr)
        );
    }
    sites
        .db
        .sql("INSERT INTO shop.orders VALUES (3, 30), (4, 40);");
    until("a binlog archive point", || {
        kinds(&main).contains(&"shop-db:mysql-binlog".to_string())
    });
    until("the archive copied to the second site", || {
        kinds(&dr).contains(&"shop-db:mysql-binlog".to_string())
    });
    until("the bucket replicated", || {
        w.join("assets-dr/data/text.log").exists()
    });
    let ret = dm.wait_event(T, "retention");
    assert_ne!(ret["status"], "failed", "{ret}");
    let (st, _) = dm.stop();
    assert!(st.success());

    // 2. Held before a point is written, the daemon is killed with SIGKILL.
    let pause = w.join("pause");
    std::fs::create_dir_all(&pause).unwrap();
    let mut held = c.clone();
    held.env.push((
        "LIFEBOAT_TEST_PAUSE".into(),
        format!("before-point:{}", pause.display()),
    ));
    let mut dm = Daemon::start(&held, &["--grace", "5s"]);
    dm.wait_event(T, "run-started");
    until("a backup held before its point", || {
        pause.join("before-point.reached").exists()
            && jobs(&c, &["--status", "running"])
                .iter()
                .any(|j| j["kind"] == "backup")
    });
    let running: Vec<Value> = jobs(&c, &["--status", "running"]);
    dm.signal(rustix::process::Signal::KILL);
    dm.child.wait().unwrap();
    drop(dm);
    // Its children died with it (PR_SET_PDEATHSIG).
    for j in &running {
        let pid = j["pid"].as_u64().unwrap();
        until(&format!("process {pid} gone"), || {
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z "))
        });
    }

    // 3. Restarted: the interrupted job is in the history; the next run succeeds.
    let mut dm = Daemon::start(&c, &["--grace", "5s"]);
    dm.wait_for(T, "a good run after the restart", |v| {
        v["event"] == "run-ended" && v["ok"] == true
    });
    let (st, _) = dm.stop();
    assert!(st.success());
    let all = jobs(&c, &[]);
    let interrupted: Vec<&Value> = all
        .iter()
        .filter(|j| j["status"] == "interrupted")
        .collect();
    assert!(
        interrupted.iter().any(|j| j["kind"] == "backup"),
        "{all:#?}"
    );
    assert!(
        interrupted.iter().all(|j| j["error"]
            .as_str()
            .unwrap()
            .contains("ended before the job did")),
        "{interrupted:#?}"
    );
    let newest_backup = all
        .iter()
        .find(|j| j["kind"] == "backup" && j["status"] != "skipped" && j["status"] != "cancelled")
        .unwrap();
    assert_eq!(newest_backup["status"], "succeeded", "{newest_backup}");
    assert!(
        newest_backup["id"].as_i64() > interrupted.iter().map(|j| j["id"].as_i64()).max().unwrap(),
        "the success came after the interruption"
    );
    main.ok(&["vault", "check", "--read-data"]);
    dr.ok(&["vault", "check", "--read-data"]);
}
