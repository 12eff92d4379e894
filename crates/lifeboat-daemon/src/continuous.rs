//! The continuous jobs a file declares: those each resource's protector
//! declares from its settings (a mysql resource's binlog archive with
//! `archive`), each with its copy into each `copy_to` vault (`copy
//! --follow`), and each `[replication.NAME]` rule, with the arguments and
//! environment of the child that runs each (supervised by `supervise`).
//!
//! Secrets go to the child in its environment (`LIFEBOAT_PASSWORD` or
//! `LIFEBOAT_PASSWORD_FILE`, `LIFEBOAT_MYSQL_PASSWORD`), never on its command line.

use std::path::{Path, PathBuf};

use lifeboat_config::{Config, DeletePolicy, Replication, Resource, ResourceKind, Secret};
use lifeboat_control::protectors::{Followed, follows};

/// One continuous job: what to run and with which environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Continuous {
    /// `archive`, `copy` or `replicate`.
    pub kind: &'static str,
    /// `archive:RESOURCE`, `copy:RESOURCE:VAULT` or `replicate:RULE`.
    pub name: String,
    /// The resource it follows.
    pub resource: Option<String>,
    /// The vault it writes to (archives).
    pub vault: Option<String>,
    /// Arguments after `lifeboat --parent-pid PID`.
    pub args: Vec<String>,
    /// Environment of the child: (name, where the value comes from).
    pub env: Vec<(String, EnvValue)>,
    /// Webhooks told of each end (those of the plans that hold the resource).
    pub webhooks: Vec<String>,
    /// Marks that hold the job while one is there: an archive's site was
    /// switched over (`ROOT/stacks/STACK/switched-over.json`), so the old
    /// primary's archive is not started again (its server is fenced, or a
    /// pinned address now reaches the new primary).
    pub held_by: Vec<PathBuf>,
}

/// The webhooks of the plans that hold `resource`.
pub fn webhooks_of(cfg: &Config, resource: &str) -> Vec<String> {
    let mut w: Vec<String> = cfg
        .plans_of(resource)
        .into_iter()
        .filter_map(|p| cfg.plans[p].notify.webhook.clone())
        .collect();
    w.sort();
    w.dedup();
    w
}

/// A value for a child's environment, read when the child starts.
#[derive(Debug, Clone, PartialEq)]
pub enum EnvValue {
    /// Literally this.
    Plain(String),
    /// The daemon's own variable of this name (a secret: never logged).
    FromEnv(String),
    /// The first line of this file, read when the child starts (a secret:
    /// never logged), for a child that reads the secret only from a variable.
    FromFile(std::path::PathBuf),
}

fn password_env(s: &Secret, var: &str, file_var: Option<&str>) -> Vec<(String, EnvValue)> {
    match (s, file_var) {
        (Secret::Env(n), _) => vec![(var.into(), EnvValue::FromEnv(n.clone()))],
        (Secret::File(p), Some(fv)) => {
            vec![(fv.into(), EnvValue::Plain(p.display().to_string()))]
        }
        // No file flag for this secret: the daemon reads the file for the child.
        (Secret::File(p), None) => vec![(var.into(), EnvValue::FromFile(p.clone()))],
    }
}

/// The marks a switchover away from site `site` leaves for the stacks
/// resource `name` is a member of.
fn switchover_marks(cfg: &Config, name: &str, site: Option<&str>) -> Vec<PathBuf> {
    let Some(root) = site
        .and_then(|s| cfg.sites.get(s))
        .and_then(|s| s.root.as_ref())
    else {
        return Vec::new();
    };
    cfg.stacks
        .iter()
        .filter(|(_, s)| s.members.iter().any(|m| m == name))
        .map(|(stack, _)| lifeboat_control::locks::switched_over_mark(root, stack))
        .collect()
}

/// The continuous jobs `cfg` declares: each resource's, as its protector
/// says them (a database's binlog archive), and each replication rule's.
pub fn declared(cfg: &Config, state: &Path) -> Vec<Continuous> {
    let mut out = Vec::new();
    for (name, r) in &cfg.resources {
        out.extend(resource_jobs(cfg, state, name, r));
    }
    for (name, rule) in &cfg.replications {
        out.extend(replication_job(cfg, state, name, rule));
    }
    out
}

