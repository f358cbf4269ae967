//! The registry thread: the only writer of Overwatch state.
//!
//! It waits on its channels (check results, gossip events, API commands,
//! control) with a timeout to the next thing that changes by itself, so
//! nothing polls. Each turn reads the clock once (`crate::clock::Now`),
//! beats its `Liveness` for the watchdog with that reading's monotonic
//! part, and passes the reading down to every registry call. Events are applied in batches; after a batch that
//! changed something visible it recomputes every effective status and
//! publishes fresh snapshots for DNS, the API and gossip, then persists
//! what must survive a restart. Heartbeats alone do not rebuild DNS; they
//! refresh the API view at most once a second.

use super::metrics::OverwatchCounters;
use super::model::*;
use super::registry::{Registry, RegistryConfig};
use super::targets::{self, CheckPlan, TargetIds};
use super::{dns_spec, persisted, view};
use crate::api::command::CommandRequest;
use crate::api::view::{AuditEntry, OverwatchView};
use crate::clock::{Liveness, Mono, Now};
use crate::config::Config;
use crate::dns::{DnsStats, DnsTable};
use crate::gossip::overwatch_side::OverwatchEvent;
use crate::gossip::server::GossipServer;
use crate::gossip::{self, Policy};
use crate::health::{self, CheckResult, HealthChecker};
use crate::persist::AuditLog;
use crate::persist::Store;
use crate::snapshot::SnapshotCell;
use crossbeam_channel::{Receiver, Sender, select};
use log::{error, info, warn};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Longest the thread sleeps, so liveness is reported to the watchdog.
const MAX_WAIT: Duration = Duration::from_millis(100);
/// How many recent audit entries the API view carries.
pub(super) const AUDIT_TAIL: usize = crate::api::read::AUDIT_MAX;
/// How often heartbeats alone refresh the API view (`agent_last_seen`):
/// the view is rebuilt whole, which is O(backends).
const VIEW_REFRESH_MS: u64 = 5_000;
/// Events applied before publishing, under load.
const BATCH: usize = 4096;

pub enum Control {
    Reload(Box<Config>),
    Stop,
}

/// The first input of a turn, taken before the clock is read.
enum Input {
    Check(CheckResult),
    Gossip(OverwatchEvent),
    Api(CommandRequest),
    Reload(Box<Config>),
}

/// The cells the registry publishes and the readers hold.
pub struct Published {
    pub dns: Arc<SnapshotCell<DnsTable>>,
    pub view: Arc<SnapshotCell<OverwatchView>>,
    pub policy: Arc<SnapshotCell<Policy>>,
    pub dns_stats: Arc<DnsStats>,
    pub counters: Arc<OverwatchCounters>,
    /// Beaten with `now.mono` every loop turn, for the watchdog.
    pub liveness: Arc<Liveness>,
}

pub struct Inputs {
    pub checks: Receiver<CheckResult>,
    pub gossip: Receiver<OverwatchEvent>,
    pub api: Receiver<CommandRequest>,
    pub control: Receiver<Control>,
}

