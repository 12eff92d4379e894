//! The REST API and `/metrics` of `lifeboat serve`.
//!
//! - Routes are axum handlers annotated for `utoipa`; [`router`] gathers them
//!   with `utoipa-axum`, so the OpenAPI 3 document at `/openapi.json` is built
//!   from the same code that serves the routes (a route cannot be missing
//!   from the document).
//! - Every API route but `/healthz` needs `Authorization: Bearer TOKEN`
//!   ([`auth`]; the console's static files need none): the token is created
//!   on first start in the state directory (`api-token`, mode 0600; shown
//!   once only when stderr is a terminal, so never in a service's journal)
//!   and compared in constant time; a token in the URL is never accepted.
//! - Nothing heavy runs in the server process: runs and restores are child
//!   `lifeboat jobs run|restore` processes ([`spawner`]) that record their
//!   jobs, progress and logs in the job store; the API reads the store.
//!   Vault reads run on the blocking pool under the vault's reader lock;
//!   what `/metrics`, `/resources` and `/report` read of the vaults is cached
//!   for a few seconds ([`snapshot`]).
//! - The web console ([`console`]) is served at `/` and `/console/…`: static
//!   files embedded at build time that call this API with the token.
//! - TLS is optional ([`tls`]): a certificate and key from `[server]`.

pub mod auth;
pub mod console;
mod error;
mod history;
mod metrics;
mod openapi;
pub mod restore_roots;
mod routes_jobs;
mod routes_read;
mod routes_restores;
mod routes_stacks;
mod snapshot;
pub mod spawner;
pub mod tls;
mod views;
mod views_stacks;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use lifeboat_config::Config;
use lifeboat_control::launch::Launcher;

pub use error::ApiError;

/// The configuration the server reads; the daemon swaps the inner `Arc` on SIGHUP.
pub type LiveConfig = Arc<RwLock<Arc<Config>>>;

/// Errors that stop the server from starting or serving.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listen address cannot be bound.
    #[error(
        "cannot listen on {addr}: {source} (is another `lifeboat serve` running? change `[server] listen` or pass --listen)"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The API token file cannot be created or read, or is not private.
    #[error("{0}")]
    Token(String),
    /// The TLS certificate or key cannot be used.
    #[error("{0}")]
    Tls(String),
    /// Serving failed.
    #[error("serving the API failed: {0}")]
    Serve(std::io::Error),
}

/// Where and how to serve.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Address and port (`[server] listen`, or `--listen`).
    pub listen: SocketAddr,
    /// The state directory (job store, `api-token`).
    pub state: PathBuf,
    /// The declarative file (passed to the child jobs).
    pub config_path: PathBuf,
    /// The `lifeboat` executable the child jobs run.
    pub exe: PathBuf,
    /// PEM certificate chain and key: serve HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The token file (default: `api-token` in the state directory).
    pub token_file: Option<PathBuf>,
    /// On shutdown, how long the API's running children get after SIGTERM.
    pub grace: std::time::Duration,
}

impl ServerOptions {
    /// Options from the file's `[server]` table.
    pub fn from_config(cfg: &Config, state: PathBuf, config_path: PathBuf, exe: PathBuf) -> Self {
        let s = &cfg.server;
        ServerOptions {
            listen: s.listen,
            state,
            config_path,
            exe,
            tls: s.tls_cert.clone().zip(s.tls_key.clone()),
            token_file: s.token_file.clone(),
            grace: std::time::Duration::from_secs(30),
        }
    }

    /// The token file.
    pub fn token_path(&self) -> PathBuf {
        self.token_file
            .clone()
            .unwrap_or_else(|| self.state.join("api-token"))
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    config: LiveConfig,
    state: lifeboat_control::state::StateDir,
    token: auth::Token,
    spawner: spawner::Spawner,
    launcher: Launcher,
    vaults: snapshot::Vaults,
    snapshot: snapshot::Cache,
    vault_figures: snapshot::VaultFigures,
    lag: history::Ring,
    /// The job store's watcher, publishing job changes to event streams
    /// (started by the first one).
    job_watch: std::sync::Mutex<Option<lifeboat_control::store::JobWatch>>,
    shutdown: tokio::sync::watch::Receiver<bool>,
}

impl AppState {
    /// State for `opts`, with the token already read or created.
    pub fn new(
        opts: &ServerOptions,
        config: LiveConfig,
        token: auth::Token,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> AppState {
        AppState(Arc::new(Inner {
            config,
            state: lifeboat_control::state::StateDir {
                root: opts.state.clone(),
            },
            token,
            spawner: spawner::Spawner::start(),
            launcher: Launcher::new(
                opts.exe.clone(),
                opts.config_path.clone(),
                opts.state.clone(),
            ),
            vaults: snapshot::Vaults::default(),
            snapshot: snapshot::Cache::default(),
            vault_figures: snapshot::VaultFigures::default(),
            lag: history::Ring::default(),
            job_watch: Default::default(),
            shutdown,
        }))
    }

    /// The configuration now.
    pub(crate) fn cfg(&self) -> Arc<Config> {
        self.0.config.read().expect("config lock").clone()
    }
}

/// The API's routes (with auth), `/healthz` and `/openapi.json`.
pub fn router(state: AppState) -> axum::Router {
    openapi::router(state)
}

/// Serves the API until `shutdown` turns true.
pub async fn serve(
    opts: ServerOptions,
    config: LiveConfig,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), ServerError> {
    let token = auth::Token::load_or_create(&opts.token_path())?;
    let tls = match &opts.tls {
        Some((cert, key)) => Some(tls::acceptor(cert, key)?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: opts.listen,
            source,
        })?;
    let local = listener.local_addr().map_err(ServerError::Serve)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!("REST API on {scheme}://{local}");
    eprintln!(
        "lifeboat: serving the REST API on {scheme}://{local} (token: {})",
        opts.token_path().display()
    );
    let state = AppState::new(&opts, config, token, shutdown.clone());
    tokio::spawn(history::sampler(state.clone()));
    {
        // The default restore root, and every vault opened in the background
        // (a slow or unreachable one never holds up a request).
        let s = state.clone();
        drop(tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::DirBuilderExt;
            let _ = std::fs::DirBuilder::new()
                .mode(0o700)
                .create(restore_roots::default_root(&s.0.state.root));
            s.0.vaults.prefetch(&s.cfg());
        }));
    }
    eprintln!("lifeboat: the web console is on {scheme}://{local}/");
    let spawner = state.0.spawner.clone();
    let app = router(state);
    let mut stop = shutdown;
    let until = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    let served = match tls {
        None => axum::serve(listener, app)
            .with_graceful_shutdown(until)
            .await
            .map_err(ServerError::Serve),
        Some(acceptor) => axum::serve(tls::TlsListener::new(listener, acceptor), app)
            .with_graceful_shutdown(until)
            .await
            .map_err(ServerError::Serve),
    };
    // The runs and restores the API started stop as the daemon's do.
    let n = spawner.running();
    if n > 0 {
        tracing::info!("stopping {n} job process(es) the API started");
        eprintln!(
            "lifeboat: the API's {n} running job process(es) get SIGTERM and {}s to finish",
            opts.grace.as_secs()
        );
    }
    spawner.stop_all(opts.grace).await;
    served
}
