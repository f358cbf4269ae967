//! File-name patterns for `includes:`: `*` and `?` within one path
//! component, `**` for any number of folders. Hidden files (leading dot)
//! match only a pattern that starts with a dot. Results are sorted so the
//! merge order does not depend on the file system.

use std::path::{Component, Path, PathBuf};

pub fn has_wildcard(pattern: &str) -> bool {
    pattern.contains(['*', '?'])
}

/// Expands an absolute (or already joined) pattern into existing files.
pub fn expand(pattern: &Path) -> Vec<PathBuf> {
    let mut current: Vec<PathBuf> = vec![PathBuf::new()];
    for comp in pattern.components() {
        let part = match comp {
            Component::Normal(p) => p.to_string_lossy().into_owned(),
            other => {
                for c in &mut current {
                    c.push(other.as_os_str());
                }
                continue;
            }
        };
        let mut next = Vec::new();
        for dir in &current {
            if part == "**" {
                collect_dirs(dir, &mut next, 0);
            } else if has_wildcard(&part) {
                let Ok(entries) = std::fs::read_dir(dir_or_dot(dir)) else {
                    continue;
                };
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if matches(&part, &name) && (part.starts_with('.') || !name.starts_with('.')) {
                        next.push(dir.join(name));
                    }
                }
            } else {
                next.push(dir.join(&part));
            }
        }
        current = next;
    }
    let mut files: Vec<PathBuf> = current.into_iter().filter(|p| p.is_file()).collect();
    files.sort();
    files.dedup();
    files
}

fn dir_or_dot(dir: &Path) -> &Path {
    if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    }
}

/// `dir` itself and every folder below it (not following hidden ones).
fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) {
    out.push(dir.to_path_buf());
    if depth > 32 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir_or_dot(dir)) else {
        return;
    };
    let mut subdirs: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| dir.join(e.file_name()))
        .collect();
    subdirs.sort();
    for sub in subdirs {
        collect_dirs(&sub, out, depth + 1);
    }
}

/// Matches one path component against `*` and `?`.
pub fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_match() {
        assert!(matches("*.yaml", "a.yaml"));
        assert!(matches("a?c", "abc"));
        assert!(matches("*", ""));
        assert!(!matches("*.yaml", "a.yml"));
        assert!(matches("*a*b", "xxaxxb"));
        assert!(!matches("*a*b", "xxaxxbx"));
    }

    #[test]
    fn expands_recursively() {
        let dir = std::env::temp_dir().join(format!("opengslb-glob-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        for f in [
            "x.yaml",
            "a/y.yaml",
            "a/b/z.yaml",
            "a/b/no.txt",
            ".hidden.yaml",
        ] {
            std::fs::write(dir.join(f), "").unwrap();
        }
        let all = expand(&dir.join("**/*.yaml"));
        let names: Vec<String> = all
            .iter()
            .map(|p| p.strip_prefix(&dir).unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["a/b/z.yaml", "a/y.yaml", "x.yaml"]);
        assert_eq!(expand(&dir.join("*.yaml")).len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
