//! Failback: a full round trip primary → secondary → primary, each site
//! protected by the daemon from the file.
//!
//! The Unishop stack runs in the primary under `lifeboat serve` (binlog
//! archive into `main` followed into `dr`, the bucket replicated into the
//! secondary, the hourly plan copying to `dr`). The primary is lost; the
//! stack is recovered into the secondary, which takes writes. The file is
//! rewritten with the sites' roles swapped and applied: the recovery's
//! interim archive is handed to the daemon, the primary's vault is made
//! again, the daemon archives the new primary into `dr` and copies it into
//! `main`. Then a planned switchover brings the stack home with nothing lost:
//! every commit of all three periods is in the primary's database.

mod stack_fixture;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lifeboat_testkit::load::{LoadWriter, Op, expected_state, parse_state, state_diff};
use lifeboat_testkit::mariadb::free_port;
use lifeboat_testkit::procs::{Bg, alive};
use lifeboat_testkit::{Cli, tempdir};
use stack_fixture::{
    DB_PASSWORD, destroy_site, root_url, shop_host, sql, stack_password, two_site_world, two_sites,
    wait_until_held,
};

const BIN: &str = env!("CARGO_BIN_EXE_lifeboat");

/// Who is primary, in one site's file.
struct Roles<'a> {
    home: &'a str,
    away: &'a str,
    dsn: String,
    /// The file with the database's root password (the recovered stack's own).
    password_file: String,
    bucket: String,
    replica: String,
}

struct World {
    t: tempfile::TempDir,
    p: PathBuf,
    s: PathBuf,
    c: Cli,
    dr: Cli,
}

impl World {
    fn config(&self, r: &Roles) -> String {
        let (w, p, s) = (self.t.path(), &self.p, &self.s);
        let host = shop_host(&w.join("app/opt/unishop"), Some(r.home));
        let (av, cv) = match r.home {
            "primary" => ("main", "dr"),
            _ => ("dr", "main"),
        };
        format!(
            r#"{sites}[resource.shop-db]
kind = "mysql"
site = "{home}"
dsn = "{dsn}"
password_file = "{pf}"
archive = {{ vault = "{av}", copy_to = ["{cv}"] }}
[resource.shop-assets]
kind = "bucket"
site = "{home}"
stateless = true
location = "{bucket}"
{host}[plan.hourly]
resources = ["shop-db", "shop-assets", "shop-host"]
schedule = "0 0 1 1 *"
vault = "{av}"
copy = [{{ vault = "{cv}" }}]
[replication.assets]
from = "shop-assets"
to = "{replica}"
[stack.unishop]
members = ["shop-db", "shop-assets", "shop-host"]
objectives = {{ rpo = "30s", rto = "2m" }}
"#,
            sites = two_sites(w, p, s),
            home = r.home,
            dsn = r.dsn,
            pf = r.password_file,
            bucket = r.bucket,
            replica = r.replica,
        )
    }

    fn write(&self, r: &Roles) {
        assert_ne!(r.home, r.away);
        std::fs::write(self.t.path().join("lifeboat.toml"), self.config(r)).unwrap();
    }

