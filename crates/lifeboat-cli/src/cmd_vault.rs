//! `lifeboat vault init|check|repair-index|unlock`.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Result;
use clap::Subcommand;
use lifeboat_vault::vault::InitOptions;
use lifeboat_vault::{Vault, check, lock, repair};

use crate::common::{Global, Progress, print_json};

/// Below this length `vault init` warns about the password.
const MIN_PASSWORD_CHARS: usize = 12;

#[derive(Subcommand, Debug)]
pub enum VaultCmd {
    /// Create a new vault protected by a password.
    Init {
        /// zstd level for new data (0 stores uncompressed; 1-19). The default, 2,
        /// stores within 3 % of level 3 for a fifth less CPU (bench/RESULTS.md).
        #[arg(long, default_value_t = lifeboat_vault::InitOptions::DEFAULT_COMPRESSION, value_parser = clap::value_parser!(i32).range(0..=19))]
        compression: i32,
        /// Cut data as the vault at URL does (its chunker sizes and secret
        /// seed), so that copies from it and this vault's own backups
        /// deduplicate against each other. Its password: LIFEBOAT_FROM_PASSWORD
        /// or --from-password-file.
        #[arg(long, value_name = "URL")]
        copy_chunker_params_from: Option<String>,
        /// Password file of the vault named by --copy-chunker-params-from.
        #[arg(long, env = "LIFEBOAT_FROM_PASSWORD_FILE")]
        from_password_file: Option<std::path::PathBuf>,
    },
    /// Prove the vault's structure; with --read-data, every byte. Exit 0 only when sound.
    Check {
        /// Read and verify every pack, not just the structure.
        #[arg(long)]
        read_data: bool,
        #[command(flatten)]
        lock: crate::common::NoLock,
    },
    /// Rebuild the index from the packs present: index packs no index file lists
    /// (a missing index file), replace damaged index files, drop entries of
    /// packs that are gone. Runs beside backups; not beside a prune.
    RepairIndex,
    /// Set the vault lock configuration: a minimum and maximum retention and a
    /// lock mode every new point gets; immutable after its cooling-off period.
    Configure(crate::cmd_retention::ConfigureArgs),
    /// Points by kind, sizes, dedup and compression ratios, packs, index,
    /// locked points and the earliest unlock date.
    Stats(crate::common::NoLock),
    /// Replace this vault's damaged or missing packs' blobs from another
    /// vault holding copies of the same points (its password:
    /// LIFEBOAT_FROM_PASSWORD or --from-password-file). Reads every pack.
    Heal {
        /// The other vault.
        #[arg(long, value_name = "URL")]
        from: String,
        /// Password file of the other vault.
        #[arg(long, env = "LIFEBOAT_FROM_PASSWORD_FILE")]
        from_password_file: Option<std::path::PathBuf>,
    },
    /// Remove stale locks (left by processes that died).
    Unlock {
        /// Remove every lock, even live ones (only when you know no lifeboat process uses the vault).
        #[arg(long)]
        all: bool,
    },
}

/// Runs one `vault` subcommand.
pub fn run(g: &Global, cmd: VaultCmd) -> Result<ExitCode> {
    match cmd {
        VaultCmd::Configure(a) => crate::cmd_retention::configure(g, a),
        VaultCmd::Stats(lock) => crate::cmd_retention::stats(g, lock),
        VaultCmd::Init {
            compression,
            copy_chunker_params_from,
            from_password_file,
        } => init(g, compression, copy_chunker_params_from, from_password_file),
        VaultCmd::Heal {
            from,
            from_password_file,
        } => heal(g, &from, from_password_file),
        VaultCmd::Check { read_data, lock } => check_vault(g, read_data, lock),
        VaultCmd::RepairIndex => repair_index(g),
        VaultCmd::Unlock { all } => unlock(g, all),
    }
}

/// The chunker parameters and seed of the vault at `url` (opened with its
/// own password), for a vault that copies from it without re-chunking.
fn paired_chunker(
    copy_chunker_params_from: Option<&str>,
    from_password_file: Option<&std::path::PathBuf>,
) -> Result<Option<(lifeboat_vault::vault::ChunkerParams, u64)>> {
    Ok(match copy_chunker_params_from {
        Some(url) => {
            let from = lifeboat_vault::Location::parse(url)
                .map_err(|e| crate::common::usage(format!("--copy-chunker-params-from: {e}")))?;
            let pw = crate::common::read_password(
                "LIFEBOAT_FROM_PASSWORD",
                from_password_file,
                "password of the vault to copy chunker parameters from",
                false,
            )?;
            let other = Vault::open(&from, &pw).map_err(|e| {
                anyhow::anyhow!("cannot open the vault to copy chunker parameters from: {e}")
            })?;
            Some((other.config().chunker, other.chunker_seed()?))
        }
        None => None,
    })
}

