//! The audit log: one JSON object per line, appended and fsynced per write
//! so a write the API acknowledged survives a crash.
//!
//! A SIGKILL in the middle of an append can leave a torn last line. That
//! line never described an acknowledged write (the fsync had not returned),
//! so opening the log cuts it off and reading skips it; it is not an error.
//! Reads are bounded: only the tail of the file that holds the newest N
//! lines is read, however large the log has grown.

use super::{PersistError, io_err, open_private, sync_dir};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const CHUNK: u64 = 64 * 1024;

/// An append-only JSON-lines file.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: File,
}

impl AuditLog {
    /// Opens `DIR/audit.jsonl`, creating it, and cuts a torn last line.
    pub fn open(dir: impl AsRef<Path>) -> Result<AuditLog, PersistError> {
        Self::open_file(dir.as_ref().join("audit.jsonl"))
    }

    pub fn open_file(path: PathBuf) -> Result<AuditLog, PersistError> {
        let created = !path.exists();
        let file = open_private(&path, false).map_err(io_err(&path))?;
        let log = AuditLog { path, file };
        log.cut_torn_tail()?;
        if created && let Some(dir) = log.path.parent() {
            sync_dir(dir)?;
        }
        Ok(log)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn cut_torn_tail(&self) -> Result<(), PersistError> {
        let mut reader = File::open(&self.path).map_err(io_err(&self.path))?;
        let len = reader.metadata().map_err(io_err(&self.path))?.len();
        if len == 0 {
            return Ok(());
        }
        let (start, tail) = read_tail(&mut reader, len, 1).map_err(io_err(&self.path))?;
        if tail.last() == Some(&b'\n') {
            return Ok(());
        }
        let keep = match tail.iter().rposition(|&b| b == b'\n') {
            Some(pos) => start + pos as u64 + 1,
            None => start,
        };
        log::warn!(
            "{}: dropping a torn last line ({} bytes) left by an interrupted write",
            self.path.display(),
            len - keep
        );
        let writer = OpenOptions::new()
            .write(true)
            .open(&self.path)
            .map_err(io_err(&self.path))?;
        writer.set_len(keep).map_err(io_err(&self.path))?;
        writer.sync_all().map_err(io_err(&self.path))
    }

    /// Appends one entry and waits until it is on disk.
    pub fn append<T: Serialize>(&mut self, entry: &T) -> Result<(), PersistError> {
        let mut line = serde_json::to_vec(entry).map_err(|e| PersistError::Encode {
            name: "audit entry".into(),
            message: e.to_string(),
        })?;
        line.push(b'\n');
        self.file.write_all(&line).map_err(io_err(&self.path))?;
        self.file.sync_data().map_err(io_err(&self.path))
    }

    /// The newest `limit` entries, oldest first. Lines that do not parse
    /// (a torn tail, or damage) are skipped with a warning.
    pub fn recent<T: DeserializeOwned>(&self, limit: usize) -> Result<Vec<T>, PersistError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut reader = File::open(&self.path).map_err(io_err(&self.path))?;
        let len = reader.metadata().map_err(io_err(&self.path))?.len();
        let (start, tail) = read_tail(&mut reader, len, limit + 1).map_err(io_err(&self.path))?;
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
                Err(e) => log::warn!("{}: skipping unreadable line: {e}", self.path.display()),
            }
        }
        let skip = out.len().saturating_sub(limit);
        Ok(out.split_off(skip))
    }
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
}
