//! Restoring an instance point into a directory.
//!
//! ```text
//! point of kind instance → its meta (format 1) → launch spec resolved for DIR
//!     (before anything is written: a missing --env value costs nothing)
//! --volume-to devices checked and opened (device.rs), before anything is written
//! a target with a running instance of a restore in it: refused
//! lifeboat-files restore of the point's tree into DIR (handles, O_NOFOLLOW,
//!     temporary names; volumes come back as sparse raw files: holes kept;
//!     the volumes going to devices left out; its overwrite policy, dry run
//!     and --delete as `restore files` has them)
//! volumes onto their devices
//! qcow2 volumes converted back (qemu-img convert -O qcow2)
//! DIR/launch.json (0600)
//! ```
//! A dry run resolves the launch spec, checks the devices and plans the
//! files restore; it writes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lifeboat_files::{Counters, Overwrite};
use lifeboat_vault::{Id, RecoveryPoint, Vault};
use serde::Serialize;

use crate::backup::{Consistency, InstanceMeta};
use crate::device::{self, Device, DeviceReport};
use crate::launch::{self, ResolvedLaunch};
use crate::{InstanceError, KIND, Result};

/// Where and how to restore.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Target directory: `/opt/app` becomes `DIR/opt/app`.
    pub to: PathBuf,
    /// Values of the launch spec's `${NAME}` placeholders.
    pub env: BTreeMap<String, String>,
    /// What to do with what is in a non-empty target (refused when `None`).
    pub overwrite: Option<Overwrite>,
    /// Volumes (their path as backed up, or their file name) written onto
    /// these block devices instead of into the target.
    pub devices: Vec<(String, PathBuf)>,
    /// Write zeros over the holes and zero blocks of volumes on devices.
    pub zero_holes: bool,
    /// Decide and report; write nothing.
    pub dry_run: bool,
    /// Remove what the point does not have at or below its backed-up paths.
    pub delete: bool,
    /// The launch spec to resolve instead of the point's (the one the
    /// control plane's file declares now); `None`: the point's.
    pub launch: Option<crate::spec::LaunchSpec>,
    /// Which part of the point: all of it, its files and volumes only (the
    /// launch spec later, when its values are known), or only its launch
    /// spec, resolved into a target its files were restored into before.
    pub part: Part,
}

/// Which part of an instance point a restore writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Part {
    /// Files, volumes and the launch spec resolved for the target.
    #[default]
    Whole,
    /// Files and volumes; no launch spec (no value is needed yet).
    Files,
    /// The launch spec only, into a target holding the point's files.
    Launch,
}

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    /// The files restore (files and volumes).
    pub files: lifeboat_files::RestoreReport,
    /// Consistency of the point.
    pub consistency: Consistency,
    /// The resolved launch spec, when the point has one.
    pub launch: Option<ResolvedLaunch>,
    /// Where it was written.
    pub launch_json: Option<PathBuf>,
    /// Volumes written onto block devices.
    pub devices: Vec<DeviceReport>,
    /// Nothing was written.
    pub dry_run: bool,
}

/// Reads the `meta` of an instance point.
pub fn meta_of(point: &RecoveryPoint) -> Result<InstanceMeta> {
    if point.kind != KIND {
        return Err(InstanceError::Usage(format!(
            "the point is of kind {:?}, not {KIND:?}",
            point.kind
        )));
    }
    let m: InstanceMeta = serde_json::from_value(point.meta.clone()).map_err(|e| {
        InstanceError::Usage(format!(
            "the point's instance description is unreadable: {e}"
        ))
    })?;
    if m.format != 1 {
        return Err(InstanceError::Usage(format!(
            "the point's instance layout is version {}; this lifeboat reads version 1 (upgrade lifeboat)",
            m.format
        )));
    }
    Ok(m)
}