    fn serve(&self, name: &str) -> Bg {
        Bg(self
            .c
            .command(&["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.t.path().join(name)).unwrap())
            .spawn()
            .unwrap())
    }

    /// Runs the load against the database on `port` (root with `password`) for a while.
    fn load(&self, port: u16, password: &str, base: i64) -> (Vec<Op>, DateTime<Utc>) {
        let w = LoadWriter::start_as(
            &root_url(port, password),
            "shop.load_rows",
            Duration::from_millis(5),
            base,
        );
        std::thread::sleep(Duration::from_millis(1500));
        let (ops, err) = w.stop();
        assert!(err.is_none(), "{err:?}");
        let last = ops.last().unwrap().committed.into();
        (ops, last)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for site in ["primary", "secondary"] {
            let _ = self
                .c
                .run(&["stack", "down", "--stack", "unishop", "--site", site]);
        }
    }
}

/// Where the stack in the site at `root` keeps its database's root password
/// (what the file names once that database is the file's own).
fn secrets(root: &std::path::Path) -> String {
    root.join("stacks/unishop/secrets/shop-db.password")
        .display()
        .to_string()
}

fn port_of(r: &serde_json::Value) -> u16 {
    r["outputs"]["shop-db.port"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn a_round_trip_primary_to_secondary_and_back_loses_nothing_the_secondary_held() {
    let t = tempdir().unwrap();
    let w = t.path().to_path_buf();
    let (p, s, c, dr) = two_site_world(&w, BIN);
    let world = World { t, p, s, c, dr };
    let (c, p, s) = (&world.c, &world.p, &world.s);

    // 1. The primary, protected by the daemon.
    let port = free_port();
    world.write(&Roles {
        home: "primary",
        away: "secondary",
        dsn: format!("mysql://root@127.0.0.1:{port}"),
        password_file: world.t.path().join("db.pass").display().to_string(),
        bucket: format!("file://{}/buckets/shop-assets", p.display()),
        replica: format!("file://{}/buckets/shop-assets", s.display()),
    });
    c.ok(&["apply", "--auto-approve"]);
    c.ok(&["stack", "up", "--stack", "unishop", "--site", "primary"]);
    sql(&p.join("mysql/shop-db/mysqld.sock"), "CREATE DATABASE shop");
    let serve = world.serve("serve-1.log");
    c.ok(&["jobs", "run", "--plan", "hourly"]);
    let (mut ops, last) = world.load(port, DB_PASSWORD, 0);
    wait_until_held(&world.dr, last, "the secondary's vault");

    // 2. Disaster: the daemon and every process of the primary killed, its
    //    directory (its vault too) deleted.
    drop(serve);
    destroy_site(p);

    // 3. Failover into the secondary; it takes writes.
    let r = c.json(&["recover", "--stack", "unishop", "--to", "secondary"]);
    let interim = r["protection"][0]["archive_pid"].as_i64().unwrap();
    assert!(alive(interim), "{r:#}");
    let port2 = port_of(&r);
    let pw2 = stack_password(s, "shop-db");
    let (more, last) = world.load(port2, &pw2, 1_000_000);
    ops.extend(more);

    // 4. The roles swapped in the file and applied: the interim archive is
    //    handed to the daemon, the primary's vault is made again.
    world.write(&Roles {
        home: "secondary",
        away: "primary",
        dsn: r["outputs"]["shop-db.dsn"].as_str().unwrap().to_string(),
        password_file: secrets(s),
        bucket: r["outputs"]["shop-assets.location"]
            .as_str()
            .unwrap()
            .to_string(),
        replica: format!("file://{}/buckets/shop-assets", p.display()),
    });
    let a = c.json(&["apply", "--auto-approve"]);
    assert_eq!(a["handed_over"][0]["member"], "shop-db", "{a:#}");
    assert_eq!(a["handed_over"][0]["site"], "secondary");
    assert_eq!(a["handed_over"][0]["pid"].as_i64(), Some(interim));
    assert!(!alive(interim), "the interim archive still runs");
    assert!(
        a["initialised"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "main"),
        "{a:#}"
    );
    // The daemon protects the new primary: its archive into `dr` (resuming
    // where the interim one stopped), followed into `main`; the bucket
    // replicated back; the plan's points copied to `main`.
    let _serve = world.serve("serve-2.log");
    c.ok(&["jobs", "run", "--plan", "hourly"]);
    wait_until_held(c, last, "the returned primary's vault");
    let (more, _) = world.load(port2, &pw2, 2_000_000);
    ops.extend(more);

    // 5. Home again: a planned switchover loses nothing.
    let back = c.json(&[
        "recover",
        "--stack",
        "unishop",
        "--to",
        "primary",
        "--planned",
    ]);
    assert_eq!(back["site"], "primary");
    let db = back["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["member"] == "shop-db")
        .unwrap();
    assert_eq!(db["vault"], "main", "{db:#}");
    assert!(back["rpo_s"].as_f64().unwrap() < 0.001, "{back:#}");
    let got = parse_state(&sql(
        &p.join("mysql/shop-db/mysqld.sock"),
        "SELECT id, val FROM shop.load_rows ORDER BY id",
    ));
    let expected = expected_state(&ops, |_| true);
    assert!(got == expected, "{:?}", state_diff(&expected, &got));
    let url = back["outputs"]["shop-host.url"].as_str().unwrap();
    assert_eq!(
        lifeboat_instance::supervise::http_status(&format!("{url}/health"), Duration::from_secs(5)),
        Ok(200)
    );
    assert!(
        p.join("buckets/shop-assets/index.html").is_file(),
        "the bucket came home"
    );
    // The daemon does not start the old primary's archive again (the
    // switchover stopped it; its site is marked switched over).
    let log = world.t.path().join("serve-2.log");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("archive:shop-db: not started: its site was switched over")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon restarted the old primary's archive: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // 6. The original roles again, applied: the primary's interim archive is
    //    handed to the daemon in turn.
    world.write(&Roles {
        home: "primary",
        away: "secondary",
        dsn: back["outputs"]["shop-db.dsn"].as_str().unwrap().to_string(),
        password_file: secrets(p),
        bucket: back["outputs"]["shop-assets.location"]
            .as_str()
            .unwrap()
            .to_string(),
        replica: format!("file://{}/buckets/shop-assets", s.display()),
    });
    let a = c.json(&["apply", "--auto-approve"]);
    assert_eq!(a["handed_over"][0]["site"], "primary", "{a:#}");
    let _ = &world.dr;
}
