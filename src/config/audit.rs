//! `overwatch.audit`: when the audit log in `overwatch.data_dir` rotates
//! (`crate::persist::audit`). Its own file so the keys stay apart from the
//! rest of the schema.

use crate::persist::Rotation;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Bytes after which `audit.jsonl` rotates; 0: never by size.
    pub max_size: usize,
    /// Rotated files kept (`audit.jsonl.1` …) and read for the API.
    pub max_files: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        let r = Rotation::default();
        AuditConfig {
            max_size: r.max_size as usize,
            max_files: r.max_files,
        }
    }
}

impl AuditConfig {
    pub fn rotation(&self) -> Rotation {
        Rotation {
            max_size: self.max_size as u64,
            max_files: self.max_files,
        }
    }
}
