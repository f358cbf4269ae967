//! `domains[].min_healthy`: the drain guard's floor for one name, a count
//! (`2`) or a percentage of the name's backends (`"50%"`).
//!
//! Parsing and the floor arithmetic live here; the decision that uses the
//! floor is `overwatch::drain_guard`. In YAML the value is an integer or a
//! string `N%` with N from 0 to 100; anything else is refused with the key.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MinHealthy {
    Count(u32),
    Percent(u8),
}

impl MinHealthy {
    /// Parses `"50%"` or `"2"`; the error says what is expected.
    pub fn parse(s: &str) -> Result<MinHealthy, String> {
        let t = s.trim();
        if let Some(p) = t.strip_suffix('%') {
            return match p.trim().parse::<u8>() {
                Ok(n) if n <= 100 => Ok(MinHealthy::Percent(n)),
                _ => Err(format!(
                    "{s:?}: expected a percentage from 0% to 100% or a count"
                )),
            };
        }
        t.parse::<u32>()
            .map(MinHealthy::Count)
            .map_err(|_| format!("{s:?}: expected a count like 2 or a percentage like \"50%\""))
    }

    /// How many backends of `total` must stay in before the guard holds
    /// the rest in; a percentage rounds up (50% of 3 is 2).
    pub fn floor(self, total: usize) -> usize {
        match self {
            MinHealthy::Count(n) => n as usize,
            MinHealthy::Percent(p) => (total * usize::from(p)).div_ceil(100),
        }
    }
}

impl std::fmt::Display for MinHealthy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MinHealthy::Count(n) => write!(f, "{n}"),
            MinHealthy::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl Serialize for MinHealthy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            MinHealthy::Count(n) => s.serialize_u32(*n),
            MinHealthy::Percent(_) => s.serialize_str(&self.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for MinHealthy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Count(u32),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Count(n) => Ok(MinHealthy::Count(n)),
            Raw::Text(s) => MinHealthy::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_percentages_parse_and_round_up() {
        assert_eq!(MinHealthy::parse("2"), Ok(MinHealthy::Count(2)));
        assert_eq!(MinHealthy::parse("50%"), Ok(MinHealthy::Percent(50)));
        assert!(MinHealthy::parse("101%").is_err());
        assert!(MinHealthy::parse("-1").is_err());
        assert!(MinHealthy::parse("half").is_err());
        assert_eq!(MinHealthy::Percent(50).floor(3), 2);
        assert_eq!(MinHealthy::Percent(50).floor(4), 2);
        assert_eq!(MinHealthy::Percent(0).floor(4), 0);
        assert_eq!(MinHealthy::Count(2).floor(10), 2);
    }

    #[test]
    fn yaml_takes_an_integer_or_a_percent_string() {
        let n: MinHealthy = serde_norway::from_str("3").unwrap();
        assert_eq!(n, MinHealthy::Count(3));
        let p: MinHealthy = serde_norway::from_str("\"25%\"").unwrap();
        assert_eq!(p, MinHealthy::Percent(25));
        assert!(serde_norway::from_str::<MinHealthy>("\"x%\"").is_err());
        assert_eq!(serde_norway::to_string(&p).unwrap().trim(), "25%");
    }
}

#[cfg(test)]
mod load_tests {
    use crate::config::{MinHealthy, Mode, load_str};
    use std::path::Path;

    fn load(value: &str) -> Result<Option<MinHealthy>, String> {
        let text = format!(
            "mode: overwatch\ndns: {{ zones: [gslb.test] }}\nregions: [{{ name: east, servers: [] }}]\n\
             domains:\n  - {{ name: a.gslb.test, regions: [east], min_healthy: {value} }}\n"
        );
        load_str(&text, Path::new("t.yaml"), Some(Mode::Overwatch))
            .map(|l| l.config.domains[0].min_healthy)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_loader_takes_counts_and_percentages_and_names_the_key_otherwise() {
        assert_eq!(load("2"), Ok(Some(MinHealthy::Count(2))));
        assert_eq!(load("\"50%\""), Ok(Some(MinHealthy::Percent(50))));
        for bad in ["\"half\"", "\"150%\"", "-1", "true"] {
            let e = load(bad).unwrap_err();
            assert!(e.contains("domains[0].min_healthy"), "{bad}: {e}");
            assert!(e.contains("t.yaml:5"), "{bad}: {e}");
        }
    }
}
