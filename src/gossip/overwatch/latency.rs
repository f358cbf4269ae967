//! Latency reports from a registered session: the session tag must verify
//! like any session message; each entry is kept only for a service that
//! is a configured domain and that the agent's registration token is
//! valid for. Refused entries are counted (`Counters::latency_refused`),
//! never applied. Reports are not acknowledged: the next one supersedes.

use super::{Output, OverwatchEvent, OverwatchProtocol, Pkt};
use crate::backend::normalize_name;
use crate::gossip::wire::LatencyReport;
use crate::gossip::{RejectReason, ct_eq};

impl OverwatchProtocol {
    pub(super) fn on_latency(&mut self, r: LatencyReport, pkt: Pkt<'_>, out: &mut Output) {
        let Pkt {
            session,
            src,
            now,
            policy,
            ..
        } = pkt;
        if self
            .session_of(&r.agent_id, session, src, now.mono, policy, out)
            .is_none()
        {
            return;
        }
        let Some(agent) = self.agents.get(&r.agent_id) else {
            return;
        };
        let region = agent.region.clone();
        let token = agent.token.as_bytes();
        let mut entries = r.entries;
        let mut refused = Vec::new();
        entries.retain_mut(|e| {
            e.service = normalize_name(&e.service);
            let reason = if !policy.known_services.contains(&e.service) {
                RejectReason::UnknownService
            } else if policy
                .agent_tokens
                .get(&e.service)
                .is_some_and(|t| ct_eq(t.as_bytes(), token))
            {
                return true;
            } else {
                RejectReason::TokenInvalid
            };
            refused.push(reason);
            false
        });
        // Counted like refused registrations too (the auth failure metric).
        self.counters.latency_refused += refused.len() as u64;
        for reason in refused {
            *self.counters.auth_failures.entry(reason).or_default() += 1;
        }
        if !entries.is_empty() {
            out.events.push(OverwatchEvent::Latency {
                agent_id: r.agent_id,
                region,
                entries,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::gossip::overwatch::OverwatchEvent;
    use crate::gossip::sim::{CLEAN, SERVICE, Sim, backend, config, identity};
    use crate::gossip::wire::LatencyEntry;
    use crate::netprefix::ClientPrefix;

    fn entry(service: &str) -> LatencyEntry {
        LatencyEntry {
            service: service.into(),
            prefix: ClientPrefix::parse("192.0.2.0/24").unwrap(),
            rtt_us: 5_000,
            samples: 4,
        }
    }

    #[test]
    fn only_services_the_token_is_valid_for_are_kept_the_rest_counted() {
        let mut sim = Sim::new(5, CLEAN);
        let a = sim.add_agent(config("eu-a", identity()));
        let now = sim.clock();
        assert!(
            sim.agents[a]
                .latency_report(&[entry(SERVICE)], now)
                .is_empty()
        );
        sim.set_state(a, &[backend(1, true)]);
        sim.run(3_000);
        assert!(sim.agents[a].is_registered());
        let entries = [
            entry(SERVICE),
            entry("other.example.com"),
            entry("nope.example.com"),
        ];
        let now = sim.clock();
        let outs = sim.agents[a].latency_report(&entries, now);
        assert_eq!(outs.len(), 1);
        sim.send_from(a, outs);
        sim.run(100);
        let got: Vec<_> = sim
            .events
            .iter()
            .filter_map(|e| match e {
                OverwatchEvent::Latency {
                    region, entries, ..
                } => Some((region.clone(), entries.len())),
                _ => None,
            })
            .collect();
        assert_eq!(got, [("eu".to_string(), 1)]);
        assert_eq!(sim.ow.counters().latency_refused, 2);
    }
}
