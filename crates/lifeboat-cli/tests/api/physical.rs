//! A database declared `mode = "physical"` in the file: a plan run twice
//! takes two `mysql-physical` points (the job's log says the mode), which
//! `points list` and the API show with their mode and, for an incremental
//! one, its base; `/kinds` knows the kind and its command; a physical
//! point's contents are its files.

use lifeboat_testkit::mariadb::MariaDb;
use lifeboat_testkit::tempdir;

use crate::support::configure;

#[test]
fn a_physical_resource_takes_physical_points_that_every_surface_shows() {
    let d = tempdir().unwrap();
    let w = d.path();
    let db = MariaDb::start();
    db.sql(
        "CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY, total INT) ENGINE=InnoDB;
         INSERT INTO shop.orders VALUES (1, 10);",
    );
    let s = configure(
        w,
        &format!(
            "[vault.main]\nlocation = \"{}/main\"\n[resource.shop-db]\ndsn = \"{}\"\n\
             mode = \"physical\"\nfull_every = \"1h\"\n\
             [plan.hourly]\nresources = [\"shop-db\"]\nschedule = \"0 * * * *\"\n",
            w.display(),
            db.root_dsn()
        ),
        "",
    );
    let mut runs = Vec::new();
    for total in [20, 30] {
        let run = s.cli.json(&["jobs", "run", "--plan", "hourly"]);
        assert_eq!(run[0]["status"], "succeeded", "{run}");
        runs.push(run[0].clone());
        db.sql(&format!(
            "INSERT INTO shop.orders VALUES ({total}, {total});"
        ));
    }
    let list = s.cli.json(&["points", "list", "--resource", "shop-db"]);
    let points = list.as_array().unwrap();
    let kinds: Vec<&str> = points.iter().map(|p| p["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["mysql-physical", "mysql-physical"], "{list}");
    let (first, second) = (&points[0], &points[1]);
    assert_eq!(
        (&first["mode"], &second["mode"]),
        (&"physical".into(), &"physical".into())
    );
    assert_eq!(
        first["base"],
        serde_json::Value::Null,
        "the first is full: {first}"
    );
    // The second is incremental on the first when the backup chains it,
    // and says so everywhere; a full one has no base.
    let base = second["base"].as_str();
    assert!(
        base.is_none_or(|b| Some(b) == first["id"].as_str()),
        "{second}"
    );
    let text = s.cli.ok(&["points", "list"]);
    let short = |p: &serde_json::Value| p["id"].as_str().unwrap()[..8].to_string();
    let line = text
        .lines()
        .find(|l| l.starts_with(&short(second)))
        .unwrap();
    match base {
        Some(_) => assert!(
            line.contains(&format!("[physical, incremental on {}]", short(first))),
            "{text}"
        ),
        None => assert!(line.contains("[physical]"), "{text}"),
    }
    // The job's log names the mode.
    for (run, point) in runs.iter().zip([first, second]) {
        assert_eq!(run["point"], point["id"]);
        let job = s.cli.json(&["jobs", "show", &run["job"].to_string()]);
        let log = job["log"].as_str().unwrap();
        let want = match point["base"].as_str() {
            Some(b) => format!("incremental on {}", &b[..8]),
            None => "full".to_string(),
        };
        assert!(
            log.contains("note: mode physical (mariadb-backup") && log.contains(&want),
            "{log}"
        );
    }

    let srv = s.serve(&[], None);
    let api = srv.json("/api/v1/resources/shop-db/points");
    let api = api["points"].as_array().unwrap();
    assert_eq!(api.len(), 2, "{api:?}");
    // Newest first.
    assert_eq!(
        (&api[0]["id"], &api[0]["mode"], &api[0]["base"]),
        (&second["id"], &"physical".into(), &second["base"])
    );
    assert_eq!(
        (&api[1]["mode"], &api[1]["base"]),
        (&"physical".into(), &serde_json::Value::Null)
    );
    let one = srv.json(&format!(
        "/api/v1/points/main/{}",
        second["id"].as_str().unwrap()
    ));
    assert_eq!(
        (&one["mode"], &one["base"]),
        (&"physical".into(), &second["base"])
    );
    let kinds = srv.json("/api/v1/kinds");
    let db_kind = kinds
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "mysql")
        .unwrap();
    assert!(
        db_kind["point_kinds"]
            .as_array()
            .unwrap()
            .contains(&"mysql-physical".into()),
        "{db_kind}"
    );
    assert_eq!(
        db_kind["commands"]["mysql-physical"],
        "lifeboat restore mysql POINT --physical --datadir DIR"
    );
    assert_eq!(db_kind["commands"]["mysql"], "lifeboat restore mysql");
    // Its files as the backup copied them: the first level, then a directory.
    let id = first["id"].as_str().unwrap();
    let top = srv.json(&format!("/api/v1/points/main/{id}/contents"));
    assert_eq!(top["listing"], "backup", "{top}");
    let entry = |l: &serde_json::Value, name: &str| {
        l["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["kind"].clone())
    };
    assert_eq!(entry(&top, "shop"), Some("dir".into()), "{top}");
    assert_eq!(entry(&top, "ibdata1"), Some("file".into()), "{top}");
    let shop = srv.json(&format!("/api/v1/points/main/{id}/contents?path=shop"));
    assert_eq!(entry(&shop, "orders.frm"), Some("file".into()), "{shop}");
    assert_eq!(
        srv.get(
            &format!("/api/v1/points/main/{id}/contents?path=nothing"),
            Some(&srv.token)
        )
        .0,
        404
    );
}
