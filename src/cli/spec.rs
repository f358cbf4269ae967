//! The one definition of every `opengslb-cli` command and flag. The parser,
//! `--help` and the man-page consistency test all read these tables, so a
//! flag cannot exist without being documented, nor be documented without
//! existing.

use crate::exit;

/// A `--long` flag.
#[derive(Debug)]
pub struct Flag {
    pub long: &'static str,
    pub short: Option<char>,
    /// The value's name in help (`URL`, `FILE`); `None` for a switch.
    pub value: Option<&'static str>,
    pub help: &'static str,
}

/// A command (one or two words) with its positional arguments and flags.
#[derive(Debug)]
pub struct CommandSpec {
    pub name: &'static str,
    /// Shorter spellings that mean the same command (`servers` for
    /// `servers list`).
    pub aliases: &'static [&'static str],
    /// Positional argument names, in order; `?` marks optional ones.
    pub args: &'static [&'static str],
    /// Long names of the command's own flags.
    pub flags: &'static [&'static str],
    /// Flags the command cannot run without.
    pub required: &'static [&'static str],
    pub help: &'static str,
}

const fn flag(long: &'static str, value: Option<&'static str>, help: &'static str) -> Flag {
    Flag {
        long,
        short: None,
        value,
        help,
    }
}

/// Flags every command accepts, before or after the command words.
pub const GLOBAL_FLAGS: &[Flag] = &[
    flag(
        "api",
        Some("URL"),
        "Overwatch API base URL (default $OPENGSLB_API, else http://localhost:9090)",
    ),
    flag(
        "token",
        Some("TOKEN"),
        "bearer token for writes (default $OPENGSLB_TOKEN)",
    ),
    flag(
        "json",
        None,
        "print JSON instead of a table; servers and agents print a bare array (the v1.1 shape), --json=object the API's object",
    ),
    flag(
        "timeout",
        Some("SECONDS"),
        "give up on a request after this long (default 10; 500ms, 10s, 1m also work)",
    ),
    flag(
        "agent",
        Some("URL"),
        "agent local API base URL for drain and agent status (default http://127.0.0.1:9100)",
    ),
    Flag {
        long: "help",
        short: Some('h'),
        value: None,
        help: "print this help and exit",
    },
    Flag {
        long: "version",
        short: Some('V'),
        value: None,
        help: "print the version and exit (-v works too, as in v1.1)",
    },
];

/// Flags that belong to particular commands.
pub const COMMAND_FLAGS: &[Flag] = &[
    flag(
        "service",
        Some("S"),
        "servers list: only backends of this service; create/update: the domain the server answers for",
    ),
    flag(
        "region",
        Some("R"),
        "servers list: only backends in this region; create/update: the server's region",
    ),
    flag("weight", Some("N"), "the server's weight (default 100)"),
    flag("name", Some("NAME"), "the server's display name (v1.1)"),
    flag(
        "status",
        Some("ST"),
        "only backends with this status: healthy, unhealthy, draining, stale",
    ),
    flag(
        "cluster",
        None,
        "ask every Overwatch of the cluster (GET /api/v1/cluster/status) and show one STATUS column per node",
    ),
    flag("reason", Some("TEXT"), "why (recorded in the audit log)"),
    flag(
        "comment",
        Some("TEXT"),
        "geo mappings set: a note kept with the mapping",
    ),
    flag(
        "healthy",
        Some("true|false"),
        "the health the override forces",
    ),
    flag(
        "expires",
        Some("DURATION"),
        "lift the override after this long, e.g. 30m, 1h",
    ),
    Flag {
        long: "config",
        short: Some('c'),
        value: Some("FILE"),
        help: "the configuration file to check (dnssec: to find data_dir)",
    },
    flag(
        "algorithm",
        Some("ALG"),
        "DNSSEC algorithm of a new key: ECDSAP256SHA256 (default) or ED25519",
    ),
    flag(
        "step",
        None,
        "dnssec rollover: take the next step of a rollover in progress (refused before it is due)",
    ),
    flag(
        "now",
        None,
        "dnssec rollover --step: take the step before it is due (skips the wait for resolver caches)",
    ),
    flag(
        "wait",
        Some("SECONDS"),
        "dnssec rollover: wait before the next step (default: dns.soa.ttl + 3600 after publishing, 172800 after activating)",
    ),
    flag(
        "key-file",
        Some("FILE"),
        "DNSSEC key file (default: data_dir/dnssec/ZONE.key, data_dir from --config, else /var/lib/opengslb)",
    ),
];

pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "servers list",
        aliases: &["servers"],
        args: &[],
        flags: &["service", "region", "status", "cluster"],
        required: &[],
        help: "list backends with their effective status (STATUS column: healthy, unhealthy, draining, stale)",
    },
    CommandSpec {
        name: "servers create",
        aliases: &[],
        args: &["ADDRESS:PORT"],
        flags: &["region", "service", "weight", "name"],
        required: &["region"],
        help: "add a server through the API (persisted, in DNS at once; a server of the file with the same ADDRESS:PORT wins)",
    },
    CommandSpec {
        name: "servers update",
        aliases: &[],
        args: &["ADDRESS:PORT"],
        flags: &["region", "service", "weight", "name"],
        required: &[],
        help: "change a server added through the API",
    },
    CommandSpec {
        name: "servers delete",
        aliases: &[],
        args: &["ADDRESS:PORT"],
        flags: &[],
        required: &[],
        help: "remove a server added through the API",
    },
    CommandSpec {
        name: "cluster status",
        aliases: &["cluster"],
        args: &[],
        flags: &[],
        required: &[],
        help: "show this Overwatch's peers: connected or unreachable, last contact, round trip, in sync",
    },
    CommandSpec {
        name: "status",
        aliases: &[],
        args: &[],
        flags: &[],
        required: &[],
        help: "show registry statistics",
    },
    CommandSpec {
        name: "latency",
        aliases: &[],
        args: &[],
        flags: &[],
        required: &[],
        help: "list the learned-latency table: per client prefix the regions, fastest first (first 1000 prefixes)",
    },
    CommandSpec {
        name: "agents list",
        aliases: &["agents"],
        args: &[],
        flags: &[],
        required: &[],
        help: "list agents with status, address, certificate expiry and last error",
    },
    CommandSpec {
        name: "agents show",
        aliases: &[],
        args: &["ID"],
        flags: &[],
        required: &[],
        help: "show one agent",
    },
    CommandSpec {
        name: "agents forget",
        aliases: &[],
        args: &["ID"],
        flags: &[],
        required: &[],
        help: "forget an agent's certificate pin (and its lost entry) so it can register with a new certificate",
    },
    CommandSpec {
        name: "agents revoke",
        aliases: &[],
        args: &["ID"],
        flags: &["reason"],
        required: &["reason"],
        help: "revoke an agent: its messages are rejected from now on",
    },
    CommandSpec {
        name: "overrides list",
        aliases: &["overrides"],
        args: &[],
        flags: &[],
        required: &[],
        help: "list operator overrides",
    },
    CommandSpec {
        name: "overrides set",
        aliases: &[],
        args: &["SERVICE", "ADDRESS:PORT"],
        flags: &["healthy", "reason", "expires"],
        required: &["healthy", "reason"],
        help: "force a backend healthy or unhealthy, optionally for a limited time (a bare ADDRESS works when it has one port)",
    },
    CommandSpec {
        name: "overrides clear",
        aliases: &[],
        args: &["SERVICE", "ADDRESS:PORT"],
        flags: &[],
        required: &[],
        help: "remove an override",
    },
    CommandSpec {
        name: "geo mappings list",
        aliases: &["geo mappings"],
        args: &[],
        flags: &[],
        required: &[],
        help: "list geolocation mappings of the file and of the API (SOURCE config|api)",
    },
    CommandSpec {
        name: "geo mappings set",
        aliases: &[],
        args: &["CIDR", "REGION"],
        flags: &["comment"],
        required: &[],
        help: "add or replace an API geolocation mapping: clients in CIDR go to REGION",
    },
    CommandSpec {
        name: "geo mappings delete",
        aliases: &[],
        args: &["CIDR"],
        flags: &[],
        required: &[],
        help: "delete an API geolocation mapping",
    },
    CommandSpec {
        name: "geo test",
        aliases: &[],
        args: &["IP"],
        flags: &[],
        required: &[],
        help: "show the region geolocation gives a client address, and why",
    },
    CommandSpec {
        name: "domains",
        aliases: &[],
        args: &["NAME?"],
        flags: &[],
        required: &[],
        help: "list configured names with algorithm, TTL and current answers",
    },
    CommandSpec {
        name: "healthz",
        aliases: &[],
        args: &[],
        flags: &[],
        required: &[],
        help: "show overall health (ok or degraded) and lost agents",
    },
    CommandSpec {
        name: "validate",
        aliases: &[],
        args: &[],
        flags: &[],
        required: &[],
        help: "ask the Overwatch to run validation checks now",
    },
    CommandSpec {
        name: "drain",
        aliases: &[],
        args: &["on|off"],
        flags: &["reason"],
        required: &[],
        help: "start or stop draining the local agent's backends (agent API)",
    },
    CommandSpec {
        name: "agent status",
        aliases: &[],
        args: &[],
        flags: &[],
        required: &[],
        help: "show the local agent's status (agent API)",
    },
    CommandSpec {
        name: "config validate",
        aliases: &[],
        args: &[],
        flags: &["config"],
        required: &["config"],
        help: "check a configuration file and report every problem",
    },
    CommandSpec {
        name: "config migrate",
        aliases: &[],
        args: &["FILE"],
        flags: &[],
        required: &[],
        help: "print a v1.1 configuration file with the changes this version needs (marked by comments) and a generated agent token per domain",
    },
    CommandSpec {
        name: "completion",
        aliases: &[],
        args: &["bash|zsh|fish"],
        flags: &[],
        required: &[],
        help: "print the shell completion script for bash, zsh or fish",
    },
    CommandSpec {
        name: "gen-key",
        aliases: &[],
        args: &[],
        flags: &[],
        required: &[],
        help: "print a new random 32-byte gossip encryption key in base64",
    },
    CommandSpec {
        name: "dnssec keygen",
        aliases: &[],
        args: &["ZONE"],
        flags: &["algorithm", "key-file", "config"],
        required: &[],
        help: "write a new DNSSEC combined signing key for ZONE (mode 0600; never overwrites)",
    },
    CommandSpec {
        name: "dnssec ds",
        aliases: &[],
        args: &["ZONE"],
        flags: &["key-file", "config"],
        required: &[],
        help: "print the DS record (SHA-256) of ZONE's key for the parent zone",
    },
    CommandSpec {
        name: "dnssec rollover",
        aliases: &[],
        args: &["ZONE"],
        flags: &["step", "now", "wait", "key-file", "config"],
        required: &[],
        help: "roll ZONE's key: start (new key published), or --step: the new key signs, then the old key is removed; shows the phase and when the next step is due",
    },
    CommandSpec {
        name: "dnssec status",
        aliases: &[],
        args: &[],
        flags: &[],
        required: &[],
        help: "show the signed zones (algorithm, key tag, DS) and the signature cache figures",
    },
];

