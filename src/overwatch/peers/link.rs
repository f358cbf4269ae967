//! The `peers` thread: moves replicated operator state between Overwatch
//! nodes. DNS and the registry never wait for it.
//!
//! - Peer packets reach it from the gossip loop unopened (their header
//!   says `PEER_SESSION`); it opens them with the gossip keyring, checks
//!   that (source IP, sender's gossip port) is listed in `overwatch.peers`,
//!   merges pushed entries into the shared `Replica` and hands the ones
//!   that won to the registry thread (`applied`), which changes the
//!   registry like an operator command and writes the audit entry.
//! - A local operator write arrives from the registry (`local`) already
//!   stamped; it is pushed at once to every peer and retransmitted every
//!   `RETRANSMIT` until acknowledged (at most `MAX_TRIES`; anti-entropy
//!   repairs whatever is still missing after that).
//! - On first contact and every `peer_sync.interval` it sends its digest;
//!   a peer whose digest differs gets everything this node holds, and
//!   answers with its own so the exchange is symmetric.
//!
//! - A SIGHUP hands it the new `overwatch.peers` / `peer_sync`
//!   (`LinkReload`): kept peers keep their state, new ones get a digest
//!   at once, removed ones are dropped and refused from then on.
//!
//! Sends go out of a UDP socket of its own; answers come back to the
//! gossip port, like every peer packet.

use super::lww::{Entry, Merged, Refusal, Replica};
use super::msg::{self, PEER_SESSION, PeerMsg, PeerRefusal};
use super::status::{ClusterStatus, PeerCounters, PeerStatus};
use crate::clock::{Mono, Now};
use crate::gossip::Policy;
use crate::snapshot::SnapshotCell;
use crossbeam_channel::{Receiver, Sender, select};
use log::{debug, info, warn};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const RETRANSMIT: Duration = Duration::from_millis(200);
const MAX_TRIES: u32 = 25;
/// Unacknowledged pushes kept per peer (older ones are left to
/// anti-entropy).
const MAX_PENDING: usize = 4096;
const TICK: Duration = Duration::from_millis(50);

pub struct LinkConfig {
    pub node_id: String,
    /// The port our gossip listener has: peers answer there.
    pub gossip_port: u16,
    /// The IP our sends leave from (the gossip bind address).
    pub bind_ip: IpAddr,
    pub peers: Vec<String>,
    pub interval: Duration,
    pub tombstone_ttl_ms: u64,
    /// Our API address as peers can reach it (advertised in digests).
    pub api: Option<String>,
}

/// What a SIGHUP may change while the thread runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkReload {
    pub peers: Vec<String>,
    pub interval: Duration,
    pub tombstone_ttl_ms: u64,
}

/// What the daemon wires to the thread.
pub struct LinkHandles {
    /// Local writes from the registry thread.
    pub local: Sender<Entry>,
    /// `overwatch.peers` and `overwatch.peer_sync` from a SIGHUP.
    pub reload: Sender<LinkReload>,
    pub status: Arc<SnapshotCell<ClusterStatus>>,
    pub counters: Arc<PeerCounters>,
    pub stop: Sender<()>,
}

struct Peer {
    listed: String,
    addr: Option<SocketAddr>,
    node_id: Option<String>,
    last_contact_ms: Option<u64>,
    last_contact: Option<Mono>,
    rtt_ms: Option<u64>,
    in_sync: bool,
    api: Option<String>,
}

impl Peer {
    fn listed(p: &str) -> Peer {
        Peer {
            listed: p.to_string(),
            addr: None,
            node_id: None,
            last_contact_ms: None,
            last_contact: None,
            rtt_ms: None,
            in_sync: false,
            api: None,
        }
    }
}

struct Pending {
    peer: usize,
    packet: Vec<u8>,
    first_sent: Mono,
    last_sent: Mono,
    tries: u32,
}

struct Link {
    cfg: LinkConfig,
    socket: UdpSocket,
    policy: Arc<SnapshotCell<Policy>>,
    replica: Arc<Mutex<Replica>>,
    applied: Sender<Entry>,
    status: Arc<SnapshotCell<ClusterStatus>>,
    counters: Arc<PeerCounters>,
    peers: Vec<Peer>,
    pending: BTreeMap<u64, Pending>,
    seq: u64,
    counter: u64,
    next_sync: Mono,
}

