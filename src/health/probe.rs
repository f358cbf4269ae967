//! One health probe: HTTP, HTTPS or TCP against one address and port.
//!
//! HTTP(S) goes through ureq 3 with rustls (ring). The request URL carries
//! the configured `host` (or the address when none is set), so the Host
//! header and the TLS SNI name come from it, while a resolver pinned per
//! probe makes the connection go to the configured address: a backend is
//! checked as the clients reach it by name, without DNS. Connection pooling
//! is off (every probe opens a fresh connection, which is what a health
//! check must prove), no proxy from the environment, no redirects, and the
//! response body is never read. Errors are short operator-facing strings:
//! `connect: connection refused`, `timeout after 2s`, `HTTP 503`,
//! `tls: invalid peer certificate: UnknownIssuer`.
//!
//! A `Prober` owns its ureq agents and is meant to live in one worker
//! thread for its whole life; `probe()` builds a throwaway one for one-off
//! checks.

use crate::config::{CheckType, Dur, HealthCheck};
use std::cell::Cell;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use ureq::Agent;
use ureq::http::Uri;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

/// Everything one probe needs, resolved from the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeSpec {
    pub kind: CheckType,
    /// Where to connect.
    pub addr: SocketAddr,
    /// Request path with its leading `/` (HTTP and HTTPS).
    pub path: String,
    /// Host header and TLS server name; `None` uses the address.
    pub host: Option<String>,
    /// Budget for connect plus the whole request.
    pub timeout: Duration,
    /// Healthy status codes; empty means any 2xx.
    pub expected_status: Vec<u16>,
    /// HTTPS: accept any certificate (self-signed backends).
    pub insecure_skip_verify: bool,
}

/// A health check that cannot be turned into a probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpecError {
    /// The backend address is not an IP address.
    Address(String),
    /// `health_check.host` is not a valid host name.
    Host(String),
    /// `health_check.path` cannot be sent in a request line.
    Path(String),
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecError::Address(a) => write!(f, "health check address {a:?} is not an IP address"),
            SpecError::Host(h) => write!(f, "health_check.host {h:?} is not a valid host name"),
            SpecError::Path(p) => write!(f, "health_check.path {p:?} is not a valid request path"),
        }
    }
}

impl std::error::Error for SpecError {}

impl ProbeSpec {
    /// Builds a spec from a configured check and the backend's address.
    /// `address` may be written `::1` or `[::1]`.
    pub fn from_config(hc: &HealthCheck, address: &str, port: u16) -> Result<ProbeSpec, SpecError> {
        let trimmed = address.trim();
        let bare = trimmed
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(trimmed);
        let ip: IpAddr = bare
            .parse()
            .map_err(|_| SpecError::Address(address.to_string()))?;
        ProbeSpec::new(hc, SocketAddr::new(ip, port))
    }

    /// Builds a spec from a configured check and a socket address.
    pub fn new(hc: &HealthCheck, addr: SocketAddr) -> Result<ProbeSpec, SpecError> {
        let host = match hc.host.trim() {
            "" => None,
            h => {
                let valid = h.parse::<ureq::http::uri::Authority>().is_ok()
                    && !h.contains('@')
                    && h.bytes().all(|b| b.is_ascii_graphic());
                if !valid {
                    return Err(SpecError::Host(hc.host.clone()));
                }
                Some(h.to_string())
            }
        };
        let path = match hc.path.trim() {
            "" => "/".to_string(),
            p if p.starts_with('/') => p.to_string(),
            p => format!("/{p}"),
        };
        if path
            .parse::<ureq::http::uri::PathAndQuery>()
            .map_err(|_| ())
            .and_then(|pq| if pq.as_str() == path { Ok(()) } else { Err(()) })
            .is_err()
        {
            return Err(SpecError::Path(hc.path.clone()));
        }
        Ok(ProbeSpec {
            kind: hc.kind,
            addr,
            path,
            host,
            timeout: *hc.timeout,
            expected_status: hc.expected_status.clone(),
            insecure_skip_verify: hc.insecure_skip_verify,
        })
    }

    /// The URL the request is sent to; its authority is the Host header
    /// and TLS server name, the connection goes to `addr` regardless.
    pub fn url(&self) -> String {
        let scheme = match self.kind {
            CheckType::Https => "https",
            CheckType::Http | CheckType::Tcp => "http",
        };
        match &self.host {
            Some(h) => format!("{scheme}://{h}{}", self.path),
            // SocketAddr's Display brackets IPv6: [::1]:8080.
            None => format!("{scheme}://{}{}", self.addr, self.path),
        }
    }

    fn status_ok(&self, status: u16) -> bool {
        if self.expected_status.is_empty() {
            (200..300).contains(&status)
        } else {
            self.expected_status.contains(&status)
        }
    }
}

impl fmt::Display for ProbeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            CheckType::Tcp => write!(f, "tcp {}", self.addr),
            CheckType::Http | CheckType::Https => {
                write!(f, "{}", self.url())?;
                if self.host.is_some() {
                    write!(f, " via {}", self.addr)?;
                }
                Ok(())
            }
        }
    }
}

