//! Value checks on the typed configuration: addresses, networks, keys,
//! thresholds, and the references between regions, domains and zones.
//!
//! Pure: it reads nothing from disk (secret files are read by the loader)
//! and returns (concrete key path, message) pairs that the loader places at
//! a file and line.

use super::duration::Dur;
use super::listen::Listener;
use super::schema::*;
use super::values::{
    decode_key, in_zone, is_dns_name, normalize_name, parse_host_port, parse_network,
};
use std::collections::HashMap;

/// The key shipped in `etc/opengslb/*.yaml`, so its use can be flagged.
pub const EXAMPLE_KEY: &str = "b3BlbmdzbGItZXhhbXBsZS1rZXktUkVQTEFDRS1NRSE=";

pub const LOG_LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace"];

#[derive(Default)]
pub struct Report {
    pub errors: Vec<(String, String)>,
    /// (path, path of the first definition, what is defined twice); the
    /// loader names the file and line of both.
    pub duplicates: Vec<(String, String, String)>,
    pub warnings: Vec<(String, String)>,
}

impl Report {
    fn err(&mut self, path: impl Into<String>, msg: impl Into<String>) {
        self.errors.push((path.into(), msg.into()));
    }
    fn check(&mut self, path: impl Into<String>, result: Result<impl Sized, String>) {
        if let Err(e) = result {
            self.err(path, e);
        }
    }
}

/// A listen address, through the one parser the daemon binds with.
fn listen(r: &mut Report, listener: Listener, text: &str) {
    if let Err(e) = listener.parse(text) {
        r.err(listener.key(), e.to_string());
    }
}

pub fn validate(cfg: &Config, mode: Mode) -> Report {
    let mut r = Report::default();
    if !LOG_LEVELS.contains(&cfg.logging.level.to_ascii_lowercase().as_str()) {
        r.err(
            "logging.level",
            format!(
                "invalid level {:?}; expected one of: {}",
                cfg.logging.level,
                LOG_LEVELS.join(", ")
            ),
        );
    }
    if let Some(addr) = &cfg.metrics.address {
        listen(&mut r, Listener::Metrics, addr);
    }
    match mode {
        Mode::Overwatch => overwatch(cfg, &mut r),
        Mode::Agent => {
            if let Some(agent) = &cfg.agent {
                agent_checks(agent, &mut r);
            }
        }
    }
    r
}

fn positive(r: &mut Report, path: &str, d: Dur) {
    if d.is_zero() {
        r.err(path, "must be greater than zero");
    }
}

fn keyring(
    r: &mut Report,
    prefix: &str,
    key: &Option<String>,
    key_file: &Option<String>,
    keys: &[String],
) {
    if key.is_some() && key_file.is_some() {
        r.err(
            format!("{prefix}.encryption_key_file"),
            "set either encryption_key or encryption_key_file, not both",
        );
    }
    if let Some(k) = key {
        r.check(format!("{prefix}.encryption_key"), decode_key(k));
        if k.trim() == EXAMPLE_KEY {
            r.warnings.push((
                format!("{prefix}.encryption_key"),
                "this is the published example key; replace it with the output of `opengslb-cli gen-key`".into(),
            ));
        }
    }
    for (i, k) in keys.iter().enumerate() {
        r.check(format!("{prefix}.encryption_keys[{i}]"), decode_key(k));
    }
}