/// Starts the `peers` thread; `packets` come from the gossip loop
/// (`gossip::overwatch::server::start_with_peers`).
pub fn start(
    cfg: LinkConfig,
    policy: Arc<SnapshotCell<Policy>>,
    replica: Arc<Mutex<Replica>>,
    applied: Sender<Entry>,
    packets: Receiver<(Vec<u8>, SocketAddr)>,
) -> std::io::Result<(LinkHandles, std::thread::JoinHandle<()>)> {
    let socket = UdpSocket::bind(SocketAddr::new(cfg.bind_ip, 0))?;
    let (local_tx, local) = crossbeam_channel::bounded(65_536);
    let (stop_tx, stop) = crossbeam_channel::bounded(1);
    let (reload_tx, reload) = crossbeam_channel::bounded(4);
    let status = Arc::new(SnapshotCell::new(ClusterStatus::default()));
    let counters = Arc::new(PeerCounters::default());
    let peers = cfg.peers.iter().map(|p| Peer::listed(p)).collect();
    let mut link = Link {
        cfg,
        socket,
        policy,
        replica,
        applied,
        status: Arc::clone(&status),
        counters: Arc::clone(&counters),
        peers,
        pending: BTreeMap::new(),
        seq: 0,
        counter: 0,
        next_sync: Now::read().mono,
    };
    link.resolve();
    let thread = std::thread::Builder::new()
        .name("peers".into())
        .spawn(move || link.run(packets, local, reload, stop))?;
    Ok((
        LinkHandles {
            local: local_tx,
            reload: reload_tx,
            status,
            counters,
            stop: stop_tx,
        },
        thread,
    ))
}

impl Link {
    fn run(
        &mut self,
        packets: Receiver<(Vec<u8>, SocketAddr)>,
        local: Receiver<Entry>,
        reload: Receiver<LinkReload>,
        stop: Receiver<()>,
    ) {
        info!(
            "peers: {} listed, sync every {:?}",
            self.peers.len(),
            self.cfg.interval
        );
        loop {
            select! {
                recv(packets) -> m => if let Ok((p, src)) = m { self.on_packet(&p, src, Now::read()) },
                recv(local) -> m => if let Ok(e) = m { self.push_all(vec![e], Now::read()) },
                recv(reload) -> m => if let Ok(r) = m { self.reload(r, Now::read()) },
                recv(stop) -> _ => return,
                default(TICK) => {},
            }
            let now = Now::read();
            self.retransmit(now);
            if now.mono >= self.next_sync {
                self.sync_round(now);
                self.next_sync = now.mono.after(self.cfg.interval);
            }
            self.publish(now);
        }
    }

    /// A SIGHUP: peers still listed keep their state, new ones are
    /// contacted at once (digest exchange), removed ones are dropped with
    /// their unacknowledged pushes, and their packets are refused
    /// (`not_listed`) from now on.
    fn reload(&mut self, r: LinkReload, now: Now) {
        let old: Vec<String> = self.peers.iter().map(|p| p.listed.clone()).collect();
        if old == r.peers
            && self.cfg.interval == r.interval
            && self.cfg.tombstone_ttl_ms == r.tombstone_ttl_ms
        {
            return;
        }
        let added: Vec<&String> = r.peers.iter().filter(|p| !old.contains(p)).collect();
        let removed: Vec<&String> = old.iter().filter(|p| !r.peers.contains(p)).collect();
        info!(
            "peers: SIGHUP: {} listed (added {added:?}, removed {removed:?}), sync every {:?}",
            r.peers.len(),
            r.interval
        );
        let mut kept: Vec<Option<Peer>> = std::mem::take(&mut self.peers)
            .into_iter()
            .map(Some)
            .collect();
        let mut index = BTreeMap::new();
        for (new, listed) in r.peers.iter().enumerate() {
            let peer = match old.iter().position(|o| o == listed) {
                Some(i) => {
                    index.insert(i, new);
                    kept[i].take().unwrap_or_else(|| Peer::listed(listed))
                }
                None => Peer::listed(listed),
            };
            self.peers.push(peer);
        }
        self.pending.retain(|_, p| match index.get(&p.peer) {
            Some(&i) => {
                p.peer = i;
                true
            }
            None => false,
        });
        self.cfg.peers = r.peers;
        self.cfg.interval = r.interval;
        self.cfg.tombstone_ttl_ms = r.tombstone_ttl_ms;
        self.resolve();
        self.next_sync = now.mono;
    }

    /// Resolves listed peers not resolved yet (at start and each round).
    fn resolve(&mut self) {
        for p in self.peers.iter_mut().filter(|p| p.addr.is_none()) {
            p.addr = p.listed.to_socket_addrs().ok().and_then(|mut a| a.next());
        }
    }

    fn sync_round(&mut self, now: Now) {
        self.resolve();
        let (digest, count) = {
            let mut r = self.replica.lock().unwrap_or_else(|e| e.into_inner());
            r.expire_tombstones(now.wall_ms, self.cfg.tombstone_ttl_ms);
            (r.digest(), r.len() as u64)
        };
        for i in 0..self.peers.len() {
            let m = PeerMsg::Digest {
                from: self.cfg.node_id.clone(),
                gossip_port: self.cfg.gossip_port,
                digest: digest.clone(),
                count,
                reply: false,
                api: self.cfg.api.clone(),
            };
            self.send(i, &m);
        }
    }

