//! `lifeboat recover`: the Unishop stack protected at the primary site — a
//! real `mariadbd` with its binlog archive followed into the secondary's
//! vault, the frontend bucket replicated there, the shop's host backed up
//! and copied — is lost (every process killed, the site's directory
//! deleted) and recovered into the secondary from what the secondary holds:
//! every acknowledged commit there, the shop healthy, the report's sources,
//! RPO and RTO right.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lifeboat_testkit::load::{LoadWriter, expected_state, parse_state, state_diff};
use lifeboat_testkit::mariadb::free_port;
use lifeboat_testkit::{Cli, tempdir};

const BIN: &str = env!("CARGO_BIN_EXE_lifeboat");

fn unishop_bin() -> PathBuf {
    let p = Path::new(BIN).with_file_name("unishop");
    if !p.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args(["build", "-p", "unishop", "--bin", "unishop"])
            .status()
            .unwrap();
        assert!(st.success(), "cargo build -p unishop");
    }
    p
}

/// A background `lifeboat` process, killed on drop.
struct Bg(Child);
impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Stops both sites' stacks whatever happens.
struct Sites(Cli);
impl Drop for Sites {
    fn drop(&mut self) {
        for site in ["primary", "secondary"] {
            let _ = self
                .0
                .run(&["stack", "down", "--stack", "unishop", "--site", site]);
        }
    }
}

