//! The daemon (`lifeboat serve`) with real runs: schedules (seconds-fast
//! crons), an overlapping run skipped and recorded, catch-up of a run
//! missed while it was down (from the history, then from the vault alone),
//! continuous jobs restarted with back-off, retention that leaves locked
//! points, notifications to a real HTTP listener (and a dead one that
//! stalls nothing), reload on SIGHUP and shutdown on SIGTERM.
//!
//! Every wait is on an event the daemon prints (`--json`) or a job in the
//! store, never a fixed sleep.

mod control_fixture;

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use control_fixture::{Daemon, control_cli, jobs};
use lifeboat_testkit::{Cli, make_sample_tree, tempdir};
use serde_json::Value;

const T: Duration = Duration::from_secs(60);

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v["time"].as_str().unwrap())
        .unwrap()
        .to_utc()
}

/// A directory vault `main`, a files resource `etc` and `plans` (TOML).
fn setup(w: &Path, plans: &str) -> Cli {
    make_sample_tree(&w.join("data"), 3);
    let text = format!(
        "[vault.main]\nlocation = \"{w}/vault\"\n[resource.etc]\npaths = [\"{w}/data\"]\n{plans}",
        w = w.display()
    );
    std::fs::write(w.join("lifeboat.toml"), text).unwrap();
    let c = control_cli(w);
    c.ok(&["apply", "--auto-approve"]);
    c
}

#[test]
fn runs_start_within_a_second_of_their_time_and_an_overlapping_run_is_skipped_and_recorded() {
    let d = tempdir().unwrap();
    let w = d.path();
    // Every 2 s; the first run's `before` hook holds it until `go` exists.
    let c = setup(
        w,
        &format!(
            "[plan.fast]\nresources = [\"etc\"]\nvault = \"main\"\nschedule = \"*/2 * * * * *\"\nhooks = {{ before = [\"while [ ! -e {w}/go ]; do sleep 0.05; done\"] }}\n",
            w = w.display()
        ),
    );
    let mut dm = Daemon::start(&c, &[]);
    // The new plan has no point in its vault: caught up at start, and held.
    let ready = dm.wait_event(T, "ready");
    assert_eq!(ready["caught_up"], serde_json::json!(["fast"]), "{ready}");
    let skipped = dm.wait_event(T, "skipped");
    assert_eq!(skipped["plan"], "fast");
    std::fs::write(w.join("go"), b"").unwrap();
    dm.wait_event(T, "run-ended");
    // The next runs start on their even second, within a second.
    for _ in 0..3 {
        let ev = dm.wait_for(T, "a scheduled run", |v| {
            v["event"] == "run-started" && v["trigger"] == "schedule"
        });
        let t = time(&ev);
        let lag_ms = (t.second() % 2) as i64 * 1000 + (t.nanosecond() / 1_000_000) as i64;
        assert!(lag_ms < 1000, "started {lag_ms} ms after its time: {ev}");
        eprintln!("scheduled run started {lag_ms} ms after its time");
    }
    dm.wait_event(T, "run-ended");
    let (st, _) = dm.stop();
    assert!(st.success(), "{st}");
    let skipped = jobs(&c, &["--status", "skipped"]);
    assert!(!skipped.is_empty());
    assert_eq!(skipped[0]["plan"], "fast");
    assert_eq!(skipped[0]["trigger"], "schedule");
    assert!(
        skipped[0]["error"]
            .as_str()
            .unwrap()
            .contains("the previous run of plan `fast`"),
        "{}",
        skipped[0]
    );
    let all = jobs(&c, &["--plan", "fast"]);
    // (The skip may be recorded before the held run's child recorded its job.)
    let first = all.iter().find(|j| j["trigger"] == "catch-up").unwrap();
    assert_eq!(first["status"], "succeeded", "{first}");
    assert!(
        all.iter()
            .filter(|j| j["status"] == "succeeded" && j["trigger"] == "schedule")
            .count()
            >= 3
    );
}

