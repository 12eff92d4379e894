//! Durations in the file: `90s`, `15m`, `1h`, `7d`, `2w`, `1h30m`, `10y`
//! (the one grammar of `lifeboat_vault::duration`), in whole seconds.

use serde::{Serialize, Serializer};

/// A whole number of seconds, written back the way a person would write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dur(pub u64);

impl Dur {
    /// The length as a std duration.
    pub fn std(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.0)
    }
}

/// How [`Dur`] is written back: the largest units first.
const UNITS: [(&str, u64); 4] = [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)];

/// Parses a duration of the one grammar (`lifeboat_vault::duration`: `1h30m`,
/// `7d`, `90s`, `10y`, …) that is a whole number of seconds.
pub fn parse(text: &str) -> Result<Dur, String> {
    lifeboat_vault::duration::whole_seconds(text).map(Dur)
}

/// A duration that may be zero: `0`, `0s` (any unit), or one of the grammar.
pub fn parse_or_zero(text: &str) -> Result<Dur, String> {
    let t = text.trim();
    let number = t
        .trim_end_matches(|c: char| c.is_ascii_alphabetic())
        .trim_end();
    let unit = t[number.len()..].trim_start();
    let zero = number.contains('0') && number.chars().all(|c| c == '0' || c == '.');
    if zero && (unit.is_empty() || parse(&format!("1{unit}")).is_ok()) {
        return Ok(Dur(0));
    }
    parse(text)
}

/// A timeout: the grammar, or a number alone, which is seconds.
pub fn parse_timeout(text: &str) -> Result<Dur, String> {
    let d = lifeboat_vault::duration::parse_timeout(text)?;
    match d.subsec_nanos() {
        0 => Ok(Dur(d.as_secs())),
        _ => Err(format!(
            "`{text}` is not a whole number of seconds (write e.g. 90s, 5m)"
        )),
    }
}

/// An example of a duration fit for key `key`, for a fix to show.
pub fn example(key: &str) -> &'static str {
    match key {
        "timeout" | "health_timeout" => "90s",
        "rpo" => "5m",
        "rto" | "keep_for" => "15m",
        "window" => "1h",
        _ => "7d",
    }
}

impl std::fmt::Display for Dur {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0 == 0 {
            return f.write_str("0s");
        }
        let mut left = self.0;
        for (u, m) in UNITS.iter() {
            if left >= *m {
                write!(f, "{}{u}", left / m)?;
                left %= m;
            }
        }
        Ok(())
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn zero_is_a_length_only_where_asked_and_a_timeout_may_be_bare_seconds() {
        for z in ["0", "0s", " 0m ", "0.0h", "00s"] {
            assert_eq!(parse_or_zero(z), Ok(Dur(0)), "{z}");
        }
        assert_eq!(parse_or_zero("15m"), Ok(Dur(900)));
        assert!(parse_or_zero("0x").is_err());
        assert!(parse_or_zero("").is_err());
        assert!(parse("0s").is_err());
        assert_eq!(parse_timeout("90"), Ok(Dur(90)));
        assert_eq!(parse_timeout("2m"), Ok(Dur(120)));
        assert!(parse_timeout("1.5").unwrap_err().contains("whole number"));
        assert_eq!(Dur(0).to_string(), "0s");
        assert_eq!(example("timeout"), "90s");
    }
    use super::*;

    #[test]
    fn parses_and_prints() {
        assert_eq!(parse("1h30m").unwrap(), Dur(5400));
        assert_eq!(parse("7d").unwrap(), Dur(604_800));
        assert_eq!(parse("2w").unwrap().to_string(), "14d");
        assert_eq!(parse("90s").unwrap().to_string(), "1m30s");
        assert_eq!(parse("7y").unwrap(), Dur(7 * 365 * 86_400));
        assert_eq!(parse("1.5h").unwrap(), Dur(5400));
        for bad in ["", "7", "d", "7x", "0s", "-1d", "500ms"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