/// Every command name, for the man-page consistency test.
pub fn command_names() -> Vec<&'static str> {
    COMMANDS.iter().map(|c| c.name).collect()
}

/// Every flag's long name, global and per command.
pub fn flag_names() -> Vec<&'static str> {
    GLOBAL_FLAGS
        .iter()
        .chain(COMMAND_FLAGS)
        .map(|f| f.long)
        .collect()
}

pub fn find_flag(long: &str) -> Option<&'static Flag> {
    GLOBAL_FLAGS
        .iter()
        .chain(COMMAND_FLAGS)
        .find(|f| f.long == long)
}

pub fn find_short(short: char) -> Option<&'static Flag> {
    // v1.1 printed its version with -v; no flag of ours uses -v.
    let short = if short == 'v' { 'V' } else { short };
    GLOBAL_FLAGS
        .iter()
        .chain(COMMAND_FLAGS)
        .find(|f| f.short == Some(short))
}

pub fn is_global(long: &str) -> bool {
    GLOBAL_FLAGS.iter().any(|f| f.long == long)
}

fn flag_label(f: &Flag) -> String {
    let mut s = match f.short {
        Some(c) => format!("-{c}, --{}", f.long),
        None => format!("    --{}", f.long),
    };
    if let Some(v) = f.value {
        s.push(' ');
        s.push_str(v);
    }
    s
}

