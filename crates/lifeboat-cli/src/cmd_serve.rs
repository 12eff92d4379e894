//! `lifeboat serve`: the REST API and `/metrics` (lifeboat-server).
//!
//! Thin: reads the file, resolves the listen address (`--listen` over
//! `[server] listen`), runs the server on a small tokio runtime until
//! SIGTERM or SIGINT. The daemon's scheduler starts next to it.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, RwLock};

use anyhow::{Context, Result};

use crate::cmd_apply::StateArg;
use crate::cmd_validate::{ConfigFile, load};
use crate::common::Global;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    file: ConfigFile,
    #[command(flatten)]
    state: StateArg,
    /// Listen on this address and port (overrides `[server] listen`, default 127.0.0.1:7460).
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
}

pub fn run(g: &Global, a: ServeArgs) -> Result<ExitCode> {
    let cfg = match load(g, &a.file)? {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let state = a.state.dir();
    state.create()?;
    let config_path = std::path::absolute(&a.file.config)?;
    let exe = std::env::current_exe().context("cannot find the lifeboat executable")?;
    let mut opts =
        lifeboat_server::ServerOptions::from_config(&cfg, state.root.clone(), config_path, exe);
    if let Some(l) = a.listen {
        opts.listen = l;
    }
    let live: lifeboat_server::LiveConfig = Arc::new(RwLock::new(Arc::new(cfg)));
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])?;
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            eprintln!("lifeboat: signal {sig}: stopping");
            let _ = tx.send(true);
        }
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(lifeboat_server::serve(opts, live, rx))?;
    Ok(ExitCode::SUCCESS)
}