    fn seal(&mut self, m: &PeerMsg) -> Option<Vec<u8>> {
        self.counter += 1;
        self.policy
            .load()
            .keyring
            .seal(PEER_SESSION, self.counter, &msg::encode(m))
    }

    fn send(&mut self, peer: usize, m: &PeerMsg) {
        let Some(addr) = self.peers.get(peer).and_then(|p| p.addr) else {
            return;
        };
        if let Some(packet) = self.seal(m)
            && let Err(e) = self.socket.send_to(&packet, addr)
        {
            debug!("peers: send to {addr}: {e}");
        }
    }

    /// Pushes entries to every peer (acknowledged, retransmitted).
    fn push_all(&mut self, entries: Vec<Entry>, now: Now) {
        for i in 0..self.peers.len() {
            self.push_to(i, &entries, now);
        }
    }

    fn push_to(&mut self, peer: usize, entries: &[Entry], now: Now) {
        for chunk in msg::chunk(entries, &self.cfg.node_id) {
            let n = chunk.len() as u64;
            self.seq += 1;
            let m = PeerMsg::Push {
                from: self.cfg.node_id.clone(),
                gossip_port: self.cfg.gossip_port,
                seq: self.seq,
                entries: chunk,
            };
            let Some(packet) = self.seal(&m) else {
                return;
            };
            PeerCounters::add(&self.counters.changes_sent, n);
            if let Some(addr) = self.peers.get(peer).and_then(|p| p.addr) {
                let _ = self.socket.send_to(&packet, addr);
            }
            if self.pending.values().filter(|p| p.peer == peer).count() < MAX_PENDING {
                self.pending.insert(
                    self.seq,
                    Pending {
                        peer,
                        packet,
                        first_sent: now.mono,
                        last_sent: now.mono,
                        tries: 1,
                    },
                );
            }
        }
    }

    fn retransmit(&mut self, now: Now) {
        let mut gone = Vec::new();
        for (seq, p) in self.pending.iter_mut() {
            if now.mono.since(p.last_sent) < RETRANSMIT {
                continue;
            }
            if p.tries >= MAX_TRIES {
                gone.push(*seq);
                continue;
            }
            p.tries += 1;
            p.last_sent = now.mono;
            if let Some(addr) = self.peers.get(p.peer).and_then(|x| x.addr) {
                let _ = self.socket.send_to(&p.packet, addr);
            }
        }
        for s in gone {
            self.pending.remove(&s);
        }
    }

    /// Opens, authenticates and handles one peer packet.
    fn on_packet(&mut self, packet: &[u8], src: SocketAddr, now: Now) {
        match self.admit(packet, src) {
            Ok((peer, m)) => self.handle(peer, m, now),
            Err(r) => {
                self.counters.refuse(r);
                warn!("peers: packet from {src} refused: {}", r.as_str());
            }
        }
    }

    fn admit(&mut self, packet: &[u8], src: SocketAddr) -> Result<(usize, PeerMsg), PeerRefusal> {
        if packet.len() > crate::gossip::wire::MAX_RECV_DATAGRAM {
            return Err(PeerRefusal::Oversize);
        }
        let (header, plain) = self
            .policy
            .load()
            .keyring
            .open(packet)
            .map_err(|_| PeerRefusal::DecryptFailed)?;
        if header.session_id != PEER_SESSION {
            return Err(PeerRefusal::Malformed);
        }
        let m = msg::decode(&plain)?;
        let port = m.from().1;
        let listed = self
            .peers
            .iter()
            .position(|p| p.addr == Some(SocketAddr::new(src.ip(), port)));
        match listed {
            Some(i) => Ok((i, m)),
            None if self
                .peers
                .iter()
                .any(|p| p.addr.is_some_and(|a| a.port() == port)) =>
            {
                Err(PeerRefusal::AddressMismatch)
            }
            None => Err(PeerRefusal::NotListed),
        }
    }

