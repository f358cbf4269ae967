//! man/opengslb-cli.1 against the one table of commands and flags in
//! `opengslb::cli::spec` and the exit codes in `opengslb::exit`: a command
//! or flag cannot be added, renamed or removed without the man page
//! following, and the man page cannot document one that does not exist.

use std::collections::BTreeSet;

fn man() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/man/opengslb-cli.1");
    std::fs::read_to_string(path).expect("read man/opengslb-cli.1")
}

/// The text with roff escapes removed: `\fB`, `\fR`, `\fI`, `\-`, `\e`.
fn plain(text: &str) -> String {
    text.replace("\\fB", "")
        .replace("\\fR", "")
        .replace("\\fI", "")
        .replace("\\fP", "")
        .replace("\\-", "-")
        .replace("\\e", "\\")
}

/// The lines of one `.SH` section.
fn section(man: &str, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in man.lines() {
        if let Some(title) = line.strip_prefix(".SH ") {
            inside = title.trim_matches('"') == name;
            continue;
        }
        if inside {
            out.push(line.to_string());
        }
    }
    assert!(!out.is_empty(), "man page has no {name} section");
    out
}

/// Tag lines (the line after each `.TP`) of a section.
fn tags(lines: &[String]) -> Vec<String> {
    lines
        .windows(2)
        .filter(|w| w[0].trim() == ".TP")
        .map(|w| plain(&w[1]))
        .collect()
}

fn long_flags(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("--") {
        let name: String = text[i + 2..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

#[test]
fn has_every_section() {
    let m = man();
    for s in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "OPTIONS",
        "COMMANDS",
        "EXIT STATUS",
        "ENVIRONMENT",
        "EXAMPLES",
        "SEE ALSO",
    ] {
        section(&m, s);
    }
}

#[test]
fn commands_match_the_spec() {
    let m = man();
    let documented: Vec<String> = tags(&section(&m, "COMMANDS"))
        .iter()
        .map(|t| t.replace(['[', ']'], ""))
        .collect();
    for name in opengslb::cli::command_names() {
        assert!(
            documented
                .iter()
                .any(|d| d == name || d.starts_with(&format!("{name} "))),
            "command {name:?} is not documented under COMMANDS in man/opengslb-cli.1"
        );
    }
    for d in &documented {
        let known = opengslb::cli::spec::COMMANDS.iter().any(|c| {
            std::iter::once(&c.name)
                .chain(c.aliases)
                .any(|n| d == n || d.starts_with(&format!("{n} ")))
        });
        assert!(
            known,
            "man/opengslb-cli.1 documents {d:?}, which opengslb-cli does not have"
        );
    }
}

#[test]
fn flags_match_the_spec() {
    let m = man();
    let spec: BTreeSet<String> = opengslb::cli::flag_names()
        .into_iter()
        .map(String::from)
        .collect();
    let options: BTreeSet<String> = tags(&section(&m, "OPTIONS"))
        .iter()
        .flat_map(|t| long_flags(t))
        .collect();
    assert_eq!(
        options, spec,
        "OPTIONS in man/opengslb-cli.1 differ from the flag table"
    );
    let everywhere = long_flags(&plain(&m));
    let unknown: Vec<&String> = everywhere.difference(&spec).collect();
    assert!(
        unknown.is_empty(),
        "man/opengslb-cli.1 mentions unknown flags {unknown:?}"
    );
    let option_tags = tags(&section(&m, "OPTIONS"));
    for f in opengslb::cli::spec::GLOBAL_FLAGS
        .iter()
        .chain(opengslb::cli::spec::COMMAND_FLAGS)
    {
        if let Some(c) = f.short {
            let (short, long) = (format!("-{c}"), format!("--{}", f.long));
            let together = option_tags.iter().any(|t| {
                let words: Vec<&str> = t
                    .split(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '-'))
                    .collect();
                words.contains(&short.as_str()) && words.contains(&long.as_str())
            });
            assert!(
                together,
                "{short} is not documented with {long} under OPTIONS"
            );
        }
    }
}

#[test]
fn exit_codes_match_the_table() {
    let m = man();
    let documented: BTreeSet<i32> = tags(&section(&m, "EXIT STATUS"))
        .iter()
        .filter_map(|t| t.trim_start_matches(".B ").trim().parse().ok())
        .collect();
    let table: BTreeSet<i32> = opengslb::exit::TABLE.iter().map(|(c, _)| *c).collect();
    assert_eq!(documented, table);
}

#[test]
fn environment_is_documented() {
    let env = section(&man(), "ENVIRONMENT").join("\n");
    for var in ["OPENGSLB_API", "OPENGSLB_TOKEN"] {
        assert!(env.contains(var), "{var} missing from ENVIRONMENT");
    }
}
