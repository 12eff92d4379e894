//! The validated model of `lifeboat.toml`: nothing downstream sees an
//! unvalidated value (ripgrep's two stages: raw with spans → this).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::duration::Dur;
use crate::schedule::Schedule;

/// A whole validated file.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// Named places: their roots and object stores.
    pub sites: BTreeMap<String, Site>,
    /// Stores of recovery points.
    pub vaults: BTreeMap<String, VaultSpec>,
    /// Protected things.
    pub resources: BTreeMap<String, Resource>,
    /// Which resources, when, into which vault, kept how long, copied where.
    pub plans: BTreeMap<String, Plan>,
    /// Continuous copies of buckets.
    pub replications: BTreeMap<String, Replication>,
    /// The resources a site runs, recovered together.
    pub stacks: BTreeMap<String, Stack>,
    /// Scheduled recoveries into scratch stacks.
    pub drills: BTreeMap<String, Drill>,
    /// `[server]`: where `lifeboat serve` listens for the REST API and `/metrics`.
    pub server: ServerSpec,
    /// `[daemon]`: settings of `lifeboat serve`.
    pub daemon: DaemonSpec,
}

/// `[server]`: the REST API's listen address, TLS and token file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerSpec {
    /// `host:port` (default [`ServerSpec::DEFAULT_LISTEN`]).
    pub listen: std::net::SocketAddr,
    /// PEM certificate chain; with `tls_key`, the API is served over TLS.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// The bearer token's file (default: `api-token` in the state directory).
    pub token_file: Option<PathBuf>,
    /// Directories the API and console may restore into (files, and bucket
    /// locations on this host); `None`: `restores/` under the state
    /// directory and every site's root.
    pub restore_roots: Option<Vec<PathBuf>>,
}

impl ServerSpec {
    /// Loopback only: exposing the API is a decision the file states.
    pub const DEFAULT_LISTEN: &str = "127.0.0.1:7460";
}

impl Default for ServerSpec {
    fn default() -> Self {
        ServerSpec {
            listen: Self::DEFAULT_LISTEN.parse().expect("valid address"),
            tls_cert: None,
            tls_key: None,
            token_file: None,
            restore_roots: None,
        }
    }
}

/// `[daemon]`: when `lifeboat serve` applies retention (forget, then prune).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DaemonSpec {
    /// When retention runs (default daily at 03:30 UTC).
    pub retention_schedule: Schedule,
}

impl DaemonSpec {
    /// The default retention schedule: daily at 03:30.
    pub const DEFAULT_RETENTION: &'static str = "30 3 * * *";
}

impl Default for DaemonSpec {
    fn default() -> DaemonSpec {
        DaemonSpec {
            retention_schedule: Schedule::parse(DaemonSpec::DEFAULT_RETENTION, "UTC")
                .expect("the default schedule parses"),
        }
    }
}

/// `[site.NAME]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Site {
    /// Where the site's servers, buckets and hosts live on this machine (embedded default).
    pub root: Option<PathBuf>,
    /// An S3 endpoint the site's buckets and vaults are on: a stack's
    /// buckets are provisioned there (`http(s)://host:port`).
    pub endpoint: Option<String>,
    /// The endpoint's region (default `us-east-1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The endpoint's S3 keys (`credentials_env = "PREFIX"` or
    /// `credentials_file`); `None`: the process's AWS_* environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Secret>,
}

/// Where a secret comes from (never the file itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Secret {
    /// An environment variable of that name.
    Env(String),
    /// The first line of that file.
    File(PathBuf),
}

/// The mode of a vault lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LockMode {
    /// Deletable only with an explicit override.
    Governance,
    /// Not deletable by anyone until it expires.
    Compliance,
}

/// `lock = { mode, min_retention, max_retention, changeable_for }` (or `lock = "governance"`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LockSpec {
    /// Governance or compliance.
    pub mode: LockMode,
    /// No point may be kept (locked) for less.
    pub min_retention: Option<Dur>,
    /// No point may be locked for longer.
    pub max_retention: Option<Dur>,
    /// How long after it is set the lock configuration may still change.
    pub changeable_for: Option<Dur>,
}

