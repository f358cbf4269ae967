//! Key rollover state (docs/dnssec.md "Roll the key"): a combined signing
//! key replaced by pre-publication, in steps an operator can follow.
//!
//! 1. `published`: the new key is in the DNSKEY RRset beside the old one;
//!    the old key still signs everything (and is what CDS/CDNSKEY show).
//!    Next step once every resolver has seen the new DNSKEY RRset: the
//!    DNSKEY TTL plus a margin.
//! 2. `active`: the new key signs everything; the DNSKEY RRset (both keys)
//!    is signed by both, so resolvers holding the old DS still validate;
//!    CDS/CDNSKEY show the new key: the parent's DS is swapped now. Next
//!    step once the new DS is published and the old one has expired from
//!    caches: the parent's DS TTL plus its propagation.
//! 3. done: the old key leaves the DNSKEY RRset; the new key file replaces
//!    the old one.
//!
//! The state file beside the key (`<key file>.roll`) holds the phase, when
//! it began and the earliest time of the next step, in the `name: value`
//! lines of the key file format. Pure logic: callers do the file I/O.

/// Wait after publishing with the default DNSKEY TTL (the SOA TTL, 3600 s)
/// plus an hour; the CLI uses the configured `dns.soa.ttl` + 3600.
pub const DEFAULT_PUBLISH_WAIT: u64 = 7_200;
/// Default wait after activating: two days for the parent to publish the
/// new DS and for caches to drop the old one.
pub const DEFAULT_DS_WAIT: u64 = 2 * 86_400;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Published,
    Active,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Published => "published",
            Phase::Active => "active",
        }
    }

    /// What the next step does, for `dnssec status` and the CLI.
    pub fn next_step(self) -> &'static str {
        match self {
            Phase::Published => "the new key starts signing; CDS/CDNSKEY show it",
            Phase::Active => "the old key is removed (swap the DS at the parent first)",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RollState {
    pub phase: Phase,
    /// Unix seconds the phase began.
    pub since: u64,
    /// Earliest Unix second of the next step.
    pub next_step: u64,
}

impl RollState {
    pub fn parse(text: &str) -> Result<RollState, String> {
        let (mut phase, mut since, mut next_step) = (None, None, None);
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((name, value)) = line.split_once(':') else {
                return Err(format!("line {}: expected `name: value`", i + 1));
            };
            let value = value.trim();
            let number = || {
                value
                    .parse::<u64>()
                    .map_err(|_| format!("line {}: {value:?} is not Unix seconds", i + 1))
            };
            match name.trim() {
                "phase" => {
                    phase = Some(match value {
                        "published" => Phase::Published,
                        "active" => Phase::Active,
                        _ => {
                            return Err(format!(
                                "line {}: unknown phase {value:?} (published or active)",
                                i + 1
                            ));
                        }
                    })
                }
                "since" => since = Some(number()?),
                "next_step" => next_step = Some(number()?),
                other => return Err(format!("line {}: unknown field {other:?}", i + 1)),
            }
        }
        Ok(RollState {
            phase: phase.ok_or("no `phase:` line")?,
            since: since.ok_or("no `since:` line")?,
            next_step: next_step.ok_or("no `next_step:` line")?,
        })
    }

    pub fn to_text(&self) -> String {
        format!(
            "# OpenGSLB DNSSEC key rollover state (opengslb-cli dnssec rollover).\n\
             phase: {}\nsince: {}\nnext_step: {}\n",
            self.phase.name(),
            self.since,
            self.next_step
        )
    }

    /// A rollover begun at `now`.
    pub fn start(now: u64, publish_wait: u64) -> RollState {
        RollState {
            phase: Phase::Published,
            since: now,
            next_step: now.saturating_add(publish_wait),
        }
    }

    /// The state after the next step at `now`: Some(active) from
    /// published, None (done) from active. Refused before `next_step`
    /// unless `force`, with the time left in the message.
    pub fn step(&self, now: u64, force: bool, ds_wait: u64) -> Result<Option<RollState>, String> {
        if now < self.next_step && !force {
            return Err(format!(
                "the next step ({}) is due at {} (Unix seconds), in {} s; \
                 --now takes it anyway, before resolvers can have seen the last change",
                self.phase.next_step(),
                self.next_step,
                self.next_step - now
            ));
        }
        Ok(match self.phase {
            Phase::Published => Some(RollState {
                phase: Phase::Active,
                since: now,
                next_step: now.saturating_add(ds_wait),
            }),
            Phase::Active => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_wait_for_their_time_unless_forced_and_round_trip_as_text() {
        let s = RollState::start(1_000, DEFAULT_PUBLISH_WAIT);
        assert_eq!(s.phase, Phase::Published);
        assert_eq!(RollState::parse(&s.to_text()).unwrap(), s);
        let early = s.step(1_000 + 60, false, DEFAULT_DS_WAIT).unwrap_err();
        assert!(early.contains("in 7140 s"), "{early}");
        let a = s.step(1_000 + 7_200, false, 10).unwrap().unwrap();
        assert_eq!(
            (a.phase, a.since, a.next_step),
            (Phase::Active, 8_200, 8_210)
        );
        assert!(a.step(8_205, false, 10).is_err());
        assert_eq!(a.step(8_205, true, 10).unwrap(), None);
        assert_eq!(a.step(8_210, false, 10).unwrap(), None);
        assert!(RollState::parse("phase: gone\nsince: 1\nnext_step: 2\n").is_err());
        assert!(RollState::parse("phase: active\n").is_err());
    }
}
