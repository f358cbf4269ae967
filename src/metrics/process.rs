//! The standard `process_*` metrics every Prometheus exporter serves (the
//! names and meanings of the Prometheus client libraries), read from
//! /proc/self at scrape time: CPU seconds, resident and virtual memory,
//! open and maximum file descriptors, start time.
//!
//! Parsing is pure and unit-tested on captured text; a file that cannot
//! be read (not Linux, a locked-down /proc) drops its metrics from the
//! scrape instead of reporting a made-up zero.

use super::{Kind, TextWriter};

/// What one scrape read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<f64>,
    pub virtual_bytes: Option<f64>,
    pub open_fds: Option<f64>,
    pub max_fds: Option<f64>,
    pub start_time_seconds: Option<f64>,
}

/// Fields of /proc/self/stat after the command name: (utime, stime,
/// starttime in clock ticks, vsize in bytes, rss in pages).
pub fn parse_stat(text: &str) -> Option<(u64, u64, u64, u64, u64)> {
    // The command name is in parentheses and may hold spaces or ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of proc(5), so field n is f[n - 3].
    let at = |n: usize| f.get(n - 3)?.parse::<u64>().ok();
    Some((at(14)?, at(15)?, at(22)?, at(23)?, at(24)?))
}

/// `btime` (boot time, Unix seconds) from /proc/stat.
pub fn parse_btime(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The soft "Max open files" limit from /proc/self/limits.
pub fn parse_max_fds(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn sysconf(name: libc::c_int) -> Option<u64> {
    // SAFETY: sysconf takes no pointers and has no preconditions.
    let v = unsafe { libc::sysconf(name) };
    u64::try_from(v).ok().filter(|&v| v > 0)
}

/// Reads /proc/self now.
pub fn read() -> Sample {
    let mut s = Sample::default();
    let ticks = sysconf(libc::_SC_CLK_TCK).unwrap_or(100) as f64;
    let page = sysconf(libc::_SC_PAGESIZE).unwrap_or(4096) as f64;
    if let Some((utime, stime, start, vsize, rss)) = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .as_deref()
        .and_then(parse_stat)
    {
        s.cpu_seconds = Some((utime + stime) as f64 / ticks);
        s.virtual_bytes = Some(vsize as f64);
        s.resident_bytes = Some(rss as f64 * page);
        s.start_time_seconds = std::fs::read_to_string("/proc/stat")
            .ok()
            .as_deref()
            .and_then(parse_btime)
            .map(|boot| boot as f64 + start as f64 / ticks);
    }
    s.open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as f64);
    s.max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .as_deref()
        .and_then(parse_max_fds)
        .map(|v| v as f64);
    s
}

/// Writes the families `s` has values for.
pub fn write(s: &Sample, w: &mut TextWriter) {
    let families: [(&str, &str, Kind, Option<f64>); 6] = [
        (
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            Kind::Counter,
            s.cpu_seconds,
        ),
        (
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            Kind::Gauge,
            s.resident_bytes,
        ),
        (
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            Kind::Gauge,
            s.virtual_bytes,
        ),
        (
            "process_open_fds",
            "Number of open file descriptors.",
            Kind::Gauge,
            s.open_fds,
        ),
        (
            "process_max_fds",
            "Maximum number of open file descriptors.",
            Kind::Gauge,
            s.max_fds,
        ),
        (
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            Kind::Gauge,
            s.start_time_seconds,
        ),
    ];
    for (name, help, kind, value) in families {
        if let Some(v) = value {
            w.single(name, help, kind, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_text() {
        let stat = "1234 (opengslb (x) y) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 150 0 0 20 0 9 0 43210 123456789 2048 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(parse_stat(stat), Some((250, 150, 43210, 123456789, 2048)));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(
            parse_btime("cpu 1 2 3\nbtime 1700000000\nprocesses 5\n"),
            Some(1_700_000_000)
        );
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";
        assert_eq!(parse_max_fds(limits), Some(1024));
    }

    /// The live read: every family present on Linux, with sane values
    /// (CPU never backwards; other tests open and close files meanwhile,
    /// so the fd count is only checked to be positive).
    #[test]
    fn reads_this_process() {
        let a = read();
        if a.cpu_seconds.is_none() {
            // Straight to stderr: libtest captures eprintln.
            use std::io::Write;
            let _ = std::io::stderr()
                .write_all(b"SKIPPED: reads_this_process: /proc/self/stat unreadable\n");
            return;
        }
        let b = read();
        assert!(b.cpu_seconds >= a.cpu_seconds);
        assert!(b.open_fds.is_some_and(|n| n >= 1.0), "{b:?}");
        assert!(b.resident_bytes.is_some_and(|r| r > 0.0));
        assert!(b.max_fds.is_some_and(|m| m >= 1.0));
        let start = b.start_time_seconds.expect("start");
        let now = crate::timefmt::unix_now() as f64;
        assert!(
            start <= now + 1.0 && start > now - 86_400.0 * 365.0,
            "{start}"
        );
        let mut w = TextWriter::new();
        write(&b, &mut w);
        let text = w.finish();
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
        ] {
            assert!(text.contains(&format!("\n{name} ")), "{name} in {text}");
        }
    }
}