fn nameservers(cfg: &Config, r: &mut Report) {
    let dns = &cfg.dns;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, ns) in dns.nameservers.iter().enumerate() {
        let p = format!("dns.nameservers[{i}]");
        if !is_dns_name(&ns.name) {
            r.err(
                format!("{p}.name"),
                format!("invalid name server {:?}", ns.name),
            );
            continue;
        }
        let name = normalize_name(&ns.name);
        if let Some(&first) = seen.get(&name) {
            r.duplicates.push((
                format!("{p}.name"),
                format!("dns.nameservers[{first}].name"),
                format!("name server {:?}", ns.name),
            ));
        } else {
            seen.insert(name.clone(), i);
        }
        for (j, a) in ns.addresses.iter().enumerate() {
            if a.trim().parse::<std::net::IpAddr>().is_err() {
                r.err(
                    format!("{p}.addresses[{j}]"),
                    format!("invalid address {a:?}: expected an IPv4 or IPv6 address"),
                );
            }
        }
        let served = dns
            .zones
            .iter()
            .map(String::as_str)
            .chain(cfg.domains.iter().map(|d| d.name.as_str()))
            .any(|z| in_zone(&name, z));
        if !ns.addresses.is_empty() && !served {
            r.warnings.push((
                format!("{p}.addresses"),
                format!(
                    "{:?} is outside every zone served here, so its addresses are never served; its own zone must publish them",
                    ns.name
                ),
            ));
        }
    }
}

fn rate_limit(rl: &RateLimitConfig, r: &mut Report) {
    let p = "dns.rate_limit";
    if rl.ipv4_prefix == 0 || rl.ipv4_prefix > 32 {
        r.err(format!("{p}.ipv4_prefix"), "must be from 1 to 32");
    }
    if rl.ipv6_prefix == 0 || rl.ipv6_prefix > 128 {
        r.err(format!("{p}.ipv6_prefix"), "must be from 1 to 128");
    }
    if rl.responses_per_second > 1_000_000 {
        r.err(
            format!("{p}.responses_per_second"),
            "must be at most 1000000 (0 turns rate limiting off)",
        );
    }
    for (i, net) in rl.whitelist.iter().enumerate() {
        r.check(format!("{p}.whitelist[{i}]"), parse_network(net));
    }
}

