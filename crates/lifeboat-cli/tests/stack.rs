//! `lifeboat stack up|down|status` on the embedded default: the Unishop
//! stack — a real `mariadbd` provisioned under the site root, a directory
//! bucket, the real Unishop binary started from its launch spec with the
//! other members' outputs (`${shop-db.dsn}`, `${shop-assets.location}`) —
//! brought up, checked, stopped with its data kept, started again, purged.

mod stack_fixture;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use lifeboat_testkit::procs::alive;
use lifeboat_testkit::{Cli, tempdir};
use stack_fixture::{SiteStack, shop_app, shop_members, sql, tcp_root_login};

fn health(url: &str) -> Option<u16> {
    lifeboat_instance::supervise::http_status(url, std::time::Duration::from_secs(2)).ok()
}

fn write_config(w: &Path, app: &Path, with_optional_broken: bool) {
    let mut text = format!(
        "[site.primary]\nroot = \"{w}/primary\"\n{members}",
        w = w.display(),
        members = shop_members(w, app)
    );
    let mut members = r#"["shop-host", "shop-db", "shop-assets"]"#.to_string();
    let mut optional = String::new();
    if with_optional_broken {
        text.push_str(
            "[resource.reports]\nkind = \"instance\"\npaths = [\"/nonexistent\"]\n[resource.reports.launch]\ncommand = [\"false\"]\nhealth = \"http://${listen}/\"\nhealth_timeout = \"3s\"\n",
        );
        members = r#"["shop-host", "shop-db", "shop-assets", "reports"]"#.into();
        optional = "optional = [\"reports\"]\n".into();
    }
    text.push_str(&format!(
        "[stack.unishop]\nmembers = {members}\n{optional}objectives = {{ rpo = \"5s\", rto = \"2m\" }}\n"
    ));
    std::fs::write(w.join("lifeboat.toml"), text).unwrap();
}

