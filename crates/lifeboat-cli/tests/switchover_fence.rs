//! A planned switchover of a stack whose database is a server of one's own
//! (not one the stack provisioned): the fence holds against every account
//! the application could use — `read_only` for ordinary accounts, and an
//! administrator (who ignores `read_only`) is locked and its open session
//! ended before it can write.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use lifeboat_testkit::mariadb::MariaDb;
use lifeboat_testkit::{Cli, tempdir};

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

struct Down<'a>(&'a Cli, Option<std::process::Child>);
impl Drop for Down<'_> {
    fn drop(&mut self) {
        if let Some(mut a) = self.1.take() {
            let _ = a.kill();
            let _ = a.wait();
        }
        let _ = self.0.run(&[
            "stack", "down", "--stack", "shop", "--site", "dr", "--purge",
        ]);
    }
}

#[test]
fn a_switchover_fences_a_server_of_ones_own_against_its_administrators_and_its_application() {
    let db = MariaDb::start();
    db.sql(
        "CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY, v TEXT); \
         INSERT INTO shop.t VALUES (1, 'before'); \
         CREATE USER 'ops'@'127.0.0.1' IDENTIFIED BY 'ops-pw'; \
         GRANT ALL PRIVILEGES ON *.* TO 'ops'@'127.0.0.1'; \
         CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY 'app-pw'; \
         GRANT ALL PRIVILEGES ON shop.* TO 'app'@'127.0.0.1';",
    );
    let t = tempdir().unwrap();
    let w = t.path();
    let c = Cli::new(BIN, &w.join("dr-vault")).with_workdir(w);
    config(w, &db);
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
    let archive = c
        .command(&[
            "archive",
            "mysql",
            "--dsn",
            &db.root_dsn(),
            "--resource",
            "db",
            "--seal-interval",
            "1s",
            "--spool",
            w.join("spool").to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(w.join("archive.err")).unwrap())
        .spawn()
        .unwrap();
    let _down = Down(&c, Some(archive));
    let o = run(client(
        &db,
        "app",
        "app-pw",
        "INSERT INTO shop.t VALUES (2, 'acknowledged')",
    ));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // An administrator's session is open, about to write after a pause.
    let mut late = client(
        &db,
        "ops",
        "ops-pw",
        "SELECT SLEEP(20); INSERT INTO shop.t VALUES (99, 'after the fence')",
    );
    let mut late = late
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !db
        .sql("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'ops'")
        .starts_with('1')
    {
        assert!(
            Instant::now() < deadline,
            "the administrator's session did not open"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let r = c.json(&["recover", "--planned", "--stack", "shop", "--to", "dr"]);

    // The administrator (ALL PRIVILEGES, so read_only does not bind it)
    // can write no more: its open session was ended, its account locked.
    let _ = late.wait();
    let o = run(client(
        &db,
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
        &db,
        "app",
        "app-pw",
        "INSERT INTO shop.t VALUES (3, 'late')",
    ));
    assert!(
        !o.status.success(),
        "the application wrote into the old primary after the switchover"
    );
    let fence = &r["switchover"]["fences"][0];
    assert_eq!(fence["member"], "db", "{r:#}");
    assert_eq!(fence["how"], "read_only", "{r:#}");
    assert_eq!(fence["locked_accounts"][0], "'ops'@'127.0.0.1'", "{r:#}");
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
    assert_eq!(r["rpo_s"].as_f64(), Some(0.0), "{r:#}");
}
