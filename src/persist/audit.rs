//! The audit log: one JSON object per line, appended and fsynced per write
//! so a write the API acknowledged survives a crash.
//!
//! A SIGKILL in the middle of an append can leave a torn last line. That
//! line never described an acknowledged write (the fsync had not returned),
//! so opening the log cuts it off and reading skips it; it is not an error.
//! Reads are bounded: only the tail of the file that holds the newest N
//! lines is read, however large the log has grown.
//!
//! Rotation (`overwatch.audit`): before an append would take the file past
//! `max_size`, `audit.jsonl` becomes `audit.jsonl.1` (`.1` becomes `.2`,
//! and so on; the file beyond `max_files` is deleted). An outside rotator
//! (logrotate) works too: the file is reopened before the next append when
//! asked to (`ReopenHandle`, which the daemon sets on SIGUSR1) or when the
//! path no longer names the open file (renamed or deleted). Reading the
//! newest entries goes on into `audit.jsonl.1`, `.2`, … as far as needed.

use super::{PersistError, io_err, open_private, sync_dir};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

const CHUNK: u64 = 64 * 1024;

/// When the log rotates: `max_size` bytes per file (0: never by size,
/// leave it to logrotate), `max_files` rotated files kept and read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    pub max_size: u64,
    pub max_files: usize,
}

impl Default for Rotation {
    /// The defaults of `overwatch.audit`.
    fn default() -> Self {
        Rotation {
            max_size: 64 * 1024 * 1024,
            max_files: 5,
        }
    }
}

/// Asks the log to reopen its file before the next append (SIGUSR1).
#[derive(Clone, Debug, Default)]
pub struct ReopenHandle(Arc<AtomicBool>);

impl ReopenHandle {
    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// An append-only JSON-lines file.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: File,
    /// Size of the open file, kept as we append.
    size: u64,
    rotation: Rotation,
    reopen: ReopenHandle,
}

impl AuditLog {
    /// Opens `DIR/audit.jsonl` with the default rotation.
    pub fn open(dir: impl AsRef<Path>) -> Result<AuditLog, PersistError> {
        Self::open_rotating(dir, Rotation::default())
    }

    /// Opens `DIR/audit.jsonl`, creating it, and cuts a torn last line.
    pub fn open_rotating(
        dir: impl AsRef<Path>,
        rotation: Rotation,
    ) -> Result<AuditLog, PersistError> {
        let mut log = Self::open_file(dir.as_ref().join("audit.jsonl"))?;
        log.rotation = rotation;
        Ok(log)
    }

    pub fn open_file(path: PathBuf) -> Result<AuditLog, PersistError> {
        let (file, size) = open_current(&path)?;
        Ok(AuditLog {
            path,
            file,
            size,
            rotation: Rotation::default(),
            reopen: ReopenHandle::default(),
        })
    }

    /// The handle that makes the log reopen its file before the next append.
    pub fn reopen_handle(&self) -> ReopenHandle {
        self.reopen.clone()
    }

    /// `audit.jsonl.N`.
    fn rotated(&self, n: usize) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    /// Reopens the path when asked to, or when it no longer names the open
    /// file (an outside rotator renamed or deleted it).
    fn reopen_if_moved(&mut self) -> Result<(), PersistError> {
        let asked = self.reopen.0.swap(false, Ordering::SeqCst);
        let open = self.file.metadata().map_err(io_err(&self.path))?;
        let same = std::fs::metadata(&self.path)
            .is_ok_and(|m| m.dev() == open.dev() && m.ino() == open.ino());
        if asked || !same {
            let (file, size) = open_current(&self.path)?;
            log::info!(
                "{}: reopened ({})",
                self.path.display(),
                if same {
                    "asked to"
                } else {
                    "the file was moved"
                }
            );
            (self.file, self.size) = (file, size);
        }
        Ok(())
    }

