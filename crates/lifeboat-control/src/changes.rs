//! `plan`: what `apply` would create, change or remove.
//!
//! Items are compared as JSON between the validated file and what the last
//! apply recorded (`state::Applied::items`); a vault is also compared with
//! its location (one with no `config` object there is to be initialised).

use std::collections::BTreeMap;

use lifeboat_config::Config;
use serde::Serialize;

use crate::state::Applied;
use crate::{ControlError, Result};

/// One line of a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// `+` add, `~` change, `-` remove.
    pub op: Op,
    /// `vault`, `resource`, `plan`, `replication`, `config`.
    pub kind: String,
    /// The item's name.
    pub name: String,
    /// What: "initialise the vault at …", "schedule, retention", ...
    pub detail: String,
}

/// The kind of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Op {
    /// Create or register.
    #[serde(rename = "+")]
    Add,
    /// Change in place.
    #[serde(rename = "~")]
    Change,
    /// Retire (never deletes recovery points).
    #[serde(rename = "-")]
    Remove,
}

impl Op {
    /// `+`, `~` or `-`.
    pub fn sign(self) -> char {
        match self {
            Op::Add => '+',
            Op::Change => '~',
            Op::Remove => '-',
        }
    }
}

/// A plan: the changes and their counts.
#[derive(Debug, Clone, Serialize)]
pub struct Changes {
    /// Every change, vaults first.
    pub changes: Vec<Change>,
    /// Vaults `apply` initialises (names).
    pub vaults_to_init: Vec<String>,
    /// Vaults whose declared lock `apply` writes (names).
    pub locks_to_set: Vec<String>,
}

impl Changes {
    /// (add, change, remove).
    pub fn counts(&self) -> (usize, usize, usize) {
        let n = |op| self.changes.iter().filter(|c| c.op == op).count();
        (n(Op::Add), n(Op::Change), n(Op::Remove))
    }

