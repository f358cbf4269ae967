//! Signals without a crate: SIGTERM, SIGINT, SIGHUP and SIGUSR1 are blocked in every
//! thread (call `block` before spawning any) and the main thread collects
//! them with `sigtimedwait`, so no handler ever runs in signal context.

use std::time::Duration;

#[derive(Debug, PartialEq, Eq)]
pub enum Signal {
    Terminate,
    Reload,
    /// SIGUSR1: reopen log files (after logrotate).
    Reopen,
}

fn set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a local sigset_t.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::sigaddset(&mut set, libc::SIGUSR1);
        set
    }
}

/// Blocks our signals in the calling thread and every thread it spawns later.
pub fn block() {
    let set = set();
    // SAFETY: pthread_sigmask with a valid set and a null old-set pointer.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Waits up to `timeout` for one of our signals.
pub fn wait(timeout: Duration) -> Option<Signal> {
    let set = set();
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: sigtimedwait with a valid set, a null siginfo and a valid timespec.
    let sig = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &ts) };
    match sig {
        libc::SIGTERM | libc::SIGINT => Some(Signal::Terminate),
        libc::SIGHUP => Some(Signal::Reload),
        libc::SIGUSR1 => Some(Signal::Reopen),
        _ => None,
    }
}
