//! Where the daemon binds each listener, read from a loaded configuration
//! with the parser `--check` validates with (`config::Listener::parse`), so
//! an address the check accepted cannot fail here; and the optional
//! metrics listener, which both modes run.

use crate::config::{Config, Listener, Mode};
use crate::exit::ExitError;
use crate::httpserve::HttpServer;
use crate::metrics::{Render, server};
use std::net::SocketAddr;

/// The text of `listener`'s key, when that listener runs in `mode` with
/// this configuration (`None`: disabled, unset, or not used in that mode).
pub fn configured(cfg: &Config, mode: Mode, listener: Listener) -> Option<&str> {
    match (listener, mode) {
        (Listener::Dns, Mode::Overwatch) => Some(&cfg.dns.listen_address),
        (Listener::Gossip, Mode::Overwatch) => Some(&cfg.overwatch.gossip.bind_address),
        (Listener::Api, Mode::Overwatch) => cfg.api.enabled.then_some(cfg.api.address.as_str()),
        (Listener::Metrics, _) => cfg
            .metrics
            .address
            .as_deref()
            .filter(|_| cfg.metrics.enabled),
        (Listener::AgentApi, Mode::Agent) => cfg
            .agent
            .as_ref()
            .filter(|a| a.api.enabled)
            .map(|a| a.api.address.as_str()),
        _ => None,
    }
}

/// The address the daemon binds for `listener`, if it runs.
pub fn address(
    cfg: &Config,
    mode: Mode,
    listener: Listener,
) -> Result<Option<SocketAddr>, ExitError> {
    configured(cfg, mode, listener)
        .map(|text| {
            listener
                .parse(text)
                .map_err(|e| ExitError::config(format!("{}: {e}", listener.key())))
        })
        .transpose()
}

/// Like [`address`], for a listener that always runs in that mode.
pub fn required(cfg: &Config, mode: Mode, listener: Listener) -> Result<SocketAddr, ExitError> {
    address(cfg, mode, listener)?
        .ok_or_else(|| ExitError::config(format!("{} is not configured", listener.key())))
}

/// The optional extra `/metrics` listener (`metrics.address`), both modes.
pub fn start_metrics(
    cfg: &Config,
    mode: Mode,
    render: Render,
) -> Result<Option<HttpServer>, ExitError> {
    let Some(addr) = address(cfg, mode, Listener::Metrics)? else {
        return Ok(None);
    };
    let server = server::start(addr, render).map_err(|e| {
        ExitError::failure(format!("cannot start the metrics listener on {addr}: {e}"))
    })?;
    log::info!(
        "metrics listening on http://{}/metrics",
        server.local_addr()
    );
    Ok(Some(server))
}
