//! The instance spec: what `lifeboat backup instance --spec FILE` reads, and
//! the table the control plane's `[resource.NAME]` of kind `instance` holds.
//!
//! ```toml
//! name = "shop-host"
//! paths = ["/opt/unishop"]
//! volumes = ["/var/lib/images/shop.img"]
//! [launch]
//! command = ["/opt/unishop/unishop", "serve"]
//! cwd = "/opt/unishop"
//! env = { UNISHOP_DATABASE_URL = "${DATABASE_URL}", UNISHOP_LISTEN = "127.0.0.1:${PORT}" }
//! health = "http://127.0.0.1:${PORT}/health"
//! health_timeout = "30s"
//! [hooks]
//! before = ["/opt/unishop/quiesce"]
//! after = ["/opt/unishop/resume"]
//! ```
//! Unknown keys are refused (a misspelt `volume =` must not silently back up
//! nothing); every error names the file, the key and what is allowed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{InstanceError, Result};

/// One instance: its files, volumes, launch spec and consistency hooks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceSpec {
    /// `instance` when given (the control plane's resource tables carry it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Resource name; default `instance:<host>:<paths and volumes>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Files and directories, backed up as the files protector does.
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    /// gitignore-style patterns left out of `paths`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excludes: Vec<String>,
    /// Stay on the filesystem of each path.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub one_file_system: bool,
    /// Disk images (raw or qcow2 files) and block devices.
    #[serde(default)]
    pub volumes: Vec<PathBuf>,
    /// How to start the application again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch: Option<LaunchSpec>,
    /// Commands run around the backup for application consistency.
    #[serde(default)]
    pub hooks: Hooks,
}

/// How the application is started at a restore's target.
///
/// Every string may hold `${NAME}` placeholders, filled at restore from
/// `--env NAME=VALUE` (the target site's database DSN, bucket URL, port…).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaunchSpec {
    /// Program and arguments.
    pub command: Vec<String>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Environment added to the inherited one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The port the application listens on (informative; may be a placeholder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    /// URL that answers 200 once the application is up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    /// How long a start may take to become healthy (`30s`, `2m`, `500ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_timeout: Option<String>,
    /// Database resources the application needs, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub databases: Vec<String>,
    /// Bucket resources the application needs, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buckets: Vec<String>,
}

/// Consistency hooks: shell commands (`sh -c`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    /// Run in order before anything is read (quiesce, `fsfreeze -f`); with
    /// them the point is application-consistent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub before: Vec<String>,
    /// Run after reading, also when the backup failed (resume, `fsfreeze -u`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
}

/// One problem of a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key within the spec (`launch.health_timeout`, `launch.env.DB`,
    /// `launch.command[0]`); empty for the spec as a whole.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub fix: String,
}

/// The keys of a spec's tables (for "did you mean" where the spec is read
/// with spans, as the control plane's `validate` does).
pub const KEYS: &[&str] = &[
    "kind",
    "name",
    "paths",
    "excludes",
    "one_file_system",
    "volumes",
    "launch",
    "hooks",
];
/// The keys of `[launch]`.
pub const LAUNCH_KEYS: &[&str] = &[
    "command",
    "cwd",
    "env",
    "port",
    "health",
    "health_timeout",
    "databases",
    "buckets",
];
/// The keys of `[hooks]`.
pub const HOOK_KEYS: &[&str] = &["before", "after"];

/// Default health timeout.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(30);

