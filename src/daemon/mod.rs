//! The `opengslb` daemon: flags, signals, systemd notification, logging,
//! and the wiring of either mode. The loops themselves live in their
//! subsystems (`overwatch::runtime`, `agent::runtime`, `dns`, `gossip`);
//! this folder starts their threads and supervises them (`supervise`).

pub mod agent;
pub mod args;
pub mod listen;
pub mod logging;
pub mod notify;
pub mod overwatch;
pub mod signals;
pub mod supervise;

use crate::config::{self, Mode};
use crate::exit;

/// Parses flags, loads the configuration and runs the chosen mode.
pub fn main<I: IntoIterator<Item = String>>(argv: I) -> i32 {
    let action = match args::parse(argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("opengslb: {e}");
            return exit::USAGE;
        }
    };
    let (args, check) = match action {
        args::Action::Help => {
            print!("{}", args::help());
            return exit::OK;
        }
        args::Action::Version => {
            println!("opengslb {}", crate::VERSION);
            return exit::OK;
        }
        args::Action::Check(a) => (a, true),
        args::Action::Run(a) => (a, false),
    };
    let loaded = match config::load(&args.config, args.mode) {
        Ok(l) => l,
        Err(errors) => {
            eprintln!(
                "opengslb: configuration {} is invalid:\n{errors}",
                args.config.display()
            );
            return exit::CONFIG;
        }
    };
    if check {
        for w in &loaded.warnings {
            eprintln!("warning: {w}");
        }
        // Run as root, --check reads what the service user may not.
        if euid_is_root() {
            let c = &loaded.config;
            let mut files = loaded.files.clone();
            let agent = c.agent.as_ref();
            files.extend(
                [
                    c.overwatch.gossip.encryption_key_file.as_ref(),
                    agent.and_then(|a| a.gossip.encryption_key_file.as_ref()),
                    agent.and_then(|a| a.identity.service_token_file.as_ref()),
                ]
                .into_iter()
                .flatten()
                .map(std::path::PathBuf::from),
            );
            for w in config::conflicts::service_user_warnings(&files) {
                eprintln!("warning: {w}");
            }
        }
        println!(
            "configuration {} is valid ({} mode)",
            args.config.display(),
            mode_name(loaded.mode)
        );
        return exit::OK;
    }
    // Before any thread exists, so every thread inherits the mask.
    signals::block();
    abort_on_panic();
    logging::init(&loaded.config.logging);
    let outcome = match loaded.mode {
        Mode::Overwatch => overwatch::run(loaded, &args.config),
        Mode::Agent => agent::run(loaded, &args.config),
    };
    match outcome {
        Ok(()) => exit::OK,
        Err(e) => {
            log::error!("{e}");
            e.code()
        }
    }
}

fn euid_is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Overwatch => "overwatch",
        Mode::Agent => "agent",
    }
}

/// A panic in any thread ends the process (systemd restarts it) instead of
/// leaving a daemon with one dead loop that still looks alive.
fn abort_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        std::process::abort();
    }));
}
