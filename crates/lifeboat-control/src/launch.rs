//! Starting jobs in their own processes.
//!
//! The daemon and the REST API never run a backup inside their own process:
//! each run is a child `lifeboat jobs run --plan P --trigger T` that records
//! its jobs in the store itself. A crash or a leak in a protector then ends
//! one run, not the daemon; `jobs cancel` (SIGTERM to the job's process)
//! works the same for every job; and the daemon stays small while it idles.
//! A child dies with its parent (it sets `PR_SET_PDEATHSIG` on itself at
//! start when given the hidden `--parent-pid`, see [`die_with_parent`]), so a daemon killed with SIGKILL leaves
//! its jobs `running` with a dead process, which the next opener of the
//! store marks `interrupted`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::{ControlError, Result};

/// Why a run was started (the job store's `trigger`).
pub mod trigger {
    /// By hand (`lifeboat jobs run`).
    pub const MANUAL: &str = "manual";
    /// By the daemon, at a plan's scheduled time.
    pub const SCHEDULE: &str = "schedule";
    /// By the daemon, for a run missed while it was down.
    pub const CATCH_UP: &str = "catch-up";
    /// Through the REST API.
    pub const API: &str = "api";
    /// By the daemon, as a continuous job it keeps running (a binlog archive,
    /// its copy followed, a replication), restarted with back-off.
    pub const CONTINUOUS: &str = "continuous";
    /// Every trigger.
    pub const ALL: &[&str] = &[MANUAL, SCHEDULE, CATCH_UP, API, CONTINUOUS];
}

/// Called first by `lifeboat` itself when started by a [`Launcher`]
/// (`--parent-pid PID`, a flag rather than an environment variable so that
/// hooks and other grandchildren do not inherit it): asks the kernel to
/// kill this process when its parent dies, and exits at once if the parent
/// is already gone (it died between fork and this call).
pub fn die_with_parent(parent: i32) {
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    let now = rustix::process::getppid().map(|p| p.as_raw_nonzero().get());
    if now != Some(parent) {
        eprintln!("lifeboat: the process that started this job ({parent}) is gone; not starting");
        std::process::exit(1);
    }
}

/// What a child run needs: the `lifeboat` executable, the file and the state directory.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// The `lifeboat` binary (normally `std::env::current_exe()`).
    pub exe: PathBuf,
    /// The declarative file.
    pub config: PathBuf,
    /// The state directory.
    pub state: PathBuf,
}

impl Launcher {
    /// A launcher for this executable.
    pub fn new(exe: PathBuf, config: PathBuf, state: PathBuf) -> Launcher {
        Launcher { exe, config, state }
    }

    /// The command for one of this binary's subcommands, with the file and
    /// state directory, that dies with its parent; output discarded (the job
    /// store holds each job's log).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.exe);
        c.arg("--parent-pid")
            .arg(std::process::id().to_string())
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .arg("--state")
            .arg(&self.state)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    }

    /// Starts `lifeboat jobs run --plan PLAN [--resource R] --trigger T` as a child.
    pub fn plan_run(&self, plan: &str, resource: Option<&str>, trigger: &str) -> Result<Child> {
        self.plan_command(plan, resource, trigger)
            .spawn()
            .map_err(|e| ControlError::io("cannot start a job run with", &self.exe, e))
    }

    /// The command [`Launcher::plan_run`] spawns (for callers that spawn it themselves).
    pub fn plan_command(&self, plan: &str, resource: Option<&str>, trigger: &str) -> Command {
        let mut args = vec![
            "--quiet",
            "jobs",
            "run",
            "--plan",
            plan,
            "--trigger",
            trigger,
        ];
        if let Some(r) = resource {
            args.extend(["--resource", r]);
        }
        self.command(&args)
    }

    /// Starts `lifeboat jobs restore …` (a files restore recorded as a job) as a child.
    pub fn restore(&self, req: &crate::restore::RestoreRequest, trigger: &str) -> Result<Child> {
        self.restore_command(req, trigger)?
            .spawn()
            .map_err(|e| ControlError::io("cannot start a restore with", &self.exe, e))
    }

    /// The command [`Launcher::restore`] spawns.
    pub fn restore_command(
        &self,
        req: &crate::restore::RestoreRequest,
        trigger: &str,
    ) -> Result<Command> {
        let mut args: Vec<String> = ["--quiet", "jobs", "restore", "--from", &req.vault]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(["--to".into(), req.to.display().to_string()]);
        if let Some(r) = &req.resource {
            args.extend(["--resource".into(), r.clone()]);
        }
        if let Some(p) = &req.path {
            args.extend(["--path".into(), p.display().to_string()]);
        }
        if let Some(o) = req.overwrite {
            let o = match o {
                lifeboat_files::Overwrite::Always => "always",
                lifeboat_files::Overwrite::IfChanged => "if-changed",
                lifeboat_files::Overwrite::Never => "never",
            };
            args.extend(["--overwrite".into(), o.into()]);
        }
        args.extend(["--trigger".into(), trigger.into()]);
        // The point is a positional argument: an id or `latest`, never a flag.
        if req.point.starts_with('-') || req.point.is_empty() {
            return Err(ControlError::Refused(format!(
                "`{}` is not a point id, prefix or `latest`",
                req.point
            )));
        }
        args.push(req.point.clone());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        Ok(self.command(&refs))
    }
}
