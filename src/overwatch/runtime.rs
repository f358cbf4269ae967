//! The registry thread: the only writer of Overwatch state.
//!
//! It waits on its channels (check results, gossip events, API commands,
//! control) with a timeout to the next thing that changes by itself, so
//! nothing polls; gossip is taken in batches at most every `GOSSIP_PACE`
//! while it keeps coming. Each turn reads the clock once (`crate::clock::Now`),
//! beats its `Liveness` for the watchdog with that reading's monotonic
//! part, and passes the reading down. Events are applied in batches
//! (`ingest`); after a batch that changed something visible the registry
//! decides the touched backends again, what must survive a restart is
//! saved, and `publish` rebuilds only the marked entries of the DNS table
//! spec and the API view. Heartbeats rebuild nothing: the last-seen time
//! they move is a cell the API entries share and read at render time; a
//! last-check time alone reaches the API view with the next publish, or
//! after `VIEW_REFRESH` at the latest.

use super::managed::{self, Managed};
use super::metrics::OverwatchCounters;
use super::model::*;
use super::peers::{Entry, Replica};
use super::persisted;
use super::publish::{self, Publisher};
use super::registry::{Registry, RegistryConfig};
use super::targets::{self, CheckPlan, TargetIds};
use crate::api::command::CommandRequest;
use crate::api::view::{AuditEntry, ManagedListing, OverwatchView};
use crate::clock::{Liveness, Mono, Now};
use crate::config::Config;
use crate::dns::keystore::KeyRing;
use crate::dns::{DnsStats, DnsTable};
use crate::gossip::Policy;
use crate::gossip::overwatch::OverwatchEvent;
use crate::health::{self, CheckResult, HealthChecker};
use crate::persist::AuditLog;
use crate::persist::Store;
use crate::snapshot::SnapshotCell;
use crossbeam_channel::{Receiver, Sender, select};
use log::{error, info, warn};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Longest the thread sleeps, so liveness is reported to the watchdog.
const MAX_WAIT: Duration = Duration::from_millis(100);
/// How many recent audit entries the API view carries.
pub(super) const AUDIT_TAIL: usize = crate::api::read::AUDIT_MAX;
/// How long last-check times alone may wait to reach the API view (each
/// refresh rebuilds the entries of the backends checked meanwhile).
const VIEW_REFRESH: Duration = Duration::from_millis(5_000);
/// Events applied before publishing, under load.
const BATCH: usize = 4096;
/// After a turn that took gossip messages, how long new ones wait so they
/// are taken in batches: 10,000 heartbeats a second become ~100 turns
/// instead of a wake-up each.
const GOSSIP_PACE: Duration = Duration::from_millis(10);
/// Saves of state.json that gossip alone asked for (a new pin, an agent
/// lost or back) happen at most this often; meanwhile what they would
/// show waits unpublished, so readers still see only what is on disk.
/// Operator writes, peer entries and reloads save at once.
const SAVE_EVERY: Duration = Duration::from_millis(1_000);
/// After a publish, gossip-driven changes wait this many times as long as
/// that publish took before the next one: a fleet registering at once (an
/// Overwatch restart at 25,000 agents) republished the whole DNS table
/// every 10 ms turn and the registry fell behind its channel for good.
/// Small tables publish in microseconds, so nothing waits there.
const PUBLISH_BACKOFF: u32 = 4;
/// The most a change waits for that.
const MAX_PUBLISH_WAIT: Duration = Duration::from_millis(1_000);
/// How often freed heap pages go back to the system (`trim_heap`).
const TRIM_EVERY: Duration = Duration::from_secs(5);
/// How long staleness may wait while the registry is behind on gossip.
const MAX_LIVENESS_DEFER: Duration = Duration::from_secs(5);

pub enum Control {
    Reload(Box<Config>),
    Stop,
}

/// The first input of a turn, taken before the clock is read.
enum Input {
    Check(CheckResult),
    Gossip(OverwatchEvent),
    Api(CommandRequest),
    Peer(Entry),
    Reload(Box<Config>),
}

