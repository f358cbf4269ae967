//! Replays every file of every fuzz corpus (fuzz/corpus/<target>/) through
//! the same entry points the fuzzer runs (fuzz/harness.rs, included by
//! path), so `cargo test` checks the minimized corpora and the crash
//! reproducers kept there on a stable toolchain, without libFuzzer.
//! Below them, one regression test per bug the fuzzer found.

#[path = "../../fuzz/harness.rs"]
mod harness;

use opengslb::config::{self, Mode};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(ROOT).join("fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            (name, fs::read(&p).expect("readable corpus file"))
        })
        .collect()
}

/// Runs one target's corpus; returns the accepted count of each file.
fn replay(target: &str) -> Vec<(String, usize)> {
    let files = corpus(target);
    assert!(
        files.len() >= 5,
        "{target}: only {} corpus files",
        files.len()
    );
    files
        .into_iter()
        .map(|(name, data)| {
            let n = harness::run(target, &data).expect("known target");
            (name, n)
        })
        .collect()
}

fn accepted(results: &[(String, usize)], name: &str) -> usize {
    results
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("seed {name} missing"))
        .1
}

#[test]
fn every_target_has_a_corpus_dir_and_a_binary() {
    for target in harness::TARGETS {
        assert!(
            Path::new(ROOT).join("fuzz/corpus").join(target).is_dir(),
            "{target}"
        );
        let bin = Path::new(ROOT).join(format!("fuzz/fuzz_targets/{target}.rs"));
        let text = fs::read_to_string(&bin).unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        assert!(
            text.contains(&format!("harness::{target}(data)")),
            "{target}"
        );
    }
    assert_eq!(harness::run("no_such_target", b""), None);
}

/// The API under clients that stop anywhere (fuzz/slow_api.rs): every
/// seed's bytes reach the server and every pause is answered, including
/// while the source holds all its writer slots and more writes are
/// refused with their bodies unread.
#[test]
fn api_slow_corpus() {
    let r = replay("api_slow");
    assert_eq!(
        accepted(&r, "held_writes_then_refused"),
        8,
        "6 writes sent, 2 pauses answered"
    );
    assert_eq!(accepted(&r, "expect_continue_reads"), 7);
    assert_eq!(accepted(&r, "forged_length"), 7);
    assert_eq!(accepted(&r, "complete_write"), 2);
}

#[test]
fn dns_query_corpus() {
    let r = replay("dns_query");
    assert_eq!(accepted(&r, "a_app"), 2, "UDP and TCP answer a plain query");
}

#[test]
fn dns_ecs_geo_corpus() {
    let r = replay("dns_ecs_geo");
    for seed in [
        "ecs_v4_mapped",
        "ecs_v6_aaaa",
        "ecs_source_zero_any",
        "ecs_bits_beyond_prefix",
        "ecs_learned_default",
    ] {
        assert_eq!(accepted(&r, seed), 3, "{seed}");
    }
}

#[test]
fn dns_edns_options_corpus() {
    let r = replay("dns_edns_options");
    // Good and bad options alike are answered, with OPT, over UDP and TCP
    // against both tables (rate limiting may drop some UDP answers).
    for seed in [
        "ecs_v4",
        "ecs_bits_beyond_prefix",
        "cookie_client",
        "truncated_option",
    ] {
        assert!(accepted(&r, seed) >= 3, "{seed}");
    }
}

#[test]
fn gossip_frame_raw_corpus() {
    let r = replay("gossip_frame_raw");
    // A sealed Hello gets a Challenge from the Overwatch, alone and as the
    // first of two TCP frames.
    assert!(accepted(&r, "hello_sealed") >= 1);
    assert!(accepted(&r, "tcp_two_frames") >= 1);
    assert_eq!(accepted(&r, "wrong_key"), 0);
    assert_eq!(accepted(&r, "bad_magic"), 0);
}

#[test]
fn gossip_frame_decrypted_corpus() {
    let r = replay("gossip_frame_decrypted");
    for seed in [
        "hello",
        "challenge",
        "register",
        "register_rotation",
        "registered",
        "rejected",
        "state",
        "heartbeat",
        "ack",
        "leave",
        "reregister",
    ] {
        assert_eq!(accepted(&r, seed), 1, "{seed} decodes");
    }
    assert_eq!(accepted(&r, "hello_register_state"), 5);
}

