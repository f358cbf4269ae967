//! The one TCP layer of gossip, shared by the agent's client and the
//! Overwatch's listener: length-prefixed framing whose size limit is
//! checked before a byte of the frame body is buffered (`frame.rs`), the
//! budget that bounds what peers that have not authenticated yet can make
//! the Overwatch hold (`budget.rs`), and the non-blocking write helper.
//!
//! TCP carries the same sealed packets as UDP, for what does not fit a
//! datagram; nothing here decrypts or parses them.

pub mod budget;
pub mod frame;

pub use budget::{PreAuthBudget, PreAuthLimits};
pub use frame::{FrameError, FrameReader, MAX_FRAME, MAX_PREAUTH_FRAME, frame};

use crate::netio::{interrupted, would_block};
use mio::net::TcpStream;
use std::io::Write;

/// Writes what the socket takes; false when the connection is done for.
pub fn flush_stream(stream: &mut TcpStream, wbuf: &mut Vec<u8>) -> bool {
    while !wbuf.is_empty() {
        match stream.write(wbuf) {
            Ok(0) => return false,
            Ok(n) => {
                wbuf.drain(..n);
            }
            Err(e) if would_block(&e) => return true,
            Err(e) if interrupted(&e) => continue,
            Err(_) => return false,
        }
    }
    true
}