/// The cells the registry publishes and the readers hold.
pub struct Published {
    pub dns: Arc<SnapshotCell<DnsTable>>,
    pub view: Arc<SnapshotCell<OverwatchView>>,
    pub policy: Arc<SnapshotCell<Policy>>,
    pub dns_stats: Arc<DnsStats>,
    pub counters: Arc<OverwatchCounters>,
    /// Beaten with `now.mono` every loop turn; the watchdog asks it
    /// `fresh(Now::read().mono, ..)`.
    pub liveness: Arc<Liveness>,
    /// Learned latency per (client prefix, region), written by gossip
    /// reports, read by the API and DNS.
    pub learned: crate::overwatch::learned::Learned,
}

pub struct Inputs {
    pub checks: Receiver<CheckResult>,
    pub gossip: Receiver<OverwatchEvent>,
    pub api: Receiver<CommandRequest>,
    /// Changes that won on the `peers` thread (never sends without peers).
    pub peers: Receiver<Entry>,
    pub control: Receiver<Control>,
}

pub struct Runtime {
    pub(super) reg: Registry,
    pub(super) publisher: Publisher,
    pub(super) node_id: String,
    pub(super) store: Store,
    pub(super) audit: AuditLog,
    pub(super) audit_tail: Vec<AuditEntry>,
    pub(super) checker: HealthChecker,
    pub(super) target_ids: TargetIds,
    pub(super) plans: HashMap<u64, Vec<BackendKey>>,
    pub(super) plan_signature: Vec<(u64, Vec<BackendKey>)>,
    pub(super) out: Published,
    pub(super) ready: bool,
    pub(super) next_deadline: Option<Mono>,
    pub(super) last_view: Mono,
    /// Since when the batches end with gossip still queued.
    pub(super) behind_since: Option<Mono>,
    /// Gossip is not waited for before this (see `GOSSIP_PACE`).
    pub(super) gossip_paced_until: Option<Mono>,
    pub(super) policy_dirty: bool,
    /// When state.json was last saved (see `SAVE_EVERY`).
    pub(super) last_save: Option<Mono>,
    /// When the last publish ended and how long it took (see
    /// `PUBLISH_BACKOFF`).
    pub(super) last_publish: Option<(Mono, Duration)>,
    /// When `trim_heap` last ran.
    pub(super) last_trim: Mono,
    /// The configuration file as loaded; `managed` is laid over it.
    pub(super) base: Config,
    /// Servers, regions and domains managed through the API.
    pub(super) managed: Managed,
    pub(super) listing: Arc<ManagedListing>,
    /// The replicated operator state, shared with the `peers` thread.
    pub(super) replica: Arc<Mutex<Replica>>,
    /// Where local writes go to be pushed; `None` without peers.
    pub(super) peer_out: Option<Sender<Entry>>,
    pub(super) replica_dirty: bool,
    /// `overwatch.dnssec` keys the DNS table signs with (kept on a reload
    /// whose keys cannot be read).
    pub(super) dnssec: Option<Arc<KeyRing>>,
    /// The GeoIP database file, looked at for replacement (geo_watch.rs).
    pub(super) geo_watch: super::geo_watch::GeoWatch,
}

