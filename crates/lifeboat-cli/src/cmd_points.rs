//! `lifeboat points list|show`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use lifeboat_vault::RecoveryPoint;

use crate::common::{Global, bytes, print_json};

#[derive(Subcommand, Debug)]
pub enum PointsCmd {
    /// List recovery points, oldest first.
    List {
        /// Only points of this resource.
        #[arg(long)]
        resource: Option<String>,
        /// Only points with this tag.
        #[arg(long)]
        tag: Option<String>,
    },
    /// Show one point in full.
    Show {
        /// Point: full id, unique prefix, or `latest` (the newest point of
        /// --kind and --resource when given, else of any kind).
        point: String,
        /// Only a point of this kind (files, bucket, mysql, mysql-binlog).
        #[arg(long)]
        kind: Option<String>,
        /// Only a point of this resource.
        #[arg(long)]
        resource: Option<String>,
    },
    /// List the files and directories in a point.
    Ls {
        /// Point: full id, unique prefix, or `latest` (the newest point with
        /// a tree of files: files, bucket or mysql; see --kind).
        point: String,
        /// Directory (or file) inside the point, as backed up; default: the root.
        path: Option<std::path::PathBuf>,
        /// List everything below, not just one level.
        #[arg(long, short)]
        recursive: bool,
        /// Only a point of this kind.
        #[arg(long)]
        kind: Option<String>,
        /// Only a point of this resource.
        #[arg(long)]
        resource: Option<String>,
        #[command(flatten)]
        lock: crate::common::NoLock,
    },
    /// Forget (delete) the given points; run `lifeboat prune` to free their space.
    Forget {
        /// Points: full ids or unique prefixes.
        #[arg(required = true)]
        points: Vec<String>,
        /// Also forget points under a governance-mode lock (never compliance).
        #[arg(long, alias = "override-lock")]
        bypass_governance: bool,
    },
    /// Lock a point until a date, or extend its lock (a compliance lock can
    /// be extended, never shortened or removed).
    Lock(crate::cmd_retention::LockArgs),
}

fn point_json(id: &lifeboat_vault::Id, p: &RecoveryPoint) -> serde_json::Value {
    serde_json::json!({
        "id": id.to_hex(),
        "resource": p.resource,
        "kind": p.kind,
        "time": p.time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "host": p.host,
        "tags": p.tags,
        "paths": p.paths,
        "size": p.summary.size,
        "parent": p.parent.map(|x| x.to_hex()),
        "tree": p.tree.to_hex(),
        "summary": p.summary,
        "retention": p.retention,
        "copied_from": p.copied_from,
        "meta": p.meta,
        "consistency": crate::cmd_instance::consistency(p),
        "mode": lifeboat_mysql::protector::point_mode(p),
        "base": lifeboat_mysql::protector::physical_base(p),
    })
}

/// A database resource's restorable windows (snapshots rolled forward with
/// the archived binlog), by resource.
type Catalogs = BTreeMap<String, lifeboat_mysql::Result<lifeboat_mysql::Catalog>>;

/// A point with its id.
type Listed = (lifeboat_vault::Id, RecoveryPoint);

