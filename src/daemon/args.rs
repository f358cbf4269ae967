//! Command-line flags of `opengslb`: the one place that defines them, and
//! the source of `--help` and of the man-page consistency test.

use crate::config::Mode;
use std::path::PathBuf;

/// (flag, value name, help). `--help` and the man test read this table.
pub const FLAGS: &[(&str, &str, &str)] = &[
    (
        "--config",
        "FILE",
        "configuration file (default /etc/opengslb/config.yaml)",
    ),
    (
        "--mode",
        "MODE",
        "overwatch or agent; overrides `mode:` in the file",
    ),
    ("--check", "", "validate the configuration and exit"),
    ("--version", "", "print the version and exit"),
    ("--help", "", "print this help and exit"),
];

pub const DEFAULT_CONFIG: &str = "/etc/opengslb/config.yaml";

#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    Run(Args),
    Check(Args),
    Version,
    Help,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Args {
    pub config: PathBuf,
    pub mode: Option<Mode>,
}

/// Parses flags; `--flag value` and `--flag=value` both work.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Action, String> {
    let mut config = None;
    let mut mode = None;
    let mut check = false;
    let mut iter = args.into_iter();
    while let Some(arg) = iter.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |flag: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| iter.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match name.as_str() {
            "--config" | "-c" => config = Some(PathBuf::from(value("--config")?)),
            "--mode" => {
                mode = Some(match value("--mode")?.as_str() {
                    "overwatch" => Mode::Overwatch,
                    "agent" => Mode::Agent,
                    other => {
                        return Err(format!("--mode must be overwatch or agent, not {other:?}"));
                    }
                })
            }
            "--check" => check = true,
            "--version" | "-V" => return Ok(Action::Version),
            "--help" | "-h" => return Ok(Action::Help),
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    let args = Args {
        config: config.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG)),
        mode,
    };
    Ok(if check {
        Action::Check(args)
    } else {
        Action::Run(args)
    })
}

pub fn help() -> String {
    let mut s = String::from(
        "opengslb - global server load balancer daemon (Overwatch or agent)\n\n\
         usage: opengslb [--config FILE] [--mode overwatch|agent] [--check]\n\n\
         flags:\n",
    );
    for (flag, value, text) in FLAGS {
        let left = if value.is_empty() {
            flag.to_string()
        } else {
            format!("{flag} {value}")
        };
        s.push_str(&format!("  {left:<18} {text}\n"));
    }
    s.push_str("\nexit status:\n");
    for (code, text) in crate::exit::TABLE {
        s.push_str(&format!("  {code}  {text}\n"));
    }
    s.push_str("\nsignals: SIGHUP reloads the configuration; SIGTERM and SIGINT stop cleanly.\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(a: &[&str]) -> Result<Action, String> {
        parse(a.iter().map(|s| s.to_string()))
    }

    #[test]
    fn both_flag_forms() {
        let want = Action::Check(Args {
            config: "x.yaml".into(),
            mode: Some(Mode::Agent),
        });
        assert_eq!(
            p(&["--config", "x.yaml", "--mode", "agent", "--check"]).unwrap(),
            want
        );
        assert_eq!(
            p(&["--config=x.yaml", "--mode=agent", "--check"]).unwrap(),
            want
        );
    }

    #[test]
    fn errors() {
        assert!(p(&["--config"]).unwrap_err().contains("needs a value"));
        assert!(
            p(&["--mode", "x"])
                .unwrap_err()
                .contains("overwatch or agent")
        );
        assert!(p(&["--bogus"]).unwrap_err().contains("unknown argument"));
    }

    #[test]
    fn default_config_path() {
        assert_eq!(
            p(&[]).unwrap(),
            Action::Run(Args {
                config: DEFAULT_CONFIG.into(),
                mode: None
            })
        );
    }
}
