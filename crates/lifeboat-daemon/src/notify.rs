//! Notifications: a webhook POST with a JSON body per job end, and
//! healthchecks.io-style pings (`URL/start`, `URL` on success, `URL/fail`).
//!
//! Each is sent from its own task with a 10 s timeout: a dead or slow
//! endpoint is logged and never holds up or fails a backup.

use std::time::Duration;

use lifeboat_control::store::Job;

use crate::Log;

/// How long one notification may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Sends notifications.
#[derive(Clone)]
pub struct Notifier {
    client: Option<reqwest::Client>,
    log: Log,
}

impl Notifier {
    /// A notifier (an HTTP client with [`TIMEOUT`]).
    pub fn new(log: Log) -> Notifier {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .user_agent(concat!("lifeboat/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                log.event(
                    "notify-error",
                    format!("notifications are off: cannot build an HTTP client: {e}"),
                    serde_json::json!({"error": e.to_string()}),
                )
            })
            .ok();
        Notifier { client, log }
    }

    /// POSTs `{"event": "job", "job": {...}}` to `url`.
    pub fn webhook(&self, url: String, job: Job) {
        let body = serde_json::json!({"event": "job", "job": job});
        self.send(
            url,
            reqwest::header::HeaderValue::from_static("application/json"),
            body.to_string(),
        );
    }

    /// POSTs a ping (the body: a short text, e.g. the run's summary).
    pub fn ping(&self, url: String, body: String) {
        self.send(
            url,
            reqwest::header::HeaderValue::from_static("text/plain; charset=utf-8"),
            body,
        );
    }

    fn send(&self, url: String, ctype: reqwest::header::HeaderValue, body: String) {
        let Some(client) = self.client.clone() else {
            return;
        };
        let log = self.log;
        tokio::spawn(async move {
            let r = client
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, ctype)
                .body(body)
                .send()
                .await;
            let err = match r {
                Ok(resp) if resp.status().is_success() => return,
                Ok(resp) => format!("it answered {}", resp.status()),
                Err(e) if e.is_timeout() => format!("no answer within {}s", TIMEOUT.as_secs()),
                Err(e) => e.to_string(),
            };
            log.event(
                "notify-failed",
                format!("notification to {url} failed: {err} (the job is not affected)"),
                serde_json::json!({"url": url, "error": err}),
            );
        });
    }
}
