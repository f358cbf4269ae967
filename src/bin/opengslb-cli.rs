//! `opengslb-cli`: the operator's command line for OpenGSLB. Everything
//! lives in `opengslb::cli`; this file only passes the arguments in and the
//! exit code out. See `opengslb-cli --help` and opengslb-cli(1).

fn main() {
    // A closed stdout (`opengslb-cli servers | head -1`) must not panic in
    // print!: restore the default SIGPIPE action so the process just ends.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let code = opengslb::cli::run(std::env::args().skip(1));
    std::process::exit(code);
}
