//! `lifeboat recover` and `lifeboat drill`: the Unishop stack protected at the
//! primary site — a real `mariadbd` with its binlog archive followed into the
//! secondary's vault, the frontend bucket replicated there, the shop's host
//! backed up and copied. Lost (every process killed, the site's directory
//! deleted) and recovered into the secondary from what the secondary holds;
//! recovered to a time before; drilled while the primary keeps running.

mod stack_fixture;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lifeboat_testkit::archive::{start_archive, wait_restorable};
use lifeboat_testkit::load::{LoadWriter, Op, expected_state, parse_state, state_diff};
use lifeboat_testkit::mariadb::free_port;
use lifeboat_testkit::procs::{Bg, alive};
use lifeboat_testkit::serve::Serve;
use lifeboat_testkit::{Cli, tempdir};
use stack_fixture::{
    DB_PASSWORD, destroy_site, restorable_to, root_url, shop_host, shop_host_spec, sql,
    stack_password, tcp_root_login, two_site_world, two_sites,
};

const BIN: &str = env!("CARGO_BIN_EXE_lifeboat");

fn unishop_bin() -> PathBuf {
    lifeboat_testkit::procs::unishop_bin(BIN)
}

/// The protected primary: the stack up, the load writing, the archive and
/// its copy following, the bucket replicated once, a snapshot, a bucket
/// point and the host copied to the secondary.
struct Primary {
    t: tempfile::TempDir,
    c: Cli,
    dr: Cli,
    p: PathBuf,
    s: PathBuf,
    writer: Option<LoadWriter>,
    bg: Vec<Bg>,
    port: u16,
}

impl Drop for Primary {
    fn drop(&mut self) {
        self.bg.clear();
        for site in ["primary", "secondary"] {
            let _ = self
                .c
                .run(&["stack", "down", "--stack", "unishop", "--site", site]);
        }
    }
}

impl Primary {
    fn config(&self, port: u16, check: &str, rpo: &str) -> String {
        let (w, p, s) = (self.t.path(), &self.p, &self.s);
        let host = shop_host(&w.join("app/opt/unishop"), Some("primary"));
        format!(
            r#"{sites}[resource.shop-db]
kind = "mysql"
site = "primary"
dsn = "mysql://root@127.0.0.1:{port}"
password_file = "{w}/db.pass"
[resource.shop-assets]
kind = "bucket"
site = "primary"
stateless = true
location = "file://{p}/buckets/shop-assets"
{host}[replication.assets]
from = "shop-assets"
to = "file://{s}/buckets/shop-assets-replica"
[stack.unishop]
members = ["shop-db", "shop-assets", "shop-host"]
objectives = {{ rpo = "{rpo}", rto = "2m" }}
check = "{check}"
"#,
            sites = two_sites(w, p, s),
            p = p.display(),
            s = s.display(),
            w = w.display(),
        )
    }

    fn protected() -> Primary {
        Primary::protected_with(&[])
    }

