//! The one supervision loop of both modes, on the main thread: it collects
//! signals (SIGTERM/SIGINT stop, SIGHUP reloads, SIGUSR1 asks whoever
//! registered with `on_reopen` to reopen its files), notices a worker thread
//! that ended (which ends the process with that thread's exit code), and
//! feeds the systemd watchdog only while every loop shows progress.
//!
//! Progress is a [`Liveness`] that each loop beats with the `mono` part of
//! its turn's `Now`; the watchdog compares it with `Now::read().mono`, so
//! a wall-clock step can neither starve nor fake it. Loops that do not
//! have a `Liveness` yet report through a probe (their own `alive()`).
//! The decision itself is [`stuck`], a pure function.

use super::notify::{notify, watchdog_interval};
use super::signals::{self, Signal};
use crate::clock::{Liveness, Mono, Now};
use crate::exit::ExitError;
use log::warn;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Longest the main thread waits for a signal between checks.
const TICK: Duration = Duration::from_millis(500);
/// A loop that has not beaten for this long is stuck.
pub const WINDOW: Duration = Duration::from_secs(5);

/// What a supervised thread returns: `Ok` when it was asked to stop.
pub type Outcome = Result<(), ExitError>;

/// The names of the loops that have not beaten within `window` of `now`;
/// empty means every loop is alive and the watchdog may be fed.
pub fn stuck<'a>(now: Mono, beats: &[(&'a str, Mono)], window: Duration) -> Vec<&'a str> {
    beats
        .iter()
        .filter(|(_, last)| now.since(*last) >= window)
        .map(|(name, _)| *name)
        .collect()
}

type Probe<'a> = Box<dyn Fn() -> bool + 'a>;