/// The continuous jobs resource `name`'s protector declares for it, each
/// with its copies (each copy before its job).
fn resource_jobs(cfg: &Config, state: &Path, name: &str, r: &Resource) -> Vec<Continuous> {
    follows(cfg, name, &state.join("spool"))
        .into_iter()
        .flat_map(|f| follow_jobs(cfg, name, r, f))
        .collect()
}

/// One continuous job of resource `name` and its copies (each copy before
/// the job): the vault in the child's environment, the resource's secret
/// too when the job reads one.
fn follow_jobs(cfg: &Config, name: &str, r: &Resource, f: Followed) -> Vec<Continuous> {
    let Followed { follow: f, vault } = f;
    let Some(vault) = vault else {
        return Vec::new();
    };
    let Some(spec) = cfg.vaults.get(&vault) else {
        return Vec::new();
    };
    let mut env = vec![(
        "LIFEBOAT_VAULT".to_string(),
        EnvValue::Plain(spec.location.clone()),
    )];
    env.extend(password_env(
        &spec.password,
        "LIFEBOAT_PASSWORD",
        Some("LIFEBOAT_PASSWORD_FILE"),
    ));
    // Its copies: its points followed into each `copy_to` vault.
    let mut out: Vec<Continuous> = f
        .copy_to
        .iter()
        .filter_map(|to| follow_copy(cfg, name, f.point_kind, to, &env))
        .collect();
    if let (Some(p), Some(var)) = (r.kind.secret(), f.secret_env) {
        env.extend(password_env(p, var, None));
    }
    let mut args = vec!["--quiet".to_string()];
    args.extend(f.args);
    out.push(Continuous {
        kind: f.job,
        name: format!("{}:{name}", f.job),
        resource: Some(name.to_string()),
        vault: Some(vault),
        args,
        env,
        webhooks: webhooks_of(cfg, name),
        held_by: switchover_marks(cfg, name, r.site.as_deref()),
    });
    out
}

/// The copy of resource `name`'s points of kind `point_kind` into vault
/// `to` as they are written (`vault_env`: the job's vault and its password).
fn follow_copy(
    cfg: &Config,
    name: &str,
    point_kind: &str,
    to: &str,
    vault_env: &[(String, EnvValue)],
) -> Option<Continuous> {
    let tspec = cfg.vaults.get(to)?;
    let mut cenv = vault_env.to_vec();
    cenv.extend(password_env(
        &tspec.password,
        "LIFEBOAT_TO_PASSWORD",
        Some("LIFEBOAT_TO_PASSWORD_FILE"),
    ));
    Some(Continuous {
        kind: "copy",
        name: format!("copy:{name}:{to}"),
        resource: Some(name.to_string()),
        vault: Some(to.to_string()),
        args: vec![
            "--quiet".into(),
            "copy".into(),
            "--to".into(),
            tspec.location.clone(),
            "--resource".into(),
            name.to_string(),
            "--kind".into(),
            point_kind.into(),
            "--follow".into(),
        ],
        env: cenv,
        webhooks: webhooks_of(cfg, name),
        held_by: Vec::new(),
    })
}

