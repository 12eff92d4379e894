//! A stack whose database is a server of one's own (not one the stack
//! provisioned), recovered into the secondary `dr`: a planned switchover's
//! fence holds against every account the application could use —
//! `read_only` for ordinary accounts, and an administrator (who ignores
//! `read_only`) is locked and its open session ended before it can write; a
//! recovery that fails while loading leaves no server running; a recovery
//! into a stopped stack whose data is still there is refused before
//! anything starts.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use lifeboat_testkit::archive::{start_archive, wait_restorable};
use lifeboat_testkit::mariadb::MariaDb;
use lifeboat_testkit::procs::Bg;
use lifeboat_testkit::wait::wait_for;
use lifeboat_testkit::{Cli, TempDir, tempdir};

const BIN: &str = env!("CARGO_BIN_EXE_lifeboat");

/// `mariadb` over TCP as `user` with `password`, running `sql`.
fn client(db: &MariaDb, user: &str, password: &str, sql: &str) -> Command {
    let mut c = Command::new("mariadb");
    c.args(["--no-defaults", "-h127.0.0.1", &format!("-P{}", db.port)])
        .arg(format!("-u{user}"))
        .args(["-N", "-B", "-e", sql])
        .env("MYSQL_PWD", password);
    c
}

fn run(mut c: Command) -> Output {
    c.output().unwrap()
}

fn config(w: &Path, db: &MariaDb) {
    let w_ = w.display();
    std::fs::write(
        w.join("lifeboat.toml"),
        format!(
            r#"[site.primary]
root = "{w_}/primary"
[site.dr]
root = "{w_}/dr"
[vault.dr]
site = "dr"
location = "{w_}/dr-vault"
[resource.db]
kind = "mysql"
site = "primary"
dsn = "{dsn}"
archive = {{ vault = "dr" }}
[stack.shop]
members = ["db"]
check = "true"
"#,
            dsn = db.root_dsn()
        ),
    )
    .unwrap();
}

/// What a test started in `dr`, stopped on drop: the archive, then the
/// stack (purged).
struct Down(Cli, Option<Bg>);
impl Drop for Down {
    fn drop(&mut self) {
        drop(self.1.take());
        let _ = self.0.run(&[
            "stack", "down", "--stack", "shop", "--site", "dr", "--purge",
        ]);
    }
}

