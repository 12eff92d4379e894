//! `lifeboat serve` at the edges (issue 21): a restore goes only where the
//! file allows (judged by the real path); the token never reaches the log;
//! one daemon per state directory and one run per plan; an unreachable
//! vault never stalls a route; SIGTERM after a vault was opened exits 0.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use lifeboat_testkit::tempdir;

use crate::support::{Server, end_of, free_port, site, wait_bounded};

#[test]
fn sigterm_after_a_request_opened_a_vault_exits_0_without_a_panic() {
    let d = tempdir().unwrap();
    let s = site(d.path(), "");
    let mut srv = s.serve(&[], None);
    // Both read vaults: the snapshot and a point listing.
    srv.json("/api/v1/resources");
    let points = srv.json("/api/v1/resources/data/points");
    assert!(!points["points"].as_array().unwrap().is_empty(), "{points}");
    let st = srv.stop();
    let err = srv.stderr_text();
    assert_eq!(st.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("daemon stopped"),
        "the shutdown is logged: {err}"
    );
}

#[test]
fn the_api_token_is_not_written_to_a_log() {
    let d = tempdir().unwrap();
    let s = site(d.path(), "");
    // stderr is a file here, as it is a journal under systemd.
    let mut srv = s.serve(&[], None);
    let token_file = d.path().join("state/api-token");
    assert!(srv.token.len() >= 32);
    srv.stop();
    let err = srv.stderr_text();
    assert!(!err.contains(&srv.token), "the token is in the log: {err}");
    assert!(
        err.contains(&token_file.display().to_string()),
        "the log names the token's file: {err}"
    );
}

#[test]
fn a_second_serve_on_one_state_directory_is_refused_naming_the_first() {
    let d = tempdir().unwrap();
    let s = site(d.path(), "");
    let srv = s.serve(&[], None);
    let listen = format!("127.0.0.1:{}", free_port());
    let mut second = s
        .cli
        .command(&["serve", "--listen", &listen])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let st = wait_bounded(&mut second, Duration::from_secs(30));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut err).unwrap();
    let st = st.unwrap_or_else(|| panic!("a second serve on the same state ran: {err}"));
    assert_eq!(st.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("process {}", srv.child.id())),
        "names the first daemon's pid: {err}"
    );
}

