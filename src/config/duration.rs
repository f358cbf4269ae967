//! Durations as operators write them in YAML: `500ms`, `10s`, `5m`, `1h`,
//! and every other form Go's `time.ParseDuration` reads (`1.5s`, `500us`).
//!
//! A bare integer is read as seconds, because v1.1 files sometimes carry
//! `interval: 30`; everything else must carry a unit so a typo such as
//! `10` meaning milliseconds cannot slip through silently.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// A configuration duration; dereferences to `std::time::Duration`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Dur(pub Duration);

impl Dur {
    pub const fn secs(s: u64) -> Dur {
        Dur(Duration::from_secs(s))
    }
    pub const fn millis(ms: u64) -> Dur {
        Dur(Duration::from_millis(ms))
    }
}

impl std::ops::Deref for Dur {
    type Target = Duration;
    fn deref(&self) -> &Duration {
        &self.0
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0.as_nanos();
        if ns > 0 && ns.is_multiple_of(3_600_000_000_000) {
            write!(f, "{}h", ns / 3_600_000_000_000)
        } else if ns > 0 && ns.is_multiple_of(60_000_000_000) {
            write!(f, "{}m", ns / 60_000_000_000)
        } else if ns.is_multiple_of(1_000_000_000) {
            write!(f, "{}s", ns / 1_000_000_000)
        } else if ns.is_multiple_of(1_000_000) {
            write!(f, "{}ms", ns / 1_000_000)
        } else if ns.is_multiple_of(1_000) {
            write!(f, "{}us", ns / 1_000)
        } else {
            write!(f, "{ns}ns")
        }
    }
}

/// Parses every form Go's `time.ParseDuration` accepts (v1.1 files were
/// read with it): a sequence of decimal numbers, each with an optional
/// fraction and a unit `ns`, `us`, `µs`, `μs`, `ms`, `s`, `m`, `h`
/// (`1.5s`, `500us`, `1h30m`, `.5s`), plus a bare `0`. A bare integer is
/// seconds (see the module note). Negative durations are refused: no key
/// takes one.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let body = text.strip_prefix('+').unwrap_or(text);
    let mut total: u128 = 0;
    let mut rest = body;
    while !rest.is_empty() {
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int, after) = rest.split_at(int_len);
        let (frac, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
                a.split_at(n)
            }
            None => ("", after),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(format!(
                "invalid duration {text:?}: expected a number, e.g. 500ms, 1.5s, 5m, 1h30m"
            ));
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        rest = next;
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => {
                return Err(format!(
                    "invalid duration {text:?}: missing unit (ns, us, ms, s, m, h)"
                ));
            }
            other => {
                return Err(format!(
                    "invalid duration {text:?}: unknown unit {other:?} (use ns, us, ms, s, m or h)"
                ));
            }
        };
        let too_large = || format!("invalid duration {text:?}: number too large");
        let whole: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| too_large())?
        };
        let mut part = whole.checked_mul(scale).ok_or_else(too_large)?;
        // The fraction, digit by digit, like Go (exact to the nanosecond).
        let mut place = scale;
        for d in frac.bytes() {
            place /= 10;
            if place == 0 {
                break;
            }
            part += u128::from(d - b'0') * place;
        }
        total = total.checked_add(part).ok_or_else(too_large)?;
    }
    let secs = u64::try_from(total / 1_000_000_000)
        .map_err(|_| format!("invalid duration {text:?}: too long"))?;
    Ok(Duration::new(secs, (total % 1_000_000_000) as u32))
}

/// Written the way operators write it (`GET /api/v1/config`).
impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(secs) => Ok(Dur(Duration::from_secs(secs))),
            Raw::Text(t) => parse_duration(&t)
                .map(Dur)
                .map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "", "s", "10x", "10 s", "ms10", "-1s", ".", "1.s.", "5 m", "1e3s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad} should fail");
        }
    }

    /// Every form Go's time.ParseDuration accepts (v1.1 files).
    #[test]
    fn go_forms() {
        let cases = [
            ("1.5s", Duration::from_millis(1500)),
            ("500us", Duration::from_micros(500)),
            ("500\u{b5}s", Duration::from_micros(500)),
            ("500\u{3bc}s", Duration::from_micros(500)),
            ("250ns", Duration::from_nanos(250)),
            ("1h30m", Duration::from_secs(5400)),
            ("1h30m15.25s", Duration::from_millis(5_415_250)),
            (".5s", Duration::from_millis(500)),
            ("1.s", Duration::from_secs(1)),
            ("+2m", Duration::from_secs(120)),
            ("0", Duration::ZERO),
            ("0.000000001s", Duration::from_nanos(1)),
            ("2.5h", Duration::from_secs(9000)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn display_round_trips() {
        for t in ["500ms", "10s", "5m", "1h", "500us", "250ns"] {
            assert_eq!(Dur(parse_duration(t).unwrap()).to_string(), t);
        }
    }
}