fn overwatch(cfg: &Config, r: &mut Report) {
    let dns = &cfg.dns;
    listen(r, Listener::Dns, &dns.listen_address);
    for (i, zone) in dns.zones.iter().enumerate() {
        if !is_dns_name(zone) {
            r.err(
                format!("dns.zones[{i}]"),
                format!("invalid zone name {zone:?}"),
            );
        }
    }
    if dns.threads == 0 {
        r.err("dns.threads", "must be at least 1");
    }
    if dns.tcp_max_connections == 0 {
        r.err("dns.tcp_max_connections", "must be at least 1");
    }
    if dns.max_udp_size < 512 {
        r.err("dns.max_udp_size", "must be at least 512");
    }
    positive(r, "dns.tcp_idle_timeout", dns.tcp_idle_timeout);
    nameservers(cfg, r);
    rate_limit(&dns.rate_limit, r);
    for (key, value) in [("mname", &dns.soa.mname), ("rname", &dns.soa.rname)] {
        if let Some(name) = value.as_deref().filter(|n| !is_dns_name(n)) {
            r.err(format!("dns.soa.{key}"), format!("invalid name {name:?}"));
        }
    }

    let ow = &cfg.overwatch;
    listen(r, Listener::Gossip, &ow.gossip.bind_address);
    keyring(
        r,
        "overwatch.gossip",
        &ow.gossip.encryption_key,
        &ow.gossip.encryption_key_file,
        &ow.gossip.encryption_keys,
    );
    positive(
        r,
        "overwatch.validation.check_interval",
        ow.validation.check_interval,
    );
    positive(
        r,
        "overwatch.validation.check_timeout",
        ow.validation.check_timeout,
    );
    if let Some(t) = ow.stale.threshold {
        positive(r, "overwatch.stale.threshold", t);
    }
    positive(r, "overwatch.stale.remove_after", ow.stale.remove_after);
    if ow.data_dir.trim().is_empty() {
        r.err("overwatch.data_dir", "must not be empty");
    }
    for (i, peer) in ow.peers.iter().enumerate() {
        r.check(format!("overwatch.peers[{i}]"), parse_host_port(peer));
    }
    positive(r, "overwatch.peer_sync.interval", ow.peer_sync.interval);
    positive(
        r,
        "overwatch.peer_sync.tombstone_ttl",
        ow.peer_sync.tombstone_ttl,
    );

    let domain_names: Vec<String> = cfg
        .domains
        .iter()
        .map(|d| normalize_name(&d.name))
        .collect();
    for (service, token) in &ow.agent_tokens {
        let path = format!("overwatch.agent_tokens.{service}");
        if token.trim().is_empty() {
            r.err(&path, "token must not be empty");
        }
        if !domain_names.contains(&normalize_name(service)) {
            r.warnings.push((
                path,
                format!(
                    "no domain named {service:?}; agents reporting this service will be refused"
                ),
            ));
        }
    }

    let mut region_seen: HashMap<&str, usize> = HashMap::new();
    for (i, region) in cfg.regions.iter().enumerate() {
        let p = format!("regions[{i}]");
        if region.name.trim().is_empty() {
            r.err(format!("{p}.name"), "must not be empty");
        } else if let Some(&first) = region_seen.get(region.name.as_str()) {
            r.duplicates.push((
                format!("{p}.name"),
                format!("regions[{first}].name"),
                format!("region {:?}", region.name),
            ));
        } else {
            region_seen.insert(&region.name, i);
        }
        for (j, server) in region.servers.iter().enumerate() {
            let sp = format!("{p}.servers[{j}]");
            // Host names were resolved by the loader (compat.rs), which
            // reports those that do not resolve.
            if server.address.parse::<std::net::IpAddr>().is_err()
                && !super::compat::is_host_name(&server.address)
            {
                r.err(
                    format!("{sp}.address"),
                    format!("{:?} is not an IP address or host name", server.address),
                );
            }
            if server.port == 0 {
                r.err(format!("{sp}.port"), "must be from 1 to 65535");
            }
            if !server.service.is_empty()
                && !domain_names.contains(&normalize_name(&server.service))
            {
                r.err(
                    format!("{sp}.service"),
                    format!("{:?} is not a configured domain", server.service),
                );
            }
        }
        health_check(r, &format!("{p}.health_check"), &region.health_check);
    }

    let mut domain_seen: HashMap<String, usize> = HashMap::new();
    for (i, domain) in cfg.domains.iter().enumerate() {
        let p = format!("domains[{i}]");
        if !is_dns_name(&domain.name) {
            r.err(
                format!("{p}.name"),
                format!("invalid domain name {:?}", domain.name),
            );
        } else if let Some(&first) = domain_seen.get(&normalize_name(&domain.name)) {
            r.duplicates.push((
                format!("{p}.name"),
                format!("domains[{first}].name"),
                format!("domain {:?}", domain.name),
            ));
        }
        // A domain outside dns.zones is made its own zone apex by the
        // loader (compat.rs), with a warning.
        domain_seen.entry(normalize_name(&domain.name)).or_insert(i);
        // No regions is fine: agent-reported backends of any region join
        // the name; `regions` only orders them and adds static servers.
        for (j, name) in domain.regions.iter().enumerate() {
            if !region_seen.contains_key(name.as_str()) {
                r.err(
                    format!("{p}.regions[{j}]"),
                    format!("region {name:?} is not defined in regions"),
                );
            }
        }
        if domain.max_records == Some(0) {
            r.err(format!("{p}.max_records"), "must be at least 1");
        }
    }

    r.errors.extend(super::geo_rules::errors(cfg));
    listen(r, Listener::Api, &cfg.api.address);
    for (i, net) in cfg.api.allowed_networks.iter().enumerate() {
        r.check(format!("api.allowed_networks[{i}]"), parse_network(net));
    }
    for (name, token) in &cfg.api.tokens {
        if token.trim().is_empty() {
            r.err(format!("api.tokens.{name}"), "token must not be empty");
        }
    }
}