#[test]
fn a_run_missed_while_the_daemon_was_down_is_caught_up_once_inside_its_window() {
    let d = tempdir().unwrap();
    let w = d.path();
    // Both plans were due two minutes ago; `narrow` only allows one minute.
    let due = Utc::now() - chrono::Duration::minutes(2);
    let cron = format!("{} {} * * *", due.minute(), due.hour());
    let c = setup(
        w,
        &format!(
            "[plan.daily]\nresources = [\"etc\"]\nvault = \"main\"\nschedule = \"{cron}\"\n\
             [plan.narrow]\nresources = [\"etc\"]\nvault = \"main\"\nschedule = \"{cron}\"\nwindow = \"1m\"\n"
        ),
    );
    let mut dm = Daemon::start(&c, &[]);
    let ready = dm.wait_event(T, "ready");
    assert_eq!(ready["caught_up"], serde_json::json!(["daily"]), "{ready}");
    let why = dm.wait_event(T, "catch-up");
    assert!(
        why["why"]
            .as_str()
            .unwrap()
            .contains("no run in the job history"),
        "{why}"
    );
    dm.wait_event(T, "run-ended");
    let (st, _) = dm.stop();
    assert!(st.success());
    let j = jobs(&c, &["--plan", "daily"]);
    assert_eq!(j.len(), 1);
    assert_eq!(j[0]["trigger"], "catch-up");
    assert_eq!(j[0]["status"], "succeeded");

    // Once: the history has the run now.
    let mut dm = Daemon::start(&c, &[]);
    let ready = dm.wait_event(T, "ready");
    assert_eq!(ready["caught_up"], serde_json::json!([]), "{ready}");
    dm.stop();

    // The history lost: the vault's newest point says the run happened.
    std::fs::remove_dir_all(w.join("state")).unwrap();
    let mut dm = Daemon::start(&c, &[]);
    let ready = dm.wait_event(T, "ready");
    assert_eq!(ready["caught_up"], serde_json::json!([]), "{ready}");
    dm.stop();
    assert!(jobs(&c, &[]).is_empty());
}

fn wait_file(p: &Path) {
    let deadline = std::time::Instant::now() + T;
    while !p.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} never appeared",
            p.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn pid_of(ev: &Value) -> u32 {
    ev["pid"].as_u64().unwrap() as u32
}

fn kill9(pid: u32) {
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
}

