//! Backing up an instance: hooks, volumes and paths into one point.
//!
//! ```text
//! check the spec, resolve paths and volumes
//! BackupWriter::start (shared lock) → parent = newest instance point of the resource
//! before hooks, in order            a failure: after hooks run, the backup fails
//! volumes (volume.rs), then paths (lifeboat-files::build_tree), into one tree
//! after hooks                       a failure fails the backup (nothing written)
//! point: kind instance, paths = paths + volumes, meta {format, consistency, spec, volumes}
//! ```
//! Consistency: `application` when `before` hooks ran and no volume changed
//! while it was read; otherwise `crash` (what a power cut leaves), with a
//! warning when a volume was seen changing.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Instant;

use lifeboat_files::{BackupOptions, Counters};
use lifeboat_vault::tree::Node;
use lifeboat_vault::{BackupWriter, Id, Index, RecoveryPoint, Summary, Vault};
use serde::{Deserialize, Serialize};

use crate::spec::InstanceSpec;
use crate::volume::{VolumeInfo, save_volume};
use crate::{InstanceError, KIND, Result};

/// How consistent a point is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    /// What a power cut would leave: every file system and database recovers
    /// from it, as after a crash.
    Crash,
    /// Taken while the application was quiesced by its hooks.
    Application,
}

impl std::fmt::Display for Consistency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Consistency::Crash => "crash",
            Consistency::Application => "application",
        })
    }
}

/// The `meta` of an instance point.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceMeta {
    /// Layout version of the kind (1).
    pub format: u32,
    /// `crash` or `application`.
    pub consistency: Consistency,
    /// The spec as backed up (launch spec with its placeholders unresolved).
    pub spec: InstanceSpec,
    /// The backed-up files and directories (absolute).
    #[serde(default)]
    pub paths: Vec<String>,
    /// The volumes.
    #[serde(default)]
    pub volumes: Vec<serde_json::Value>,
    /// Warnings of the backup.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// What a backup did.
#[derive(Debug, Clone)]
pub struct BackupReport {
    /// The new point's id.
    pub id: Id,
    /// The point.
    pub point: RecoveryPoint,
    /// Consistency of the point.
    pub consistency: Consistency,
    /// Per volume.
    pub volumes: Vec<VolumeInfo>,
    /// What could not be backed up, or makes the point weaker than asked.
    pub warnings: Vec<String>,
    /// Entries left out by design.
    pub notes: Vec<String>,
}

/// Runs hooks in order; stops at the first failure.
fn run_hooks(which: &'static str, cmds: &[String]) -> Result<()> {
    for cmd in cmds {
        tracing::info!("{which} hook: {cmd}");
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| InstanceError::Hook {
                which,
                cmd: cmd.clone(),
                why: format!("cannot start sh: {e}"),
                output: String::new(),
            })?;
        let mut out = String::new();
        let mut err = String::new();
        if let Some(mut o) = child.stdout.take() {
            let _ = o.read_to_string(&mut out);
        }
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let status = child.wait().map_err(|e| InstanceError::Hook {
            which,
            cmd: cmd.clone(),
            why: e.to_string(),
            output: String::new(),
        })?;
        if !status.success() {
            let all = format!("{}{}", out.trim(), err.trim());
            let tail: String = all
                .chars()
                .rev()
                .take(400)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            return Err(InstanceError::Hook {
                which,
                cmd: cmd.clone(),
                why: status.to_string(),
                output: tail,
            });
        }
    }
    Ok(())
}

/// The node at absolute `path` below `root`, if any.
pub(crate) fn find_node(vault: &Vault, index: &Index, root: &Id, path: &Path) -> Option<Node> {
    let comps: Vec<_> = path
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(n) => Some(n.as_encoded_bytes().to_vec()),
            _ => None,
        })
        .collect();
    let mut cur = *root;
    for (i, c) in comps.iter().enumerate() {
        let t = vault.read_tree(index, &cur).ok()?;
        let n = t.nodes.into_iter().find(|n| &n.name_bytes() == c)?;
        if i + 1 == comps.len() {
            return Some(n);
        }
        cur = n.subtree?;
    }
    None
}

/// The spec's volumes as absolute paths; a volume listed twice is refused.
fn absolute_volumes(spec: &InstanceSpec) -> Result<Vec<PathBuf>> {
    let mut volumes: Vec<PathBuf> = Vec::new();
    for v in &spec.volumes {
        let abs = std::path::absolute(v).map_err(|e| InstanceError::io("resolve", v, e))?;
        if volumes.contains(&abs) {
            return Err(InstanceError::Usage(format!(
                "volume {} is listed twice",
                abs.display()
            )));
        }
        volumes.push(abs);
    }
    Ok(volumes)
}

/// Runs `take` between the spec's `before` and `after` hooks (the `after`
/// hooks run also when a `before` hook fails); a failing `after` hook fails
/// the backup, saying the application may still be quiesced.
fn between_hooks(spec: &InstanceSpec, take: impl FnOnce() -> Result<Taken>) -> Result<Taken> {
    run_hooks("before", &spec.hooks.before).inspect_err(|_| {
        if let Err(e) = run_hooks("after", &spec.hooks.after) {
            tracing::warn!("{e}");
        }
    })?;
    let taken = take();
    let after = run_hooks("after", &spec.hooks.after);
    let taken = taken?;
    if let Err(e) = after {
        return Err(match e {
            InstanceError::Hook {
                which,
                cmd,
                why,
                output,
            } => InstanceError::Hook {
                which,
                cmd,
                why: format!(
                    "{why}; the application may still be quiesced (resume it by hand); no point was written"
                ),
                output,
            },
            e => e,
        });
    }
    Ok(taken)
}