impl Runtime {
    /// Restores persisted state; the error names the file that failed.
    pub fn new(
        config: &Config,
        store: Store,
        audit: AuditLog,
        checker: HealthChecker,
        out: Published,
    ) -> Result<Runtime, String> {
        let now = Now::read();
        let managed: Managed = store
            .load(managed::STORE_FILE)
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        let (merged, skipped) = managed::overlay(config, &managed);
        for s in skipped {
            warn!("{s}");
        }
        let listing = Arc::new(managed::listing(config, &managed));
        let base = config.clone();
        let config = &merged;
        let mut reg = Registry::new(RegistryConfig::from_config(config));
        let mut state = persisted::load(&store).map_err(|e| e.to_string())?;
        let node_id = node_id(config);
        let mut replica = Replica::new(&node_id);
        replica.restore(std::mem::take(&mut state.replicated), now.wall_ms);
        persisted::restore(&mut reg, state, now);
        let audit_tail = audit
            .recent::<AuditEntry>(AUDIT_TAIL)
            .map_err(|e| e.to_string())?;
        let dnssec = load_dnssec(config)?;
        let mut rt = Runtime {
            dnssec,
            reg,
            publisher: Publisher::default(),
            node_id,
            store,
            audit,
            audit_tail,
            checker,
            target_ids: TargetIds::default(),
            plans: HashMap::new(),
            plan_signature: Vec::new(),
            out,
            ready: false,
            next_deadline: None,
            last_view: now.mono,
            behind_since: None,
            gossip_paced_until: None,
            last_save: None,
            last_publish: None,
            last_trim: now.mono,
            policy_dirty: false,
            base,
            managed,
            listing,
            replica: Arc::new(Mutex::new(replica)),
            peer_out: None,
            replica_dirty: false,
            geo_watch: super::geo_watch::GeoWatch::for_config(config, now.mono),
        };
        rt.reg.recompute(now);
        rt.publish(now);
        rt.out.policy.publish(publish::policy::build(
            config,
            &rt.reg,
            &rt.out.policy.load(),
        ));
        Ok(rt)
    }

    /// The replicated operator state, for the `peers` thread.
    pub fn replica(&self) -> Arc<Mutex<Replica>> {
        Arc::clone(&self.replica)
    }

    /// Local operator writes are handed to the `peers` thread from now on.
    pub fn attach_peers(&mut self, out: Sender<Entry>) {
        self.peer_out = Some(out);
        self.reconcile_managed(Now::read());
    }

    /// Marks DNS as serving (after the sockets are bound).
    pub fn set_ready(&mut self) {
        self.ready = true;
        self.publish(Now::read());
    }

