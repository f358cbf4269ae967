//! Maps concrete key paths (`regions[1].servers[0].port`) to line numbers
//! by scanning the YAML text.
//!
//! The YAML parser gives values without positions, so errors found later
//! (unknown keys, bad values) are placed by this scan. It understands block
//! style: indentation, `key:` lines, `- ` list items (indented or not),
//! comments and block scalars. Flow collections (`[a, b]`) are not split;
//! a path inside one resolves to the line of its key, which is what an
//! operator needs to find it.

use std::collections::HashMap;

#[derive(Debug, Default, Clone)]
pub struct LineIndex {
    lines: HashMap<String, usize>,
}

struct Frame {
    indent: usize,
    path: String,
    is_item: bool,
}

impl LineIndex {
    pub fn scan(text: &str) -> LineIndex {
        let mut index = LineIndex::default();
        let mut stack: Vec<Frame> = Vec::new();
        let mut counters: HashMap<String, usize> = HashMap::new();
        // Lines deeper than this belong to a block scalar (`|`, `>`).
        let mut scalar_indent: Option<usize> = None;
        for (no, raw) in text.lines().enumerate() {
            let line_no = no + 1;
            let content = raw.trim_start_matches(' ');
            let indent = raw.len() - content.len();
            let trimmed = content.trim_end();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            if let Some(limit) = scalar_indent {
                if indent > limit {
                    continue;
                }
                scalar_indent = None;
            }
            if trimmed == "---" || trimmed == "..." {
                stack.clear();
                continue;
            }
            index.line(
                &mut stack,
                &mut counters,
                &mut scalar_indent,
                indent,
                trimmed,
                line_no,
            );
        }
        index
    }

    fn line(
        &mut self,
        stack: &mut Vec<Frame>,
        counters: &mut HashMap<String, usize>,
        scalar_indent: &mut Option<usize>,
        indent: usize,
        text: &str,
        line_no: usize,
    ) {
        if let Some(rest) = text
            .strip_prefix("- ")
            .or(if text == "-" { Some("") } else { None })
        {
            while let Some(top) = stack.last() {
                if top.indent > indent || (top.indent == indent && top.is_item) {
                    stack.pop();
                } else {
                    break;
                }
            }
            let owner = stack.last().map(|f| f.path.clone()).unwrap_or_default();
            let counter = counters.entry(owner.clone()).or_insert(0);
            let path = format!("{owner}[{counter}]");
            *counter += 1;
            self.lines.entry(path.clone()).or_insert(line_no);
            stack.push(Frame {
                indent,
                path,
                is_item: true,
            });
            let inner = rest.trim_start_matches(' ');
            if !inner.is_empty() {
                let inner_indent = indent + 2 + (rest.len() - inner.len());
                self.line(stack, counters, scalar_indent, inner_indent, inner, line_no);
            }
            return;
        }
        let Some((key, value)) = split_key(text) else {
            return;
        };
        while let Some(top) = stack.last() {
            if top.indent >= indent {
                stack.pop();
            } else {
                break;
            }
        }
        let path = match stack.last() {
            Some(parent) if !parent.path.is_empty() => format!("{}.{key}", parent.path),
            _ => key.to_string(),
        };
        self.lines.entry(path.clone()).or_insert(line_no);
        let value = strip_comment(value).trim();
        if value.is_empty() {
            stack.push(Frame {
                indent,
                path,
                is_item: false,
            });
        } else if value.starts_with('|') || value.starts_with('>') {
            *scalar_indent = Some(indent);
        }
    }

    /// The line of `path`, or of its nearest ancestor that has one.
    pub fn find(&self, path: &str) -> Option<usize> {
        let mut p = path;
        loop {
            if let Some(&line) = self.lines.get(p) {
                return Some(line);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }

    /// Whether `path` itself (not an ancestor) has a line.
    #[cfg(test)]
    pub fn has(&self, path: &str) -> bool {
        self.lines.contains_key(path)
    }
}

/// Splits `key: value` (or `key:`); keys may be quoted.
fn split_key(text: &str) -> Option<(&str, &str)> {
    let (key, rest) = if let Some(q) = text.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let body = &text[1..];
        let end = body.find(q)?;
        (&body[..end], body[end + 1..].strip_prefix(':')?)
    } else {
        let colon = text
            .find(": ")
            .or_else(|| text.strip_suffix(':').map(|t| t.len()))?;
        (&text[..colon], text.get(colon + 1..).unwrap_or(""))
    };
    if key.is_empty() || key.starts_with(['{', '[', '#']) {
        return None;
    }
    if !rest.is_empty() && !rest.starts_with(' ') {
        return None;
    }
    Some((key.trim(), rest))
}

fn strip_comment(value: &str) -> &str {
    match value.find(" #") {
        Some(i) if !value.trim_start().starts_with(['"', '\'']) => &value[..i],
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
# comment
mode: overwatch
dns:
  listen_address: \":53\"
  zones: [gslb.example.com]
regions:
  - name: eu
    servers:
      - address: 10.0.0.1
        port: 80
      - address: 10.0.0.2
        port: 80
    health_check:
      type: http
  - name: us
    servers:
    - address: 10.1.0.1
      port: 8080
    notes: |
      port: 1
      - x
domains:
- name: app.gslb.example.com
  regions:
  - eu
- name: b
";

    #[test]
    fn finds_lines() {
        let idx = LineIndex::scan(DOC);
        assert_eq!(idx.find("mode"), Some(2));
        assert_eq!(idx.find("dns.listen_address"), Some(4));
        assert_eq!(idx.find("dns.zones[0]"), Some(5));
        assert_eq!(idx.find("regions[0]"), Some(7));
        assert_eq!(idx.find("regions[0].name"), Some(7));
        assert_eq!(idx.find("regions[0].servers[1].port"), Some(12));
        assert_eq!(idx.find("regions[0].health_check.type"), Some(14));
        assert_eq!(idx.find("regions[1].name"), Some(15));
        assert_eq!(idx.find("regions[1].servers[0].port"), Some(18));
        assert!(!idx.has("regions[1].notes.port"));
        assert_eq!(idx.find("domains[0].regions[0]"), Some(25));
        assert_eq!(idx.find("domains[1].name"), Some(26));
        assert_eq!(idx.find("nothing.here"), None);
    }
}
