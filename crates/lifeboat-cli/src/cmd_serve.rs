//! `lifeboat serve`: the daemon (lifeboat-daemon: schedules, continuous jobs,
//! retention) and the REST API with `/metrics` (lifeboat-server), side by side
//! in one tokio runtime, sharing the configuration.
//!
//! Thin: reads the file, resolves the listen address (`--listen` over
//! `[server] listen`), handles SIGTERM/SIGINT (stop: no new runs, children get
//! the grace period, the API closes its streams) and SIGHUP (the daemon
//! re-reads the file; an invalid one keeps the old running; the API sees the
//! new one).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, Result};
use lifeboat_control::state::StateDir;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::cmd_apply::StateArg;
use crate::cmd_validate::{ConfigFile, load};
use crate::common::{Global, parse_duration};

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub file: ConfigFile,
    #[command(flatten)]
    pub state: StateArg,
    /// On SIGTERM, how long running jobs get to finish before they are killed.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub grace: Duration,
    /// Listen on this address and port (overrides `[server] listen`, default 127.0.0.1:7460).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
}

pub fn run(g: &Global, a: ServeArgs) -> Result<ExitCode> {
    let cfg = match load(g, &a.file)? {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    // Children run from the same absolute paths whatever their directory.
    let config = std::path::absolute(&a.file.config)
        .with_context(|| format!("cannot resolve {}", a.file.config.display()))?;
    let state = StateDir {
        root: std::path::absolute(a.state.dir().root)?,
    };
    state.create()?;
    // One daemon per state directory: a second would schedule every plan again.
    let _daemon_lock = state.lock_daemon()?;
    let exe = std::env::current_exe().context("cannot find the lifeboat executable")?;
    let mut server_opts = lifeboat_server::ServerOptions::from_config(
        &cfg,
        state.root.clone(),
        config.clone(),
        exe.clone(),
    );
    if let Some(l) = a.listen {
        server_opts.listen = l;
    }
    server_opts.grace = a.grace;
    let live: lifeboat_daemon::LiveConfig = Arc::new(RwLock::new(Arc::new(cfg)));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (hup_tx, hup_rx) = watch::channel(0u64);
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = term.recv() => { let _ = stop_tx.send(true); }
                    _ = int.recv() => { let _ = stop_tx.send(true); }
                    _ = hup.recv() => hup_tx.send_modify(|n| *n += 1),
                }
            }
        });
        let opts = lifeboat_daemon::DaemonOptions {
            config_path: config,
            state,
            exe,
            grace: a.grace,
            live: live.clone(),
            reload: hup_rx,
            log: lifeboat_daemon::Log { json: g.json },
        };
        // Either failing (the API's address taken, say) stops both, with its error.
        let (api_live, api_stop) = (live.clone(), stop_rx.clone());
        let api = async move {
            lifeboat_server::serve(server_opts, api_live, api_stop)
                .await
                .map_err(anyhow::Error::from)
        };
        let daemon = async move {
            lifeboat_daemon::run(opts, stop_rx)
                .await
                .map_err(anyhow::Error::from)
        };
        tokio::try_join!(daemon, api)?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
