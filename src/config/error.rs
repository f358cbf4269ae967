//! Configuration errors: each one carries its file, line and key so the
//! operator can go straight to it; `ConfigErrors` holds all of them.

use std::fmt;
use std::path::PathBuf;

/// One problem in a configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    /// The concrete key path, e.g. `regions[1].servers[0].port`.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in one load, in file and line order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, err) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{err}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_forms() {
        let errs = ConfigErrors(vec![
            ConfigError {
                file: "overwatch.yaml".into(),
                line: Some(12),
                key: Some("dns.listen_adress".into()),
                message: "unknown key (did you mean \"listen_address\"?)".into(),
            },
            ConfigError {
                file: "x.yaml".into(),
                line: None,
                key: None,
                message: "cannot read".into(),
            },
        ]);
        assert_eq!(
            errs.to_string(),
            "overwatch.yaml:12: dns.listen_adress: unknown key (did you mean \"listen_address\"?)\nx.yaml: cannot read"
        );
    }
}