fn health_check(r: &mut Report, p: &str, hc: &HealthCheck) {
    positive(r, &format!("{p}.interval"), hc.interval);
    positive(r, &format!("{p}.timeout"), hc.timeout);
    // Allowed (a target never has two probes in flight), but worth a word:
    // a hung backend is then noticed only after the timeout.
    if hc.timeout > hc.interval {
        r.warnings.push((
            format!("{p}.timeout"),
            format!(
                "{} is longer than the interval {}; a hung backend is noticed only after the timeout",
                hc.timeout, hc.interval
            ),
        ));
    }
    if hc.failure_threshold == 0 {
        r.err(format!("{p}.failure_threshold"), "must be at least 1");
    }
    if hc.success_threshold == 0 {
        r.err(format!("{p}.success_threshold"), "must be at least 1");
    }
    if hc.kind != CheckType::Tcp && !hc.path.starts_with('/') {
        r.err(
            format!("{p}.path"),
            format!("{:?} must start with /", hc.path),
        );
    }
    for (i, code) in hc.expected_status.iter().enumerate() {
        if !(100..=599).contains(code) {
            r.err(
                format!("{p}.expected_status[{i}]"),
                format!("{code} is not an HTTP status code"),
            );
        }
    }
}

fn agent_checks(agent: &AgentConfig, r: &mut Report) {
    let id = &agent.identity;
    match (&id.service_token, &id.service_token_file) {
        (None, None) => r.err(
            "agent.identity",
            "missing service_token (or service_token_file)",
        ),
        (Some(_), Some(_)) => r.err(
            "agent.identity.service_token_file",
            "set either service_token or service_token_file, not both",
        ),
        (Some(t), None) if t.trim().is_empty() => {
            r.err("agent.identity.service_token", "must not be empty")
        }
        _ => {}
    }
    // An empty region is allowed (v1.1): the Overwatch files the agent's
    // backends under its own `overwatch.identity.region`.
    if id.agent_id.as_deref().is_some_and(|a| a.trim().is_empty()) {
        r.err("agent.identity.agent_id", "must not be empty when set");
    }
    for (key, value) in [("cert_path", &id.cert_path), ("key_path", &id.key_path)] {
        if value.trim().is_empty() {
            r.err(format!("agent.identity.{key}"), "must not be empty");
        }
    }

    if agent.backends.is_empty() {
        r.err(
            "agent.backends",
            "no backends configured; list at least one",
        );
    }
    for (i, b) in agent.backends.iter().enumerate() {
        let p = format!("agent.backends[{i}]");
        if !is_dns_name(&b.service) {
            r.err(
                format!("{p}.service"),
                format!("{:?} is not a valid domain name", b.service),
            );
        }
        if b.address.parse::<std::net::IpAddr>().is_err()
            && !super::compat::is_host_name(&b.address)
        {
            r.err(
                format!("{p}.address"),
                format!("{:?} is not an IP address or host name", b.address),
            );
        }
        if b.port == 0 {
            r.err(format!("{p}.port"), "must be from 1 to 65535");
        }
        health_check(r, &format!("{p}.health_check"), &b.health_check);
    }

    let g = &agent.gossip;
    if g.encryption_key.is_none() && g.encryption_key_file.is_none() {
        r.err(
            "agent.gossip",
            "missing encryption_key (or encryption_key_file)",
        );
    }
    keyring(
        r,
        "agent.gossip",
        &g.encryption_key,
        &g.encryption_key_file,
        &g.encryption_keys,
    );
    if g.overwatch_nodes.is_empty() {
        r.err(
            "agent.gossip.overwatch_nodes",
            "no overwatch nodes listed; list at least one HOST:PORT",
        );
    }
    for (i, node) in g.overwatch_nodes.iter().enumerate() {
        r.check(
            format!("agent.gossip.overwatch_nodes[{i}]"),
            parse_host_port(node),
        );
    }

    positive(r, "agent.heartbeat.interval", agent.heartbeat.interval);
    if agent.heartbeat.missed_threshold == 0 {
        r.err("agent.heartbeat.missed_threshold", "must be at least 1");
    }
    let pred = &agent.predictive;
    positive(r, "agent.predictive.check_interval", pred.check_interval);
    for (name, sig) in [
        ("cpu", &pred.cpu),
        ("memory", &pred.memory),
        ("error_rate", &pred.error_rate),
    ] {
        if !(sig.threshold > 0.0 && sig.threshold <= 100.0) {
            r.err(
                format!("agent.predictive.{name}.threshold"),
                format!(
                    "{} is out of range: use a fraction (0.85) or a percentage (85)",
                    sig.threshold
                ),
            );
        }
        positive(r, &format!("agent.predictive.{name}.window"), sig.window);
    }
    if agent
        .drain_file
        .as_deref()
        .is_some_and(|f| f.trim().is_empty())
    {
        r.err("agent.drain_file", "must not be empty when set");
    }
    listen(r, Listener::AgentApi, &agent.api.address);
    latency_learning(r, &agent.latency_learning);
}