#[test]
fn a_replication_runs_supervised_restarts_with_back_off_and_follows_reloads() {
    let d = tempdir().unwrap();
    let w = d.path();
    std::fs::create_dir_all(w.join("src")).unwrap();
    std::fs::write(w.join("src/before.txt"), b"there before").unwrap();
    let rule = format!(
        "[resource.assets]\nkind = \"bucket\"\nlocation = \"file://{w}/src\"\n\
         [plan.p]\nresources = [\"etc\", \"assets\"]\nvault = \"main\"\nschedule = \"0 0 1 1 *\"\n\
         [replication.assets-dr]\nfrom = \"assets\"\nto = \"file://{w}/dst\"\n",
        w = w.display()
    );
    let c = setup(w, &rule);
    c.ok(&["jobs", "run", "--plan", "p"]); // nothing to catch up
    let mut dm = Daemon::start(&c, &["--grace", "5s"]);
    let mut started = dm.wait_event(T, "continuous-started");
    assert_eq!(started["name"], "replicate:assets-dr");
    wait_file(&w.join("dst/before.txt"));

    // Killed twice: started again after 1 s, then 2 s.
    for want in [1, 2] {
        kill9(pid_of(&started));
        let ex = dm.wait_event(T, "continuous-exited");
        assert_eq!(ex["retry_in_s"], want, "{ex}");
        assert!(
            ex["error"].as_str().unwrap().contains("killed by a signal"),
            "{ex}"
        );
        let again = dm.wait_event(T, "continuous-started");
        let gap = time(&again) - time(&ex);
        assert!(
            gap >= chrono::Duration::milliseconds(want * 1000 - 50),
            "restarted after {gap} (back-off {want}s)"
        );
        assert_ne!(pid_of(&again), pid_of(&started));
        std::fs::write(w.join(format!("src/after-{want}.txt")), b"x").unwrap();
        wait_file(&w.join(format!("dst/after-{want}.txt")));
        started = again;
    }
    let reps = jobs(&c, &["--resource", "assets"]);
    let rep: Vec<(&str, &str)> = reps
        .iter()
        .filter(|j| j["kind"] == "replicate")
        .map(|j| {
            (
                j["status"].as_str().unwrap(),
                j["trigger"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rep,
        [
            ("running", "continuous"),
            ("failed", "continuous"),
            ("failed", "continuous")
        ],
        "{reps:?}"
    );
    // The running replication job is its child's: cancelling it stops the
    // child (restarted with back-off), never the daemon.
    let running = reps
        .iter()
        .find(|j| j["kind"] == "replicate" && j["status"] == "running")
        .unwrap();
    assert_eq!(
        running["pid"].as_i64(),
        Some(pid_of(&started) as i64),
        "{running}"
    );
    c.ok(&["jobs", "cancel", &running["id"].to_string()]);
    let ex = dm.wait_event(T, "continuous-exited");
    assert_eq!(ex["name"], "replicate:assets-dr", "{ex}");
    let again = dm.wait_event(T, "continuous-started");
    assert_ne!(pid_of(&again), pid_of(&started), "restarted");

    // An invalid file on SIGHUP: refused with its errors; the old keeps running.
    let good = std::fs::read_to_string(w.join("lifeboat.toml")).unwrap();
    std::fs::write(
        w.join("lifeboat.toml"),
        good.replace("schedule = \"0 0 1 1 *\"", "shedule = \"0 0 1 1 *\""),
    )
    .unwrap();
    dm.signal(rustix::process::Signal::HUP);
    let refused = dm.wait_event(T, "reload-refused");
    assert!(
        refused["errors"][0]
            .as_str()
            .unwrap()
            .contains("unknown key `shedule` — did you mean `schedule`?"),
        "{refused}"
    );
    std::fs::write(w.join("src/while-refused.txt"), b"x").unwrap();
    wait_file(&w.join("dst/while-refused.txt"));
    assert!(dm.seen("continuous-stopped").is_empty());

    // A valid file without the rule and with a new plan: the rule stops.
    let (without, _) = good.split_once("[replication.assets-dr]").unwrap();
    std::fs::write(
        w.join("lifeboat.toml"),
        format!(
            "{without}[plan.q]\nresources = [\"etc\"]\nvault = \"main\"\nschedule = \"0 0 1 1 *\"\n"
        ),
    )
    .unwrap();
    dm.signal(rustix::process::Signal::HUP);
    let re = dm.wait_event(T, "reloaded");
    dm.wait_event(T, "continuous-stopped");
    assert_eq!(re["plans"], serde_json::json!(["p", "q"]), "{re}");
    assert_eq!(re["continuous"], serde_json::json!([]), "{re}");
    let (st, _) = dm.stop();
    assert!(st.success());
    let last = &jobs(&c, &["--resource", "assets"])
        .into_iter()
        .find(|j| j["kind"] == "replicate")
        .unwrap();
    assert_eq!(last["status"], "succeeded", "{last}");
    assert!(
        last["log"]
            .as_str()
            .unwrap()
            .contains("stopped by the daemon"),
        "{last}"
    );
}

#[test]
fn retention_forgets_and_prunes_on_its_schedule_and_leaves_a_locked_point() {
    let d = tempdir().unwrap();
    let w = d.path();
    let c = setup(
        w,
        "[plan.p]\nresources = [\"etc\"]\nvault = \"main\"\nschedule = \"0 0 1 1 *\"\nretention = { keep_last = 1 }\n\
         [daemon]\nretention_schedule = \"*/2 * * * * *\"\n",
    );
    let mut ids = Vec::new();
    for i in 0..3 {
        std::fs::write(w.join(format!("data/new-{i}")), b"x").unwrap();
        let run = c.json(&["jobs", "run", "--plan", "p"]);
        ids.push(run[0]["point"].as_str().unwrap().to_string());
    }
    let mut v = Cli::new(control_fixture::bin(), &w.join("vault"));
    v.env = c.env.clone();
    let locked = v.json(&["points", "lock", &ids[0], "--retain-for", "1d"]);
    ids[0] = locked["id"].as_str().unwrap().to_string(); // a point's id is its content's hash
    let mut dm = Daemon::start(&c, &[]);
    let ev = dm.wait_event(T, "retention");
    assert_eq!(ev["vault"], "main");
    assert_eq!(ev["status"], "succeeded", "{ev}");
    dm.stop();
    let left: Vec<String> = v
        .json(&["points", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(
        left.contains(&ids[0]) && left.contains(&ids[2]),
        "{left:?} {ids:?}"
    );
    let r = jobs(&c, &["--status", "succeeded"])
        .into_iter()
        .find(|j| j["kind"] == "retention")
        .unwrap();
    assert_eq!(r["vault"], "main");
    let log = r["log"].as_str().unwrap();
    assert!(log.contains("locked until"), "{log}");
    assert!(log.contains("prune: exit 0"), "{log}");
    v.ok(&["vault", "check", "--read-data"]);
}

/// A tiny HTTP server that records each request (method, path, body) and answers 200.
fn recorder() -> (String, std::sync::mpsc::Receiver<(String, String, String)>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut first = String::new();
            r.read_line(&mut first).unwrap();
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                r.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            let mut parts = first.split_whitespace();
            let (m, p) = (
                parts.next().unwrap().to_string(),
                parts.next().unwrap().to_string(),
            );
            let _ = tx.send((m, p, String::from_utf8_lossy(&body).into_owned()));
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (url, rx)
}

#[test]
fn notifications_reach_a_webhook_and_healthchecks_and_a_dead_endpoint_stalls_nothing() {
    let d = tempdir().unwrap();
    let w = d.path();
    let (url, rx) = recorder();
    // A "dead" endpoint: accepts connections, never answers.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in dead.incoming() {
            held.push(s);
        }
    });
    let c = setup(
        w,
        &format!(
            "[plan.good]\nresources = [\"etc\"]\nvault = \"main\"\nschedule = \"0 0 1 1 *\"\n\
             notify = {{ webhook = \"{url}/hook\", healthcheck = \"{url}/hc/good\" }}\n\
             [plan.bad]\nresources = [\"etc\"]\nvault = \"main\"\nschedule = \"0 0 1 1 *\"\n\
             hooks = {{ before = [\"exit 7\"] }}\n\
             notify = {{ webhook = \"{url}/hook\", healthcheck = \"{url}/hc/bad\" }}\n\
             [plan.deaf]\nresources = [\"etc\"]\nvault = \"main\"\nschedule = \"*/2 * * * * *\"\n\
             notify = {{ webhook = \"{dead_url}/hook\", healthcheck = \"{dead_url}/hc\" }}\n"
        ),
    );
    // `good` and `bad` are new: caught up at start; `deaf` runs every 2 s.
    let mut dm = Daemon::start(&c, &[]);
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + T;
    while got.len() < 6 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        got.push(
            rx.recv_timeout(left)
                .unwrap_or_else(|_| panic!("requests so far: {got:?}")),
        );
    }
    let paths: Vec<&str> = got.iter().map(|g| g.1.as_str()).collect();
    for p in [
        "/hc/good/start",
        "/hc/good",
        "/hc/bad/start",
        "/hc/bad/fail",
    ] {
        assert!(paths.contains(&p), "{paths:?}");
    }
    assert!(got.iter().all(|g| g.0 == "POST"), "{got:?}");
    let hooks: Vec<Value> = got
        .iter()
        .filter(|g| g.1 == "/hook")
        .map(|g| serde_json::from_str(&g.2).unwrap())
        .collect();
    assert_eq!(hooks.len(), 2, "{got:?}");
    for h in &hooks {
        assert_eq!(h["event"], "job");
        let want = if h["job"]["plan"] == "good" {
            "succeeded"
        } else {
            "failed"
        };
        assert_eq!(h["job"]["status"], want, "{h}");
        assert_eq!(h["job"]["resource"], "etc");
    }
    let fail = got.iter().find(|g| g.1 == "/hc/bad/fail").unwrap();
    assert!(
        fail.2
            .contains("etc failed (before hook `exit 7` exited with failure"),
        "{fail:?}"
    );

    // The dead endpoint holds every notification of `deaf` for 10 s; its runs
    // still start on time and succeed, one after another.
    for _ in 0..3 {
        let ev = dm.wait_for(T, "a run of deaf", |v| {
            v["event"] == "run-started" && v["plan"] == "deaf" && v["trigger"] == "schedule"
        });
        let t = time(&ev);
        let lag_ms = (t.second() % 2) as i64 * 1000 + (t.nanosecond() / 1_000_000) as i64;
        assert!(lag_ms < 1000, "{ev}");
        let end = dm.wait_for(T, "its end", |v| {
            v["event"] == "run-ended" && v["plan"] == "deaf"
        });
        assert_eq!(end["ok"], true, "{end}");
    }
    let failed = dm.wait_event(Duration::from_secs(30), "notify-failed");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("no answer within 10s"),
        "{failed}"
    );
    dm.stop();
}

