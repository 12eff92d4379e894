//! The throw-away MariaDB helper really starts servers that work, with binlog
//! on or off, and stops them; stopped or killed ones restart on their port.

use lifeboat_testkit::mariadb::{MariaDb, MariaDbOptions};

#[test]
fn two_servers_start_take_writes_and_stop() {
    let a = MariaDb::start();
    let mut b = MariaDb::start_with(&MariaDbOptions {
        binlog: false,
        server_id: 2,
        ..Default::default()
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
    assert!(sock.exists(), "a running server has its socket");
    b.stop();
    assert!(b.try_sql("SELECT 1").is_err(), "stopped");
    assert!(!sock.exists(), "a stopped server removes its socket");
    // The other server is unaffected.
    assert_eq!(a.sql("SELECT COUNT(*) FROM shop.t").trim(), "2");
}

#[test]
fn a_stopped_or_killed_server_restarts_on_its_port_with_its_data() {
    let mut db = MariaDb::start_with(&MariaDbOptions {
        binlog: false,
        server_id: 3,
        ..Default::default()
    });
    let port = db.port;
    db.sql("CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY); INSERT INTO shop.t VALUES (1),(2),(3);");
    db.stop();
    assert!(db.try_sql("SELECT 1").is_err(), "stopped");
    db.restart();
    assert_eq!(db.port, port);
    assert_eq!(db.sql("SELECT @@port").trim(), port.to_string());
    assert_eq!(db.sql("SELECT COUNT(*) FROM shop.t").trim(), "3");
    db.kill();
    assert!(db.try_sql("SELECT 1").is_err(), "killed");
    db.restart();
    assert_eq!(db.sql("SELECT COUNT(*) FROM shop.t").trim(), "3");
}