fn latency_learning(r: &mut Report, l: &crate::config::LatencyLearningConfig) {
    const P: &str = "agent.latency_learning";
    positive(r, &format!("{P}.poll_interval"), l.poll_interval);
    positive(r, &format!("{P}.subnet_ttl"), l.subnet_ttl);
    positive(r, &format!("{P}.report_interval"), l.report_interval);
    if !(1..=32).contains(&l.ipv4_prefix) {
        r.err(format!("{P}.ipv4_prefix"), "must be from 1 to 32");
    }
    if !(1..=128).contains(&l.ipv6_prefix) {
        r.err(format!("{P}.ipv6_prefix"), "must be from 1 to 128");
    }
    if !(l.ewma_alpha > 0.0 && l.ewma_alpha <= 1.0) {
        r.err(
            format!("{P}.ewma_alpha"),
            format!(
                "{} is out of range: must be above 0 and at most 1",
                l.ewma_alpha
            ),
        );
    }
    if l.max_subnets == 0 || l.max_subnets > 1_000_000 {
        r.err(format!("{P}.max_subnets"), "must be from 1 to 1000000");
    }
    if l.min_samples == 0 {
        r.err(format!("{P}.min_samples"), "must be at least 1");
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Mode, NameServer, load_str};
    use std::path::Path;

    fn load(yaml: &str) -> Result<crate::config::Loaded, String> {
        load_str(yaml, Path::new("t.yaml"), Some(Mode::Overwatch)).map_err(|e| e.to_string())
    }

    #[test]
    fn nameservers_take_names_or_names_with_addresses() {
        let l = load(
            "dns:\n  zones: [gslb.example.com]\n  nameservers:\n    - ns1.example.net\n    - name: ns2.gslb.example.com\n      addresses: [192.0.2.53, '2001:db8::53']\n",
        )
        .unwrap();
        assert_eq!(
            l.config.dns.nameservers,
            vec![
                NameServer {
                    name: "ns1.example.net".into(),
                    addresses: vec![],
                },
                NameServer {
                    name: "ns2.gslb.example.com".into(),
                    addresses: vec!["192.0.2.53".into(), "2001:db8::53".into()],
                },
            ]
        );
    }

    #[test]
    fn nameserver_and_rate_limit_errors_name_the_key() {
        let e = load(
            "dns:\n  nameservers:\n    - name: ns1.example.com\n      addresses: [not-an-ip]\n      adresses: []\n    - {addresses: [192.0.2.1]}\n    - 'bad..name'\n  rate_limit:\n    responses_per_second: 10\n    ipv4_prefix: 33\n    whitelist: [10.0.0.0/33]\n",
        )
        .unwrap_err();
        for want in [
            "dns.nameservers[0].adresses: unknown key (did you mean \"addresses\"?)",
            "dns.nameservers[0].addresses[0]: invalid address \"not-an-ip\"",
            "dns.nameservers[1]: missing required key \"name\"",
            "dns.nameservers[2].name: invalid name server",
            "dns.rate_limit.ipv4_prefix: must be from 1 to 32",
            "dns.rate_limit.whitelist[0]: invalid network",
        ] {
            assert!(e.contains(want), "missing {want:?} in:\n{e}");
        }
    }

    #[test]
    fn rate_limit_is_off_by_default_with_nsd_like_defaults() {
        let rl = load("dns: {}\n").unwrap().config.dns.rate_limit;
        assert_eq!(rl.responses_per_second, 0);
        assert_eq!((rl.slip, rl.ipv4_prefix, rl.ipv6_prefix), (2, 24, 56));
    }
}
