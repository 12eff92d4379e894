//! The throw-away MariaDB helper really starts servers that work, with binlog
//! on or off, and stops them.

use lifeboat_testkit::mariadb::{MariaDb, MariaDbOptions};

#[test]
fn two_servers_start_take_writes_and_stop() {
    let a = MariaDb::start();
    let mut b = MariaDb::start_with(&MariaDbOptions {
        binlog: false,
        server_id: 2,
    });
    assert_ne!(a.port, b.port);
    a.sql("CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY, v VARCHAR(10)); INSERT INTO shop.t VALUES (1,'x'),(2,'y');");
    assert_eq!(a.sql("SELECT COUNT(*) FROM shop.t").trim(), "2");
    assert_eq!(a.sql("SELECT @@log_bin").trim(), "1");
    assert_eq!(b.sql("SELECT @@log_bin").trim(), "0");
    assert!(!a.sql("SHOW BINARY LOGS").is_empty());
    // Over TCP on its port too.
    let out = std::process::Command::new("mariadb")
        .args([
            "--no-defaults",
            "-h127.0.0.1",
            "-uroot",
            "-N",
            "-e",
            "SELECT @@port",
        ])
        .arg(format!("-P{}", a.port))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        a.port.to_string()
    );
    let sock = b.socket();
    b.stop();
    assert!(b.try_sql("SELECT 1").is_err(), "stopped");
    assert!(!sock.exists() || b.try_sql("SELECT 1").is_err());
}
