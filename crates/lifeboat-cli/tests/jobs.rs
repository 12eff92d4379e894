//! Job history through the real binary: a job is recorded when it succeeds,
//! when it fails, and when its process is killed (SIGKILL mid-backup, held
//! at a named point with `LIFEBOAT_TEST_PAUSE`): the next start marks it
//! `interrupted`. Deleting the store loses history, never a point.

use std::path::Path;
use std::time::{Duration, Instant};

use lifeboat_testkit::{Cli, make_sample_tree, tempdir};

fn bin() -> String {
    std::env::var("LIFEBOAT_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_lifeboat").into())
}

fn setup(w: &Path) -> (Cli, Cli) {
    make_sample_tree(&w.join("data"), 11);
    let d = w.display();
    std::fs::write(
        w.join("lifeboat.toml"),
        format!(
            "[vault.main]\nlocation = \"{d}/main\"\n[resource.data]\npaths = [\"{d}/data\"]\n\
             [resource.gone]\npaths = [\"{d}/does-not-exist\"]\n\
             [plan.nightly]\nresources = [\"data\", \"gone\"]\nschedule = \"0 3 * * *\"\ntimezone = \"Europe/Berlin\"\n"
        ),
    )
    .unwrap();
    let c = Cli::new(bin(), &w.join("main")).with_workdir(w);
    c.ok(&["apply", "--auto-approve"]);
    let vault = Cli::new(bin(), &w.join("main"));
    (c, vault)
}