    /// `N to add, M to change, K to remove.`
    pub fn summary(&self) -> String {
        let (a, c, r) = self.counts();
        format!("{a} to add, {c} to change, {r} to remove.")
    }

    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// The items a config registers: kind → name → JSON.
pub fn items(cfg: &Config) -> BTreeMap<String, BTreeMap<String, serde_json::Value>> {
    fn each<T: Serialize>(m: &BTreeMap<String, T>) -> BTreeMap<String, serde_json::Value> {
        m.iter()
            .map(|(k, v)| (k.clone(), serde_json::to_value(v).expect("json")))
            .collect()
    }
    BTreeMap::from([
        ("vault".to_string(), each(&cfg.vaults)),
        ("resource".to_string(), each(&cfg.resources)),
        ("plan".to_string(), each(&cfg.plans)),
        ("replication".to_string(), each(&cfg.replications)),
        ("stack".to_string(), each(&cfg.stacks)),
        ("drill".to_string(), each(&cfg.drills)),
    ])
}

/// Whether a vault exists at `location` (its `config` object is there).
pub fn vault_exists(location: &str) -> Result<bool> {
    vault_exists_at(lifeboat_vault::Location::parse(location)?)
}

/// [`vault_exists`] for a parsed location (with its credentials).
pub fn vault_exists_at(loc: lifeboat_vault::Location) -> Result<bool> {
    if let lifeboat_vault::Location::Dir(d) = &loc
        && !d.join("config").exists()
    {
        return Ok(false);
    }
    let storage = lifeboat_vault::Storage::open(&loc, false)?;
    Ok(storage.stat("config")?.is_some())
}

/// The id of a file's text (BLAKE3 of its bytes).
pub fn config_id(text: &str) -> String {
    lifeboat_vault::Id::of_stored(text.as_bytes()).to_hex()
}

/// Compares `cfg` (read from `text`) with what was applied and with the vaults.
pub fn compute(cfg: &Config, text: &str, applied: &Applied) -> Result<Changes> {
    let mut changes = Vec::new();
    let vaults_to_init = vaults_to_init(cfg, &mut changes)?;
    let locks_to_set = locks_to_set(cfg, &vaults_to_init, &mut changes)?;
    item_changes(cfg, applied, &vaults_to_init, &mut changes);
    if changes.is_empty() && applied.config_id != config_id(text) {
        changes.push(Change {
            op: Op::Change,
            kind: "config".into(),
            name: "lifeboat.toml".into(),
            detail: "the file's text changed (comments or layout): store it in the vaults again"
                .into(),
        });
    }
    Ok(Changes {
        changes,
        vaults_to_init,
        locks_to_set,
    })
}

/// The declared vaults that do not exist yet, each an `+ vault` change.
fn vaults_to_init(cfg: &Config, changes: &mut Vec<Change>) -> Result<Vec<String>> {
    let mut vaults_to_init = Vec::new();
    let used = cfg.used_vaults();
    for (name, v) in &cfg.vaults {
        if !vault_exists_at(crate::secret::location(v, name)?)? {
            vaults_to_init.push(name.clone());
            changes.push(Change {
                op: Op::Add,
                kind: "vault".into(),
                name: name.clone(),
                detail: format!(
                    "initialise the vault at {}{}",
                    v.location,
                    if used.contains(name) {
                        ""
                    } else {
                        " (no plan uses it yet)"
                    }
                ),
            });
        }
    }
    Ok(vaults_to_init)
}

/// Declared vault locks, compared with what each vault holds (a vault
/// whose password is not at hand cannot be read: `apply` will need it);
/// each to set is a `~ vault-lock` change.
fn locks_to_set(
    cfg: &Config,
    vaults_to_init: &[String],
    changes: &mut Vec<Change>,
) -> Result<Vec<String>> {
    let mut locks_to_set = Vec::new();
    for (name, v) in &cfg.vaults {
        let Some(spec) = &v.lock else { continue };
        let want = crate::vault_lock::settings(name, spec)?;
        let detail = if vaults_to_init.contains(name) {
            Some(format!(
                "set the vault lock: {} (changeable for {}, immutable afterwards)",
                crate::vault_lock::describe(&want),
                lifeboat_vault::retention::format_duration(want.changeable_for)
            ))
        } else {
            match crate::secret::open_vault(cfg, name) {
                Ok(vault) => crate::vault_lock::needed(name, &vault, &want)?,
                Err(ControlError::Secret(_)) => None,
                Err(e) => return Err(e),
            }
        };
        if let Some(detail) = detail {
            locks_to_set.push(name.clone());
            changes.push(Change {
                op: Op::Change,
                kind: "vault-lock".into(),
                name: name.clone(),
                detail,
            });
        }
    }
    Ok(locks_to_set)
}

/// The file's items against the applied ones: added, changed, removed.
fn item_changes(
    cfg: &Config,
    applied: &Applied,
    vaults_to_init: &[String],
    changes: &mut Vec<Change>,
) {
    let want = items(cfg);
    let empty = BTreeMap::new();
    for (kind, now) in &want {
        let before = applied.items.get(kind).unwrap_or(&empty);
        for (name, v) in now {
            match before.get(name) {
                None => {
                    if kind == "vault" && vaults_to_init.contains(name) {
                        continue; // already listed as an initialisation
                    }
                    changes.push(Change {
                        op: Op::Add,
                        kind: kind.clone(),
                        name: name.clone(),
                        detail: describe(kind, v),
                    })
                }
                Some(old) if old != v => changes.push(Change {
                    op: Op::Change,
                    kind: kind.clone(),
                    name: name.clone(),
                    detail: format!("changes {}", changed_keys(old, v).join(", ")),
                }),
                Some(_) => {}
            }
        }
        for name in before.keys().filter(|n| !now.contains_key(*n)) {
            changes.push(Change {
                op: Op::Remove,
                kind: kind.clone(),
                name: name.clone(),
                detail: match kind.as_str() {
                    "plan" => "retire the plan (its recovery points stay in their vaults)".into(),
                    "stack" | "drill" => "retire it (nothing is stopped or deleted)".into(),
                    "vault" => "forget the vault (nothing in it is deleted)".into(),
                    _ => "no longer protected (its recovery points stay in their vaults)".into(),
                },
            });
        }
    }
}

fn describe(kind: &str, v: &serde_json::Value) -> String {
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
    match kind {
        "vault" => format!("register the vault at {}", s("location")),
        "resource" => format!("protect {} resource", lifeboat_config::a(&s("kind"))),
        "plan" => format!(
            "{} into `{}`, {} resource(s)",
            s("schedule"),
            s("vault"),
            v.get("resources")
                .and_then(|r| r.as_array())
                .map_or(0, |a| a.len())
        ),
        "replication" => format!("replicate `{}` to {}", s("from"), s("to")),
        "stack" => format!(
            "declare a stack of {} member(s)",
            v.get("members")
                .and_then(|r| r.as_array())
                .map_or(0, |a| a.len())
        ),
        "drill" => format!("drill stack `{}` into site `{}`", s("stack"), s("to")),
        _ => String::new(),
    }
}

fn changed_keys(old: &serde_json::Value, new: &serde_json::Value) -> Vec<String> {
    match (old.as_object(), new.as_object()) {
        (Some(a), Some(b)) => {
            let mut keys: Vec<String> = a
                .keys()
                .chain(b.keys())
                .filter(|k| a.get(*k) != b.get(*k))
                .cloned()
                .collect();
            keys.sort();
            keys.dedup();
            keys
        }
        _ => vec!["everything".into()],
    }
}