#[test]
fn sigterm_stops_scheduling_gives_a_run_its_grace_then_kills_it_and_the_vault_checks_clean() {
    let d = tempdir().unwrap();
    let w = d.path();
    let c = setup(
        w,
        "[plan.p]\nresources = [\"etc\"]\nvault = \"main\"\nschedule = \"0 0 1 1 *\"\n",
    );
    let pause = w.join("pause");
    std::fs::create_dir_all(&pause).unwrap();
    let mut c2 = c.clone();
    c2.env.push((
        "LIFEBOAT_TEST_PAUSE".into(),
        format!("before-point:{}", pause.display()),
    ));
    // Caught up at start; held before its point is written.
    let mut dm = Daemon::start(&c2, &["--grace", "2s"]);
    dm.wait_event(T, "run-started");
    wait_file(&pause.join("before-point.reached"));
    let t0 = std::time::Instant::now();
    let (st, seen) = dm.stop();
    let took = t0.elapsed();
    assert!(st.success(), "{st}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(15),
        "stopped after {took:?}"
    );
    let stopping = seen.iter().find(|v| v["event"] == "stopping").unwrap();
    assert_eq!(stopping["children"], 1, "{stopping}");
    assert!(seen.iter().any(|v| v["event"] == "run-ended"));
    // The run was killed after its grace: no point, the job interrupted, the vault clean.
    let j = jobs(&c, &["--plan", "p"]);
    assert_eq!(j[0]["status"], "interrupted", "{:?}", j[0]);
    let mut v = Cli::new(control_fixture::bin(), &w.join("vault"));
    v.env = c.env.clone();
    assert!(v.json(&["points", "list"]).as_array().unwrap().is_empty());
    v.ok(&["vault", "check", "--read-data"]);
}

