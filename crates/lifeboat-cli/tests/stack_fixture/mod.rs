//! What the stack tests (recover, failback, stack) share: the Unishop host's
//! instance table, SQL on a member's socket, how far a vault can restore the
//! database, a disaster (a site's processes killed), the primary database's root password and a recovered
//! stack's.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use chrono::{DateTime, Utc};
use lifeboat_testkit::{Cli, archive};

/// The Unishop stack in one site, driven by `stack VERB --stack unishop
/// --site SITE`; stopped with the given `stack down` flags on drop,
/// whatever the test left running.
pub struct SiteStack {
    c: Cli,
    site: String,
    down: Vec<String>,
}

impl SiteStack {
    /// The stack in `site` of `c`'s file; `down` the flags of `stack down`
    /// on drop (`--purge`, or none).
    pub fn new(c: &Cli, site: &str, down: &[&str]) -> SiteStack {
        SiteStack {
            c: c.clone(),
            site: site.into(),
            down: down.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// `stack VERB… --stack unishop --site SITE`.
    fn args<'a>(&'a self, verb: &[&'a str]) -> Vec<&'a str> {
        let mut a = vec!["stack"];
        a.extend_from_slice(verb);
        a.extend(["--stack", "unishop", "--site", &self.site]);
        a
    }

    /// Runs `stack VERB…`; its output.
    pub fn run(&self, verb: &[&str]) -> Output {
        self.c.run(&self.args(verb))
    }

    /// Runs `stack VERB…`, asserts success; its stdout.
    pub fn ok(&self, verb: &[&str]) -> String {
        self.c.ok(&self.args(verb))
    }

    /// Runs `stack VERB… --json`, asserts success; its report.
    pub fn json(&self, verb: &[&str]) -> serde_json::Value {
        self.c.json(&self.args(verb))
    }
}

impl Drop for SiteStack {
    fn drop(&mut self) {
        let mut verb = vec!["down"];
        verb.extend(self.down.iter().map(String::as_str));
        let _ = self.run(&verb);
    }
}

/// The Unishop host's files under `w/opt/unishop`: the `unishop` binary
/// built next to `bin`.
pub fn shop_app(w: &Path, bin: &str) -> PathBuf {
    let app = w.join("opt/unishop");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::copy(
        lifeboat_testkit::procs::unishop_bin(bin),
        app.join("unishop"),
    )
    .unwrap();
    app
}

/// The Unishop stack's vault `main` in `w` and its members (database,
/// bucket, host of `app`) in the file's first site, before `[stack.unishop]`.
pub fn shop_members(w: &Path, app: &Path) -> String {
    format!(
        r#"[vault.main]
location = "{w}/vault"
[resource.shop-db]
kind = "mysql"
dsn = "mysql://root@127.0.0.1:3306"
[resource.shop-assets]
kind = "bucket"
location = "file://{w}/unused-bucket"
{host}"#,
        w = w.display(),
        host = shop_host(app, None)
    )
}

/// The launch table of the Unishop host whose files are in `app`: it
/// publishes its frontend into the stack's bucket and serves the shop on
/// the database the stack provides.
fn launch(app: &Path) -> String {
    let app = app.display();
    format!(
        r#"command = ["sh", "-c", "{app}/unishop publish-frontend && exec {app}/unishop serve"]
cwd = "{app}"
env = {{ UNISHOP_DATABASE_URL = "${{shop-db.dsn}}/unishop", UNISHOP_BUCKET = "${{shop-assets.location}}", UNISHOP_LISTEN = "${{listen}}" }}
health = "http://${{listen}}/health"
health_timeout = "60s"
"#
    )
}

/// The root password the file declares for the primary's database
/// (`password_file = "W/db.pass"`): `stack up` gives it to the server.
pub const DB_PASSWORD: &str = "primary-root-0123456789abcdef";

/// `mysql://root:PASSWORD@127.0.0.1:PORT`.
pub fn root_url(port: u16, password: &str) -> String {
    format!("mysql://root:{password}@127.0.0.1:{port}")
}

/// The root password of database `member` of stack `unishop` in the site
/// at `root` (kept in the stack's state).
pub fn stack_password(root: &Path, member: &str) -> String {
    let f = root.join(format!("stacks/unishop/secrets/{member}.password"));
    std::fs::read_to_string(&f)
        .unwrap_or_else(|e| panic!("{}: {e}", f.display()))
        .trim()
        .to_string()
}

/// Whether `mariadb -uroot` over TCP to `port` gets in: as user `nobody`
/// when `as_nobody`, with `password` (in its environment) when given.
pub fn tcp_root_login(port: u16, as_nobody: bool, password: Option<&str>) -> bool {
    let mut cmd = Command::new(if as_nobody { "runuser" } else { "mariadb" });
    if as_nobody {
        cmd.args(["-u", "nobody", "--", "mariadb"]);
    }
    cmd.args(["--no-defaults", "-h127.0.0.1", &format!("-P{port}")])
        .args(["-uroot", "-N", "-e", "SELECT 1"])
        .env_remove("MYSQL_PWD");
    if let Some(pw) = password {
        cmd.env("MYSQL_PWD", pw);
    }
    cmd.output().unwrap().status.success()
}

/// The two sites' directories and command lines in the working directory
/// `w`: `w/primary` and `w/secondary`, the Unishop binary in
/// `w/app/opt/unishop`, the secondary's password in `w/dr.pass`, the
/// primary database's root password in `w/db.pass` (and in both command
/// lines' `LIFEBOAT_MYSQL_PASSWORD`, for `backup`/`archive mysql --dsn`); a
/// `Cli` on the primary's vault `main` and one on the secondary's `dr`, both
/// reading `w/lifeboat.toml` and the state directory `w/state`.
pub fn two_site_world(w: &Path, bin: &str) -> (PathBuf, PathBuf, Cli, Cli) {
    let app = w.join("app/opt/unishop");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::copy(
        lifeboat_testkit::procs::unishop_bin(bin),
        app.join("unishop"),
    )
    .unwrap();
    lifeboat_testkit::write_secret(&w.join("dr.pass"), "the secondary's own password\n");
    lifeboat_testkit::write_secret(&w.join("db.pass"), &format!("{DB_PASSWORD}\n"));
    let (p, s) = (w.join("primary"), w.join("secondary"));
    let mut c = Cli::new(bin, &p.join("vault")).with_workdir(w);
    c.env
        .push(("LIFEBOAT_MYSQL_PASSWORD".into(), DB_PASSWORD.into()));
    let mut dr = c.clone();
    dr.vault = s.join("vault").display().to_string();
    dr.password = "the secondary's own password".into();
    (p, s, c, dr)
}

/// The two sites of `lifeboat.toml` under `p` and `s`, each with its vault:
/// `main` in the primary (the environment's password), `dr` in the
/// secondary (its own password, in `w/dr.pass`).
pub fn two_sites(w: &Path, p: &Path, s: &Path) -> String {
    format!(
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
"#,
        p = p.display(),
        s = s.display(),
        w = w.display()
    )
}

/// `[resource.shop-host]` of `lifeboat.toml` (in `site`, when given):
/// stateless, its files change only by a deploy.
pub fn shop_host(app: &Path, site: Option<&str>) -> String {
    format!(
        "[resource.shop-host]\nkind = \"instance\"\nstateless = true\n{}paths = [\"{}\"]\n[resource.shop-host.launch]\n{}",
        site.map(|s| format!("site = \"{s}\"\n"))
            .unwrap_or_default(),
        app.display(),
        launch(app)
    )
}

/// The same host as an instance spec file of its own (`backup instance --spec`).
pub fn shop_host_spec(app: &Path) -> String {
    format!(
        "name = \"shop-host\"\npaths = [\"{}\"]\n[launch]\n{}",
        app.display(),
        launch(app)
    )
}

/// The buckets an S3 server holds (an outside view: `GET /`).
pub fn buckets(s3: &lifeboat_testkit::s3::S3Server) -> Vec<String> {
    let r = s3.request("GET", "/").unwrap();
    r.split("<Name>")
        .skip(1)
        .filter_map(|x| x.split_once("</Name>").map(|(n, _)| n.to_string()))
        .collect()
}

/// Runs `q` as root on the server listening on `socket`; its rows as text.
pub fn sql(socket: &Path, q: &str) -> String {
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
pub fn restorable_to(c: &Cli) -> Option<DateTime<Utc>> {
    archive::restorable_to(c, Some("shop-db"))
}

/// Waits (at most 90 s) until the vault (`c`'s) can restore `shop-db` to
/// `last`.
pub fn wait_until_held(c: &Cli, last: DateTime<Utc>, what: &str) {
    archive::wait_restorable(c, Some("shop-db"), last, Duration::from_secs(90), || {
        format!("{what} never held the commit of {last}")
    });
}

/// Disaster: every process of stack `unishop` in the site at `root` killed
/// (each in its own process group), then the site's directory deleted.
pub fn destroy_site(root: &Path) {
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("stacks/unishop/state.json")).unwrap())
            .unwrap();
    for m in state["members"].as_array().unwrap() {
        if let Some(pid) = m[1]["process"]["pid"].as_i64() {
            let _ = rustix::process::kill_process_group(
                rustix::process::Pid::from_raw(pid as i32).unwrap(),
                rustix::process::Signal::KILL,
            );
        }
    }
    std::fs::remove_dir_all(root).unwrap();
}
