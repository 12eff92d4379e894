//! What every command shares: global flags, opening the vault, passwords,
//! progress bars, JSON output.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use lifeboat_vault::{Location, Vault};

/// Flags every command takes.
#[derive(clap::Args, Debug, Clone)]
pub struct Global {
    /// Vault: /abs/path, file:///abs/path, s3://…, or the name of a vault in lifeboat.toml (none: the file's only vault).
    #[arg(long, global = true, env = "LIFEBOAT_VAULT")]
    pub vault: Option<String>,
    /// Read the vault password from this file (first line).
    #[arg(long, global = true, env = "LIFEBOAT_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print less (no progress, no summaries).
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Set by the daemon for the jobs it starts: die when that process dies.
    #[arg(long, global = true, hide = true)]
    pub parent_pid: Option<i32>,
    /// Log more (repeat for debug).
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// Sets up logging on stderr.
pub fn init_tracing(g: &Global) {
    // OpenDAL logs every retry as a warning; they show with -v.
    let level = match g.verbose {
        0 => "warn,opendal=error",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("LIFEBOAT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
}

impl Global {
    /// The vault location, or a clear error: `--vault`/`LIFEBOAT_VAULT` as
    /// a location, or as the name of a vault `lifeboat.toml` declares; with
    /// neither, the file's only vault.
    pub fn location(&self) -> Result<Location> {
        Ok(self.resolve()?.0)
    }

    /// The vault's location, and its declaration when the file declares it.
    fn resolve(
        &self,
    ) -> Result<(
        Location,
        Option<(String, lifeboat_config::model::VaultSpec)>,
    )> {
        if let Some((name, spec)) = self.declared_vault()? {
            let loc = lifeboat_control::secret::location(&spec, &name)?;
            return Ok((loc, Some((name, spec))));
        }
        let v = self.vault.as_deref().ok_or_else(|| {
            let skipped = match config_file() {
                Err(why) => format!(" ({why})"),
                Ok(_) => String::new(),
            };
            usage(format!("no vault given: pass --vault /abs/path (or file:///abs/path, or the name of a vault in lifeboat.toml), or set LIFEBOAT_VAULT{skipped}"))
        })?;
        Ok((Location::parse(v).map_err(|e| usage(e.to_string()))?, None))
    }

    /// The vault of `lifeboat.toml` (`LIFEBOAT_CONFIG`) that `--vault`
    /// names, or its only one when `--vault` is not given; `None` when
    /// `--vault` is a location, or there is no file to ask.
    fn declared_vault(&self) -> Result<Option<(String, lifeboat_config::model::VaultSpec)>> {
        let named = self.vault.as_deref();
        if let Some(loc) = named.filter(|v| v.contains('/') || v.contains(':')) {
            return Ok(Self::declared_at(loc));
        }
        let file = match config_file() {
            Ok(f) => f,
            Err(why) if named.is_some() => return Err(usage(why)),
            Err(_) => return Ok(None),
        };
        if named.is_none() && !file.exists() {
            return Ok(None);
        }
        let cfg = match lifeboat_config::load(&file) {
            Ok(cfg) => cfg,
            Err(_) if named.is_none() => return Ok(None),
            Err(e) => {
                return Err(usage(format!(
                    "--vault {}: not a location (/abs/path, file:///…, s3://…), and {} cannot name it: {e}",
                    named.unwrap_or_default(),
                    file.display()
                )));
            }
        };
        let names = || cfg.vaults.keys().cloned().collect::<Vec<_>>().join(", ");
        match named {
            Some(n) => match cfg.vaults.get(n) {
                Some(spec) => Ok(Some((n.to_string(), spec.clone()))),
                None => Err(usage(format!(
                    "--vault {n}: not a location (/abs/path, file:///…, s3://…), and {} declares no vault `{n}` (it declares: {})",
                    file.display(),
                    names()
                ))),
            },
            None if cfg.vaults.len() == 1 => Ok(cfg.vaults.into_iter().next()),
            None if cfg.vaults.is_empty() => Ok(None),
            None => Err(usage(format!(
                "no vault given, and {} declares several ({}): pass --vault NAME (or a location), or set LIFEBOAT_VAULT",
                file.display(),
                names()
            ))),
        }
    }

    /// The vault the file (`LIFEBOAT_CONFIG`, else a `./lifeboat.toml` of
    /// the user's own) declares at location `loc`, if any: a vault given by
    /// its path opens with the file's password source as by its name.
    fn declared_at(loc: &str) -> Option<(String, lifeboat_config::model::VaultSpec)> {
        let file = config_file().ok()?;
        let plain = |l: &str| {
            l.strip_prefix("file://")
                .unwrap_or(l)
                .trim_end_matches('/')
                .to_string()
        };
        let cfg = lifeboat_config::load(&file).ok()?;
        cfg.vaults
            .into_iter()
            .find(|(_, spec)| plain(&spec.location) == plain(loc))
    }

    /// The password from env, file or terminal prompt.
    pub fn password(&self, confirm: bool) -> Result<Vec<u8>> {
        read_password(
            "LIFEBOAT_PASSWORD",
            self.password_file.as_ref(),
            "vault password",
            confirm,
        )
    }

    /// Opens the vault: a vault of `lifeboat.toml` with the password source
    /// the file gives it, unless `--password-file` or `LIFEBOAT_PASSWORD` says otherwise.
    pub fn open(&self) -> Result<Vault> {
        let (loc, declared) = self.resolve()?;
        let given = self.password_file.is_some() || std::env::var_os("LIFEBOAT_PASSWORD").is_some();
        let pw = match declared {
            Some((name, spec)) if !given => {
                lifeboat_control::secret::read(&spec.password, &format!("vault `{name}`"))?
            }
            _ => self.password(false)?,
        };
        Ok(Vault::open(&loc, &pw)?)
    }

    /// Whether to draw progress bars.
    pub fn progress(&self) -> bool {
        !self.quiet && !self.json && std::io::stderr().is_terminal()
    }
}

/// The declarative file a vault may be named in: `LIFEBOAT_CONFIG`, else
/// `./lifeboat.toml` only when it is this user's and no one else may change
/// it (a file planted in a shared directory must not choose the vault, and
/// the password source, a backup uses); else why it is not read.
fn config_file() -> std::result::Result<PathBuf, String> {
    match std::env::var_os("LIFEBOAT_CONFIG") {
        Some(f) => Ok(PathBuf::from(f)),
        None => own_file(std::path::Path::new("lifeboat.toml")),
    }
}

/// `path` when it is missing, or a file of this user's that no one else may
/// write; else why it is not read.
fn own_file(path: &std::path::Path) -> std::result::Result<PathBuf, String> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(path.to_path_buf());
    };
    if meta.file_type().is_symlink() {
        return Err(format!(
            "{} is not read: it is a symbolic link; name the file with LIFEBOAT_CONFIG, or give --vault a location",
            path.display()
        ));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me || meta.mode() & 0o022 != 0 {
        return Err(format!(
            "{} is not read: it belongs to uid {} or others may write it (mode {:o}); name the file with LIFEBOAT_CONFIG, or give --vault a location",
            path.display(),
            meta.uid(),
            meta.mode() & 0o777
        ));
    }
    Ok(path.to_path_buf())
}

/// Reads a password from `env`, a file, or the terminal.
pub fn read_password(
    env: &str,
    file: Option<&PathBuf>,
    what: &str,
    confirm: bool,
) -> Result<Vec<u8>> {
    if let Some(f) = file {
        // As for the file's `password_file` keys.
        if let Some(why) = lifeboat_control::secret::not_private(f) {
            return Err(usage(why));
        }
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("cannot read password file {}", f.display()))?;
        let line = text.lines().next().unwrap_or("");
        if line.is_empty() {
            bail!("password file {} is empty", f.display());
        }
        return Ok(line.as_bytes().to_vec());
    }
    match std::env::var(env) {
        Ok(p) if p.is_empty() => bail!("{env} is set but empty"),
        Ok(p) => return Ok(p.into_bytes()),
        Err(std::env::VarError::NotUnicode(_)) => bail!(
            "{env} is set but is not valid UTF-8 (a password is text: set it in a UTF-8 locale, or put it in a file for --password-file)"
        ),
        Err(std::env::VarError::NotPresent) => {}
    }
    if !std::io::stdin().is_terminal() {
        bail!("no {what}: set {env}, pass --password-file, or run on a terminal to be asked");
    }
    let p = rpassword::prompt_password(format!("{what}: "))?;
    if confirm {
        let again = rpassword::prompt_password(format!("{what} again: "))?;
        if again != p {
            bail!("the two passwords differ; nothing was changed");
        }
    }
    if p.is_empty() {
        bail!("empty password");
    }
    Ok(p.into_bytes())
}

/// A mistake in how a command was called: exit code 2.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// A usage error (exit code 2) saying `msg`.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    Usage(msg.into()).into()
}

