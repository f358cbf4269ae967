//! `opengslb`: the daemon, in Overwatch or agent mode. Everything lives in
//! the library; this only turns the process arguments into an exit code.

fn main() {
    std::process::exit(opengslb::daemon::main(std::env::args().skip(1)));
}
