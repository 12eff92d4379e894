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

impl std::fmt::Display for Dur {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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