/// `vault init`: a new vault at the location, with the password given.
fn init(
    g: &Global,
    compression: i32,
    copy_chunker_params_from: Option<String>,
    from_password_file: Option<std::path::PathBuf>,
) -> Result<ExitCode> {
    let loc = g.location()?;
    let paired = paired_chunker(
        copy_chunker_params_from.as_deref(),
        from_password_file.as_ref(),
    )?;
    let pw = g.password(true)?;
    let chars = String::from_utf8_lossy(&pw).chars().count();
    if chars < MIN_PASSWORD_CHARS {
        eprintln!(
            "warning: the password has only {chars} character(s): whoever gets a copy of the vault's key files can guess a short password offline; use {MIN_PASSWORD_CHARS} or more (add a better one with `lifeboat key add`, then remove this one)"
        );
    }
    let mut opts = InitOptions {
        compression,
        ..InitOptions::default()
    };
    if let Some((chunker, seed)) = paired {
        opts.chunker = chunker;
        opts.chunker_seed = Some(seed);
    }
    let v = Vault::init(&loc, &pw, &opts)?;
    if g.json {
        print_json(&serde_json::json!({"location": loc.to_string(), "id": v.config().id}))?;
    } else if !g.quiet {
        println!("created vault {} at {loc}", &v.config().id[..8]);
        println!("keep the password safe: without it nothing in the vault can be restored");
    }
    Ok(ExitCode::SUCCESS)
}

/// `vault heal`: damaged packs' blobs taken again from another vault.
fn heal(
    g: &Global,
    from: &str,
    from_password_file: Option<std::path::PathBuf>,
) -> Result<ExitCode> {
    let v = g.open()?;
    let loc = lifeboat_vault::Location::parse(from)
        .map_err(|e| crate::common::usage(format!("--from: {e}")))?;
    let pw = crate::common::read_password(
        "LIFEBOAT_FROM_PASSWORD",
        from_password_file.as_ref(),
        "password of the vault to heal from",
        false,
    )?;
    let other = Vault::open(&loc, &pw)
        .map_err(|e| anyhow::anyhow!("cannot open the vault to heal from: {e}"))?;
    let bar = Progress::start(g.progress(), || "reading every pack and healing".into());
    let rep = lifeboat_vault::heal::heal(&v, &other)?;
    drop(bar);
    if g.json {
        print_json(&rep)?;
    } else if !g.quiet {
        println!(
            "{} bad pack(s), {} blob(s) lost: {} healed from the other vault, {} intact ones stored again, {} bad pack(s) removed",
            rep.packs_bad, rep.blobs_lost, rep.blobs_healed, rep.blobs_salvaged, rep.packs_removed
        );
    }
    for b in &rep.blobs_unhealed {
        eprintln!("warning: blob {b} is in no point of the other vault; it stays lost");
    }
    Ok(crate::common::finished(&rep.blobs_unhealed))
}

/// `vault check`: the vault's structure (and its packs' data with `--read-data`).
fn check_vault(g: &Global, read_data: bool, lock: crate::common::NoLock) -> Result<ExitCode> {
    let v = g.open()?;
    let _reader = lock.reader_lock(&v, "check")?;
    let done = Arc::new(AtomicU64::new(0));
    let d = done.clone();
    let bar = Progress::start(g.progress() && read_data, move || {
        format!("{} packs read", d.load(Ordering::Relaxed))
    });
    // The protectors' own checks: an incremental database point's chain.
    let kinds = lifeboat_mysql::check_rules();
    let rep = check::check_with(
        &v,
        read_data,
        &|n| {
            done.fetch_add(n, Ordering::Relaxed);
        },
        &kinds,
    )?;
    drop(bar);
    if g.json {
        print_json(&rep)?;
    } else {
        for w in &rep.warnings {
            eprintln!("warning: {}: {}", w.object, w.message);
        }
        for e in &rep.errors {
            println!("damaged: {}: {}", e.object, e.message);
        }
        if !g.quiet {
            println!(
                "checked {} points, {} packs, {} blobs{}: {}",
                rep.points,
                rep.packs,
                rep.blobs,
                if read_data {
                    format!(", read {} packs", rep.packs_read)
                } else {
                    String::new()
                },
                if rep.is_ok() {
                    "no errors".to_string()
                } else {
                    format!("{} errors", rep.errors.len())
                }
            );
        }
    }
    Ok(if rep.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `vault repair-index`: a new index from the packs present.
fn repair_index(g: &Global) -> Result<ExitCode> {
    let v = g.open()?;
    let rep = repair::repair_index(&v)?;
    if g.json {
        print_json(&rep)?;
    } else {
        for p in &rep.packs_unreadable {
            eprintln!("warning: pack stays unindexed, its header is unreadable: {p}");
        }
        if !g.quiet {
            println!(
                "new index {}: {} packs, {} blobs ({} packs read from their headers, {} damaged index files replaced, {} entries of missing packs dropped, {} index files removed)",
                &rep.new_index[..8],
                rep.packs - rep.packs_unreadable.len(),
                rep.blobs,
                rep.packs_from_headers,
                rep.index_files_damaged,
                rep.packs_missing,
                rep.index_files_removed
            );
        }
    }
    Ok(if rep.packs_unreadable.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

/// `vault unlock`: stale locks removed (every lock with `--all`).
fn unlock(g: &Global, all: bool) -> Result<ExitCode> {
    let v = g.open()?;
    let n = if all {
        let mut n = 0;
        for l in v.storage().list("locks/")? {
            v.storage().remove(&l.path)?;
            n += 1;
        }
        n
    } else {
        lock::remove_stale(v.storage())?
    };
    if g.json {
        print_json(&serde_json::json!({"removed": n}))?;
    } else if !g.quiet {
        println!("removed {n} lock(s)");
    }
    Ok(ExitCode::SUCCESS)
}
