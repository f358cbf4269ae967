//! DNS cookies shared across the Overwatches of one cluster (RFC 9018 §1,
//! issue 12): a server cookie minted by one node with `overwatch.peers` is
//! accepted by another node holding the same gossip key (echoed, as a
//! valid young cookie is), while a standalone node answers it with a fresh
//! cookie of its own. The peers need not be reachable: the secret comes
//! from the shared key, not from a protocol.

use crate::util::ops::*;
use crate::util::*;
use std::net::SocketAddr;
use std::process::Command;

/// The COOKIE `dig` printed for a query to `server` sending `cookie`
/// (`None`: a fresh client cookie).
fn cookie_from(server: SocketAddr, cookie: Option<&str>) -> String {
    let arg = cookie.map_or("+cookie".to_string(), |c| format!("+cookie={c}"));
    let out = Command::new("dig")
        .args([
            arg.as_str(),
            "+time=2",
            "+tries=2",
            &format!("@{}", server.ip()),
            "-p",
            &server.port().to_string(),
            SERVICE,
            "A",
        ])
        .output()
        .expect("run dig");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.trim_start_matches(';').trim().strip_prefix("COOKIE: "))
        .map(|c| c.split_whitespace().next().unwrap_or("").to_lowercase())
        .unwrap_or_else(|| panic!("no COOKIE in dig's output:\n{text}"))
}

#[test]
fn a_cookie_from_one_peer_is_accepted_by_another() {
    if Command::new("dig").arg("-v").output().is_err() {
        return skip("dns_cookie_peers", "dig is not installed");
    }
    let dir = TempDir::new("cookie-peers");
    // Peers listed (unreachable here) and the same gossip key (KEY).
    let peered = OwOptions {
        overwatch_extra: "  peers: [\"127.0.0.1:9\"]\n",
        ..OwOptions::default()
    };
    let a = Overwatch::start(&dir, "ow-cookie-a", &peered);
    let b = Overwatch::start(&dir, "ow-cookie-b", &peered);
    let alone = Overwatch::start(&dir, "ow-cookie-alone", &OwOptions::default());
    let from_a = cookie_from(a.dns, None);
    // 8 bytes of client cookie, then a 16-byte RFC 9018 server cookie.
    assert_eq!(from_a.len(), 48, "{from_a}");
    assert_eq!(
        cookie_from(b.dns, Some(&from_a)),
        from_a,
        "node B echoes node A's cookie: it is valid there"
    );
    assert_eq!(cookie_from(a.dns, Some(&from_a)), from_a);
    let from_alone = cookie_from(alone.dns, Some(&from_a));
    assert_ne!(from_alone, from_a, "a standalone node mints its own");
    assert_eq!(&from_alone[..16], &from_a[..16], "same client cookie");
}