    fn handle(&mut self, peer: usize, m: PeerMsg, now: Now) {
        let down_after = self.down_after();
        if let Some(p) = self.peers.get_mut(peer) {
            let (from, _) = m.from();
            if p.node_id.as_deref() != Some(from) {
                info!("peers: {} is node {from}", p.listed);
                p.node_id = Some(from.to_string());
            }
            // First contact, or back after it was unreachable (a healed
            // partition, a restart): compare digests at once.
            let back = p
                .last_contact
                .is_none_or(|t| now.mono.since(t) >= down_after);
            p.last_contact = Some(now.mono);
            p.last_contact_ms = Some(now.wall_ms);
            if back {
                self.next_sync = now.mono;
            }
        }
        match m {
            PeerMsg::Push { seq, entries, .. } => self.on_push(peer, seq, entries, now),
            PeerMsg::Ack { seq, digest, .. } => {
                if let Some(p) = self.pending.remove(&seq)
                    && let Some(peer) = self.peers.get_mut(p.peer)
                {
                    peer.rtt_ms = Some(now.mono.since(p.first_sent).as_millis() as u64);
                }
                let mine = self.lock().digest();
                if let Some(p) = self.peers.get_mut(peer) {
                    p.in_sync = mine == digest;
                }
            }
            PeerMsg::Digest {
                digest, reply, api, ..
            } => {
                if let Some(p) = self.peers.get_mut(peer) {
                    p.api = api;
                }
                let (mine, count, all) = {
                    let r = self.lock();
                    let mine = r.digest();
                    let all: Vec<Entry> = if mine != digest {
                        r.entries().cloned().collect()
                    } else {
                        Vec::new()
                    };
                    (mine, r.len() as u64, all)
                };
                if let Some(p) = self.peers.get_mut(peer) {
                    p.in_sync = mine == digest;
                }
                if mine != digest {
                    self.push_to(peer, &all, now);
                }
                if !reply {
                    let m = PeerMsg::Digest {
                        from: self.cfg.node_id.clone(),
                        gossip_port: self.cfg.gossip_port,
                        digest: mine,
                        count,
                        reply: true,
                        api: self.cfg.api.clone(),
                    };
                    self.send(peer, &m);
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Replica> {
        self.replica.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Merges a push: refused as a whole (nothing merged, no ack) when any
    /// entry is out of bounds or stamped too far in the future.
    fn on_push(&mut self, peer: usize, seq: u64, entries: Vec<Entry>, now: Now) {
        let (applied, digest) = {
            let mut r = self.lock();
            if let Err(refusal) = check_all(&r, &entries, now.wall_ms) {
                drop(r);
                let reason = match refusal {
                    Refusal::ClockSkew => PeerRefusal::ClockSkew,
                    Refusal::Oversize => PeerRefusal::Oversize,
                };
                self.counters.refuse(reason);
                warn!("peers: push refused: {}", reason.as_str());
                return;
            }
            let mut applied = Vec::new();
            for e in &entries {
                if let Ok(Merged::Applied) = r.merge(e, now.wall_ms) {
                    applied.push(e.clone());
                }
            }
            (applied, r.digest())
        };
        PeerCounters::add(&self.counters.changes_received, applied.len() as u64);
        for e in applied {
            if self.applied.send(e).is_err() {
                debug!("peers: registry gone");
            }
        }
        let ack = PeerMsg::Ack {
            from: self.cfg.node_id.clone(),
            gossip_port: self.cfg.gossip_port,
            seq,
            digest,
        };
        self.send(peer, &ack);
    }

    /// A peer not heard from for this long is `unreachable`.
    fn down_after(&self) -> Duration {
        self.cfg
            .interval
            .saturating_mul(3)
            .max(Duration::from_secs(3))
    }

    fn publish(&mut self, now: Now) {
        let down_after = self.down_after();
        let (digest, rejected, rejected_total) = {
            let r = self.lock();
            (
                r.digest(),
                r.rejected.values().cloned().collect(),
                r.rejected_total,
            )
        };
        let peers = self
            .peers
            .iter()
            .map(|p| {
                let connected = p
                    .last_contact
                    .is_some_and(|t| now.mono.since(t) < down_after);
                PeerStatus {
                    node_id: p.node_id.clone(),
                    address: p.listed.clone(),
                    state: if connected {
                        "connected"
                    } else {
                        "unreachable"
                    },
                    last_contact: p
                        .last_contact_ms
                        .map(|ms| crate::timefmt::rfc3339(ms / 1000)),
                    rtt_ms: p.rtt_ms,
                    in_sync: connected && p.in_sync,
                    api: p.api.clone(),
                }
            })
            .collect();
        let status = ClusterStatus {
            node_id: self.cfg.node_id.clone(),
            digest,
            peers,
            rejected,
            rejected_total,
        };
        if *self.status.load() != status {
            self.status.publish(status);
        }
    }
}

/// Every entry of a push must pass before any is merged.
fn check_all(r: &Replica, entries: &[Entry], now_ms: u64) -> Result<(), Refusal> {
    for e in entries {
        if e.id.len() > super::lww::MAX_ID_LEN
            || e.value
                .as_ref()
                .is_some_and(|v| v.len() > super::lww::MAX_VALUE_LEN)
        {
            return Err(Refusal::Oversize);
        }
        if e.stamp.wall_ms > now_ms.saturating_add(r.max_skew_ms) {
            return Err(Refusal::ClockSkew);
        }
    }
    Ok(())
}
