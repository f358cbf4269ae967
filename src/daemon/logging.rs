//! Logging through `log`/`env_logger`: `logging.level` and
//! `logging.format: text|json`. `RUST_LOG` still wins when set, so an
//! operator can turn one module up without editing the file.

use crate::config::{LogFormat, LoggingConfig};
use std::io::Write;

pub fn init(cfg: &LoggingConfig) {
    let level = match cfg.level.to_ascii_lowercase().as_str() {
        "trace" => log::LevelFilter::Trace,
        "debug" => log::LevelFilter::Debug,
        "warn" | "warning" => log::LevelFilter::Warn,
        "error" => log::LevelFilter::Error,
        _ => log::LevelFilter::Info,
    };
    let mut b = env_logger::Builder::new();
    b.filter_level(level);
    if let Ok(spec) = std::env::var("RUST_LOG") {
        b.parse_filters(&spec);
    }
    if cfg.format == LogFormat::Json {
        b.format(|buf, record| {
            let line = serde_json::json!({
                "ts": crate::timefmt::rfc3339(crate::timefmt::unix_now()),
                "level": record.level().as_str().to_ascii_lowercase(),
                "target": record.target(),
                "msg": record.args().to_string(),
            });
            writeln!(buf, "{line}")
        });
    } else {
        b.format(|buf, record| {
            writeln!(
                buf,
                "{} {:<5} {}: {}",
                crate::timefmt::rfc3339(crate::timefmt::unix_now()),
                record.level(),
                record.target(),
                record.args()
            )
        });
    }
    // A second init (tests) is harmless.
    let _ = b.try_init();
}
