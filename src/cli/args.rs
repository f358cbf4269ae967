//! Command-line parsing against the tables in `spec`: global flags before
//! or after the command words, `--flag=value` and `--flag value`, `-c FILE`,
//! and `--` to end flags. Pure: arguments in, an `Invocation` or a usage
//! error out.

use super::spec::{self, CommandSpec};
use std::collections::BTreeMap;

/// What to run.
#[derive(Debug)]
pub enum Parsed {
    Help,
    Version,
    Run(Invocation),
}

#[derive(Debug)]
pub struct Invocation {
    pub command: &'static CommandSpec,
    /// Positional arguments after the command words.
    pub args: Vec<String>,
    /// Long flag name → value (`"true"` for switches).
    pub flags: BTreeMap<&'static str, String>,
}

impl Invocation {
    pub fn flag(&self, long: &str) -> Option<&str> {
        self.flags.get(long).map(String::as_str)
    }

    pub fn switch(&self, long: &str) -> bool {
        self.flags.contains_key(long)
    }

    pub fn arg(&self, index: usize) -> Option<&str> {
        self.args.get(index).map(String::as_str)
    }
}

/// Parses the arguments after the program name.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Parsed, String> {
    let mut words: Vec<String> = Vec::new();
    let mut flags: BTreeMap<&'static str, String> = BTreeMap::new();
    let mut iter = args.into_iter();
    let mut only_words = false;
    while let Some(arg) = iter.next() {
        if only_words || arg == "-" || !arg.starts_with('-') {
            words.push(arg);
            continue;
        }
        if arg == "--" {
            only_words = true;
            continue;
        }
        let (flag, inline) = if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let flag = spec::find_flag(name)
                .ok_or_else(|| format!("unknown flag --{name} (see --help)"))?;
            (flag, inline)
        } else {
            let mut chars = arg.chars().skip(1);
            let (Some(c), None) = (chars.next(), chars.next()) else {
                return Err(format!("unknown flag {arg} (see --help)"));
            };
            let flag =
                spec::find_short(c).ok_or_else(|| format!("unknown flag {arg} (see --help)"))?;
            (flag, None)
        };
        let value = match (flag.value, inline) {
            (None, None) => "true".to_string(),
            // `--json=object` / `--json=array`: the shape of list output.
            (None, Some(v)) if flag.long == "json" && (v == "object" || v == "array") => v,
            (None, Some(_)) if flag.long == "json" => {
                return Err("--json takes no value, or =object or =array".into());
            }
            (None, Some(_)) => return Err(format!("--{} takes no value", flag.long)),
            (Some(_), Some(v)) => v,
            (Some(metavar), None) => iter
                .next()
                .ok_or_else(|| format!("--{} needs a value ({metavar})", flag.long))?,
        };
        if flags.insert(flag.long, value).is_some() {
            return Err(format!("--{} given twice", flag.long));
        }
    }
    if flags.contains_key("help") || words.first().map(String::as_str) == Some("help") {
        return Ok(Parsed::Help);
    }
    if flags.contains_key("version") {
        return Ok(Parsed::Version);
    }
    if words.is_empty() {
        return Err("no command given (see --help)".into());
    }
    let (command, used) = match_command(&words)?;
    let args: Vec<String> = words.split_off(used);
    check(command, &args, &flags)?;
    Ok(Parsed::Run(Invocation {
        command,
        args,
        flags,
    }))
}