#[test]
fn a_switchover_fences_a_server_of_ones_own_against_its_administrators_and_its_application() {
    let f = own_protected(
        "CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY, v TEXT); \
         INSERT INTO shop.t VALUES (1, 'before'); \
         CREATE USER 'ops'@'127.0.0.1' IDENTIFIED BY 'ops-pw'; \
         GRANT ALL PRIVILEGES ON *.* TO 'ops'@'127.0.0.1'; \
         CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY 'app-pw'; \
         GRANT ALL PRIVILEGES ON shop.* TO 'app'@'127.0.0.1'; \
         CREATE ROLE dba; GRANT ALL PRIVILEGES ON *.* TO dba; \
         CREATE USER 'rb'@'127.0.0.1' IDENTIFIED BY 'rb-pw'; GRANT dba TO 'rb'@'127.0.0.1'; \
         SET DEFAULT ROLE dba FOR 'rb'@'127.0.0.1'; \
         CREATE USER 'roa'@'127.0.0.1' IDENTIFIED BY 'roa-pw'; \
         GRANT READ_ONLY ADMIN ON *.* TO 'roa'@'127.0.0.1'; \
         GRANT ALL PRIVILEGES ON shop.* TO 'roa'@'127.0.0.1'; \
         CREATE TABLE shop.ev (id INT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6)); \
         CREATE DEFINER = root@localhost EVENT shop.tick ON SCHEDULE EVERY 1 SECOND \
           DO INSERT INTO shop.ev (at) VALUES (NOW(6)); \
         SET GLOBAL event_scheduler = ON;",
    );
    let (db, c, w) = (&f.db, &f.c, f.t.path());
    let o = run(client(
        db,
        "app",
        "app-pw",
        "INSERT INTO shop.t VALUES (2, 'acknowledged')",
    ));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // An administrator's session is open, about to write after a pause.
    let mut late = client(
        db,
        "ops",
        "ops-pw",
        "SELECT SLEEP(20); INSERT INTO shop.t VALUES (99, 'after the fence')",
    );
    let mut late = late
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        Duration::from_secs(10),
        Duration::from_millis(50),
        "the administrator's session did not open",
        || {
            db.sql("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'ops'")
                .starts_with('1')
        },
    );

    let r = c.json(&["recover", "--planned", "--stack", "shop", "--to", "dr"]);

    // The administrator (ALL PRIVILEGES, so read_only does not bind it)
    // can write no more: its open session was ended, its account locked.
    let _ = late.wait();
    let o = run(client(
        db,
        "ops",
        "ops-pw",
        "CREATE DATABASE after_the_fence",
    ));
    assert!(
        !o.status.success(),
        "an administrator wrote into the old primary after the switchover"
    );
    assert_eq!(
        db.sql("SELECT COUNT(*) FROM shop.t WHERE id = 99"),
        "0\n",
        "the open administrator session wrote after the fence"
    );
    // The application's own account is bound by read_only.
    let o = run(client(
        db,
        "app",
        "app-pw",
        "INSERT INTO shop.t VALUES (3, 'late')",
    ));
    assert!(
        !o.status.success(),
        "the application wrote into the old primary after the switchover"
    );
    // An administrator through a role is locked too.
    let o = run(client(db, "rb", "rb-pw", "CREATE DATABASE by_role"));
    assert!(
        !o.status.success(),
        "an administrator by role wrote after the switchover"
    );
    // So is one that holds only READ_ONLY ADMIN (MariaDB spells it so).
    let o = run(client(
        db,
        "roa",
        "roa-pw",
        "INSERT INTO shop.t VALUES (4, 'read-only admin')",
    ));
    assert!(
        !o.status.success(),
        "an account with READ_ONLY ADMIN wrote after the switchover"
    );
    // Events (run as root, which ignores read_only) stop.
    let ticks = db.sql("SELECT COUNT(*) FROM shop.ev");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        db.sql("SELECT COUNT(*) FROM shop.ev"),
        ticks,
        "an event wrote after the fence"
    );
    let fence = &r["switchover"]["fences"][0];
    assert_eq!(fence["member"], "db", "{r:#}");
    assert_eq!(fence["how"], "read_only", "{r:#}");
    let locked: Vec<&str> = fence["locked_accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        locked.contains(&"'ops'@'127.0.0.1'") && locked.contains(&"'rb'@'127.0.0.1'"),
        "{r:#}"
    );
    assert!(
        fence["undo"]
            .as_str()
            .unwrap()
            .contains("SET GLOBAL event_scheduler = ON"),
        "{r:#}"
    );
    assert!(fence["killed_connections"].as_u64().unwrap() >= 1, "{r:#}");
    // Lifeboat's own account still can write: the report says so and how
    // the fence is lifted.
    assert_eq!(fence["writable_by"], "root@localhost", "{r:#}");
    assert!(
        fence["undo"]
            .as_str()
            .unwrap()
            .contains("ALTER USER 'ops'@'127.0.0.1' ACCOUNT UNLOCK"),
        "{r:#}"
    );
    // Nothing acknowledged is lost: the recovered server holds row 2.
    let sock = w.join("dr/mysql/db/mysqld.sock");
    let o = Command::new("mariadb")
        .arg("--no-defaults")
        .arg(format!("--socket={}", sock.display()))
        .args([
            "-uroot",
            "-N",
            "-B",
            "-e",
            "SELECT id FROM shop.t ORDER BY id",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "1\n2\n", "{r:#}");
    // Nothing the fence did was archived and replayed: the new primary's
    // administrators are not locked.
    let o = Command::new("mariadb")
        .arg("--no-defaults")
        .arg(format!("--socket={}", sock.display()))
        .args(["-uroot", "-N", "-B", "-e"])
        .arg("SELECT COUNT(*) FROM mysql.global_priv WHERE JSON_VALUE(Priv, '$.account_locked') IN ('true', '1') AND User IN ('ops', 'rb')")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "0\n", "{r:#}");
    assert_eq!(r["rpo_s"].as_f64(), Some(0.0), "{r:#}");
}

/// A server of one's own, `sql` run in it, protected (see [`protected`]);
/// the archive and the stack are stopped on drop, before the server.
struct Own {
    _down: Down,
    c: Cli,
    t: TempDir,
    db: MariaDb,
}

/// [`Own`]: the server holding `sql`, the file, `dr` and the archive.
fn own_protected(sql: &str) -> Own {
    let db = MariaDb::start();
    db.sql(sql);
    let t = tempdir().unwrap();
    let c = Cli::new(BIN, &t.path().join("dr-vault")).with_workdir(t.path());
    let _down = Down(c.clone(), Some(protected(t.path(), &c, &db)));
    Own { _down, c, t, db }
}

/// The file, the `dr` vault, a snapshot of `db` (with users) and its binlog
/// archive running into `dr`.
fn protected(w: &Path, c: &Cli, db: &MariaDb) -> Bg {
    config(w, db);
    c.ok(&["vault", "init"]);
    c.ok(&[
        "backup",
        "mysql",
        "--dsn",
        &db.root_dsn(),
        "--resource",
        "db",
        "--users",
    ]);
    archive(w, c, db)
}

/// `db`'s binlog archive into `dr`, running (its errors in `archive.err`).
fn archive(w: &Path, c: &Cli, db: &MariaDb) -> Bg {
    start_archive(
        c,
        &db.root_dsn(),
        w,
        &["--resource", "db", "--seal-interval", "1s"],
    )
}

/// Waits until the archive in `dr` reaches now (a recovery to the latest
/// second then has a window to restore).
fn wait_archived(c: &Cli) {
    wait_restorable(c, None, chrono::Utc::now(), Duration::from_secs(60), || {
        "the archive did not reach now".into()
    });
}

