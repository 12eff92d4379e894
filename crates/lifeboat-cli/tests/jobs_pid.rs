//! Jobs are matched to their processes by pid *and* the process's start
//! time (issue 21 B11): a `running` job whose pid now belongs to another
//! process (a reused pid) is not running — `lifeboat jobs` shows it
//! interrupted, `jobs cancel` never signals the stranger, and the job does
//! not hold up a new run of its plan. The job store is edited with SQLite to
//! make the reused pid, as a crash and a long uptime would.

use std::path::Path;
use std::process::{Child, Command};

use lifeboat_testkit::{Cli, make_sample_tree, tempdir};

fn bin() -> String {
    std::env::var("LIFEBOAT_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_lifeboat").into())
}

/// A process that is not a job's, killed on drop.
struct Stranger(Child);

impl Drop for Stranger {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The start time of process `pid` (field 22 of /proc/PID/stat), as the
/// store records it.
fn start_of(pid: u32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split(' ').nth(19).unwrap().to_string()
}

/// Adds a `running` backup job of plan `nightly` run by `pid` started at `start`.
fn running_job(db: &Path, pid: u32, start: &str) -> i64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.execute(
        "INSERT INTO jobs (kind, resource, plan, trigger, status, started, pid, pid_start)
         VALUES ('backup', 'data', 'nightly', 'manual', 'running', ?1, ?2, ?3)",
        rusqlite::params![chrono::Utc::now().to_rfc3339(), pid, start],
    )
    .unwrap();
    c.last_insert_rowid()
}

fn status_of(c: &Cli, id: i64) -> String {
    let list = c.json(&["jobs", "list"]);
    list.as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == id)
        .unwrap_or_else(|| panic!("no job {id}: {list:#}"))["status"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_job_whose_pid_was_reused_is_not_running_and_does_not_block_its_plan() {
    let t = tempdir().unwrap();
    let w = t.path();
    make_sample_tree(&w.join("data"), 5);
    std::fs::write(
        w.join("lifeboat.toml"),
        format!(
            "[vault.main]\nlocation = \"{d}/main\"\n[resource.data]\npaths = [\"{d}/data\"]\n\
             [plan.nightly]\nresources = [\"data\"]\nschedule = \"0 3 * * *\"\n",
            d = w.display()
        ),
    )
    .unwrap();
    let c = Cli::new(bin(), &w.join("main")).with_workdir(w);
    c.ok(&["apply", "--auto-approve"]);
    c.ok(&["jobs", "run", "--plan", "nightly"]);
    let db = w.join("state/jobs.sqlite");
    assert!(db.is_file(), "{}", db.display());

    // A live process that is no job's: its pid in a job row with another
    // start time (the job's process died, the pid went to this one).
    let stranger = Stranger(Command::new("sleep").arg("300").spawn().unwrap());
    let pid = stranger.0.id();
    let real = start_of(pid);
    let other = format!("{}", real.parse::<u64>().unwrap() + 12_345);
    let reused = running_job(&db, pid, &other);
    // The same pid with its own start time: that process is running it.
    let alive = running_job(&db, pid, &real);

    assert_eq!(status_of(&c, reused), "interrupted", "pid alone matched");
    assert_eq!(status_of(&c, alive), "running");
    let shown = c.json(&["jobs", "show", &reused.to_string()]);
    assert!(
        shown["error"]
            .as_str()
            .is_some_and(|e| e.contains(&format!("pid {pid}"))),
        "{shown:#}"
    );
    // Cancelling the stale job is refused and signals nobody.
    let o = c.run(&["jobs", "cancel", &reused.to_string()]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not running"),
        "{o:?}"
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    let mut stranger = stranger;
    assert!(
        stranger.0.try_wait().unwrap().is_none(),
        "the process with the reused pid was signalled"
    );

    // A new run of the plan runs.
    let run = c.json(&["jobs", "run", "--plan", "nightly"]);
    assert_eq!(run[0]["status"], "succeeded", "{run:#}");
    let newest = run[0]["job"].as_i64().unwrap();
    assert!(newest > alive, "{run:#}");
    assert_eq!(status_of(&c, newest), "succeeded");
}
