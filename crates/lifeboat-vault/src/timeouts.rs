//! Network timeouts of an S3 vault: no command may hang on an object store
//! that accepts connections and never answers, or wait long on one that is
//! not there.
//!
//! Four bounds, each settable in the vault URL (`?connect_timeout=5s`),
//! else in the environment (`LIFEBOAT_S3_CONNECT_TIMEOUT=5s`), else a default:
//!
//! | setting | URL parameter | environment | default |
//! |---|---|---|---|
//! | TCP (and TLS) connect | `connect_timeout` | `LIFEBOAT_S3_CONNECT_TIMEOUT` | 5 s |
//! | the endpoint's first answer: nothing at all answered since the first request | `first_answer_timeout` | `LIFEBOAT_S3_FIRST_ANSWER_TIMEOUT` | 30 s |
//! | no answer yet (request sent and headers received), or a stalled body | `timeout` | `LIFEBOAT_S3_TIMEOUT` | 120 s |
//! | one storage operation, retries included | `total_timeout` | `LIFEBOAT_S3_TOTAL_TIMEOUT` | 10 min |
//!
//! Durations are `500ms`, `5s`, `2m`, `1h`, or plain seconds. A failed
//! request is tried [`ATTEMPTS`] times in all (1 s, 2 s, 4 s apart).
//!
//! The answer timeout runs from the start of a request until its answer's
//! headers arrive (reqwest's read timeout), so it includes sending the body:
//! it must exceed the time a 16 MiB pack takes to upload (120 s allows about
//! 1.1 Mbit/s). An endpoint that has never answered anything is a different
//! case, told apart by [`FirstAnswer`]: until the first answer (any status)
//! arrives, every request of the storage — retries included — shares one
//! bound from the first request on; once it passes, the storage fails at once
//! and is not retried. A silent endpoint thus fails a command in about 30 s,
//! while a live one keeps the long answer timeout for slow uploads (the first
//! requests of a command are small: the vault's config and keys).

use std::time::Duration;

/// How many times a request is tried in all (the first try and its retries).
pub const ATTEMPTS: usize = 4;

/// Timeouts of an S3 location.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct S3Timeouts {
    /// Connect timeout, when set in the URL.
    pub connect: Option<Duration>,
    /// Answer (first byte / stall) timeout, when set in the URL.
    pub answer: Option<Duration>,
    /// Whole-operation timeout, when set in the URL.
    pub total: Option<Duration>,
    /// First-answer timeout, when set in the URL.
    pub first_answer: Option<Duration>,
}

/// The three bounds in effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effective {
    /// Connect timeout.
    pub connect: Duration,
    /// Answer timeout.
    pub answer: Duration,
    /// Whole-operation timeout.
    pub total: Duration,
    /// How long the endpoint may leave every request unanswered, from the
    /// first on, before the storage gives up on it.
    pub first_answer: Duration,
}

impl S3Timeouts {
    /// Sets one bound from a URL parameter; `Ok(false)` when `key` is not one.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, String> {
        let slot = match key {
            "connect_timeout" => &mut self.connect,
            "timeout" => &mut self.answer,
            "total_timeout" => &mut self.total,
            "first_answer_timeout" => &mut self.first_answer,
            _ => return Ok(false),
        };
        *slot = Some(parse_duration(value).map_err(|e| format!("{key}: {e}"))?);
        Ok(true)
    }

    /// The bounds in effect: URL, else environment, else default.
    pub fn effective(&self) -> Result<Effective, String> {
        let pick = |url: Option<Duration>, env: &str, default: u64| -> Result<Duration, String> {
            if let Some(d) = url {
                return Ok(d);
            }
            match std::env::var(env) {
                Ok(v) => parse_duration(&v).map_err(|e| format!("{env}: {e}")),
                Err(_) => Ok(Duration::from_secs(default)),
            }
        };
        Ok(Effective {
            connect: pick(self.connect, "LIFEBOAT_S3_CONNECT_TIMEOUT", 5)?,
            answer: pick(self.answer, "LIFEBOAT_S3_TIMEOUT", 120)?,
            total: pick(self.total, "LIFEBOAT_S3_TOTAL_TIMEOUT", 600)?,
            first_answer: pick(self.first_answer, "LIFEBOAT_S3_FIRST_ANSWER_TIMEOUT", 30)?,
        })
    }

    /// The URL parameters of the bounds set in the URL (`&connect_timeout=5s…`).
    pub fn query(&self) -> String {
        let mut s = String::new();
        for (k, v) in [
            ("connect_timeout", self.connect),
            ("timeout", self.answer),
            ("total_timeout", self.total),
            ("first_answer_timeout", self.first_answer),
        ] {
            if let Some(d) = v {
                s.push_str(&format!("&{k}={}", show(d)));
            }
        }
        s
    }
}

