//! The one grammar of durations, wherever Lifeboat reads one: `lifeboat.toml`,
//! command-line flags, a vault URL's timeouts, an instance's launch spec.
//!
//! A duration is one or more terms, each a number (a fraction allowed) and a
//! unit — `ms`, `s`, `m` or `min`, `h`, `d`, `w`, `y` (365 days) — added up
//! (`500ms`, `90s`, `1h30m`, `1.5h`, `7d`, `10y`; spaces may stand between:
//! `30 s`, `1h 30m`). It is more than zero. A timeout ([`parse_timeout`]:
//! flags such as `--interval`, a vault URL's timeouts, a launch spec's
//! `health_timeout`) may also be a number alone, which is seconds (`30`,
//! `1.5`), as it always could; a retention or a duration in the file needs
//! its unit, so that `30` meant as days is never taken for 30 seconds. A
//! place that reads one may bound it further (a retention at most 1000
//! years, a health timeout under a week) or want whole seconds
//! ([`whole_seconds`]).

use std::time::Duration;

const NS: u128 = 1_000_000_000;

/// The units and their length in nanoseconds.
const UNITS: [(&str, u128); 8] = [
    ("ms", 1_000_000),
    ("s", NS),
    ("m", 60 * NS),
    ("min", 60 * NS),
    ("h", 3600 * NS),
    ("d", 86_400 * NS),
    ("w", 7 * 86_400 * NS),
    ("y", 365 * 86_400 * NS),
];

/// Why a text is not a duration, with what to write instead.
fn not_a_duration(text: &str) -> String {
    format!(
        "`{text}` is not a duration (write a number and a unit: 500ms, 90s, 15m, 1h, 7d, 2w, 10y, 1h30m)"
    )
}

/// Splits a leading number (`12`, `1.5`, `.5`, `5.`) off `s`: its whole
/// part and its fraction's digits.
fn leading_number(s: &str) -> Option<(&str, &str, &str)> {
    let whole_len = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (whole, rest) = s.split_at(whole_len);
    let (fraction, rest) = match rest.strip_prefix('.') {
        Some(r) => r.split_at(r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len())),
        None => ("", rest),
    };
    (!whole.is_empty() || !fraction.is_empty()).then_some((whole, fraction, rest))
}

/// `whole.fraction` units of `per` nanoseconds each, in nanoseconds (the
/// fraction's digits past the 18th are dropped); `None` when too long.
fn nanoseconds(whole: &str, fraction: &str, per: u128) -> Option<u128> {
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let digits = &fraction[..fraction.len().min(18)];
    let part = if digits.is_empty() {
        0
    } else {
        digits.parse::<u128>().ok()? * per / 10u128.pow(digits.len() as u32)
    };
    whole.checked_mul(per)?.checked_add(part)
}

/// Parses a duration of this grammar, each number with its unit (see the
/// module's comment).
pub fn parse(text: &str) -> Result<Duration, String> {
    parse_with(text, false)
}

/// Parses a timeout: this grammar, or a number alone, which is seconds.
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    parse_with(text, true)
}

/// Parses `text`; a number alone is seconds when `bare_seconds`.
fn parse_with(text: &str, bare_seconds: bool) -> Result<Duration, String> {
    let all = text.trim();
    let mut rest = all;
    if rest.is_empty() {
        return Err(not_a_duration(text));
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let (whole, fraction, after) = leading_number(rest).ok_or_else(|| not_a_duration(text))?;
        let after = after.trim_start();
        let unit_len = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let per = match UNITS.iter().find(|(u, _)| *u == unit) {
            Some((_, per)) => *per,
            // A number alone is seconds.
            None if bare_seconds && unit.is_empty() && rest == all && after.is_empty() => NS,
            None if unit.is_empty() => return Err(not_a_duration(text)),
            None => {
                return Err(format!(
                    "`{text}`: unknown unit `{unit}` (ms, s, m or min, h, d, w, y)"
                ));
            }
        };
        total = nanoseconds(whole, fraction, per)
            .and_then(|n| total.checked_add(n))
            .ok_or_else(|| format!("`{text}` is too long"))?;
        rest = after.trim_start();
    }
    if total == 0 {
        return Err(format!("`{text}` is zero; a duration must be positive"));
    }
    let secs = u64::try_from(total / NS).map_err(|_| format!("`{text}` is too long"))?;
    Ok(Duration::new(secs, (total % NS) as u32))
}

/// Parses a duration that must be a whole number of seconds (`1.5h` is,
/// `500ms` is not), as seconds.
pub fn whole_seconds(text: &str) -> Result<u64, String> {
    let d = parse(text)?;
    if d.subsec_nanos() != 0 {
        return Err(format!(
            "`{text}` is not a whole number of seconds (write e.g. 90s, 15m, 7d)"
        ));
    }
    Ok(d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> f64 {
        parse(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .as_secs_f64()
    }

    #[test]
    fn every_form_each_surface_read_before() {
        // lifeboat.toml: whole numbers, units s m h d w, terms added up.
        assert_eq!(secs("90s"), 90.0);
        assert_eq!(secs("15m"), 900.0);
        assert_eq!(secs("1h30m"), 5400.0);
        assert_eq!(secs("7d"), 604_800.0);
        assert_eq!(secs("2w"), 1_209_600.0);
        // Retention: years of 365 days.
        assert_eq!(secs("10y"), 3650.0 * 86_400.0);
        // Flags and vault URLs: milliseconds, fractions; a timeout in
        // seconds alone.
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse(".5s").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_timeout("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_timeout("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_timeout("1m30s").unwrap(), Duration::from_secs(90));
        // A launch spec: `min`, a space before the unit, around the text.
        assert_eq!(secs("2min"), 120.0);
        assert_eq!(secs(" 30 s "), 30.0);
        // Together.
        assert_eq!(secs("1.5h"), 5400.0);
        assert_eq!(secs("1h 30m"), 5400.0);
        assert_eq!(secs("1m500ms"), 60.5);
    }

    #[test]
    fn what_is_not_a_duration() {
        // A number without its unit is a timeout's seconds, nothing else's.
        for bad in [
            "", " ", "x", "d", "-1s", "1.2.3s", "1h30", "30 1h", "30", "1.5",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("is not a duration"), "{bad}: {e}");
        }
        assert_eq!(
            parse("3 fortnights").unwrap_err(),
            "`3 fortnights`: unknown unit `fortnights` (ms, s, m or min, h, d, w, y)"
        );
        assert!(parse("1e3s").unwrap_err().contains("unknown unit `e`"));
        for zero in ["0s", "0.0h", "0d0h"] {
            assert!(parse(zero).unwrap_err().contains("is zero"), "{zero}");
        }
        assert!(parse_timeout("0").unwrap_err().contains("is zero"));
        assert!(
            parse_timeout("30 1h")
                .unwrap_err()
                .contains("is not a duration")
        );
        assert!(
            parse("99999999999999999999999y")
                .unwrap_err()
                .contains("too long")
        );
        assert!(parse("600000000000y").unwrap_err().contains("too long"));
    }

    #[test]
    fn whole_seconds_refuse_a_fraction_of_one() {
        assert_eq!(whole_seconds("1.5h"), Ok(5400));
        assert_eq!(whole_seconds("7y"), Ok(7 * 365 * 86_400));
        assert!(whole_seconds("500ms").unwrap_err().contains("whole number"));
    }
}
