//! Durations in the file: `90s`, `15m`, `1h`, `7d`, `2w`, `1h30m`.

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

const UNITS: [(&str, u64); 5] = [
    ("w", 604_800),
    ("d", 86_400),
    ("h", 3600),
    ("m", 60),
    ("s", 1),
];

/// Parses `1h30m`, `7d`, `90s`, ...; a positive total.
pub fn parse(text: &str) -> Result<Dur, String> {
    let bad = || {
        format!(
            "`{text}` is not a duration (write a number and a unit: 90s, 15m, 1h, 7d, 2w, 1h30m)"
        )
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let mult = UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, m)| *m)
            .ok_or_else(bad)?;
        total = n
            .checked_mul(mult)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        rest = &rest[unit_len..];
    }
    if total == 0 {
        return Err(format!("`{text}` is zero; a duration must be positive"));
    }
    Ok(Dur(total))
}

impl std::fmt::Display for Dur {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut left = self.0;
        for (u, m) in UNITS.iter().skip(1) {
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
        for bad in ["", "7", "d", "7x", "0s", "-1d", "1.5h"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
