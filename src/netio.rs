//! Small helpers every socket loop shares: the two error kinds a
//! non-blocking loop treats as "not an error" (mio's examples: read until
//! `WouldBlock`, retry `Interrupted`).

use std::io;
use std::os::fd::AsRawFd;

/// The socket has nothing more for now: go back to the poll.
pub fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// A signal interrupted the call: retry it at once.
pub fn interrupted(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Interrupted
}

/// `setsockopt` with an `int` value (SO_RCVBUF, SO_REUSEPORT, ...).
pub fn set_int_option(
    fd: &impl AsRawFd,
    level: libc::c_int,
    opt: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: fd is open for the borrow; the value is a c_int of that size.
    let ret = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            &value as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
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