/// Runs one `points` subcommand.
pub fn run(g: &Global, cmd: PointsCmd) -> Result<ExitCode> {
    if let PointsCmd::Lock(a) = cmd {
        return crate::cmd_retention::lock_point(g, a);
    }
    let v = g.open()?;
    match cmd {
        PointsCmd::List { resource, tag } => list(g, &v, resource.as_deref(), tag.as_deref())?,
        PointsCmd::Show {
            point,
            kind,
            resource,
        } => {
            let kinds: Vec<&str> = kind.as_deref().into_iter().collect();
            let (id, p) = crate::pick::select(&v, &point, &kinds, resource.as_deref())?;
            print_json(&point_json(&id, &p))?;
        }
        PointsCmd::Ls {
            point,
            path,
            recursive,
            kind,
            resource,
            lock,
        } => {
            let kinds: Vec<&str> = match &kind {
                Some(k) => vec![k.as_str()],
                None => crate::pick::WITH_TREE.to_vec(),
            };
            let _reader = lock.reader_lock(&v, "list")?;
            let (id, _) = crate::pick::select(&v, &point, &kinds, resource.as_deref())?;
            let entries = lifeboat_files::list::list(&v, &id, path.as_deref(), recursive)?;
            print_entries(g, &entries)?;
        }
        PointsCmd::Lock(_) => unreachable!("handled above"),
        PointsCmd::Forget {
            points,
            bypass_governance: override_lock,
        } => forget(g, &v, &points, override_lock)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `points list`: the points of a resource or tag (all when neither),
/// oldest first, with the databases' restorable windows.
fn list(
    g: &Global,
    v: &lifeboat_vault::Vault,
    resource: Option<&str>,
    tag: Option<&str>,
) -> Result<()> {
    let (points, damaged) = v.list_points()?;
    for d in &damaged {
        eprintln!("warning: {d}");
    }
    let sel: Vec<&Listed> = points
        .iter()
        .filter(|(_, p)| resource.is_none_or(|r| p.resource == r))
        .filter(|(_, p)| tag.is_none_or(|t| p.tags.iter().any(|x| x == t)))
        .collect();
    let catalogs = catalogs(&points, &sel);
    if g.json {
        let arr: Vec<_> = sel
            .iter()
            .map(|(id, p)| {
                let mut j = point_json(id, p);
                if let Some(Ok(c)) = catalogs.get(&p.resource) {
                    j["resource_windows"] = serde_json::to_value(c.windows()).unwrap_or_default();
                }
                j
            })
            .collect();
        print_json(&arr)?;
    } else {
        print_table(g, &sel);
        print_windows(&catalogs);
    }
    Ok(())
}

/// The catalog of each database resource among the selected points, from
/// all its points.
fn catalogs(points: &[Listed], sel: &[&Listed]) -> Catalogs {
    let mut catalogs = BTreeMap::new();
    for (_, p) in sel {
        if p.kind == lifeboat_mysql::KIND_SNAPSHOT || p.kind == lifeboat_mysql::KIND_BINLOG {
            catalogs.entry(p.resource.clone()).or_insert_with(|| {
                lifeboat_mysql::Catalog::from_points(
                    points
                        .iter()
                        .filter(|(_, q)| q.resource == p.resource)
                        .cloned(),
                    &p.resource,
                )
            });
        }
    }
    catalogs
}

/// The points as a table: one line each, a resource's binlog seal points
/// summed on one line.
fn print_table(g: &Global, sel: &[&Listed]) {
    println!(
        "{:<10} {:<20} {:<14} {:>10}  {:<30} tags",
        "id", "time", "kind", "size", "resource"
    );
    // Seal points of the binlog archive are many and short-lived
    // (rolled up every few minutes): one line per resource.
    let mut seals: BTreeMap<&str, (usize, u64, &RecoveryPoint)> = Default::default();
    for (id, p) in sel {
        if p.kind == lifeboat_mysql::KIND_BINLOG && p.meta["rollup"] != true {
            let e = seals.entry(&p.resource).or_insert((0, 0, p));
            e.0 += 1;
            e.1 += p.summary.size;
            e.2 = p;
            continue;
        }
        println!("{}", point_line(id, p));
    }
    for (r, (n, size, newest)) in &seals {
        println!(
            "{:<10} {:<20} {:<14} {:>10}  {:<30} ({n} binlog seal points, rolled up soon)",
            "…",
            newest.time.format("%Y-%m-%d %H:%M:%S"),
            lifeboat_mysql::KIND_BINLOG,
            bytes(*size),
            r
        );
    }
    if !g.quiet {
        println!("{} point(s)", sel.len());
    }
}

/// One point's line of the table: its lock while it holds and where it was
/// copied from.
fn point_line(id: &lifeboat_vault::Id, p: &RecoveryPoint) -> String {
    let lock = p
        .retention
        .as_ref()
        // Shown only, on this machine's clock: `points list`
        // writes nothing, so it cannot probe the storage's.
        .filter(|r| r.retain_until > chrono::Utc::now())
        .map(|r| {
            format!(
                " [{} until {}]",
                r.mode.as_str(),
                r.retain_until.format("%Y-%m-%d %H:%M")
            )
        })
        .unwrap_or_default();
    let lineage = p
        .copied_from
        .as_ref()
        .map(|l| {
            format!(
                "  (copy of {} from vault {})",
                l.point.short(),
                &l.vault[..l.vault.len().min(8)]
            )
        })
        .unwrap_or_default();
    // A database point's mode; an incremental one's base (short id).
    let mode = match (
        lifeboat_mysql::protector::point_mode(p),
        lifeboat_mysql::protector::physical_base(p),
    ) {
        (Some(m), Some(base)) => format!(" [{m}, incremental on {}]", &base[..base.len().min(8)]),
        (Some(m), None) => format!(" [{m}]"),
        (None, _) => String::new(),
    };
    format!(
        "{:<10} {:<20} {:<14} {:>10}  {:<30} {}{mode}{lock}{lineage}",
        id.short(),
        p.time.format("%Y-%m-%d %H:%M:%S"),
        p.kind,
        bytes(p.summary.size),
        p.resource,
        crate::cmd_instance::tags_column(p)
    )
}

/// Each database resource's restorable windows (or that it has none yet).
fn print_windows(catalogs: &Catalogs) {
    for (r, c) in catalogs {
        match c {
            Ok(c) => {
                let w = c.windows();
                if w.is_empty() {
                    println!(
                        "{r}: no snapshot yet, nothing restorable (run `lifeboat backup mysql`)"
                    );
                }
                for w in w {
                    println!(
                        "{r}: restorable from {} to {}",
                        w.from.format("%Y-%m-%d %H:%M:%S%.3f UTC"),
                        w.to.format("%Y-%m-%d %H:%M:%S%.3f UTC")
                    );
                }
            }
            Err(e) => eprintln!("warning: {r}: {e}"),
        }
    }
}

/// `points ls`: a point's entries as lines (or JSON).
fn print_entries(g: &Global, entries: &[lifeboat_files::list::Entry]) -> Result<()> {
    if g.json {
        return print_json(&entries);
    }
    for e in entries {
        let t = chrono::DateTime::from_timestamp_nanos(e.mtime_ns);
        println!(
            "{:<8} {:>6o} {:>12} {}  {}{}",
            format!("{:?}", e.kind).to_lowercase(),
            e.mode & 0o7777,
            e.size,
            t.format("%Y-%m-%d %H:%M:%S"),
            e.path,
            e.target
                .as_ref()
                .map(|t| format!(" -> {t}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// `points forget`: removes the given points (all found before any is removed).
fn forget(
    g: &Global,
    v: &lifeboat_vault::Vault,
    points: &[String],
    override_lock: bool,
) -> Result<()> {
    let mut ids = Vec::new();
    for spec in points {
        ids.push(v.find_point(spec, None)?.0);
    }
    for id in &ids {
        v.remove_point(id, override_lock)?;
        if !g.json && !g.quiet {
            println!("forgot {}", id.short());
        }
    }
    if g.json {
        print_json(&ids.iter().map(|i| i.to_hex()).collect::<Vec<_>>())?;
    }
    // An incremental physical point whose base went cannot be restored.
    let (left, _) = v.list_points()?;
    for (inc, p) in &left {
        if let Some(base) = lifeboat_mysql::physical::base_id(inc, p).filter(|b| ids.contains(b)) {
            eprintln!(
                "warning: point {} was the base of incremental physical point {}, which cannot be restored any more (nor what is built on it); `lifeboat vault check` lists broken chains",
                base.short(),
                inc.short()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database point's line says its mode; an incremental physical
    /// one's, its base by short id; its JSON, the base in full.
    #[test]
    fn a_database_points_line_and_json_say_its_mode_and_base() {
        let id = lifeboat_vault::Id::random();
        let mut p = RecoveryPoint::new("shop-db", lifeboat_mysql::KIND_SNAPSHOT, id);
        assert!(point_line(&id, &p).contains(" [logical]"));
        p.kind = lifeboat_mysql::KIND_PHYSICAL.into();
        p.meta = serde_json::json!({"mode": "physical"});
        assert!(point_line(&id, &p).contains(" [physical]"));
        assert_eq!(point_json(&id, &p)["base"], serde_json::Value::Null);
        let base = "0123456789abcdef".repeat(4);
        p.meta["base"] = base.clone().into();
        let line = point_line(&id, &p);
        assert!(
            line.contains(" [physical, incremental on 01234567]"),
            "{line}"
        );
        let j = point_json(&id, &p);
        assert_eq!((&j["mode"], &j["base"]), (&"physical".into(), &base.into()));
        p.kind = "files".into();
        assert!(!point_line(&id, &p).contains('['));
        assert_eq!(point_json(&id, &p)["mode"], serde_json::Value::Null);
    }
}
