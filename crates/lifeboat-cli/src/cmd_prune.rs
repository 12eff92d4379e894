//! `lifeboat prune`: delete data no recovery point needs.

use std::process::ExitCode;

use anyhow::Result;
use lifeboat_vault::prune::{PruneOptions, prune};

use crate::common::{Global, bytes, print_json};

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
    let rep = prune(
        &v,
        &PruneOptions {
            dry_run: a.dry_run,
            repack_unused: a.repack_unused.clamp(0.0, 1.0),
        },
    )?;
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
    Ok(ExitCode::SUCCESS)
}
