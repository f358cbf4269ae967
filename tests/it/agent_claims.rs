//! Two real agents claiming one backend (issue 11 item 5, SPEC §4): any
//! fresh drain drains it, a claimant that stops withdraws only its own
//! claim (the backend stays in DNS on the other's, also after the stopped
//! one is removed), and it leaves DNS at once with the last claim.

use crate::util::ops::{KEY, Overwatch, OwOptions, agent};
use crate::util::*;
use std::time::Duration;

#[test]
fn a_backend_two_agents_claim_stays_while_one_claims_it() {
    let dir = TempDir::new("ag-claims");
    let ow = Overwatch::start(
        &dir,
        "ow1",
        &OwOptions {
            remove_after: "2s",
            ..OwOptions::default()
        },
    );
    let web = HttpBackend::start("127.0.0.62");
    let ip = web.addr.ip().to_string();
    let mut a = agent(&dir, "claim-a", web.addr, &[&ow.gossip], KEY, "app-token");
    let mut b = agent(&dir, "claim-b", web.addr, &[&ow.gossip], KEY, "app-token");
    wait_for("both agents active", Duration::from_secs(15), || {
        (ow.agent("claim-a")["status"] == "active" && ow.agent("claim-b")["status"] == "active")
            .then_some(())
    });
    ow.wait_in_dns(&ip, true, Duration::from_secs(15));

    // Either claimant's drain drains the backend.
    std::fs::write(&a.drain_file, "patching\n").unwrap();
    ow.wait_in_dns(&ip, false, Duration::from_secs(10));
    assert_eq!(ow.backend(&ip)["effective_status"], "draining");
    assert_eq!(ow.backend(&ip)["agent_id"], "claim-a");
    std::fs::remove_file(&a.drain_file).unwrap();
    ow.wait_in_dns(&ip, true, Duration::from_secs(10));

    // One claimant stops gracefully: the other's claim keeps it in DNS.
    a.daemon.signal(libc::SIGTERM);
    assert_eq!(a.daemon.wait_exit(Duration::from_secs(5)), Some(0));
    wait_for("claim-a left", Duration::from_secs(10), || {
        (ow.agent("claim-a")["status"] == "left").then_some(())
    });
    // claim-b's own checks decide now. Waited for, not read once: on a
    // loaded machine one of its probes can fail and its rise threshold
    // must pass again; the old bug (draining for good) never gets here.
    wait_for(
        "healthy on claim-b's claim",
        Duration::from_secs(15),
        || {
            let backend = ow.backend(&ip);
            (backend["effective_status"] == "healthy" && backend["agent_id"] == "claim-b")
                .then_some(())
        },
    );
    ow.wait_in_dns(&ip, true, Duration::from_secs(10));

    // And after the stopped one is removed (remove_after 2 s).
    wait_for("claim-a removed", Duration::from_secs(15), || {
        ow.agent("claim-a")["id"].is_null().then_some(())
    });
    assert_eq!(ow.agent("claim-b")["status"], "active");
    wait_for(
        "still healthy after claim-a is removed",
        Duration::from_secs(15),
        || (ow.backend(&ip)["effective_status"] == "healthy").then_some(()),
    );
    ow.wait_in_dns(&ip, true, Duration::from_secs(10));

    // The last claimant stops: out of DNS at once (left, never stale).
    b.daemon.signal(libc::SIGTERM);
    assert_eq!(b.daemon.wait_exit(Duration::from_secs(5)), Some(0));
    ow.wait_in_dns(&ip, false, Duration::from_secs(10));
    assert_eq!(ow.agent("claim-b")["status"], "left");
}