    /// Shifts `audit.jsonl` to `.1`, `.1` to `.2`, … and starts a new file.
    fn rotate(&mut self) -> Result<(), PersistError> {
        let keep = self.rotation.max_files;
        let oldest = if keep == 0 {
            self.path.clone()
        } else {
            self.rotated(keep)
        };
        if let Err(e) = std::fs::remove_file(&oldest)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(io_err(&oldest)(e));
        }
        for n in (1..keep).rev() {
            let from = self.rotated(n);
            if from.exists() {
                let to = self.rotated(n + 1);
                std::fs::rename(&from, &to).map_err(io_err(&from))?;
            }
        }
        if keep > 0 {
            let to = self.rotated(1);
            std::fs::rename(&self.path, &to).map_err(io_err(&self.path))?;
        }
        let (file, size) = open_current(&self.path)?;
        (self.file, self.size) = (file, size);
        log::info!(
            "{}: rotated at {} bytes ({keep} older file(s) kept)",
            self.path.display(),
            self.rotation.max_size
        );
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one entry and waits until it is on disk.
    pub fn append<T: Serialize>(&mut self, entry: &T) -> Result<(), PersistError> {
        let mut line = serde_json::to_vec(entry).map_err(|e| PersistError::Encode {
            name: "audit entry".into(),
            message: e.to_string(),
        })?;
        line.push(b'\n');
        self.reopen_if_moved()?;
        let max = self.rotation.max_size;
        if max > 0 && self.size > 0 && self.size + line.len() as u64 > max {
            self.rotate()?;
        }
        self.file.write_all(&line).map_err(io_err(&self.path))?;
        self.size += line.len() as u64;
        self.file.sync_data().map_err(io_err(&self.path))
    }

    /// The newest `limit` entries, oldest first, from `audit.jsonl` and as
    /// many rotated files as needed. Lines that do not parse (a torn tail,
    /// or damage) are skipped with a warning.
    pub fn recent<T: DeserializeOwned>(&self, limit: usize) -> Result<Vec<T>, PersistError> {
        let mut out: Vec<T> = Vec::new();
        for n in 0..=self.rotation.max_files {
            if out.len() >= limit {
                break;
            }
            let path = if n == 0 {
                self.path.clone()
            } else {
                self.rotated(n)
            };
            let mut older = match File::open(&path) {
                Ok(mut reader) => newest(&mut reader, &path, limit - out.len())?,
                Err(e) if n > 0 && e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) => return Err(io_err(&path)(e)),
            };
            older.append(&mut out);
            out = older;
        }
        Ok(out)
    }
}

/// Opens (creating) the current file, cuts a torn last line, and returns
/// it with its size.
fn open_current(path: &Path) -> Result<(File, u64), PersistError> {
    let created = !path.exists();
    let file = open_private(path, false).map_err(io_err(path))?;
    cut_torn_tail(path)?;
    if created && let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    let size = file.metadata().map_err(io_err(path))?.len();
    Ok((file, size))
}

fn cut_torn_tail(path: &Path) -> Result<(), PersistError> {
    let mut reader = File::open(path).map_err(io_err(path))?;
    let len = reader.metadata().map_err(io_err(path))?.len();
    if len == 0 {
        return Ok(());
    }
    let (start, tail) = read_tail(&mut reader, len, 1).map_err(io_err(path))?;
    if tail.last() == Some(&b'\n') {
        return Ok(());
    }
    let keep = match tail.iter().rposition(|&b| b == b'\n') {
        Some(pos) => start + pos as u64 + 1,
        None => start,
    };
    log::warn!(
        "{}: dropping a torn last line ({} bytes) left by an interrupted write",
        path.display(),
        len - keep
    );
    let writer = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    writer.set_len(keep).map_err(io_err(path))?;
    writer.sync_all().map_err(io_err(path))
}

