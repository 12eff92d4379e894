//! Cross-references: names that must exist, copies into another vault,
//! archives without conflict, retention against vault locks.

use crate::diag::Sink;
use crate::load::Draft;
use crate::model::*;
use crate::schedule::Schedule;

/// "no vault `x`" with a did-you-mean, or the list of what exists.
pub(crate) fn unknown(
    sink: &mut Sink<'_>,
    d: &Draft,
    key: &str,
    what: &str,
    name: &str,
    known: &[&str],
) {
    let (msg, fix) = match crate::read::did_you_mean(name, known) {
        Some(m) => (
            format!("there is no {what} `{name}` — did you mean `{m}`?"),
            format!("write `{m}`"),
        ),
        None if known.is_empty() => (
            format!("there is no {what} `{name}`"),
            format!("declare it: `[{what}.{name}]`"),
        ),
        None => (
            format!("there is no {what} `{name}`"),
            format!(
                "write one of: {} (or declare `[{what}.{name}]`)",
                known.join(", ")
            ),
        ),
    };
    sink.error(&d.span(key), key, msg, Some(fix));
}

/// The names of a section's entries, for "did you mean".
fn names<V>(m: &std::collections::BTreeMap<String, V>) -> Vec<&str> {
    m.keys().map(String::as_str).collect()
}

/// Fills defaults that need the whole file, then checks every reference.
pub(crate) fn cross_check(sink: &mut Sink<'_>, d: &mut Draft) {
    default_plan(d);
    check_sites(sink, d);
    for (n, r) in &d.resources {
        match &r.kind {
            ResourceKind::Instance { spec } => check_instance_needs(sink, d, n, spec),
            ResourceKind::Mysql {
                archive: Some(a), ..
            } => check_archive_targets(sink, d, n, a),
            _ => {}
        }
    }
    let mut plan_vault_defaults = Vec::new();
    for (n, p) in &d.plans {
        if let Some(default) = check_plan(sink, d, n, p) {
            plan_vault_defaults.push((n.clone(), default));
        }
    }
    for (n, v) in plan_vault_defaults {
        d.plans.get_mut(&n).expect("plan").vault = v;
    }
    check_archive_vaults(sink, d);
    fill_archive_vaults(d);
    check_replications(sink, d);
    crate::check_stack::check_stacks(sink, d);
}

/// A two-line file (one vault, some resources, no plan) gets a daily plan.
fn default_plan(d: &mut Draft) {
    if d.plans.is_empty()
        && d.vaults.len() == 1
        && !d.resources.is_empty()
        && d.spans.keys().all(|k| !k.starts_with("plan"))
    {
        d.plans.insert(
            "default".into(),
            Plan {
                resources: d.resources.keys().cloned().collect(),
                schedule: Schedule::parse("0 2 * * *", "UTC").expect("valid"),
                window: None,
                vault: d.vaults.keys().next().expect("one vault").clone(),
                retention: RetentionSpec::default_plan(),
                copy: Vec::new(),
                hooks: Hooks::default(),
                notify: Notify::default(),
            },
        );
    }
}

/// Each vault's and resource's `site` names a declared site.
fn check_sites(sink: &mut Sink<'_>, d: &Draft) {
    let site_names = names(&d.sites);
    let sited = d
        .vaults
        .iter()
        .map(|(n, v)| (format!("vault.{n}.site"), &v.site))
        .chain(
            d.resources
                .iter()
                .map(|(n, r)| (format!("resource.{n}.site"), &r.site)),
        );
    for (key, site) in sited {
        if let Some(s) = site
            && !d.sites.contains_key(s)
        {
            unknown(sink, d, &key, "site", s, &site_names);
        }
    }
}

/// The resources an instance's launch spec names exist and are of the kind
/// named.
fn check_instance_needs(sink: &mut Sink<'_>, d: &Draft, n: &str, spec: &serde_json::Value) {
    let resource_names = names(&d.resources);
    for (list, want, what) in [
        ("databases", "mysql", "a database"),
        ("buckets", "bucket", "a bucket"),
    ] {
        let key = format!("resource.{n}.launch.{list}");
        let names = spec["launch"][list].as_array().cloned().unwrap_or_default();
        for name in names.iter().filter_map(|v| v.as_str()) {
            match d.resources.get(name) {
                None => unknown(sink, d, &key, "resource", name, &resource_names),
                Some(o) if o.kind.name() != want => sink.error(
                    &d.span(&key),
                    &key,
                    format!(
                        "resource `{name}` is {} resource, not {what}",
                        crate::a(o.kind.name())
                    ),
                    Some(format!("name a resource of kind `{want}` in `{list}`")),
                ),
                Some(_) => {}
            }
        }
    }
}