#[test]
fn continuous_and_retention_jobs_are_told_to_the_webhooks_of_their_plans() {
    let d = tempdir().unwrap();
    let w = d.path();
    let (url, rx) = recorder();
    // The rule's source does not exist: each start of its child fails.
    let c = setup(
        w,
        &format!(
            "[resource.assets]\nkind = \"bucket\"\nlocation = \"file://{w}/missing\"\n\
             [plan.p]\nresources = [\"etc\", \"assets\"]\nvault = \"main\"\nschedule = \"0 0 1 1 *\"\nwindow = \"1m\"\n\
             notify = {{ webhook = \"{url}/hook\" }}\n\
             [replication.assets-dr]\nfrom = \"assets\"\nto = \"file://{w}/dst\"\n\
             [daemon]\nretention_schedule = \"*/2 * * * * *\"\n",
            w = w.display()
        ),
    );
    let mut dm = Daemon::start(&c, &[]);
    let (mut replicate, mut retention) = (None, None);
    let deadline = std::time::Instant::now() + T;
    while replicate.is_none() || retention.is_none() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let (_, path, body) = rx.recv_timeout(left).expect("webhook calls");
        assert_eq!(path, "/hook");
        let v: Value = serde_json::from_str(&body).unwrap();
        match v["job"]["kind"].as_str().unwrap() {
            "replicate" => replicate = Some(v),
            "retention" => retention = Some(v),
            _ => {}
        }
    }
    let r = replicate.unwrap();
    assert_eq!(r["job"]["status"], "failed", "{r}");
    assert_eq!(r["job"]["resource"], "assets", "{r}");
    let t = retention.unwrap();
    assert_eq!(t["job"]["vault"], "main", "{t}");
    dm.wait_event(T, "continuous-exited");
    dm.stop();
}

#[test]
fn a_scheduled_drill_runs_from_the_daemon_and_is_recorded() {
    let d = tempdir().unwrap();
    let w = d.path();
    make_sample_tree(&w.join("data"), 3);
    std::fs::write(
        w.join("lifeboat.toml"),
        format!(
            "[site.dr]\nroot = \"{w}/dr\"\n[vault.main]\nsite = \"dr\"\nlocation = \"{w}/vault\"\n\
             [resource.etc]\npaths = [\"{w}/data\"]\n\
             [plan.p]\nresources = [\"etc\"]\nvault = \"main\"\nschedule = \"0 0 1 1 *\"\n\
             [stack.s]\nmembers = [\"etc\"]\ncheck = \"test -f ${{etc.path}}/docs/note-0.txt\"\n\
             [drill.often]\nstack = \"s\"\nto = \"dr\"\nschedule = \"*/3 * * * * *\"\n",
            w = w.display()
        ),
    )
    .unwrap();
    let c = control_cli(w);
    c.ok(&["apply", "--auto-approve"]);
    c.ok(&["jobs", "run", "--plan", "p"]);
    let mut dm = Daemon::start(&c, &[]);
    let started = dm.wait_event(T, "drill-started");
    assert_eq!(started["drill"], "often");
    let ended = dm.wait_event(T, "drill-ended");
    assert_eq!(ended["exit"], 0, "{ended}");
    let (st, _) = dm.stop();
    assert!(st.success(), "{st}");
    let drills: Vec<Value> = jobs(&c, &["--resource", "s"])
        .into_iter()
        .filter(|j| j["kind"] == "drill")
        .collect();
    assert!(!drills.is_empty());
    let last = drills.iter().find(|j| j["status"] != "running").unwrap();
    assert_eq!(last["status"], "succeeded", "{last}");
    assert_eq!(last["trigger"], "schedule");
    assert_eq!(last["plan"], "often");
    // The scratch stacks are gone.
    assert!(
        !w.join("dr/drills").exists()
            || std::fs::read_dir(w.join("dr/drills")).unwrap().count() == 0
    );
}
