//! A kind of resource the loader has no code for: one protector declaring
//! its keys and checks, registered beside this build's, is read, checked
//! and kept (`ResourceKind::Other`) like the kinds the model types.

use lifeboat_config::{ResourceKind, Secret};
use lifeboat_protector::{
    Backed, BackupError, BackupJob, BrowseError, Description, Key, Listing, Problem, Protector,
    Query, Registry, ResourceSettings, RestoreForm, Schema, Shape, read_settings,
};
use lifeboat_vault::{Id, RecoveryPoint, Vault};

/// Message queues: `url`, `topics`, `durable`, a password.
struct Queues;

#[derive(serde::Deserialize)]
struct QueueSettings {
    url: String,
}

const KEYS: &[Key] = &[
    Key::new("url", Shape::String, "amqp://host").required("add `url = \"amqp://host\"`"),
    Key::new("topics", Shape::Strings, "the topics kept"),
    Key::new("durable", Shape::Bool, "only durable messages"),
    Key::new("password_env", Shape::Secret, "its password's variable"),
    Key::new("password_file", Shape::Secret, "its password's file"),
];

impl ResourceSettings for Queues {
    fn settings(&self) -> Schema {
        Schema {
            implied_by: &["topics"],
            keys: KEYS,
        }
    }

    fn check_settings(&self, settings: &serde_json::Value) -> Vec<Problem> {
        match read_settings::<QueueSettings>(settings) {
            Ok(s) if !s.url.starts_with("amqp://") => vec![Problem::at(
                "url",
                format!("`{}` is not an amqp:// URL", s.url),
                "write `amqp://host`",
            )],
            Ok(_) => Vec::new(),
            Err(p) => vec![p],
        }
    }
}

impl Protector for Queues {
    fn describe(&self) -> Description {
        Description {
            kind: "queue",
            point_kinds: &["queue"],
            title: "Message queues",
            browse: None,
            levels: &[],
            restore: RestoreForm::CommandOnly,
            command: "lifeboat restore queue",
            restores_into: lifeboat_protector::TargetKind::Directory,
        }
    }

    fn contents(
        &self,
        _: &Vault,
        _: &Id,
        _: &RecoveryPoint,
        _: &Query,
    ) -> Result<Listing, BrowseError> {
        Err(BrowseError::BadQuery("nothing to list".into()))
    }

    fn back_up(&self, _: &BackupJob) -> Result<Backed, BackupError> {
        Err(BackupError::Failed("not in this test".into()))
    }

    fn restore(
        &self,
        job: &lifeboat_protector::RestoreJob,
    ) -> Result<lifeboat_protector::Restored, lifeboat_protector::RestoreError> {
        Err(job.wrong_target(self.describe().restores_into))
    }
}

static QUEUES: Queues = Queues;

/// This build's protectors and the queue's.
fn registry() -> &'static Registry {
    static R: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    R.get_or_init(|| {
        let mut all: Vec<&'static dyn Protector> = lifeboat_protectors::registry().all().collect();
        all.push(&QUEUES);
        Registry::new(all)
    })
}

fn short(text: &str) -> Vec<String> {
    match lifeboat_config::parse_with("x.toml", text, registry()) {
        Ok(_) => Vec::new(),
        Err(d) => d.0.iter().map(|e| e.short()).collect(),
    }
}

#[test]
fn a_registered_kind_is_read_by_its_keys_and_kept_as_its_settings() {
    let text = r#"
vault.main.location = "/srv/vault"
[resource.jobs]
kind = "queue"
url = "amqp://q"
durable = true
password_env = "Q_PW"
[resource.orders]
topics = "orders"
url = "amqp://q"
"#;
    let c = lifeboat_config::parse_with("x.toml", text, registry()).unwrap();
    let jobs = &c.resources["jobs"];
    assert_eq!(jobs.kind.name(), "queue");
    assert_eq!(jobs.kind.secret(), Some(&Secret::Env("Q_PW".into())));
    assert!(matches!(jobs.kind, ResourceKind::Other { .. }));
    // As the file's other kinds: its keys beside `kind`, what a backup's
    // settings and the applied configuration hold.
    assert_eq!(
        serde_json::to_value(jobs).unwrap(),
        serde_json::json!({"kind": "queue", "site": null, "url": "amqp://q", "durable": true, "password": {"env": "Q_PW"}})
    );
    // The kind implied by its key; a string is a list of one.
    let orders = serde_json::to_value(&c.resources["orders"]).unwrap();
    assert_eq!(orders["kind"], "queue");
    assert_eq!(orders["topics"], serde_json::json!(["orders"]));
    assert_eq!(c.plans["default"].resources, ["jobs", "orders"]);
    // This build's own parse knows no queues.
    let e = lifeboat_config::parse("x.toml", text)
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown resource kind `queue`"), "{e}");
}

#[test]
fn a_registered_kinds_errors_point_at_its_keys() {
    let text = r#"vault.main.location = "/srv/vault"
[resource.jobs]
kind = "queue"
urll = "amqp://q"
durable = "yes"
[resource.other]
kind = "queue"
url = "http://q"
topics = ["a", 3]
[resource.wrong]
kind = "queu"
"#;
    assert_eq!(
        short(text),
        [
            "2:1 resource.jobs.url: queue resource `jobs` has no `url`",
            "4:1 resource.jobs.urll: unknown key `urll` — did you mean `url`?",
            "5:11 resource.jobs.durable: expected true or false, found a string",
            "8:7 resource.other.url: `http://q` is not an amqp:// URL",
            "9:16 resource.other.topics: expected a string in the list, found an integer",
            "11:8 resource.wrong.kind: unknown resource kind `queu` — did you mean `queue`?",
        ]
    );
}