impl Effective {
    /// "tried up to 4 times; connect timeout 5s, first answer 30s, answer timeout 120s, total 600s", for messages.
    pub fn describe(&self) -> String {
        format!(
            "tried up to {ATTEMPTS} times; connect timeout {}, first answer {}, answer timeout {}, total {} (set them with ?connect_timeout=, ?first_answer_timeout=, ?timeout=, ?total_timeout= in the vault URL, or LIFEBOAT_S3_CONNECT_TIMEOUT, LIFEBOAT_S3_FIRST_ANSWER_TIMEOUT, LIFEBOAT_S3_TIMEOUT, LIFEBOAT_S3_TOTAL_TIMEOUT)",
            show(self.connect),
            show(self.first_answer),
            show(self.answer),
            show(self.total)
        )
    }
}

/// An S3 storage's HTTP transport that tells a silent endpoint from a slow
/// one: until the endpoint has answered anything (any status), every
/// request — retries included — shares the [`Effective::first_answer`]
/// bound from the first request on; once the bound passes, every request
/// fails at once with a permanent error (not retried) that names the
/// endpoint and the setting. After the first answer, requests go through
/// untouched (the long answer timeout covers slow uploads).
pub(crate) struct FirstAnswer {
    inner: opendal_http_transport_reqwest::ReqwestTransport,
    watch: std::sync::Arc<Watch>,
    answers: std::sync::Arc<Answers>,
}

/// What a storage's requests have been answered: how many wait, and since
/// when none of them has been (for [`crate::storage::Storage::silent_for`]).
#[derive(Default)]
pub(crate) struct Answers(std::sync::Mutex<(usize, Option<std::time::Instant>)>);

impl Answers {
    fn lock(&self) -> std::sync::MutexGuard<'_, (usize, Option<std::time::Instant>)> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A request is sent: the silence starts now if none was waiting.
    fn sent(&self) {
        let mut g = self.lock();
        g.0 += 1;
        if g.0 == 1 {
            g.1 = Some(std::time::Instant::now());
        }
    }

    /// A request ended, `answered` or not.
    fn ended(&self, answered: bool) {
        let mut g = self.lock();
        g.0 = g.0.saturating_sub(1);
        g.1 = match (g.0, answered) {
            (0, _) => None,
            (_, true) => Some(std::time::Instant::now()),
            (_, false) => g.1,
        };
    }

    /// How long requests have waited with no answer (`None`: none waits).
    pub(crate) fn silent_for(&self) -> Option<Duration> {
        self.lock().1.map(|t| t.elapsed())
    }
}

/// Ends a request's count however its future ends (dropped, too).
struct Sent<'a>(&'a Answers, bool);

impl Drop for Sent<'_> {
    fn drop(&mut self) {
        self.0.ended(self.1);
    }
}

struct Watch {
    answered: std::sync::atomic::AtomicBool,
    first_request: std::sync::OnceLock<std::time::Instant>,
    bound: Duration,
    endpoint: String,
}