pub struct Supervisor<'a> {
    loops: Vec<(&'static str, Arc<Liveness>)>,
    probes: Vec<(&'static str, Probe<'a>)>,
    threads: Vec<(&'static str, JoinHandle<Outcome>)>,
    reopen: Vec<Box<dyn Fn() + 'a>>,
    /// Half of systemd's `WatchdogSec`, when it asked for a watchdog.
    watchdog: Option<Duration>,
}

impl Default for Supervisor<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> Supervisor<'a> {
    pub fn new() -> Self {
        Supervisor {
            loops: Vec::new(),
            probes: Vec::new(),
            threads: Vec::new(),
            reopen: Vec::new(),
            watchdog: watchdog_interval(),
        }
    }

    /// Watches a loop that beats `liveness` once per turn (at least every
    /// few seconds, even when idle).
    pub fn watch(&mut self, name: &'static str, liveness: Arc<Liveness>) {
        self.loops.push((name, liveness));
    }

    /// Watches a loop through its own `alive()` check, for loops that do
    /// not keep a `Liveness`.
    pub fn probe(&mut self, name: &'static str, alive: impl Fn() -> bool + 'a) {
        self.probes.push((name, Box::new(alive)));
    }

    /// Runs `reopen` on SIGUSR1 (files that logrotate moves).
    pub fn on_reopen(&mut self, reopen: impl Fn() + 'a) {
        self.reopen.push(Box::new(reopen));
    }

    /// Runs `body` on a named thread; when it ends before the supervisor
    /// is done, the process ends with its exit code (its error's, or 1).
    pub fn spawn(
        &mut self,
        name: &'static str,
        body: impl FnOnce() -> Outcome + Send + 'static,
    ) -> Result<(), ExitError> {
        let handle = std::thread::Builder::new()
            .name(name.into())
            .spawn(body)
            .map_err(|e| ExitError::failure(format!("cannot start the {name} thread: {e}")))?;
        self.threads.push((name, handle));
        Ok(())
    }

    /// Serves until SIGTERM/SIGINT (`Ok`) or until a thread ends (`Err`).
    /// `reload` runs on SIGHUP, between RELOADING=1 and READY=1.
    pub fn run(&mut self, mut reload: impl FnMut()) -> Outcome {
        let mut next_watchdog = Now::read().mono;
        loop {
            if let Some(i) = self.threads.iter().position(|(_, t)| t.is_finished()) {
                let (name, handle) = self.threads.swap_remove(i);
                return Err(match handle.join() {
                    Ok(Err(e)) => e,
                    Ok(Ok(())) | Err(_) => ExitError::failure(format!("the {name} thread stopped")),
                });
            }
            if let Some(every) = self.watchdog {
                let now = Now::read().mono;
                if now >= next_watchdog {
                    self.feed_watchdog(now);
                    next_watchdog = now.after(every);
                }
            }
            match signals::wait(TICK) {
                Some(Signal::Terminate) => return Ok(()),
                Some(Signal::Reload) => {
                    notify("RELOADING=1");
                    reload();
                    notify("READY=1");
                }
                Some(Signal::Reopen) => {
                    log::info!("SIGUSR1: reopening {} file(s)", self.reopen.len());
                    self.reopen.iter().for_each(|f| f());
                }
                None => {}
            }
        }
    }

    fn feed_watchdog(&self, now: Mono) {
        let beats: Vec<(&str, Mono)> = self.loops.iter().map(|(n, l)| (*n, l.last())).collect();
        let mut stuck = stuck(now, &beats, WINDOW);
        stuck.extend(self.probes.iter().filter(|(_, p)| !p()).map(|(n, _)| *n));
        if stuck.is_empty() {
            notify("WATCHDOG=1");
        } else {
            warn!(
                "not feeding the watchdog: no progress from {}",
                stuck.join(", ")
            );
        }
    }

    /// Joins the threads that are left (after they were told to stop).
    pub fn join(self) {
        for (name, handle) in self.threads {
            match handle.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => log::error!("{name}: {e}"),
                Err(_) => log::error!("the {name} thread panicked"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit;

    #[test]
    fn stuck_names_the_loops_that_did_not_beat() {
        let beats = [("registry", Mono(10_000)), ("agent", Mono(14_000))];
        assert!(stuck(Mono(14_999), &beats, WINDOW).is_empty());
        assert_eq!(stuck(Mono(15_000), &beats, WINDOW), ["registry"]);
        assert_eq!(stuck(Mono(60_000), &beats, WINDOW), ["registry", "agent"]);
        // A beat after the reading (another thread's newer turn) is fresh.
        assert!(stuck(Mono(9_000), &beats, WINDOW).is_empty());
    }

    /// Bug: the Overwatch watchdog compared the registry's stamp (start
    /// time plus monotonic elapsed) with a fresh wall-clock reading, so a
    /// forward clock step of more than 5 s starved the watchdog for good
    /// and systemd killed a healthy daemon. Loops now beat with `Now.mono`
    /// and the decision reads only `mono`: stepping the wall clock, either
    /// way, changes nothing.
    #[test]
    fn regression_watchdog_ignores_wall_clock_steps() {
        let turn = Now::at(10_000, 1_700_000_000_000);
        let registry = Liveness::new();
        registry.beat(turn.mono);
        let beats = [("registry", registry.last())];
        let steady = Now::at(11_000, 1_700_000_001_000);
        let forward = Now::at(11_000, 1_700_003_601_000);
        let backward = Now::at(11_000, 1_699_996_401_000);
        for now in [steady, forward, backward] {
            assert!(stuck(now.mono, &beats, WINDOW).is_empty(), "{now:?}");
        }
        // And a loop that really stopped is reported whatever the wall says.
        let later = Now::at(16_000, 1_600_000_000_000);
        assert_eq!(stuck(later.mono, &beats, WINDOW), ["registry"]);
    }

    #[test]
    fn a_thread_that_ends_ends_the_run_with_its_code() {
        let mut sup = Supervisor::new();
        sup.spawn("corrupt", || Err(ExitError::state("data_dir: corrupt")))
            .unwrap();
        let e = sup.run(|| {}).unwrap_err();
        assert_eq!(
            (e.code(), e.to_string()),
            (exit::STATE, "data_dir: corrupt".into())
        );

        let mut sup = Supervisor::new();
        sup.spawn("registry", || Ok(())).unwrap();
        let e = sup.run(|| {}).unwrap_err();
        assert_eq!(e.code(), exit::FAILURE);
        assert_eq!(e.to_string(), "the registry thread stopped");
    }
}