/// The exit code of a failed command: 2 for a usage error, else 1.
pub fn failure_code(e: &anyhow::Error) -> ExitCode {
    if e.downcast_ref::<Usage>().is_some() {
        ExitCode::from(2)
    } else {
        ExitCode::from(1)
    }
}

/// Makes a closed stdout or stderr (`lifeboat points show ID | head`) end the
/// process quietly with exit code 0 instead of a panic with a backtrace:
/// the reader has all it wanted.
pub fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let p = info.payload();
        let msg = p
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| p.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to std") && msg.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info)
    }));
}

/// Prints a value as pretty JSON.
pub fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// "`done` of `total` (P%), ETA T", each amount shown by `show`; the time left
/// is estimated from the rate so far (once half a second has passed).
pub fn fraction_line(done: u64, total: u64, elapsed: Duration, show: fn(u64) -> String) -> String {
    let pct = (done as f64 / total.max(1) as f64 * 100.0).min(100.0);
    let secs = elapsed.as_secs_f64();
    let eta = if done > 0 && secs > 0.5 {
        let left = (total.saturating_sub(done)) as f64 / (done as f64 / secs);
        format!(
            ", ETA {}",
            indicatif::HumanDuration(Duration::from_secs_f64(left.min(1e7)))
        )
    } else {
        String::new()
    };
    format!("{} of {} ({pct:.0}%){eta}", show(done), show(total))
}

