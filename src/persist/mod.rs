//! The Overwatch's durable state in `overwatch.data_dir`: small JSON
//! documents (overrides, agent pins, revocations, lost agents) and the
//! append-only audit log.
//!
//! A document is saved by writing a temporary file in the same directory,
//! fsyncing it, renaming it over the old one and fsyncing the directory, so
//! a crash leaves either the old or the new version, never a mix. Before the
//! rename the current good copy is kept as `NAME.json.prev`. A document that
//! does not parse stops the start with an error that names the file and the
//! previous good copy: silently starting empty would drop every override
//! and pin an operator relied on.

mod audit;

pub use audit::{AuditLog, ReopenHandle, Rotation};

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// What went wrong, with the file it concerns.
#[derive(Debug)]
pub enum PersistError {
    /// Reading, writing or syncing a file failed.
    Io { path: PathBuf, source: io::Error },
    /// A document exists but does not parse.
    Corrupt {
        path: PathBuf,
        prev: Option<PathBuf>,
        message: String,
    },
    /// A value could not be turned into JSON.
    Encode { name: String, message: String },
    /// A document name that could escape the directory.
    BadName(String),
}

impl fmt::Display for PersistError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PersistError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            PersistError::Corrupt {
                path,
                prev,
                message,
            } => {
                write!(f, "{}: corrupt state file: {message}", path.display())?;
                match prev {
                    Some(prev) => write!(
                        f,
                        "; the previous good copy is kept at {} (inspect it, then move it over the corrupt file to restore)",
                        prev.display()
                    ),
                    None => write!(f, "; no previous copy exists"),
                }
            }
            PersistError::Encode { name, message } => write!(f, "encoding {name}: {message}"),
            PersistError::BadName(name) => write!(f, "invalid state document name {name:?}"),
        }
    }
}

impl std::error::Error for PersistError {}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PersistError + '_ {
    move |source| PersistError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A directory of atomically replaced JSON documents.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// Opens (creating when missing, mode 0700) the state directory.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store, PersistError> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            let mut builder = fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                builder.mode(0o700);
            }
            builder.create(&dir).map_err(io_err(&dir))?;
        }
        Ok(Store { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `DIR/NAME.json`
    pub fn path(&self, name: &str) -> Result<PathBuf, PersistError> {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(PersistError::BadName(name.to_string()));
        }
        Ok(self.dir.join(format!("{name}.json")))
    }

    /// Loads a document; `Ok(None)` when it was never saved.
    pub fn load<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, PersistError> {
        let path = self.path(name)?;
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            let prev = prev_path(&path);
            PersistError::Corrupt {
                prev: prev.exists().then_some(prev),
                path,
                message: e.to_string(),
            }
        })
    }

    /// Replaces a document atomically, keeping the old one as `.prev`.
    pub fn save<T: Serialize>(&self, name: &str, value: &T) -> Result<(), PersistError> {
        let path = self.path(name)?;
        let mut json = serde_json::to_vec_pretty(value).map_err(|e| PersistError::Encode {
            name: name.to_string(),
            message: e.to_string(),
        })?;
        json.push(b'\n');
        let tmp = self.dir.join(format!(".{name}.json.tmp"));
        {
            let mut file = open_private(&tmp, true).map_err(io_err(&tmp))?;
            file.write_all(&json).map_err(io_err(&tmp))?;
            file.sync_all().map_err(io_err(&tmp))?;
        }
        // Only a copy that still parses is worth keeping as the fallback.
        // It is linked, not moved, so the main file exists at every instant
        // and a crash between the two renames still loads the old state.
        if let Ok(current) = fs::read(&path)
            && serde_json::from_slice::<serde_json::Value>(&current).is_ok()
        {
            let prev = prev_path(&path);
            let prev_tmp = self.dir.join(format!(".{name}.json.prev.tmp"));
            let _ = fs::remove_file(&prev_tmp);
            if fs::hard_link(&path, &prev_tmp).is_err() {
                fs::write(&prev_tmp, &current).map_err(io_err(&prev_tmp))?;
            }
            fs::rename(&prev_tmp, &prev).map_err(io_err(&prev))?;
        }
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        sync_dir(&self.dir)
    }
}

fn prev_path(path: &Path) -> PathBuf {
    let mut os = path.as_os_str().to_owned();
    os.push(".prev");
    PathBuf::from(os)
}

fn open_private(path: &Path, truncate: bool) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create(true);
    if truncate {
        options.truncate(true);
    } else {
        options.append(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

fn sync_dir(dir: &Path) -> Result<(), PersistError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    pub(crate) fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "opengslb-persist-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn save_then_load_round_trips_and_keeps_prev() {
        let dir = temp_dir("roundtrip");
        let store = Store::open(&dir).expect("open");
        assert_eq!(store.load::<Vec<u32>>("pins").expect("load"), None);
        store.save("pins", &vec![1u32, 2]).expect("save 1");
        store.save("pins", &vec![3u32]).expect("save 2");
        assert_eq!(store.load::<Vec<u32>>("pins").expect("load"), Some(vec![3]));
        let prev: Vec<u32> =
            serde_json::from_slice(&fs::read(dir.join("pins.json.prev")).expect("prev"))
                .expect("prev parses");
        assert_eq!(prev, vec![1, 2]);
        assert!(!dir.join(".pins.json.tmp").exists());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn corrupt_main_file_names_file_and_prev() {
        let dir = temp_dir("corrupt");
        let store = Store::open(&dir).expect("open");
        let mut map = BTreeMap::new();
        map.insert("a".to_string(), 1u32);
        store.save("overrides", &map).expect("save");
        store.save("overrides", &map).expect("save again");
        fs::write(dir.join("overrides.json"), b"{\"a\": 1,").expect("corrupt it");
        let err = store
            .load::<BTreeMap<String, u32>>("overrides")
            .expect_err("corrupt must fail");
        let text = err.to_string();
        assert!(text.contains("overrides.json"), "{text}");
        assert!(text.contains("overrides.json.prev"), "{text}");
        // A save over a corrupt file must not replace the good .prev copy.
        store.save("overrides", &map).expect("save over corrupt");
        let prev = fs::read_to_string(dir.join("overrides.json.prev")).expect("prev");
        assert!(prev.contains("\"a\""));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn names_cannot_escape_the_directory() {
        let dir = temp_dir("names");
        let store = Store::open(&dir).expect("open");
        for bad in ["", "../x", "a/b", "a.json"] {
            assert!(store.save(bad, &1u32).is_err(), "{bad}");
        }
        let _ = fs::remove_dir_all(&dir);
    }
}