/// The volume of the point that `name` names: its path as backed up, or
/// its file name when only one volume has it.
fn volume_named<'a>(meta: &'a InstanceMeta, name: &str) -> Result<&'a serde_json::Value> {
    let paths: Vec<&str> = meta
        .volumes
        .iter()
        .filter_map(|v| v["path"].as_str())
        .collect();
    let by_name: Vec<&serde_json::Value> = meta
        .volumes
        .iter()
        .filter(|v| {
            v["path"].as_str().is_some_and(|p| {
                p == name || std::path::Path::new(p).file_name() == Some(name.as_ref())
            })
        })
        .collect();
    match by_name.as_slice() {
        [v] => Ok(v),
        [] => Err(InstanceError::Usage(format!(
            "--volume-to {name}=…: the point has no such volume; its volumes are {}",
            if paths.is_empty() {
                "none".to_string()
            } else {
                paths.join(", ")
            }
        ))),
        _ => Err(InstanceError::Usage(format!(
            "--volume-to {name}=…: several volumes are named {name}; give the full path ({})",
            paths.join(", ")
        ))),
    }
}

/// A non-empty target without an overwrite policy: refused, naming what is there.
fn not_empty(to: &std::path::Path) -> InstanceError {
    let mut names: Vec<String> = std::fs::read_dir(to)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let n = names.len();
    names.truncate(5);
    let more = if n > 5 {
        format!(" and {} more", n - 5)
    } else {
        String::new()
    };
    InstanceError::Usage(format!(
        "{} is not empty (it holds {}{more}): choose what happens to what is there with --overwrite if-changed (replace what differs), --overwrite always or --overwrite never (add only what is missing); --dry-run shows what would be written",
        to.display(),
        names.join(", ")
    ))
}

/// Which volume of the point goes onto which device (`--volume-to`), named
/// before anything is checked; a volume given twice is refused.
fn moved_volumes(meta: &InstanceMeta, opts: &RestoreOptions) -> Result<Vec<(PathBuf, PathBuf)>> {
    let mut moved: Vec<(PathBuf, PathBuf)> = Vec::new();
    for (name, dev) in &opts.devices {
        let path = PathBuf::from(
            volume_named(meta, name)?["path"]
                .as_str()
                .unwrap_or_default(),
        );
        if moved.iter().any(|(p, _)| *p == path) {
            return Err(InstanceError::Usage(format!(
                "--volume-to: volume {} is given twice",
                path.display()
            )));
        }
        moved.push((path, dev.clone()));
    }
    Ok(moved)
}

/// The devices volumes go onto, each checked and opened (with the volume's
/// path in the point) before anything is written.
fn open_devices(meta: &InstanceMeta, opts: &RestoreOptions) -> Result<Vec<(String, Device)>> {
    let mut devices = Vec::new();
    for (name, dev) in &opts.devices {
        let v = volume_named(meta, name)?;
        let path = v["path"].as_str().unwrap_or_default().to_string();
        let size = v["size"].as_u64().unwrap_or(0);
        devices.push((path, device::open(dev, size, opts.dry_run)?));
    }
    Ok(devices)
}

/// Writes each volume of the point given a device onto it; what is damaged
/// is added to `files.damaged`.
fn write_devices(
    vault: &Vault,
    point: &RecoveryPoint,
    devices: &[(String, Device)],
    opts: &RestoreOptions,
    counters: &Counters,
    files: &mut lifeboat_files::RestoreReport,
) -> Result<Vec<DeviceReport>> {
    let mut reports = Vec::new();
    let index = vault.load_index()?;
    for (path, dev) in devices {
        let node = crate::backup::find_node(vault, &index, &point.tree, path.as_ref()).ok_or_else(
            || {
                InstanceError::Usage(format!(
                    "volume {path} is not in the point's tree (run `lifeboat vault check`)"
                ))
            },
        )?;
        let r = device::write(
            vault,
            &index,
            path,
            &node,
            dev,
            opts.zero_holes,
            &counters.bytes_written,
        )?;
        files.damaged.extend(r.damaged.iter().cloned());
        reports.push(r);
    }
    Ok(reports)
}

