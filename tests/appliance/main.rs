//! The shipped appliance: install/uninstall scripts, systemd units and
//! notify, drain.sh, shipped configs, alert rules, man pages. Several
//! checks call outside tools (shellcheck, mandoc, promtool,
//! systemd-analyze, curl, dig) and report `SKIPPED:` when one is missing.
//! One binary (`cargo test --test appliance`); helpers in tests/util.

#[path = "../util/mod.rs"]
mod util;

mod cli_man;
mod dashboard;
mod drain;
mod e2e;
mod files;
mod install;
mod layout;
mod package;
mod rules;
mod shipped_configs;
mod systemd_notify;