/// A progress spinner fed by a closure until dropped.
pub struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    /// Starts a spinner whose message is `msg()`, redrawn 8 times a second; a no-op when `enabled` is false.
    pub fn start(enabled: bool, msg: impl Fn() -> String + Send + 'static) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        if !enabled {
            return Progress { stop, thread: None };
        }
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let pb = indicatif::ProgressBar::new_spinner();
            pb.set_style(
                indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                    .expect("template"),
            );
            while !s.load(Ordering::Relaxed) {
                pb.set_message(msg());
                pb.tick();
                std::thread::sleep(Duration::from_millis(125));
            }
            pb.finish_and_clear();
        });
        Progress {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Prints a job's notes (unless quiet) and warnings on stderr.
pub fn print_notes_and_warnings(g: &Global, notes: &[String], warnings: &[String]) {
    if !g.quiet {
        for n in notes {
            eprintln!("note: {n}");
        }
    }
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

/// The exit code of a job that finished: 0, or 3 ("finished but
/// incomplete") when it has warnings to show.
pub fn finished(warnings: &[String]) -> ExitCode {
    if warnings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    }
}

/// Human-readable bytes.
pub fn bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

/// Parses a duration of the one grammar (`lifeboat_vault::duration`:
/// `500ms`, `2s`, `5m`, `1h`, `7d`, plain seconds; the vault's timeouts
/// parser, so flags and vault URL parameters read alike).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    lifeboat_vault::timeouts::parse_duration(s)
}