/// Restores point `id`'s paths and volume images into `to` (the volumes
/// written onto devices left out).
fn restore_files(
    vault: &Vault,
    id: &Id,
    to: &Path,
    devices: &[(String, Device)],
    opts: &RestoreOptions,
    counters: &Counters,
) -> Result<lifeboat_files::RestoreReport> {
    lifeboat_files::restore(
        vault,
        id,
        &lifeboat_files::RestoreOptions {
            to: to.to_path_buf(),
            overwrite: opts.overwrite,
            dry_run: opts.dry_run,
            delete: opts.delete,
            skip: devices.iter().map(|(p, _)| PathBuf::from(p)).collect(),
            ..Default::default()
        },
        counters,
    )
    .map_err(|e| match e {
        lifeboat_files::FilesError::TargetNotEmpty(p) => not_empty(&p),
        e => e.into(),
    })
}

/// Restores instance point `id` according to `opts`.
pub fn restore(
    vault: &Vault,
    id: &Id,
    point: &RecoveryPoint,
    opts: &RestoreOptions,
    counters: &Counters,
) -> Result<RestoreReport> {
    let meta = meta_of(point)?;
    let to =
        std::path::absolute(&opts.to).map_err(|e| InstanceError::io("resolve", &opts.to, e))?;
    let roots: Vec<PathBuf> = point.paths.iter().map(PathBuf::from).collect();
    let moved = moved_volumes(&meta, opts)?;
    let spec = opts.launch.as_ref().or(meta.spec.launch.as_ref());
    let launch = match spec.filter(|_| opts.part != Part::Files) {
        Some(l) => Some(launch::resolve(
            l,
            &roots,
            &moved,
            &to,
            &opts.env,
            &id.to_hex(),
            &point.resource,
        )?),
        None => None,
    };
    if opts.part == Part::Launch {
        return launch_only(&to, launch, meta.consistency);
    }
    let devices = open_devices(&meta, opts)?;
    if let Some(pid) = crate::supervise::running(&to) {
        return Err(InstanceError::Usage(format!(
            "the instance restored in {} runs (pid {pid}): stop it first with `lifeboat instance stop {}`",
            to.display(),
            to.display()
        )));
    }
    let mut files = restore_files(vault, id, &to, &devices, opts, counters)?;
    let mut reports = Vec::new();
    if !devices.is_empty() && files.errors.is_empty() {
        reports = write_devices(vault, point, &devices, opts, counters, &mut files)?;
    }
    let intact = files.errors.is_empty() && files.damaged.is_empty();
    if intact && !opts.dry_run {
        for v in &meta.volumes {
            if v["format"] == "qcow2"
                && let Some(p) = v["path"].as_str()
                && !devices.iter().any(|(d, _)| d == p)
            {
                crate::qcow2::restore_as_qcow2(&to.join(p.trim_start_matches('/')))?;
            }
        }
    }
    let launch_json = match &launch {
        Some(l) if intact && !opts.dry_run => Some(launch::write(&to, l)?),
        _ => None,
    };
    Ok(RestoreReport {
        files,
        consistency: meta.consistency,
        launch,
        launch_json,
        devices: reports,
        dry_run: opts.dry_run,
    })
}

/// The launch spec alone, resolved, into `to` (which holds the point's
/// files, restored before with [`Part::Files`]).
fn launch_only(
    to: &Path,
    launch: Option<ResolvedLaunch>,
    consistency: Consistency,
) -> Result<RestoreReport> {
    if !to.is_dir() {
        return Err(InstanceError::Usage(format!(
            "{}: the launch spec goes into a target holding the point's files; restore them there first",
            to.display()
        )));
    }
    let launch_json = match &launch {
        Some(l) => Some(launch::write(to, l)?),
        None => None,
    };
    Ok(RestoreReport {
        files: lifeboat_files::RestoreReport::default(),
        consistency,
        launch,
        launch_json,
        devices: Vec::new(),
        dry_run: false,
    })
}