/// Whether a `mariadbd` whose command line names `dir` runs.
fn server_runs_in(dir: &Path) -> bool {
    let needle = dir.display().to_string();
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        std::fs::read(e.path().join("cmdline")).is_ok_and(|c| {
            let c = String::from_utf8_lossy(&c);
            c.contains("mariadbd") && c.contains(&needle)
        })
    })
}

#[test]
fn a_recovery_that_fails_while_loading_leaves_no_server_running() {
    let f = own_protected(
        "CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY, v LONGTEXT); \
            INSERT INTO shop.t VALUES (1, REPEAT('x', 100000));",
    );
    let (c, w) = (&f.c, f.t.path());
    wait_archived(c);
    // Every pack damaged: the snapshot cannot be loaded.
    for f in lifeboat_testkit::files_below(&w.join("dr-vault/packs")) {
        let len = std::fs::metadata(&f).unwrap().len() as i64;
        lifeboat_testkit::flip_byte(&f, len / 2);
    }
    let o = c.run(&["recover", "--stack", "shop", "--to", "dr", "--no-protect"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("restoring snapshot"), "{err}");
    assert!(
        !server_runs_in(&w.join("dr/mysql/db")),
        "the half-loaded server was left running: {err}"
    );
}

#[test]
fn a_recovery_into_a_stopped_stack_whose_data_is_there_is_refused_before_anything_starts() {
    let f = own_protected(
        "CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY); INSERT INTO shop.t VALUES (1);",
    );
    let (c, w) = (&f.c, f.t.path());
    wait_archived(c);
    c.json(&["recover", "--stack", "shop", "--to", "dr", "--no-protect"]);
    // Stopped, not removed (what the runbook's last step did before).
    c.ok(&["stack", "down", "--stack", "shop", "--site", "dr"]);
    let o = c.run(&["recover", "--stack", "shop", "--to", "dr", "--no-protect"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("was stopped in site `dr` but its data is still there")
            && err.contains("stack down --stack shop --site dr --purge"),
        "{err}"
    );
    assert!(!server_runs_in(&w.join("dr/mysql/db")), "{err}");
    // Removed, it recovers.
    c.ok(&[
        "stack", "down", "--stack", "shop", "--site", "dr", "--purge",
    ]);
    c.json(&["recover", "--stack", "shop", "--to", "dr", "--no-protect"]);
}

#[test]
fn a_switchover_whose_recovery_fails_leaves_the_primary_resumable_and_unmarked() {
    let f = own_protected(
        "CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY); INSERT INTO shop.t VALUES (1)",
    );
    let (db, c, w) = (&f.db, &f.c, f.t.path());
    wait_archived(c);
    // A member the secondary holds no point of: the recovery fails after
    // the fence and the drain.
    std::fs::create_dir_all(w.join("etc")).unwrap();
    let text = std::fs::read_to_string(w.join("lifeboat.toml"))
        .unwrap()
        .replace("members = [\"db\"]", "members = [\"db\", \"etc\"]");
    std::fs::write(
        w.join("lifeboat.toml"),
        format!(
            "{text}[resource.etc]\nkind = \"files\"\nsite = \"primary\"\npaths = [\"{}\"]\n",
            w.join("etc").display()
        ),
    )
    .unwrap();
    let o = c.run(&["recover", "--planned", "--stack", "shop", "--to", "dr"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    // The error says how to resume the primary, and its site is not marked
    // switched over (stack up there stays possible).
    assert!(
        err.contains("to resume there") && err.contains("SET GLOBAL read_only = 0"),
        "{err}"
    );
    // What the recovery brought up in `dr` goes first: never two writable.
    assert!(
        err.contains("first `lifeboat stack down --stack shop --site dr --purge`"),
        "{err}"
    );
    assert!(
        !w.join("primary/stacks/shop/switched-over.json").exists(),
        "{err}"
    );
    // The undo it gives makes the primary writable again.
    let undo = err
        .split("on `db`: ")
        .nth(1)
        .and_then(|u| u.split("; then").next())
        .unwrap_or_else(|| panic!("no undo for db: {err}"));
    db.sql(undo);
    db.sql("INSERT INTO shop.t VALUES (2)");
}

#[test]
fn a_switchover_without_a_snapshot_in_the_target_says_a_snapshot_is_missing() {
    let db = MariaDb::start();
    db.sql("CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY)");
    let t = tempdir().unwrap();
    let w = t.path();
    let c = Cli::new(BIN, &w.join("dr-vault")).with_workdir(w);
    config(w, &db);
    c.ok(&["vault", "init"]);
    // The archive runs into `dr`; no snapshot was ever taken.
    let _down = Down(c.clone(), Some(archive(w, &c, &db)));
    db.sql("INSERT INTO shop.t VALUES (1)");
    wait_for(
        Duration::from_secs(60),
        Duration::from_millis(200),
        "nothing archived",
        || {
            c.json(&["points", "list"])
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["kind"] == "mysql-binlog")
        },
    );
    let o = c.run(&["recover", "--planned", "--stack", "shop", "--to", "dr"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("no snapshot") && err.contains("nothing was stopped"),
        "{err}"
    );
    // Nothing was stopped: the primary takes writes.
    db.sql("INSERT INTO shop.t VALUES (2)");
}