/// A bucket replication rule's replicator (none when its source is no bucket).
fn replication_job(
    cfg: &Config,
    state: &Path,
    name: &str,
    rule: &Replication,
) -> Option<Continuous> {
    let Some(ResourceKind::Bucket { location }) = cfg.resources.get(&rule.from).map(|r| &r.kind)
    else {
        return None;
    };
    let mut args: Vec<String> = vec![
        "--quiet".into(),
        "replicate".into(),
        "--from".into(),
        location.clone(),
        "--to".into(),
        rule.to.clone(),
        "--existing".into(),
        "--delete-markers".into(),
        match rule.delete {
            DeletePolicy::Replicate => "replicate",
            DeletePolicy::Keep => "ignore",
        }
        .into(),
        "--state".into(),
        state.join("replication").display().to_string(),
    ];
    if let Some(p) = &rule.prefix {
        args.extend(["--prefix".into(), p.clone()]);
    }
    Some(Continuous {
        kind: "replicate",
        name: format!("replicate:{name}"),
        resource: Some(rule.from.clone()),
        vault: None,
        args,
        env: Vec::new(),
        webhooks: webhooks_of(cfg, &rule.from),
        held_by: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_archive_is_held_by_the_mark_of_a_switchover_away_from_its_site() {
        let t = tempfile::tempdir().unwrap();
        let text = format!(
            "[site.primary]\nroot = \"{}\"\n[vault.main]\nlocation = \"/srv/v\"\n[resource.db]\nsite = \"primary\"\ndsn = \"mysql://backup@127.0.0.1:3306\"\narchive = {{ vault = \"main\" }}\n[stack.shop]\nmembers = [\"db\"]\n",
            t.path().display()
        );
        let c = lifeboat_config::parse("x.toml", &text).unwrap();
        let names = |c: &Config| -> Vec<String> {
            declared(c, std::path::Path::new("/state"))
                .into_iter()
                .map(|x| x.name)
                .collect()
        };
        assert_eq!(names(&c), ["archive:db"]);
        let d = declared(&c, std::path::Path::new("/state"));
        let mark = lifeboat_control::locks::switched_over_mark(t.path(), "shop");
        assert_eq!(d[0].held_by, [mark]);
    }

    #[test]
    fn a_database_password_file_is_read_for_the_archive_at_its_start() {
        let c = lifeboat_config::parse(
            "x.toml",
            "[vault.main]\nlocation = \"/srv/v\"\n[resource.db]\ndsn = \"mysql://backup@127.0.0.1:3306\"\npassword_file = \"/etc/lifeboat/db.pw\"\narchive = { vault = \"main\" }\n",
        )
        .unwrap();
        let d = declared(&c, std::path::Path::new("/state"));
        let a = d.iter().find(|c| c.name == "archive:db").unwrap();
        assert!(
            a.env.contains(&(
                "LIFEBOAT_MYSQL_PASSWORD".to_string(),
                EnvValue::FromFile("/etc/lifeboat/db.pw".into())
            )),
            "{:?}",
            a.env
        );
    }

    #[test]
    fn archives_and_replications_are_declared_with_secrets_from_the_environment() {
        let c = lifeboat_config::parse(
            "x.toml",
            r#"
[vault.main]
location = "/srv/v"
password_env = "MAIN_PW"
[resource.db]
dsn = "mysql://backup@127.0.0.1:3306"
password_env = "DB_PW"
archive = { copy_to = ["dr"] }
[vault.dr]
location = "/srv/dr"
password_file = "/etc/lifeboat/dr.pw"
[resource.assets]
kind = "bucket"
location = "file:///srv/assets"
[plan.p]
resources = ["db", "assets"]
vault = "main"
[replication.assets-dr]
from = "assets"
to = "file:///srv/dr-assets"
delete = "keep"
"#,
        )
        .unwrap();
        let d = declared(&c, std::path::Path::new("/state"));
        assert_eq!(d.len(), 3, "{d:?}");
        let copy = d.iter().find(|c| c.name == "copy:db:dr").unwrap();
        assert!(
            copy.args
                .windows(2)
                .any(|w| w == ["--kind", "mysql-binlog"])
        );
        assert!(copy.env.contains(&(
            "LIFEBOAT_PASSWORD".into(),
            EnvValue::FromEnv("MAIN_PW".into())
        )));
        assert!(copy.env.contains(&(
            "LIFEBOAT_TO_PASSWORD_FILE".into(),
            EnvValue::Plain("/etc/lifeboat/dr.pw".into())
        )));
        assert!(!copy.env.iter().any(|(k, _)| k == "LIFEBOAT_MYSQL_PASSWORD"));
        let d: Vec<_> = d.into_iter().filter(|c| c.kind != "copy").collect();
        assert_eq!(d[0].name, "archive:db");
        assert!(d[0].args.iter().all(|a| !a.contains("PW")));
        assert!(d[0].env.contains(&(
            "LIFEBOAT_PASSWORD".into(),
            EnvValue::FromEnv("MAIN_PW".into())
        )));
        assert!(d[0].env.contains(&(
            "LIFEBOAT_MYSQL_PASSWORD".into(),
            EnvValue::FromEnv("DB_PW".into())
        )));
        assert_eq!(d[1].name, "replicate:assets-dr");
        assert!(
            d[1].args
                .windows(2)
                .any(|w| w == ["--delete-markers", "ignore"])
        );
    }
}
