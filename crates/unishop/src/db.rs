//! The database: a connection pool with short timeouts, so that a database
//! that went away turns into quick 503 answers, and the pool reconnects by
//! itself when it returns; plus the versioned schema migrations.

use std::time::Duration;

use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts};

use crate::error::{Error, Result};
use crate::schema::MIGRATIONS;

/// How long to wait for a pooled or new connection.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one unit of database work (a query, a checkout) may take.
pub const WORK_TIMEOUT: Duration = Duration::from_secs(5);
/// The database used when the URL names none.
pub const DEFAULT_DATABASE: &str = "unishop";

/// A pool of connections to the shop's database.
#[derive(Debug, Clone)]
pub struct Db {
    pool: Pool,
    opts: Opts,
    name: String,
    shown: String,
}

/// `mysql://user:secret@host/db` → `mysql://user@host/db` for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{}{}", &url[..s + 3], user, &url[at..])
        }
        _ => url.to_string(),
    }
}

impl Db {
    /// A pool for `url` (`mysql://USER[:PASSWORD]@HOST[:PORT][/DATABASE]`, database
    /// `unishop` when none is named) of at most `max_connections`. Connects lazily.
    pub fn new(url: &str, max_connections: usize) -> Result<Db> {
        let opts = Opts::from_url(url).map_err(|e| Error::BadDatabaseUrl {
            reason: e.to_string(),
        })?;
        let name = opts
            .db_name()
            .filter(|n| !n.is_empty())
            .unwrap_or(DEFAULT_DATABASE)
            .to_string();
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(Error::BadDatabaseUrl {
                reason: format!("database name {name:?}: use letters, digits, '_' or '-'"),
            });
        }
        let constraints = PoolConstraints::new(0, max_connections.max(1)).expect("0 <= max");
        let pool_opts = PoolOpts::default()
            .with_constraints(constraints)
            .with_inactive_connection_ttl(Duration::from_secs(30))
            .with_ttl_check_interval(Duration::from_secs(10));
        let opts: Opts = OptsBuilder::from_opts(opts)
            .db_name(Some(name.clone()))
            .pool_opts(pool_opts)
            .tcp_nodelay(true)
            .into();
        Ok(Db {
            pool: Pool::new(opts.clone()),
            opts,
            name,
            shown: redact(url),
        })
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL without its password, for messages.
    pub fn shown_url(&self) -> &str {
        &self.shown
    }

