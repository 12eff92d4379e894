//! The edges of `lifeboat recover` and `lifeboat drill` on a stack without
//! a database (a bucket replicated into the secondary at the demo's place,
//! `ROOT/buckets/NAME`, and two files members): a recovery to an earlier
//! time never writes into the live replica and `stack down --purge` never
//! deletes it; the report gives each member's RPO, the stack's is the worst
//! (a `stateless` member apart), and the downtime next to the recovery's own
//! time; a drill's check writes its output to a private file under the state
//! directory and is killed whole at its timeout.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use lifeboat_testkit::tempdir;
use support::recovery::{World, source};

/// The world with files members `etc` and `docs` (stateless) beside the
/// bucket, and the stack's `check`.
fn world(check: &str) -> World {
    world_with(check, "")
}

/// The same, with more lines in `[stack.s]` (`objectives = …`).
fn world_with(check: &str, stack_lines: &str) -> World {
    World::new(
        |w| {
            for d in ["data/etc", "data/docs"] {
                std::fs::create_dir_all(w.join(d)).unwrap();
            }
            std::fs::write(w.join("data/etc/app.conf"), "port = 1\n").unwrap();
            std::fs::write(w.join("data/docs/readme.txt"), "read me\n").unwrap();
        },
        |w| {
            format!(
                r#"[resource.etc]
kind = "files"
site = "primary"
paths = ["{w}/data/etc"]
[resource.docs]
kind = "files"
site = "primary"
stateless = true
paths = ["{w}/data/docs"]
[stack.s]
members = ["assets", "etc", "docs"]
check = '{check}'
{stack_lines}"#,
                w = w.display()
            )
        },
    )
}

impl World {
    fn backup_files(&self, name: &str) {
        let path = self.w().join("data").join(name);
        self.c.ok(&[
            "backup",
            "files",
            path.to_str().unwrap(),
            "--resource",
            name,
        ]);
    }

    fn point_time(&self, resource: &str) -> DateTime<Utc> {
        let list = self.c.json(&["points", "list"]);
        list.as_array()
            .unwrap()
            .iter()
            .filter(|p| p["resource"] == resource)
            .filter_map(|p| p["time"].as_str()?.parse().ok())
            .max()
            .unwrap_or_else(|| panic!("no point of {resource}: {list:#}"))
    }
}

fn pause() {
    std::thread::sleep(Duration::from_millis(1100));
}

/// The stack's points: `docs` first (the oldest, stateless), then `etc`,
/// then the bucket with the old logo; a moment `at` after them; then the
/// logo changed and an object added, replicated into the secondary.
fn protected(w: &World) -> DateTime<Utc> {
    std::fs::write(w.primary_bucket().join("logo.txt"), "old logo").unwrap();
    w.backup_files("docs");
    pause();
    w.backup_files("etc");
    w.backup_bucket();
    pause();
    let at = Utc::now();
    pause();
    std::fs::write(w.primary_bucket().join("logo.txt"), "new logo").unwrap();
    std::fs::write(w.primary_bucket().join("after.txt"), "written after at").unwrap();
    let o = w.replicate();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    at
}

