//! The agent's own view of its backends and why they might be draining.
//!
//! Pure: the runtime feeds check verdicts, drain-file changes, API drain
//! commands, predictive signals and shutdown into it, and asks for the
//! reports to send. Drain sources are kept apart so lifting one (the file
//! goes away) does not lift another (an operator's `drain on`).

use crate::backend::{BackendKey, BackendReport};
use crate::config::AgentBackend;
use std::net::IpAddr;

/// One local backend and what our checks say about it.
#[derive(Clone, Debug)]
pub struct LocalBackend {
    pub service: String,
    pub address: IpAddr,
    pub port: u16,
    pub weight: u32,
    /// Verdict after rise/fall; false until the first check answered.
    pub healthy: bool,
    pub checked: bool,
    pub last_error: Option<String>,
    pub last_check: Option<u64>,
}

#[derive(Clone, Debug, Default)]
pub struct AgentState {
    pub backends: Vec<LocalBackend>,
    pub file_drain: Option<String>,
    pub api_drain: Option<String>,
    pub predictive_drain: Option<String>,
    pub shutting_down: bool,
}

impl AgentState {
    /// Backends whose address does not parse were refused by the loader.
    pub fn new(backends: &[AgentBackend]) -> Self {
        let backends = backends
            .iter()
            .filter_map(|b| {
                Some(LocalBackend {
                    service: b.service.clone(),
                    address: b.address.trim().parse().ok()?,
                    port: b.port,
                    weight: b.weight,
                    healthy: false,
                    checked: false,
                    last_error: None,
                    last_check: None,
                })
            })
            .collect();
        AgentState {
            backends,
            ..Default::default()
        }
    }

    /// A reloaded backend list: backends that stay keep their verdict, so a
    /// SIGHUP does not briefly report them unhealthy.
    pub fn reconfigure(&mut self, backends: &[AgentBackend]) {
        let mut next = AgentState::new(backends);
        for b in &mut next.backends {
            if let Some(old) = self
                .backends
                .iter()
                .find(|o| o.service == b.service && o.address == b.address && o.port == b.port)
            {
                *b = LocalBackend {
                    weight: b.weight,
                    ..old.clone()
                };
            }
        }
        self.backends = next.backends;
    }

    /// The active drain, first source wins: file, operator, predictive,
    /// shutdown. Returns (source, reason).
    pub fn drain(&self) -> Option<(&'static str, String)> {
        if let Some(r) = &self.file_drain {
            return Some(("drain_file", r.clone()));
        }
        if let Some(r) = &self.api_drain {
            return Some(("api", r.clone()));
        }
        if let Some(r) = &self.predictive_drain {
            return Some(("predictive", r.clone()));
        }
        self.shutting_down
            .then(|| ("shutdown", "agent shutting down".to_string()))
    }

    /// What the agent tells every Overwatch, in the gossip wire's own type.
    pub fn reports(&self) -> Vec<BackendReport> {
        let drain = self.drain().map(|(_, r)| r);
        self.backends
            .iter()
            .map(|b| BackendReport {
                key: BackendKey::new(&b.service, b.address, b.port),
                weight: b.weight,
                healthy: b.healthy,
                draining: drain.is_some(),
                drain_reason: drain.clone(),
                last_error: b.last_error.clone(),
            })
            .collect()
    }

    /// Records a check verdict; true when what we report changed.
    pub fn check_result(
        &mut self,
        index: usize,
        healthy: bool,
        error: Option<String>,
        at: u64,
    ) -> bool {
        let Some(b) = self.backends.get_mut(index) else {
            return false;
        };
        let changed = b.healthy != healthy || !b.checked || b.last_error != error;
        b.healthy = healthy;
        b.checked = true;
        b.last_error = error;
        b.last_check = Some(at);
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> AgentState {
        let b: AgentBackend =
            serde_norway::from_str("{service: app.test, address: 127.0.0.1, port: 80}").unwrap();
        AgentState::new(&[b])
    }

    #[test]
    fn drain_sources_are_independent() {
        let mut s = state();
        assert_eq!(s.drain(), None);
        s.api_drain = Some("ops".into());
        s.file_drain = Some("file".into());
        assert_eq!(s.drain(), Some(("drain_file", "file".into())));
        s.file_drain = None;
        assert_eq!(s.drain(), Some(("api", "ops".into())));
        s.api_drain = None;
        s.shutting_down = true;
        assert_eq!(s.drain().unwrap().0, "shutdown");
        assert!(s.reports()[0].draining);
    }

    #[test]
    fn reload_keeps_verdicts_of_unchanged_backends() {
        let mut s = state();
        s.check_result(0, true, None, 1);
        s.api_drain = Some("ops".into());
        let b: AgentBackend =
            serde_norway::from_str("{service: app.test, address: 127.0.0.1, port: 80, weight: 5}")
                .unwrap();
        let c: AgentBackend =
            serde_norway::from_str("{service: app.test, address: 127.0.0.2, port: 80}").unwrap();
        s.reconfigure(&[b, c]);
        assert!(s.backends[0].healthy && s.backends[0].weight == 5);
        assert!(!s.backends[1].checked);
        assert_eq!(s.api_drain.as_deref(), Some("ops"));
    }

    #[test]
    fn check_results_change_reports() {
        let mut s = state();
        assert!(!s.reports()[0].healthy);
        assert!(s.check_result(0, true, None, 1));
        assert!(!s.check_result(0, true, None, 2));
        assert!(s.check_result(0, false, Some("HTTP 503".into()), 3));
        assert_eq!(s.reports()[0].last_error.as_deref(), Some("HTTP 503"));
        assert!(!s.check_result(9, true, None, 4));
    }
}
