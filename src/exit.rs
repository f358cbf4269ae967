//! The one table of exit codes, shared by `main`, the CLI, the man pages
//! and the scripts. Keep `man/opengslb.8` and `man/opengslb-cli.1` in step.

/// Success.
pub const OK: i32 = 0;
/// The daemon failed at run time (a socket could not be bound, a thread died)
/// or the CLI's request was refused by the API.
pub const FAILURE: i32 = 1;
/// Bad command-line usage: unknown flag, missing value.
pub const USAGE: i32 = 2;
/// The configuration file is invalid, unreadable or world-readable.
pub const CONFIG: i32 = 3;
/// The persisted state in `data_dir` is corrupt or unreadable.
pub const STATE: i32 = 4;
/// The CLI could not reach the API at all.
pub const UNREACHABLE: i32 = 5;

/// `(code, meaning)` for `--help` and the man-page consistency test.
pub const TABLE: &[(i32, &str)] = &[
    (OK, "success"),
    (FAILURE, "runtime failure, or the API refused the request"),
    (USAGE, "bad command-line usage"),
    (
        CONFIG,
        "invalid, unreadable or world-readable configuration",
    ),
    (STATE, "corrupt or unreadable state in data_dir"),
    (UNREACHABLE, "the API could not be reached"),
];
