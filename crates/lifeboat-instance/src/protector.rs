//! The instance protector as the layers above it see it (`lifeboat-protector`).

use std::collections::BTreeMap;

use lifeboat_protector::{
    Backed, BackupError, BackupJob, Browse, BrowseError, Description, Key, Listing, Problem,
    Protector, Query, ResourceSettings, RestoreError, RestoreForm, RestoreJob, Restored, Schema,
    Shape, Table, Target, TargetKind, read_settings, watched,
};
use lifeboat_vault::{Id, RecoveryPoint, Vault};

/// App hosts: paths, volumes and a launch spec.
pub struct InstanceProtector;

/// The instance protector, for the registry.
pub static PROTECTOR: InstanceProtector = InstanceProtector;

/// An instance resource's settings: its spec.
#[derive(serde::Deserialize)]
struct Settings {
    spec: crate::InstanceSpec,
}

impl Protector for InstanceProtector {
    fn describe(&self) -> Description {
        Description {
            kind: crate::KIND,
            point_kinds: &[crate::KIND],
            title: "App hosts (paths, volumes, launch spec)",
            browse: Some(Browse::Tree),
            levels: &[],
            restore: RestoreForm::CommandOnly,
            command: "lifeboat restore instance",
            restores_into: TargetKind::Directory,
        }
    }

    /// A point of the host; a crash-consistent one is complete (as
    /// `backup instance` exits 0 for it): its warning is a note of the job.
    fn back_up(&self, job: &BackupJob) -> Result<Backed, BackupError> {
        let s: Settings = BackupError::settings(job)?;
        let counters = lifeboat_files::Counters::default();
        let read = || lifeboat_files::protector::files_read(&counters);
        let (vault, tags) = (job.vault, &job.tags);
        let res = watched(job.watch, &read, || {
            crate::backup(vault, &s.spec, tags, &counters)
        })
        .map_err(|e| BackupError::Failed(e.to_string()))?;
        let (notes, warnings): (Vec<String>, Vec<String>) = res
            .warnings
            .into_iter()
            .partition(|w| w.contains("crash-consistent"));
        Ok(Backed {
            id: res.id,
            point: res.point,
            warnings,
            notes: res.notes.into_iter().chain(notes).collect(),
        })
    }

    fn contents(
        &self,
        vault: &Vault,
        id: &Id,
        _point: &RecoveryPoint,
        query: &Query,
    ) -> Result<Listing, BrowseError> {
        lifeboat_files::protector::tree_contents(vault, id, query)
    }

    /// Into a directory: the host's paths and volumes below it, its launch
    /// spec resolved for it with the options' values into `launch.json`
    /// (only when everything arrived).
    fn restore(&self, job: &RestoreJob) -> Result<Restored, RestoreError> {
        let Target::Directory(to) = &job.target else {
            return Err(job.wrong_target(TargetKind::Directory));
        };
        job.no_roll_forward()?;
        let s: RestoreSettings = job.options()?;
        let opts = crate::RestoreOptions {
            to: to.clone(),
            env: s.env,
            overwrite: s.overwrite,
            launch: s.launch,
            part: s.part,
            ..Default::default()
        };
        let counters = lifeboat_files::Counters::default();
        let read = || lifeboat_files::protector::files_written(&counters);
        let (vault, id, point) = (job.vault, job.id, job.point);
        let rep = watched(job.watch, &read, || {
            crate::restore(vault, id, point, &opts, &counters)
        })
        .map_err(restore_error)?;
        let mut restored = lifeboat_files::protector::restored(&rep.files, Some(point.time));
        restored.report = serde_json::to_value(&rep).unwrap_or_default();
        Ok(restored)
    }
}

/// An instance restore's options (the restore job's JSON).
#[derive(serde::Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct RestoreSettings {
    /// Values of the launch spec's `${NAME}` placeholders.
    pub env: BTreeMap<String, String>,
    /// What to do with what is in a non-empty target (`None`: refused).
    pub overwrite: Option<lifeboat_files::Overwrite>,
    /// The launch spec to resolve instead of the point's.
    pub launch: Option<crate::spec::LaunchSpec>,
    /// Which part of the point (`whole`, `files`, `launch`).
    pub part: crate::restore::Part,
}

