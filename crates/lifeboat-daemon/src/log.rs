//! The daemon's events: a human line on stderr, or (`--json`) one JSON
//! object per line on stdout (`time`, `event`, `message` and the event's fields).

use chrono::Utc;

/// Where events go.
#[derive(Debug, Clone, Copy)]
pub struct Log {
    /// JSON lines on stdout instead of text on stderr.
    pub json: bool,
}

impl Log {
    /// Emits one event.
    pub fn event(&self, event: &str, message: String, fields: serde_json::Value) {
        let time = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        tracing::debug!(event, "{message}");
        if self.json {
            let mut o = serde_json::json!({"time": time, "event": event, "message": message});
            if let (Some(o), serde_json::Value::Object(f)) = (o.as_object_mut(), fields) {
                o.extend(f);
            }
            println!("{o}");
        } else {
            eprintln!("{time} {message}");
        }
    }
}
