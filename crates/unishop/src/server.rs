//! Running the shop: open the database and the bucket, apply the schema
//! migrations, serve HTTP until SIGINT/SIGTERM.
//!
//! Start-up never waits for the database: when it does not answer yet, the
//! shop serves anyway (API calls and `/health` answer 503) and applies the
//! migrations in the background as soon as it answers. A refused login or a
//! schema newer than this program is fatal at once: waiting will not help.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::api::ApiError;
use crate::bucket::Bucket;
use crate::db::Db;
use crate::error::{Error, Result};

/// What the handlers share.
#[derive(Debug)]
pub struct AppState {
    /// The database.
    pub db: Db,
    /// The frontend's bucket.
    pub bucket: Bucket,
    schema_ready: AtomicBool,
    schema_problem: Mutex<String>,
}

impl AppState {
    /// State for a database and a bucket; the schema counts as not ready until [`AppState::set_schema_ready`].
    pub fn new(db: Db, bucket: Bucket) -> AppState {
        AppState {
            db,
            bucket,
            schema_ready: AtomicBool::new(false),
            schema_problem: Mutex::new("migrations not applied yet".into()),
        }
    }

    /// Marks the schema as migrated.
    pub fn set_schema_ready(&self) {
        self.schema_ready.store(true, Ordering::Release);
    }

    fn set_schema_problem(&self, why: String) {
        *self.schema_problem.lock().unwrap() = why;
    }

    /// 503 unless the schema has been migrated.
    pub fn schema_ready(&self) -> Result<(), ApiError> {
        if self.schema_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        Err(Error::DatabaseUnavailable {
            reason: format!("schema not ready: {}", self.schema_problem.lock().unwrap()),
            code: None,
        }
        .into())
    }

    /// The database answers and its schema is migrated.
    pub async fn check_database(&self) -> Result<()> {
        self.db.ping().await?;
        if !self.schema_ready.load(Ordering::Acquire) {
            return Err(Error::DatabaseUnavailable {
                reason: format!("schema not ready: {}", self.schema_problem.lock().unwrap()),
                code: None,
            });
        }
        Ok(())
    }
}

/// Where and what to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to listen on (port 0: any free port).
    pub listen: SocketAddr,
    /// `mysql://…` URL.
    pub database_url: String,
    /// Bucket URL of the frontend.
    pub bucket_url: String,
    /// Most database connections.
    pub max_connections: usize,
}

/// Applies the migrations, retrying every second while the database is unavailable.
async fn migrate_until_done(state: Arc<AppState>) {
    let mut attempts = 0u64;
    loop {
        match state.db.migrate().await {
            Ok(applied) => {
                state.set_schema_ready();
                tracing::info!(?applied, "database schema is ready");
                return;
            }
            Err(e) => {
                attempts += 1;
                if attempts == 1 || attempts.is_multiple_of(30) {
                    tracing::warn!(error = %e, "schema migrations wait for the database");
                }
                state.set_schema_problem(e.to_string());
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Opens everything, applies the migrations (or schedules them while the
/// database is away), binds the listener and returns it with the state.
pub async fn prepare(opts: &ServeOptions) -> Result<(tokio::net::TcpListener, Arc<AppState>)> {
    let db = Db::new(&opts.database_url, opts.max_connections)?;
    let bucket = Bucket::open(&opts.bucket_url)?;
    let state = Arc::new(AppState::new(db, bucket));
    match state.db.migrate().await {
        Ok(applied) => {
            state.set_schema_ready();
            tracing::info!(?applied, "database schema is ready");
        }
        Err(e) if e.is_unavailable() && !e.is_refused_login() => {
            tracing::warn!(error = %e, "the database does not answer yet; serving 503 until it does");
            state.set_schema_problem(e.to_string());
            tokio::spawn(migrate_until_done(state.clone()));
        }
        Err(e) => return Err(e),
    }
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| Error::Io {
            path: format!("listen on {}", opts.listen),
            source: e,
        })?;
    Ok((listener, state))
}

/// Serves until SIGINT or SIGTERM, then finishes the requests in flight.
pub async fn serve(listener: tokio::net::TcpListener, state: Arc<AppState>) -> Result<()> {
    let app = crate::api::router(state.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| Error::Io {
            path: "HTTP server".into(),
            source: e,
        })?;
    state.db.clone().close().await;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}
