//! The integration tests that need nothing but loopback: configuration,
//! DNS, API and CLI, gossip, health checks, operations and regressions.
//! One binary, one module per area (`cargo test --test it dns_server::`
//! runs one area); helpers live in tests/util.

#[path = "../util/mod.rs"]
mod util;

mod agent_claims;
mod agent_gossip;
mod agent_lost;
mod api_contract;
mod api_crud;
mod api_openapi;
mod api_starvation;
mod api_writer_cap;
mod bad_input;
mod cert_renewal;
mod cli_commands;
mod cli_completion;
mod config_load;
mod config_v11;
mod daemon_listen;
mod dns_alloc;
mod dns_cookie_peers;
mod dns_corpus;
mod dns_internet;
mod dns_resolver;
mod dns_server;
mod dnssec;
mod dnssec_rollover;
mod dnsviz;
mod fuzz_corpus;
mod geo;
mod geo_api;
mod geo_peers;
mod geo_watch;
mod gossip_loopback;
mod gossip_sim;
mod health_checks;
mod latency_routing;
mod learned_latency;
mod learned_netns;
mod ops_audit_rotation;
mod ops_metrics;
mod ops_restart;
mod ops_runbook;
mod ops_runbook_docs;
mod ops_v11;
mod overwatch_dns;
mod peers;
mod peers_managed;
mod regressions;
