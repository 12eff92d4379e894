//! The storage seam: the few operations the vault needs from an object store.
//!
//! Everything the engine stores goes through [`Storage`]: list, stat, read (whole
//! or a byte range), write whole, remove. It sits on [OpenDAL](opendal), so a
//! directory and an S3-compatible bucket are the same to the engine; retries are
//! an OpenDAL layer around the backend, not code in the engine. "Not found" is
//! told apart from other failures, and failures say whether retrying may help.
//!
//! On a directory, writes are atomic: OpenDAL writes a temporary file under
//! `tmp/`, syncs it and renames it into place, so an object is either absent or
//! complete, whatever moment the process dies at.

use std::sync::{Arc, OnceLock};

use opendal::{ErrorKind, Operator};

use crate::credentials::S3Credentials;
use crate::error::{Result, VaultError};
use crate::timeouts::{Effective, S3Timeouts};

/// Where a vault (or any object-store prefix) lives.
// A location is made once per command and cloned rarely: the size of the S3
// variant (with its credentials) does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local directory (absolute path).
    Dir(std::path::PathBuf),
    /// A bucket (and prefix) on an S3-compatible store.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix inside the bucket ("" for the whole bucket).
        prefix: String,
        /// Endpoint URL, e.g. `http://127.0.0.1:9000`; AWS when absent.
        endpoint: Option<String>,
        /// Region (default `us-east-1`).
        region: String,
        /// Network timeouts set in the URL (others come from the environment
        /// or defaults, see [`crate::timeouts`]).
        timeouts: S3Timeouts,
        /// Whose keys sign the requests (never part of the URL; see
        /// [`Location::with_credentials`]).
        credentials: S3Credentials,
    },
}

impl Location {
    /// Parses `file:///abs/path` or `/abs/path`.
    pub fn parse(text: &str) -> Result<Location> {
        let bad = |reason: &str| VaultError::BadLocation {
            location: text.to_string(),
            reason: reason.to_string(),
        };
        if let Some(rest) = text.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(bad("a file URL needs an absolute path: file:///abs/path"));
            }
            return Ok(Location::Dir(rest.into()));
        }
        if text.starts_with('/') {
            return Ok(Location::Dir(text.into()));
        }
        if let Some(rest) = text.strip_prefix("s3://") {
            let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
            let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
            if bucket.len() < 3 {
                return Err(bad("expected s3://BUCKET[/PREFIX][?endpoint=URL&region=R]"));
            }
            let mut endpoint = None;
            let mut region = "us-east-1".to_string();
            let mut timeouts = S3Timeouts::default();
            for kv in query.split('&').filter(|s| !s.is_empty()) {
                match kv.split_once('=') {
                    Some(("endpoint", v)) => endpoint = Some(v.to_string()),
                    Some(("region", v)) => region = v.to_string(),
                    Some((k, v)) if timeouts.set(k, v).map_err(|e| bad(&e))? => {}
                    _ => {
                        return Err(bad(&format!(
                            "unknown query parameter {kv:?} (known: endpoint, region, connect_timeout, timeout, total_timeout)"
                        )));
                    }
                }
            }
            return Ok(Location::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
                endpoint,
                region,
                timeouts,
                credentials: S3Credentials::Environment,
            });
        }
        Err(bad(
            "expected an absolute directory path, file:///abs/path, or s3://BUCKET[/PREFIX]?endpoint=URL",
        ))
    }

    /// This S3 location signed with `credentials` instead of the process
    /// environment's. A directory has no credentials: giving some is refused
    /// (a mistake the user should hear of).
    pub fn with_credentials(self, credentials: S3Credentials) -> Result<Location> {
        match self {
            Location::S3 {
                bucket,
                prefix,
                endpoint,
                region,
                timeouts,
                ..
            } => Ok(Location::S3 {
                bucket,
                prefix,
                endpoint,
                region,
                timeouts,
                credentials,
            }),
            Location::Dir(_) if credentials == S3Credentials::Environment => Ok(self),
            Location::Dir(_) => Err(VaultError::BadLocation {
                location: self.to_string(),
                reason: "S3 credentials were given for a directory vault (they apply to s3:// vaults only)".into(),
            }),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Dir(p) => write!(f, "file://{}", p.display()),
            Location::S3 {
                bucket,
                prefix,
                endpoint,
                region,
                timeouts,
                ..
            } => {
                write!(f, "s3://{bucket}")?;
                if !prefix.is_empty() {
                    write!(f, "/{prefix}")?;
                }
                match endpoint {
                    Some(e) => write!(f, "?endpoint={e}&region={region}")?,
                    None => write!(f, "?region={region}")?,
                }
                write!(f, "{}", timeouts.query())
            }
        }
    }
}

