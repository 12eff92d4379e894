//! Cron schedules with a time zone (croner + chrono-tz).

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Serialize, Serializer};

/// A parsed cron expression in a named time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The expression as written (5 fields, or 6 with seconds first).
    pub expr: String,
    /// The time zone it is read in.
    pub tz: Tz,
    cron: croner::Cron,
}

impl PartialEq for Schedule {
    fn eq(&self, o: &Schedule) -> bool {
        self.expr == o.expr && self.tz == o.tz
    }
}

impl Schedule {
    /// Parses `expr` in time zone `tz` (an IANA name such as `Europe/Berlin`, or `UTC`).
    pub fn parse(expr: &str, tz: &str) -> Result<Schedule, ScheduleError> {
        let tz = Tz::from_str(tz).map_err(|_| ScheduleError::TimeZone(tz.to_string()))?;
        let cron = croner::Cron::from_str(expr).map_err(|e| ScheduleError::Cron(e.to_string()))?;
        Ok(Schedule {
            expr: expr.to_string(),
            tz,
            cron,
        })
    }

    /// The first time strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&t.with_timezone(&self.tz), false)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The last time at or before `t`.
    pub fn previous_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&t.with_timezone(&self.tz), true)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The longest gap between two runs seen over the next few weeks (the
    /// recovery point objective this schedule promises at best).
    pub fn max_interval(&self, from: DateTime<Utc>) -> Option<chrono::Duration> {
        let mut prev = self.next_after(from)?;
        let mut max = chrono::Duration::zero();
        for _ in 0..64 {
            let next = self.next_after(prev)?;
            max = max.max(next - prev);
            prev = next;
        }
        Some(max)
    }
}

/// Why a schedule does not parse.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// Not a cron expression.
    #[error("{0}")]
    Cron(String),
    /// Not a time zone name.
    #[error("unknown time zone `{0}`")]
    TimeZone(String),
}

impl Serialize for Schedule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{} ({})", self.expr, self.tz.name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hourly_in_a_zone() {
        let s = Schedule::parse("0 * * * *", "Europe/Berlin").unwrap();
        let t = DateTime::parse_from_rfc3339("2026-01-01T10:20:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            s.next_after(t).unwrap().to_rfc3339(),
            "2026-01-01T11:00:00+00:00"
        );
        let d = Schedule::parse("30 2 * * *", "Europe/Berlin").unwrap();
        assert_eq!(
            d.next_after(t).unwrap().to_rfc3339(),
            "2026-01-02T01:30:00+00:00"
        );
        assert!(Schedule::parse("61 * * * *", "UTC").is_err());
        assert!(Schedule::parse("0 * * * *", "Mars/Olympus").is_err());
    }
}