/// A binlog archive's vault and copies are declared vaults, none its own.
fn check_archive_targets(sink: &mut Sink<'_>, d: &Draft, n: &str, a: &Archive) {
    let vault_names = names(&d.vaults);
    let key = format!("resource.{n}.archive");
    if let Some(v) = &a.vault
        && !d.vaults.contains_key(v)
    {
        unknown(sink, d, &key, "vault", v, &vault_names);
    }
    for c in &a.copy_to {
        if !d.vaults.contains_key(c) {
            unknown(sink, d, &key, "vault", c, &vault_names);
        } else if a.vault.as_deref() == Some(c.as_str()) {
            sink.error(
                &d.span(&key),
                &key,
                format!("the archive is copied into its own vault `{c}`"),
                Some("copy it into a vault in another site, or remove it from `copy_to`".into()),
            );
        }
    }
}

/// Checks one plan: its resources, vault, window and copies. Returns the
/// vault it defaults to when it names none and the file has one.
fn check_plan(sink: &mut Sink<'_>, d: &Draft, n: &str, p: &Plan) -> Option<String> {
    let key = format!("plan.{n}");
    check_plan_resources(sink, d, &key, p);
    let (vault, default) = if p.vault.is_empty() {
        if d.vaults.len() == 1 {
            let only = d.vaults.keys().next().expect("one vault").clone();
            (only.clone(), Some(only))
        } else {
            sink.error(
                &d.span(&key),
                &key,
                format!("plan `{n}` has no `vault`"),
                Some(format!(
                    "add `vault = \"NAME\"` (one of: {})",
                    names(&d.vaults).join(", ")
                )),
            );
            return None;
        }
    } else {
        (p.vault.clone(), None)
    };
    if !d.vaults.contains_key(&vault) {
        unknown(
            sink,
            d,
            &format!("{key}.vault"),
            "vault",
            &vault,
            &names(&d.vaults),
        );
    } else {
        let rk = format!("{key}.retention");
        check_lock_retention(sink, d, &rk, &p.retention, &vault, None);
    }
    check_plan_window(sink, d, &key, p);
    check_plan_copies(sink, d, &key, p, &vault);
    default
}

/// A plan lists resources, each declared and listed once.
fn check_plan_resources(sink: &mut Sink<'_>, d: &Draft, key: &str, p: &Plan) {
    let n = key.strip_prefix("plan.").unwrap_or(key);
    if p.resources.is_empty() && !d.spans.contains_key(&format!("{key}.resources")) {
        sink.error(
            &d.span(key),
            key,
            format!("plan `{n}` has no `resources`"),
            Some("add `resources = [\"NAME\", ...]`".into()),
        );
    }
    let rk = format!("{key}.resources");
    let mut seen = Vec::new();
    for r in &p.resources {
        if !d.resources.contains_key(r) {
            unknown(sink, d, &rk, "resource", r, &names(&d.resources));
        } else if seen.contains(&r) {
            sink.error(
                &d.span(&rk),
                &rk,
                format!("resource `{r}` is listed twice"),
                Some("list it once".into()),
            );
        }
        seen.push(r);
    }
}

/// A plan's window is no longer than the time between its runs.
fn check_plan_window(sink: &mut Sink<'_>, d: &Draft, key: &str, p: &Plan) {
    if let Some(w) = p.window
        && let Some(every) = p.schedule.max_interval(chrono::Utc::now())
        && w.0 as i64 > every.num_seconds()
    {
        let wk = format!("{key}.window");
        sink.error(
            &d.span(&wk),
            &wk,
            format!(
                "the window ({w}) is longer than the time between runs ({})",
                crate::duration::Dur(every.num_seconds() as u64)
            ),
            Some("shorten the window: a run must start before the next one is due".into()),
        );
    }
}

/// A plan's copies go into other declared vaults whose locks their
/// retention can keep.
fn check_plan_copies(sink: &mut Sink<'_>, d: &Draft, key: &str, p: &Plan, vault: &str) {
    for (i, c) in p.copy.iter().enumerate() {
        let ck = format!("{key}.copy[{i}]");
        let vk = format!("{ck}.vault");
        if c.vault == vault {
            sink.error(
                &d.span(&vk),
                &vk,
                format!("the copy goes into the plan's own vault `{vault}`"),
                Some("copy into a vault in another site".into()),
            );
        } else if !d.vaults.contains_key(&c.vault) {
            unknown(sink, d, &vk, "vault", &c.vault, &names(&d.vaults));
        } else {
            let r = c.retention.as_ref().unwrap_or(&p.retention);
            let rk = format!("{ck}.retention");
            check_lock_retention(sink, d, &rk, r, &c.vault, c.lock.as_ref());
        }
    }
}