impl InstanceSpec {
    /// Reads and checks a spec file.
    pub fn load(path: &Path) -> Result<InstanceSpec> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| InstanceError::io("read the instance spec", path, e))?;
        InstanceSpec::parse(&text, &path.display().to_string())
    }

    /// Parses and checks a spec; `from` names its source in errors.
    pub fn parse(text: &str, from: &str) -> Result<InstanceSpec> {
        let spec: InstanceSpec = toml::from_str(text).map_err(|e| InstanceError::Spec {
            from: from.to_string(),
            msg: e.to_string().trim_end().to_string(),
        })?;
        spec.validate().map_err(|msg| InstanceError::Spec {
            from: from.to_string(),
            msg,
        })?;
        Ok(spec)
    }

    /// Checks what serde cannot: something to back up, a command, names and
    /// placeholders that make sense, a timeout that parses. The first problem.
    pub fn validate(&self) -> std::result::Result<(), String> {
        match self.problems().into_iter().next() {
            None => Ok(()),
            Some(p) if p.key.is_empty() => Err(p.message),
            Some(p) => Err(format!("{}: {}", p.key, p.message)),
        }
    }

    /// Every problem of the spec, each with the dotted key it is about (the
    /// control plane's `validate` points at that key in `lifeboat.toml`).
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut add = |key: &str, message: String, fix: &str| {
            out.push(Problem {
                key: key.to_string(),
                message,
                fix: fix.to_string(),
            })
        };
        if let Some(k) = &self.kind
            && k != "instance"
        {
            add(
                "kind",
                format!("{k:?}: an instance spec has kind \"instance\""),
                "write `kind = \"instance\"` or leave it out",
            );
        }
        if self.paths.is_empty() && self.volumes.is_empty() {
            add(
                "",
                "nothing to back up: give `paths` and/or `volumes`".into(),
                "add `paths = [\"/opt/app\"]` and/or `volumes = [\"/var/lib/images/app.img\"]`",
            );
        }
        for (what, list) in [("paths", &self.paths), ("volumes", &self.volumes)] {
            for p in list {
                if !p.is_absolute() {
                    add(
                        what,
                        format!("{} is not absolute (write the full path)", p.display()),
                        "write each path from `/`",
                    );
                }
            }
        }
        if let Some(l) = &self.launch {
            if l.command.is_empty() || l.command[0].is_empty() {
                add(
                    "launch.command",
                    "the command is empty: give the program and its arguments, e.g. [\"/opt/app/app\", \"serve\"]".into(),
                    "write `command = [\"/path/to/program\", \"arg\", ...]`",
                );
            }
            for k in l.env.keys() {
                if !is_name(k) {
                    add(
                        "launch.env",
                        format!(
                            "{k:?} is not a valid variable name (letters, digits, _; not starting with a digit)"
                        ),
                        "rename the variable",
                    );
                }
            }
            for (at, s) in l.strings() {
                if let Err(e) = placeholders(s) {
                    add(
                        &at,
                        e,
                        "write placeholders as `${NAME}` (letters, digits, _)",
                    );
                }
            }
            if let Some(t) = &l.health_timeout
                && let Err(e) = parse_duration(t)
            {
                add(
                    "launch.health_timeout",
                    e,
                    "write e.g. `health_timeout = \"30s\"`",
                );
            }
            if let Some(h) = &l.health
                && !h.starts_with("http://")
            {
                add(
                    "launch.health",
                    format!("{h:?}: only http:// URLs can be checked"),
                    "write e.g. `health = \"http://127.0.0.1:${PORT}/health\"`",
                );
            }
        }
        out
    }

    /// The resource name: `name`, or one derived from the paths and volumes.
    pub fn resource(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        let all: Vec<String> = self
            .paths
            .iter()
            .chain(&self.volumes)
            .map(|p| p.display().to_string())
            .collect();
        format!("instance:{}:{}", lifeboat_vault::host_name(), all.join(","))
    }

    /// Whether hooks make the point application-consistent.
    pub fn has_hooks(&self) -> bool {
        !self.hooks.before.is_empty()
    }
}

impl LaunchSpec {
    /// Every string of the spec with where it is, for checks and errors.
    pub fn strings(&self) -> Vec<(String, &String)> {
        let mut out = Vec::new();
        for (i, c) in self.command.iter().enumerate() {
            out.push((format!("launch.command[{i}]"), c));
        }
        if let Some(c) = &self.cwd {
            out.push(("launch.cwd".into(), c));
        }
        for (k, v) in &self.env {
            out.push((format!("launch.env.{k}"), v));
        }
        for (at, v) in [
            ("launch.port", &self.port),
            ("launch.health", &self.health),
            ("launch.health_timeout", &self.health_timeout),
        ] {
            if let Some(v) = v {
                out.push((at.into(), v));
            }
        }
        out
    }
}

/// Whether `s` is a variable name.
pub fn is_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch == '_' || ch.is_ascii_alphabetic())
        && c.all(|ch| ch == '_' || ch.is_ascii_alphanumeric())
}

/// A placeholder's name: `NAME` (given at restore, `--env NAME=…`) or
/// `RESOURCE.OUTPUT` (what the instance's stack provides, e.g. `shop-db.dsn`).
pub fn is_placeholder(s: &str) -> bool {
    match s.split_once('.') {
        None => is_name(s),
        Some((res, out)) => {
            let mut c = res.chars();
            matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic())
                && c.all(|ch| ch == '_' || ch == '-' || ch.is_ascii_alphanumeric())
                && is_name(out)
        }
    }
}