/// Whether an instance restore wrote its resolved launch spec
/// (`launch.json`): the point had one and everything arrived.
pub fn launch_written(r: &Restored) -> bool {
    !r.report["launch_json"].is_null()
}

/// An instance restore's error through the interface: a launch spec's
/// missing values, a wrong call (a running instance in the target) and a
/// target that is not empty are refusals.
pub fn restore_error(e: crate::InstanceError) -> RestoreError {
    use crate::InstanceError as E;
    match e {
        E::MissingValues(values) => RestoreError::MissingValues {
            message: E::MissingValues(values.clone()).to_string(),
            values,
        },
        E::Usage(_) | E::Spec { .. } => RestoreError::Refused(e.to_string()),
        E::Files(f) => lifeboat_files::protector::restore_error(f),
        e => RestoreError::Failed(e.to_string()),
    }
}

// --- `[resource.NAME]` of kind `instance`: its keys and their checks ---

/// `launch = { command, cwd, env, port, health, health_timeout, databases, buckets }`.
const LAUNCH: Table = Table {
    what: "a launch spec",
    the: "the launch spec",
    keys: &[
        Key::new("command", Shape::Array, "the program and its arguments")
            .required("add `command = [\"/path/to/program\", \"arg\", ...]`")
            .want("a list of strings (the program and its arguments)"),
        Key::new("cwd", Shape::String, "its working directory"),
        Key::new(
            "env",
            Shape::StringMap,
            "environment added to the inherited one",
        ),
        Key::new("port", Shape::NumberOrString, "the port it listens on")
            .want("a port number or a string such as \"${PORT}\""),
        Key::new(
            "health",
            Shape::String,
            "an http:// URL that answers 200 once it is up",
        ),
        Key::new(
            "health_timeout",
            Shape::String,
            "how long a start may take to be healthy",
        ),
        Key::new("databases", Shape::Strings, "database resources it needs"),
        Key::new("buckets", Shape::Strings, "bucket resources it needs"),
    ],
};

/// `hooks = { before, after }`.
const HOOKS: Table = Table {
    what: "consistency hooks",
    the: "the consistency hooks",
    keys: &[
        Key::new(
            "before",
            Shape::Strings,
            "commands run before anything is read",
        ),
        Key::new("after", Shape::Strings, "commands run after reading"),
    ],
};

/// The keys of an instance resource: an instance spec's ([`crate::spec::KEYS`]).
const KEYS: &[Key] = &[
    Key::new("paths", Shape::Strings, "files and directories backed up"),
    Key::new(
        "excludes",
        Shape::Strings,
        "gitignore-style patterns left out of `paths`",
    ),
    Key::new(
        "one_file_system",
        Shape::Bool,
        "stay on each path's file system",
    ),
    Key::new("volumes", Shape::Strings, "disk images and block devices"),
    Key::new(
        "launch",
        Shape::Table(&LAUNCH),
        "how to start the application again",
    ),
    Key::new(
        "hooks",
        Shape::Table(&HOOKS),
        "commands run around the backup",
    ),
];

impl ResourceSettings for InstanceProtector {
    fn settings(&self) -> Schema {
        Schema {
            implied_by: &["volumes", "launch"],
            keys: KEYS,
        }
    }

    /// The spec's own rules ([`crate::InstanceSpec::problems`]).
    fn check_settings(&self, settings: &serde_json::Value) -> Vec<Problem> {
        let spec: crate::InstanceSpec = match read_settings(settings) {
            Ok(s) => s,
            Err(p) => return vec![p],
        };
        spec.problems()
            .into_iter()
            .map(|p| match p.key.as_str() {
                // The spec as a whole: its lists are what it lacks.
                "" => Problem::whole("paths", p.message, p.fix),
                k => Problem::at(k, p.message, p.fix),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The resource's keys are the spec's (its name aside: the resource's).
    #[test]
    fn the_keys_of_an_instance_resource_are_the_specs() {
        let names = |keys: &[Key]| keys.iter().map(|k| k.name).collect::<Vec<_>>();
        let spec: Vec<&str> = crate::spec::KEYS
            .iter()
            .copied()
            .filter(|k| !["kind", "name"].contains(k))
            .collect();
        assert_eq!(names(KEYS), spec);
        assert_eq!(names(LAUNCH.keys), crate::spec::LAUNCH_KEYS);
        assert_eq!(names(HOOKS.keys), crate::spec::HOOK_KEYS);
    }
}
