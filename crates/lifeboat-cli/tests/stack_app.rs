//! An application Lifeboat's team did not write, brought back without
//! changes: a small wiki (a shell script and Python's `http.server`) whose
//! own configuration names its database's address, user and password and
//! its own port. The launch spec a recovery uses is the file's, not the one
//! frozen in the point; `validate` refuses what a stack could never start;
//! a drill and `stack down` say what they do as they do it.

mod stack_fixture;
mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use lifeboat_testkit::archive::{start_archive, wait_restorable};
use lifeboat_testkit::mariadb::free_port;
use lifeboat_testkit::procs::Bg;
use lifeboat_testkit::{Cli, tempdir};
use stack_fixture::sql;
use support::sites::two_sites;

const BIN: &str = env!("CARGO_BIN_EXE_lifeboat");

fn script(p: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, body).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `stack VERB --stack STACK --site SITE FLAGS…`: the arguments.
fn stack_args<'a>(verb: &'a str, stack: &'a str, site: &'a str, flags: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["stack", verb, "--stack", stack, "--site", site];
    a.extend_from_slice(flags);
    a
}

/// `recover` or `drill` (`cmd`) of stack `wiki` into the secondary with
/// FLAGS: the arguments.
fn wiki_into_secondary<'a>(cmd: &'a str, flags: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![cmd, "--stack", "wiki", "--to", "secondary"];
    a.extend_from_slice(flags);
    a
}

/// Asserts that the run failed; what it said on stderr.
fn refused(o: &std::process::Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "{err}");
    err
}