    pub fn run(mut self, inputs: Inputs) {
        let mut now = Now::read();
        self.out.liveness.beat(now.mono);
        loop {
            let wait = self
                .next_deadline
                .into_iter()
                .chain(self.held_until(now.mono))
                .map(|d| now.mono.until(d))
                .min()
                .unwrap_or(MAX_WAIT)
                .min(MAX_WAIT);
            // Right after a turn that took gossip, gossip waits out the
            // pace (heartbeats queue up and are taken as one batch);
            // operators and checks are taken at once.
            let pace = self
                .gossip_paced_until
                .map(|t| now.mono.until(t))
                .filter(|d| !d.is_zero());
            let first = match pace {
                Some(pace) => select! {
                    recv(inputs.checks) -> m => m.ok().map(Input::Check),
                    recv(inputs.api) -> m => m.ok().map(Input::Api),
                    recv(inputs.peers) -> m => m.ok().map(Input::Peer),
                    recv(inputs.control) -> m => match m {
                        Ok(Control::Reload(cfg)) => Some(Input::Reload(cfg)),
                        Ok(Control::Stop) | Err(_) => break,
                    },
                    default(wait.min(pace)) => None,
                },
                None => select! {
                    recv(inputs.checks) -> m => m.ok().map(Input::Check),
                    recv(inputs.gossip) -> m => m.ok().map(Input::Gossip),
                    recv(inputs.api) -> m => m.ok().map(Input::Api),
                    recv(inputs.peers) -> m => m.ok().map(Input::Peer),
                    recv(inputs.control) -> m => match m {
                        Ok(Control::Reload(cfg)) => Some(Input::Reload(cfg)),
                        Ok(Control::Stop) | Err(_) => break,
                    },
                    default(wait) => None,
                },
            };
            // The one clock reading of this turn.
            now = Now::read();
            let operator = matches!(
                first,
                Some(Input::Api(_) | Input::Peer(_) | Input::Reload(_))
            );
            self.out.liveness.beat(now.mono);
            let mut took_gossip = false;
            match first {
                Some(Input::Check(r)) => self.on_check(r, now),
                Some(Input::Gossip(e)) => {
                    took_gossip = true;
                    self.on_gossip(e, now)
                }
                Some(Input::Api(r)) => self.on_api(r, now),
                Some(Input::Peer(e)) => self.on_peer(e, now),
                Some(Input::Reload(cfg)) => self.on_reload(*cfg, now),
                None => {}
            }
            // Drain what else is waiting, up to a batch, before publishing.
            for _ in 0..BATCH {
                let mut any = false;
                if let Ok(r) = inputs.checks.try_recv() {
                    self.on_check(r, now);
                    any = true;
                }
                if let Ok(e) = inputs.gossip.try_recv() {
                    self.on_gossip(e, now);
                    took_gossip = true;
                    any = true;
                }
                if !any {
                    break;
                }
            }
            self.gossip_paced_until = took_gossip.then(|| now.mono.after(GOSSIP_PACE));
            let due = self.next_deadline.is_some_and(|d| now.mono >= d);
            if due || self.reg.changes().visible() {
                // Behind on gossip (the batch ended with messages queued):
                // heartbeats still in the queue must not make agents stale,
                // for a while; an overload that lasts must not keep a dead
                // agent in DNS either.
                let behind = !inputs.gossip.is_empty();
                let since = *self.behind_since.get_or_insert(now.mono);
                if !behind {
                    self.behind_since = None;
                }
                if behind && now.mono.since(since) < MAX_LIVENESS_DEFER {
                    self.reg.recompute_behind(now);
                } else {
                    self.reg.recompute(now);
                }
            }
            // What readers are about to see (a new pin, a lost agent, an
            // expired override) is on disk first, so a crash right after
            // it shows in the API or DNS cannot take it back. Gossip alone
            // saves at most every `SAVE_EVERY`, and publishes after a
            // pause in proportion to the last publish (`PUBLISH_BACKOFF`):
            // until then the changes wait in the registry.
            if !operator && self.held_until(now.mono).is_some() {
                if due {
                    self.next_deadline = self.reg.next_deadline();
                }
                continue;
            }
            self.persist_at(now.mono);
            let changes = self.reg.changes();
            if changes.visible()
                || (!changes.is_empty() && now.mono.since(self.last_view) >= VIEW_REFRESH)
            {
                self.publish(now);
            } else if due {
                self.next_deadline = self.reg.next_deadline();
            }
            if self.policy_dirty {
                self.policy_dirty = false;
                self.publish_policy_now();
            }
            self.watch_geo_database(now);
            if now.mono.since(self.last_trim) >= TRIM_EVERY {
                self.last_trim = now.mono;
                trim_heap();
            }
        }
        self.persist();
        self.checker.stop();
        info!("registry stopped");
    }

    /// Until when gossip-driven changes wait: unsaved state for
    /// `SAVE_EVERY` after the last save, visible changes for
    /// `PUBLISH_BACKOFF` times the last publish.
    fn held_until(&self, now: Mono) -> Option<Mono> {
        let save = self
            .last_save
            .filter(|_| self.reg.persist_dirty() || self.replica_dirty)
            .map(|t| t.after(SAVE_EVERY));
        let publish = self
            .last_publish
            .filter(|_| self.reg.changes().visible())
            .map(|(t, took)| t.after((took * PUBLISH_BACKOFF).min(MAX_PUBLISH_WAIT)));
        save.into_iter().chain(publish).filter(|at| now < *at).max()
    }

    fn persist_at(&mut self, now: Mono) {
        if self.reg.persist_dirty() || self.replica_dirty {
            self.last_save = Some(now);
        }
        self.persist();
    }

    pub(super) fn persist(&mut self) {
        if !self.reg.persist_dirty() && !self.replica_dirty {
            return;
        }
        let saved = {
            let replica = self.replica.lock().unwrap_or_else(|e| e.into_inner());
            persisted::save(&self.store, &self.reg, &replica)
        };
        match saved {
            Ok(()) => {
                self.reg.mark_persisted();
                self.replica_dirty = false;
            }
            Err(e) => error!("could not save state: {e}"),
        }
    }

    // ----------------------------------------------------------- outputs

