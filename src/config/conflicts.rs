//! Start-time failures `--check` must catch: two listeners of one mode on
//! the same address and port (the daemon would exit at bind), and an
//! Overwatch that will refuse every agent (no `overwatch.agent_tokens`).
//!
//! The common v1.1 case gets its own message: v1.1 had no API listener on
//! 9090, so its files put `metrics.address: ":9090"` (Overwatch) or
//! `":9100"` (agent) where our API and agent API listen by default. When
//! the file has no `api:` (or `agent.api:`) section the operator never
//! chose that port, so the message names the exact lines to add.

use super::listen::Listener;
use super::schema::{Config, Mode};
use std::net::SocketAddr;

/// Which sections the operator wrote (the defaults of absent ones are the
/// usual cause of a collision).
#[derive(Clone, Copy, Debug, Default)]
pub struct Written {
    pub api: bool,
    pub agent_api: bool,
}

/// The listeners that run in `mode`, with their parsed addresses
/// (unparsable ones are left out: the validator reports them).
fn listeners(cfg: &Config, mode: Mode) -> Vec<(Listener, String, SocketAddr)> {
    let mut out: Vec<(Listener, &str)> = Vec::new();
    match mode {
        Mode::Overwatch => {
            out.push((Listener::Dns, &cfg.dns.listen_address));
            out.push((Listener::Gossip, &cfg.overwatch.gossip.bind_address));
            if cfg.api.enabled {
                out.push((Listener::Api, &cfg.api.address));
            }
        }
        Mode::Agent => {
            if let Some(a) = cfg.agent.as_ref().filter(|a| a.api.enabled) {
                out.push((Listener::AgentApi, &a.api.address));
            }
        }
    }
    if cfg.metrics.enabled
        && let Some(m) = cfg.metrics.address.as_deref()
    {
        out.push((Listener::Metrics, m));
    }
    out.into_iter()
        .filter_map(|(l, text)| Some((l, text.to_string(), l.parse(text).ok()?)))
        .collect()
}

/// Whether binding `a` and `b` (TCP; DNS and gossip add UDP on the same
/// port) would fail. `[::]` is dual-stack, so it also takes IPv4.
fn overlap(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() == 0 || a.port() != b.port() {
        return false;
    }
    let (x, y) = (a.ip(), b.ip());
    x == y
        || (x.is_unspecified() && (x.is_ipv6() || y.is_ipv4()))
        || (y.is_unspecified() && (y.is_ipv6() || x.is_ipv4()))
}

/// (key path, message) errors for listeners that would collide.
pub fn listener_conflicts(cfg: &Config, mode: Mode, written: Written) -> Vec<(String, String)> {
    let all = listeners(cfg, mode);
    let mut errors = Vec::new();
    for (i, (la, ta, a)) in all.iter().enumerate() {
        for (lb, tb, b) in &all[i + 1..] {
            if !overlap(*a, *b) {
                continue;
            }
            let fix = match (la, lb) {
                (Listener::Api, Listener::Metrics) if !written.api => format!(
                    " The API listens on {ta} by default (v1.1 had no API there) and also serves /metrics. Fix: add `api: {{address: \"127.0.0.1:{}\"}}` to the file (or use `metrics.address: \":9091\"`).",
                    a.port() + 2
                ),
                (Listener::AgentApi, Listener::Metrics) if !written.agent_api => format!(
                    " The agent's local API listens on {ta} by default (v1.1 had none) and also serves /metrics. Fix: add `api: {{address: \"127.0.0.1:{}\"}}` under `agent:` (or use `metrics.address: \":9101\"`).",
                    a.port() + 2
                ),
                _ => " Give one of them another port.".to_string(),
            };
            errors.push((
                lb.key().to_string(),
                format!(
                    "{tb:?} takes the same port as {} ({ta:?}); the daemon would fail to start.{fix}",
                    la.key()
                ),
            ));
        }
    }
    errors
}

/// Warnings about agents that will be refused: v1.1 never checked
/// tokens, so a migrated file without `overwatch.agent_tokens` makes every
/// agent fail with `token_invalid`. (Tokens keyed by names that are not
/// domains are warned about by the validator, per key.)
pub fn agent_token_warnings(cfg: &Config, mode: Mode) -> Vec<(String, String)> {
    if mode != Mode::Overwatch || !cfg.overwatch.agent_tokens.is_empty() {
        return Vec::new();
    }
    vec![(
        "overwatch".into(),
        "no overwatch.agent_tokens: any agent that reports to this Overwatch will be refused (token_invalid); OpenGSLB 1.x did not check tokens. Add one token per service (domain name) and give it to that service's agents; `opengslb-cli config migrate FILE` prints the file with a generated token per domain".into(),
    )]
}

