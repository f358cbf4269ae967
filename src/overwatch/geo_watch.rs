//! The registry thread's watch on the GeoIP database file (SPEC §11): a
//! replaced file is opened and serves DNS and `geo test` without a
//! SIGHUP; a bad one leaves the old database serving, is logged once and
//! counted (`opengslb_overwatch_geo_database_reloads_total{result}`).
//! What to do is decided by `geo::watch::DbWatch`; this is the glue.

use super::metrics::OverwatchCounters;
use super::runtime::Runtime;
use crate::clock::{Mono, Now};
use crate::config::Config;
use crate::dns::DnsTable;
use crate::geo::watch::{DbWatch, Step, WATCH_INTERVAL, stamp};
use log::{error, info};
use std::sync::Arc;

/// The watched path, its state and when it is next looked at.
#[derive(Debug, Default)]
pub struct GeoWatch {
    path: Option<String>,
    watch: DbWatch,
    due: Mono,
}

impl GeoWatch {
    /// For a configuration just loaded (its database just opened).
    pub fn for_config(config: &Config, now: Mono) -> GeoWatch {
        let path = config
            .overwatch
            .geolocation
            .as_ref()
            .and_then(|g| g.database_path.clone())
            .filter(|p| !p.is_empty());
        GeoWatch {
            watch: DbWatch::new(path.as_deref().and_then(stamp)),
            path,
            due: now.after(WATCH_INTERVAL),
        }
    }
}

impl Runtime {
    /// Looks at the database file when due; called every loop turn.
    pub(super) fn watch_geo_database(&mut self, now: Now) {
        if now.mono < self.geo_watch.due {
            return;
        }
        self.geo_watch.due = now.mono.after(WATCH_INTERVAL);
        let Some(path) = self.geo_watch.path.clone() else {
            return;
        };
        let counters = &self.out.counters;
        match self.geo_watch.watch.look(stamp(&path)) {
            Step::Nothing => {}
            Step::Unreadable => {
                error!(
                    "geolocation: database {path} cannot be read; the previous one keeps serving"
                );
                OverwatchCounters::add(&counters.geo_database_failure);
                self.geo_watch.watch.failed(None);
            }
            Step::Open(s) => match crate::geo::open_database(&path) {
                Ok(db) => {
                    info!("geolocation: database {path} was replaced; the new one serves");
                    OverwatchCounters::add(&counters.geo_database_success);
                    self.geo_watch.watch.loaded(s);
                    self.publisher.set_geo_database(&self.reg, Arc::new(db));
                    let spec = self.publisher.table_spec(now.wall_secs() as u32);
                    self.out.dns.publish(
                        DnsTable::build(&spec, &self.out.dns_stats)
                            .with_dnssec(self.dnssec.clone()),
                    );
                    // The API's `geo test` reads the view's resolver.
                    self.publish(now);
                }
                Err(e) => {
                    error!(
                        "geolocation: replaced database not used, the previous one keeps serving: {e}"
                    );
                    OverwatchCounters::add(&counters.geo_database_failure);
                    self.geo_watch.watch.failed(Some(s));
                }
            },
        }
    }
}
