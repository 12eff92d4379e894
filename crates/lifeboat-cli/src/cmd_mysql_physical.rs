//! `lifeboat backup mysql --physical` and `lifeboat restore mysql --physical`.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Result;
use lifeboat_mysql::physical::{
    Incremental, PhysicalOptions, PhysicalRestoreOptions, default_tool,
};
use lifeboat_mysql::pitr::Modes;
use lifeboat_mysql::{Catalog, Counters, Dsn};

use crate::cmd_mysql::{BackupArgs, RestoreArgs};
use crate::common::{Global, Progress, bytes, print_json};

fn progress(g: &Global, c: &Arc<Counters>, verb: &'static str) -> Progress {
    let c = c.clone();
    Progress::start(g.progress(), move || {
        let total = c.chunks_total.load(Ordering::Relaxed);
        format!(
            "{} files, {} {verb}",
            match total {
                0 => c.chunks_done.load(Ordering::Relaxed).to_string(),
                t => format!("{}/{t}", c.chunks_done.load(Ordering::Relaxed)),
            },
            bytes(c.bytes.load(Ordering::Relaxed)),
        )
    })
}

/// Runs `backup mysql --physical`.
pub fn backup(g: &Global, a: BackupArgs) -> Result<ExitCode> {
    let dsn = Dsn::parse(&a.server.dsn)?;
    let v = g.open()?;
    a.retention.apply(&v)?;
    let opts = PhysicalOptions {
        resource: a.resource,
        tags: a.tags,
        parallel: a.parallel,
        compression: Some(a.compression),
        tool: default_tool(),
        incremental: match (a.full_every, a.incremental) {
            (Some(d), _) => Incremental::FullEvery(d),
            (None, true) => Incremental::OnNewest,
            (None, false) => Incremental::Never,
        },
    };
    let counters = Arc::new(Counters::default());
    let bar = progress(g, &counters, "streamed");
    let _span = tracing::info_span!("job", kind = "backup", protector = "mysql", mode = "physical", server = %dsn).entered();
    let res = match crate::common::interruptible(bar, || {
        lifeboat_mysql::backup_physical(&v, &dsn, &opts, &counters)
    })? {
        Ok(r) => r,
        Err(code) => return Ok(code),
    };
    for w in &res.warnings {
        eprintln!("warning: {w}");
    }
    let s = &res.point.summary;
    let m = &res.meta;
    if g.json {
        print_json(&serde_json::json!({
            "id": res.id.to_hex(),
            "resource": res.point.resource,
            "mode": "physical",
            "backup_type": m.backup_type,
            "base": m.base,
            "server_version": m.server.version,
            "tool": m.tool,
            "lsn": m.lsn,
            "binlog": m.binlog,
            "consistent_at": m.consistent_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "files": m.files,
            "size": s.size,
            "bytes_new": s.bytes_new,
            "bytes_stored": s.bytes_stored,
            "duration_s": s.duration_s,
            "warnings": res.warnings,
        }))?;
    } else {
        if !g.quiet {
            let at = crate::cmd_mysql::coordinates_text(m.binlog.as_ref());
            let on = match &m.base {
                Some(b) => format!(", incremental on {}", &b[..8.min(b.len())]),
                None => String::new(),
            };
            eprintln!(
                "physical point of {}{on} ({}): {} files, {} copied; new {}, stored {} in {:.1}s; LSN {}..{}; consistent at {at}",
                res.point.resource,
                m.server.version,
                m.files,
                bytes(s.size),
                bytes(s.bytes_new),
                bytes(s.bytes_stored),
                s.duration_s,
                m.lsn.to,
                m.lsn.last,
            );
        }
        println!("{}", res.id);
    }
    Ok(crate::common::finished(&res.warnings))
}

/// Runs `restore mysql --physical --datadir DIR [--at T]`.
pub fn restore(g: &Global, a: RestoreArgs) -> Result<ExitCode> {
    let datadir = a.datadir.expect("clap requires --datadir with --physical");
    let v = g.open()?;
    // A reader's shared lock, before anything loads the index.
    let _reader = lifeboat_vault::lock::reader_lock(v.storage(), "restore")?;
    let kinds = &[lifeboat_mysql::KIND_PHYSICAL];
    // With --at, any point names the resource; the plan picks the physical point.
    let (id, point, roll) = match &a.at {
        Some(t) => {
            let (_, named) = crate::pick::select(&v, &a.point, kinds, a.resource.as_deref())?;
            let c = Catalog::load(&v, &named.resource)?;
            let plan = lifeboat_mysql::pitr::plan_from(&c, t, Modes::Physical)?;
            let (id, point) = plan.snapshot.clone();
            (id, point, Some((c, plan)))
        }
        None => {
            let (id, point) = crate::pick::select(&v, &a.point, kinds, a.resource.as_deref())?;
            (id, point, None)
        }
    };
    let opts = PhysicalRestoreOptions {
        datadir: datadir.clone(),
        tool: default_tool(),
    };
    let existed = datadir.exists();
    let counters = Arc::new(Counters::default());
    let bar = progress(g, &counters, "written");
    let _span = tracing::info_span!("job", kind = "restore", protector = "mysql", mode = "physical", point = %id.short()).entered();
    let rep = lifeboat_mysql::restore_physical(&v, &id, &point, &opts, &counters)?;
    drop(bar);
    let replayed = match &roll {
        Some((c, plan)) => {
            if !g.quiet {
                eprintln!("rolling forward to {} in a private server ...", plan.target);
            }
            let work = std::env::temp_dir();
            match lifeboat_mysql::rollforward::roll_forward(&v, c, plan, &datadir, &work) {
                Ok(r) => Some(r),
                Err(e) => {
                    lifeboat_mysql::physical::remove_written(&datadir, !existed);
                    anyhow::bail!(
                        "{e}\nthe restored data directory {} was removed: it held neither the point nor {}",
                        datadir.display(),
                        plan.target
                    );
                }
            }
        }
        None => None,
    };
    if g.json {
        let mut j = serde_json::to_value(&rep)?;
        if let Some(r) = &replayed {
            j["replay"] = serde_json::to_value(r)?;
        }
        print_json(&j)?;
    } else if !g.quiet {
        let rolled = replayed
            .as_ref()
            .map(|r| {
                format!(
                    ", rolled forward from {} to {} in {:.1}s",
                    r.from, r.to, r.duration_s
                )
            })
            .unwrap_or_default();
        eprintln!(
            "restored physical point {}{} into {}: {} files ({}) in {:.1}s, prepared in {:.1}s{rolled}; start it with: mariadbd --datadir={} (the files belong to this user: chown -R mysql:mysql it first when the server runs as mysql)",
            id.short(),
            match rep.chain.len() {
                1 => String::new(),
                n => format!(
                    " (a chain of {n}: full point {} and {} incremental)",
                    &rep.chain[0][..8],
                    n - 1
                ),
            },
            rep.datadir.display(),
            rep.files,
            bytes(rep.bytes),
            rep.extract_s,
            rep.prepare_s,
            rep.datadir.display(),
        );
    }
    Ok(ExitCode::SUCCESS)
}