fn sql(socket: &Path, q: &str) -> String {
    let o = Command::new("mariadb")
        .arg("--no-defaults")
        .arg(format!("--socket={}", socket.display()))
        .args(["-uroot", "-N", "-B", "-e", q])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The newest time the vault (`c`'s) can restore `shop-db` to.
fn restorable_to(c: &Cli) -> Option<DateTime<Utc>> {
    c.json(&["points", "list"])
        .as_array()?
        .iter()
        .filter(|p| p["resource"] == "shop-db")
        .filter_map(|p| p["resource_windows"].as_array())
        .flatten()
        .filter_map(|w| w["to"].as_str()?.parse().ok())
        .max()
}

#[test]
fn the_unishop_stack_is_recovered_into_the_secondary_with_every_commit_the_secondary_held() {
    let t = tempdir().unwrap();
    let w = t.path();
    let app = w.join("app/opt/unishop");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::copy(unishop_bin(), app.join("unishop")).unwrap();
    std::fs::write(w.join("dr.pass"), "the secondary's own password\n").unwrap();
    let port = free_port();
    let (p, s) = (w.join("primary"), w.join("secondary"));
    let config = format!(
        r#"[site.primary]
root = "{p}"
[site.secondary]
root = "{s}"
[vault.main]
site = "primary"
location = "{p}/vault"
[vault.dr]
site = "secondary"
location = "{s}/vault"
password_file = "{w}/dr.pass"
[resource.shop-db]
kind = "mysql"
site = "primary"
dsn = "mysql://root@127.0.0.1:{port}"
[resource.shop-assets]
kind = "bucket"
site = "primary"
location = "file://{p}/buckets/shop-assets"
[resource.shop-host]
kind = "instance"
site = "primary"
paths = ["{app}"]
[resource.shop-host.launch]
command = ["sh", "-c", "{app}/unishop publish-frontend && exec {app}/unishop serve"]
cwd = "{app}"
env = {{ UNISHOP_DATABASE_URL = "${{shop-db.dsn}}/unishop", UNISHOP_BUCKET = "${{shop-assets.location}}", UNISHOP_LISTEN = "${{listen}}" }}
health = "http://${{listen}}/health"
health_timeout = "60s"
[replication.assets]
from = "shop-assets"
to = "file://{s}/buckets/shop-assets-replica"
[stack.unishop]
members = ["shop-db", "shop-assets", "shop-host"]
objectives = {{ rpo = "30s", rto = "2m" }}
"#,
        p = p.display(),
        s = s.display(),
        w = w.display(),
        app = app.display(),
    );
    std::fs::write(w.join("lifeboat.toml"), config).unwrap();
    let mut c = Cli::new(BIN, &p.join("vault"));
    c.env.push((
        "LIFEBOAT_CONFIG".into(),
        w.join("lifeboat.toml").display().to_string(),
    ));
    c.env.push((
        "LIFEBOAT_STATE".into(),
        w.join("state").display().to_string(),
    ));
    let mut dr = c.clone();
    dr.vault = s.join("vault").display().to_string();
    dr.password = "the secondary's own password".into();
    let _sites = Sites(c.clone());

    // The primary: vaults, the stack up, a database the load writes into.
    c.ok(&["apply", "--auto-approve"]);
    c.ok(&["stack", "up", "--stack", "unishop", "--site", "primary"]);
    let socket = p.join("mysql/shop-db/mysqld.sock");
    sql(&socket, "CREATE DATABASE shop");
    let dsn = format!("mysql://root@127.0.0.1:{port}");
    let to_dr = |args: &[&str]| {
        let mut cmd = c.command(args);
        cmd.env("LIFEBOAT_TO_PASSWORD", &dr.password);
        cmd
    };
    // Protection: the binlog archive, followed into the secondary's vault; the
    // bucket replicated there; a snapshot and the host, copied.
    let _archive = Bg(c
        .command(&[
            "archive",
            "mysql",
            "--dsn",
            &dsn,
            "--resource",
            "shop-db",
            "--seal-interval",
            "1s",
            "--spool",
        ])
        .arg(w.join("spool"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(w.join("archive.err")).unwrap())
        .spawn()
        .unwrap());
    let writer = LoadWriter::start(port, "shop.load_rows", Duration::from_millis(5), 0);
    std::thread::sleep(Duration::from_millis(800));
    c.ok(&["backup", "mysql", "--dsn", &dsn, "--resource", "shop-db"]);
    c.ok(&[
        "backup",
        "bucket",
        "--bucket",
        &format!("file://{}", p.join("buckets/shop-assets").display()),
        "--resource",
        "shop-assets",
    ]);
    let spec = w.join("shop-host.toml");
    std::fs::write(&spec, format!("name = \"shop-host\"\npaths = [\"{}\"]\n[launch]\ncommand = [\"sh\", \"-c\", \"{app}/unishop publish-frontend && exec {app}/unishop serve\"]\ncwd = \"{app}\"\nenv = {{ UNISHOP_DATABASE_URL = \"${{shop-db.dsn}}/unishop\", UNISHOP_BUCKET = \"${{shop-assets.location}}\", UNISHOP_LISTEN = \"${{listen}}\" }}\nhealth = \"http://${{listen}}/health\"\nhealth_timeout = \"60s\"\n", app.display(), app = app.display())).unwrap();
    c.ok(&["backup", "instance", "--spec", spec.to_str().unwrap()]);
    let o = to_dr(&["copy", "--to", &dr.vault, "--all"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let _follow = Bg(
        to_dr(&["copy", "--to", &dr.vault, "--follow", "--interval", "200ms"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(w.join("follow.err")).unwrap())
            .spawn()
            .unwrap(),
    );
    let o = c
        .command(&[
            "replicate",
            "--from",
            &format!("file://{}", p.join("buckets/shop-assets").display()),
            "--to",
            &format!("file://{}", s.join("buckets/shop-assets-replica").display()),
            "--existing",
            "--once",
            "--state",
        ])
        .arg(w.join("replication"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::thread::sleep(Duration::from_millis(2500));
    let (ops, err) = writer.stop();
    assert!(err.is_none(), "{err:?}");
    let last: DateTime<Utc> = ops.last().unwrap().committed.into();
    // Wait until the secondary holds the last commit.
    let deadline = Instant::now() + Duration::from_secs(60);
    while restorable_to(&dr).is_none_or(|t| t < last) {
        assert!(
            Instant::now() < deadline,
            "the secondary never held the last commit"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Disaster: every process of the primary killed, its directory deleted.
    let failed_at = Utc::now();
    drop(_follow);
    drop(_archive);
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.join("stacks/unishop/state.json")).unwrap())
            .unwrap();
    for (_, m) in state["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m[0].clone(), m[1].clone()))
    {
        if let Some(pid) = m["process"]["pid"].as_i64() {
            let _ = rustix::process::kill_process_group(
                rustix::process::Pid::from_raw(pid as i32).unwrap(),
                rustix::process::Signal::KILL,
            );
        }
    }
    std::fs::remove_dir_all(&p).unwrap();

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
    // A second recovery onto a running stack is refused, naming the fix.
    let o = c.run(&["recover", "--stack", "unishop", "--to", "secondary"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("stack down --stack unishop --site secondary --purge")
    );
    // Purging the recovered stack never removes the replica it used in place.
    c.ok(&[
        "stack",
        "down",
        "--stack",
        "unishop",
        "--site",
        "secondary",
        "--purge",
    ]);
    assert!(s.join("buckets/shop-assets-replica/index.html").is_file());
    assert!(!s.join("mysql/shop-db").exists());
}