/// Resolves every name to the address the current probe pins.
#[derive(Debug, Default)]
struct PinnedResolver {
    pin: Arc<Mutex<Option<SocketAddr>>>,
}

impl Resolver for PinnedResolver {
    fn resolve(
        &self,
        _uri: &Uri,
        _config: &ureq::config::Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let pinned = *self.pin.lock().unwrap_or_else(PoisonError::into_inner);
        let addr = pinned.ok_or(ureq::Error::HostNotFound)?;
        let mut out = self.empty();
        out.push(addr);
        Ok(out)
    }
}

/// Probes targets; one per worker thread, reused for every probe.
///
/// Not `Sync`: the pinned address is per prober, so two threads probing
/// through one prober at once could connect to each other's target.
pub struct Prober {
    /// Verifies certificates against the webpki roots.
    strict: Agent,
    /// Skips certificate verification (`insecure_skip_verify`).
    insecure: Agent,
    pin: Arc<Mutex<Option<SocketAddr>>>,
    _not_sync: PhantomData<Cell<()>>,
}

impl Default for Prober {
    fn default() -> Self {
        Prober::new()
    }
}

impl Prober {
    pub fn new() -> Prober {
        let pin = Arc::new(Mutex::new(None));
        let agent = |insecure: bool| {
            let tls = ureq::tls::TlsConfig::builder()
                .disable_verification(insecure)
                .build();
            let config = Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .proxy(None)
                .max_idle_connections(0)
                .max_idle_connections_per_host(0)
                .user_agent(format!("opengslb-health/{}", crate::VERSION))
                .tls_config(tls)
                .build();
            Agent::with_parts(
                config,
                DefaultConnector::default(),
                PinnedResolver { pin: pin.clone() },
            )
        };
        Prober {
            strict: agent(false),
            insecure: agent(true),
            pin,
            _not_sync: PhantomData,
        }
    }

    /// Runs one probe; `Ok` carries the latency (to the response headers
    /// for HTTP, to the established connection for TCP).
    pub fn probe(&self, spec: &ProbeSpec) -> Result<Duration, String> {
        match spec.kind {
            CheckType::Tcp => probe_tcp(spec),
            CheckType::Http | CheckType::Https => self.probe_http(spec),
        }
    }

    fn probe_http(&self, spec: &ProbeSpec) -> Result<Duration, String> {
        *self.pin.lock().unwrap_or_else(PoisonError::into_inner) = Some(spec.addr);
        let agent = if spec.kind == CheckType::Https && spec.insecure_skip_verify {
            &self.insecure
        } else {
            &self.strict
        };
        let timeout = clamp_timeout(spec.timeout);
        let start = Instant::now();
        let result = agent
            .get(spec.url())
            .config()
            .timeout_global(Some(timeout))
            .timeout_connect(Some(timeout))
            .build()
            .call();
        let latency = start.elapsed();
        *self.pin.lock().unwrap_or_else(PoisonError::into_inner) = None;
        // The body is dropped unread: the status line decides.
        let status = result
            .map_err(|e| describe_ureq_error(e, timeout))?
            .status()
            .as_u16();
        if spec.status_ok(status) {
            Ok(latency)
        } else {
            Err(format!("HTTP {status}"))
        }
    }
}

/// One probe with a throwaway `Prober` (for one-off checks; workers keep
/// theirs).
pub fn probe(spec: &ProbeSpec) -> Result<Duration, String> {
    Prober::new().probe(spec)
}

fn probe_tcp(spec: &ProbeSpec) -> Result<Duration, String> {
    let timeout = clamp_timeout(spec.timeout);
    let start = Instant::now();
    match TcpStream::connect_timeout(&spec.addr, timeout) {
        Ok(stream) => {
            let latency = start.elapsed();
            drop(stream);
            Ok(latency)
        }
        Err(e) if e.kind() == io::ErrorKind::TimedOut => Err(timeout_text(timeout)),
        Err(e) => Err(describe_io_error(&e)),
    }
}

/// Probe timeouts are kept within [1 ms, 10 min]: zero would make every
/// connect fail at once, and absurd values would overflow deadline maths.
fn clamp_timeout(timeout: Duration) -> Duration {
    timeout.clamp(Duration::from_millis(1), Duration::from_secs(600))
}

fn timeout_text(timeout: Duration) -> String {
    format!("timeout after {}", Dur(timeout))
}

fn describe_ureq_error(err: ureq::Error, timeout: Duration) -> String {
    match err {
        ureq::Error::Timeout(_) => timeout_text(timeout),
        ureq::Error::Io(e) => {
            if e.kind() == io::ErrorKind::TimedOut || e.kind() == io::ErrorKind::WouldBlock {
                return timeout_text(timeout);
            }
            if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return format!("tls: {tls}");
            }
            describe_io_error(&e)
        }
        ureq::Error::Rustls(e) => format!("tls: {e}"),
        ureq::Error::Tls(e) => format!("tls: {e}"),
        ureq::Error::Protocol(e) => format!("bad HTTP response: {e}"),
        ureq::Error::LargeResponseHeader(..) => "bad HTTP response: headers too large".to_string(),
        ureq::Error::HostNotFound => "resolve: host not found".to_string(),
        ureq::Error::ConnectionFailed => "connect: connection failed".to_string(),
        other => other.to_string(),
    }
}

