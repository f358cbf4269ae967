//! Prometheus text exposition, written by hand.
//!
//! Each subsystem keeps its own counters (atomics) and renders them through
//! `TextWriter`, which emits `# HELP`/`# TYPE` once per family and escapes
//! label values. `promtool check metrics` accepts what this writes.

pub mod process;
pub mod server;
pub mod v11;

use std::fmt::Write;
use std::sync::Arc;

/// Renders the `/metrics` text at scrape time.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

pub struct TextWriter {
    out: String,
}

#[derive(Clone, Copy)]
pub enum Kind {
    Counter,
    Gauge,
}

impl Default for TextWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl TextWriter {
    pub fn new() -> Self {
        TextWriter {
            out: String::with_capacity(4096),
        }
    }

    /// Starts a metric family; call once before its samples.
    pub fn family(&mut self, name: &str, help: &str, kind: Kind) {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample; `labels` are (name, value) pairs, values escaped here.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"");
                for c in v.chars() {
                    match c {
                        '\\' => self.out.push_str("\\\\"),
                        '"' => self.out.push_str("\\\""),
                        '\n' => self.out.push_str("\\n"),
                        c => self.out.push(c),
                    }
                }
                self.out.push('"');
            }
            self.out.push('}');
        }
        if value.fract() == 0.0 && value.abs() < 1e15 {
            let _ = writeln!(self.out, " {}", value as i64);
        } else {
            let _ = writeln!(self.out, " {value}");
        }
    }

    /// A family with a single unlabelled sample.
    pub fn single(&mut self, name: &str, help: &str, kind: Kind, value: f64) {
        self.family(name, help, kind);
        self.sample(name, &[], value);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_labels() {
        let mut w = TextWriter::new();
        w.family("x_total", "X.", Kind::Counter);
        w.sample("x_total", &[("a", "q\"\\\n")], 3.0);
        assert_eq!(
            w.finish(),
            "# HELP x_total X.\n# TYPE x_total counter\nx_total{a=\"q\\\"\\\\\\n\"} 3\n"
        );
    }
}