/// How consistent the point is: application-consistent when hooks ran and
/// no volume changed while it was read, else crash-consistent, with a
/// warning for each volume that changed.
fn consistency(
    spec: &InstanceSpec,
    infos: &[VolumeInfo],
    warnings: &mut Vec<String>,
) -> Consistency {
    let changed: Vec<&VolumeInfo> = infos.iter().filter(|i| i.changed_while_read).collect();
    let consistency = if spec.has_hooks() && changed.is_empty() {
        Consistency::Application
    } else {
        Consistency::Crash
    };
    for c in &changed {
        warnings.push(format!(
            "volume {} changed while it was read{}; the point is crash-consistent (its blocks are from different moments; a [hooks] `before` command that quiesces the application, or fsfreeze, makes it application-consistent)",
            c.path,
            if spec.has_hooks() {
                " although the before hooks ran"
            } else {
                ""
            }
        ));
    }
    consistency
}

/// Backs up the instance `spec` into `vault` (the point tagged with `tags`). `counters.bytes_read` grows as
/// files and volumes are read (for progress).
pub fn backup(
    vault: &Vault,
    spec: &InstanceSpec,
    tags: &[String],
    counters: &Counters,
) -> Result<BackupReport> {
    let started = Instant::now();
    let time = chrono::Utc::now();
    spec.validate().map_err(|msg| InstanceError::Spec {
        from: "(given)".into(),
        msg,
    })?;
    let resource = spec.resource();
    let paths = if spec.paths.is_empty() {
        Vec::new()
    } else {
        lifeboat_files::resolve_paths(&spec.paths)?
    };
    let volumes = absolute_volumes(spec)?;
    let writer = BackupWriter::start(vault, "backup")?;
    let parent = {
        let (points, _) = vault.list_points()?;
        points
            .into_iter()
            .rev()
            .find(|(_, p)| p.resource == resource && p.kind == KIND)
    };
    let (root, infos, mut warnings, notes) = between_hooks(spec, || {
        take(&writer, spec, &paths, &volumes, parent.as_ref(), counters)
    })?;
    let consistency = consistency(spec, &infos, &mut warnings);
    let stats = writer.stats();
    let mut point = RecoveryPoint::new(&resource, KIND, root);
    point.time = time;
    point.tags = tags.to_vec();
    point.paths = paths
        .iter()
        .chain(&volumes)
        .map(|p| p.display().to_string())
        .collect();
    point.parent = parent.as_ref().map(|(id, _)| *id);
    point.summary = Summary {
        files: counters.files.load(Ordering::Relaxed) + infos.len() as u64,
        dirs: counters.dirs.load(Ordering::Relaxed),
        size: counters.size.load(Ordering::Relaxed) + infos.iter().map(|i| i.size).sum::<u64>(),
        bytes_read: counters.bytes_read.load(Ordering::Relaxed),
        bytes_new: stats.bytes_new.load(Ordering::Relaxed),
        bytes_stored: stats.bytes_stored.load(Ordering::Relaxed),
        blobs_new: stats.blobs_new.load(Ordering::Relaxed),
        duration_s: 0.0,
    };
    let meta = InstanceMeta {
        format: 1,
        consistency,
        spec: spec.clone(),
        paths: paths.iter().map(|p| p.display().to_string()).collect(),
        volumes: infos
            .iter()
            .map(|i| {
                serde_json::json!({"path": i.path, "format": i.format, "size": i.size,
                "data_bytes": i.data_bytes, "block_size": i.block_size})
            })
            .collect(),
        warnings: warnings.clone(),
    };
    point.meta = serde_json::to_value(&meta).expect("meta serializes");
    point.summary.duration_s = started.elapsed().as_secs_f64();
    let id = writer.commit(&point)?;
    Ok(BackupReport {
        id,
        point,
        consistency,
        volumes: infos,
        warnings,
        notes,
    })
}

type Taken = (Id, Vec<VolumeInfo>, Vec<String>, Vec<String>);

/// Reads volumes and paths (between the hooks).
fn take(
    writer: &BackupWriter,
    spec: &InstanceSpec,
    paths: &[PathBuf],
    volumes: &[PathBuf],
    parent: Option<&(Id, RecoveryPoint)>,
    counters: &Counters,
) -> Result<Taken> {
    let vault = writer.vault();
    let parent_root = parent.map(|(_, p)| p.tree);
    let mut extra = Vec::new();
    let mut infos = Vec::new();
    for v in volumes {
        let prev = parent_root.and_then(|r| find_node(vault, writer.index(), &r, v));
        let (node, info) = save_volume(writer, v, prev.as_ref(), &counters.bytes_read)?;
        extra.push((v.clone(), node));
        infos.push(info);
    }
    let opts = BackupOptions {
        excludes: spec.excludes.clone(),
        one_file_system: spec.one_file_system,
        ..BackupOptions::default()
    };
    let built = lifeboat_files::build_tree(writer, &opts, paths, parent_root, extra, counters)?;
    Ok((built.root, infos, built.warnings, built.notes))
}
