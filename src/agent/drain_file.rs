//! Watching `agent.drain_file` with inotify, so a drain is noticed within
//! milliseconds rather than at the next poll.
//!
//! The watch is on the file's directory (the file itself may not exist
//! yet). Every event for our file name, and a slow safety re-check once a
//! second, re-reads the file: present means draining, and its content (if
//! any) is the reason. A missing directory is re-tried each second.

use crossbeam_channel::Sender;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// How long a burst of events may take to settle before we read the file.
const SETTLE_MS: i32 = 15;

/// Longest reason we keep from the file; the rest is cut.
const MAX_REASON: usize = 256;

/// `Some(reason)` when the drain file exists.
pub fn read_state(path: &Path) -> Option<String> {
    match std::fs::read(path) {
        Ok(bytes) => Some(reason_from(&bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        // Present but unreadable (permissions, a directory): still a drain.
        Err(_) => path.exists().then(|| "drain file present".to_string()),
    }
}

/// The reason text: first line, printable characters only, bounded.
pub fn reason_from(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let clean: String = line
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_REASON)
        .collect();
    if clean.is_empty() {
        "drain file present".to_string()
    } else {
        clean
    }
}

pub struct DrainWatcher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DrainWatcher {
    /// Sends the drain state (`Some(reason)` / `None`) at start and on
    /// every change.
    pub fn start(path: PathBuf, changes: Sender<Option<String>>) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("agent-drain-watch".into())
            .spawn(move || watch(&path, &changes, &flag))?;
        Ok(DrainWatcher {
            stop,
            thread: Some(thread),
        })
    }

    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn watch(path: &Path, changes: &Sender<Option<String>>, stop: &AtomicBool) {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut last = read_state(path);
    if changes.send(last.clone()).is_err() {
        return;
    }
    let mut inotify = Inotify::new(dir);
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        if inotify.as_ref().is_none() {
            inotify = Inotify::new(dir);
        }
        // Events wake us at once; the one-second timeout is a safety net.
        match &inotify {
            Some(ino) => ino.wait(&mut buf, 1000),
            None => std::thread::park_timeout(std::time::Duration::from_secs(1)),
        }
        let now = read_state(path);
        if now != last {
            last = now.clone();
            if changes.send(now).is_err() {
                return;
            }
        }
    }
}

struct Inotify {
    fd: libc::c_int,
}

impl Inotify {
    fn new(dir: &Path) -> Option<Inotify> {
        let cdir = CString::new(dir.as_os_str().as_bytes()).ok()?;
        // SAFETY: plain syscalls with valid arguments; fd closed in Drop.
        unsafe {
            let fd = libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC);
            if fd < 0 {
                return None;
            }
            let mask = libc::IN_CREATE
                | libc::IN_DELETE
                | libc::IN_MOVED_TO
                | libc::IN_MOVED_FROM
                | libc::IN_CLOSE_WRITE
                | libc::IN_MODIFY
                | libc::IN_DELETE_SELF
                | libc::IN_MOVE_SELF;
            if libc::inotify_add_watch(fd, cdir.as_ptr(), mask) < 0 {
                libc::close(fd);
                return None;
            }
            Some(Inotify { fd })
        }
    }

    /// Waits up to `timeout_ms` for events and discards them: the caller
    /// re-reads the file either way, which is cheaper than parsing names.
    fn wait(&self, buf: &mut [u8], timeout_ms: i32) {
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one valid pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if ready > 0 {
            // SAFETY: read into a buffer we own, of the length we pass.
            unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) };
            // `echo reason > file` is a create then a write: let the burst
            // settle briefly so the first report carries the reason.
            pfd.revents = 0;
            // SAFETY: as above.
            if unsafe { libc::poll(&mut pfd, 1, SETTLE_MS) } > 0 {
                unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) };
            }
        }
    }
}

impl Drop for Inotify {
    fn drop(&mut self) {
        // SAFETY: closing the fd we opened.
        unsafe {
            libc::close(self.fd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn reason_is_first_line_cleaned() {
        assert_eq!(reason_from(b""), "drain file present");
        assert_eq!(reason_from(b"\n  kernel upgrade \nmore"), "kernel upgrade");
        assert_eq!(reason_from(b"a\x07b"), "ab");
        assert_eq!(reason_from(&[b'x'; 1000]).len(), MAX_REASON);
    }

    #[test]
    fn watcher_sees_create_and_delete_quickly() {
        let dir = std::env::temp_dir().join(format!("ogslb-drain-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("drain");
        let (tx, rx) = crossbeam_channel::unbounded();
        let w = DrainWatcher::start(file.clone(), tx).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(2)).unwrap(), None);
        std::fs::write(&file, "maintenance\n").unwrap();
        let got = rx.recv_timeout(Duration::from_secs(3)).unwrap();
        assert_eq!(got.as_deref(), Some("maintenance"));
        std::fs::remove_file(&file).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(3)).unwrap(), None);
        w.stop();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
