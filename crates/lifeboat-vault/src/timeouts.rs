//! Network timeouts of an S3 vault: no command may hang on an object store
//! that accepts connections and never answers, or wait long on one that is
//! not there.
//!
//! Three bounds, each settable in the vault URL (`?connect_timeout=5s`),
//! else in the environment (`LIFEBOAT_S3_CONNECT_TIMEOUT=5s`), else a default:
//!
//! | setting | URL parameter | environment | default |
//! |---|---|---|---|
//! | TCP (and TLS) connect | `connect_timeout` | `LIFEBOAT_S3_CONNECT_TIMEOUT` | 5 s |
//! | no answer yet (request sent and headers received), or a stalled body | `timeout` | `LIFEBOAT_S3_TIMEOUT` | 120 s |
//! | one storage operation, retries included | `total_timeout` | `LIFEBOAT_S3_TOTAL_TIMEOUT` | 10 min |
//!
//! Durations are `500ms`, `5s`, `2m`, `1h`, or plain seconds. A failed
//! request is tried [`ATTEMPTS`] times in all (1 s, 2 s, 4 s apart).
//!
//! The answer timeout runs from the start of a request until its answer's
//! headers arrive (reqwest's read timeout), so it includes sending the body:
//! it must exceed the time a 16 MiB pack takes to upload (120 s allows about
//! 1.1 Mbit/s).

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
}

impl S3Timeouts {
    /// Sets one bound from a URL parameter; `Ok(false)` when `key` is not one.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, String> {
        let slot = match key {
            "connect_timeout" => &mut self.connect,
            "timeout" => &mut self.answer,
            "total_timeout" => &mut self.total,
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
        })
    }

    /// The URL parameters of the bounds set in the URL (`&connect_timeout=5s…`).
    pub fn query(&self) -> String {
        let mut s = String::new();
        for (k, v) in [
            ("connect_timeout", self.connect),
            ("timeout", self.answer),
            ("total_timeout", self.total),
        ] {
            if let Some(d) = v {
                s.push_str(&format!("&{k}={}", show(d)));
            }
        }
        s
    }
}

impl Effective {
    /// "tried up to 4 times; connect timeout 5s, answer timeout 120s, total 600s", for messages.
    pub fn describe(&self) -> String {
        format!(
            "tried up to {ATTEMPTS} times; connect timeout {}, answer timeout {}, total {} (set them with ?connect_timeout=, ?timeout=, ?total_timeout= in the vault URL, or LIFEBOAT_S3_CONNECT_TIMEOUT, LIFEBOAT_S3_TIMEOUT, LIFEBOAT_S3_TOTAL_TIMEOUT)",
            show(self.connect),
            show(self.answer),
            show(self.total)
        )
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

/// Parses `500ms`, `5s`, `2m`, `1h`, or plain seconds (positive).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 500ms, 5s, 2m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m, h)")),
    };
    if !(secs > 0.0 && secs.is_finite() && secs < 1e9) {
        return Err(format!("{s:?} must be positive"));
    }
    Ok(Duration::from_secs_f64(secs))
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
    }
}