/// Removes the regular files directly in `dir` last modified more than
/// `older_than` ago: the leftovers of atomic writes a killed process never
/// renamed into place (a staging directory; nothing else may live there).
/// Ages are judged on the file system's clock (a probe file's mtime), not
/// this process's: a clock set ahead must not remove another process's
/// write in progress.
pub fn remove_old_files(dir: &std::path::Path, older_than: std::time::Duration) {
    let Ok(now) = crate::clock::probe_in(dir) else {
        return; // absent, or not writable: nothing could be removed either
    };
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > older_than);
        if old {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// One object found by [`Storage::list`].
#[derive(Debug, Clone)]
pub struct Listed {
    /// Path relative to the storage root, e.g. `packs/ab/ab12…`.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
}

/// Blocking handle on an object store.
#[derive(Clone)]
pub struct Storage {
    op: Operator,
    rt: Arc<tokio::runtime::Runtime>,
    location: String,
    loc: Location,
    /// Directory vaults: the writing operator, made on the first write (it
    /// needs `tmp/`; reading commands create nothing).
    writer: Arc<OnceLock<Operator>>,
    /// S3 vaults: the timeouts in effect.
    net: Option<Effective>,
    /// S3 vaults: what the transport saw answered (see [`Storage::silent_for`]).
    answers: Option<Arc<crate::timeouts::Answers>>,
    /// The last probe of the storage's clock (`clock.rs`).
    clock: crate::clock::ClockCache,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("location", &self.location)
            .finish()
    }
}

fn map_err(op: &'static str, path: &str, e: opendal::Error) -> VaultError {
    map_err_net(op, path, e, None)
}

fn map_err_net(
    op: &'static str,
    path: &str,
    e: opendal::Error,
    net: Option<(&Location, &Effective)>,
) -> VaultError {
    if e.kind() == ErrorKind::NotFound {
        return VaultError::Missing {
            object: path.to_string(),
            reason: "not found in storage".into(),
        };
    }
    let mut text = format!("{e}");
    if let Some(cut) = text.find("\nBacktrace:") {
        text.truncate(cut); // OpenDAL appends one when RUST_BACKTRACE is set
    }
    // The cause (connection refused, timed out…) is in the source chain.
    let mut src = std::error::Error::source(&e);
    let mut causes = String::new();
    while let Some(s) = src {
        let c = s.to_string();
        if !text.contains(&c) && !causes.contains(&c) {
            causes.push_str(&format!(": {c}"));
        }
        src = s.source();
    }
    text.push_str(&causes);
    if text.contains("error sending request")
        || text.contains("tcp connect error")
        || text.contains("send http request")
        || text.contains("timed out")
    {
        match net {
            Some((Location::S3 { endpoint, .. }, eff)) => text.push_str(&format!(
                " (the object store at {} cannot be reached or does not answer: check the endpoint, the network and that the server runs; {})",
                endpoint.as_deref().unwrap_or("AWS S3"),
                eff.describe()
            )),
            _ => text.push_str(" (the object store cannot be reached: check the endpoint, the network and that the server runs)"),
        }
    }
    if let Some((loc @ Location::S3 { .. }, _)) = net
        && let Some(hint) = crate::s3hint::explain(e.kind(), &text, op, loc)
    {
        text.push_str(&hint);
    }
    let no_space = text.contains("No space left") || text.contains("os error 28");
    VaultError::Storage {
        op,
        path: path.to_string(),
        retryable: e.is_temporary(),
        no_space,
        message: if no_space {
            format!("{text} (the disk is full: free space and run again; the vault is unharmed)")
        } else {
            text
        },
    }
}

fn fs_operator(root: &std::path::Path, tmp: Option<&std::path::Path>) -> Result<Operator> {
    let mut builder = opendal::services::Fs::default().root(&root.to_string_lossy());
    if let Some(tmp) = tmp {
        builder = builder.atomic_write_dir(&tmp.to_string_lossy());
    }
    // No retry layer on a local directory: its failures (a full
    // disk, permissions) do not go away by trying again.
    Operator::new(builder).map_err(|e| map_err("open", &root.to_string_lossy(), e))
}

fn s3_client(eff: &Effective) -> Result<reqwest::Client> {
    let client = reqwest::Client::builder()
        .connect_timeout(eff.connect)
        .read_timeout(eff.answer)
        .build()
        .map_err(|e| VaultError::Storage {
            op: "open",
            path: String::new(),
            message: format!("cannot set up an HTTP client: {e}"),
            retryable: false,
            no_space: false,
        })?;
    Ok(client)
}