/// `[vault.NAME]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VaultSpec {
    /// The site it is in.
    pub site: Option<String>,
    /// `file:///path`, `/path` or `s3://bucket/prefix?...`.
    pub location: String,
    /// The password's source (default: env `LIFEBOAT_PASSWORD`).
    pub password: Secret,
    /// Lock defaults of the vault.
    pub lock: Option<LockSpec>,
    /// Its own S3 keys (`credentials_env = "PREFIX"` or `credentials_file`);
    /// `None`: the process's AWS_* environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Secret>,
}

/// `[resource.NAME]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resource {
    /// The site it is in.
    pub site: Option<String>,
    /// Its content changes only by deploy (an app host, a frontend bucket):
    /// a recovery reports its RPO apart, never in the stack's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stateless: bool,
    /// What it is, with its own keys.
    #[serde(flatten)]
    pub kind: ResourceKind,
}

/// The kinds of resource and their keys: read from each kind's protector's
/// keys (`lifeboat_protector::ResourceSettings`) as JSON, then typed here
/// for the kinds the layers above use by name; any other registered kind
/// is [`ResourceKind::Other`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ResourceKind {
    /// Directory trees.
    Files {
        /// Absolute paths.
        #[serde(default)]
        paths: Vec<PathBuf>,
        /// gitignore-style patterns.
        #[serde(default)]
        excludes: Vec<String>,
        /// Stay on each path's file system.
        #[serde(default)]
        one_file_system: bool,
    },
    /// A MySQL/MariaDB server.
    Mysql {
        /// `mysql://user@host:port` (no password in it).
        #[serde(default)]
        dsn: String,
        /// The database password's source.
        password: Option<Secret>,
        /// The continuous binlog archive, when on.
        archive: Option<Archive>,
        /// Where its server listens when provisioned outside its own site
        /// (a recovery, a drill): `host:port`, e.g. the primary's
        /// `127.0.0.1:3306`, so an application that names that address
        /// works unchanged; `None`: a free port.
        #[serde(skip_serializing_if = "Option::is_none")]
        recover_listen: Option<String>,
        /// A unix socket path the recovered server also answers on (a link
        /// to its own socket), e.g. `/run/mysqld/mysqld.sock`.
        #[serde(skip_serializing_if = "Option::is_none")]
        recover_socket: Option<PathBuf>,
        /// The application's own account on a server a stack provisions:
        /// made there, and handed to the application as `${NAME.dsn}`
        /// instead of root.
        #[serde(skip_serializing_if = "Option::is_none")]
        app: Option<AppAccount>,
        /// How its points are taken: `logical` (SQL rows; `None` is the
        /// same) or `physical` (the server's files by mariadb-backup, on the
        /// database host), as the file writes it (boxed, as is
        /// `full_every`: they keep the variant small).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mode: Option<Box<str>>,
        /// Physical: incremental points on the newest until the chain's
        /// full point is this old, then a full one (`24h`, as the file
        /// writes it); `None`: every point full.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        full_every: Option<Box<str>>,
    },
    /// A bucket (a directory or an S3 bucket).
    Bucket {
        /// `file:///path` or `s3://bucket/prefix?...`.
        #[serde(default)]
        location: String,
    },
    /// An instance (files, volumes, launch spec, hooks), checked by the
    /// instance protector's rules (`lifeboat_instance::InstanceSpec`).
    #[serde(skip_deserializing)]
    Instance {
        /// The `InstanceSpec` as JSON, its `name` the resource's.
        spec: serde_json::Value,
    },
    /// A kind its protector registers that the model has no variant for:
    /// its settings as its protector's keys read them (`kind` among them).
    #[serde(untagged, skip_deserializing)]
    Other {
        /// The kind's name.
        #[serde(skip)]
        kind: &'static str,
        /// Its keys as JSON, each under its field name.
        #[serde(flatten)]
        settings: serde_json::Map<String, serde_json::Value>,
        /// Where its secret is (`password_env` / `password_file`).
        #[serde(skip)]
        secret: Option<Secret>,
    },
}

impl ResourceKind {
    /// Every typed kind's name, as `kind = "…"` says it (the registry may
    /// know more: [`ResourceKind::Other`]).
    pub const NAMES: [&'static str; 4] = ["files", "mysql", "bucket", "instance"];

    /// `files`, `mysql`, `bucket`, `instance` or another registered kind's name.
    pub fn name(&self) -> &'static str {
        match self {
            ResourceKind::Files { .. } => Self::NAMES[0],
            ResourceKind::Mysql { .. } => Self::NAMES[1],
            ResourceKind::Bucket { .. } => Self::NAMES[2],
            ResourceKind::Instance { .. } => Self::NAMES[3],
            ResourceKind::Other { kind, .. } => kind,
        }
    }