/// A flag set by SIGINT or SIGTERM (a second signal ends the process at once),
/// for long-running jobs that stop cleanly.
pub fn stop_flag() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, flag.clone())?;
        signal_hook::flag::register(sig, flag.clone())?;
    }
    Ok(flag)
}

/// Makes SIGINT and SIGTERM stop a backup cleanly: the engine stops taking
/// new data, stores and indexes the packs in flight and releases its lock
/// (a second signal ends the process at once). Returns the flag.
pub fn stop_backup_on_signals() -> Result<Arc<AtomicBool>> {
    let flag = lifeboat_vault::writer::stop_flag();
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, flag.clone())?;
        signal_hook::flag::register(sig, flag.clone())?;
    }
    Ok(flag)
}

/// Runs a backup's `work` with its progress `bar` shown, stopped cleanly by
/// SIGINT/SIGTERM: `Err(code)` when a signal stopped it (said, exit 130).
pub fn interruptible<T, E: Into<anyhow::Error>>(
    bar: Progress,
    work: impl FnOnce() -> std::result::Result<T, E>,
) -> Result<std::result::Result<T, ExitCode>> {
    let stop = stop_backup_on_signals()?;
    let res = work();
    drop(bar);
    match res {
        Ok(r) => Ok(Ok(r)),
        Err(_) if stop.load(Ordering::Relaxed) => Ok(Err(backup_interrupted())),
        Err(e) => Err(e.into()),
    }
}

/// The end of a backup stopped by a signal: says what was kept, exit 130.
pub fn backup_interrupted() -> ExitCode {
    eprintln!(
        "interrupted: no recovery point was written; the data stored so far is indexed and the next backup reuses it; the vault lock was released"
    );
    ExitCode::from(130)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(
            parse_duration("2d").unwrap(),
            Duration::from_secs(2 * 86_400)
        );
        for bad in ["", "x", "0s", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}

/// `--no-lock` of the read-only commands (`vault check`, `vault stats`,
/// `points ls`), as restic has it.
#[derive(clap::Args, Debug, Default, Clone, Copy)]
pub struct NoLock {
    /// Take no reader lock and write nothing into the vault (read-only media:
    /// a read-only mount, another user's files). Then a prune running
    /// meanwhile may delete packs this command reads.
    #[arg(long)]
    pub no_lock: bool,
}

impl NoLock {
    /// The reader lock of a read-only command (`kind`: "check", "list"), so
    /// that a prune running meanwhile defers deleting what it reads; none
    /// with `--no-lock`. A vault this process may not write to is an error
    /// naming `--no-lock`.
    pub fn reader_lock(
        self,
        v: &Vault,
        kind: &str,
    ) -> Result<Option<lifeboat_vault::lock::LockGuard>> {
        if self.no_lock {
            return Ok(None);
        }
        match lifeboat_vault::lock::LockGuard::acquire(v.storage(), kind, false) {
            Ok(g) => Ok(Some(g)),
            Err(e) if e.is_not_writable() => bail!(
                "cannot write a reader lock into the vault at {} ({e}); on read-only media (a read-only mount, another user's files, read-only keys) run the command again with --no-lock: it then writes nothing, but a prune running meanwhile may delete packs it reads",
                v.storage().location()
            ),
            Err(e) => Err(e.into()),
        }
    }

    /// "Now" for what a read-only command shows (which points are locked):
    /// the storage's clock, or this machine's with `--no-lock`, where
    /// nothing may be written to probe the storage's. Nothing is decided by it.
    pub fn shown_now(self, v: &Vault) -> Result<chrono::DateTime<chrono::Utc>> {
        if self.no_lock {
            return Ok(chrono::Utc::now());
        }
        Ok(v.now()?)
    }
}
