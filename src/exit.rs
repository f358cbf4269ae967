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

/// Which row of the table an error ends the process with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Failure,
    Usage,
    Config,
    State,
    Unreachable,
}

impl Kind {
    pub const fn code(self) -> i32 {
        match self {
            Kind::Failure => FAILURE,
            Kind::Usage => USAGE,
            Kind::Config => CONFIG,
            Kind::State => STATE,
            Kind::Unreachable => UNREACHABLE,
        }
    }
}

/// An error that ends the process: its exit code (from the table above)
/// and a message with the context an operator needs (what was being done,
/// which key, address or path). `main` logs the message and exits with
/// the code, so start-up code uses `?` instead of logging and returning
/// codes at every step.
#[derive(Debug)]
pub struct ExitError {
    kind: Kind,
    message: String,
}

impl ExitError {
    pub fn new(kind: Kind, message: impl std::fmt::Display) -> ExitError {
        ExitError {
            kind,
            message: message.to_string(),
        }
    }

    /// A run-time failure: a socket, a thread, the identity.
    pub fn failure(message: impl std::fmt::Display) -> ExitError {
        ExitError::new(Kind::Failure, message)
    }

    /// The configuration cannot be used.
    pub fn config(message: impl std::fmt::Display) -> ExitError {
        ExitError::new(Kind::Config, message)
    }

    /// The persisted state cannot be used.
    pub fn state(message: impl std::fmt::Display) -> ExitError {
        ExitError::new(Kind::State, message)
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn code(&self) -> i32 {
        self.kind.code()
    }
}

impl std::fmt::Display for ExitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ExitError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_a_row_of_the_table() {
        let kinds = [
            Kind::Failure,
            Kind::Usage,
            Kind::Config,
            Kind::State,
            Kind::Unreachable,
        ];
        let codes: Vec<i32> = kinds.iter().map(|k| k.code()).collect();
        assert_eq!(codes, [1, 2, 3, 4, 5]);
        for code in codes {
            assert!(TABLE.iter().any(|(c, _)| *c == code), "{code}");
        }
        let e = ExitError::state("data_dir /x: corrupt");
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            (4, "data_dir /x: corrupt")
        );
    }
}
