//! Hooks: commands run around a plan's jobs (`before`, `after`, `on_failure`),
//! each with a timeout, essential (its failure fails the job) or optional
//! (its failure is a warning in the job's log).
//!
//! A hook runs as `sh -c COMMAND` with `LIFEBOAT_PLAN`, `LIFEBOAT_RESOURCE`,
//! `LIFEBOAT_JOB_ID` and (after the job) `LIFEBOAT_JOB_STATUS` in its
//! environment; its output goes into the job's log excerpt. One that
//! outlives its timeout is killed (the whole process group).

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lifeboat_config::Hook;

/// Runs `hooks` in order. Returns the log lines, and the error of the first
/// essential hook that failed (the later ones are not run).
pub fn run(hooks: &[Hook], stage: &str, env: &[(&str, String)]) -> (Vec<String>, Option<String>) {
    let mut log = Vec::new();
    for h in hooks {
        let r = run_one(h, env);
        let (ok, what, output) = match r {
            Ok((true, out)) => (true, String::new(), out),
            Ok((false, out)) => (false, "exited with failure".to_string(), out),
            Err(e) => (false, e, String::new()),
        };
        for l in output
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            log.push(format!("{stage} hook: {l}"));
        }
        if !ok {
            let msg = format!("{stage} hook `{}` {what}", h.command);
            if h.essential {
                return (log, Some(msg));
            }
            log.push(format!("warning: {msg} (optional: the job goes on)"));
        }
    }
    (log, None)
}

fn run_one(h: &Hook, env: &[(&str, String)]) -> Result<(bool, String), String> {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(&h.command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().map_err(|e| format!("could not start: {e}"))?;
    // Readers on their own threads, so a chatty hook never blocks on a full pipe.
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let ro = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let re = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    // A timeout past what the clock can hold waits as long as it can.
    let far = Duration::from_secs(100 * 365 * 86_400);
    let deadline = Instant::now() + h.timeout.std().min(far);
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() >= deadline => {
                if let Some(pg) = rustix::process::Pid::from_raw(child.id() as i32) {
                    let _ = rustix::process::kill_process_group(pg, rustix::process::Signal::KILL);
                }
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("could not wait for it: {e}")),
        }
    };
    let text = format!(
        "{}{}",
        ro.join().unwrap_or_default(),
        re.join().unwrap_or_default()
    );
    match status {
        Some(st) => Ok((st.success(), text)),
        None => Err(format!("timed out after {} and was killed", h.timeout)),
    }
}
