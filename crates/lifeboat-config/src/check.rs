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

/// Fills defaults that need the whole file, then checks every reference.
pub(crate) fn cross_check(sink: &mut Sink<'_>, d: &mut Draft) {
    let vaults: Vec<String> = d.vaults.keys().cloned().collect();
    let vault_names: Vec<&str> = vaults.iter().map(String::as_str).collect();
    let sites: Vec<String> = d.sites.keys().cloned().collect();
    let site_names: Vec<&str> = sites.iter().map(String::as_str).collect();
    let resources: Vec<String> = d.resources.keys().cloned().collect();
    let resource_names: Vec<&str> = resources.iter().map(String::as_str).collect();

    // A two-line file (one vault, some resources, no plan) gets a daily plan.
    if d.plans.is_empty()
        && vaults.len() == 1
        && !resources.is_empty()
        && d.spans.keys().all(|k| !k.starts_with("plan"))
    {
        d.plans.insert(
            "default".into(),
            Plan {
                resources: resources.clone(),
                schedule: Schedule::parse("0 2 * * *", "UTC").expect("valid"),
                window: None,
                vault: vaults[0].clone(),
                retention: RetentionSpec::default_plan(),
                copy: Vec::new(),
                hooks: Hooks::default(),
                notify: Notify::default(),
            },
        );
    }

    for (n, v) in &d.vaults {
        if let Some(s) = &v.site
            && !d.sites.contains_key(s)
        {
            unknown(sink, d, &format!("vault.{n}.site"), "site", s, &site_names);
        }
    }
    for (n, r) in &d.resources {
        if let Some(s) = &r.site
            && !d.sites.contains_key(s)
        {
            unknown(
                sink,
                d,
                &format!("resource.{n}.site"),
                "site",
                s,
                &site_names,
            );
        }
        if let ResourceKind::Instance { spec } = &r.kind {
            // The launch spec names the resources it needs: they must exist
            // and be of the kind named.
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
        if let ResourceKind::Mysql {
            archive: Some(a), ..
        } = &r.kind
        {
            if let Some(v) = &a.vault
                && !d.vaults.contains_key(v)
            {
                unknown(
                    sink,
                    d,
                    &format!("resource.{n}.archive"),
                    "vault",
                    v,
                    &vault_names,
                );
            }
            for c in &a.copy_to {
                if !d.vaults.contains_key(c) {
                    unknown(
                        sink,
                        d,
                        &format!("resource.{n}.archive"),
                        "vault",
                        c,
                        &vault_names,
                    );
                } else if a.vault.as_deref() == Some(c.as_str()) {
                    sink.error(
                        &d.span(&format!("resource.{n}.archive")),
                        &format!("resource.{n}.archive"),
                        format!("the archive is copied into its own vault `{c}`"),
                        Some(
                            "copy it into a vault in another site, or remove it from `copy_to`"
                                .into(),
                        ),
                    );
                }
            }
        }
    }

    let mut plan_vault_defaults = Vec::new();
    for (n, p) in &d.plans {
        let key = format!("plan.{n}");
        if p.resources.is_empty() && !d.spans.contains_key(&format!("{key}.resources")) {
            sink.error(
                &d.span(&key),
                &key,
                format!("plan `{n}` has no `resources`"),
                Some("add `resources = [\"NAME\", ...]`".into()),
            );
        }
        let mut seen = Vec::new();
        for r in &p.resources {
            if !d.resources.contains_key(r) {
                unknown(
                    sink,
                    d,
                    &format!("{key}.resources"),
                    "resource",
                    r,
                    &resource_names,
                );
            } else if seen.contains(&r) {
                sink.error(
                    &d.span(&format!("{key}.resources")),
                    &format!("{key}.resources"),
                    format!("resource `{r}` is listed twice"),
                    Some("list it once".into()),
                );
            }
            seen.push(r);
        }
        let vault = if p.vault.is_empty() {
            if vaults.len() == 1 {
                plan_vault_defaults.push((n.clone(), vaults[0].clone()));
                vaults[0].clone()
            } else {
                sink.error(
                    &d.span(&key),
                    &key,
                    format!("plan `{n}` has no `vault`"),
                    Some(format!(
                        "add `vault = \"NAME\"` (one of: {})",
                        vault_names.join(", ")
                    )),
                );
                continue;
            }
        } else {
            p.vault.clone()
        };
        if !d.vaults.contains_key(&vault) {
            unknown(
                sink,
                d,
                &format!("{key}.vault"),
                "vault",
                &vault,
                &vault_names,
            );
        } else {
            check_lock_retention(
                sink,
                d,
                &format!("{key}.retention"),
                &p.retention,
                &vault,
                None,
            );
        }
        if let Some(w) = p.window
            && let Some(every) = p.schedule.max_interval(chrono::Utc::now())
            && w.0 as i64 > every.num_seconds()
        {
            sink.error(
                &d.span(&format!("{key}.window")),
                &format!("{key}.window"),
                format!(
                    "the window ({w}) is longer than the time between runs ({})",
                    crate::duration::Dur(every.num_seconds() as u64)
                ),
                Some("shorten the window: a run must start before the next one is due".into()),
            );
        }
        for (i, c) in p.copy.iter().enumerate() {
            let ck = format!("{key}.copy[{i}]");
            if c.vault == vault {
                sink.error(
                    &d.span(&format!("{ck}.vault")),
                    &format!("{ck}.vault"),
                    format!("the copy goes into the plan's own vault `{vault}`"),
                    Some("copy into a vault in another site".into()),
                );
            } else if !d.vaults.contains_key(&c.vault) {
                unknown(
                    sink,
                    d,
                    &format!("{ck}.vault"),
                    "vault",
                    &c.vault,
                    &vault_names,
                );
            } else {
                let r = c.retention.as_ref().unwrap_or(&p.retention);
                check_lock_retention(
                    sink,
                    d,
                    &format!("{ck}.retention"),
                    r,
                    &c.vault,
                    c.lock.as_ref(),
                );
            }
        }
    }
    for (n, v) in plan_vault_defaults {
        d.plans.get_mut(&n).expect("plan").vault = v;
    }

    // An archive that follows "its plan's vault" needs exactly one such vault.
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

    for (n, rule) in &d.replications {
        let key = format!("replication.{n}");
        match d.resources.get(&rule.from) {
            None => unknown(
                sink,
                d,
                &format!("{key}.from"),
                "resource",
                &rule.from,
                &resource_names,
            ),
            Some(r) if !matches!(r.kind, ResourceKind::Bucket { .. }) => {
                sink.error(
                    &d.span(&format!("{key}.from")),
                    &format!("{key}.from"),
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
                    &d.span(&format!("{key}.to")),
                    &format!("{key}.to"),
                    "the destination is the source bucket itself",
                    Some("replicate into a bucket in another site".into()),
                );
            }
            _ => {}
        }
    }
    crate::check_stack::check_stacks(sink, d);
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