/// The command whose name (or alias) is the longest prefix of the words.
fn match_command(words: &[String]) -> Result<(&'static CommandSpec, usize), String> {
    let mut best: Option<(&'static CommandSpec, usize)> = None;
    for c in spec::COMMANDS {
        for name in std::iter::once(&c.name).chain(c.aliases) {
            let parts: Vec<&str> = name.split(' ').collect();
            let matches =
                parts.len() <= words.len() && parts.iter().zip(words).all(|(p, w)| p == w);
            if matches && best.is_none_or(|(_, n)| parts.len() > n) {
                best = Some((c, parts.len()));
            }
        }
    }
    // `agents frob` is a wrong subcommand, not `agents` with an argument.
    let via_short_alias = |(c, n): &(&CommandSpec, usize)| {
        c.name.split(' ').count() > *n && words.len() > *n && c.args.is_empty()
    };
    best.filter(|b| !via_short_alias(b)).ok_or_else(|| {
        let first = words.first().map(String::as_str).unwrap_or("");
        let subs: Vec<&str> = spec::COMMANDS
            .iter()
            .filter_map(|c| c.name.strip_prefix(first).and_then(|r| r.strip_prefix(' ')))
            .collect();
        if subs.is_empty() {
            format!("unknown command {:?} (see --help)", words.join(" "))
        } else {
            format!(
                "unknown command {:?}: expected {first} {}",
                words.join(" "),
                subs.join("|")
            )
        }
    })
}

fn check(
    command: &CommandSpec,
    args: &[String],
    flags: &BTreeMap<&'static str, String>,
) -> Result<(), String> {
    for long in flags.keys() {
        if !spec::is_global(long) && !command.flags.contains(long) {
            return Err(format!("--{long} does not apply to {}", command.name));
        }
    }
    for long in command.required {
        if !flags.contains_key(long) {
            return Err(format!("{} needs --{long}", command.name));
        }
    }
    let needed = command.args.iter().filter(|a| !a.ends_with('?')).count();
    if args.len() < needed || args.len() > command.args.len() {
        let usage: Vec<&str> = command
            .args
            .iter()
            .map(|a| a.trim_end_matches('?'))
            .collect();
        return Err(if args.len() < needed {
            format!("{} needs {}", command.name, usage.join(" "))
        } else {
            format!(
                "{}: unexpected argument {:?}",
                command.name,
                args.get(command.args.len())
                    .map(String::as_str)
                    .unwrap_or("")
            )
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Invocation, String> {
        match parse(args.iter().map(|s| s.to_string()))? {
            Parsed::Run(inv) => Ok(inv),
            other => Err(format!("{other:?}")),
        }
    }

    #[test]
    fn global_flags_before_or_after_and_both_value_forms() {
        let a = run(&["--api", "http://x:1", "servers", "--json", "--status=stale"]).expect("ok");
        assert_eq!(a.command.name, "servers list");
        assert_eq!(a.flag("api"), Some("http://x:1"));
        assert_eq!(a.flag("status"), Some("stale"));
        assert!(a.switch("json"));
        let b = run(&["servers", "list", "--api=http://y:2", "--service", "app"]).expect("ok");
        assert_eq!(b.command.name, "servers list");
        assert_eq!(b.flag("api"), Some("http://y:2"));
        assert_eq!(b.flag("service"), Some("app"));
    }

    #[test]
    fn subcommands_and_arguments() {
        let a = run(&["agents", "forget", "web-1"]).expect("ok");
        assert_eq!((a.command.name, a.arg(0)), ("agents forget", Some("web-1")));
        let a = run(&[
            "overrides",
            "set",
            "app",
            "[::1]:80",
            "--healthy=false",
            "--reason",
            "maint",
            "--expires",
            "1h",
        ])
        .expect("ok");
        assert_eq!(a.command.name, "overrides set");
        assert_eq!(a.args, vec!["app", "[::1]:80"]);
        assert_eq!(a.flag("healthy"), Some("false"));
        let a = run(&["servers", "--json=object"]).expect("ok");
        assert_eq!(a.flag("json"), Some("object"));
        assert!(run(&["servers", "--json=yaml"]).is_err());
        let a = run(&["config", "validate", "-c", "/etc/x.yaml"]).expect("ok");
        assert_eq!(a.flag("config"), Some("/etc/x.yaml"));
        assert_eq!(run(&["agents"]).expect("ok").command.name, "agents list");
        assert_eq!(run(&["domains"]).expect("ok").args.len(), 0);
        assert_eq!(
            run(&["domains", "app.example.com"]).expect("ok").args.len(),
            1
        );
    }

    #[test]
    fn usage_errors() {
        for (args, want) in [
            (&["servers", "--bogus"][..], "unknown flag --bogus"),
            (&["servers", "--service"][..], "needs a value"),
            (&["agents", "revoke", "x"][..], "needs --reason"),
            (&["agents", "forget"][..], "needs ID"),
            (&["agents", "forget", "a", "b"][..], "unexpected argument"),
            (&["agents", "frob"][..], "expected agents"),
            (&["frob"][..], "unknown command"),
            (&["status", "--reason", "x"][..], "does not apply"),
            (&["--json=yes", "status"][..], "takes no value"),
            (&[][..], "no command"),
            (&["status", "--json", "--json"][..], "twice"),
        ] {
            let err = run(args).expect_err(want);
            assert!(err.contains(want), "{args:?}: {err}");
        }
    }

    #[test]
    fn help_and_version() {
        assert!(matches!(parse(["--help".to_string()]), Ok(Parsed::Help)));
        assert!(matches!(
            parse(["status".to_string(), "-h".to_string()]),
            Ok(Parsed::Help)
        ));
        assert!(matches!(parse(["-V".to_string()]), Ok(Parsed::Version)));
        // v1.1's spelling.
        assert!(matches!(parse(["-v".to_string()]), Ok(Parsed::Version)));
    }
}