#[test]
fn a_second_run_of_a_running_plan_is_skipped_409_from_the_api_and_the_command_line() {
    let d = tempdir().unwrap();
    let s = site(d.path(), "");
    let hold = d.path().join("hold");
    std::fs::create_dir(&hold).unwrap();
    let srv = s.serve(
        &[(
            "LIFEBOAT_TEST_PAUSE",
            format!("index-loaded:{}", hold.display()),
        )],
        None,
    );
    let (code, first) = srv.post("/api/v1/plans/nightly/run", None);
    assert_eq!(code, 202, "{first}");
    let running = first["jobs"][0].as_i64().unwrap();
    let t = std::time::Instant::now();
    while !hold.join("index-loaded.reached").exists() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the run never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // While it runs: the API answers 409 with the running job's id.
    let (code, body) = srv.post("/api/v1/plans/nightly/run", Some(r#"{"resource":"data"}"#));
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["running_job"].as_i64(), Some(running), "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("running already"),
        "{body}"
    );
    // The command line too, with the same lock.
    let out = s.cli.run(&["jobs", "run", "--plan", "nightly"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("job {running}")), "{err}");
    let skipped = s.cli.json(&["jobs", "list", "--status", "skipped"]);
    assert_eq!(skipped.as_array().unwrap().len(), 2, "{skipped}");
    // The first run goes on and ends as it would have (both its resources).
    std::fs::write(hold.join("index-loaded.go"), b"").unwrap();
    let end = end_of(&srv.events(running));
    assert_eq!(end["status"], "succeeded", "{end}");
    let t = std::time::Instant::now();
    while !s
        .cli
        .json(&["jobs", "list", "--status", "running"])
        .as_array()
        .unwrap()
        .iter()
        .all(|j| j["kind"] != "backup")
    {
        assert!(t.elapsed() < Duration::from_secs(60), "the run never ended");
        std::thread::sleep(Duration::from_millis(100));
    }
    let t = std::time::Instant::now();
    while rustix::process::test_kill_process(
        rustix::process::Pid::from_raw(first["pid"].as_i64().unwrap() as i32).unwrap(),
    )
    .is_ok()
    {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the run's process never ended"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, again) = srv.post("/api/v1/plans/nightly/run", Some(r#"{"resource":"data"}"#));
    assert_eq!(code, 202, "after the run, a new one starts: {again}");
}

fn restore(
    srv: &Server,
    file: &Path,
    to: &str,
    overwrite: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut body = serde_json::json!({
        "vault": "main", "point": "latest", "resource": "data",
        "path": file.display().to_string(), "to": to,
    });
    if let Some(o) = overwrite {
        body["overwrite"] = o.into();
    }
    srv.post("/api/v1/restores", Some(&body.to_string()))
}

#[test]
fn the_api_restores_only_below_the_restore_roots_by_real_path() {
    let d = tempdir().unwrap();
    let s = site(d.path(), "");
    let srv = s.serve(&[], None);
    let w = d.path().display().to_string();
    let file = lifeboat_testkit::files_below(&d.path().join("data"))
        .into_iter()
        .find(|p| {
            p.symlink_metadata()
                .is_ok_and(|m| m.is_file() && m.len() > 0)
        })
        .unwrap();
    // The issue's case: `/proc/self/root` is `/`, with the live files.
    let (c, b) = restore(&srv, &file, "/proc/self/root", Some("always"));
    assert_eq!(c, 403, "{b}");
    let (c, b) = restore(&srv, &file, "/dev/shm/lifeboat-restore", None);
    assert_eq!(c, 403, "{b}");
    assert!(b["error"].as_str().unwrap().contains("kernel"), "{b}");
    // Outside the roots (default: restores/ in the state directory, the sites' roots).
    let (c, b) = restore(&srv, &file, &format!("{w}/elsewhere"), None);
    assert_eq!(c, 403, "{b}");
    assert!(
        b["error"]
            .as_str()
            .unwrap()
            .contains("[server] restore_roots"),
        "names the setting: {b}"
    );
    // A link below a root that leads out of it.
    let roots = d.path().join("state/restores");
    std::fs::create_dir_all(&roots).unwrap();
    let elsewhere = d.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, roots.join("out")).unwrap();
    let (c, b) = restore(
        &srv,
        &file,
        &roots.join("out/x").display().to_string(),
        None,
    );
    assert_eq!(c, 403, "{b}");
    assert!(b["error"].as_str().unwrap().contains("really"), "{b}");
    // One that leads nowhere (the restore would create its target there).
    std::os::unix::fs::symlink(d.path().join("nowhere"), roots.join("dangling")).unwrap();
    let (c, b) = restore(
        &srv,
        &file,
        &roots.join("dangling/x").display().to_string(),
        None,
    );
    assert_eq!(c, 403, "{b}");
    assert_eq!(
        std::fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "nothing was written"
    );
    assert!(!d.path().join("nowhere").exists(), "nothing was written");
    // A bucket location on this host is judged the same.
    let bucket = s.cli.json(&["points", "list", "--resource", "front"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (c, b) = srv.post(
        "/api/v1/restores/bucket",
        Some(&format!(
            r#"{{"vault":"main","point":"{bucket}","to":"file://{w}/elsewhere"}}"#
        )),
    );
    assert_eq!(c, 403, "{b}");
    // Below a root: restored.
    let to = roots.join("one");
    let (c, started) = restore(&srv, &file, &to.display().to_string(), None);
    assert_eq!(c, 202, "{started}");
    let end = end_of(&srv.events(started["jobs"][0].as_i64().unwrap()));
    assert_eq!(end["status"], "succeeded", "{end}");
    assert_eq!(
        std::fs::read(to.join(file.strip_prefix("/").unwrap())).unwrap(),
        std::fs::read(&file).unwrap()
    );
}

/// `curl` with a 5 s bound: (status, body); status 0 when it timed out.
fn quick(srv: &Server, path: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-m", "5", "-w", "\n%{http_code}"])
        .args(["-H", &format!("Authorization: Bearer {}", srv.token)])
        .arg(format!("{}{path}", srv.base))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn a_vault_whose_endpoint_never_answers_does_not_stall_any_route() {
    let d = tempdir().unwrap();
    let s = site(d.path(), "");
    // Accepts connections (the kernel does) and never answers.
    let hole = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://127.0.0.1:{}", hole.local_addr().unwrap().port());
    let file = d.path().join("lifeboat.toml");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str(&format!(
        "\n[vault.silent]\nlocation = \"s3://silent?endpoint={endpoint}\"\n"
    ));
    std::fs::write(&file, text).unwrap();
    let creds = [
        ("AWS_ACCESS_KEY_ID", "test".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
    ];
    let srv = s.serve(&creds, None);
    for round in 0..2 {
        for path in [
            "/api/v1/resources",
            "/api/v1/report",
            "/metrics",
            "/api/v1/vaults",
            "/api/v1/stacks",
            "/api/v1/resources/data/points",
            "/api/v1/plans",
            "/api/v1/jobs",
        ] {
            let (code, body) = quick(&srv, path);
            assert_eq!(
                code, 200,
                "round {round}: GET {path} did not answer in time: {body}"
            );
        }
        let (code, body) = quick(&srv, "/api/v1/points/silent/abcd");
        assert_eq!(code, 503, "round {round}: {body}");
        assert!(body.contains("unreachable"), "{body}");
    }
    let vaults: serde_json::Value = serde_json::from_str(&quick(&srv, "/api/v1/vaults").1).unwrap();
    let silent = vaults
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "silent")
        .unwrap();
    assert!(
        silent["error"].as_str().unwrap().contains("unreachable"),
        "{silent}"
    );
    let main = vaults
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "main")
        .unwrap();
    assert!(main["error"].is_null(), "the other vaults are read: {main}");
    let points: serde_json::Value =
        serde_json::from_str(&quick(&srv, "/api/v1/resources/data/points").1).unwrap();
    assert!(!points["points"].as_array().unwrap().is_empty(), "{points}");
    assert_eq!(points["unreadable"][0]["vault"], "silent", "{points}");
    drop(hole);
}