    /// The source of the resource's secret, when it has one (a database's password).
    pub fn secret(&self) -> Option<&Secret> {
        match self {
            ResourceKind::Mysql { password, .. } => password.as_ref(),
            ResourceKind::Other { secret, .. } => secret.as_ref(),
            _ => None,
        }
    }

    /// The kind `kind` of resource `name` from its settings as the loader
    /// read them (JSON, `kind` among them): a typed variant when the model
    /// has one, else [`ResourceKind::Other`].
    pub(crate) fn from_settings(
        kind: &'static str,
        name: &str,
        settings: serde_json::Value,
    ) -> ResourceKind {
        if kind == Self::NAMES[3] {
            return ResourceKind::Instance {
                spec: instance_spec(name, settings),
            };
        }
        serde_json::from_value(settings.clone()).unwrap_or_else(|_| {
            let settings = match settings {
                serde_json::Value::Object(m) => m,
                _ => serde_json::Map::new(),
            };
            let secret = settings
                .get("password")
                .and_then(|p| serde_json::from_value(p.clone()).ok());
            ResourceKind::Other {
                kind,
                settings,
                secret,
            }
        })
    }
}

/// An instance resource's spec as JSON: its settings read as an
/// `InstanceSpec`, named as the resource.
fn instance_spec(name: &str, settings: serde_json::Value) -> serde_json::Value {
    match serde_json::from_value::<lifeboat_instance::InstanceSpec>(settings.clone()) {
        Ok(mut spec) => {
            spec.kind = Some(ResourceKind::NAMES[3].into());
            spec.name = Some(name.to_string());
            serde_json::to_value(&spec).expect("a spec serializes")
        }
        // Only a file with errors reported gets here.
        Err(_) => settings,
    }
}

/// `app = { user, database, password_file | password_env }`: the
/// application's own account on a database a stack provisions — all
/// privileges on its database, none beyond (so `read_only` binds it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppAccount {
    /// The account's user name (the host is `%`).
    pub user: String,
    /// The database it owns.
    pub database: String,
    /// Its password's source.
    pub password: Secret,
}

/// A database's continuous binlog archive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Archive {
    /// The vault it seals into; `None`: the vault of the plan that holds the resource.
    pub vault: Option<String>,
    /// Vaults the archive is copied into.
    #[serde(default)]
    pub copy_to: Vec<String>,
}

/// `retention = { keep_last, keep_hourly, ..., keep_within }`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RetentionSpec {
    /// Newest N points.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    /// Newest point of each of the last N hours.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_hourly: Option<u32>,
    /// ... days.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_daily: Option<u32>,
    /// ... weeks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_weekly: Option<u32>,
    /// ... months.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_monthly: Option<u32>,
    /// ... years.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_yearly: Option<u32>,
    /// Every point younger than this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within: Option<Dur>,
}

impl RetentionSpec {
    /// The default of a plan that names none: 7 daily, 4 weekly, 6 monthly.
    pub fn default_plan() -> RetentionSpec {
        RetentionSpec {
            keep_daily: Some(7),
            keep_weekly: Some(4),
            keep_monthly: Some(6),
            ..RetentionSpec::default()
        }
    }

    /// How long the oldest kept point lives at least: the longest of the rules.
    pub fn span(&self) -> Dur {
        let n = |v: Option<u32>, unit: u64| v.map(|v| v as u64 * unit).unwrap_or(0);
        Dur([
            n(self.keep_hourly, 3600),
            n(self.keep_daily, 86_400),
            n(self.keep_weekly, 604_800),
            n(self.keep_monthly, 30 * 86_400),
            n(self.keep_yearly, 365 * 86_400),
            self.keep_within.map(|d| d.0).unwrap_or(0),
        ]
        .into_iter()
        .max()
        .unwrap_or(0))
    }
}

/// One copy action of a plan: after each successful backup, copy the point.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CopyAction {
    /// The vault it copies into (another site's, usually).
    pub vault: String,
    /// How long copies are kept there (default: the plan's).
    pub retention: Option<RetentionSpec>,
    /// The lock copies carry.
    pub lock: Option<LockSpec>,
}

