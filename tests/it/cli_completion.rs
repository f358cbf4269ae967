//! `opengslb-cli completion bash|zsh|fish`: bash completes partial command
//! lines as an operator types them (command words, subcommands, choices,
//! the flags of the command typed, flag values); fish does the same through
//! `complete -C`; zsh through a pseudo-terminal (zsh/zpty). Shells that are not installed are
//! skipped with a message (CI installs bash, zsh and fish).

use std::process::Command;

const CLI: &str = env!("CARGO_BIN_EXE_opengslb-cli");

fn have(tool: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    if !found {
        crate::util::skip("cli_completion", &format!("`{tool}` is not installed"));
    }
    found
}

fn script(shell: &str) -> String {
    let out = Command::new(CLI)
        .args(["completion", shell])
        .output()
        .expect("run opengslb-cli");
    assert!(out.status.success(), "completion {shell} failed");
    String::from_utf8(out.stdout).expect("utf-8")
}

/// What bash offers for `words` with the cursor on the last one, sorted.
fn bash_complete(script_file: &std::path::Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source '{}'; COMP_WORDS=({}); COMP_CWORD={}; _opengslb_cli; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script_file.display(),
        quoted.join(" "),
        words.len() - 1
    );
    let out = Command::new("bash")
        .args(["--noprofile", "--norc", "-c", &program])
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "bash: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut got: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    got.sort();
    got
}

fn temp_script(shell: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "opengslb-completion-{}-{shell}",
        std::process::id()
    ));
    std::fs::write(&path, script(shell)).expect("write script");
    path
}

#[test]
fn bash_completes_partial_command_lines() {
    if !have("bash") {
        return;
    }
    let file = temp_script("bash");
    let cases: &[(&[&str], &[&str])] = &[
        (&["opengslb-cli", "ag"], &["agent", "agents"]),
        (
            &["opengslb-cli", "agents", ""],
            &["forget", "list", "revoke", "show"],
        ),
        (
            &["opengslb-cli", "--api", "http://ow:9090", "over"],
            &["overrides"],
        ),
        (&["opengslb-cli", "--json", "overrides", "s"], &["set"]),
        (&["opengslb-cli", "servers", "--st"], &["--status"]),
        (&["opengslb-cli", "servers", "--status", "d"], &["draining"]),
        (
            &[
                "opengslb-cli",
                "overrides",
                "set",
                "app",
                "10.0.0.1:80",
                "--he",
            ],
            &["--healthy", "--help"],
        ),
        (
            &["opengslb-cli", "overrides", "set", "app", "--healthy", ""],
            &["false", "true"],
        ),
        (&["opengslb-cli", "status", "--se"], &[]),
        (&["opengslb-cli", "drain", ""], &["off", "on"]),
        (&["opengslb-cli", "completion", "z"], &["zsh"]),
        (
            &["opengslb-cli", "agents", "revoke", "web-1", "--r"],
            &["--reason"],
        ),
        (&["opengslb-cli", "healthz", "x"], &[]),
    ];
    let mut failures = Vec::new();
    for (words, want) in cases {
        let got = bash_complete(&file, words);
        if got != *want {
            failures.push(format!("{words:?}: got {got:?}, want {want:?}"));
        }
    }
    let _ = std::fs::remove_file(&file);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn fish_completes_partial_command_lines() {
    if !have("fish") {
        return;
    }
    let file = temp_script("fish");
    let complete = |line: &str| -> Vec<String> {
        let program = format!("source '{}'; complete -C '{line}'", file.display());
        let out = Command::new("fish")
            .args(["--no-config", "-c", &program])
            .output()
            .expect("run fish");
        assert!(
            out.status.success(),
            "fish: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut got: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split('\t').next().unwrap_or("").to_string())
            .collect();
        got.sort();
        got
    };
    assert_eq!(
        complete("opengslb-cli agents "),
        ["forget", "list", "revoke", "show"]
    );
    assert_eq!(complete("opengslb-cli drain o"), ["off", "on"]);
    assert_eq!(complete("opengslb-cli servers --status d"), ["draining"]);
    assert!(complete("opengslb-cli servers --").contains(&"--region".to_string()));
    assert!(!complete("opengslb-cli status --").contains(&"--region".to_string()));
    let _ = std::fs::remove_file(&file);
}

/// What zsh's completion shows after `line` and a TAB, read from a zsh
/// under zsh/zpty until `until` (a glob) appears; `None` if it never does
/// within 30 s (the outer `timeout` ends the run).
fn zsh_complete(script_file: &std::path::Path, line: &str, until: &str) -> Option<String> {
    let driver = format!(
        r#"zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z 'PS1=""; autoload -U compinit; compinit -u -D; source {script}'
zpty -w -n z $'{line}\t'
zpty -r z out '{until}'
print -r -- "$out"
zpty -d z
"#,
        script = script_file.display(),
    );
    let out = Command::new("timeout")
        .args(["30", "zsh", "-f", "-c", &driver])
        .output()
        .expect("run zsh");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn zsh_completes_partial_command_lines() {
    if !have("zsh") || !have("timeout") {
        return;
    }
    let file = temp_script("zsh");
    let check = Command::new("zsh")
        .arg("-n")
        .arg(&file)
        .output()
        .expect("run zsh");
    assert!(
        check.status.success(),
        "zsh -n: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    // Several matches: zsh lists them with their help.
    let listed = zsh_complete(&file, "opengslb-cli agents ", "*show*-- show one agent*");
    let listed = listed.expect("zsh never listed the agents subcommands");
    for word in ["forget", "list", "revoke"] {
        assert!(listed.contains(&format!("{word} ")), "{word} in {listed:?}");
    }
    // One match: zsh inserts it.
    let inserted = zsh_complete(&file, "opengslb-cli servers --sta", "*--status*");
    assert!(inserted.is_some(), "zsh did not complete --status");
    let _ = std::fs::remove_file(&file);
}

#[test]
fn unknown_shell_is_a_usage_error() {
    let out = Command::new(CLI)
        .args(["completion", "tcsh"])
        .output()
        .expect("run opengslb-cli");
    assert_eq!(out.status.code(), Some(opengslb::exit::USAGE));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bash, zsh or fish"));
}
