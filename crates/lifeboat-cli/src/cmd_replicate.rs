//! `lifeboat replicate` (a long-running replication rule) and
//! `lifeboat replicate status`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use lifeboat_bucket::replicate::{self, DeletePolicy, Options};

use crate::common::{Global, bytes, print_json};

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ReplicateArgs {
    #[command(subcommand)]
    status: Option<StatusCmd>,
    #[command(flatten)]
    rule: RuleArgs,
}

#[derive(Args, Debug)]
struct RuleArgs {
    /// Source bucket: file:///dir or s3://BUCKET[/PREFIX]?endpoint=URL&region=R.
    #[arg(long)]
    from: Option<String>,
    /// Destination bucket (a directory is created when missing; an S3 bucket must exist).
    #[arg(long)]
    to: Option<String>,
    /// Only replicate keys starting with this.
    #[arg(long, default_value = "")]
    prefix: String,
    /// What a delete at the source does at the destination.
    #[arg(long, value_enum, default_value = "replicate")]
    delete_markers: Deletes,
    /// Also copy the objects the source held before the rule first started.
    #[arg(long)]
    existing: bool,
    /// Copies at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Root of the replication state (default $XDG_STATE_HOME/lifeboat/replication
    /// or ~/.local/state/lifeboat/replication); the rule's state is in a subdirectory.
    #[arg(long, env = "LIFEBOAT_REPLICATION_STATE")]
    state: Option<PathBuf>,
    /// Serve Prometheus metrics on this address, e.g. 127.0.0.1:9464.
    #[arg(long)]
    metrics_listen: Option<String>,
    /// Seconds between full listings of the source (the safety net behind the change feed).
    #[arg(long, default_value_t = 60)]
    rescan_every: u64,
    /// Copy (and delete) what differs, then exit instead of following changes.
    #[arg(long)]
    once: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Deletes {
    Replicate,
    Ignore,
}

#[derive(Subcommand, Debug)]
enum StatusCmd {
    /// Show the status of the replication rules (backlog, lag, failures).
    Status {
        /// Root of the replication state (as given to `replicate --state`;
        /// default: `$LIFEBOAT_STATE/replication` when set, the daemon's).
        #[arg(long, env = "LIFEBOAT_REPLICATION_STATE")]
        state: Option<PathBuf>,
        /// Print Prometheus text instead.
        #[arg(long, conflicts_with = "json")]
        prometheus: bool,
    },
    /// Show a bucket's replicator fence (written by a recovery that uses it
    /// in place), or lift it after failback.
    Fence {
        /// The bucket (a replication rule's destination).
        bucket: String,
        /// Remove the fence: replicators may write into the bucket again.
        #[arg(long)]
        lift: bool,
    },
}

pub fn run(g: &Global, a: ReplicateArgs) -> Result<ExitCode> {
    match a.status {
        Some(StatusCmd::Status { state, prometheus }) => return status(g, state, prometheus),
        Some(StatusCmd::Fence { bucket, lift }) => return fence(g, &bucket, lift),
        None => {}
    }
    let r = a.rule;
    let (Some(from), Some(to)) = (r.from, r.to) else {
        eprintln!("error: give --from BUCKET and --to BUCKET (or `replicate status`)");
        return Ok(ExitCode::from(2));
    };
    // Normalize the addresses so one rule has one id however it is spelled.
    let from = lifeboat_bucket::Bucket::parse(&from)?.to_string();
    let to = lifeboat_bucket::Bucket::parse(&to)?.to_string();
    let root = r.state.unwrap_or_else(replicate::default_state_root);
    let mut opts = Options::new(&from, &to, &r.prefix);
    opts.state_dir = root.join(replicate::rule_id(&from, &to, &r.prefix));
    opts.delete_markers = match r.delete_markers {
        Deletes::Replicate => DeletePolicy::Replicate,
        Deletes::Ignore => DeletePolicy::Ignore,
    };
    opts.existing = r.existing;
    if r.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    opts.concurrency = r.concurrency;
    opts.metrics_listen = r.metrics_listen;
    opts.rescan_every = std::time::Duration::from_secs(r.rescan_every.max(1));
    opts.once = r.once;
    if !g.quiet {
        eprintln!(
            "replicating {from} → {to}{} (state {}){}",
            if r.prefix.is_empty() {
                String::new()
            } else {
                format!(", keys {:?}…", r.prefix)
            },
            opts.state_dir.display(),
            if r.once {
                "; once"
            } else {
                "; stop with Ctrl-C or SIGTERM"
            }
        );
    }
    let _span =
        tracing::info_span!("job", kind = "replicate", rule = %opts.state_dir.display()).entered();
    let rep = match replicate::run_until_signalled(opts) {
        Ok(rep) => rep,
        // A fenced destination: nothing written, the rule did not run (3).
        Err(e @ lifeboat_bucket::BucketError::Fenced { .. }) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(3));
        }
        Err(e) => return Err(e.into()),
    };
    if g.json {
        print_json(&serde_json::json!({
            "copied": rep.copied, "deleted": rep.deleted, "failures": rep.failures,
            "parked": rep.parked, "backlog": rep.backlog,
        }))?;
    } else if !g.quiet {
        eprintln!(
            "stopped: {} copied, {} deleted, {} failed attempts, {} not copied (parked until they change), {} waiting (resumed at the next start)",
            rep.copied, rep.deleted, rep.failures, rep.parked, rep.backlog
        );
    }
    // A one-shot run that left objects behind finished incomplete.
    Ok(if r.once && (rep.parked > 0 || rep.backlog > 0) {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

fn status(g: &Global, state: Option<PathBuf>, prom: bool) -> Result<ExitCode> {
    // The daemon's rules live in its state directory: LIFEBOAT_STATE, when
    // set, is where `lifeboat serve` keeps them.
    let root = state.unwrap_or_else(|| match std::env::var_os("LIFEBOAT_STATE") {
        Some(s) if !s.is_empty() => PathBuf::from(s).join("replication"),
        _ => replicate::default_state_root(),
    });
    let rules = replicate::read_statuses(&root)?;
    if prom {
        print!("{}", replicate::prometheus(&rules));
        return Ok(ExitCode::SUCCESS);
    }
    if g.json {
        print_json(&rules)?;
        return Ok(ExitCode::SUCCESS);
    }
    if rules.is_empty() {
        eprintln!("no replication rules under {}", root.display());
        return Ok(ExitCode::SUCCESS);
    }
    let secs = |v: Option<f64>| v.map_or("-".to_string(), |s| format!("{s:.2}s"));
    for r in &rules {
        println!(
            "{} {} → {}{}\n  {}, backlog {} objects ({}), lag p50 {} p99 {}, copied {} ({}), deleted {}, failures {}{}",
            r.rule,
            r.from,
            r.to,
            if r.prefix.is_empty() {
                String::new()
            } else {
                format!(" (prefix {:?})", r.prefix)
            },
            if r.running {
                r.phase.as_str()
            } else {
                "not running"
            },
            r.backlog_objects,
            bytes(r.backlog_bytes),
            secs(r.lag_p50_s),
            secs(r.lag_p99_s),
            r.copied_objects,
            bytes(r.copied_bytes),
            r.deleted_objects,
            r.failures,
            r.last_error
                .as_ref()
                .map(|e| format!("\n  last error: {e}"))
                .unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `replicate fence BUCKET [--lift]`.
fn fence(g: &Global, bucket: &str, lift: bool) -> Result<ExitCode> {
    use replicate::fence;
    let b = lifeboat_bucket::Bucket::open_address(bucket, false)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let found = rt.block_on(fence::read(&b))?;
    if lift {
        rt.block_on(fence::lift(&b))?;
    }
    if g.json {
        print_json(
            &serde_json::json!({"bucket": b.address(), "fence": found, "lifted": lift && found.is_some()}),
        )?;
    } else {
        match (&found, lift) {
            (None, _) => println!("{} is not fenced", b.address()),
            (Some(f), false) => println!("{} is fenced: {f}", b.address()),
            (Some(f), true) => println!("lifted the fence of {} ({f})", b.address()),
        }
    }
    Ok(ExitCode::SUCCESS)
}
