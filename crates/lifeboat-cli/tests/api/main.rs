//! The REST API of `lifeboat serve`, through the real binary and `curl`:
//! every route refuses a missing or wrong token (and a token in the URL),
//! the read routes show what real backups made, a run started by POST
//! completes and its event stream ends with `succeeded`, a running job
//! shows live progress and is cancelled, a file is restored through the
//! API, `/metrics` carries the named series, TLS works with a self-signed
//! certificate, and a schema fuzz (schemathesis) finds no 5xx.

mod mysql;
mod physical;
mod restores;
mod safety;
mod silent;
mod stacks;
mod support;
mod tls_fuzz;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use lifeboat_testkit::tempdir;
use support::{end_of, series, site};

#[test]
fn every_route_but_healthz_needs_the_token() {
    let d = tempdir().unwrap();
    let s = site(d.path(), "");
    let srv = s.serve(&[], None);
    // Created on first start, private; named in the log, never printed there.
    let tok = s.dir.join("state/api-token");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&tok).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        !srv.stderr_text().contains(&srv.token)
            && srv.stderr_text().contains(&tok.display().to_string()),
        "the log names the token's file, not the token: {}",
        srv.stderr_text()
    );
    let doc = srv.json("/openapi.json");
    let point = s.cli.json(&["points", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 17, "{:?}", paths.keys());
    // Each kind of resource as its protector describes it: what the
    // console walks and restores by, instead of knowing the kinds.
    let kinds = srv.json("/api/v1/kinds");
    let kind = |k: &str| {
        kinds
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["kind"] == k)
            .unwrap_or_else(|| panic!("no kind {k} in {kinds}"))
            .clone()
    };
    assert_eq!(kind("files")["browse"], "tree");
    assert_eq!(kind("files")["restore"], "files");
    let db = kind("mysql");
    assert_eq!(
        db["point_kinds"],
        serde_json::json!(["mysql", "mysql-binlog", "mysql-physical"])
    );
    assert_eq!(db["browse"], "levels");
    assert_eq!(db["levels"], serde_json::json!(["database", "table"]));
    assert_eq!(kind("bucket")["browse"], "prefix");
    assert_eq!(kind("instance")["restore"], "command-only");
    assert_eq!(kind("instance")["command"], "lifeboat restore instance");
    // Every body has a schema.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for s in [
        "RestoreBody",
        "RunBody",
        "Started",
        "JobView",
        "PointView",
        "PointList",
        "Contents",
        "ResourceView",
        "ReportView",
        "VaultView",
        "ReplicationView",
        "PlanView",
        "CancelView",
        "ErrorBody",
        "Health",
        "StackView",
        "DrillBody",
        "RecoveryView",
        "LagHistory",
        "DatabaseRestoreBody",
        "BucketRestoreBody",
    ] {
        assert!(
            schemas.contains_key(s),
            "no schema {s}: {:?}",
            schemas.keys()
        );
    }
    let wrong = "0".repeat(srv.token.len());
    let mut checked = 0;
    for (p, item) in paths {
        let path = p
            .replace("{name}", "data")
            .replace("{vault}", "main")
            .replace(
                "{id}",
                if p.starts_with("/api/v1/points") {
                    &point
                } else {
                    "1"
                },
            )
            .replace("{plan}", "nightly");
        for method in item.as_object().unwrap().keys() {
            let m = method.to_uppercase();
            let body = (m == "POST").then_some("{}");
            let (none, _) = srv.request(&m, &path, None, body);
            let (bad, _) = srv.request(&m, &path, Some(&wrong), body);
            let (query, _) = srv.request(
                &m,
                &format!("{path}?access_token={}&token={}", srv.token, srv.token),
                None,
                body,
            );
            if p == "/healthz" {
                assert_eq!((none, bad, query), (200, 200, 200), "{m} {p}");
            } else {
                assert_eq!(
                    (none, bad, query),
                    (401, 401, 401),
                    "{m} {p}: without, wrong, in the URL"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 15, "{checked} routes checked");
    // A restart reads the same token and prints it no more.
    drop(srv);
    let again = s.serve(&[], None);
    assert!(!again.stderr_text().contains(&again.token));
    assert_eq!(backups(&again.json("/api/v1/jobs")), 2);
}

#[test]
fn read_routes_show_what_the_backups_made() {
    let d = tempdir().unwrap();
    let s = site(d.path(), "");
    let srv = s.serve(&[], None);
    let points = s.cli.json(&["points", "list", "--resource", "data"]);
    let id = points[0]["id"].as_str().unwrap();

    let res = srv.json("/api/v1/resources");
    let data = res
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "data")
        .unwrap();
    assert_eq!(data["kind"], "files");
    assert_eq!(data["plans"][0], "nightly");
    assert_eq!(data["compliant"], true, "{data}");
    assert!(
        data["controls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "copy:nightly:dr" && c["ok"] == true)
    );

    // Points of the resource: the original and its copy in `dr`, with lineage.
    let list = srv.json("/api/v1/resources/data/points");
    let pts = list["points"].as_array().unwrap();
    assert_eq!(pts.len(), 2, "{list}");
    let copy = pts.iter().find(|p| p["vault"] == "dr").unwrap();
    assert_eq!(copy["copied_from"]["point"], *id);
    let orig = srv.json(&format!("/api/v1/points/main/{}", &id[..12]));
    assert_eq!(orig["id"], *id);
    assert_eq!(orig["kind"], "files");
    assert!(
        orig["tags"]
            .as_array()
            .unwrap()
            .contains(&"plan:nightly".into())
    );
    assert_eq!(
        srv.get("/api/v1/points/main/ffff0000", Some(&srv.token)).0,
        404
    );
    assert_eq!(
        srv.get("/api/v1/resources/nope/points", Some(&srv.token)).0,
        404
    );

    // Contents: a directory of the files point, as `points ls` lists it.
    let dir = format!("{}/data", s.dir.display());
    let c = srv.json(&format!("/api/v1/points/main/{id}/contents?path={dir}"));
    let mut names: Vec<String> = c["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    let mut want: Vec<String> = std::fs::read_dir(s.dir.join("data"))
        .unwrap()
        .map(|e| format!("{dir}/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    names.sort();
    want.sort();
    assert_eq!(names, want);
    // A bucket point's keys, by prefix.
    let fp = s.cli.json(&["points", "list", "--resource", "front"]);
    let fid = fp[0]["id"].as_str().unwrap();
    let keys = srv.json(&format!("/api/v1/points/main/{fid}/contents?prefix=site/"));
    assert_eq!(keys["entries"][0]["name"], "site/index.html", "{keys}");
    assert_eq!(keys["entries"][0]["size"], 13);

    // Vault `main` as `/vaults` shows it.
    let main_vault = || {
        srv.json("/api/v1/vaults")
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "main")
            .cloned()
            .unwrap()
    };
    let main = main_vault();
    assert_eq!(main["stats"]["points"], 2, "{main}");
    assert!(main["stats"]["logical_bytes"].as_u64().unwrap() > 0);
    assert!(main["stats"]["dedup_ratio"].is_number());
    assert_eq!(main["lock"]["configured"], false);

    let rep = srv.json("/api/v1/report");
    assert_eq!(rep["compliant"], true, "{rep}");
    let jobs = srv.json("/api/v1/jobs?resource=data&status=succeeded");
    assert_eq!(jobs.as_array().unwrap().len(), 1);
    let j = srv.json(&format!("/api/v1/jobs/{}", jobs[0]["id"]));
    assert_eq!(j["point"], *id);
    assert_eq!(
        srv.get("/api/v1/jobs?status=bogus", Some(&srv.token)).0,
        400
    );
    assert_eq!(srv.get("/api/v1/jobs/999", Some(&srv.token)).0, 404);
    let plans = srv.json("/api/v1/plans");
    assert_eq!(plans[0]["name"], "nightly");
    assert_eq!(plans[0]["copies"][0], "dr");
    assert!(plans[0]["next_run"].is_string());
    let rules = srv.json("/api/v1/replication");
    assert_eq!(rules[0]["name"], "front-dr");
    // The daemon next to the API supervises the rule.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut rules = rules;
    while rules[0]["running"] != true {
        assert!(std::time::Instant::now() < deadline, "{rules}");
        std::thread::sleep(std::time::Duration::from_millis(200));
        rules = srv.json("/api/v1/replication");
    }
    // A vault's figures read its whole index: they are served from a
    // minute's cache, so a point made since shows in them later.
    s.cli.ok(&["jobs", "run", "--plan", "nightly"]);
    assert_eq!(
        s.cli
            .json(&["points", "list", "--resource", "data"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let main = main_vault();
    assert_eq!(main["stats"]["points"], 2, "{main}");
}

#[test]
fn a_run_started_by_post_completes_and_its_events_end_with_succeeded() {
    let d = tempdir().unwrap();
    let s = site(d.path(), "");
    let srv = s.serve(&[], None);
    std::fs::write(s.dir.join("data/new-file"), b"made after the first backup").unwrap();
    let (code, started) = srv.post("/api/v1/plans/nightly/run", Some(r#"{"resource":"data"}"#));
    assert_eq!(code, 202, "{started}");
    let job = started["jobs"][0].as_i64().unwrap();
    let stream = srv.events(job);
    assert!(stream.contains("event: status"), "{stream}");
    let end = end_of(&stream);
    assert_eq!(end["status"], "succeeded", "{stream}");
    assert_eq!(end["trigger"], "api");
    assert!(
        end["log"]
            .as_str()
            .unwrap()
            .contains("copied to vault `dr`"),
        "{end}"
    );
    // The point is in the vault, and holds the new file.
    let newest = s
        .cli
        .json(&["points", "show", "latest", "--resource", "data"]);
    assert_eq!(newest["id"], end["point"]);
    let ls = s.cli.ok(&[
        "points",
        "ls",
        "latest",
        "--resource",
        "data",
        "--recursive",
    ]);
    assert!(ls.contains("new-file"));
    // Bad requests are refused before anything starts.
    assert_eq!(srv.post("/api/v1/plans/none/run", None).0, 404);
    assert_eq!(
        srv.post("/api/v1/plans/nightly/run", Some(r#"{"resource":"nope"}"#))
            .0,
        400
    );
    assert_eq!(backups(&srv.json("/api/v1/jobs")), 3);
}

#[test]
fn a_running_job_shows_progress_and_is_cancelled() {
    let d = tempdir().unwrap();
    let s = site(d.path(), "");
    let hold = s.dir.join("hold");
    std::fs::create_dir(&hold).unwrap();
    // The server's children inherit the pause: each backup holds once its index is loaded.
    let srv = s.serve(
        &[(
            "LIFEBOAT_TEST_PAUSE",
            format!("index-loaded:{}", hold.display()),
        )],
        None,
    );
    let (code, started) = srv.post("/api/v1/plans/nightly/run", None);
    assert_eq!(code, 202, "{started}");
    let job = started["jobs"][0].as_i64().unwrap();
    let t = Instant::now();
    while !hold.join("index-loaded.reached").exists() {
        assert!(t.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(20));
    }
    // The job's process writes its progress into the store once a second.
    let t = Instant::now();
    let progress = loop {
        let j = srv.json(&format!("/api/v1/jobs/{job}"));
        assert_eq!(j["status"], "running");
        if !j["progress"].is_null() {
            break j["progress"].clone();
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no progress recorded: {j}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(progress["unit"], "files");
    assert!(progress["bytes"].is_u64());
    // Follow it while it runs; cancel, then let it go: it stops without a
    // point, and the stream (progress first) ends `cancelled`.
    let stream = std::thread::scope(|sc| {
        let follower = sc.spawn(|| srv.events(job));
        std::thread::sleep(Duration::from_millis(300));
        let (code, c) = srv.post(&format!("/api/v1/jobs/{job}/cancel"), None);
        assert_eq!(code, 202, "{c}");
        std::fs::write(hold.join("index-loaded.go"), b"").unwrap();
        follower.join().unwrap()
    });
    let first = stream
        .find("event: progress")
        .unwrap_or_else(|| panic!("{stream}"));
    assert!(first < stream.find("event: end").unwrap());
    let end = end_of(&stream);
    assert_eq!(end["status"], "cancelled", "{end}");
    assert_eq!(srv.post(&format!("/api/v1/jobs/{job}/cancel"), None).0, 409);
    assert_eq!(srv.post("/api/v1/jobs/424242/cancel", None).0, 404);
    assert_eq!(
        s.cli
            .json(&["points", "list", "--resource", "data"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    s.cli.ok(&["vault", "check"]);
}

#[test]
fn a_file_is_restored_through_the_api() {
    let d = tempdir().unwrap();
    let roots = format!("restore_roots = [\"{}\"]", d.path().display());
    let s = site(d.path(), &roots);
    let srv = s.serve(&[], None);
    let file = lifeboat_testkit::files_below(&s.dir.join("data"))
        .into_iter()
        .find(|p| {
            p.symlink_metadata()
                .is_ok_and(|m| m.is_file() && m.len() > 0)
        })
        .unwrap();
    let to = s.dir.join("restored");
    let body = serde_json::json!({
        "vault": "main", "point": "latest", "resource": "data",
        "path": file.display().to_string(), "to": to.display().to_string(),
    });
    let (code, started) = srv.post("/api/v1/restores", Some(&body.to_string()));
    assert_eq!(code, 202, "{started}");
    let end = end_of(&srv.events(started["jobs"][0].as_i64().unwrap()));
    assert_eq!(end["status"], "succeeded", "{end}");
    assert_eq!(end["kind"], "restore");
    assert_eq!(end["resource"], "data");
    let restored = to.join(file.strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read(&restored).unwrap(),
        std::fs::read(&file).unwrap()
    );
    let others: Vec<_> = std::fs::read_dir(restored.parent().unwrap())
        .unwrap()
        .collect();
    assert_eq!(others.len(), 1, "only the one file is restored");
    // Refused: a relative target, an unknown point, an unknown vault, a bad policy.
    let bad = |patch: serde_json::Value| {
        let mut b = body.clone();
        for (k, v) in patch.as_object().unwrap() {
            b[k] = v.clone();
        }
        srv.post("/api/v1/restores", Some(&b.to_string())).0
    };
    assert_eq!(bad(serde_json::json!({"to": "relative/dir"})), 400);
    assert_eq!(bad(serde_json::json!({"to": "/"})), 400);
    assert_eq!(bad(serde_json::json!({"point": "ffff0000"})), 404);
    assert_eq!(bad(serde_json::json!({"vault": "nope"})), 404);
    assert_eq!(bad(serde_json::json!({"overwrite": "sometimes"})), 400);
}

#[test]
fn metrics_carry_jobs_points_copies_and_replication() {
    let d = tempdir().unwrap();
    let s = site(d.path(), "");
    // A replication rule running (its state where the server reads it).
    let dd = s.dir.display().to_string();
    let mut rep = s
        .cli
        .command(&[
            "replicate",
            "--from",
            &format!("file://{dd}/bucket"),
            "--to",
            &format!("file://{dd}/replica"),
            "--existing",
            "--state",
            &format!("{dd}/state/replication"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !s.dir.join("replica/site/index.html").exists() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "replication never copied"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let srv = s.serve(&[], None);
    let (code, text) = srv.get("/metrics", Some(&srv.token));
    assert_eq!(code, 200);
    assert!(text.ends_with("# EOF\n"), "{text}");
    let m = series(&text);
    let get = |name: &str| -> f64 {
        m.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("{name} missing in:\n{text}"))
    };
    assert_eq!(
        get(r#"lifeboat_jobs_total{resource="data",kind="backup",status="succeeded"}"#),
        1.0
    );
    assert_eq!(
        get(
            r#"lifeboat_job_duration_seconds_count{resource="data",kind="backup",status="succeeded"}"#
        ),
        1.0
    );
    assert_eq!(
        get(
            r#"lifeboat_job_duration_seconds_bucket{le="+Inf",resource="data",kind="backup",status="succeeded"}"#
        ),
        1.0
    );
    assert!(
        get(r#"lifeboat_job_bytes_total{resource="data",kind="backup",status="succeeded"}"#) > 0.0
    );
    let last = get(r#"lifeboat_last_success_timestamp_seconds{resource="data"}"#);
    assert!((chrono::Utc::now().timestamp() as f64 - last).abs() < 600.0);
    let age = get(r#"lifeboat_newest_point_age_seconds{resource="front"}"#);
    assert!((0.0..600.0).contains(&age));
    assert_eq!(
        get(r#"lifeboat_copy_lag_seconds{resource="data",plan="nightly",vault="dr"}"#),
        0.0
    );
    assert_eq!(get(r#"lifeboat_resource_compliant{resource="data"}"#), 1.0);
    let rule = m
        .iter()
        .find(|(k, _)| k.starts_with("lifeboat_replication_running{"))
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(rule.1, 1.0, "{}", rule.0);
    assert!(
        m.iter()
            .any(|(k, _)| k.starts_with("lifeboat_replication_backlog_objects{"))
    );
    // Every series the Grafana dashboard queries is exposed.
    let dash = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/grafana-dashboard.json"),
    )
    .unwrap();
    let mut used: Vec<String> = dash
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("lifeboat_"))
        // A histogram's family is named without `_bucket`, a counter's
        // without `_total` (OpenMetrics).
        .map(|w| {
            w.trim_end_matches("_bucket")
                .trim_end_matches("_total")
                .to_string()
        })
        .collect();
    used.sort();
    used.dedup();
    assert!(used.len() >= 10, "{used:?}");
    for name in used {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "the dashboard uses {name}, which /metrics does not have"
        );
    }
    let rules = srv.json("/api/v1/replication");
    assert_eq!(rules[0]["running"], true, "{rules}");
    assert_eq!(rules[0]["backlog_objects"], 0);
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_child(&rep),
        rustix::process::Signal::TERM,
    );
    rep.wait().unwrap();
}

#[test]
fn serve_stops_on_sigterm_while_a_client_follows_a_job() {
    let d = tempdir().unwrap();
    let s = site(d.path(), "");
    let hold = s.dir.join("hold");
    std::fs::create_dir(&hold).unwrap();
    // The held run ignores SIGTERM (it waits at the pause): killed after the grace.
    let mut srv = s.serve_with(
        &["--grace", "2s"],
        &[(
            "LIFEBOAT_TEST_PAUSE",
            format!("index-loaded:{}", hold.display()),
        )],
        None,
    );
    let (code, started) = srv.post("/api/v1/plans/nightly/run", Some(r#"{"resource":"data"}"#));
    assert_eq!(code, 202, "{started}");
    let job = started["jobs"][0].as_i64().unwrap();
    let t = Instant::now();
    while !hold.join("index-loaded.reached").exists() {
        assert!(t.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(20));
    }
    let (base, token, tls) = (srv.base.clone(), srv.token.clone(), srv.curl_tls.clone());
    let stream = std::thread::scope(|sc| {
        let follower = sc.spawn(|| support::follow(&base, &token, &tls, job));
        std::thread::sleep(Duration::from_millis(500));
        let pid = rustix::process::Pid::from_child(&srv.child);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        let t = Instant::now();
        let st = loop {
            if let Some(st) = srv.child.try_wait().unwrap() {
                break st;
            }
            assert!(
                t.elapsed() < Duration::from_secs(15),
                "serve did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(st.code(), Some(0), "{}", srv.stderr_text());
        follower.join().unwrap()
    });
    assert!(stream.contains("event: shutdown"), "{stream}");
    // The run died with the server; the next opener of the store says so.
    let t = Instant::now();
    loop {
        let jobs = s.cli.json(&["jobs", "list"]);
        if jobs[0]["status"] == "interrupted" {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(15), "{jobs}");
        std::thread::sleep(Duration::from_millis(100));
    }
    s.cli.ok(&["vault", "check"]);
}

/// How many backup jobs a job list holds (the daemon next to the API adds
/// its continuous jobs: replication, archives).
fn backups(jobs: &serde_json::Value) -> usize {
    jobs.as_array()
        .unwrap()
        .iter()
        .filter(|j| j["kind"] == "backup")
        .count()
}
