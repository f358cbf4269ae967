//! Name resolution for `agent.gossip.overwatch_nodes`, off the gossip
//! client's poll loop.
//!
//! The system resolver blocks, for seconds when a DNS server is slow or
//! gone. Done inside the loop, one slow lookup stalled heartbeats to every
//! node (issue 9, bug 4). So each lookup runs on a short-lived thread
//! `gossip-resolve` of its own (at most one per node at a time, which the
//! loop ensures), and the loop carries on; the answer comes back on a
//! channel and the loop's `Waker` makes it look. One thread per lookup, not
//! one for all, so a name that hangs does not hold up the lookup of another
//! node's name either. `host:port` strings that are already socket
//! addresses are answered at once. The lookup function is injectable so
//! tests can make it hang.

use crossbeam_channel::{Receiver, Sender};
use mio::Waker;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

/// Turns `host:port` into addresses (the first one is used).
pub type ResolveFn = Arc<dyn Fn(&str) -> io::Result<Vec<SocketAddr>> + Send + Sync>;

/// The system resolver (`getaddrinfo`).
pub fn system() -> ResolveFn {
    Arc::new(|name: &str| name.to_socket_addrs().map(Iterator::collect))
}

/// What came back for node `node`: its first address, or why not.
#[derive(Debug)]
pub struct Answer {
    pub node: usize,
    pub result: Result<SocketAddr, String>,
}

/// The loop's end of the lookup threads.
pub struct Resolver {
    resolve: ResolveFn,
    waker: Arc<Waker>,
    answers_tx: Sender<Answer>,
    answers: Receiver<Answer>,
}

impl Resolver {
    pub fn new(resolve: ResolveFn, waker: Arc<Waker>) -> Resolver {
        let (answers_tx, answers) = crossbeam_channel::unbounded();
        Resolver {
            resolve,
            waker,
            answers_tx,
            answers,
        }
    }

    /// Asks for `name` (of node `node`); the answer arrives later through
    /// `answers`. A literal `ip:port` is answered at once, without a
    /// lookup. A lookup thread that hangs ends when its lookup returns;
    /// nobody joins it, so it cannot hold up a stop.
    pub fn request(&self, node: usize, name: &str) -> Option<Answer> {
        if let Ok(addr) = name.parse::<SocketAddr>() {
            return Some(Answer {
                node,
                result: Ok(addr),
            });
        }
        let (resolve, waker, tx) = (
            Arc::clone(&self.resolve),
            Arc::clone(&self.waker),
            self.answers_tx.clone(),
        );
        let name = name.to_string();
        let spawned = std::thread::Builder::new()
            .name("gossip-resolve".into())
            .spawn(move || {
                let result = match resolve(&name) {
                    Ok(addrs) => addrs
                        .into_iter()
                        .next()
                        .ok_or_else(|| format!("resolving {name}: no address")),
                    Err(e) => Err(format!("resolving {name}: {e}")),
                };
                // The loop may be gone by now; then nobody wants the answer.
                if tx.send(Answer { node, result }).is_ok() {
                    let _ = waker.wake();
                }
            });
        match spawned {
            Ok(_) => None,
            Err(e) => Some(Answer {
                node,
                result: Err(format!("cannot start a lookup thread: {e}")),
            }),
        }
    }

    /// Answers that arrived since the last call.
    pub fn answers(&self) -> impl Iterator<Item = Answer> + '_ {
        self.answers.try_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll, Token};
    use std::time::Duration;

    #[test]
    fn literals_skip_the_thread_and_names_come_back_through_the_waker() {
        let mut poll = Poll::new().expect("poll");
        let waker = Arc::new(Waker::new(poll.registry(), Token(7)).expect("waker"));
        let resolve: ResolveFn = Arc::new(|name: &str| {
            assert_ne!(name, "10.0.0.1:7946", "a literal reached the resolver");
            Ok(vec![SocketAddr::from(([192, 0, 2, 1], 7946))])
        });
        let r = Resolver::new(resolve, waker);
        let lit = r.request(0, "10.0.0.1:7946").expect("answered at once");
        assert_eq!(lit.result, Ok(SocketAddr::from(([10, 0, 0, 1], 7946))));
        assert!(r.request(1, "ow.example:7946").is_none());
        let mut events = Events::with_capacity(4);
        let mut got = Vec::new();
        while got.is_empty() {
            poll.poll(&mut events, Some(Duration::from_secs(5)))
                .expect("poll");
            assert!(
                events.iter().any(|e| e.token() == Token(7)),
                "woken by the resolver"
            );
            got.extend(r.answers());
        }
        assert_eq!(got[0].node, 1);
        assert_eq!(got[0].result, Ok(SocketAddr::from(([192, 0, 2, 1], 7946))));
    }

    #[test]
    fn a_lookup_that_hangs_does_not_hold_up_another_name() {
        let mut poll = Poll::new().expect("poll");
        let waker = Arc::new(Waker::new(poll.registry(), Token(1)).expect("waker"));
        let (gate_tx, gate_rx) = crossbeam_channel::bounded::<()>(0);
        let resolve: ResolveFn = Arc::new(move |name: &str| {
            if name.starts_with("slow") {
                let _ = gate_rx.recv(); // until the test ends
                return Err(io::Error::other("gave up"));
            }
            Ok(vec![SocketAddr::from(([192, 0, 2, 2], 7946))])
        });
        let r = Resolver::new(resolve, waker);
        assert!(r.request(0, "slow.example:7946").is_none());
        assert!(r.request(1, "fast.example:7946").is_none());
        let mut events = Events::with_capacity(4);
        let mut got = Vec::new();
        while got.is_empty() {
            poll.poll(&mut events, Some(Duration::from_secs(5)))
                .expect("poll");
            assert!(!events.is_empty(), "no answer for the fast name");
            got.extend(r.answers());
        }
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].node, 1,
            "the fast name answered while the slow one hangs"
        );
        drop(gate_tx);
    }
}