pub struct Runtime {
    pub(super) reg: Registry,
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
    pub(super) view_stale: bool,
    pub(super) last_view: Mono,
    pub(super) gossip: Option<Arc<Mutex<GossipServer>>>,
    pub(super) policy_dirty: bool,
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
        let mut reg = Registry::new(RegistryConfig::from_config(config));
        let state = persisted::load(&store).map_err(|e| e.to_string())?;
        persisted::restore(&mut reg, state, now);
        let audit_tail = audit
            .recent::<AuditEntry>(AUDIT_TAIL)
            .map_err(|e| e.to_string())?;
        let node_id = node_id(config);
        let mut rt = Runtime {
            reg,
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
            view_stale: false,
            last_view: Mono(0),
            gossip: None,
            policy_dirty: false,
        };
        rt.reg.recompute(now);
        rt.replan();
        rt.publish(now);
        rt.publish_policy(config);
        Ok(rt)
    }

    /// The gossip server, told directly when an operator forgets a pin.
    pub fn set_gossip(&mut self, gossip: Option<Arc<Mutex<GossipServer>>>) {
        self.gossip = gossip;
    }

    /// Marks DNS as serving (after the sockets are bound).
    pub fn set_ready(&mut self) {
        self.ready = true;
        self.publish(Now::read());
    }

    pub fn run(mut self, inputs: Inputs) {
        let mut now = Now::read();
        loop {
            self.out.liveness.beat(now.mono);
            let wait = self
                .next_deadline
                .map(|d| now.mono.until(d))
                .unwrap_or(MAX_WAIT)
                .min(MAX_WAIT);
            let first = select! {
                recv(inputs.checks) -> m => m.ok().map(Input::Check),
                recv(inputs.gossip) -> m => m.ok().map(Input::Gossip),
                recv(inputs.api) -> m => m.ok().map(Input::Api),
                recv(inputs.control) -> m => match m {
                    Ok(Control::Reload(cfg)) => Some(Input::Reload(cfg)),
                    Ok(Control::Stop) | Err(_) => break,
                },
                default(wait) => None,
            };
            // The one clock reading of this turn.
            now = Now::read();
            self.out.liveness.beat(now.mono);
            let mut changed = false;
            match first {
                Some(Input::Check(r)) => changed |= self.on_check(r, now),
                Some(Input::Gossip(e)) => changed |= self.on_gossip(e, now),
                Some(Input::Api(r)) => changed |= self.on_api(r, now),
                Some(Input::Reload(cfg)) => changed |= self.on_reload(*cfg, now),
                None => {}
            }
            // Drain what else is waiting, up to a batch, before publishing.
            for _ in 0..BATCH {
                let mut any = false;
                if let Ok(r) = inputs.checks.try_recv() {
                    changed |= self.on_check(r, now);
                    any = true;
                }
                if let Ok(e) = inputs.gossip.try_recv() {
                    changed |= self.on_gossip(e, now);
                    any = true;
                }
                if !any {
                    break;
                }
            }
            let due = self.next_deadline.is_some_and(|d| now.mono >= d);
            if changed || due {
                let recomputed = self.reg.recompute(now);
                // What readers are about to see (a new pin, a lost agent, an
                // expired override) is on disk first, so a crash right after
                // it shows in the API or DNS cannot take it back.
                self.persist();
                if recomputed || changed {
                    self.replan();
                    self.publish(now);
                } else {
                    self.next_deadline = self.reg.next_deadline();
                }
            } else if self.view_stale
                && now.mono.since(self.last_view) >= Duration::from_millis(VIEW_REFRESH_MS)
            {
                self.publish_view(now);
            }
            self.persist();
            if self.policy_dirty {
                self.policy_dirty = false;
                self.publish_policy_now();
            }
        }
        self.persist();
        self.checker.stop();
        info!("registry stopped");
    }

    pub(super) fn persist(&mut self) {
        if !self.reg.persist_dirty {
            return;
        }
        match persisted::save(&self.store, &self.reg) {
            Ok(()) => self.reg.persist_dirty = false,
            Err(e) => error!("could not save state: {e}"),
        }
    }

    // ------------------------------------------------------------ inputs

    fn on_check(&mut self, r: CheckResult, now: Now) -> bool {
        let counter = if r.probe_ok {
            &self.out.counters.validation_success
        } else {
            &self.out.counters.validation_failure
        };
        OverwatchCounters::add(counter);
        let Some(keys) = self.plans.get(&r.id) else {
            return false;
        };
        let first = keys
            .first()
            .and_then(|k| self.reg.backends.get(k))
            .is_some_and(|b| b.validation.is_none());
        let at =
            r.at.duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(now.wall_ms);
        let verdict = Verdict {
            healthy: r.healthy,
            last_check_ms: at,
            error: r.error.clone(),
        };
        let keys = keys.clone();
        self.reg.validation_result(&keys, verdict);
        self.view_stale = true;
        r.changed || first
    }

    fn on_gossip(&mut self, e: OverwatchEvent, now: Now) -> bool {
        match e {
            OverwatchEvent::Registered {
                agent_id,
                region,
                addr,
                fingerprint,
                cert_not_after,
                heartbeat_interval,
                missed_threshold,
                backends,
                pinned_new,
                rotated,
            } => {
                if pinned_new {
                    info!("agent {agent_id}: certificate {fingerprint} pinned on first use");
                }
                if rotated {
                    info!(
                        "agent {agent_id}: certificate rotated to {fingerprint} (proof from the old key)"
                    );
                }
                let stale_after = (heartbeat_interval.as_millis().min(u64::MAX as u128) as u64)
                    .saturating_mul(missed_threshold.max(1) as u64);
                let reports = backends.into_iter().filter_map(report).collect();
                self.reg.agent_registered(
                    &agent_id,
                    &region,
                    addr,
                    &fingerprint,
                    cert_not_after,
                    stale_after,
                    reports,
                    now,
                );
                if pinned_new || rotated {
                    // Published once per loop turn, not per registration:
                    // rebuilding the pin map is O(agents), and the gossip
                    // server keeps pins it learned until they appear.
                    self.policy_dirty = true;
                }
                true
            }
            OverwatchEvent::State {
                agent_id,
                backends,
                removed,
                full,
            } => {
                let removed: Vec<BackendKey> = removed
                    .into_iter()
                    .filter_map(|k| {
                        Some(BackendKey::new(&k.service, k.address.parse().ok()?, k.port))
                    })
                    .collect();
                self.reg.agent_removed(&agent_id, &removed);
                let reports = backends.into_iter().filter_map(report).collect();
                self.reg.agent_state(&agent_id, reports, full, now);
                true
            }
            OverwatchEvent::Heartbeat { agent_id, .. } => {
                OverwatchCounters::add(&self.out.counters.heartbeats_received);
                let was_stale = self
                    .reg
                    .agents
                    .get(&agent_id)
                    .is_some_and(|a| a.status == AgentStatus::Stale);
                self.reg.agent_heartbeat(&agent_id, now);
                self.view_stale = true;
                was_stale
            }
            OverwatchEvent::Leave { agent_id } => {
                self.reg.agent_left(&agent_id, now);
                true
            }
            OverwatchEvent::Rejected {
                agent_id,
                addr,
                reason,
            } => {
                let known = agent_id
                    .as_deref()
                    .is_some_and(|id| self.reg.agents.contains_key(id));
                if agent_id.is_none() {
                    return false; // decrypt failures and replays: counted only
                }
                self.reg
                    .agent_rejected(agent_id.as_deref(), addr, reason.as_str(), now);
                known || agent_id.is_some()
            }
        }
    }

    fn on_reload(&mut self, config: Config, now: Now) -> bool {
        self.node_id = node_id(&config);
        self.reg
            .reconfigure(RegistryConfig::from_config(&config), now);
        self.publish_policy(&config);
        let names: HashSet<String> = config
            .domains
            .iter()
            .map(|d| normalize_name(&d.name))
            .collect();
        self.out.dns_stats.retain_domains(&|d| names.contains(d));
        info!("configuration reloaded");
        true
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

    pub(super) fn publish(&mut self, now: Now) {
        let spec = dns_spec::build(&self.reg);
        self.out
            .dns
            .publish(DnsTable::build(&spec, &self.out.dns_stats));
        self.publish_view_with(now, &spec);
        self.next_deadline = self.reg.next_deadline();
    }

    fn publish_view(&mut self, now: Now) {
        let spec = dns_spec::build(&self.reg);
        self.publish_view_with(now, &spec);
    }

    fn publish_view_with(&mut self, now: Now, spec: &crate::dns::TableSpec) {
        let v = view::build(
            &self.reg,
            &view::ViewInputs {
                node_id: &self.node_id,
                now_secs: now.wall_secs(),
                ready: self.ready,
                spec,
                audit: &self.audit_tail,
            },
        );
        self.out.view.publish(v);
        self.view_stale = false;
        self.last_view = now.mono;
    }

    fn publish_policy(&mut self, config: &Config) {
        let keyring = match config.resolved_secrets(crate::config::Mode::Overwatch) {
            Ok(secrets) => gossip::Keyring::from_raw(&secrets.gossip_keys),
            Err(e) => {
                warn!("gossip keys: {e}");
                gossip::Keyring::default()
            }
        };
        let old = self.out.policy.load();
        let policy = Policy {
            keyring,
            agent_tokens: config
                .overwatch
                .agent_tokens
                .iter()
                .map(|(k, v)| (normalize_name(k), v.clone()))
                .collect(),
            known_services: self.reg.cfg.services.iter().cloned().collect(),
            pins: old.pins.clone(),
            revoked: old.revoked.clone(),
        };
        self.out.policy.publish(policy);
        self.publish_policy_now();
    }

    /// Re-publishes pins and revocations into the gossip policy.
    pub(super) fn publish_policy_now(&mut self) {
        let old = self.out.policy.load();
        let pins: HashMap<String, String> = self
            .reg
            .pins
            .values()
            .map(|p| (p.agent_id.clone(), p.fingerprint.clone()))
            .collect();
        let revoked: HashSet<String> = self.reg.revocations.keys().cloned().collect();
        if pins == old.pins && revoked == old.revoked {
            return;
        }
        let mut policy = (*old).clone();
        policy.pins = pins;
        policy.revoked = revoked;
        self.out.policy.publish(policy);
    }
}

/// The gossip wire report as the shared backend model: the service name
/// normalised and the address parsed once, here.
fn report(b: gossip::BackendReport) -> Option<BackendReport> {
    let address = b
        .address
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    Some(BackendReport {
        key: BackendKey::new(&b.service, address, b.port),
        weight: b.weight,
        healthy: b.healthy,
        draining: b.draining,
        drain_reason: b.drain_reason,
        last_error: b.last_error,
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
    pub control: (Sender<Control>, Receiver<Control>),
}

impl Default for Channels {
    fn default() -> Self {
        Channels {
            // Bounded: a flood of gossip must not grow memory without limit.
            checks: crossbeam_channel::bounded(65_536),
            gossip: crossbeam_channel::bounded(65_536),
            api: crossbeam_channel::bounded(256),
            control: crossbeam_channel::bounded(8),
        }
    }
}