    /// Hands the health checker the current set of probes (only when it changed).
    pub(super) fn replan(&mut self) {
        let plans: Vec<CheckPlan> = targets::plan(&self.reg, &mut self.target_ids);
        let signature: Vec<(u64, Vec<BackendKey>)> =
            plans.iter().map(|p| (p.id, p.backends.clone())).collect();
        if signature == self.plan_signature {
            return;
        }
        self.plan_signature = signature;
        self.plans = plans.iter().map(|p| (p.id, p.backends.clone())).collect();
        let mut list = Vec::with_capacity(plans.len());
        for p in &plans {
            match health::Target::from_config(p.id, &p.check, &p.address.to_string(), p.port) {
                Ok(t) => list.push(t),
                Err(e) => warn!("cannot check {}:{}: {e}", p.address, p.port),
            }
        }
        self.checker.set_targets(list);
    }

    /// Publishes what changed since the last publish: the probes if they
    /// may have changed, the DNS table if a domain changed, and the view.
    pub(super) fn publish(&mut self, now: Now) {
        let started = std::time::Instant::now();
        let changes = self.reg.take_changes();
        if changes.probes {
            self.replan();
        }
        if self.publisher.update(&self.reg, &changes) {
            let spec = self.publisher.table_spec(now.wall_secs() as u32);
            self.out.dns.publish(
                DnsTable::build(&spec, &self.out.dns_stats).with_dnssec(self.dnssec.clone()),
            );
        }
        let mut view = self.publisher.view(
            &self.reg,
            &publish::ViewInputs {
                node_id: &self.node_id,
                now_secs: now.wall_secs(),
                ready: self.ready,
                audit: &self.audit_tail,
            },
        );
        view.managed = Arc::clone(&self.listing);
        self.out.view.publish(view);
        self.last_view = now.mono;
        self.next_deadline = self.reg.next_deadline();
        let took = started.elapsed();
        self.last_publish = Some((now.mono.after(took), took));
    }

    /// Re-publishes pins and revocations into the gossip policy.
    pub(super) fn publish_policy_now(&mut self) {
        let old = self.out.policy.load();
        if let Some(policy) = publish::policy::with_trust(&self.reg, &old) {
            self.out.policy.publish(policy);
        }
    }
}

/// Hands freed heap pages back to the system. Publishing replaces view
/// and table entries while readers still hold the old ones, and glibc
/// keeps what they freed in the arena: at 10,000 agents about 20 MB of
/// resident memory was free heap (measured with malloc_stats). A no-op
/// elsewhere than glibc.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator's
    // own arenas; it takes their locks like any allocation does.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The DNSSEC keys of `config`; the error names the key file.
pub(super) fn load_dnssec(config: &Config) -> Result<Option<Arc<KeyRing>>, String> {
    crate::dns::keystore::load(config)
        .map(|r| r.map(Arc::new))
        .map_err(|e| {
            e.iter()
                .map(|(k, m)| format!("{k}: {m}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
}

pub fn node_id(config: &Config) -> String {
    config
        .overwatch
        .identity
        .node_id
        .clone()
        .unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "overwatch".into())
        })
}

/// The channels the daemon wires between threads.
pub struct Channels {
    pub checks: (Sender<CheckResult>, Receiver<CheckResult>),
    pub gossip: (Sender<OverwatchEvent>, Receiver<OverwatchEvent>),
    pub api: (Sender<CommandRequest>, Receiver<CommandRequest>),
    pub peers: (Sender<Entry>, Receiver<Entry>),
    pub control: (Sender<Control>, Receiver<Control>),
}

impl Default for Channels {
    fn default() -> Self {
        Channels {
            // Bounded: a flood of gossip must not grow memory without limit.
            // A bounded channel allocates and touches every slot up front
            // (65,536 slots were 11 MB for gossip events alone, resident
            // from the start); 16,384 is more than a second of heartbeats
            // at 10,000 agents, and heartbeats beyond it are coalesced.
            checks: crossbeam_channel::bounded(16_384),
            gossip: crossbeam_channel::bounded(16_384),
            api: crossbeam_channel::bounded(256),
            peers: crossbeam_channel::bounded(16_384),
            control: crossbeam_channel::bounded(8),
        }
    }
}
