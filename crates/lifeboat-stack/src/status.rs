//! `stack status`: each member of a stack as provisioned, checked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lifeboat_config::Config;
use serde::Serialize;

use crate::Result;
use crate::process::Proc;
use crate::stack::{order, resolve};
use crate::state::StackState;

/// One member's health.
#[derive(Debug, Clone, Serialize)]
pub struct MemberStatus {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: String,
    /// `up`, `down` or `missing` (its directory is gone).
    pub status: String,
    /// Why, when not up.
    pub detail: Option<String>,
    /// What it provides.
    pub outputs: BTreeMap<String, String>,
}

/// Checks each member of the stack as provisioned: a server answers on its
/// socket, an instance's health URL answers 200, a bucket's directory exists
/// (on an S3 endpoint: the endpoint answers and the bucket exists).
pub fn status(cfg: &Config, stack: &str, site: &str) -> Result<Vec<MemberStatus>> {
    let (s, root) = resolve(cfg, stack, site)?;
    let state = StackState::read(&root, stack)?;
    let mut out = Vec::new();
    for name in order(cfg, s) {
        let kind = cfg.resources.get(&name).map_or("?", |r| r.kind.name());
        let Some(m) = state.as_ref().and_then(|st| st.member(&name)) else {
            out.push(MemberStatus {
                name,
                kind: kind.into(),
                status: "down".into(),
                detail: Some("not provisioned (`lifeboat stack up`)".into()),
                outputs: BTreeMap::new(),
            });
            continue;
        };
        let (status, detail) = if let Some(e) = &m.error {
            ("down", Some(format!("did not come up: {e}")))
        } else if crate::bucket::is_s3(m) {
            crate::bucket::status(cfg, site, m)
        } else if !m.dir.exists() {
            ("missing", Some(format!("{} is gone", m.dir.display())))
        } else {
            match m.kind.as_str() {
                "mysql" => {
                    let sock = PathBuf::from(m.outputs.get("socket").cloned().unwrap_or_default());
                    if m.process.as_ref().is_some_and(Proc::alive)
                        && std::os::unix::net::UnixStream::connect(&sock).is_ok()
                    {
                        ("up", None)
                    } else {
                        ("down", Some("mariadbd is not running".into()))
                    }
                }
                "instance" => match (&m.process, health_url(&m.dir)) {
                    (Some(p), Some(url)) if p.alive() => {
                        match lifeboat_instance::supervise::http_status(
                            &url,
                            Duration::from_secs(2),
                        ) {
                            Ok(200) => ("up", None),
                            Ok(c) => ("down", Some(format!("{url} answered {c}"))),
                            Err(e) => ("down", Some(format!("{url}: {e}"))),
                        }
                    }
                    (Some(p), None) if p.alive() => ("up", None),
                    _ => ("down", Some("the process is not running".into())),
                },
                _ => ("up", None),
            }
        };
        out.push(MemberStatus {
            name,
            kind: m.kind.clone(),
            status: status.into(),
            detail,
            outputs: m.outputs.clone(),
        });
    }
    Ok(out)
}

fn health_url(dir: &Path) -> Option<String> {
    lifeboat_instance::launch::read(dir).ok()?.health
}