/// An archive that follows "its plan's vault" needs exactly one such vault.
fn check_archive_vaults(sink: &mut Sink<'_>, d: &Draft) {
    for (n, r) in &d.resources {
        let ResourceKind::Mysql {
            archive: Some(a), ..
        } = &r.kind
        else {
            continue;
        };
        if a.vault.is_some() {
            continue;
        }
        let mut targets: Vec<(&str, &str)> = d
            .plans
            .iter()
            .filter(|(_, p)| p.resources.contains(n))
            .map(|(pn, p)| (pn.as_str(), p.vault.as_str()))
            .collect();
        targets.dedup_by_key(|t| t.1);
        let key = format!("resource.{n}.archive");
        let mut vs: Vec<&str> = targets.iter().map(|t| t.1).collect();
        vs.sort();
        vs.dedup();
        if vs.is_empty() {
            sink.error(
                &d.span(&key),
                &key,
                "the archive has no vault: the resource is in no plan",
                Some(
                    "write `archive = { vault = \"NAME\" }`, or add the resource to a plan".into(),
                ),
            );
        } else if vs.len() > 1 {
            let plans: Vec<String> = targets
                .iter()
                .map(|(p, v)| format!("`{p}` → `{v}`"))
                .collect();
            sink.error(&d.span(&key), &key, format!("conflicting archives: the resource is in plans that write to different vaults ({})", plans.join(", ")), Some("name the archive's vault: `archive = { vault = \"NAME\" }`".into()));
        }
    }
}

/// An archive without a vault of its own follows its plan's.
fn fill_archive_vaults(d: &mut Draft) {
    let archive_fill: Vec<(String, String)> = d
        .resources
        .iter()
        .filter_map(|(n, r)| match &r.kind {
            ResourceKind::Mysql {
                archive: Some(a), ..
            } if a.vault.is_none() => d
                .plans
                .values()
                .find(|p| p.resources.contains(n))
                .map(|p| (n.clone(), p.vault.clone())),
            _ => None,
        })
        .collect();
    for (n, v) in archive_fill {
        if let ResourceKind::Mysql {
            archive: Some(a), ..
        } = &mut d.resources.get_mut(&n).expect("resource").kind
        {
            a.vault = Some(v);
        }
    }
}

/// A replication rule copies a declared bucket resource into another bucket.
fn check_replications(sink: &mut Sink<'_>, d: &Draft) {
    for (n, rule) in &d.replications {
        let key = format!("replication.{n}");
        let (from, to) = (format!("{key}.from"), format!("{key}.to"));
        match d.resources.get(&rule.from) {
            None => unknown(sink, d, &from, "resource", &rule.from, &names(&d.resources)),
            Some(r) if !matches!(r.kind, ResourceKind::Bucket { .. }) => {
                sink.error(
                    &d.span(&from),
                    &from,
                    format!(
                        "resource `{}` is {} resource; replication copies buckets",
                        rule.from,
                        crate::a(r.kind.name())
                    ),
                    Some("name a resource of kind `bucket`".into()),
                );
            }
            Some(Resource {
                kind: ResourceKind::Bucket { location },
                ..
            }) if *location == rule.to => {
                sink.error(
                    &d.span(&to),
                    &to,
                    "the destination is the source bucket itself",
                    Some("replicate into a bucket in another site".into()),
                );
            }
            _ => {}
        }
    }
}

/// A retention shorter than the lock a vault forces on its points cannot be kept.
fn check_lock_retention(
    sink: &mut Sink<'_>,
    d: &Draft,
    key: &str,
    r: &RetentionSpec,
    vault: &str,
    own: Option<&LockSpec>,
) {
    let vault_lock = d.vaults.get(vault).and_then(|v| v.lock.as_ref());
    let min = [
        vault_lock.and_then(|l| l.min_retention),
        own.and_then(|l| l.min_retention),
    ]
    .into_iter()
    .flatten()
    .max();
    if let Some(min) = min
        && r.span() < min
    {
        let span = r.span();
        sink.error(
            &d.span(key),
            key,
            format!("the retention keeps points for {} but vault `{vault}` locks them for at least {min}", if span.0 == 0 { "no fixed time".to_string() } else { span.to_string() }),
            Some(format!("keep points at least {min} (e.g. `keep_within = \"{min}\"`), or lower the lock's min_retention")),
        );
    }
    if let (Some(own), Some(vl)) = (own, vault_lock)
        && let (Some(a), Some(b)) = (own.min_retention, vl.min_retention)
        && a < b
    {
        sink.error(
            &d.span(key),
            key,
            format!("the copy's lock ({a}) is shorter than vault `{vault}`'s minimum ({b})"),
            Some(format!("raise the copy's min_retention to {b}")),
        );
    }
}