/// The newest `limit` parseable entries of one file, oldest first.
fn newest<T: DeserializeOwned>(
    reader: &mut File,
    path: &Path,
    limit: usize,
) -> Result<Vec<T>, PersistError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let len = reader.metadata().map_err(io_err(path))?.len();
    let (start, tail) = read_tail(reader, len, limit + 1).map_err(io_err(path))?;
    let mut lines: Vec<&[u8]> = tail.split(|&b| b == b'\n').collect();
    // The last piece is empty after a final newline, or a torn line.
    lines.pop();
    if start > 0 && !lines.is_empty() {
        // The first piece may start mid-line.
        lines.remove(0);
    }
    let mut out = Vec::new();
    for line in lines.iter().filter(|l| !l.is_empty()) {
        match serde_json::from_slice(line) {
            Ok(entry) => out.push(entry),
            Err(e) => log::warn!("{}: skipping unreadable line: {e}", path.display()),
        }
    }
    let skip = out.len().saturating_sub(limit);
    Ok(out.split_off(skip))
}

/// Reads the end of the file in growing chunks until it holds at least
/// `lines` newlines or the whole file; returns (offset of the data, data).
fn read_tail(file: &mut File, len: u64, lines: usize) -> std::io::Result<(u64, Vec<u8>)> {
    let mut start = len;
    let mut data: Vec<u8> = Vec::new();
    while start > 0 {
        let step = CHUNK.min(start);
        start -= step;
        file.seek(SeekFrom::Start(start))?;
        let mut chunk = vec![0u8; step as usize];
        file.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&data);
        data = chunk;
        if data.iter().filter(|&&b| b == b'\n').count() > lines {
            break;
        }
    }
    Ok((start, data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::fs;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Entry {
        n: u32,
        what: String,
    }

    fn dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("opengslb-audit-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("mkdir");
        dir
    }

    fn entry(n: u32) -> Entry {
        Entry {
            n,
            what: "x".repeat(n as usize % 50),
        }
    }

    #[test]
    fn recent_returns_newest_in_order_across_chunks() {
        let dir = dir("recent");
        let mut log = AuditLog::open(&dir).expect("open");
        // About 90 KB: more than one read chunk.
        for n in 0..2000 {
            log.append(&entry(n)).expect("append");
        }
        let got: Vec<Entry> = log.recent(3).expect("recent");
        assert_eq!(got, vec![entry(1997), entry(1998), entry(1999)]);
        assert!(std::fs::metadata(log.path()).expect("meta").len() > CHUNK);
        let all: Vec<Entry> = log.recent(10_000).expect("all");
        assert_eq!(all.len(), 2000);
        assert_eq!(all.first(), Some(&entry(0)));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn torn_last_line_is_ignored_then_cut_on_open() {
        let dir = dir("torn");
        {
            let mut log = AuditLog::open(&dir).expect("open");
            log.append(&entry(1)).expect("append");
            log.append(&entry(2)).expect("append");
        }
        // Simulate SIGKILL mid-write: half a line, no newline.
        let path = dir.join("audit.jsonl");
        let mut f = OpenOptions::new().append(true).open(&path).expect("reopen");
        f.write_all(b"{\"n\":3,\"wh").expect("torn write");
        drop(f);
        let mut log = AuditLog::open(&dir).expect("open after torn write");
        let got: Vec<Entry> = log.recent(10).expect("recent");
        assert_eq!(got, vec![entry(1), entry(2)]);
        log.append(&entry(4)).expect("append after cut");
        let got: Vec<Entry> = log.recent(10).expect("recent");
        assert_eq!(got, vec![entry(1), entry(2), entry(4)]);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn torn_only_line_leaves_empty_log() {
        let dir = dir("tornonly");
        fs::write(dir.join("audit.jsonl"), b"{\"n\":").expect("write");
        let log = AuditLog::open(&dir).expect("open");
        assert!(log.recent::<Entry>(5).expect("recent").is_empty());
        assert_eq!(fs::metadata(log.path()).expect("meta").len(), 0);
        let _ = fs::remove_dir_all(&dir);
    }

    fn lines(path: &Path) -> Vec<Entry> {
        fs::read_to_string(path)
            .expect("read")
            .lines()
            .map(|l| serde_json::from_str(l).expect("entry"))
            .collect()
    }

    fn line_len(n: u32) -> u64 {
        serde_json::to_vec(&entry(n)).expect("json").len() as u64 + 1
    }

    #[test]
    fn rotates_at_max_size_and_keeps_max_files() {
        let dir = dir("rotate");
        // Entries are 19 to 48 bytes long: two to five fit in 100 bytes.
        let rotation = Rotation {
            max_size: 100,
            max_files: 2,
        };
        let mut log = AuditLog::open_rotating(&dir, rotation).expect("open");
        for n in 0..20 {
            log.append(&entry(n)).expect("append");
            assert!(fs::metadata(log.path()).expect("meta").len() <= 100);
        }
        let current = lines(log.path());
        let one = lines(&dir.join("audit.jsonl.1"));
        let two = lines(&dir.join("audit.jsonl.2"));
        assert!(!dir.join("audit.jsonl.3").exists());
        // Newest in the current file, then .1, then .2; nothing lost in
        // between and the oldest gone with the third rotation.
        let all: Vec<u32> = two
            .iter()
            .chain(&one)
            .chain(&current)
            .map(|e| e.n)
            .collect();
        let first = all[0];
        assert!(first > 0, "{all:?}");
        assert_eq!(all, (first..20).collect::<Vec<_>>());
        let sizes: u64 = (0..20).map(line_len).sum();
        assert!(sizes > 400, "the test must rotate more than twice");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn recent_reads_newest_across_rotated_files() {
        let dir = dir("across");
        let rotation = Rotation {
            max_size: 100,
            max_files: 3,
        };
        let mut log = AuditLog::open_rotating(&dir, rotation).expect("open");
        for n in 0..10 {
            log.append(&entry(n)).expect("append");
        }
        assert!(dir.join("audit.jsonl.2").exists());
        let got: Vec<Entry> = log.recent(7).expect("recent");
        assert_eq!(got, (3..10).map(entry).collect::<Vec<_>>());
        // A reopened log (a restart) reads the same.
        drop(log);
        let log = AuditLog::open_rotating(&dir, rotation).expect("reopen");
        let got: Vec<Entry> = log.recent(100).expect("all");
        assert_eq!(got, (0..10).map(entry).collect::<Vec<_>>());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn reopens_after_an_outside_rename_and_when_asked() {
        let dir = dir("reopen");
        let rotation = Rotation {
            max_size: 0,
            max_files: 2,
        };
        let mut log = AuditLog::open_rotating(&dir, rotation).expect("open");
        log.append(&entry(1)).expect("append");
        // logrotate without a signal: rename, nothing else.
        fs::rename(log.path(), dir.join("audit.jsonl.1")).expect("rename");
        log.append(&entry(2)).expect("append after rename");
        assert_eq!(lines(log.path()), vec![entry(2)]);
        assert_eq!(lines(&dir.join("audit.jsonl.1")), vec![entry(1)]);
        // logrotate's shift with `create`: .1 -> .2, current -> .1, a new
        // empty file; the inode changed, so the next append follows.
        fs::rename(dir.join("audit.jsonl.1"), dir.join("audit.jsonl.2")).expect("shift");
        fs::rename(log.path(), dir.join("audit.jsonl.1")).expect("rename");
        fs::write(log.path(), b"").expect("create");
        log.append(&entry(3)).expect("append after create");
        assert_eq!(lines(log.path()), vec![entry(3)]);
        let got: Vec<Entry> = log.recent(10).expect("recent");
        assert_eq!(got, vec![entry(1), entry(2), entry(3)]);
        // SIGUSR1: the request is taken by the next append, which reopens
        // the same path (after `copytruncate`, with the size read afresh).
        let handle = log.reopen_handle();
        fs::OpenOptions::new()
            .write(true)
            .open(log.path())
            .expect("open")
            .set_len(0)
            .expect("truncate");
        handle.request();
        log.append(&entry(4)).expect("append after request");
        assert!(!handle.0.load(Ordering::SeqCst));
        assert_eq!(log.size, line_len(4));
        assert_eq!(lines(log.path()), vec![entry(4)]);
        let _ = fs::remove_dir_all(&dir);
    }
}