impl FirstAnswer {
    /// The transport of `client` for `endpoint`, bounded by `eff`.
    pub(crate) fn new(client: reqwest::Client, endpoint: &str, eff: &Effective) -> FirstAnswer {
        FirstAnswer {
            inner: opendal_http_transport_reqwest::ReqwestTransport::new(client),
            answers: Default::default(),
            watch: std::sync::Arc::new(Watch {
                answered: Default::default(),
                first_request: Default::default(),
                bound: eff.first_answer,
                endpoint: endpoint.to_string(),
            }),
        }
    }
}

impl FirstAnswer {
    /// What this transport's requests have been answered.
    pub(crate) fn answers(&self) -> std::sync::Arc<Answers> {
        self.answers.clone()
    }

    async fn first(
        &self,
        req: http::Request<opendal::Buffer>,
    ) -> opendal::Result<http::Response<opendal::HttpBody>> {
        use opendal::HttpTransport;
        use std::sync::atomic::Ordering;
        let w = &self.watch;
        if w.answered.load(Ordering::Relaxed) {
            return self.inner.fetch(req).await;
        }
        let since = *w.first_request.get_or_init(std::time::Instant::now);
        let Some(left) = w.bound.checked_sub(since.elapsed()) else {
            return Err(w.silent());
        };
        match tokio::time::timeout(left, self.inner.fetch(req)).await {
            Ok(Ok(answer)) => {
                w.answered.store(true, Ordering::Relaxed);
                Ok(answer)
            }
            Ok(Err(e)) => Err(e),
            Err(_) if w.answered.load(Ordering::Relaxed) => {
                // Another request got an answer meanwhile: the endpoint
                // lives; this one is only slow. Tried again.
                Err(opendal::Error::new(
                    opendal::ErrorKind::Unexpected,
                    "no answer to a request sent before the endpoint's first answer: timed out",
                )
                .set_temporary())
            }
            Err(_) => Err(w.silent()),
        }
    }
}

impl Watch {
    fn silent(&self) -> opendal::Error {
        opendal::Error::new(
            opendal::ErrorKind::Unexpected,
            format!(
                "no answer at all from {} within {} of the first request (it accepts connections and answers nothing; if it is only slow to answer, raise ?first_answer_timeout= in the vault URL or LIFEBOAT_S3_FIRST_ANSWER_TIMEOUT): timed out",
                self.endpoint,
                show(self.bound)
            ),
        )
        .with_operation("first answer")
    }
}

impl opendal::HttpTransport for FirstAnswer {
    async fn fetch(
        &self,
        req: http::Request<opendal::Buffer>,
    ) -> opendal::Result<http::Response<opendal::HttpBody>> {
        self.answers.sent();
        let mut sent = Sent(&self.answers, false);
        let r = self.first(req).await;
        sent.1 = r.is_ok();
        r
    }
}

/// A duration as the parser reads it back (`500ms`, `5s`).
pub fn show(d: Duration) -> String {
    if d.subsec_millis() != 0 || d.as_secs() == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs())
    }
}

/// Parses a timeout (`lifeboat_vault::duration`'s grammar: `500ms`, `5s`,
/// `2m`, `1h`, plain seconds), under 10⁹ seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = crate::duration::parse_timeout(s)?;
    if d.as_secs_f64() >= 1e9 {
        return Err(format!("{s:?} must be positive"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parameters_parse_and_print_back() {
        let mut t = S3Timeouts::default();
        assert!(t.set("connect_timeout", "500ms").unwrap());
        assert!(t.set("timeout", "2").unwrap());
        assert!(!t.set("region", "x").unwrap());
        assert!(t.set("total_timeout", "0s").is_err());
        assert!(t.set("timeout", "soon").is_err());
        assert_eq!(t.connect, Some(Duration::from_millis(500)));
        assert_eq!(t.query(), "&connect_timeout=500ms&timeout=2s");
        let e = t.effective().unwrap();
        assert_eq!(e.answer, Duration::from_secs(2));
        assert!(t.set("first_answer_timeout", "10s").unwrap());
        assert_eq!(t.effective().unwrap().first_answer, Duration::from_secs(10));
        assert!(
            t.query().ends_with("&first_answer_timeout=10s"),
            "{}",
            t.query()
        );
    }
}
