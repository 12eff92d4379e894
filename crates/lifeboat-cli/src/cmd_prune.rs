//! `lifeboat prune`: delete data no recovery point needs.

use std::process::ExitCode;

use anyhow::Result;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lifeboat_vault::prune::{PruneOptions, PruneProgress, prune_with_progress};

use crate::common::{Global, Progress, bytes, fraction_line, print_json};

#[derive(clap::Args, Debug)]
pub struct PruneArgs {
    /// Show what would be deleted; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Repack a pack when more than this fraction of it is unused (0-1).
    #[arg(long, default_value_t = 0.3)]
    repack_unused: f64,
}

pub fn run(g: &Global, a: PruneArgs) -> Result<ExitCode> {
    let v = g.open()?;
    let _span = tracing::info_span!("job", kind = "prune").entered();
    let progress = Arc::new(PruneProgress::default());
    let p = progress.clone();
    // Each step's time left is estimated from that step's own rate.
    let begun = std::sync::Mutex::new(("", Instant::now()));
    let bar = Progress::start(g.progress(), move || {
        let (step, done, total) = p.get();
        let mut b = begun.lock().expect("lock");
        if b.0 != step {
            *b = (step, Instant::now());
        }
        progress_line(step, done, total, b.1.elapsed())
    });
    let rep = prune_with_progress(
        &v,
        &PruneOptions {
            dry_run: a.dry_run,
            repack_unused: a.repack_unused.clamp(0.0, 1.0),
        },
        &progress,
    );
    drop(bar);
    let rep = rep?;
    if g.json {
        print_json(&rep)?;
    } else if !g.quiet {
        println!(
            "{}{} points, {} packs: marked {}, repacked {}, unmarked {}, deferred {} (backups running), deleted {} packs + {} leftover packs, freed {}",
            if rep.dry_run { "dry run: " } else { "" },
            rep.points,
            rep.packs,
            rep.marked,
            rep.repacked,
            rep.unmarked,
            rep.deferred,
            rep.deleted_packs,
            rep.deleted_garbage,
            bytes(rep.bytes_freed)
        );
    }
    if !rep.not_deleted.is_empty() {
        for n in &rep.not_deleted {
            eprintln!("warning: kept, the storage refused to delete it: {n}");
        }
        eprintln!(
            "error: {} object(s) could not be deleted yet (locked or protected); the vault is sound, and a later prune deletes them once the storage allows",
            rep.not_deleted.len()
        );
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

/// The progress line of a prune: its step and, where the step's size is
/// known, how much is done, the percentage and the time left.
fn progress_line(step: &str, done: u64, total: u64, elapsed: Duration) -> String {
    match (step, total) {
        (_, 0) => format!("{step}…"),
        ("repacking", _) => format!("{step}: {}", fraction_line(done, total, elapsed, bytes)),
        _ => format!(
            "{step}: {}",
            fraction_line(done, total, elapsed, |n| n.to_string())
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_progress_shows_the_step_total_percentage_and_eta() {
        let s = Duration::from_secs;
        assert_eq!(
            progress_line("reading the index and the points", 0, 0, s(3)),
            "reading the index and the points…"
        );
        assert_eq!(
            progress_line("deleting packs", 25, 100, s(10)),
            "deleting packs: 25 of 100 (25%), ETA 30 seconds"
        );
        let l = progress_line("repacking", 32 << 20, 64 << 20, s(4));
        assert!(
            l.starts_with("repacking: 32.00 MiB of 64.00 MiB (50%), ETA"),
            "{l}"
        );
    }
}