fn curl(url: &str) -> String {
    let o = Command::new("curl").args(["-fsS", url]).output().unwrap();
    assert!(
        o.status.success(),
        "{url}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// The wiki without a database: it serves the greeting its environment gives.
const GREETER: &str = "#!/bin/sh\nmkdir -p www && printf '%s\\n' \"$WIKI_GREETING\" > www/greeting.txt\nexec python3 -m http.server --bind 127.0.0.1 \"$WIKI_PORT\" --directory www\n";

fn greeter_config(w: &Path, app: &Path, greeting: &str) -> String {
    format!(
        r#"[site.secondary]
root = "{w}/secondary"
[vault.dr]
site = "secondary"
location = "{w}/dr-vault"
[resource.wiki-host]
kind = "instance"
paths = ["{app}"]
[resource.wiki-host.launch]
command = ["{app}/run.sh"]
cwd = "{app}"
env = {{ WIKI_GREETING = "{greeting}", WIKI_PORT = "${{port}}" }}
health = "http://${{listen}}/greeting.txt"
[stack.wiki]
members = ["wiki-host"]
check = "curl -fsS ${{wiki-host.url}}/greeting.txt | grep -qx {greeting}"
"#,
        w = w.display(),
        app = app.display(),
    )
}

#[test]
fn a_recovery_uses_the_launch_spec_of_the_file_and_a_drill_flags_the_difference() {
    let t = tempdir().unwrap();
    let w = t.path();
    let app = w.join("app/opt/wiki");
    script(&app.join("run.sh"), GREETER);
    let c = Cli::new(BIN, &w.join("dr-vault")).with_workdir(w);
    std::fs::write(w.join("lifeboat.toml"), greeter_config(w, &app, "old")).unwrap();
    c.ok(&["apply", "--auto-approve"]);
    // The point holds the launch spec of its day ("old") ...
    c.ok(&["jobs", "run", "--plan", "default"]);
    // ... then the file's changes (what `apply` reports as "changes spec").
    std::fs::write(w.join("lifeboat.toml"), greeter_config(w, &app, "new")).unwrap();
    let plan = c.ok(&["plan"]);
    assert!(plan.contains("wiki-host"), "{plan}");

    // A drill uses the file's spec (its check wants "new") and says that
    // the point's differs; each step is printed as it ends, into a pipe too.
    let mut child = c
        .command(&wiki_into_secondary("drill", &["--keep-for", "8s"]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let check_line = loop {
        let l = lines
            .next()
            .unwrap_or_else(|| panic!("no check step; stdout: {seen:#?}"))
            .unwrap();
        seen.push(l.clone());
        if l.contains("the stack's check") {
            break l;
        }
    };
    assert!(check_line.contains("exited with status 0"), "{check_line}");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the check's step reached the pipe while the drill still ran (keeping its scratch stack up)"
    );
    assert!(
        seen.iter()
            .any(|l| l.contains("wiki-host: restore the instance")),
        "{seen:#?}"
    );
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let rest = rest.join("\n");
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{seen:#?}\n{err}");
    // Each member's own RPO is said, as a recovery says it: the stack's
    // is its worst member's, named.
    assert!(
        rest.contains("sources:")
            && rest
                .lines()
                .any(|l| l.contains("wiki-host") && l.contains("RPO")),
        "{rest}"
    );
    assert!(
        err.contains("warning: the launch spec of `wiki-host` in lifeboat.toml differs"),
        "{err}"
    );
    let d = c.json(&wiki_into_secondary("drill", &[]));
    assert_eq!(d["passed"], true, "{d}");
    assert_eq!(
        d["launch_spec_differs"],
        serde_json::json!(["wiki-host"]),
        "{d}"
    );

    // A recovery too, and its report says where the spec came from.
    let r = c.json(&wiki_into_secondary("recover", &[]));
    let src = &r["sources"][0];
    assert_eq!(src["launch_spec"], "lifeboat.toml", "{r}");
    assert_eq!(src["launch_spec_differs"], true, "{r}");
    let url = r["outputs"]["wiki-host.url"].as_str().unwrap();
    assert_eq!(curl(&format!("{url}/greeting.txt")), "new");
    let status = c.ok(&stack_args("status", "wiki", "secondary", &[]));
    assert!(status.contains(url), "status names the address: {status}");

    // `stack down --purge` says what it does, member by member.
    let o = c.run(&stack_args("down", "wiki", "secondary", &["--purge"]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("wiki-host (instance): stopped in"), "{err}");
    assert!(
        err.contains(&format!(
            "removed {}",
            w.join("secondary/hosts/wiki-host").display()
        )),
        "{err}"
    );
}

#[test]
fn validate_refuses_a_launch_spec_a_stack_can_never_fill() {
    let t = tempdir().unwrap();
    let w = t.path();
    std::fs::write(
        w.join("lifeboat.toml"),
        r#"[vault.main]
location = "/srv/vault"
[resource.wiki-host]
kind = "instance"
paths = ["/opt/wiki"]
[resource.wiki-host.launch]
command = ["/opt/wiki/run"]
env = { DB = "${DATABASE_URL}" }
health = "${wiki-host.url}/health"
[stack.wiki]
members = ["wiki-host"]
"#,
    )
    .unwrap();
    let c = Cli::new(BIN, &w.join("v")).with_workdir(w);
    let o = c.run(&["validate"]);
    let err = refused(&o);
    assert!(
        err.contains("lifeboat.toml:9:")
            && err.contains("resource.wiki-host.launch.health")
            && err.contains("its own output `${wiki-host.url}`")
            && err.contains("${listen}"),
        "the self-reference, at its own line, with the fix: {err}"
    );
    assert!(
        err.contains("lifeboat.toml:8:")
            && err.contains("resource.wiki-host.launch.env.DB")
            && err.contains("`${DATABASE_URL}` has no value"),
        "a value no stack gives, at its own line: {err}"
    );
    assert!(!err.contains("--env NAME=VALUE"), "{err}");
}

/// The wiki with a database: host, port, user and password in its own file.
const WIKI: &str = "#!/bin/sh\n. \"$(dirname \"$0\")/wiki.conf\"\nmkdir -p www\nmariadb --no-defaults -h\"$DB_HOST\" -P\"$DB_PORT\" -u\"$DB_USER\" -p\"$DB_PASSWORD\" -N -B -e 'SELECT title FROM wiki.pages ORDER BY id' > www/pages.tmp || exit 4\nmv www/pages.tmp www/pages.txt\nexec python3 -m http.server --bind 127.0.0.1 \"$WIKI_PORT\" --directory www\n";

#[test]
fn an_application_that_names_the_primarys_database_address_user_and_password_comes_back_unchanged()
{
    let t = tempdir().unwrap();
    let w = t.path();
    let (db_port, app_port) = (free_port(), free_port());
    let app = w.join("app/opt/wiki");
    script(&app.join("run.sh"), WIKI);
    std::fs::write(
        app.join("wiki.conf"),
        format!(
            "DB_HOST=127.0.0.1\nDB_PORT={db_port}\nDB_USER=wiki\nDB_PASSWORD=wiki-secret\nWIKI_PORT={app_port}\n"
        ),
    )
    .unwrap();
    let sock = w.join("run/wiki-db.sock");
    std::fs::write(
        w.join("lifeboat.toml"),
        format!(
            r#"{sites}[resource.wiki-db]
kind = "mysql"
site = "primary"
dsn = "mysql://root@127.0.0.1:{db_port}"
password_file = "{w}/db.pass"
recover_listen = "127.0.0.1:{db_port}"
recover_socket = "{sock}"
[resource.wiki-host]
kind = "instance"
paths = ["{app}"]
[resource.wiki-host.launch]
command = ["{app}/run.sh"]
cwd = "{app}"
port = {app_port}
health = "http://127.0.0.1:{app_port}/pages.txt"
[stack.wiki]
members = ["wiki-db", "wiki-host"]
[stack.wiki-data]
members = ["wiki-db"]
"#,
            sites = two_sites(w, "dr-vault"),
            w = w.display(),
            app = app.display(),
            sock = sock.display(),
        ),
    )
    .unwrap();
    // Root's password in the primary, declared in the file: `stack up`
    // gives it to the server, the plan and the archive log in with it.
    lifeboat_testkit::write_secret(&w.join("db.pass"), "wiki-root-0123456789\n");
    let mut c = Cli::new(BIN, &w.join("dr-vault")).with_workdir(w);
    c.env.push((
        "LIFEBOAT_MYSQL_PASSWORD".into(),
        "wiki-root-0123456789".into(),
    ));
    c.ok(&["validate"]);
    c.ok(&["apply", "--auto-approve"]);
    // The primary's database (its server on the address the wiki names).
    c.ok(&stack_args("up", "wiki-data", "primary", &[]));
    let primary_sock = w.join("primary/mysql/wiki-db/mysqld.sock");
    sql(
        &primary_sock,
        "CREATE DATABASE wiki; CREATE TABLE wiki.pages (id INT PRIMARY KEY, title TEXT); \
         INSERT INTO wiki.pages VALUES (1, 'Home'), (2, 'Recovery runbook'); \
         CREATE USER wiki@'%' IDENTIFIED BY 'wiki-secret'; GRANT ALL ON wiki.* TO wiki@'%';",
    );
    // Its binlog archive, and the plan's snapshot of a stack's database,
    // which carries its users and grants.
    let archive = archived_and_snapshotted(&c, w, db_port);
    sql(
        &primary_sock,
        "INSERT INTO wiki.pages VALUES (3, 'Written after the snapshot')",
    );
    wait_until_archived(&c);
    drop(archive);

    // While the primary's server holds the address, a recovery is refused, clearly.
    let o = c.run(&wiki_into_secondary("recover", &[]));
    let err = refused(&o);
    assert!(
        err.contains(&format!(
            "must listen on 127.0.0.1:{db_port} (`recover_listen`)"
        )),
        "{err}"
    );
    c.ok(&stack_args("down", "wiki", "secondary", &["--purge"]));

    // The primary is gone; the wiki comes back with its own file unchanged.
    c.ok(&stack_args("down", "wiki-data", "primary", &[]));
    let r = c.json(&wiki_into_secondary("recover", &["--no-protect"]));
    assert_eq!(
        r["outputs"]["wiki-db.port"],
        db_port.to_string(),
        "the pinned address: {r}"
    );
    assert_eq!(
        r["outputs"]["wiki-host.url"],
        format!("http://127.0.0.1:{app_port}"),
        "the instance's own port: {r}"
    );
    assert_eq!(
        curl(&format!("http://127.0.0.1:{app_port}/pages.txt")),
        "Home\nRecovery runbook\nWritten after the snapshot"
    );
    // The pinned socket answers as the recovered server.
    assert_eq!(sql(&sock, "SELECT COUNT(*) FROM wiki.pages").trim(), "3");
    let status = c.ok(&stack_args("status", "wiki", "secondary", &[]));
    assert!(
        status.contains(&format!("127.0.0.1:{db_port} (socket {})", sock.display())),
        "{status}"
    );
    c.ok(&stack_args("down", "wiki", "secondary", &["--purge"]));
    assert!(
        std::fs::symlink_metadata(&sock).is_err(),
        "the link to the recovered server's socket is removed with it"
    );
}

#[test]
fn a_recovery_whose_point_spec_needs_a_value_no_stack_gives_says_what_to_change() {
    let t = tempdir().unwrap();
    let w = t.path();
    let app = w.join("app/opt/wiki");
    script(&app.join("run.sh"), GREETER);
    // The point's launch spec (from a spec file) wants a value given with
    // `restore instance --env`; the file's resource has no launch spec.
    std::fs::write(
        w.join("wiki-host.toml"),
        format!(
            "name = \"wiki-host\"\npaths = [\"{app}\"]\n[launch]\ncommand = [\"{app}/run.sh\"]\nenv = {{ DB = \"${{DATABASE_URL}}\" }}\nhealth = \"http://${{listen}}/greeting.txt\"\n",
            app = app.display()
        ),
    )
    .unwrap();
    std::fs::write(
        w.join("lifeboat.toml"),
        format!(
            "[site.secondary]\nroot = \"{w}/secondary\"\n[vault.dr]\nsite = \"secondary\"\nlocation = \"{w}/dr-vault\"\n[resource.wiki-host]\nkind = \"instance\"\npaths = [\"{app}\"]\n[stack.wiki]\nmembers = [\"wiki-host\"]\n",
            w = w.display(),
            app = app.display()
        ),
    )
    .unwrap();
    let c = Cli::new(BIN, &w.join("dr-vault")).with_workdir(w);
    c.ok(&["apply", "--auto-approve"]);
    c.ok(&[
        "backup",
        "instance",
        "--spec",
        w.join("wiki-host.toml").to_str().unwrap(),
    ]);
    let o = c.run(&wiki_into_secondary("recover", &[]));
    let err = refused(&o);
    assert!(
        err.contains("DATABASE_URL (used in launch.env.DB)")
            && err.contains("[resource.wiki-host.launch]"),
        "{err}"
    );
    assert!(
        !err.contains("--env NAME=VALUE"),
        "recover has no --env: {err}"
    );
}

#[test]
fn plan_and_jobs_show_speak_plainly() {
    let t = tempdir().unwrap();
    let w = t.path();
    let app = w.join("app/opt/wiki");
    script(&app.join("run.sh"), GREETER);
    std::fs::write(w.join("lifeboat.toml"), greeter_config(w, &app, "hi")).unwrap();
    let c = Cli::new(BIN, &w.join("dr-vault")).with_workdir(w);
    let plan = c.ok(&["plan"]);
    assert!(plan.contains("protect an instance resource"), "{plan}");
    let o = c.run(&["jobs", "show", "4"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains(&format!("state directory {}", w.join("state").display())),
        "names where it looked: {err}"
    );
}

/// Waits until the vault (`c`'s) can restore `wiki-db` to now (its archive
/// holds the commits up to then).
fn wait_until_archived(c: &Cli) {
    let t = chrono::Utc::now();
    wait_restorable(
        c,
        Some("wiki-db"),
        t,
        std::time::Duration::from_secs(60),
        || format!("the archive never held the commits up to {t}"),
    );
}

/// The wiki as a stack hands it its database: it keeps the DSN it was
/// given (`${wiki-db.dsn}`) and serves it back.
const DSN_KEEPER: &str = "#!/bin/sh\nmkdir -p www && printf '%s\\n' \"$WIKI_DSN\" > www/dsn.txt\nexec python3 -m http.server --bind 127.0.0.1 \"$WIKI_PORT\" --directory www\n";

/// `wiki-db`'s binlog archive running (root logs in with the environment's
/// password) and the default plan run once: the snapshot carries users
/// and grants, the archive what follows.
fn archived_and_snapshotted(c: &Cli, w: &Path, db_port: u16) -> Bg {
    let archive = start_archive(
        c,
        &format!("mysql://root@127.0.0.1:{db_port}"),
        w,
        &["--resource", "wiki-db", "--seal-interval", "1s"],
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    c.ok(&["jobs", "run", "--plan", "default"]);
    archive
}

/// `%XX` escapes decoded.
fn percent_decoded(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// `mariadb` over TCP with the account a DSN (`mysql://user:pw@host:port`) names.
fn as_dsn(dsn: &str, q: &str) -> Result<String, String> {
    // A URL: user and password percent-encoded.
    let rest = dsn.trim().strip_prefix("mysql://").unwrap();
    let (cred, at) = rest.rsplit_once('@').unwrap();
    let (user, pw) = cred.split_once(':').unwrap();
    let (user, pw) = (percent_decoded(user), percent_decoded(pw));
    let (host, port) = at.split_once(':').unwrap();
    let o = Command::new("mariadb")
        .args(["--no-defaults", &format!("-h{host}"), &format!("-P{port}")])
        .arg(format!("-u{user}"))
        .args(["-N", "-B", "-e", q])
        .env("MYSQL_PWD", pw)
        .output()
        .unwrap();
    match o.status.success() {
        true => Ok(String::from_utf8_lossy(&o.stdout).into_owned()),
        false => Err(String::from_utf8_lossy(&o.stderr).into_owned()),
    }
}

#[test]
fn a_stack_hands_its_application_its_own_account_not_root_in_the_primary_and_after_recovery() {
    let t = tempdir().unwrap();
    let w = t.path();
    let db_port = free_port();
    let app = w.join("app/opt/wiki");
    script(&app.join("run.sh"), DSN_KEEPER);
    lifeboat_testkit::write_secret(&w.join("db.pass"), "wiki-root-0123456789\n");
    // A password no URL takes as it is: `:`, `@`, `/`, `%`, `#`, `'`.
    lifeboat_testkit::write_secret(&w.join("app.pass"), "wiki:p@ss/%41#x'\n");
    std::fs::write(
        w.join("lifeboat.toml"),
        format!(
            r#"{sites}[resource.wiki-db]
kind = "mysql"
site = "primary"
dsn = "mysql://root@127.0.0.1:{db_port}"
password_file = "{w}/db.pass"
app = {{ user = "wiki", database = "wiki_db", password_file = "{w}/app.pass" }}
[resource.wiki-host]
kind = "instance"
site = "primary"
paths = ["{app}"]
[resource.wiki-host.launch]
command = ["{app}/run.sh"]
cwd = "{app}"
env = {{ WIKI_DSN = "${{wiki-db.dsn}}", WIKI_PORT = "${{port}}" }}
health = "http://${{listen}}/dsn.txt"
[stack.wiki]
members = ["wiki-db", "wiki-host"]
"#,
            sites = two_sites(w, "dr-vault"),
            w = w.display(),
            app = app.display(),
        ),
    )
    .unwrap();
    let mut c = Cli::new(BIN, &w.join("dr-vault")).with_workdir(w);
    c.env.push((
        "LIFEBOAT_MYSQL_PASSWORD".into(),
        "wiki-root-0123456789".into(),
    ));
    c.ok(&["validate"]);
    c.ok(&["apply", "--auto-approve"]);
    // A password file every local user can read is refused before anything
    // starts, naming the file and the fix.
    {
        use std::os::unix::fs::PermissionsExt;
        let pass = w.join("app.pass");
        std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o644)).unwrap();
        let o = c.run(&stack_args("up", "wiki", "primary", &[]));
        let err = refused(&o);
        assert!(
            err.contains(&pass.display().to_string()) && err.contains("chmod o-rwx"),
            "{err}"
        );
        assert!(
            !w.join("primary/mysql").exists(),
            "nothing was provisioned: {err}"
        );
        std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let up = c.json(&stack_args("up", "wiki", "primary", &[]));

    // The application got its own account, not root: all it needs on its
    // database, nothing beyond (no mysql.*, nothing that ignores read_only).
    let dsn = std::fs::read_to_string(app.join("www/dsn.txt")).unwrap();
    assert!(
        dsn.starts_with(&format!(
            "mysql://wiki:wiki%3Ap%40ss%2F%2541%23x%27@127.0.0.1:{db_port}"
        )),
        "{dsn} ({up})"
    );
    as_dsn(
        &dsn,
        "CREATE DATABASE IF NOT EXISTS wiki_db; CREATE TABLE wiki_db.pages (id INT PRIMARY KEY, title TEXT); \
         INSERT INTO wiki_db.pages VALUES (1, 'Home'), (2, 'Recovery runbook')",
    )
    .unwrap();
    // `_` is no wildcard: no other database matching `wiki_db`.
    let denied = as_dsn(&dsn, "CREATE DATABASE wikiXdb").unwrap_err();
    assert!(denied.contains("denied"), "{denied}");
    let denied = as_dsn(&dsn, "SELECT COUNT(*) FROM mysql.global_priv").unwrap_err();
    assert!(denied.contains("denied"), "{denied}");
    let grants = as_dsn(&dsn, "SHOW GRANTS").unwrap();
    assert!(
        !grants.contains("ALL PRIVILEGES ON *.*") && !grants.contains("SUPER"),
        "{grants}"
    );
    // Root still has its own password (not handed to the application).
    assert!(!dsn.contains("wiki-root-0123456789"), "{dsn}");

    // The plan's snapshot carries users and grants, the archive what
    // follows; the primary is lost; the recovery hands the application the
    // same account.
    let archive = archived_and_snapshotted(&c, w, db_port);
    as_dsn(
        &dsn,
        "INSERT INTO wiki_db.pages VALUES (3, 'After the snapshot')",
    )
    .unwrap();
    wait_until_archived(&c);
    drop(archive);
    c.ok(&stack_args("down", "wiki", "primary", &[]));
    let r = c.json(&wiki_into_secondary("recover", &["--no-protect"]));
    let url = r["outputs"]["wiki-host.url"].as_str().unwrap();
    let rdsn = curl(&format!("{url}/dsn.txt"));
    let rport = r["outputs"]["wiki-db.port"].as_str().unwrap();
    assert!(
        rdsn.starts_with(&format!(
            "mysql://wiki:wiki%3Ap%40ss%2F%2541%23x%27@127.0.0.1:{rport}"
        )),
        "{rdsn}"
    );
    assert_eq!(
        as_dsn(&rdsn, "SELECT title FROM wiki_db.pages ORDER BY id").unwrap(),
        "Home\nRecovery runbook\nAfter the snapshot\n"
    );
    assert!(
        as_dsn(&rdsn, "SELECT COUNT(*) FROM mysql.global_priv")
            .unwrap_err()
            .contains("denied")
    );
    c.ok(&stack_args("down", "wiki", "secondary", &["--purge"]));
}