fn command_usage(c: &CommandSpec) -> String {
    // `servers [list]` when the bare first word is an alias.
    let mut s = match c.name.split_once(' ') {
        Some((first, rest)) if c.aliases.contains(&first) => format!("{first} [{rest}]"),
        _ => c.name.to_string(),
    };
    for a in c.args {
        match a.strip_suffix('?') {
            Some(opt) => s.push_str(&format!(" [{opt}]")),
            None => s.push_str(&format!(" {a}")),
        }
    }
    for long in c.flags {
        let value = find_flag(long).and_then(|f| f.value).unwrap_or("");
        let text = if value.is_empty() {
            format!("--{long}")
        } else {
            format!("--{long} {value}")
        };
        if c.required.contains(long) {
            s.push_str(&format!(" {text}"));
        } else {
            s.push_str(&format!(" [{text}]"));
        }
    }
    s
}

/// The `--help` text.
pub fn help() -> String {
    let mut out = format!(
        "opengslb-cli {}\nThe OpenGSLB operator's command line, a client of the Overwatch HTTP API.\n\n\
         USAGE:\n    opengslb-cli [--api URL] [--token TOKEN] [--json] [--timeout SECONDS] COMMAND [ARGS]\n\nCOMMANDS:\n",
        crate::VERSION
    );
    for c in COMMANDS {
        out.push_str(&format!(
            "    {}\n            {}\n",
            command_usage(c),
            c.help
        ));
    }
    out.push_str("\nGLOBAL FLAGS (before or after the command; --flag=value or --flag value):\n");
    for f in GLOBAL_FLAGS {
        out.push_str(&format!("    {:<26} {}\n", flag_label(f), f.help));
    }
    out.push_str("\nCOMMAND FLAGS:\n");
    for f in COMMAND_FLAGS {
        out.push_str(&format!("    {:<26} {}\n", flag_label(f), f.help));
    }
    out.push_str("\nEXIT STATUS:\n");
    for (code, meaning) in exit::TABLE {
        out.push_str(&format!("    {code}  {meaning}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_flag_is_defined_once() {
        let names = flag_names();
        for (i, n) in names.iter().enumerate() {
            assert!(!names[i + 1..].contains(n), "--{n} defined twice");
        }
        for c in COMMANDS {
            for f in c.flags.iter().chain(c.required) {
                assert!(
                    COMMAND_FLAGS.iter().any(|x| x.long == *f),
                    "{}: unknown flag {f}",
                    c.name
                );
            }
        }
    }

    #[test]
    fn help_mentions_everything() {
        let h = help().replace(['[', ']'], "");
        for c in command_names() {
            assert!(h.contains(c), "{c}");
        }
        for f in flag_names() {
            assert!(h.contains(&format!("--{f}")), "{f}");
        }
    }
}
