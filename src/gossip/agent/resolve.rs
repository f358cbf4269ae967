//! Name resolution for `agent.gossip.overwatch_nodes`, off the gossip
//! client's poll loop.
//!
//! The system resolver blocks, for seconds when a DNS server is slow or
//! gone. Done inside the loop, one slow lookup stalled heartbeats to every
//! node (issue 9, bug 4). So the loop only posts a request to the thread
//! `gossip-resolve` and carries on; the answer comes back on a channel and
//! the loop's `Waker` makes it look. `host:port` strings that are already
//! socket addresses never reach the thread. The lookup function is
//! injectable so tests can make it hang.

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

/// The loop's end of the resolver thread.
pub struct Resolver {
    requests: Sender<(usize, String)>,
    answers: Receiver<Answer>,
}

impl Resolver {
    /// Starts thread `gossip-resolve`. It ends when the `Resolver` is
    /// dropped and its current lookup (if any) returns; nobody joins it,
    /// so a lookup that hangs cannot hold up a stop.
    pub fn start(resolve: ResolveFn, waker: Arc<Waker>) -> io::Result<Resolver> {
        let (req_tx, req_rx) = crossbeam_channel::unbounded::<(usize, String)>();
        let (ans_tx, ans_rx) = crossbeam_channel::unbounded();
        std::thread::Builder::new()
            .name("gossip-resolve".into())
            .spawn(move || {
                for (node, name) in req_rx {
                    let result = match resolve(&name) {
                        Ok(addrs) => addrs
                            .into_iter()
                            .next()
                            .ok_or_else(|| format!("resolving {name}: no address")),
                        Err(e) => Err(format!("resolving {name}: {e}")),
                    };
                    if ans_tx.send(Answer { node, result }).is_err() {
                        return;
                    }
                    let _ = waker.wake();
                }
            })?;
        Ok(Resolver {
            requests: req_tx,
            answers: ans_rx,
        })
    }

    /// Asks for `name` (of node `node`); the answer arrives later through
    /// `answers`. A literal `ip:port` is answered at once, without a
    /// lookup.
    pub fn request(&self, node: usize, name: &str) -> Option<Answer> {
        if let Ok(addr) = name.parse::<SocketAddr>() {
            return Some(Answer {
                node,
                result: Ok(addr),
            });
        }
        let _ = self.requests.send((node, name.to_string()));
        None
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
        let r = Resolver::start(resolve, waker).expect("start");
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
}
