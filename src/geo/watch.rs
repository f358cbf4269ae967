//! Noticing that the GeoIP database file was replaced between SIGHUPs
//! (SPEC §11: "reloaded on SIGHUP and when the file is replaced").
//!
//! Every `WATCH_INTERVAL` the Overwatch stats `database_path` and hands
//! what it saw (device, inode, size, modification time; nothing when the
//! stat fails) to a `DbWatch`, which says whether to try opening it. A
//! file that opens replaces the database in DNS; one that does not (half
//! written, garbage, unreadable, gone) leaves the old one serving, and
//! the same bad file is reported once, not at every tick. The decision
//! is pure; `stamp` is the one system call.

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

/// How often the file is looked at (one `stat`).
pub const WATCH_INTERVAL: Duration = Duration::from_secs(10);

/// What identifies one version of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStamp {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
}

/// The file's stamp now; None when it cannot be stat'ed (gone, no access).
pub fn stamp(path: &str) -> Option<FileStamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
    })
}

/// What the caller should do after a look at the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The file is the one serving, or a bad one already reported.
    Nothing,
    /// A new version: open it, then call `loaded` or `failed`.
    Open(FileStamp),
    /// The file cannot be stat'ed (first time seen so): report it.
    Unreadable,
}

/// The database file's state as the watcher knows it.
#[derive(Clone, Debug, Default)]
pub struct DbWatch {
    /// The version serving (as stat'ed when it was opened).
    serving: Option<FileStamp>,
    /// The last version that failed (`Some(None)`: the stat failed).
    failed: Option<Option<FileStamp>>,
}

impl DbWatch {
    /// A watch whose serving version is `serving` (stat'ed right after the
    /// configuration opened the file).
    pub fn new(serving: Option<FileStamp>) -> DbWatch {
        DbWatch {
            serving,
            failed: None,
        }
    }

    /// What to do about the file looking like `now`.
    pub fn look(&self, now: Option<FileStamp>) -> Step {
        if now.is_some() && now == self.serving {
            return Step::Nothing;
        }
        if self.failed == Some(now) {
            return Step::Nothing;
        }
        match now {
            Some(s) => Step::Open(s),
            None => Step::Unreadable,
        }
    }

    /// `stamp` opened fine and serves now.
    pub fn loaded(&mut self, stamp: FileStamp) {
        self.serving = Some(stamp);
        self.failed = None;
    }

    /// `stamp` (None: the stat failed) could not be used; it is not tried
    /// again until the file changes.
    pub fn failed(&mut self, stamp: Option<FileStamp>) {
        self.failed = Some(stamp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(ino: u64, size: u64, mtime_ns: i128) -> FileStamp {
        FileStamp {
            dev: 1,
            ino,
            size,
            mtime_ns,
        }
    }

    #[test]
    fn the_serving_file_is_left_alone_and_a_new_one_is_opened() {
        let mut w = DbWatch::new(Some(s(1, 100, 5)));
        assert_eq!(w.look(Some(s(1, 100, 5))), Step::Nothing);
        // Renamed over (new inode), rewritten (size, mtime): each is new.
        assert_eq!(w.look(Some(s(2, 100, 5))), Step::Open(s(2, 100, 5)));
        assert_eq!(w.look(Some(s(1, 120, 5))), Step::Open(s(1, 120, 5)));
        assert_eq!(w.look(Some(s(1, 100, 9))), Step::Open(s(1, 100, 9)));
        w.loaded(s(2, 100, 5));
        assert_eq!(w.look(Some(s(2, 100, 5))), Step::Nothing);
    }

    #[test]
    fn a_bad_replacement_is_reported_once_until_the_file_changes() {
        let mut w = DbWatch::new(Some(s(1, 100, 5)));
        let bad = s(3, 7, 6);
        assert_eq!(w.look(Some(bad)), Step::Open(bad));
        w.failed(Some(bad));
        assert_eq!(w.look(Some(bad)), Step::Nothing);
        // Gone: reported once too.
        assert_eq!(w.look(None), Step::Unreadable);
        w.failed(None);
        assert_eq!(w.look(None), Step::Nothing);
        // Fixed: opened, and the failure forgotten.
        let good = s(4, 100, 7);
        assert_eq!(w.look(Some(good)), Step::Open(good));
        w.loaded(good);
        assert_eq!(w.look(Some(good)), Step::Nothing);
        assert_eq!(w.look(Some(bad)), Step::Open(bad));
    }

    #[test]
    fn without_a_database_at_start_the_first_file_is_opened() {
        let w = DbWatch::new(None);
        assert_eq!(w.look(None), Step::Unreadable);
        assert_eq!(w.look(Some(s(1, 1, 1))), Step::Open(s(1, 1, 1)));
    }

    #[test]
    fn stamps_tell_a_renamed_over_file_from_the_old_one() {
        let dir = std::env::temp_dir().join(format!("ogslb-geowatch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("db");
        let p = path.to_str().unwrap();
        std::fs::write(&path, b"one").unwrap();
        let first = stamp(p).unwrap();
        assert_eq!(stamp(p), Some(first));
        std::fs::write(dir.join("db.new"), b"two!").unwrap();
        std::fs::rename(dir.join("db.new"), &path).unwrap();
        let second = stamp(p).unwrap();
        assert_ne!(first, second);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(stamp(p), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