#[test]
fn a_recovery_to_an_earlier_time_never_writes_into_the_replica_and_purge_never_deletes_it() {
    let w = world("true");
    let at = protected(&w);
    let replica = w.replica();
    assert_eq!(
        std::fs::read_to_string(replica.join("logo.txt")).unwrap(),
        "new logo"
    );

    let r = w.recover(&["--at", &at.to_rfc3339()]);
    // The replica is exactly as it was: the new logo, the object written after `at`.
    assert_eq!(
        std::fs::read_to_string(replica.join("logo.txt")).unwrap(),
        "new logo",
        "{r:#}"
    );
    assert!(replica.join("after.txt").is_file(), "{r:#}");
    // A files member's directory holds its files themselves (the
    // application is handed that directory), not their old absolute path.
    let etc = PathBuf::from(r["outputs"]["etc.path"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(etc.join("app.conf")).unwrap(),
        "port = 1\n",
        "{r:#}"
    );
    // The bucket as of `at` is in a location of its own, holding the point exactly.
    let loc = r["outputs"]["assets.location"].as_str().unwrap();
    let dir = PathBuf::from(loc.strip_prefix("file://").unwrap());
    assert_ne!(dir, replica, "{r:#}");
    assert_eq!(
        std::fs::read_to_string(dir.join("logo.txt")).unwrap(),
        "old logo"
    );
    assert!(!dir.join("after.txt").exists());
    // The report names the replica and why it was not used.
    let src = source(&r, "assets");
    assert_eq!(src["from"], "point", "{r:#}");
    let why = src["why"].as_str().unwrap();
    assert!(why.contains(&replica.display().to_string()), "{why}");
    assert!(why.contains("--at"), "{why}");

    // Purged: what the recovery made goes, the replica stays whole.
    w.down();
    assert!(!dir.exists(), "the recovered bucket is removed");
    assert_eq!(
        std::fs::read_to_string(replica.join("logo.txt")).unwrap(),
        "new logo"
    );
    assert!(replica.join("after.txt").is_file());
}

#[test]
fn the_report_gives_each_members_rpo_the_stacks_is_the_worst_and_the_downtime_apart() {
    let w = world("true");
    protected(&w);
    let (etc, docs) = (w.point_time("etc"), w.point_time("docs"));
    pause();
    let failed_at = Utc::now();
    let r = w.recover(&["--failed-at", &failed_at.to_rfc3339()]);
    let secs = |t: DateTime<Utc>| (failed_at - t).num_milliseconds() as f64 / 1000.0;
    let near = |a: &serde_json::Value, b: f64| (a.as_f64().unwrap() - b).abs() < 0.01;
    // Each member's RPO from the time its data is from.
    assert_eq!(source(&r, "assets")["from"], "replica", "{r:#}");
    for m in ["assets", "etc", "docs"] {
        let s = source(&r, m);
        let t: DateTime<Utc> = s["data_time"].as_str().unwrap().parse().unwrap();
        assert!(near(&s["rpo_s"], secs(t)), "{m}: {r:#}");
    }
    // The stack's: the worst of them — `etc`, older than the replica — with
    // `docs` (older still, but stateless) reported apart.
    assert!(near(&r["rpo_s"], secs(etc)), "{r:#}");
    assert_eq!(source(&r, "docs")["stateless"], true, "{r:#}");
    assert!(source(&r, "docs")["rpo_s"].as_f64().unwrap() > r["rpo_s"].as_f64().unwrap());
    assert!(secs(docs) > secs(etc));
    // Downtime (failure → healthy) and the recovery's own time, both kept.
    let healthy: DateTime<Utc> = r["healthy_at"].as_str().unwrap().parse().unwrap();
    let started: DateTime<Utc> = r["started_at"].as_str().unwrap().parse().unwrap();
    assert!(near(&r["downtime_s"], -secs(healthy)), "{r:#}");
    let own = (healthy - started).num_milliseconds() as f64 / 1000.0;
    assert!(
        (r["recovery_s"].as_f64().unwrap() - own).abs() < 0.05,
        "{r:#}"
    );
    assert!(r["downtime_s"].as_f64().unwrap() > r["recovery_s"].as_f64().unwrap());
    assert_eq!(
        r["rto_s"], r["downtime_s"],
        "the RTO judged is the downtime"
    );
}

#[test]
fn a_drills_check_writes_into_a_private_file_under_the_state_directory_and_dies_whole() {
    let t = tempdir().unwrap();
    let sleeper = t.path().join("sleeper.pid");
    // The check tells where its output goes and its mode, then leaves a
    // child behind and waits past the timeout.
    let check = format!(
        "readlink /proc/$$/fd/1; stat -L -c %a /proc/$$/fd/1; sleep 300 & echo $! > {}; wait",
        sleeper.display()
    );
    let w = world(&check);
    protected(&w);
    let (code, d) = w.drill(&["--check-timeout", "3s"]);
    assert_eq!(code, Some(3), "{d:#}");
    let out = d["check"]["output"].as_str().unwrap();
    let mut lines = out.lines();
    let path = lines.next().unwrap_or_default();
    assert!(
        Path::new(path).starts_with(w.w().join("state")),
        "the check's output went to {path:?}: {d:#}"
    );
    assert_eq!(lines.next(), Some("600"), "{d:#}");
    assert!(!Path::new(path).exists(), "removed after the check");
    // Killed whole at the timeout: its child too.
    assert_eq!(d["check"]["exit"], serde_json::Value::Null, "{d:#}");
    let pid: i64 = std::fs::read_to_string(&sleeper)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while lifeboat_testkit::procs::alive(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !lifeboat_testkit::procs::alive(pid),
        "the check's child {pid} outlived the drill"
    );
}

#[test]
fn a_drill_that_misses_an_objective_fails_as_the_report_judges_it() {
    // An RPO objective of 1 s, and the newest `etc` point older than that.
    let w = world_with("true", "objectives = { rpo = \"1s\", rto = \"10m\" }\n");
    protected(&w);
    pause();
    let (code, d) = w.drill(&[]);
    assert_eq!(code, Some(3), "{d:#}");
    assert_eq!(d["passed"], false, "{d:#}");
    assert_eq!(d["check"]["exit"], 0, "the check itself passed: {d:#}");
    let missed = d["missed"].to_string();
    assert!(
        missed.contains("RPO") && missed.contains("objective 1 s"),
        "{d:#}"
    );
    let j = w.c.json(&["jobs", "show", &d["job"].to_string()]);
    assert_eq!(j["status"], "failed", "{j:#}");
    assert!(j["error"].as_str().unwrap().contains("RPO"), "{j:#}");
    // `report` says the same of it.
    let (code, rep) = w.c.json_exit(&["report"]);
    assert_eq!(code, Some(3));
    let failed = rep["stacks"][0]["failed"].to_string();
    assert!(
        failed.contains(&format!(
            "the last drill failed (`lifeboat jobs show {}`)",
            d["job"]
        )),
        "{failed}"
    );
    assert!(failed.contains("RPO"), "{failed}");
}

#[test]
fn a_drill_reads_the_replica_and_a_random_earlier_moment_is_measured_from_that_moment() {
    // An RPO objective of 3 s; every point older than that when the drills run.
    let w = world_with("true", "objectives = { rpo = \"3s\" }\n");
    protected(&w);
    let bucket_point = w.point_time("assets");
    for _ in 0..4 {
        pause();
    }
    // Latest: the newest points are over 3 s old at the drill's start.
    let (code, d) = w.drill(&[]);
    assert_eq!(code, Some(3), "{d:#}");
    assert!(d["missed"].to_string().contains("RPO"), "{d:#}");
    // The drill read the fresher replica into a bucket of its own, and says
    // so; production's replica is as it was.
    let assets = source(&d["recovery"], "assets");
    assert_eq!(assets["from"], "replica", "{d:#}");
    let why = assets["why"].as_str().unwrap().to_string();
    assert!(
        why.contains(&w.replica().display().to_string()) && why.contains("drill's bucket"),
        "{why}"
    );
    assert!(!why.contains("holds no replica"), "{why}");
    assert_eq!(
        std::fs::read_to_string(w.replica().join("logo.txt")).unwrap(),
        "new logo"
    );
    assert!(w.replica().join("after.txt").is_file());

    // However far back a pick reaches, no overflow (a panic before).
    let (code, d) = w.drill(&["--pick", "random-within:99999999999d"]);
    assert_eq!(code, Some(0), "{d:#}");

    // A random earlier moment: the only one at which every member has a
    // point is the bucket point's (the last taken); each member's RPO is
    // counted from that moment, so the drill meets the objective.
    for _ in 0..3 {
        let (code, d) = w.drill(&["--pick", "random-within:1h"]);
        assert_eq!(code, Some(0), "{d:#}");
        let at: DateTime<Utc> = d["at"].as_str().unwrap().parse().unwrap();
        let close = |a: DateTime<Utc>, b: DateTime<Utc>| (a - b).num_milliseconds().abs() <= 1;
        assert!(close(at, bucket_point), "{bucket_point} {d:#}");
        let r = &d["recovery"];
        let assets = source(r, "assets");
        assert_eq!(assets["from"], "point", "{d:#}");
        // A bucket point's data is as of the point's time, not its newest object's.
        let t: DateTime<Utc> = assets["data_time"].as_str().unwrap().parse().unwrap();
        assert!(close(t, bucket_point), "{d:#}");
        assert_eq!(assets["rpo_s"], 0.0, "{d:#}");
        let etc = source(r, "etc");
        let t: DateTime<Utc> = etc["data_time"].as_str().unwrap().parse().unwrap();
        let want = (at - t).num_milliseconds() as f64 / 1000.0;
        assert!(
            (etc["rpo_s"].as_f64().unwrap() - want).abs() < 0.01,
            "{d:#}"
        );
        assert!(r["rpo_s"].as_f64().unwrap() < 3.0, "{d:#}");
        assert_eq!(r["objectives"]["rpo_met"], true, "{d:#}");
    }
}

#[test]
fn one_recovery_start_or_stop_of_a_stack_in_a_site_at_a_time() {
    let w = world("true");
    protected(&w);
    // Another lifeboat holds the stack's lock (util-linux `flock` stands in
    // for a recovery still running).
    let lock = w.w().join("secondary/locks/stack-s.lock");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    // (`-o`: the lock stays with `flock` itself, not its child `sleep`.)
    let mut holder = std::process::Command::new("flock")
        .arg("-o")
        .arg(&lock)
        .args(["-c", "echo held; sleep 60"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(holder.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "held\n");
    }
    for args in [
        &["recover", "--stack", "s", "--to", "secondary"][..],
        &["stack", "up", "--stack", "s", "--site", "secondary"],
        &[
            "stack",
            "down",
            "--stack",
            "s",
            "--site",
            "secondary",
            "--purge",
        ],
    ] {
        let o = w.c.run(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?}: {err}");
        assert!(
            err.contains("another lifeboat") && err.contains(&lock.display().to_string()),
            "{args:?}: {err}"
        );
    }
    assert!(
        !w.w().join("secondary/stacks/s").exists(),
        "nothing was made"
    );
    let _ = holder.kill();
    let _ = holder.wait();
    // Once it is gone, the recovery runs.
    let r = w.recover(&[]);
    assert_eq!(r["stack"], "s", "{r:#}");
}

/// The scratch directories of the drills of `s` in the secondary.
fn scratches(w: &World) -> Vec<PathBuf> {
    match std::fs::read_dir(w.w().join("secondary/drills")) {
        Ok(d) => d.flatten().map(|e| e.path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// The newest drill job in the history.
fn newest_drill(w: &World) -> serde_json::Value {
    let jobs = w.c.json(&["jobs", "list"]);
    jobs.as_array()
        .unwrap()
        .iter()
        .find(|j| j["kind"] == "drill")
        .cloned()
        .unwrap_or_else(|| panic!("no drill job: {jobs:#}"))
}

/// A drill started in the background, its check reached (it touches
/// `mark`, then the drill keeps its scratch stack up for 5 minutes).
fn drill_kept_up(w: &World, mark: &Path) -> std::process::Child {
    let _ = std::fs::remove_file(mark);
    let child =
        w.c.command(&[
            "drill",
            "--stack",
            "s",
            "--to",
            "secondary",
            "--keep-for",
            "5m",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    lifeboat_testkit::wait::wait_for(
        Duration::from_secs(60),
        Duration::from_millis(100),
        "the drill's check never ran",
        || mark.exists(),
    );
    child
}

#[test]
fn an_interrupted_drill_tears_its_scratch_stack_down_and_a_killed_ones_goes_with_the_next_drill() {
    let t = tempdir().unwrap();
    let mark = t.path().join("checked");
    let w = world(&format!("touch {}", mark.display()));
    protected(&w);
    // SIGTERM (the daemon's shutdown) or Ctrl-C while the scratch stack is up.
    let mut d = drill_kept_up(&w, &mark);
    assert_eq!(scratches(&w).len(), 1);
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(d.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    assert_eq!(d.wait().unwrap().code(), Some(130));
    assert_eq!(scratches(&w), Vec::<PathBuf>::new(), "torn down at once");
    let j = newest_drill(&w);
    assert_eq!(j["status"], "cancelled", "{j:#}");
    let why = j["error"].as_str().unwrap_or_default();
    assert!(why.contains("the scratch stack was torn down"), "{j:#}");
    // Killed outright: its scratch stack stays, and the job says where it goes.
    let mut d = drill_kept_up(&w, &mark);
    d.kill().unwrap();
    d.wait().unwrap();
    let left = scratches(&w);
    assert_eq!(left.len(), 1);
    let j = newest_drill(&w);
    assert_eq!(j["status"], "interrupted", "{j:#}");
    let killed = j["error"].as_str().unwrap_or_default();
    assert!(killed.contains("torn down by the next drill"), "{j:#}");
    assert!(!killed.contains("recovery point"), "{j:#}");
    // Old enough and nobody's: the next drill tears it down and says so,
    // with a server it had started but not recorded yet (it names the
    // scratch directory), and a process of a drill whose scratch stack is
    // already gone. A directory of another user's is left alone.
    let old = std::time::SystemTime::now() - Duration::from_secs(120);
    std::fs::File::open(&left[0])
        .unwrap()
        .set_modified(old)
        .unwrap();
    let drills = w.w().join("secondary/drills");
    let named = |path: &Path| {
        std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "exec -a 'mariadbd --datadir={}/mysql/db' sleep 300",
                path.display()
            ))
            .spawn()
            .unwrap()
    };
    let mut stray = named(&left[0]);
    let mut orphan = named(&drills.join("s-20200101T000000000Z"));
    let theirs = drills.join("s-20200101T000000001Z");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    std::fs::File::open(&theirs)
        .unwrap()
        .set_modified(old)
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let (code, r) = w.drill(&["--keep-for", "0"]);
    assert_eq!(code, Some(0), "{r:#}");
    let swept = r["swept"].to_string();
    assert!(
        swept.contains("removed the scratch stack of an interrupted drill of `s`")
            && swept.contains(left[0].to_str().unwrap()),
        "{r:#}"
    );
    assert!(
        swept.contains("stopped 1 process(es) of an interrupted drill"),
        "{r:#}"
    );
    for p in [&mut stray, &mut orphan] {
        assert!(
            p.try_wait().unwrap().is_some(),
            "{} outlived the sweep",
            p.id()
        );
    }
    assert_eq!(
        scratches(&w),
        vec![theirs.clone()],
        "another user's is kept"
    );
    // A drill cancelled after one that passed leaves that verdict standing.
    let mut d = drill_kept_up(&w, &mark);
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(d.id() as i32).unwrap(),
        rustix::process::Signal::INT,
    )
    .unwrap();
    assert_eq!(d.wait().unwrap().code(), Some(130));
    let (_, rep) = w.c.json_exit(&["report"]);
    let failed = rep["stacks"][0]["failed"].to_string();
    assert!(
        !failed.contains("never drilled") && !failed.contains("the last drill failed"),
        "{rep:#}"
    );
    // A `drills/` others may write is never used.
    std::fs::remove_dir(&theirs).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&drills, std::fs::Permissions::from_mode(0o777)).unwrap();
    let o = w.c.run(&["drill", "--stack", "s", "--to", "secondary"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("may be written by others (mode 777)"), "{err}");
}

/// A replica nobody has written to for a while is as fresh as its
/// replicator says (`.lifeboat-replicated`), not as old as its newest
/// object: a quiet bucket does not fail a drill's RPO.
#[test]
fn a_quiet_replica_is_as_fresh_as_its_replicator_says() {
    let w = world("true");
    std::fs::write(w.primary_bucket().join("logo.txt"), "logo").unwrap();
    w.backup_files("docs");
    w.backup_files("etc");
    w.backup_bucket();
    std::thread::sleep(Duration::from_secs(3));
    let pass = Utc::now();
    let o = w.replicate();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (code, d) = w.drill(&[]);
    assert_eq!(code, Some(0), "{d:#}");
    let src = source(&d["recovery"], "assets");
    assert_eq!(src["from"], "replica", "{d:#}");
    let t: DateTime<Utc> = src["data_time"].as_str().unwrap().parse().unwrap();
    assert!(
        t >= pass - chrono::Duration::milliseconds(500),
        "the replica's data is from {t}, its pass began {pass}: {d:#}"
    );
    let copied = w.w().join("copied");
    let from = format!("file://{}", w.replica().display());
    let to = format!("file://{}", copied.display());
    let o =
        w.c.command(&[
            "replicate",
            "--from",
            &from,
            "--to",
            &to,
            "--existing",
            "--once",
            "--state",
        ])
        .arg(w.w().join("replication-2"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A replica of the replica: the mark is no object of the bucket, never
    // copied (the copy's own mark is its replicator's).
    assert!(copied.join("logo.txt").is_file());
    let mark = |d: &Path| std::fs::read_to_string(d.join(".lifeboat-replicated")).unwrap();
    assert_ne!(mark(&copied), mark(&w.replica()));
}