fn wait_for(p: &Path) {
    let t = Instant::now();
    while !p.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{} never appeared",
            p.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn failed_and_succeeded_jobs_are_recorded() {
    let d = tempdir().unwrap();
    let (c, vault) = setup(d.path());
    let o = c.run(&["jobs", "run", "--plan", "nightly", "--json"]);
    assert_eq!(o.status.code(), Some(1), "one resource failed");
    let run: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(run[0]["resource"], "data");
    assert_eq!(run[0]["status"], "succeeded");
    assert_eq!(run[1]["resource"], "gone");
    assert_eq!(run[1]["status"], "failed");
    assert!(
        run[1]["error"].as_str().unwrap().contains("does-not-exist"),
        "{run}"
    );

    let failed = c.json(&["jobs", "list", "--status", "failed"]);
    assert_eq!(failed.as_array().unwrap().len(), 1);
    let job = c.json(&["jobs", "show", &failed[0]["id"].to_string()]);
    assert_eq!(job["resource"], "gone");
    assert_eq!(job["plan"], "nightly");
    assert_eq!(job["trigger"], "manual");
    assert_eq!(job["vault"], "main");
    assert!(job["ended"].is_string());
    let ok = c.json(&["jobs", "list", "--resource", "data"]);
    assert_eq!(ok[0]["status"], "succeeded");
    assert!(ok[0]["bytes"].as_u64().unwrap() > 0);
    let point = ok[0]["point"].as_str().unwrap();
    assert_eq!(vault.json(&["points", "show", point])["resource"], "data");

    // Only one resource of the plan; an unknown one is refused.
    let only = c.json(&["jobs", "run", "--plan", "nightly", "--resource", "data"]);
    assert_eq!(only.as_array().unwrap().len(), 1);
    assert_ne!(
        c.run(&["jobs", "run", "--plan", "nightly", "--resource", "nope"])
            .status
            .code(),
        Some(0)
    );

    // The store is history only: deleting it loses no point.
    std::fs::remove_dir_all(d.path().join("state")).unwrap();
    assert_eq!(c.json(&["jobs", "list"]).as_array().unwrap().len(), 0);
    assert_eq!(vault.json(&["points", "list"]).as_array().unwrap().len(), 2);
}

#[test]
fn a_killed_job_is_marked_interrupted_on_the_next_start() {
    let d = tempdir().unwrap();
    let (c, vault) = setup(d.path());
    let hold = d.path().join("hold");
    std::fs::create_dir(&hold).unwrap();
    let mut child = c
        .command(&["jobs", "run", "--plan", "nightly", "--resource", "data"])
        .env(
            "LIFEBOAT_TEST_PAUSE",
            format!("before-point:{}", hold.display()),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Held after its packs are stored, before the point: mid-job.
    wait_for(&hold.join("before-point.reached"));
    let running = c.json(&["jobs", "list", "--status", "running"]);
    assert_eq!(
        running.as_array().unwrap().len(),
        1,
        "a live job stays running: {running}"
    );
    assert_eq!(running[0]["pid"], child.id());
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    child.wait().unwrap();

    let jobs = c.json(&["jobs", "list"]);
    assert_eq!(jobs.as_array().unwrap().len(), 1);
    assert_eq!(jobs[0]["status"], "interrupted", "{jobs}");
    assert!(
        jobs[0]["error"]
            .as_str()
            .unwrap()
            .contains("ended before the job did")
    );
    assert!(jobs[0]["point"].is_null());
    assert_eq!(vault.json(&["points", "list"]).as_array().unwrap().len(), 0);

    // The next run succeeds and the vault is sound.
    std::fs::write(hold.join("before-point.go"), b"").unwrap();
    let again = c.json(&["jobs", "run", "--plan", "nightly", "--resource", "data"]);
    assert_eq!(again[0]["status"], "succeeded");
    vault.ok(&["vault", "check", "--read-data"]);
    let all = c.json(&["jobs", "list"]);
    let statuses: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["succeeded", "interrupted"]);
}

#[test]
fn report_and_drift_follow_the_vaults() {
    let d = tempdir().unwrap();
    let w = d.path();
    let (c, _vault) = setup(w);
    // No point yet: not compliant (exit 3), and `plan --drift` says why.
    let o = c.run(&["report", "--json"]);
    assert_eq!(o.status.code(), Some(3));
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rep["compliant"], false);
    let data = rep["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "data")
        .unwrap();
    let rpo = data["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "rpo:nightly")
        .unwrap();
    assert_eq!(rpo["ok"], false);
    assert_eq!(rpo["detail"], "no point in vault `main`");
    let o = c.run(&["plan", "--drift", "--detailed-exitcode"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(2),
        "drift counts as a difference: {out}"
    );
    assert!(out.contains("No changes"), "{out}");
    assert!(
        out.contains("! resource data rpo:nightly: no point in vault `main`"),
        "{out}"
    );

    // After a run, `data` meets its schedule; `gone` (whose backup fails) does not.
    let _ = c.run(&["jobs", "run", "--plan", "nightly"]);
    let o = c.run(&["report", "--json"]);
    assert_eq!(o.status.code(), Some(3));
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let by = |n: &str| {
        rep["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(by("data")["compliant"], true, "{rep}");
    assert_eq!(by("gone")["compliant"], false);

    // A file where every resource has its point: compliant, exit 0; a resource in no plan is flagged.
    let f = w.join("only-data.toml");
    let text = std::fs::read_to_string(w.join("lifeboat.toml"))
        .unwrap()
        .replace("[\"data\", \"gone\"]", "[\"data\"]");
    std::fs::write(&f, &text).unwrap();
    let o = c.run(&["report", "-c", f.to_str().unwrap(), "--json"]);
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let gone = rep["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "gone")
        .unwrap();
    assert_eq!(gone["controls"][0]["name"], "in-plan");
    assert_eq!(gone["controls"][0]["ok"], false);
    assert_eq!(o.status.code(), Some(3));
    let text = text.replace(
        &format!(
            "[resource.gone]\npaths = [\"{}/does-not-exist\"]\n",
            w.display()
        ),
        "",
    );
    std::fs::write(&f, &text).unwrap();
    let o = c.run(&["report", "-c", f.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn jobs_cancel_stops_a_running_backup_cleanly() {
    let d = tempdir().unwrap();
    let (c, vault) = setup(d.path());
    let hold = d.path().join("hold");
    std::fs::create_dir(&hold).unwrap();
    let mut child = c
        .command(&["jobs", "run", "--plan", "nightly"])
        .env(
            "LIFEBOAT_TEST_PAUSE",
            format!("index-loaded:{}", hold.display()),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Held as the first backup starts (index loaded, nothing stored yet).
    wait_for(&hold.join("index-loaded.reached"));
    let running = c.json(&["jobs", "list", "--status", "running"]);
    let id = running[0]["id"].to_string();
    c.ok(&["jobs", "cancel", &id]);
    std::fs::write(hold.join("index-loaded.go"), b"").unwrap();
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(130));
    let jobs = c.json(&["jobs", "list"]);
    assert_eq!(
        jobs.as_array().unwrap().len(),
        1,
        "the plan's other resource was not started: {jobs}"
    );
    assert_eq!(jobs[0]["status"], "cancelled", "{jobs}");
    assert!(jobs[0]["ended"].is_string());
    assert_eq!(vault.json(&["points", "list"]).as_array().unwrap().len(), 0);
    vault.ok(&["vault", "check"]);
    // Cancelling it again is refused: it is not running.
    assert_eq!(c.run(&["jobs", "cancel", &id]).status.code(), Some(2));
}

#[test]
fn hooks_run_around_each_job() {
    let d = tempdir().unwrap();
    let w = d.path();
    make_sample_tree(&w.join("data"), 3);
    let log = w.join("hooks.log");
    let l = log.display();
    let text = |before: &str| {
        format!(
            "[vault.main]\nlocation = \"{d}/main\"\n[resource.data]\npaths = [\"{d}/data\"]\n\
             [plan.p]\nresources = [\"data\"]\n\
             hooks = {{ before = [{before}], after = [\"echo after $LIFEBOAT_JOB_STATUS >> {l}\", {{ command = \"exit 4\", essential = false }}], \
             on_failure = [\"echo failed $LIFEBOAT_RESOURCE >> {l}\"] }}\n",
            d = w.display()
        )
    };
    std::fs::write(
        w.join("lifeboat.toml"),
        text(&format!(
            "\"echo before $LIFEBOAT_PLAN $LIFEBOAT_RESOURCE >> {l}\""
        )),
    )
    .unwrap();
    let c = Cli::new(bin(), &w.join("main")).with_workdir(w);
    c.ok(&["apply", "--auto-approve"]);

    // Hooks run in order; an optional one that fails makes the job incomplete (exit 3).
    let o = c.run(&["jobs", "run", "--plan", "p", "--json"]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "before p data\nafter succeeded\n"
    );
    let job = c.json(&["jobs", "show", "1"]);
    assert_eq!(job["status"], "incomplete");
    assert!(job["point"].is_string());
    assert!(
        job["log"]
            .as_str()
            .unwrap()
            .contains("warning: after hook `exit 4` exited with failure"),
        "{job}"
    );

    // An essential `before` hook that fails: no backup, on_failure runs.
    std::fs::write(&log, "").unwrap();
    std::fs::write(w.join("lifeboat.toml"), text("\"exit 1\"")).unwrap();
    let o = c.run(&["jobs", "run", "--plan", "p", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let job = c.json(&["jobs", "show", "2"]);
    assert_eq!(job["status"], "failed");
    assert_eq!(
        job["error"],
        "before hook `exit 1` exited with failure: the backup was not started"
    );
    assert!(job["point"].is_null());
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "failed data\n");

    // A hook past its timeout is killed and fails the job.
    std::fs::write(
        w.join("lifeboat.toml"),
        text("{ command = \"sleep 30\", timeout = \"1s\" }"),
    )
    .unwrap();
    let t = Instant::now();
    let o = c.run(&["jobs", "run", "--plan", "p"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "killed at its timeout, not waited for"
    );
    let job = c.json(&["jobs", "show", "3"]);
    assert_eq!(
        job["error"],
        "before hook `sleep 30` timed out after 1s and was killed: the backup was not started"
    );
    assert_eq!(
        Cli::new(bin(), &w.join("main"))
            .json(&["points", "list"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn concurrent_runs_share_the_store() {
    let d = tempdir().unwrap();
    let (c, vault) = setup(d.path());
    let spawn = || {
        c.command(&[
            "jobs",
            "run",
            "--plan",
            "nightly",
            "--resource",
            "data",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
    };
    // Four starts at once: one run of a plan at a time, so each either ran
    // or was recorded as skipped (exit 1, naming the running job); all four
    // write their job into the one store.
    let children: Vec<_> = (0..4).map(|_| spawn()).collect();
    let mut ran = 0;
    for ch in children {
        let o = ch.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        if o.status.success() {
            ran += 1;
        } else {
            assert_eq!(o.status.code(), Some(1), "{err}");
            assert!(
                err.contains("is running already") && err.contains("skipped"),
                "{err}"
            );
        }
    }
    assert!(ran >= 1);
    let jobs = c.json(&["jobs", "list"]);
    let ids: Vec<i64> = jobs
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [4, 3, 2, 1]);
    let succeeded = jobs
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["status"] == "succeeded")
        .count();
    assert_eq!(succeeded, ran, "{jobs}");
    assert!(
        jobs.as_array()
            .unwrap()
            .iter()
            .all(|j| j["status"] == "succeeded" || j["status"] == "skipped"),
        "{jobs}"
    );
    assert_eq!(
        vault.json(&["points", "list"]).as_array().unwrap().len(),
        ran
    );
    vault.ok(&["vault", "check"]);
}

#[test]
fn a_plans_copy_action_copies_each_point_locked_and_a_lost_target_makes_the_job_incomplete() {
    let w = tempdir().unwrap();
    let w = w.path();
    make_sample_tree(&w.join("data"), 5);
    let d = w.display();
    std::fs::write(
        w.join("lifeboat.toml"),
        format!(
            "[vault.main]\nlocation = \"{d}/main\"\n\
             [vault.dr]\nlocation = \"{d}/dr\"\npassword_env = \"DR_PASSWORD\"\n\
             [resource.data]\npaths = [\"{d}/data\"]\n\
             [plan.hourly]\nresources = [\"data\"]\nschedule = \"0 * * * *\"\nvault = \"main\"\n\
             copy = [{{ vault = \"dr\", lock = {{ mode = \"compliance\", min_retention = \"2d\" }} }}]\n"
        ),
    )
    .unwrap();
    let mut c = Cli::new(bin(), &w.join("main"));
    for (k, v) in [
        ("LIFEBOAT_STATE", w.join("state").display().to_string()),
        (
            "LIFEBOAT_CONFIG",
            w.join("lifeboat.toml").display().to_string(),
        ),
        ("DR_PASSWORD", "the secondary's own password".to_string()),
    ] {
        c.env.push((k.into(), v));
    }
    c.ok(&["apply", "--auto-approve"]);
    let run = c.json(&["jobs", "run", "--plan", "hourly"]);
    assert_eq!(run[0]["status"], "succeeded", "{run}");
    let job = c.json(&["jobs", "show", &run[0]["job"].to_string()]);
    assert!(
        job["log"]
            .as_str()
            .unwrap()
            .contains("copied to vault `dr`"),
        "{job}"
    );
    let mut dr = Cli::new(bin(), &w.join("dr"));
    dr.password = "the secondary's own password".into();
    let copies = dr.json(&["points", "list"]);
    assert_eq!(copies.as_array().unwrap().len(), 1, "{copies}");
    let copy_id = copies[0]["id"].as_str().unwrap().to_string();
    let shown = dr.json(&["points", "show", &copy_id]);
    assert_eq!(shown["retention"]["mode"], "compliance", "{shown}");
    assert!(!shown["copied_from"].is_null(), "{shown}");

    // The secondary's vault is lost: the backup still lands, the job says the copy failed.
    std::fs::remove_dir_all(w.join("dr")).unwrap();
    let o = c.run(&["jobs", "run", "--plan", "hourly", "--json"]);
    assert_eq!(o.status.code(), Some(3), "incomplete");
    let run: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(run[0]["status"], "incomplete", "{run}");
    let job = c.json(&["jobs", "show", &run[0]["job"].to_string()]);
    assert!(
        job["log"]
            .as_str()
            .unwrap()
            .contains("copy to vault `dr` failed"),
        "{job}"
    );
    let main = Cli::new(bin(), &w.join("main"));
    assert_eq!(main.json(&["points", "list"]).as_array().unwrap().len(), 2);
}
