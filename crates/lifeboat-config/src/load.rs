//! Raw spanned TOML → typed sections. Each `[kind.NAME]` section has a loader
//! in [`SECTIONS`] (resources in `load_resource.rs`, each kind by its
//! protector's keys; plans and replication rules in `load_plan.rs`, stacks
//! and drills in `load_stack.rs`).

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;

use toml::de::{DeTable, DeValue};

use crate::diag::Sink;
use crate::model::*;
use crate::read::{SubTable, Table, type_name};

/// What a loader sees of one section: each `NAME = table` with spans.
type Loader = fn(&mut Sink<'_>, &str, Table<'_, '_>, &mut Draft);

/// A config being built, with the spans cross-reference checks point at.
#[derive(Default)]
pub(crate) struct Draft {
    pub(crate) sites: BTreeMap<String, Site>,
    pub(crate) vaults: BTreeMap<String, VaultSpec>,
    pub(crate) resources: BTreeMap<String, Resource>,
    pub(crate) plans: BTreeMap<String, Plan>,
    pub(crate) replications: BTreeMap<String, Replication>,
    pub(crate) stacks: BTreeMap<String, Stack>,
    pub(crate) drills: BTreeMap<String, Drill>,
    pub(crate) server: ServerSpec,
    pub(crate) daemon: DaemonSpec,
    /// Spans of values by dotted key (`plan.hourly.vault`), for later errors.
    pub(crate) spans: BTreeMap<String, Range<usize>>,
    /// The protectors whose kinds resources may be (default: this build's).
    pub(crate) registry: Option<&'static lifeboat_protector::Registry>,
}

impl Draft {
    /// The protectors whose kinds resources may be: each kind's keys are its protector's.
    pub(crate) fn registry(&self) -> &'static lifeboat_protector::Registry {
        self.registry.unwrap_or_else(lifeboat_protectors::registry)
    }

    pub(crate) fn span(&self, key: &str) -> Range<usize> {
        // The key itself, else the nearest enclosing table.
        let mut k = key;
        loop {
            if let Some(s) = self.spans.get(k) {
                return s.clone();
            }
            match k.rfind('.') {
                Some(i) => k = &k[..i],
                None => return 0..0,
            }
        }
    }
}

/// The sections of the file: table name, what it is called in messages, loader.
pub(crate) const SECTIONS: &[(&str, &str, Loader)] = &[
    ("site", "a site", load_site),
    ("vault", "a vault", load_vault),
    (
        "resource",
        "a resource",
        crate::load_resource::load_resource,
    ),
    ("plan", "a plan", crate::load_plan::load_plan),
    (
        "replication",
        "a replication rule",
        crate::load_plan::load_replication,
    ),
    ("stack", "a stack", crate::load_stack::load_stack),
    ("drill", "a drill", crate::load_stack::load_drill),
];

