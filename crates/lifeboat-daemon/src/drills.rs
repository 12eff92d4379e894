//! Scheduled drills (`[drill.NAME] schedule`): each time comes, a child
//! `lifeboat drill --drill NAME --trigger schedule` recovers the stack into a
//! scratch stack, checks it, tears it down and records the report as a job.
//! A drill still going when its next time comes is not started twice.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use lifeboat_control::launch::trigger;
use tokio::task::JoinSet;

use crate::Ctx;

/// The drills going on now.
#[derive(Default)]
pub struct Drills {
    going: Arc<Mutex<BTreeSet<String>>>,
    tasks: JoinSet<()>,
}

impl Drills {
    /// Starts drill `name` now, unless it is still going.
    pub fn start(&mut self, ctx: &Ctx, name: &str) {
        while self.tasks.try_join_next().is_some() {}
        if !self
            .going
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string())
        {
            ctx.log.event(
                "drill-skipped",
                format!("drill `{name}`: not started: the previous one is still going"),
                serde_json::json!({"drill": name}),
            );
            return;
        }
        let mut cmd = tokio::process::Command::from(ctx.launcher.command(&[
            "--quiet",
            "drill",
            "--drill",
            name,
            "--trigger",
            trigger::SCHEDULE,
        ]));
        cmd.kill_on_drop(false);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                self.going
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(name);
                ctx.log.event(
                    "drill-failed-to-start",
                    format!(
                        "drill `{name}`: cannot start `{} drill`: {e}",
                        ctx.launcher.exe.display()
                    ),
                    serde_json::json!({"drill": name, "error": e.to_string()}),
                );
                return;
            }
        };
        let pid = child.id().unwrap_or(0);
        ctx.children.add(pid, &format!("drill {name}"));
        ctx.log.event(
            "drill-started",
            format!("drill `{name}`: started, process {pid}"),
            serde_json::json!({"drill": name, "pid": pid}),
        );
        let (ctx, going, name) = (ctx.clone(), self.going.clone(), name.to_string());
        self.tasks.spawn(async move {
            let st = child.wait().await;
            ctx.children.remove(pid);
            going
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&name);
            let code = st.ok().and_then(|s| s.code());
            ctx.log.event(
                "drill-ended",
                format!(
                    "drill `{name}`: {}",
                    match code {
                        Some(0) => "passed".to_string(),
                        Some(3) => "FAILED (see `lifeboat jobs list --status failed`)".to_string(),
                        Some(c) => format!("could not run (exit {c})"),
                        None => "killed".to_string(),
                    }
                ),
                serde_json::json!({"drill": name, "exit": code}),
            );
        });
    }
}
