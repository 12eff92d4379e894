//! Two sites from one file: a directory vault in the primary and an S3 vault
//! (moto) in the secondary; files, mysql (a real `mariadbd`, its password
//! from an environment variable the file names) and bucket resources in an
//! hourly plan with a copy to the secondary. `apply` initialises both vaults,
//! `jobs run` backs all three up and copies them, `report` finds the copies, and the
//! file comes back from the S3 vault alone.

use lifeboat_testkit::mariadb::MariaDb;
use lifeboat_testkit::s3::{CREDENTIALS, S3Server};
use lifeboat_testkit::{Cli, make_sample_tree, tempdir};

fn bin() -> String {
    std::env::var("LIFEBOAT_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_lifeboat").into())
}

#[test]
fn two_sites_apply_run_report_and_restore_the_file_from_s3() {
    let d = tempdir().unwrap();
    let w = d.path();
    let s3 = S3Server::start();
    s3.create_bucket("dr-vault");
    let db = MariaDb::start();
    db.sql("CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY, total INT); INSERT INTO shop.orders VALUES (1, 10), (2, 20);");
    db.sql(
        "CREATE USER 'backup'@'%' IDENTIFIED BY 'db-secret-1'; GRANT ALL ON *.* TO 'backup'@'%';",
    );
    make_sample_tree(&w.join("app"), 5);
    make_sample_tree(&w.join("bucket"), 6);
    let dr = s3.url("dr-vault", "lifeboat");
    let text = format!(
        r#"[site.primary]
root = "{w}"
[site.secondary]
endpoint = "{endpoint}"

[vault.main]
site = "primary"
location = "file://{w}/main"
[vault.dr]
site = "secondary"
location = "{dr}"
password_env = "DR_PASSWORD"

[resource.shop-db]
site = "primary"
dsn = "mysql://backup@127.0.0.1:{port}"
password_env = "SHOP_DB_PASSWORD"
[resource.shop-files]
paths = ["{w}/app"]
[resource.shop-assets]
kind = "bucket"
location = "file://{w}/bucket"

[plan.hourly]
resources = ["shop-db", "shop-files", "shop-assets"]
schedule = "0 * * * *"
vault = "main"
retention = {{ keep_hourly = 24, keep_daily = 7 }}
copy = [{{ vault = "dr", retention = {{ keep_daily = 30 }} }}]
"#,
        w = w.display(),
        endpoint = s3.endpoint(),
        port = db.port,
    );
    std::fs::write(w.join("lifeboat.toml"), &text).unwrap();
    let mut c = Cli::new(bin(), &w.join("unused"));
    c.env = CREDENTIALS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    c.env.push((
        "LIFEBOAT_STATE".into(),
        w.join("state").display().to_string(),
    ));
    c.env.push((
        "LIFEBOAT_CONFIG".into(),
        w.join("lifeboat.toml").display().to_string(),
    ));
    c.env
        .push(("DR_PASSWORD".into(), "dr password for tests".into()));
    c.env
        .push(("SHOP_DB_PASSWORD".into(), "db-secret-1".into()));

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
    let kinds: Vec<String> = main
        .json(&["points", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}:{}",
                p["resource"].as_str().unwrap(),
                p["kind"].as_str().unwrap()
            )
        })
        .collect();
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