#[test]
fn config_yaml_corpus() {
    let r = replay("config_yaml");
    // The shipped overwatch file loads in its own mode and by default.
    assert_eq!(accepted(&r, "overwatch"), 2);
    assert_eq!(accepted(&r, "bad_yaml"), 0);
    // `mode: agent` without an agent section loads only as --mode overwatch.
    assert_eq!(accepted(&r, "agent_no_section"), 1);
}

#[test]
fn api_body_corpus() {
    let r = replay("api_body");
    // route + its command + SetOverride + ClearOverride + Forget + Validate
    assert_eq!(accepted(&r, "set_override_text"), 6);
    // route + its command + Revoke + ClearOverride + Forget + Validate
    assert_eq!(accepted(&r, "revoke"), 6);
    // ClearOverride, Forget and Validate take no body.
    assert_eq!(accepted(&r, "wrong_method"), 3);
}

#[test]
fn peer_sync_corpus() {
    let r = replay("peer_sync");
    // The message, then each entry merged.
    assert_eq!(accepted(&r, "push_two"), 3);
    // Decoded; the entry a century ahead is refused (clock skew).
    assert_eq!(accepted(&r, "push_future"), 1);
    assert_eq!(accepted(&r, "push_unknown_kind"), 0);
    // Managed region, server, domain (naming a missing region) and a
    // domain tombstone: all merged; the domain is refused when applied.
    assert_eq!(accepted(&r, "push_managed"), 5);
    assert_eq!(accepted(&r, "ack"), 1);
    assert_eq!(accepted(&r, "digest"), 1);
    assert_eq!(accepted(&r, "digest_oversize"), 0);
}

#[test]
fn plaintext_split_round_trips() {
    let parts = vec![b"one".to_vec(), Vec::new(), vec![7; 300]];
    let joined = harness::join_plaintexts(&parts);
    let split: Vec<Vec<u8>> = harness::split_plaintexts(&joined)
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect();
    assert_eq!(split, parts);
    // A length past the end takes what is left.
    assert_eq!(
        harness::split_plaintexts(&[0, 9, 1, 2]),
        vec![&[1u8, 2][..]]
    );
}

/// `load_str` is `load` without the read: same config, same warnings
/// (but for the file name), same errors.
#[test]
fn load_str_matches_load() {
    let dir = std::env::temp_dir().join(format!("opengslb-fuzz-load-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("temp dir");
    for (rel, mode) in [
        ("etc/opengslb/overwatch.yaml", None),
        ("etc/opengslb/agent.yaml", Some(Mode::Agent)),
        ("tests/fixtures/v11-overwatch.yaml", None),
    ] {
        let text = fs::read_to_string(Path::new(ROOT).join(rel)).expect("shipped file");
        let path = dir.join("main.yaml");
        fs::write(&path, &text).expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        let from_file = config::load(&path, mode).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let from_str =
            config::load_str(&text, &path, mode).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(
            format!("{:?}", from_str.config),
            format!("{:?}", from_file.config)
        );
        assert_eq!(from_str.mode, from_file.mode);
        assert_eq!(from_str.warnings, from_file.warnings);
        assert_eq!(from_str.files, from_file.files);
    }
    let bad = "dns:\n  listen_address: [1\n";
    let e = config::load_str(bad, Path::new("/x/bad.yaml"), None).unwrap_err();
    assert!(e.to_string().contains("/x/bad.yaml:"), "{e}");
    assert!(e.to_string().contains("invalid YAML"), "{e}");
    let _ = fs::remove_dir_all(&dir);
}

/// The first gossip_frame_decrypted run stopped on this input: a message
/// claiming time 2^64 - 1 set the harness's clock there and the agent's
/// `now + backoff` overflowed. No real clock gets there, so the harness
/// now ignores such claims (the message then fails the time window); the
/// input stays in the corpus and must keep passing.
#[test]
fn harness_clock_at_u64_max() {
    let path = Path::new(ROOT).join("fuzz/corpus/gossip_frame_decrypted/harness_clock_at_u64_max");
    let data = fs::read(&path).expect("reproducer kept in the corpus");
    assert_eq!(harness::gossip_frame_decrypted(&data), 0);
}

#[test]
fn latency_report_corpus() {
    let r = replay("latency_report");
    for seed in ["one_v4", "v4_and_v6", "empty"] {
        assert!(accepted(&r, seed) >= 1, "{seed}");
    }
    for seed in ["too_many", "host_bits", "bad_family"] {
        assert_eq!(accepted(&r, seed), 0, "{seed}");
    }
}
