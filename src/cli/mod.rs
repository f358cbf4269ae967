//! `opengslb-cli`, the operator's command line: a client of the Overwatch
//! HTTP API (SPEC §8) and of an agent's local API for drain control.
//!
//! `spec` defines every command and flag (and drives `--help`), `args`
//! parses, `commands` sends the requests, `render` draws tables, `client`
//! speaks HTTP, `completion` writes shell completion scripts from `spec`.
//! `run` is what `main` calls: it prints the result, or one line on
//! stderr, and returns the exit code from `crate::exit`.

pub mod args;
pub mod client;
pub mod cluster;
mod commands;
pub mod completion;
pub mod dnssec;
pub mod dnssec_rollover;
mod geo;
pub mod migrate;
pub mod render;
mod servers;
pub mod spec;

pub use spec::{command_names, flag_names};

use crate::exit;
use args::Parsed;

/// Runs the CLI with the arguments after the program name.
pub fn run<I: IntoIterator<Item = String>>(argv: I) -> i32 {
    let invocation = match args::parse(argv) {
        Ok(Parsed::Help) => {
            print!("{}", spec::help());
            return exit::OK;
        }
        Ok(Parsed::Version) => {
            println!("opengslb-cli {}", crate::VERSION);
            return exit::OK;
        }
        Ok(Parsed::Run(inv)) => inv,
        Err(why) => {
            eprintln!("opengslb-cli: {why}");
            return exit::USAGE;
        }
    };
    match commands::execute(&invocation) {
        Ok(text) => {
            print!("{text}");
            exit::OK
        }
        Err(e) => {
            eprintln!("opengslb-cli: {}", e.to_string().replace('\n', " "));
            e.exit_code()
        }
    }
}