fn describe_io_error(e: &io::Error) -> String {
    use io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => "connect: connection refused".to_string(),
        K::HostUnreachable => "connect: host unreachable".to_string(),
        K::NetworkUnreachable => "connect: network unreachable".to_string(),
        K::AddrNotAvailable => "connect: address not available".to_string(),
        K::ConnectionReset => "connection reset by peer".to_string(),
        K::ConnectionAborted => "connection aborted".to_string(),
        K::UnexpectedEof => "connection closed before a response".to_string(),
        K::BrokenPipe => "connection closed while sending the request".to_string(),
        _ => format!("io: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hc(kind: CheckType) -> HealthCheck {
        HealthCheck {
            kind,
            ..HealthCheck::default()
        }
    }

    #[test]
    fn ipv6_address_formats_with_brackets() {
        let spec = ProbeSpec::from_config(&hc(CheckType::Http), "::1", 8080).unwrap();
        assert_eq!(spec.url(), "http://[::1]:8080/health");
        let spec = ProbeSpec::from_config(&hc(CheckType::Tcp), "[2001:db8::1]", 443).unwrap();
        assert_eq!(spec.addr.to_string(), "[2001:db8::1]:443");
        assert_eq!(spec.to_string(), "tcp [2001:db8::1]:443");
    }

    #[test]
    fn host_replaces_the_authority_but_not_the_address() {
        let mut check = hc(CheckType::Https);
        check.host = "app.example.com".into();
        check.path = "status".into();
        let spec = ProbeSpec::from_config(&check, "10.0.0.7", 8443).unwrap();
        assert_eq!(spec.url(), "https://app.example.com/status");
        assert_eq!(spec.addr, "10.0.0.7:8443".parse().unwrap());
        assert_eq!(
            spec.to_string(),
            "https://app.example.com/status via 10.0.0.7:8443"
        );
    }

    #[test]
    fn empty_path_is_root() {
        let mut check = hc(CheckType::Http);
        check.path = String::new();
        let spec = ProbeSpec::from_config(&check, "127.0.0.1", 80).unwrap();
        assert_eq!(spec.url(), "http://127.0.0.1:80/");
    }

    #[test]
    fn bad_inputs_are_errors_not_panics() {
        let check = hc(CheckType::Http);
        assert!(matches!(
            ProbeSpec::from_config(&check, "backend.example", 80),
            Err(SpecError::Address(_))
        ));
        for bad in ["a b", "user@host", "exa mple.com", "/x", "h\u{e9}te"] {
            let mut c = hc(CheckType::Http);
            c.host = bad.into();
            assert!(
                matches!(
                    ProbeSpec::from_config(&c, "127.0.0.1", 80),
                    Err(SpecError::Host(_))
                ),
                "{bad}"
            );
        }
        let mut c = hc(CheckType::Http);
        c.path = "/a b".into();
        assert!(matches!(
            ProbeSpec::from_config(&c, "127.0.0.1", 80),
            Err(SpecError::Path(_))
        ));
    }

    #[test]
    fn status_acceptance() {
        let mut spec = ProbeSpec::from_config(&hc(CheckType::Http), "127.0.0.1", 80).unwrap();
        assert!(spec.status_ok(200) && spec.status_ok(204) && spec.status_ok(299));
        assert!(!spec.status_ok(301) && !spec.status_ok(503) && !spec.status_ok(199));
        spec.expected_status = vec![200, 301];
        assert!(spec.status_ok(301) && !spec.status_ok(204));
    }

    #[test]
    fn timeout_text_uses_config_units() {
        assert_eq!(timeout_text(Duration::from_secs(2)), "timeout after 2s");
        assert_eq!(
            timeout_text(Duration::from_millis(300)),
            "timeout after 300ms"
        );
    }

    #[test]
    fn tcp_refused_is_friendly() {
        // Bind then drop to get a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let spec = ProbeSpec::from_config(&hc(CheckType::Tcp), "127.0.0.1", port).unwrap();
        assert_eq!(probe(&spec), Err("connect: connection refused".to_string()));
    }

    #[test]
    fn extreme_timeouts_do_not_panic() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        for kind in [CheckType::Tcp, CheckType::Http, CheckType::Https] {
            for timeout in [Duration::ZERO, Duration::MAX] {
                let mut check = hc(kind);
                check.timeout = Dur(timeout);
                let spec = ProbeSpec::from_config(&check, "127.0.0.1", port).unwrap();
                assert!(probe(&spec).is_err(), "{kind:?} {timeout:?}");
            }
        }
    }
}
