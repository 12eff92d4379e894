//! A drill's check: the stack's own `check` command, with the scratch
//! stack's outputs filled in, run in a process group of its own with its
//! output in a private file, killed whole at its timeout.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::state::StackState;

/// The stack's own check, run after the scratch stack is healthy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckReport {
    /// The command as run.
    pub command: String,
    /// Its exit code (`None`: killed at the timeout or not started).
    pub exit: Option<i32>,
    /// The end of its output.
    pub output: String,
    /// How long it ran.
    pub duration_s: f64,
}

impl CheckReport {
    /// How it ended, in words: `exited with status 0`, `was stopped at the
    /// timeout or by a signal (no exit status)`.
    pub fn ended(&self) -> String {
        match self.exit {
            Some(code) => format!("exited with status {code}"),
            None => "did not exit by itself (stopped at the timeout, killed by a signal, or not started)".into(),
        }
    }
}

/// Step: the stack's check run against a recovered scratch stack.
pub(crate) struct Check<'a> {
    /// The stack's `check` command, `${…}` not filled yet.
    pub command: &'a str,
    /// The scratch stack's root.
    pub scratch: &'a std::path::Path,
    /// The stack.
    pub stack: &'a str,
    /// Where its output is kept while it runs.
    pub log_dir: &'a std::path::Path,
    /// Longest it may run.
    pub timeout: Duration,
}

impl Check<'_> {
    /// Runs the check with the recovery's outputs, `${site.root}` (the
    /// scratch root) and `${recovered_at}` filled in, and the scratch
    /// databases' passwords in its environment.
    pub(crate) fn run(&self, recovery: &crate::recover::RecoveryReport) -> CheckReport {
        let mut values = recovery.outputs.clone();
        values.insert("site.root".into(), self.scratch.display().to_string());
        if let Some(t) = recovery.newest_data {
            values.insert("recovered_at".into(), t.to_rfc3339());
        }
        let env = check_env(self.scratch, self.stack);
        run_check(
            &fill(self.command, &values),
            self.timeout,
            self.log_dir,
            &env,
        )
    }
}

/// Fills `${NAME}` of `text` from `values`; unknown names are left as they are.
fn fill(text: &str, values: &std::collections::BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find('}') {
            Some(end) => {
                let name = &after[..end];
                match values.get(name) {
                    Some(v) => out.push_str(v),
                    None => out.push_str(&rest[i..i + 3 + end]),
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// A private file for the check's output: `DIR/check-<random>.log` in a
/// directory made 0700 (its own when `dir` is the state directory's
/// `drills/`), created new (never an existing file or a link) with 0600.
fn check_log(dir: &std::path::Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mut b = [0u8; 8];
    lifeboat_vault::crypto::fill_random(&mut b);
    let path = dir.join(format!("check-{:016x}.log", u64::from_le_bytes(b)));
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&path)?;
    Ok((path, f))
}

/// Runs the check `command` (`sh -c`) in a process group of its own, its
/// output into a private file under `log_dir`; at `timeout` the whole group
/// is killed (a check's children too).
fn run_check(
    command: &str,
    timeout: Duration,
    log_dir: &std::path::Path,
    env: &[(String, String)],
) -> CheckReport {
    use std::os::unix::process::CommandExt;
    let started = Instant::now();
    let mut out = PathBuf::new();
    let spawned = check_log(log_dir).and_then(|(p, f)| {
        out = p;
        let f2 = f.try_clone()?;
        Command::new("sh")
            .arg("-c")
            .arg(command)
            .process_group(0)
            .env_remove("MYSQL_PWD")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .stdout(f)
            .stderr(f2)
            .spawn()
    });
    let exit = match spawned {
        Err(e) => {
            if !out.as_os_str().is_empty() {
                let _ = std::fs::remove_file(&out);
            }
            return CheckReport {
                command: command.into(),
                exit: None,
                output: format!(
                    "cannot start `sh -c` with its output in {}: {e}",
                    log_dir.display()
                ),
                duration_s: started.elapsed().as_secs_f64(),
            };
        }
        Ok(mut child) => loop {
            if let Ok(Some(st)) = child.try_wait() {
                break st.code();
            }
            if started.elapsed() > timeout {
                if let Some(pg) = rustix::process::Pid::from_raw(child.id() as i32) {
                    let _ = rustix::process::kill_process_group(pg, rustix::process::Signal::KILL);
                }
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        },
    };
    let output = crate::process::tail(&out, 20);
    let _ = std::fs::remove_file(&out);
    CheckReport {
        command: command.into(),
        exit,
        output,
        duration_s: started.elapsed().as_secs_f64(),
    }
}

/// The root passwords of the scratch stack's databases, for the check's
/// environment (never its command line): `NAME_PASSWORD` per database
/// (`shop-db` → `SHOP_DB_PASSWORD`), and `MYSQL_PWD` (which the `mariadb`
/// client reads) when there is one database.
fn check_env(scratch: &std::path::Path, stack: &str) -> Vec<(String, String)> {
    let Ok(Some(st)) = StackState::read(scratch, stack) else {
        return Vec::new();
    };
    let mut env: Vec<(String, String)> = st
        .members
        .iter()
        .filter_map(|(n, m)| {
            let var = n
                .chars()
                .map(|c| match c.to_ascii_uppercase() {
                    c @ ('A'..='Z' | '0'..='9') => c,
                    _ => '_',
                })
                .collect::<String>();
            Some((format!("{var}_PASSWORD"), m.password.clone()?.0))
        })
        .collect();
    if env.len() == 1 {
        env.push(("MYSQL_PWD".into(), env[0].1.clone()));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recovery(outputs: &[(&str, &str)]) -> crate::recover::RecoveryReport {
        let now = chrono::Utc::now();
        crate::recover::RecoveryReport {
            stack: "shop".into(),
            site: "dr".into(),
            started_at: now,
            healthy_at: now,
            failed_at: now,
            newest_data: Some(now),
            rpo_s: None,
            rto_s: 1.0,
            downtime_s: None,
            recovery_s: 1.0,
            objectives: Default::default(),
            sources: Vec::new(),
            steps: Vec::new(),
            outputs: outputs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            warnings: Vec::new(),
            switchover: None,
            protection: Vec::new(),
        }
    }

    /// The check sees the recovered stack's outputs and the scratch root;
    /// its exit status and output are reported; a check past its timeout
    /// is killed and has none.
    #[test]
    fn the_check_runs_with_the_recovered_outputs_and_is_killed_at_its_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        fn check<'a>(
            command: &'a str,
            timeout: u64,
            dir: &'a std::path::Path,
            logs: &'a std::path::Path,
        ) -> Check<'a> {
            Check {
                command,
                scratch: dir,
                stack: "shop",
                log_dir: logs,
                timeout: Duration::from_secs(timeout),
            }
        }
        let r = recovery(&[("shop-host.url", "http://127.0.0.1:9")]);
        let c = check(
            "test -d ${site.root} && echo at ${shop-host.url}",
            30,
            dir.path(),
            &logs,
        )
        .run(&r);
        assert_eq!(c.exit, Some(0), "{}", c.output);
        assert!(c.output.contains("at http://127.0.0.1:9"), "{}", c.output);
        let c = check("echo no; exit 4", 30, dir.path(), &logs).run(&r);
        assert_eq!((c.exit, c.output.trim()), (Some(4), "no"));
        let c = check("sleep 30", 1, dir.path(), &logs).run(&r);
        assert_eq!(c.exit, None);
        assert!(c.ended().contains("did not exit by itself"));
    }
}
