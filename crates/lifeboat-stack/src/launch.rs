//! What a stack starts an instance with, and where members listen: the
//! launch spec from the file (the point's is the fallback), an instance's
//! fixed `port`, a database's pinned `recover_listen`/`recover_socket`, and
//! a launch spec's errors in a stack's words.

use lifeboat_config::{Config, ResourceKind};

use crate::{Result, StackError, process};

/// The launch spec a recovery starts an instance with: the one the file
/// declares now (after `apply` reported "changes spec", the next recovery
/// uses the change, not the spec frozen in the point), else the point's.
pub struct LaunchChoice {
    /// The spec (`None`: neither has one).
    pub spec: Option<lifeboat_instance::spec::LaunchSpec>,
    /// `lifeboat.toml` or `the point`.
    pub from: &'static str,
    /// Both have one and they differ.
    pub differs: bool,
}

impl LaunchChoice {
    /// The choice for instance `name`, whose point is `point`.
    pub fn of(cfg: &Config, name: &str, point: &lifeboat_vault::RecoveryPoint) -> Result<Self> {
        let of_point = lifeboat_instance::restore::meta_of(point)?.spec.launch;
        // A recovered site's first point: its spec is re-rooted to where the
        // recovery restored it (the file's names the old primary's paths).
        if point
            .tags
            .iter()
            .any(|t| t == crate::protect_data::RECOVERED_TAG)
            && of_point.is_some()
        {
            return Ok(LaunchChoice {
                spec: of_point,
                from: "the point (the first point of a recovered instance)",
                differs: false,
            });
        }
        Ok(match file_launch(cfg, name)? {
            Some(f) => LaunchChoice {
                differs: of_point.as_ref().is_some_and(|p| *p != f),
                spec: Some(f),
                from: "lifeboat.toml",
            },
            None => LaunchChoice {
                spec: of_point,
                from: "the point",
                differs: false,
            },
        })
    }
}

/// The launch spec `lifeboat.toml` gives instance `name`, if any.
fn file_launch(cfg: &Config, name: &str) -> Result<Option<lifeboat_instance::spec::LaunchSpec>> {
    match cfg.resources.get(name).map(|r| &r.kind) {
        Some(ResourceKind::Instance { spec }) => Ok(serde_json::from_value::<
            lifeboat_instance::InstanceSpec,
        >(spec.clone())
        .map_err(|e| StackError::Refused(format!("resource `{name}`: {e}")))?
        .launch),
        _ => Ok(None),
    }
}

/// A launch spec's `port` when it is a number (the application's own
/// configuration names that address): kept, never a free one.
fn fixed_port(launch: Option<&lifeboat_instance::spec::LaunchSpec>) -> Option<u16> {
    launch
        .and_then(|l| l.port.as_deref())
        .and_then(|p| p.trim().parse::<u16>().ok())
        .filter(|p| *p > 0)
}

/// The port an instance listens on: the launch spec's `port` when it is a
/// number (an application whose own configuration names its address keeps
/// it; refused when something listens there already), else a free one.
pub fn instance_port(
    name: &str,
    launch: Option<&lifeboat_instance::spec::LaunchSpec>,
) -> Result<u16> {
    let Some(fixed) = fixed_port(launch) else {
        return process::free_port();
    };
    free_to_bind(name, "127.0.0.1", fixed, "its launch spec's `port`")?;
    Ok(fixed)
}

