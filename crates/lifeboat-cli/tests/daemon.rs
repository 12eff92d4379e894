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