    /// A connection, or [`Error::DatabaseUnavailable`] within [`ACQUIRE_TIMEOUT`].
    pub async fn conn(&self) -> Result<Conn> {
        match tokio::time::timeout(ACQUIRE_TIMEOUT, self.pool.get_conn()).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(Error::db(&format!("connect to {}", self.shown), e)),
            Err(_) => Err(Error::DatabaseUnavailable {
                reason: format!("no connection to {} within {ACQUIRE_TIMEOUT:?}", self.shown),
                code: None,
            }),
        }
    }

    /// Runs `work` with a time limit of [`WORK_TIMEOUT`]; a late answer is unavailability.
    pub async fn timed<T>(&self, what: &str, work: impl Future<Output = Result<T>>) -> Result<T> {
        match tokio::time::timeout(WORK_TIMEOUT, work).await {
            Ok(r) => r,
            Err(_) => Err(Error::DatabaseUnavailable {
                reason: format!("{what}: no answer within {WORK_TIMEOUT:?}"),
                code: None,
            }),
        }
    }

    /// Proves the database answers (`SELECT 1` on a pooled connection).
    pub async fn ping(&self) -> Result<()> {
        self.timed("ping", async {
            let mut c = self.conn().await?;
            c.query_drop("SELECT 1")
                .await
                .map_err(|e| Error::db("SELECT 1", e))
        })
        .await
    }

    /// Creates the database when it does not exist yet (needs the right to).
    async fn ensure_database(&self) -> Result<()> {
        let server: Opts = OptsBuilder::from_opts(self.opts.clone())
            .db_name(None::<String>)
            .into();
        let mut c = tokio::time::timeout(ACQUIRE_TIMEOUT, Conn::new(server))
            .await
            .map_err(|_| Error::DatabaseUnavailable {
                reason: format!("no connection to {} within {ACQUIRE_TIMEOUT:?}", self.shown),
                code: None,
            })?
            .map_err(|e| Error::db(&format!("connect to {}", self.shown), e))?;
        let sql = format!(
            "CREATE DATABASE IF NOT EXISTS `{}` CHARACTER SET utf8mb4",
            self.name
        );
        c.query_drop(&sql).await.map_err(|e| Error::db(&sql, e))?;
        let _ = c.disconnect().await;
        Ok(())
    }

    /// Applies the schema migrations this program knows and the database
    /// lacks, in order, under a server-wide named lock (two instances starting
    /// at once apply each migration once). Creates the database if missing.
    /// Returns the versions applied now (empty when the schema was current).
    #[tracing::instrument(skip(self), fields(database = %self.shown))]
    pub async fn migrate(&self) -> Result<Vec<u32>> {
        let first = tokio::time::timeout(ACQUIRE_TIMEOUT, self.pool.get_conn())
            .await
            .map_err(|_| Error::DatabaseUnavailable {
                reason: format!("no connection to {} within {ACQUIRE_TIMEOUT:?}", self.shown),
                code: None,
            })?;
        let mut c = match first {
            Ok(c) => c,
            Err(mysql_async::Error::Server(s)) if s.code == 1049 => {
                self.ensure_database().await?;
                self.conn().await?
            }
            Err(e) => return Err(Error::db(&format!("connect to {}", self.shown), e)),
        };
        let lock = format!("unishop.migrations.{}", self.name);
        let got: Option<i64> = c
            .exec_first("SELECT GET_LOCK(?, 60)", (lock.as_str(),))
            .await
            .map_err(|e| Error::db("take the migration lock", e))?;
        if got != Some(1) {
            return Err(Error::Other(format!(
                "another unishop has held the migration lock {lock:?} for 60 s; is a migration stuck?"
            )));
        }
        let result = apply_missing(&mut c).await;
        let released = c
            .exec_drop("SELECT RELEASE_LOCK(?)", (lock.as_str(),))
            .await;
        if released.is_err() {
            // A connection we could not clean up never goes back to the pool.
            let _ = c.disconnect().await;
        }
        result
    }

    /// Closes every pooled connection.
    pub async fn close(self) {
        let _ = self.pool.disconnect().await;
    }
}

async fn apply_missing(c: &mut Conn) -> Result<Vec<u32>> {
    c.query_drop(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INT UNSIGNED NOT NULL PRIMARY KEY,
            name VARCHAR(200) NOT NULL,
            applied_at DATETIME(6) NOT NULL
        ) ENGINE=InnoDB",
    )
    .await
    .map_err(|e| Error::db("create schema_migrations", e))?;
    let done: Vec<u32> = c
        .query("SELECT version FROM schema_migrations ORDER BY version")
        .await
        .map_err(|e| Error::db("read schema_migrations", e))?;
    let known = MIGRATIONS.last().map(|m| m.version).unwrap_or(0);
    if let Some(&found) = done.last()
        && found > known
    {
        return Err(Error::SchemaTooNew { found, known });
    }
    let mut applied = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| !done.contains(&m.version)) {
        for sql in m.statements {
            c.query_drop(*sql)
                .await
                .map_err(|e| Error::db(&format!("migration {} ({})", m.version, m.name), e))?;
        }
        c.exec_drop(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, UTC_TIMESTAMP(6))",
            (m.version, m.name),
        )
        .await
        .map_err(|e| Error::db("record a migration", e))?;
        tracing::info!(
            version = m.version,
            name = m.name,
            "schema migration applied"
        );
        applied.push(m.version);
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("mysql://shop:s3cret@db.example:3306/unishop"),
            "mysql://shop@db.example:3306/unishop"
        );
        assert_eq!(redact("mysql://root@127.0.0.1"), "mysql://root@127.0.0.1");
        assert_eq!(redact("mysql://127.0.0.1"), "mysql://127.0.0.1");
    }

    #[test]
    fn bad_urls_are_refused() {
        assert!(matches!(
            Db::new("postgres://x@y/z", 4),
            Err(Error::BadDatabaseUrl { .. })
        ));
        assert!(matches!(
            Db::new("mysql://root@127.0.0.1/bad;name", 4),
            Err(Error::BadDatabaseUrl { .. })
        ));
        let db = Db::new("mysql://root@127.0.0.1:3306", 4).unwrap();
        assert_eq!(db.name(), "unishop");
    }
}
