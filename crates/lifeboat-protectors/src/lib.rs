//! The protectors this build knows, in one registry: the configuration's
//! loader reads each kind's `[resource.NAME]` from its protector's keys
//! (`ResourceSettings`), and the layers above (the control plane, stacks,
//! the daemon, the API and its console) find a resource's or a point's
//! protector here instead of switching on its kind. A new kind of resource
//! is its crate plus one line below.

use std::sync::OnceLock;

pub use lifeboat_protector::Registry;

/// Every protector of this build.
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        Registry::new(vec![
            &lifeboat_files::protector::PROTECTOR,
            &lifeboat_mysql::protector::PROTECTOR,
            &lifeboat_bucket::protector::PROTECTOR,
            &lifeboat_instance::protector::PROTECTOR,
        ])
    })
}

#[cfg(test)]
mod tests {
    use lifeboat_protector::{Key, Shape};
    use serde_json::{Value, json};

    /// A value of every key of `keys`, by its shape.
    fn sample(keys: &[Key]) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        for k in keys {
            let (field, v) = match k.shape {
                Shape::String | Shape::NumberOrString => (k.field, json!("x")),
                Shape::Strings | Shape::Array => (k.field, json!(["x"])),
                Shape::Bool => (k.field, json!(true)),
                Shape::StringMap => (k.field, json!({"A": "x"})),
                Shape::Table(t) | Shape::Switch(t) => (k.field, Value::Object(sample(t.keys))),
                Shape::Secret => ("password", json!({"env": "X"})),
            };
            m.insert(field.to_string(), v);
        }
        m
    }

    /// Each kind's declared keys are what its protector's own type reads:
    /// a table holding every key is never "settings it cannot read".
    #[test]
    fn every_kinds_keys_are_read_by_its_protectors_type() {
        for p in super::registry().all() {
            let kind = p.describe().kind;
            let mut settings = sample(p.settings().keys);
            settings.insert("kind".into(), json!(kind));
            let problems = p.check_settings(&Value::Object(settings));
            let unread: Vec<_> = problems
                .iter()
                .filter(|x| x.message.contains("cannot read"))
                .collect();
            assert!(unread.is_empty(), "{kind}: {unread:?}");
            let implied = p.settings().implied_by;
            let keys = p.settings().keys;
            assert!(
                implied.iter().all(|k| keys.iter().any(|x| x.name == *k)),
                "{kind}: a key implying it is one of its keys"
            );
        }
    }
}