/// The `${NAME}` placeholders of `s`, in order.
pub fn placeholders(s: &str) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("{s:?}: `${{` without its closing `}}`"));
        };
        let name = &after[..end];
        if !is_placeholder(name) {
            return Err(format!(
                "{s:?}: `${{{name}}}` is not a placeholder name (NAME of letters, digits, _, or RESOURCE.OUTPUT such as shop-db.dsn)"
            ));
        }
        out.push(name.to_string());
        rest = &after[end + 1..];
    }
    Ok(out)
}

/// Parses a launch timeout (`lifeboat_vault::duration`'s grammar: `30s`,
/// `500ms`, `2m`, `1h`, a number of seconds), under a week.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let d = lifeboat_vault::duration::parse_timeout(s)?;
    if d >= Duration::from_secs(86_400 * 7) {
        return Err(format!(
            "{s:?} is out of range (more than 0, at most a week)"
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
name = "shop-host"
paths = ["/opt/unishop"]
volumes = ["/var/lib/images/shop.img"]
[launch]
command = ["/opt/unishop/unishop", "serve"]
cwd = "/opt/unishop"
env = { UNISHOP_DATABASE_URL = "${DATABASE_URL}", UNISHOP_LISTEN = "127.0.0.1:${PORT}" }
health = "http://127.0.0.1:${PORT}/health"
health_timeout = "30s"
[hooks]
before = ["/opt/unishop/quiesce"]
after = ["/opt/unishop/resume"]
"#;

    #[test]
    fn the_issue_example_parses() {
        let s = InstanceSpec::parse(EXAMPLE, "x.toml").unwrap();
        assert_eq!(s.resource(), "shop-host");
        assert!(s.has_hooks());
        let l = s.launch.unwrap();
        assert_eq!(l.env["UNISHOP_LISTEN"], "127.0.0.1:${PORT}");
        assert_eq!(
            parse_duration(l.health_timeout.as_deref().unwrap()).unwrap(),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn bad_specs_are_refused_with_the_key_named() {
        let e = InstanceSpec::parse("paths = [\"/a\"]\nvolume = [\"/b\"]\n", "s.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("s.toml") && e.contains("volume"), "{e}");
        let e = InstanceSpec::parse("name = \"x\"\n", "s.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("nothing to back up"), "{e}");
        let e = InstanceSpec::parse("paths = [\"rel\"]\n", "s.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not absolute"), "{e}");
        let e = InstanceSpec::parse(
            "paths = [\"/a\"]\n[launch]\ncommand = [\"/a/x\"]\nhealth = \"http://h:${PORT/\"\n",
            "s.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("launch.health") && e.contains("closing"), "{e}");
        let e = InstanceSpec::parse(
            "paths = [\"/a\"]\n[launch]\ncommand = [\"/a/x\"]\nhealth_timeout = \"3 fortnights\"\n",
            "s.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown unit"), "{e}");
    }

    #[test]
    fn the_key_lists_are_the_spec_fields() {
        let l = LaunchSpec {
            command: vec!["x".into()],
            cwd: Some("/".into()),
            env: [("A".to_string(), "b".to_string())].into(),
            port: Some("1".into()),
            health: Some("http://h/".into()),
            health_timeout: Some("1s".into()),
            databases: vec!["d".into()],
            buckets: vec!["b".into()],
        };
        let s = InstanceSpec {
            kind: Some("instance".into()),
            name: Some("n".into()),
            paths: vec!["/a".into()],
            excludes: vec!["x".into()],
            one_file_system: true,
            volumes: vec!["/v".into()],
            launch: Some(l),
            hooks: Hooks {
                before: vec!["b".into()],
                after: vec!["a".into()],
            },
        };
        let j = serde_json::to_value(&s).unwrap();
        let keys = |v: &serde_json::Value| {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        let sorted = |l: &[&str]| {
            let mut k: Vec<String> = l.iter().map(|s| s.to_string()).collect();
            k.sort();
            k
        };
        assert_eq!(keys(&j), sorted(KEYS));
        assert_eq!(keys(&j["launch"]), sorted(LAUNCH_KEYS));
        assert_eq!(keys(&j["hooks"]), sorted(HOOK_KEYS));
    }

    #[test]
    fn placeholders_are_found_in_order() {
        assert_eq!(placeholders("a ${X} b ${Y_1}").unwrap(), vec!["X", "Y_1"]);
        assert!(placeholders("${1X}").is_err());
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
    }
}
