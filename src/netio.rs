//! Small helpers every socket loop shares: the two error kinds a
//! non-blocking loop treats as "not an error" (mio's examples: read until
//! `WouldBlock`, retry `Interrupted`).

use std::io;

/// The socket has nothing more for now: go back to the poll.
pub fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// A signal interrupted the call: retry it at once.
pub fn interrupted(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Interrupted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert!(would_block(&io::Error::from(io::ErrorKind::WouldBlock)));
        assert!(!would_block(&io::Error::from(io::ErrorKind::Interrupted)));
        assert!(interrupted(&io::Error::from(io::ErrorKind::Interrupted)));
        assert!(!interrupted(&io::Error::from(
            io::ErrorKind::ConnectionReset
        )));
    }
}