impl Storage {
    /// Opens storage at `location`. A directory location is created if
    /// `create` is set (mode 0700); otherwise nothing is created or written
    /// until the first write (see [`crate::private`]).
    pub fn open(location: &Location, create: bool) -> Result<Storage> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("lifeboat-io")
            .enable_all()
            .build()
            .map_err(|e| VaultError::io("start I/O runtime", "", e))?;
        let mut net = None;
        let mut answers = None;
        let op = match location {
            Location::Dir(root) => {
                if create {
                    crate::private::create_dir_all(root)
                        .map_err(|e| VaultError::io("create directory", root, e))?;
                } else {
                    crate::private::expect_dir(root, location)?;
                }
                fs_operator(root, None)?
            }
            Location::S3 {
                bucket,
                prefix,
                endpoint,
                region,
                timeouts,
                credentials,
            } => {
                let eff = timeouts
                    .effective()
                    .map_err(|reason| VaultError::BadLocation {
                        location: location.to_string(),
                        reason,
                    })?;
                // Credentials come from the environment (AWS_ACCESS_KEY_ID,
                // AWS_SECRET_ACCESS_KEY, AWS_PROFILE…) unless the location
                // carries its own; the EC2 metadata service is never asked.
                let mut b = opendal::services::S3::default()
                    .bucket(bucket)
                    .root(&format!("/{prefix}"))
                    .region(region)
                    .disable_ec2_metadata();
                if let Some(e) = endpoint {
                    b = b.endpoint(e);
                }
                if let S3Credentials::Keys {
                    access_key_id,
                    secret_access_key,
                    session_token,
                    ..
                } = credentials
                {
                    // This vault's own keys, and nothing from the environment.
                    b = b
                        .access_key_id(access_key_id)
                        .secret_access_key(secret_access_key)
                        .disable_config_load();
                    if let Some(t) = session_token {
                        b = b.session_token(t);
                    }
                }
                let transport = crate::timeouts::FirstAnswer::new(
                    s3_client(&eff)?,
                    endpoint.as_deref().unwrap_or("AWS S3"),
                    &eff,
                );
                answers = Some(transport.answers());
                let ctx = opendal::OperationContext::new()
                    .with_http_transport(opendal::HttpTransporter::new(transport));
                net = Some(eff);
                Operator::new(b)
                    .map_err(|e| map_err("open", bucket, e))?
                    .with_context(ctx)
                    .layer(
                        opendal::layers::RetryLayer::new()
                            .with_max_times(crate::timeouts::ATTEMPTS - 1)
                            .with_min_delay(std::time::Duration::from_secs(1))
                            .with_max_delay(std::time::Duration::from_secs(4))
                            .with_jitter(),
                    )
            }
        };
        let writer = Arc::new(OnceLock::new());
        if !matches!(location, Location::Dir(_)) {
            let _ = writer.set(op.clone());
        }
        Ok(Storage {
            op,
            rt: Arc::new(rt),
            location: location.to_string(),
            loc: location.clone(),
            writer,
            net,
            answers,
            clock: Default::default(),
        })
    }

    /// The reading operator.
    pub(crate) fn operator(&self) -> &Operator {
        &self.op
    }

    /// The cache of the storage's clock (`clock.rs`).
    pub(crate) fn clock_cache(&self) -> &crate::clock::ClockCache {
        &self.clock
    }

    /// Runs one storage operation, bounded by the total timeout on S3.
    pub(crate) fn run<T>(
        &self,
        op: &'static str,
        path: &str,
        f: impl std::future::Future<Output = opendal::Result<T>>,
    ) -> Result<T> {
        let net = self.net.as_ref().map(|e| (&self.loc, e));
        match &self.net {
            None => self
                .rt
                .block_on(f)
                .map_err(|e| map_err_net(op, path, e, net)),
            Some(eff) => match self
                .rt
                .block_on(async { tokio::time::timeout(eff.total, f).await })
            {
                Ok(r) => r.map_err(|e| map_err_net(op, path, e, net)),
                Err(_) => Err(VaultError::Storage {
                    op,
                    path: path.to_string(),
                    message: format!(
                        "no complete answer from {} within the total timeout ({})",
                        self.location,
                        eff.describe()
                    ),
                    retryable: true,
                    no_space: false,
                }),
            },
        }
    }

    /// The operator that writes: on a directory, made (with `tmp/`) on the first write.
    fn write_op(&self) -> Result<Operator> {
        if let Some(op) = self.writer.get() {
            return Ok(op.clone());
        }
        let Location::Dir(root) = &self.loc else {
            unreachable!("S3 storage sets its writer at open")
        };
        let tmp = root.join("tmp");
        crate::private::create_dir_all(&tmp)
            .map_err(|e| VaultError::io("create directory", &tmp, e))?;
        let op = fs_operator(root, Some(&tmp))?;
        let _ = self.writer.set(op);
        Ok(self.writer.get().expect("just set").clone())
    }

    /// How long the store has left requests unanswered: requests wait and
    /// none was answered since the oldest was sent (or the last answer).
    /// `None` when no request waits, and on a directory. The API answers a
    /// store silent for a second as unreachable; a store that is only slow
    /// (many requests, each answered) never looks silent.
    pub fn silent_for(&self) -> Option<std::time::Duration> {
        self.answers.as_ref()?.silent_for()
    }

    /// The location this storage was opened at, for messages.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The parsed location.
    pub fn loc(&self) -> &Location {
        &self.loc
    }

    /// Reads a whole object.
    pub fn read(&self, path: &str) -> Result<Vec<u8>> {
        self.run("read", path, self.op.read(path))
            .map(|b| b.to_vec())
    }

    /// Reads `len` bytes at `offset` of an object.
    pub fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let buf = self.run("read", path, async {
            self.op.read_with(path).range(offset..offset + len).await
        })?;
        if buf.len() as u64 != len {
            return Err(VaultError::corrupt(
                path,
                format!(
                    "short read: wanted {len} bytes at {offset}, got {} (object truncated)",
                    buf.len()
                ),
            ));
        }
        Ok(buf.to_vec())
    }

    /// On a directory, makes the entries of the directories holding `path`
    /// durable (its directory and that one's parent, e.g. `packs/ab/` and
    /// `packs/`): after a write or remove returns, a power loss cannot undo it,
    /// so the write order of the format spec (§11) holds on disk too.
    fn sync_dirs(&self, path: &str) -> Result<()> {
        let Location::Dir(root) = &self.loc else {
            return Ok(()); // an object store's acknowledgement is durable
        };
        let mut dir = root.join(path);
        for _ in 0..2 {
            if !dir.pop() || !dir.starts_with(root) {
                break;
            }
            std::fs::File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| VaultError::io("sync directory", &dir, e))?;
        }
        Ok(())
    }

    /// Writes a whole object, replacing any object of the same name atomically.
    /// A failed write is aborted, so no partial or temporary file is left.
    /// On a directory, new directories are 0700 and the object 0600, and the
    /// write is durable (file and directory synced) when it returns.
    pub fn write(&self, path: &str, data: Vec<u8>) -> Result<()> {
        let op = self.write_op()?;
        if let Location::Dir(root) = &self.loc {
            crate::private::create_parents(root, path)
                .map_err(|e| VaultError::io("create directory", root.join(path), e))?;
        }
        self.run("write", path, async {
            let mut w = op.writer(path).await?;
            let r = match w.write(data).await {
                Ok(()) => w.close().await.map(|_| ()),
                Err(e) => Err(e),
            };
            if r.is_err() {
                let _ = w.abort().await;
            }
            r
        })?;
        if let Location::Dir(root) = &self.loc {
            crate::private::restrict_file(&root.join(path))
                .map_err(|e| VaultError::io("set permissions of", root.join(path), e))?;
        }
        self.sync_dirs(path)
    }

    /// Size of an object, or `None` when it does not exist.
    pub fn stat(&self, path: &str) -> Result<Option<u64>> {
        match self.run("stat", path, self.op.stat(path)) {
            Ok(m) => Ok(Some(m.content_length())),
            Err(VaultError::Missing { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Lists every object below `dir` (recursively), e.g. `packs/`.
    pub fn list(&self, dir: &str) -> Result<Vec<Listed>> {
        let entries = match self.run("list", dir, async {
            self.op.list_with(dir).recursive(true).await
        }) {
            Ok(v) => v,
            Err(VaultError::Missing { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for e in entries {
            if e.metadata().is_dir() {
                continue;
            }
            let mut size = e.metadata().content_length();
            if size == 0 {
                // Some listings do not carry sizes; ask.
                size = self.stat(e.path())?.unwrap_or(0);
            }
            out.push(Listed {
                path: e.path().to_string(),
                size,
            });
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Removes an object; removing a missing object is not an error. On a
    /// directory the removal is durable when it returns.
    pub fn remove(&self, path: &str) -> Result<()> {
        match self.run("remove", path, self.op.delete(path)) {
            Ok(()) => self.sync_dirs(path),
            Err(VaultError::Missing { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