/// The user the shipped systemd units run the daemon as (`User=`).
pub const SERVICE_USER: &str = "opengslb";

/// Whether a user (`uid`, `gid`) may read a file with this owner and
/// mode, by the permission bits (root reads everything).
pub fn readable_by(mode: u32, owner: (u32, u32), uid: u32, gid: u32) -> bool {
    uid == 0
        || (owner.0 == uid && mode & 0o400 != 0)
        || (owner.0 != uid && owner.1 == gid && mode & 0o040 != 0)
        || (owner.0 != uid && owner.1 != gid && mode & 0o004 != 0)
}

/// `--check` run as root reads every file, but the daemon runs as
/// `opengslb` (systemd `User=`) and exits at start when it cannot read a
/// file or search its folder. When that user exists, one warning per file
/// it cannot reach, with the fix.
pub fn service_user_warnings(files: &[std::path::PathBuf]) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let Some((uid, gid)) = lookup_user(SERVICE_USER) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for file in files {
        let Ok(meta) = std::fs::metadata(file) else {
            continue;
        };
        let folder_ok = file
            .parent()
            .and_then(|d| {
                std::fs::metadata(if d.as_os_str().is_empty() {
                    std::path::Path::new(".")
                } else {
                    d
                })
                .ok()
            })
            .is_none_or(|d| {
                let m = d.mode();
                let owner = (d.uid(), d.gid());
                uid == 0
                    || (owner.0 == uid && m & 0o100 != 0)
                    || (owner.0 != uid && owner.1 == gid && m & 0o010 != 0)
                    || (owner.0 != uid && owner.1 != gid && m & 0o001 != 0)
            });
        if !readable_by(meta.mode(), (meta.uid(), meta.gid()), uid, gid) {
            out.push(format!(
                "{}: user {SERVICE_USER} (the systemd units' User=) cannot read this file, so the daemon would fail at start; fix: chgrp {SERVICE_USER} {0} && chmod 640 {0}",
                file.display()
            ));
        } else if !folder_ok {
            out.push(format!(
                "{}: user {SERVICE_USER} (the systemd units' User=) cannot enter this file's folder, so the daemon would fail at start; fix: chgrp {SERVICE_USER} on the folder and chmod g+x it",
                file.display()
            ));
        }
    }
    out
}

/// (uid, gid) of a user from /etc/passwd.
fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|line| {
        let mut f = line.split(':');
        if f.next()? != name {
            return None;
        }
        let _password = f.next()?;
        Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable_by_bits() {
        // root:root 600, as an operator often leaves it.
        assert!(!readable_by(0o600, (0, 0), 990, 990));
        assert!(readable_by(0o600, (0, 0), 0, 0));
        // root:opengslb 640, the fix.
        assert!(readable_by(0o640, (0, 990), 990, 990));
        // opengslb-owned 600.
        assert!(readable_by(0o600, (990, 990), 990, 990));
        // Owner without read, even if the group could.
        assert!(!readable_by(0o040, (990, 990), 990, 990));
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn overlaps() {
        assert!(overlap(sa("127.0.0.1:9090"), sa("[::]:9090")));
        assert!(overlap(sa("0.0.0.0:9090"), sa("127.0.0.1:9090")));
        assert!(overlap(sa("10.0.0.1:53"), sa("10.0.0.1:53")));
        assert!(!overlap(sa("127.0.0.1:9090"), sa("127.0.0.2:9090")));
        assert!(!overlap(sa("0.0.0.0:9090"), sa("[::1]:9090")));
        assert!(!overlap(sa("127.0.0.1:0"), sa("127.0.0.1:0")));
        assert!(!overlap(sa("127.0.0.1:9090"), sa("127.0.0.1:9091")));
    }

    #[test]
    fn v11_metrics_on_the_api_port() {
        let mut cfg = Config::default();
        cfg.metrics.enabled = true;
        cfg.metrics.address = Some(":9090".into());
        let errs = listener_conflicts(&cfg, Mode::Overwatch, Written::default());
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].0, "metrics.address");
        assert!(
            errs[0].1.contains("`api: {address: \"127.0.0.1:9092\"}`"),
            "{}",
            errs[0].1
        );
        // Written by the operator: a plain message.
        let errs = listener_conflicts(
            &cfg,
            Mode::Overwatch,
            Written {
                api: true,
                agent_api: false,
            },
        );
        assert!(
            errs[0].1.ends_with("Give one of them another port."),
            "{}",
            errs[0].1
        );
        cfg.metrics.enabled = false;
        assert!(listener_conflicts(&cfg, Mode::Overwatch, Written::default()).is_empty());
    }
}