    /// As [`Primary::protected`], the database's point taken with `backup
    /// mysql` and `how` (`--physical`).
    fn protected_with(how: &[&str]) -> Primary {
        let t = tempdir().unwrap();
        let w = t.path().to_path_buf();
        let app = w.join("app/opt/unishop");
        let port = free_port();
        let (p, s, c, dr) = two_site_world(&w, BIN);
        let mut me = Primary {
            t,
            c,
            dr,
            p,
            s,
            writer: None,
            bg: Vec::new(),
            port,
        };
        // The check a drill runs: the recovered database answers on its own port.
        let check = "mariadb --no-defaults -h127.0.0.1 -P${shop-db.port} -uroot -N -e 'SELECT COUNT(*) FROM shop.load_rows'";
        std::fs::write(w.join("lifeboat.toml"), me.config(port, check, "30s")).unwrap();
        let (c, dr, p, s) = (&me.c, &me.dr, &me.p, &me.s);

        c.ok(&["apply", "--auto-approve"]);
        c.ok(&["stack", "up", "--stack", "unishop", "--site", "primary"]);
        sql(&p.join("mysql/shop-db/mysqld.sock"), "CREATE DATABASE shop");
        let dsn = format!("mysql://root@127.0.0.1:{port}");
        let to_dr = |args: &[&str]| {
            let mut cmd = c.command(args);
            cmd.env("LIFEBOAT_TO_PASSWORD", &dr.password);
            cmd
        };
        me.bg.push(start_archive(
            c,
            &dsn,
            &w,
            &["--resource", "shop-db", "--seal-interval", "1s"],
        ));
        me.writer = Some(LoadWriter::start_as(
            &root_url(port, DB_PASSWORD),
            "shop.load_rows",
            Duration::from_millis(5),
            0,
        ));
        std::thread::sleep(Duration::from_millis(800));
        c.ok(&[
            &["backup", "mysql", "--dsn", &dsn, "--resource", "shop-db"],
            how,
        ]
        .concat());
        let bucket = format!("file://{}", p.join("buckets/shop-assets").display());
        c.ok(&[
            "backup",
            "bucket",
            "--bucket",
            &bucket,
            "--resource",
            "shop-assets",
        ]);
        let spec = w.join("shop-host.toml");
        std::fs::write(&spec, shop_host_spec(&app)).unwrap();
        c.ok(&["backup", "instance", "--spec", spec.to_str().unwrap()]);
        let o = to_dr(&["copy", "--to", &dr.vault, "--all"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        me.bg.push(Bg(to_dr(&[
            "copy",
            "--to",
            &dr.vault,
            "--follow",
            "--interval",
            "200ms",
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(w.join("follow.err")).unwrap())
        .spawn()
        .unwrap()));
        let replica = format!("file://{}", s.join("buckets/shop-assets-replica").display());
        let o = c
            .command(&[
                "replicate",
                "--from",
                &bucket,
                "--to",
                &replica,
                "--existing",
                "--once",
                "--state",
            ])
            .arg(w.join("replication"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        me
    }

    /// Stops the load and waits until the secondary holds its last commit.
    fn stop_load(&mut self) -> (Vec<Op>, DateTime<Utc>) {
        let (ops, err) = self.writer.take().unwrap().stop();
        assert!(err.is_none(), "{err:?}");
        let last: DateTime<Utc> = ops.last().unwrap().committed.into();
        wait_restorable(
            &self.dr,
            Some("shop-db"),
            last,
            Duration::from_secs(60),
            || "the secondary never held the last commit".into(),
        );
        (ops, last)
    }

    /// Ends the load running, then a quiet whole second — the moment a
    /// recovery `--at` reaches exactly (binlog stops are second-granular)
    /// —, then a second run of it for `second`: every commit, that moment,
    /// and the last commit (which the secondary holds).
    fn two_runs(&mut self, second: Duration) -> (Vec<Op>, DateTime<Utc>, DateTime<Utc>) {
        let (mut ops, first_last) = self.stop_load();
        let at = DateTime::from_timestamp(first_last.timestamp() + 1, 0).unwrap();
        while Utc::now() < at + chrono::Duration::milliseconds(300) {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.writer = Some(LoadWriter::start_as(
            &root_url(self.port, DB_PASSWORD),
            "shop.load_rows",
            Duration::from_millis(5),
            1_000_000,
        ));
        std::thread::sleep(second);
        let (more, last) = self.stop_load();
        ops.extend(more);
        (ops, at, last)
    }

    /// Disaster: every process of the primary killed, its directory deleted.
    fn destroy(&mut self) -> DateTime<Utc> {
        let failed_at = Utc::now();
        self.bg.clear();
        destroy_site(&self.p);
        failed_at
    }
}

#[test]
fn the_unishop_stack_is_recovered_into_the_secondary_with_every_commit_the_secondary_held() {
    let mut pr = Primary::protected();
    std::thread::sleep(Duration::from_millis(1500));
    let (ops, at, last) = pr.two_runs(Duration::from_millis(2000));
    let failed_at = pr.destroy();
    let (c, s) = (&pr.c, &pr.s);

    // Recovery into the secondary, from what it holds alone.
    let r = c.json(&[
        "recover",
        "--stack",
        "unishop",
        "--to",
        "secondary",
        "--failed-at",
        &failed_at.to_rfc3339(),
    ]);
    let src = |m: &str| {
        r["sources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["member"] == m)
            .unwrap()
            .clone()
    };
    assert_eq!(src("shop-db")["from"], "point+binlog", "{r:#}");
    assert_eq!(src("shop-db")["vault"], "dr");
    assert_eq!(src("shop-assets")["from"], "replica", "{r:#}");
    assert_eq!(src("shop-host")["from"], "point");
    let url = r["outputs"]["shop-host.url"].as_str().unwrap().to_string();
    assert_eq!(
        lifeboat_instance::supervise::http_status(&format!("{url}/health"), Duration::from_secs(5)),
        Ok(200)
    );
    // No passwordless root in the recovered server: over TCP neither another
    // local user nor root without the password gets in; root's password is
    // the recovered stack's own (0600), in no report.
    let rport: u16 = r["outputs"]["shop-db.port"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        !tcp_root_login(rport, true, None),
        "another local user is root"
    );
    assert!(
        !tcp_root_login(rport, false, None),
        "root without a password"
    );
    let rpw = stack_password(s, "shop-db");
    assert_ne!(rpw, DB_PASSWORD, "a secret of the recovered stack's own");
    assert!(tcp_root_login(rport, false, Some(&rpw)));
    assert!(!r.to_string().contains(&rpw), "{r:#}");
    // Every commit the secondary held is there.
    let rsock = s.join("mysql/shop-db/mysqld.sock");
    let expected = expected_state(&ops, |_| true);
    let got = parse_state(&sql(
        &rsock,
        "SELECT id, val FROM shop.load_rows ORDER BY id",
    ));
    assert!(got == expected, "{:?}", state_diff(&expected, &got));
    // The report: RPO from the last recovered commit to the failure; RTO measured.
    let newest: DateTime<Utc> = r["newest_data"].as_str().unwrap().parse().unwrap();
    assert!(newest >= last, "newest {newest} < last commit {last}");
    let rpo = r["rpo_s"].as_f64().unwrap();
    let want = (failed_at - newest).num_milliseconds() as f64 / 1000.0;
    assert!((rpo - want.max(0.0)).abs() < 0.01, "rpo {rpo} vs {want}");
    let rto = r["rto_s"].as_f64().unwrap();
    assert!(rto > 0.0 && rto < 120.0, "{r:#}");
    assert_eq!(r["objectives"]["rto_met"], true);
    let steps: Vec<&str> = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["step"].as_str().unwrap())
        .collect();
    assert!(steps.contains(&"replay the binlog archive"), "{steps:?}");
    // Recorded in the job history with the whole report (the console's timeline).
    let j = c.json(&["jobs", "show", &r["job"].to_string()]);
    assert_eq!(
        (&j["kind"], &j["status"]),
        (&"recover".into(), &"succeeded".into()),
        "{j:#}"
    );
    assert_eq!(j["resource"], "unishop");
    assert_eq!(j["report"]["steps"], r["steps"], "{j:#}");
    assert_eq!(j["report"]["rpo_s"], r["rpo_s"]);
    // The recovered stack is a stack of the secondary.
    let st = c.json(&[
        "stack",
        "status",
        "--stack",
        "unishop",
        "--site",
        "secondary",
    ]);
    assert_eq!(st["up"], true, "{st}");
    // Protected at once: a first snapshot in `dr`, its own archive following
    // the new server, whose binlog numbering skips past the old one's.
    let prot = &r["protection"][0];
    assert_eq!(prot["member"], "shop-db", "{r:#}");
    assert_eq!(prot["vault"], "dr");
    let archive_pid = prot["archive_pid"].as_i64().unwrap();
    assert!(alive(archive_pid));
    let from = prot["binlog_from"].as_u64().unwrap();
    assert!(from >= 2);
    let files = sql(&rsock, "SHOW BINARY LOGS");
    assert!(files.starts_with(&format!("binlog.{from:06}")), "{files}");
    sql(
        &rsock,
        "INSERT INTO shop.load_rows (id, val) VALUES (99999999, 1)",
    );
    let written = Utc::now();
    wait_restorable(
        &pr.dr,
        Some("shop-db"),
        written,
        Duration::from_secs(60),
        || format!("the new primary's archive never reached {written}"),
    );
    // A second recovery onto a running stack is refused, naming the fix.
    let o = c.run(&["recover", "--stack", "unishop", "--to", "secondary"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("stack down --stack unishop --site secondary --purge")
    );
    // `stack down` keeps the data; `stack up` brings the recovered stack
    // back as it was: its archive started again into `dr`, the bucket from
    // the replica it used in place (never a new, empty directory).
    let target = ["--stack", "unishop", "--site", "secondary"];
    c.ok(&[&["stack", "down"][..], &target].concat());
    assert!(!alive(archive_pid), "down stops the archive");
    let up = c.json(&[&["stack", "up"][..], &target].concat());
    let member = |n: &str| {
        let members = up["state"]["members"].as_array().unwrap();
        let m = members.iter().find(|m| m[0] == n);
        m.unwrap_or_else(|| panic!("no {n}: {up:#}"))[1].clone()
    };
    let replica = s.join("buckets/shop-assets-replica");
    assert_eq!(
        member("shop-assets")["outputs"]["path"],
        replica.display().to_string(),
        "{up:#}"
    );
    let again = member("shop-db")["archive"]["pid"].as_i64();
    let again = again.unwrap_or_else(|| panic!("no archive again: {up:#}"));
    assert!(alive(again));
    sql(
        &rsock,
        "INSERT INTO shop.load_rows (id, val) VALUES (99999998, 1)",
    );
    let written = Utc::now();
    wait_restorable(
        &pr.dr,
        Some("shop-db"),
        written,
        Duration::from_secs(60),
        || format!("the archive started again never reached {written}"),
    );
    // Purging the recovered stack never removes the replica it used in place.
    c.ok(&[&["stack", "down"][..], &target, &["--purge"]].concat());
    assert!(!alive(again), "down stops the archive");
    assert!(s.join("buckets/shop-assets-replica/index.html").is_file());
    assert!(!s.join("mysql/shop-db").exists());

    // Recovery to a moment before the failure: exactly the commits before it,
    // and the bucket from its point (a replica is as of now).
    let r = c.json(&[
        "recover",
        "--stack",
        "unishop",
        "--to",
        "secondary",
        "--at",
        &at.to_rfc3339(),
    ]);
    assert_eq!(src_of(&r, "shop-assets")["from"], "point", "{r:#}");
    assert_recovered(
        &rsock,
        &ops,
        |o| DateTime::<Utc>::from(o.committed) < at,
        &format!("at {at}"),
    );
}

/// A database whose newest point is physical is recovered from it: the
/// data directory extracted, prepared and rolled forward, the member's
/// server started on it and secured as it starts (the source's accounts
/// came with the files), every commit there, the report saying which path
/// and why; to a moment before, exactly the commits before it.
#[test]
fn a_physical_point_is_recovered_as_the_data_directory_secured_and_rolled_forward() {
    let mut pr = Primary::protected_with(&["--physical"]);
    std::thread::sleep(Duration::from_millis(1500));
    let (ops, at, _) = pr.two_runs(Duration::from_millis(1500));
    pr.destroy();
    let (c, s) = (&pr.c, &pr.s);
    let r = recover_ok(c, s, &[]);
    let db = src_of(&r, "shop-db");
    assert_eq!(db["mode"], "physical", "{r:#}");
    assert!(
        db["why"].as_str().unwrap().starts_with("physical point "),
        "{db}"
    );
    let steps: Vec<(&str, &str)> = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["member"].as_str().unwrap_or(""),
                x["step"].as_str().unwrap(),
            )
        })
        .collect();
    for want in [
        "restore the physical point (extract, prepare)",
        "replay the binlog archive",
        "start the database server on it",
    ] {
        assert!(steps.contains(&("shop-db", want)), "{want}: {steps:?}");
    }
    assert!(
        !steps.contains(&("shop-db", "load the snapshot")),
        "{steps:?}"
    );
    // The replay says what it cost: the binlog's bytes.
    let replay = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["step"] == "replay the binlog archive")
        .unwrap();
    assert!(replay["bytes"].as_u64().unwrap() > 1000, "{replay}");
    let rsock = s.join("mysql/shop-db/mysqld.sock");
    assert_recovered(&rsock, &ops, |_| true, "every commit");
    // The source's root (its password, DB_PASSWORD) came with the files:
    // root has the stack's own password now, nobody gets in without it.
    let rport: u16 = r["outputs"]["shop-db.port"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let rpw = stack_password(s, "shop-db");
    assert_ne!(rpw, DB_PASSWORD);
    assert!(tcp_root_login(rport, false, Some(&rpw)));
    assert!(!tcp_root_login(rport, false, Some(DB_PASSWORD)));
    assert!(!tcp_root_login(rport, false, None));
    assert!(!tcp_root_login(rport, true, None));
    assert!(!s.join("mysql/shop-db/init.sql").exists());
    // To a moment before: exactly the commits before it.
    let target = ["--stack", "unishop", "--site", "secondary"];
    c.ok(&[&["stack", "down"][..], &target, &["--purge"]].concat());
    let r = recover_ok(c, s, &["--at", &at.to_rfc3339()]);
    assert_eq!(src_of(&r, "shop-db")["mode"], "physical", "{r:#}");
    assert_recovered(
        &rsock,
        &ops,
        |o| DateTime::<Utc>::from(o.committed) < at,
        &format!("at {at}"),
    );
}

/// A physical point this host cannot restore (its `mariadb-backup` is not
/// there) gives way to the newest logical snapshot: the recovery goes on
/// the logical path and its report says why.
#[test]
fn a_physical_point_this_host_cannot_restore_gives_way_to_a_logical_one() {
    let mut pr = Primary::protected();
    let dsn = format!("mysql://root@127.0.0.1:{}", pr.port);
    pr.c.ok(&[
        "backup",
        "mysql",
        "--physical",
        "--dsn",
        &dsn,
        "--resource",
        "shop-db",
    ]);
    std::thread::sleep(Duration::from_millis(500));
    let (ops, _) = pr.stop_load();
    pr.destroy();
    let o =
        pr.c.command(&[
            "recover",
            "--stack",
            "unishop",
            "--to",
            "secondary",
            "--json",
        ])
        .env("LIFEBOAT_MARIADB_BACKUP", "/nonexistent/mariadb-backup")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let db = src_of(&r, "shop-db");
    assert_eq!(db["mode"], "logical", "{r:#}");
    let why = db["why"].as_str().unwrap();
    assert!(
        why.starts_with("logical snapshot ")
            && why.contains("not used: this host has no /nonexistent/mariadb-backup"),
        "{why}"
    );
    let got = parse_state(&sql(
        &pr.s.join("mysql/shop-db/mysqld.sock"),
        "SELECT id, val FROM shop.load_rows ORDER BY id",
    ));
    let expected = expected_state(&ops, |_| true);
    assert!(got == expected, "{:?}", state_diff(&expected, &got));
}

/// `recover --stack unishop --to secondary --json EXTRA`, its report; a
/// failure says what the recovered server's own log says.
fn recover_ok(c: &Cli, s: &std::path::Path, extra: &[&str]) -> serde_json::Value {
    let o = c
        .command(&[
            "recover",
            "--stack",
            "unishop",
            "--to",
            "secondary",
            "--json",
        ])
        .args(extra)
        .output()
        .unwrap();
    if !o.status.success() {
        let dir = s.join("mysql/shop-db");
        let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
        let out = std::fs::read_to_string(dir.join("mariadbd.out")).unwrap_or_default();
        let ls = std::process::Command::new("ls")
            .arg("-la")
            .arg(&dir)
            .output()
            .unwrap();
        let ps = std::process::Command::new("sh")
            .args(["-c", "ps -eo pid,ppid,args | grep [m]ariadbd"])
            .output()
            .unwrap();
        panic!(
            "{}\nthe recovered server's log:\n{log}\nits output:\n{out}\n{}\n{}",
            String::from_utf8_lossy(&o.stderr),
            String::from_utf8_lossy(&ls.stdout),
            String::from_utf8_lossy(&ps.stdout)
        );
    }
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The recovered database (on socket `rsock`) holds exactly the commits of
/// `ops` that `keep` keeps (`what` says which, in a failure).
fn assert_recovered(rsock: &std::path::Path, ops: &[Op], keep: impl Fn(&Op) -> bool, what: &str) {
    let expected = expected_state(ops, keep);
    let got = parse_state(&sql(
        rsock,
        "SELECT id, val FROM shop.load_rows ORDER BY id",
    ));
    assert!(got == expected, "{what}: {:?}", state_diff(&expected, &got));
}

fn src_of(r: &serde_json::Value, m: &str) -> serde_json::Value {
    r["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["member"] == m)
        .unwrap()
        .clone()
}

#[test]
fn a_drill_recovers_into_a_scratch_stack_while_the_primary_keeps_running_and_is_recorded() {
    let mut pr = Primary::protected();
    std::thread::sleep(Duration::from_millis(1500));
    let (c, p, s) = (pr.c.clone(), pr.p.clone(), pr.s.clone());
    let before = c.json(&["points", "list"]).as_array().unwrap().len();
    let primary_state = std::fs::read(p.join("stacks/unishop/state.json")).unwrap();

    // The drill, while the load keeps writing at the primary.
    let d = c.json(&["drill", "--stack", "unishop", "--to", "secondary"]);
    assert_eq!(d["passed"], true, "{d:#}");
    assert_eq!(d["check"]["exit"], 0, "{d:#}");
    assert_eq!(d["torn_down"], true);
    let scratch = PathBuf::from(d["scratch"].as_str().unwrap());
    assert!(
        scratch.starts_with(s.join("drills")),
        "{}",
        scratch.display()
    );
    assert!(!scratch.exists(), "the scratch stack is removed");
    let rec = &d["recovery"];
    // Never on the primary's endpoints, never the replica in place: a
    // fresher replica is read into the drill's own bucket, left as it was.
    assert_ne!(
        rec["outputs"]["shop-db.port"],
        serde_json::json!(
            c.json(&["stack", "status", "--stack", "unishop", "--site", "primary"])["members"][0]["outputs"]
                ["port"]
        )
    );
    let assets = src_of(rec, "shop-assets");
    assert_eq!(assets["from"], "replica", "{assets:#}");
    assert!(
        assets["why"].as_str().unwrap().contains("drill's bucket"),
        "{assets:#}"
    );
    assert!(s.join("buckets/shop-assets-replica/index.html").is_file());
    // The primary kept running, untouched.
    let (_ops, _) = pr.stop_load();
    assert_eq!(
        std::fs::read(p.join("stacks/unishop/state.json")).unwrap(),
        primary_state
    );
    let st = c.json(&["stack", "status", "--stack", "unishop", "--site", "primary"]);
    assert_eq!(st["up"], true);
    assert!(c.json(&["points", "list"]).as_array().unwrap().len() >= before);
    let chk = c.json(&["vault", "check"]);
    assert_eq!(chk["errors"].as_array().unwrap().len(), 0, "{chk}");

    // Recorded: a job, and the stack's verification in `report`.
    let job = d["job"].as_i64().unwrap();
    let j = c.json(&["jobs", "show", &job.to_string()]);
    assert_eq!(j["kind"], "drill");
    assert_eq!(j["status"], "succeeded");
    assert_eq!(j["report"]["recovery"]["steps"], rec["steps"], "{j:#}");
    assert_eq!(j["report"]["passed"], true);
    let rep = c.run(&["report", "--json"]);
    let rep: serde_json::Value = serde_json::from_slice(&rep.stdout).unwrap();
    let stack = &rep["stacks"][0];
    assert_eq!(stack["stack"], "unishop");
    assert_eq!(stack["compliant"], true, "{stack:#}");
    assert_eq!(stack["last_drill"][0], job);
    // And in the daemon's /metrics.
    let serve = Serve::start(&c);
    let reach_before = restorable_to(&pr.dr).unwrap();
    let asked = Utc::now();
    let metrics = serve.metrics(&pr.t.path().join("state/api-token"));
    let answered = Utc::now();
    let reach_after = restorable_to(&pr.dr).unwrap();
    assert!(
        metrics.contains("lifeboat_stack_verified{stack=\"unishop\"} 1"),
        "{metrics}"
    );
    // The live RPO exposure: how far the secondary's newest restorable second
    // of the database is behind now (never the primary's own vault).
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with(
                "lifeboat_stack_rpo_exposure_seconds{stack=\"unishop\",site=\"secondary\"}",
            )
        })
        .unwrap_or_else(|| panic!("{metrics}"));
    let exposure: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    let secs = |d: chrono::Duration| d.num_milliseconds() as f64 / 1000.0;
    assert!(
        exposure >= secs(asked - reach_after) - 0.5
            && exposure <= secs(answered - reach_before) + 0.5,
        "{line}: reach {reach_before}..{reach_after}, asked {asked}, answered {answered}"
    );
    assert!(!metrics.contains("site=\"primary\""), "{metrics}");
    assert!(
        metrics.contains("lifeboat_member_rpo_exposure_seconds{stack=\"unishop\",site=\"secondary\",member=\"shop-host\"}"),
        "{metrics}"
    );
    let rto = d["recovery"]["rto_s"].as_f64().unwrap();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("lifeboat_stack_last_drill_rto_seconds{stack=\"unishop\"}"))
        .unwrap_or_else(|| panic!("{metrics}"));
    let v: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((v - rto).abs() < 0.001, "{line} vs {rto}");
    // The declaration changes: not verified since.
    let port: u16 = st["members"][0]["outputs"]["port"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let check = "mariadb --no-defaults -h127.0.0.1 -P${shop-db.port} -uroot -N -e 'SELECT COUNT(*) FROM shop.load_rows'";
    std::fs::write(
        pr.t.path().join("lifeboat.toml"),
        pr.config(port, check, "10s"),
    )
    .unwrap();
    let rep = c.run(&["report", "--json"]);
    assert_eq!(rep.status.code(), Some(3));
    let rep: serde_json::Value = serde_json::from_slice(&rep.stdout).unwrap();
    let failed = rep["stacks"][0]["failed"].to_string();
    assert!(failed.contains("not verified since change"), "{failed}");

    // A failing check fails the drill (exit 3), recorded with why; still torn down.
    std::fs::write(
        pr.t.path().join("lifeboat.toml"),
        pr.config(port, "exit 7", "10s"),
    )
    .unwrap();
    let o = c.run(&["drill", "--stack", "unishop", "--to", "secondary", "--json"]);
    assert_eq!(o.status.code(), Some(3));
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(d["passed"], false);
    assert_eq!(d["check"]["exit"], 7);
    assert_eq!(d["torn_down"], true);
    let j = c.json(&["jobs", "show", &d["job"].to_string()]);
    assert_eq!(j["status"], "failed");
    assert!(
        j["error"]
            .as_str()
            .unwrap()
            .contains("exited with status 7"),
        "{j}"
    );
}

#[test]
fn a_recovery_with_the_copy_behind_and_the_replica_lost_reports_what_it_lost_and_uses_the_bucket_point()
 {
    let mut pr = Primary::protected();
    std::thread::sleep(Duration::from_millis(1500));
    // The copy to the secondary stops (a cut link); the primary keeps taking orders.
    let follow = pr.bg.pop().unwrap();
    drop(follow);
    let cut = Utc::now();
    std::thread::sleep(Duration::from_millis(2000));
    let (ops, err) = pr.writer.take().unwrap().stop();
    assert!(err.is_none(), "{err:?}");
    let failed_at = pr.destroy();
    // The replica is lost with it.
    std::fs::remove_dir_all(pr.s.join("buckets/shop-assets-replica")).unwrap();
    let (c, s) = (&pr.c, &pr.s);

    let r = c.json(&[
        "recover",
        "--stack",
        "unishop",
        "--to",
        "secondary",
        "--failed-at",
        &failed_at.to_rfc3339(),
    ]);
    let bucket = src_of(&r, "shop-assets");
    assert_eq!(bucket["from"], "point", "{r:#}");
    assert!(
        bucket["why"].as_str().unwrap().contains("no replica"),
        "{bucket}"
    );
    // The database holds a prefix of the commits: all up to some commit, none after.
    let got = parse_state(&sql(
        &s.join("mysql/shop-db/mysqld.sock"),
        "SELECT id, val FROM shop.load_rows ORDER BY id",
    ));
    let kept = (0..=ops.len())
        .rev()
        .find(|n| expected_state(&ops[..*n], |_| true) == got)
        .expect("the recovered rows are the effect of a prefix of the commits");
    assert!(kept < ops.len(), "commits after the cut were lost");
    let last_kept: DateTime<Utc> = ops[kept - 1].committed.into();
    assert!(
        last_kept <= cut + chrono::Duration::seconds(2),
        "{last_kept} vs cut {cut}"
    );
    // The RPO reported covers what was lost: from the last recovered commit to the failure.
    let rpo = r["rpo_s"].as_f64().unwrap();
    let lost_window = (failed_at - last_kept).num_milliseconds() as f64 / 1000.0;
    assert!(
        rpo >= lost_window - 1.0 && rpo <= lost_window + 1.0,
        "rpo {rpo} vs {lost_window}"
    );
    assert!(
        rpo >= 1.5,
        "the copy was cut 2 s before the failure: rpo {rpo}"
    );
    assert_eq!(r["objectives"]["rpo_met"], true, "objective 30 s");
}

#[test]
fn a_planned_switchover_stops_the_primarys_writes_drains_and_loses_no_acknowledged_order() {
    let mut pr = Primary::protected();
    let _ = pr.writer.take().unwrap().stop();
    let (c, p, w) = (pr.c.clone(), pr.p.clone(), pr.t.path().to_path_buf());
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.join("stacks/unishop/state.json")).unwrap())
            .unwrap();
    let member = |n: &str| {
        state["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m[0] == n)
            .unwrap()[1]
            .clone()
    };
    let port: u16 = member("shop-db")["outputs"]["port"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let dsn = root_url(port, DB_PASSWORD);
    let url = member("shop-host")["outputs"]["url"]
        .as_str()
        .unwrap()
        .to_string();
    let shop = unishop_bin();
    let o = Command::new(&shop)
        .args([
            "seed",
            "--products",
            "20",
            "--database-url",
            &format!("{dsn}/unishop"),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Customers keep ordering through the shop while it is switched over.
    let log = w.join("orders.log");
    let load = Bg(Command::new(&shop)
        .args([
            "load",
            "--url",
            &url,
            "--rate",
            "40",
            "--duration",
            "120s",
            "--timeout",
            "2s",
            "--log",
        ])
        .arg(&log)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(&log).map_or(0, |t| t.lines().count()) < 40 {
        assert!(Instant::now() < deadline, "no orders were acknowledged");
        std::thread::sleep(Duration::from_millis(100));
    }

    let r = c.json(&[
        "recover",
        "--planned",
        "--stack",
        "unishop",
        "--to",
        "secondary",
    ]);
    drop(load);
    let sw = &r["switchover"];
    assert_eq!(sw["positions"][0][0], "shop-db", "{r:#}");
    assert!(sw["drain_s"].as_f64().unwrap() < 120.0);
    // The fence holds against every account, root (which ignores
    // read_only) included: the old primary's server the stack provisioned
    // is shut down, and its shop stopped: no write can land there any more.
    let write = Command::new("mariadb")
        .args([
            "--no-defaults",
            "-h127.0.0.1",
            &format!("-P{port}"),
            "-uroot",
        ])
        .env("MYSQL_PWD", DB_PASSWORD)
        .args(["-e", "CREATE DATABASE after_the_fence"])
        .output()
        .unwrap();
    assert!(
        !write.status.success(),
        "root wrote into the old primary after the switchover"
    );
    let fence = &sw["fences"][0];
    assert_eq!(fence["member"], "shop-db", "{r:#}");
    assert_eq!(fence["how"], "stopped", "{r:#}");
    // The old primary's archive, drained, was stopped: the new primary's
    // own archive runs (it could not while the old one held the resource).
    assert_eq!(sw["archives_stopped"][0][0], "shop-db", "{r:#}");
    let protected = r["protection"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["member"] == "shop-db")
        .unwrap_or_else(|| panic!("the new primary is not protected: {r:#}"));
    let archive = protected["archive_pid"].as_i64().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(alive(archive), "the new primary's archive exited: {r:#}");
    // The old primary is not started again by mistake: two primaries.
    let o = c.run(&["stack", "up", "--stack", "unishop", "--site", "primary"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("was switched over to another site"), "{err}");
    // Measured, not assumed: recovered to the position the fenced primary stopped at.
    assert_eq!(r["rpo_s"].as_f64(), Some(0.0), "{r:#}");
    let db = src_of(&r, "shop-db");
    assert!(
        db["why"].as_str().unwrap().contains(&format!(
            "recovered to {}:{}",
            sw["positions"][0][1].as_str().unwrap(),
            sw["positions"][0][2]
        )),
        "{db:#}"
    );
    assert!(
        lifeboat_instance::supervise::http_status(&format!("{url}/health"), Duration::from_secs(1))
            .is_err()
    );
    // Every order a customer saw acknowledged is in the recovered shop.
    let rport: u16 = r["outputs"]["shop-db.port"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let rdsn = root_url(rport, &stack_password(&pr.s, "shop-db"));
    let o = Command::new(&shop)
        .args(["verify", "--json", "--log"])
        .arg(&log)
        .args(["--database-url", &format!("{rdsn}/unishop")])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
    assert_eq!(v["missing"], 0, "{v:#}");
    assert!(v["present"].as_u64().unwrap() >= 40, "{v:#}");
    let rurl = r["outputs"]["shop-host.url"].as_str().unwrap();
    assert_eq!(
        lifeboat_instance::supervise::http_status(
            &format!("{rurl}/health"),
            Duration::from_secs(5)
        ),
        Ok(200)
    );
}