/// Tables that appear once, without a name (`[server]`): table name, loader.
type SingleLoader = fn(&mut Sink<'_>, Table<'_, '_>, &mut Draft);

/// The single tables of the file.
pub(crate) const SINGLE: &[(&str, SingleLoader)] = &[("server", crate::load_server::load_server)];

/// Reads every table of the document into the draft, by its loader.
pub(crate) fn load_document(sink: &mut Sink<'_>, doc: &DeTable<'_>, draft: &mut Draft) {
    let names: Vec<&str> = SECTIONS
        .iter()
        .map(|s| s.0)
        .chain(SINGLE.iter().map(|s| s.0))
        .chain(["daemon"])
        .collect();
    for (k, v) in doc.iter() {
        let section = k.get_ref().as_ref();
        if section == "daemon" {
            crate::load_daemon::load_daemon(sink, v, &mut draft.daemon);
        } else if let Some((_, loader)) = SINGLE.iter().find(|s| s.0 == section) {
            load_single(sink, section, v, *loader, draft);
        } else if let Some((_, what, loader)) = SECTIONS.iter().find(|s| s.0 == section) {
            load_section(sink, section, what, v, *loader, draft);
        } else if let Some(m) = crate::read::did_you_mean(section, &names) {
            sink.error(
                &k.span(),
                section,
                format!("unknown key `{section}` — did you mean `{m}`?"),
                Some(format!("rename it to `{m}`")),
            );
        } else {
            sink.error(
                &k.span(),
                section,
                format!("unknown table `{section}`"),
                Some(format!("the file's tables are: {}", names.join(", "))),
            );
        }
    }
}

/// A table that appears once (`[server]`), read by its loader.
fn load_single(
    sink: &mut Sink<'_>,
    section: &str,
    v: &toml::Spanned<DeValue<'_>>,
    loader: SingleLoader,
    draft: &mut Draft,
) {
    let span = v.span();
    let DeValue::Table(t) = v.get_ref() else {
        sink.error(
            &span,
            section,
            format!("`{section}` is a table, found {}", type_name(v.get_ref())),
            Some(format!("write it as `[{section}]` followed by its keys")),
        );
        return;
    };
    draft.spans.insert(section.to_string(), span.clone());
    let table = Table {
        t,
        path: section,
        span: &span,
    };
    loader(sink, table, draft);
}

/// A section of named tables (`[plan.NAME]`), each read by the section's
/// loader with its keys' spans recorded for the cross-checks.
fn load_section(
    sink: &mut Sink<'_>,
    section: &str,
    what: &str,
    v: &toml::Spanned<DeValue<'_>>,
    loader: Loader,
    draft: &mut Draft,
) {
    let DeValue::Table(entries) = v.get_ref() else {
        sink.error(
            &v.span(),
            section,
            format!(
                "expected tables `[{section}.NAME]`, found {}",
                type_name(v.get_ref())
            ),
            Some(format!(
                "write it as `[{section}.NAME]` followed by its keys"
            )),
        );
        return;
    };
    for (name, body) in entries.iter() {
        let name = name.get_ref().as_ref();
        let path = format!("{section}.{name}");
        if !valid_name(name) {
            sink.error(
                &body.span(),
                &path,
                format!("`{name}` is not a valid name for {what}"),
                Some("use letters, digits, `-` and `_`, starting with a letter".into()),
            );
            continue;
        }
        let DeValue::Table(t) = body.get_ref() else {
            sink.error(
                &body.span(),
                &path,
                format!("{what} is a table, found {}", type_name(body.get_ref())),
                Some(format!("write it as `[{path}]` followed by its keys")),
            );
            continue;
        };
        let span = body.span();
        draft.spans.insert(path.clone(), span.clone());
        for (k, v) in t.iter() {
            draft
                .spans
                .insert(format!("{path}.{}", k.get_ref()), v.span());
        }
        let table = Table {
            t,
            path: &path,
            span: &span,
        };
        loader(sink, name, table, draft);
    }
}

fn valid_name(n: &str) -> bool {
    n.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn load_site(sink: &mut Sink<'_>, name: &str, t: Table<'_, '_>, d: &mut Draft) {
    sink.unknown_keys(
        t,
        "a site",
        &[
            "root",
            "endpoint",
            "region",
            "credentials_env",
            "credentials_file",
            "description",
        ],
    );
    let root = sink.string(t, "root").map(|(s, span)| {
        if !s.starts_with('/') {
            sink.error(
                &span,
                &t.key("root"),
                format!("`{s}` is not an absolute path"),
                Some("write the root from `/`".into()),
            );
        }
        PathBuf::from(s)
    });
    let endpoint = sink.string(t, "endpoint").map(|(e, span)| {
        let rest = e
            .strip_prefix("http://")
            .or_else(|| e.strip_prefix("https://"));
        if rest.is_none_or(|r| r.is_empty() || r.contains(['?', '#', ' '])) {
            sink.error(
                &span,
                &t.key("endpoint"),
                format!("`{e}` is not an S3 endpoint URL"),
                Some(
                    "write `http://host:port` or `https://host` (the store's address, no bucket)"
                        .into(),
                ),
            );
        }
        e.trim_end_matches('/').to_string()
    });
    let region = sink.string(t, "region").map(|s| s.0);
    let credentials = crate::load_credentials::credentials(sink, t, "");
    if endpoint.is_none() {
        for key in ["region", "credentials_env", "credentials_file"] {
            if let Some(v) = t.get(key) {
                sink.error(
                    &v.span(),
                    &t.key(key),
                    format!("`{key}` is set, but site `{name}` names no `endpoint`"),
                    Some(format!(
                        "add `endpoint = \"http://host:port\"`, or remove `{key}`"
                    )),
                );
            }
        }
    }
    sink.string(t, "description");
    d.sites.insert(
        name.to_string(),
        Site {
            root,
            endpoint,
            region,
            credentials,
        },
    );
}

/// `password_env` / `password_file` of a table (at most one).
pub(crate) fn secret(sink: &mut Sink<'_>, t: Table<'_, '_>) -> Option<Secret> {
    let env = sink.string(t, "password_env");
    let file = sink.string(t, "password_file");
    match (env, file) {
        (Some(_), Some((_, span))) => {
            sink.error(
                &span,
                &t.key("password_file"),
                "both `password_env` and `password_file` are set",
                Some("keep one of them".into()),
            );
            None
        }
        (Some((e, span)), None) => {
            if e.is_empty() || e.contains(['=', ' ']) {
                sink.error(
                    &span,
                    &t.key("password_env"),
                    format!("`{e}` is not an environment variable name"),
                    Some("name the variable, e.g. `LIFEBOAT_PASSWORD`".into()),
                );
            }
            Some(Secret::Env(e))
        }
        (None, Some((f, span))) => {
            if !f.starts_with('/') {
                sink.error(
                    &span,
                    &t.key("password_file"),
                    format!("`{f}` is not an absolute path"),
                    Some("write the file's path from `/`".into()),
                );
            }
            Some(Secret::File(f.into()))
        }
        (None, None) => None,
    }
}

/// `lock = "governance"` or `lock = { mode, min_retention, max_retention, changeable_for }`.
pub(crate) fn lock(sink: &mut Sink<'_>, t: Table<'_, '_>) -> Option<LockSpec> {
    let v = t.get("lock")?;
    let key = t.key("lock");
    let mode_of = |sink: &mut Sink<'_>, s: &str, span: &Range<usize>, key: &str| match s {
        "governance" => Some(LockMode::Governance),
        "compliance" => Some(LockMode::Compliance),
        _ => {
            sink.error(
                span,
                key,
                format!("unknown lock mode `{s}`"),
                Some("write `governance` or `compliance`".into()),
            );
            None
        }
    };
    match v.get_ref() {
        DeValue::String(s) => mode_of(sink, s, &v.span(), &key).map(|mode| LockSpec {
            mode,
            min_retention: None,
            max_retention: None,
            changeable_for: None,
        }),
        DeValue::Table(lt) => {
            let lock = SubTable::new(lt, key.clone(), v.span());
            let lt = lock.view();
            sink.unknown_keys(
                lt,
                "a lock",
                &["mode", "min_retention", "max_retention", "changeable_for"],
            );
            let mode = match sink.string(lt, "mode") {
                Some((s, span)) => mode_of(sink, &s, &span, &lt.key("mode"))?,
                None => {
                    sink.missing(lt, "mode", "the lock", "add `mode = \"governance\"` (deletable with an override) or `mode = \"compliance\"` (by no one)");
                    return None;
                }
            };
            let min = sink.duration(lt, "min_retention");
            let max = sink.duration(lt, "max_retention");
            if let (Some(a), Some(b)) = (min, max)
                && a > b
            {
                sink.error(
                    &lt.get("max_retention").expect("read").span(),
                    &lt.key("max_retention"),
                    format!("max_retention ({b}) is shorter than min_retention ({a})"),
                    Some("raise max_retention or lower min_retention".into()),
                );
            }
            Some(LockSpec {
                mode,
                min_retention: min,
                max_retention: max,
                changeable_for: sink.duration(lt, "changeable_for"),
            })
        }
        _ => {
            sink.wrong_type(t, "lock", v, "a lock mode or a lock table");
            None
        }
    }
}

fn load_vault(sink: &mut Sink<'_>, name: &str, t: Table<'_, '_>, d: &mut Draft) {
    sink.unknown_keys(
        t,
        "a vault",
        &[
            "site",
            "location",
            "password_env",
            "password_file",
            "lock",
            "description",
            "credentials_env",
            "credentials_file",
        ],
    );
    sink.string(t, "description");
    let site = sink.string(t, "site").map(|s| s.0);
    let location = match sink.string(t, "location") {
        Some((l, span)) => {
            if let Err(e) = lifeboat_vault::Location::parse(&l) {
                sink.error(&span, &t.key("location"), e.to_string(), Some("write `file:///abs/path`, `/abs/path` or `s3://bucket/prefix?endpoint=...&region=...`".into()));
            }
            l
        }
        None => {
            if t.get("location").is_none() {
                sink.missing(
                    t,
                    "location",
                    &format!("vault `{name}`"),
                    "add `location = \"file:///var/lib/lifeboat/vault\"` (or an s3:// URL)",
                );
            }
            String::new()
        }
    };
    let password = secret(sink, t).unwrap_or_else(|| Secret::Env("LIFEBOAT_PASSWORD".into()));
    let lock = lock(sink, t);
    let credentials = crate::load_credentials::credentials(sink, t, &location);
    d.vaults.insert(
        name.to_string(),
        VaultSpec {
            site,
            location,
            password,
            lock,
            credentials,
        },
    );
}