/// A command run around a plan's jobs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hook {
    /// Run by `sh -c`.
    pub command: String,
    /// Killed after this long (default 5m).
    pub timeout: Dur,
    /// A failure of an essential hook fails the job (default true).
    pub essential: bool,
}

/// `hooks = { before = [...], after = [...], on_failure = [...] }`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Hooks {
    /// Before each job.
    pub before: Vec<Hook>,
    /// After each successful job.
    pub after: Vec<Hook>,
    /// After a failed job.
    pub on_failure: Vec<Hook>,
}

/// `notify = { webhook = URL, healthcheck = URL }`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Notify {
    /// POSTed a JSON body after each job.
    pub webhook: Option<String>,
    /// Pinged at start (`/start`), success and failure (`/fail`), healthchecks.io style.
    pub healthcheck: Option<String>,
}

/// `[plan.NAME]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// Resource names, in order.
    pub resources: Vec<String>,
    /// When it runs.
    pub schedule: Schedule,
    /// How long after its time a run may still start (a missed run is caught up within it).
    pub window: Option<Dur>,
    /// The vault its points go into.
    pub vault: String,
    /// How long its points are kept.
    pub retention: RetentionSpec,
    /// Copies to other vaults after each successful backup.
    pub copy: Vec<CopyAction>,
    /// Commands around its jobs.
    pub hooks: Hooks,
    /// Who is told.
    pub notify: Notify,
}

/// What a replication rule does with deletions at the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeletePolicy {
    /// Delete at the destination too.
    Replicate,
    /// Keep the destination's copy.
    Keep,
}

/// `[replication.NAME]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Replication {
    /// A bucket resource.
    pub from: String,
    /// The destination bucket's location.
    pub to: String,
    /// Deletions.
    pub delete: DeletePolicy,
    /// Only keys under this prefix.
    pub prefix: Option<String>,
}

impl Config {
    /// The vaults a configuration writes into (plans, copies, archives), sorted.
    pub fn used_vaults(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for p in self.plans.values() {
            v.push(p.vault.clone());
            v.extend(p.copy.iter().map(|c| c.vault.clone()));
        }
        for r in self.resources.values() {
            if let ResourceKind::Mysql {
                archive: Some(a), ..
            } = &r.kind
            {
                v.extend(a.vault.clone());
                v.extend(a.copy_to.iter().cloned());
            }
        }
        v.sort();
        v.dedup();
        v
    }

    /// The plans that hold `resource`.
    pub fn plans_of(&self, resource: &str) -> Vec<&str> {
        self.plans
            .iter()
            .filter(|(_, p)| p.resources.iter().any(|r| r == resource))
            .map(|(n, _)| n.as_str())
            .collect()
    }
}

/// `[stack.NAME]`: the resources that make up a site's application.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stack {
    /// Its resources (the order of recovery comes from their dependencies).
    pub members: Vec<String>,
    /// Members whose failure does not fail a recovery.
    pub optional: Vec<String>,
    /// What a recovery must achieve.
    pub objectives: Objectives,
    /// The application's own check after a recovery (run by `sh -c`).
    pub check: Option<String>,
}

/// `objectives = { rpo, rto }`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Objectives {
    /// Most data (time) a recovery may lose.
    pub rpo: Option<Dur>,
    /// Longest a recovery may take, start to healthy.
    pub rto: Option<Dur>,
}

/// `[drill.NAME]`: a recovery into a scratch stack, verified and torn down.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drill {
    /// The stack it recovers.
    pub stack: String,
    /// The site it recovers into.
    pub to: String,
    /// When it runs (none: only by hand).
    pub schedule: Option<Schedule>,
    /// Which points it recovers.
    pub pick: Pick,
    /// How long the scratch stack stays up after validation.
    pub keep_for: Dur,
}

/// Which recovery point a drill uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pick {
    /// The newest.
    Latest,
    /// A random time within this long before now.
    RandomWithin(Dur),
}

impl Pick {
    /// Parses `latest` or `random-within:DURATION`.
    pub fn parse(s: &str) -> Result<Pick, String> {
        if s == "latest" {
            return Ok(Pick::Latest);
        }
        match s.strip_prefix("random-within:") {
            Some(d) => crate::duration::parse(d)
                .map(Pick::RandomWithin)
                .map_err(|e| format!("`{s}`: {e}")),
            None => Err(format!("unknown pick `{s}`")),
        }
    }
}
