//! Two sites from one file: a directory vault in the primary and an S3 vault
//! (moto) in the secondary; files, mysql (a real `mariadbd`, its password
//! from an environment variable the file names) and bucket resources in an
//! hourly plan with a copy to the secondary. `apply` initialises both vaults,
//! `jobs run` backs all three up and copies them, `report` finds the copies, and the
//! file comes back from the S3 vault alone.

mod control_fixture;

use control_fixture::{TwoSites, bin, point_kinds};
use lifeboat_testkit::{Cli, tempdir};

#[test]
fn two_sites_apply_run_report_and_restore_the_file_from_s3() {
    let d = tempdir().unwrap();
    let w = d.path();
    let sites = TwoSites::start(w);
    let dr = sites.dr.clone();
    let text = format!(
        r#"{}
[plan.hourly]
resources = ["shop-db", "shop-files", "shop-assets"]
schedule = "0 * * * *"
vault = "main"
retention = {{ keep_hourly = 24, keep_daily = 7 }}
copy = [{{ vault = "dr", retention = {{ keep_daily = 30 }} }}]
"#,
        sites.toml(w, "")
    );
    std::fs::write(w.join("lifeboat.toml"), &text).unwrap();
    let c = sites.cli(w);

    c.ok(&["validate"]);
    let rep = c.json(&["apply", "--auto-approve"]);
    assert_eq!(
        rep["initialised"],
        serde_json::json!(["dr", "main"]),
        "{rep}"
    );
    let run = c.json(&["jobs", "run", "--plan", "hourly"]);
    for j in run.as_array().unwrap() {
        assert_eq!(j["status"], "succeeded", "{run}");
    }
    let mut main = Cli::new(bin(), &w.join("main"));
    main.env = c.env.clone();
    let kinds = point_kinds(&main);
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    for k in ["shop-db:mysql", "shop-files:files", "shop-assets:bucket"] {
        assert!(kinds.contains(&k.to_string()), "{kinds:?}");
    }
    main.ok(&["vault", "check", "--read-data"]);

    // The plan's copy action copied each point into the secondary's vault.
    let o = c.run(&["report", "--json"]);
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for r in rep["resources"].as_array().unwrap() {
        let ctl = |n: &str| {
            r["controls"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == n)
                .unwrap()
                .clone()
        };
        assert_eq!(ctl("rpo:hourly")["ok"], true, "{r}");
        assert_eq!(ctl("copy:hourly:dr")["ok"], true, "{r}");
    }

    let db_report = rep["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "shop-db")
        .unwrap();
    let window = db_report["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "restorable-window")
        .unwrap();
    assert_eq!(window["ok"], true, "{window}");
    assert!(
        window["detail"]
            .as_str()
            .unwrap()
            .starts_with("1 window(s); the newest from "),
        "{window}"
    );

    // A wrong database password is a failed job, with the server's error.
    let o = c
        .command(&[
            "jobs",
            "run",
            "--plan",
            "hourly",
            "--resource",
            "shop-db",
            "--json",
        ])
        .env("SHOP_DB_PASSWORD", "wrong")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let failed = c.json(&["jobs", "list", "--status", "failed"]);
    assert!(
        failed[0]["error"]
            .as_str()
            .unwrap()
            .contains("ccess denied"),
        "{failed}"
    );

    // Everything but the S3 vault and its password is lost: the file comes back.
    std::fs::remove_file(w.join("lifeboat.toml")).unwrap();
    std::fs::remove_dir_all(w.join("state")).unwrap();
    let mut from_dr = Cli::at(bin(), &dr);
    from_dr.env = c.env.clone();
    from_dr.password = "dr password for tests".into();
    let back = w.join("back.toml");
    from_dr.ok(&["config", "restore", "--to", back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), text);
}