/// Refuses, before anything of stack `s` starts in `site`, an address the
/// file pins for a member there that something already listens on: a
/// database's `recover_listen` outside its own site, an instance's numeric
/// launch `port` (the point's own spec is judged when it starts).
pub(crate) fn pinned_addresses_free(
    cfg: &Config,
    s: &lifeboat_config::Stack,
    site: &str,
) -> Result<()> {
    for name in &s.members {
        let Some(r) = cfg.resources.get(name) else {
            continue;
        };
        match &r.kind {
            ResourceKind::Mysql { .. } if r.site.as_deref() != Some(site) => {
                if let Some(Pinned {
                    listen: Some((host, port)),
                    ..
                }) = pinned(name, &r.kind)?
                {
                    free_to_bind(name, &host, port, "`recover_listen`")?;
                }
            }
            ResourceKind::Instance { .. } => {
                if let Some(port) = fixed_port(file_launch(cfg, name)?.as_ref()) {
                    free_to_bind(name, "127.0.0.1", port, "its launch spec's `port`")?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Refuses a pinned `host:port` that something already listens on.
pub(crate) fn free_to_bind(name: &str, host: &str, port: u16, why: &str) -> Result<()> {
    match std::net::TcpListener::bind((host, port)) {
        Ok(_) => Ok(()),
        Err(e) => Err(StackError::Refused(format!(
            "`{name}` must listen on {host}:{port} ({why}), but that address cannot be used here: {e} — something else listens there (the primary itself, when the recovery or drill runs on the primary's host): stop it, or run the recovery on the host where the address is free"
        ))),
    }
}

/// A launch spec's error in a stack's words: a stack fills placeholders
/// itself (there is no `--env` for `stack up`, `recover` or `drill`).
pub fn launch_error(name: &str, e: lifeboat_instance::InstanceError) -> StackError {
    match e {
        lifeboat_instance::InstanceError::MissingValues(v) => StackError::Refused(format!(
            "the launch spec of `{name}` uses values the stack does not provide: {}; a stack fills `${{listen}}`, `${{port}}`, `${{site.root}}` and its members' outputs (such as `${{db.dsn}}`): change those values in `[resource.{name}.launch]` of lifeboat.toml (`lifeboat validate` names each one)",
            v.join(", ")
        )),
        e => e.into(),
    }
}

/// An instance restore's error in a stack's words (as [`launch_error`]).
pub fn restore_error(name: &str, e: lifeboat_control::protectors::RestoreError) -> StackError {
    match e {
        lifeboat_control::protectors::RestoreError::MissingValues { values, .. } => launch_error(
            name,
            lifeboat_instance::InstanceError::MissingValues(values),
        ),
        e => StackError::Process(e.to_string()),
    }
}

/// Where a database member's server listens outside its own site.
pub struct Pinned {
    /// `recover_listen`: host and port.
    pub listen: Option<(String, u16)>,
    /// `recover_socket`.
    pub socket: Option<std::path::PathBuf>,
}

/// The pinned address of database resource `name`, when the file pins one.
pub fn pinned(name: &str, kind: &ResourceKind) -> Result<Option<Pinned>> {
    let ResourceKind::Mysql {
        recover_listen,
        recover_socket,
        ..
    } = kind
    else {
        return Ok(None);
    };
    if recover_listen.is_none() && recover_socket.is_none() {
        return Ok(None);
    }
    let listen = recover_listen
        .as_deref()
        .map(lifeboat_mysql::protector::listen_addr)
        .transpose()
        .map_err(|e| StackError::Refused(format!("resource `{name}`: recover_listen: {e}")))?;
    Ok(Some(Pinned {
        listen,
        socket: recover_socket.clone(),
    }))
}

/// Makes `at` (`recover_socket`) a link to the server's own socket `real`.
/// Refused when something answers there already or it is not a socket or a
/// link (nothing else is ever removed); a stale socket or link is replaced.
pub fn link_socket(
    name: &str,
    real: &std::path::Path,
    at: &std::path::Path,
) -> Result<std::path::PathBuf> {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(m) = std::fs::symlink_metadata(at) {
        let ours = std::fs::read_link(at).is_ok_and(|t| t == real);
        if !ours {
            if std::os::unix::net::UnixStream::connect(at).is_ok() {
                return Err(StackError::Refused(format!(
                    "`{name}` must answer on the socket {} (`recover_socket`), but a server answers there already: stop it, or run the recovery on the host where that socket is free",
                    at.display()
                )));
            }
            if !(m.file_type().is_socket() || m.file_type().is_symlink()) {
                return Err(StackError::Refused(format!(
                    "`{name}` must answer on the socket {} (`recover_socket`), but that path holds something else (not a socket): move it away",
                    at.display()
                )));
            }
        }
        std::fs::remove_file(at).map_err(|e| StackError::io("remove the stale socket", at, e))?;
    }
    if let Some(dir) = at.parent() {
        std::fs::create_dir_all(dir).map_err(|e| StackError::io("create", dir, e))?;
    }
    std::os::unix::fs::symlink(real, at).map_err(|e| StackError::io("link the socket", at, e))?;
    Ok(at.to_path_buf())
}

/// Removes the links pinned sockets (`recover_socket`) made to the members'
/// own sockets (nothing else: only a link that points into a member's directory).
pub fn unlink_sockets(state: &crate::StackState) {
    for (_, m) in &state.members {
        if let Some(at) = m.outputs.get("socket").map(std::path::PathBuf::from)
            && std::fs::read_link(&at).is_ok_and(|t| t.starts_with(&m.dir))
        {
            let _ = std::fs::remove_file(&at);
        }
    }
}