#[test]
fn the_unishop_stack_comes_up_in_its_site_stops_with_its_data_kept_and_is_purged() {
    let t = tempdir().unwrap();
    let w = t.path();
    let app = shop_app(w, env!("CARGO_BIN_EXE_lifeboat"));
    write_config(w, &app, true);
    let c = Cli::new(env!("CARGO_BIN_EXE_lifeboat"), &w.join("vault")).with_workdir(w);
    let stack = SiteStack::new(&c, "primary", &[]);

    // Up: the database and the bucket first, then the shop with their outputs.
    let up = stack.json(&["up"]);
    let members = up["state"]["members"].as_array().unwrap();
    let names: Vec<&str> = members.iter().map(|m| m[0].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["shop-db", "shop-assets", "shop-host", "reports"],
        "{up}"
    );
    assert!(
        members[3][1]["error"]
            .as_str()
            .unwrap()
            .contains("false exited"),
        "{up}"
    );
    let root = w.join("primary");
    let db = &members[0][1];
    let socket = PathBuf::from(db["outputs"]["socket"].as_str().unwrap());
    assert_eq!(
        socket,
        root.join("mysql/shop-db/mysqld.sock").display().to_string()
    );
    let db_pid = db["process"]["pid"].as_i64().unwrap();
    let host = &members[2][1];
    let url = host["outputs"]["url"].as_str().unwrap().to_string();
    let host_pid = host["process"]["pid"].as_i64().unwrap();
    assert_eq!(health(&format!("{url}/health")), Some(200));
    // The shop runs against the provisioned server and bucket.
    assert_eq!(
        sql(
            &socket,
            "SELECT COUNT(*) > 0 FROM information_schema.tables WHERE table_schema = 'unishop'"
        ),
        "1\n"
    );
    assert!(root.join("buckets/shop-assets/index.html").is_file());
    // No passwordless root: over TCP neither another local user nor root
    // without the password gets in. The password is in the stack's state
    // (0600), never in what `stack up` prints; the shop has it in its
    // launch environment only.
    let port: u16 = db["outputs"]["port"].as_str().unwrap().parse().unwrap();
    let tcp_root = |as_nobody, pw| tcp_root_login(port, as_nobody, pw);
    assert!(!tcp_root(true, None), "another local user logs in as root");
    assert!(
        !tcp_root(false, None),
        "root logs in over TCP without a password"
    );
    let pw_file = root.join("stacks/unishop/secrets/shop-db.password");
    let mode = std::fs::metadata(&pw_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", pw_file.display());
    let pw = std::fs::read_to_string(&pw_file)
        .unwrap()
        .trim()
        .to_string();
    assert!(pw.len() >= 32, "a generated secret");
    assert!(tcp_root(false, Some(&pw)), "root logs in with its password");
    assert!(!up.to_string().contains(&pw), "{up}");
    assert!(!db["outputs"]["dsn"].as_str().unwrap().contains(&pw));
    let launch_file = root.join("hosts/shop-host/launch.json");
    let launch: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&launch_file).unwrap()).unwrap();
    assert_eq!(
        launch["env"]["UNISHOP_DATABASE_URL"],
        format!("mysql://root:{pw}@127.0.0.1:{port}/unishop")
    );
    let mode = std::fs::metadata(&launch_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "{}", launch_file.display());
    // The optional member that fails does not fail the stack; status says so.
    let st = stack.run(&["status", "--json"]);
    assert_eq!(st.status.code(), Some(3));
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    let reports = st["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "reports")
        .unwrap();
    assert_eq!(reports["status"], "down", "{st}");
    write_config(w, &app, false);
    let st = stack.json(&["status"]);
    assert_eq!(st["up"], true, "{st}");

    // Up again keeps what runs.
    let again = stack.json(&["up"]);
    assert_eq!(
        again["state"]["members"][0][1]["process"]["pid"].as_i64(),
        Some(db_pid)
    );
    assert_eq!(
        again["state"]["members"][2][1]["process"]["pid"].as_i64(),
        Some(host_pid)
    );

    // The shop dies: status says which member is down (exit 3).
    sql(
        &socket,
        "CREATE TABLE unishop.marker (i INT); INSERT INTO unishop.marker VALUES (42)",
    );
    rustix::process::kill_process_group(
        rustix::process::Pid::from_raw(host_pid as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    while alive(host_pid) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let o = stack.run(&["status"]);
    assert_eq!(o.status.code(), Some(3));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("shop-host") && out.contains("down"), "{out}");

    // Down stops every process and keeps the data; up brings it back on the same port.
    stack.ok(&["down"]);
    assert!(!alive(db_pid));
    let up2 = stack.json(&["up"]);
    assert_eq!(
        up2["state"]["members"][0][1]["outputs"]["dsn"],
        db["outputs"]["dsn"]
    );
    assert_eq!(sql(&socket, "SELECT i FROM unishop.marker"), "42\n");
    let url2 = up2["state"]["members"][2][1]["outputs"]["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(health(&format!("{url2}/health")), Some(200));
    let pids: Vec<i64> = [0, 2]
        .iter()
        .map(|i| {
            up2["state"]["members"][*i][1]["process"]["pid"]
                .as_i64()
                .unwrap()
        })
        .collect();

    // Purge: nothing runs, nothing is left under the site root.
    stack.ok(&["down", "--purge"]);
    assert!(pids.iter().all(|p| !alive(*p)));
    let left: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn stack_commands_name_what_is_wrong() {
    let t = tempdir().unwrap();
    let w = t.path();
    std::fs::write(
        w.join("lifeboat.toml"),
        format!(
            "[site.noroot]\nendpoint = \"http://127.0.0.1:9\"\n[site.a]\nroot = \"{}/a\"\n[vault.main]\nlocation = \"{}/v\"\n[resource.etc]\npaths = [\"/etc\"]\n[stack.s]\nmembers = [\"etc\"]\n",
            w.display(),
            w.display()
        ),
    )
    .unwrap();
    let c = Cli::new(env!("CARGO_BIN_EXE_lifeboat"), &w.join("v")).with_workdir(w);
    for (args, want) in [
        (
            &["stack", "up", "--stack", "x", "--site", "a"][..],
            "there is no stack `x` in the file (stacks: s)",
        ),
        (
            &["stack", "up", "--stack", "s", "--site", "b"][..],
            "there is no site `b` in the file (sites: a, noroot)",
        ),
        (
            &["stack", "up", "--stack", "s", "--site", "noroot"][..],
            "site `noroot` has no `root`",
        ),
    ] {
        let o = c.run(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    // Never brought up: status says so (exit 3), down is a no-op.
    let o = c.run(&["stack", "status", "--stack", "s", "--site", "a"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stdout).contains("not provisioned"));
    c.ok(&["stack", "down", "--stack", "s", "--site", "a"]);
}

#[test]
fn a_server_the_file_declares_that_already_runs_is_used_as_it_is() {
    let db = lifeboat_testkit::mariadb::MariaDb::start();
    let t = tempdir().unwrap();
    let w = t.path();
    std::fs::write(
        w.join("lifeboat.toml"),
        format!(
            "[site.a]\nroot = \"{w}/a\"\n[vault.main]\nlocation = \"{w}/v\"\n[resource.db]\nkind = \"mysql\"\nsite = \"a\"\ndsn = \"mysql://root@127.0.0.1:{port}\"\n[resource.files]\nkind = \"bucket\"\nsite = \"a\"\nlocation = \"file://{w}/existing-bucket\"\n[resource.docs]\nkind = \"files\"\nsite = \"a\"\npaths = [\"{w}/srv/docs\"]\n[stack.s]\nmembers = [\"db\", \"files\", \"docs\"]\n",
            w = w.display(),
            port = db.port
        ),
    )
    .unwrap();
    let c = Cli::new(env!("CARGO_BIN_EXE_lifeboat"), &w.join("v")).with_workdir(w);
    let up = c.json(&["stack", "up", "--stack", "s", "--site", "a"]);
    let m = &up["state"]["members"];
    assert_eq!(m[0][1]["outputs"]["dsn"], db.root_dsn(), "{up}");
    assert_eq!(m[0][1]["process"], serde_json::Value::Null);
    assert_eq!(m[0][1]["borrowed"], true);
    assert!(
        !w.join("a/mysql/db/data").exists(),
        "nothing provisioned for it"
    );
    // The declared bucket directory is the bucket, not one under the root.
    assert_eq!(
        m[1][1]["outputs"]["path"],
        w.join("existing-bucket").display().to_string()
    );
    // A files member's declared directory likewise: what its plan backs up.
    let docs = w.join("srv/docs");
    assert_eq!(
        m[2][1]["outputs"]["path"],
        docs.display().to_string(),
        "{up}"
    );
    assert!(docs.is_dir());
    // Down and purge leave all three alone.
    std::fs::write(w.join("existing-bucket/keep"), b"x").unwrap();
    std::fs::write(docs.join("keep"), b"x").unwrap();
    c.ok(&["stack", "down", "--stack", "s", "--site", "a", "--purge"]);
    assert_eq!(db.sql("SELECT 1"), "1\n", "the server still runs");
    assert!(w.join("existing-bucket/keep").exists());
    assert!(docs.join("keep").exists());
}

/// A recovery into a files member's own site never restores into the
/// directory the file declares when it holds files already: a directory of
/// its own, said in the report; the declared one is left as it was.
#[test]
fn a_recovery_never_restores_into_a_declared_directory_that_holds_files() {
    let t = tempdir().unwrap();
    let w = t.path();
    let docs = w.join("srv/docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(docs.join("readme.txt"), b"as backed up").unwrap();
    std::fs::write(
        w.join("lifeboat.toml"),
        format!(
            "[site.a]\nroot = \"{w}/a\"\n[vault.main]\nsite = \"a\"\nlocation = \"{w}/v\"\n[resource.docs]\nkind = \"files\"\nsite = \"a\"\npaths = [\"{w}/srv/docs\"]\n[stack.s]\nmembers = [\"docs\"]\n",
            w = w.display()
        ),
    )
    .unwrap();
    let c = Cli::new(env!("CARGO_BIN_EXE_lifeboat"), &w.join("v")).with_workdir(w);
    c.ok(&["apply", "--auto-approve"]);
    c.ok(&[
        "backup",
        "files",
        docs.to_str().unwrap(),
        "--resource",
        "docs",
    ]);
    std::fs::write(docs.join("readme.txt"), b"changed since").unwrap();
    let r = c.json(&["recover", "--stack", "s", "--to", "a", "--no-protect"]);
    let got = std::path::PathBuf::from(r["outputs"]["docs.path"].as_str().unwrap());
    assert_ne!(got, docs, "{r:#}");
    assert_eq!(
        std::fs::read(got.join("readme.txt")).unwrap(),
        b"as backed up"
    );
    assert_eq!(
        std::fs::read(docs.join("readme.txt")).unwrap(),
        b"changed since"
    );
    let why = r["sources"][0]["why"].as_str().unwrap();
    assert!(why.contains("a directory of its own"), "{why}");
}
