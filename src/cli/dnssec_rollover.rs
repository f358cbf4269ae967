//! `opengslb-cli dnssec rollover ZONE [--step [--now]] [--wait SECONDS]`:
//! the key rollover of docs/dnssec.md, one step per call, on a timer the
//! operator can follow (dns::dnssec::rollover has the steps and why).
//!
//! Without `--step` it starts a rollover (a new key in `<key file>.next`,
//! the state in `<key file>.roll`), or shows the one in progress. With
//! `--step` it takes the next step if it is due, or with `--now` anyway.
//! The files are local, like `keygen`: the operator copies them to every
//! Overwatch of the zone and sends SIGHUP, which loads the new phase.

use super::args::Invocation;
use super::client::CliError;
use super::dnssec::{dnskey_ttl, key_path, now_secs, write_new_key, zone_arg};
use crate::dns::dnssec::rollover::{DEFAULT_DS_WAIT, Phase, RollState};
use crate::dns::dnssec::{KeyFile, SigningKey};
use crate::dns::keystore::{self, next_key_path, retired_key_path, roll_path};
use serde_json::json;
use std::path::Path;

fn key_of(path: &Path, zone: &str) -> Result<SigningKey, CliError> {
    let kf = keystore::read_key_file(path).map_err(CliError::Config)?;
    if kf.zone != zone {
        return Err(CliError::Config(format!(
            "{} holds the key of zone {}, not {zone}",
            path.display(),
            kf.zone
        )));
    }
    kf.signing_key().map_err(CliError::Config)
}

/// Replaces `path` with `text` through a temporary file and a rename.
fn write_state(path: &Path, text: &str) -> Result<(), CliError> {
    let tmp = path.with_extension("roll.tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| CliError::Failure(format!("cannot write {}: {e}", path.display())))
}

fn ds_of(key: &SigningKey, zone: &str) -> Result<String, CliError> {
    key.ds_text(zone)
        .map_err(|e| CliError::Failure(e.to_string()))
}

pub fn rollover(inv: &Invocation, json_out: bool) -> Result<String, CliError> {
    let zone = zone_arg(inv)?;
    let path = key_path(inv, &zone)?;
    let wait = match inv.flag("wait") {
        Some(w) => Some(w.parse::<u64>().map_err(|_| {
            CliError::Usage(format!(
                "dnssec rollover: --wait {w:?} is not a number of seconds"
            ))
        })?),
        None => None,
    };
    let (step, force) = (inv.switch("step"), inv.switch("now"));
    if force && !step {
        return Err(CliError::Usage(
            "dnssec rollover: --now goes with --step".into(),
        ));
    }
    let old = key_of(&path, &zone)?;
    let state_file = roll_path(&path);
    let next_file = next_key_path(&path);
    let state = match std::fs::read_to_string(&state_file) {
        Ok(text) => Some(
            RollState::parse(&text)
                .map_err(|e| CliError::Config(format!("{}: {e}", state_file.display())))?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(CliError::Config(format!(
                "cannot read {}: {e}",
                state_file.display()
            )));
        }
    };
    let now = now_secs();
    let copy = format!(
        "copy {} and {} (mode 0600) to every Overwatch of the zone, then send them SIGHUP",
        path.display(),
        next_file.display()
    );
    let (phase, due, text) = match (state, step) {
        (None, false) => {
            let kf = KeyFile::generate(&zone, old.algorithm(), now).map_err(CliError::Failure)?;
            let new = kf.signing_key().map_err(CliError::Failure)?;
            write_new_key(&next_file, &kf.to_text())?;
            // The DNSKEY TTL (dns.soa.ttl) plus an hour, unless --wait.
            let publish_wait = match wait {
                Some(w) => w,
                None => dnskey_ttl(inv)?.saturating_add(3600),
            };
            let st = RollState::start(now, publish_wait);
            write_state(&state_file, &st.to_text())?;
            let text = format!(
                "rollover of {zone} started: new key {} (key tag {}) published beside key tag {}, which still signs.\n\
                 {copy} ({}).\n\
                 next step (dnssec rollover {zone} --step) due at {} (Unix seconds, in {} s): {}\n",
                next_file.display(),
                new.key_tag(),
                old.key_tag(),
                state_file.display(),
                st.next_step,
                st.next_step.saturating_sub(now),
                st.phase.next_step()
            );
            (Some(st.phase), Some(st.next_step), text)
        }
        (None, true) => {
            return Err(CliError::Failure(format!(
                "no rollover of {zone} in progress (no {}); start one with: opengslb-cli dnssec rollover {zone}",
                state_file.display()
            )));
        }
        (Some(st), false) => {
            let text = format!(
                "rollover of {zone} in progress: phase {} since {}; next step due at {} (in {} s): {}\n",
                st.phase.name(),
                st.since,
                st.next_step,
                st.next_step.saturating_sub(now),
                st.phase.next_step()
            );
            (Some(st.phase), Some(st.next_step), text)
        }
        (Some(st), true) => {
            let new = key_of(&next_file, &zone)?;
            let next = st
                .step(now, force, wait.unwrap_or(DEFAULT_DS_WAIT))
                .map_err(CliError::Failure)?;
            match next {
                Some(next) => {
                    write_state(&state_file, &next.to_text())?;
                    let text = format!(
                        "{zone}: key tag {} now signs (key tag {} stays published and signs the DNSKEY RRset).\n\
                         {copy} ({}).\n\
                         replace the DS at the parent with:\n{}\n\
                         next step (--step) due at {} (in {} s): {}\n",
                        new.key_tag(),
                        old.key_tag(),
                        state_file.display(),
                        ds_of(&new, &zone)?,
                        next.next_step,
                        next.next_step.saturating_sub(now),
                        next.phase.next_step()
                    );
                    (Some(Phase::Active), Some(next.next_step), text)
                }
                None => {
                    let retired = retired_key_path(&path);
                    std::fs::rename(&path, &retired)
                        .and_then(|()| std::fs::rename(&next_file, &path))
                        .and_then(|()| std::fs::remove_file(&state_file))
                        .map_err(|e| CliError::Failure(format!("cannot finish: {e}")))?;
                    let text = format!(
                        "{zone}: rollover done; {} is now key tag {}; key tag {} is removed from the DNSKEY RRset (kept in {}).\n\
                         copy {} (mode 0600) to every Overwatch of the zone, delete its .next and .roll there, then send SIGHUP.\n\
                         the parent must publish only:\n{}\n",
                        path.display(),
                        new.key_tag(),
                        old.key_tag(),
                        retired.display(),
                        path.display(),
                        ds_of(&new, &zone)?
                    );
                    (None, None, text)
                }
            }
        }
    };
    Ok(if json_out {
        super::commands::pretty(&json!({
            "zone": zone,
            "phase": phase.map(Phase::name),
            "next_step_at": due,
            "message": text,
        }))
    } else {
        text
    })
}
