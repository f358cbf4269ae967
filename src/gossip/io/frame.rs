//! Length-prefixed frames on a TCP stream: a big-endian u32 length, then
//! that many bytes (one sealed packet).
//!
//! `FrameReader` reassembles frames from whatever chunks the socket gives
//! and checks each announced length against the caller's limit as soon as
//! the 4 length bytes are in, before it keeps a byte of the body; the body
//! buffer grows with what actually arrived, never from the announced
//! length. A peer that has not authenticated gets a smaller limit
//! (`MAX_PREAUTH_FRAME`) than one that has (`MAX_FRAME`).

use std::fmt;

/// Largest frame accepted on a connection that authenticated.
pub const MAX_FRAME: usize = 4 << 20;
/// Largest frame accepted before anything on the connection authenticated:
/// room for a registration carrying some 15 000 backends.
pub const MAX_PREAUTH_FRAME: usize = 1 << 20;

/// Prefixes a sealed packet with its u32 length for the TCP stream.
pub fn frame(packet: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(packet.len() as u32).to_be_bytes());
    out.extend_from_slice(packet);
}

/// A frame announced a length over the limit; the connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    TooLarge { len: usize, limit: usize },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLarge { len, limit } => {
                write!(f, "frame of {len} bytes announced, limit {limit}")
            }
        }
    }
}

impl std::error::Error for FrameError {}

/// Reassembles frames; one per connection.
#[derive(Debug, Default)]
pub struct FrameReader {
    head: [u8; 4],
    head_len: usize,
    /// The body's announced length once the head is complete.
    want: Option<usize>,
    body: Vec<u8>,
}

impl FrameReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes held for the frame in progress.
    pub fn buffered(&self) -> usize {
        self.head_len + self.body.len()
    }

    /// How many more bytes the frame in progress needs (the rest of the
    /// head, or of the body); the caller reads no more than that from a
    /// connection whose memory it must bound.
    pub fn wants(&self) -> usize {
        match self.want {
            None => 4 - self.head_len,
            Some(n) => n - self.body.len(),
        }
    }

    /// Takes bytes from the stream; complete frames go to `frames`. An
    /// announced length over `limit` is an error before any of its body
    /// is kept (and the reader must not be fed again).
    pub fn feed(
        &mut self,
        mut bytes: &[u8],
        limit: usize,
        frames: &mut Vec<Vec<u8>>,
    ) -> Result<(), FrameError> {
        while !bytes.is_empty() || self.want == Some(self.body.len()) {
            match self.want {
                None => {
                    let n = (4 - self.head_len).min(bytes.len());
                    self.head[self.head_len..self.head_len + n].copy_from_slice(&bytes[..n]);
                    self.head_len += n;
                    bytes = &bytes[n..];
                    if self.head_len == 4 {
                        let len = u32::from_be_bytes(self.head) as usize;
                        if len > limit {
                            return Err(FrameError::TooLarge { len, limit });
                        }
                        self.want = Some(len);
                    }
                }
                Some(len) => {
                    let n = (len - self.body.len()).min(bytes.len());
                    self.body.extend_from_slice(&bytes[..n]);
                    bytes = &bytes[n..];
                    if self.body.len() == len {
                        frames.push(std::mem::take(&mut self.body));
                        self.head_len = 0;
                        self.want = None;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_across_any_chunking() {
        let mut stream = Vec::new();
        frame(b"abc", &mut stream);
        frame(b"", &mut stream);
        frame(b"de", &mut stream);
        for chunk in 1..=stream.len() {
            let mut r = FrameReader::new();
            let mut frames = Vec::new();
            for c in stream.chunks(chunk) {
                r.feed(c, 16, &mut frames).expect("within limit");
            }
            assert_eq!(frames, [b"abc".to_vec(), Vec::new(), b"de".to_vec()]);
            assert_eq!(r.buffered(), 0);
        }
    }

    #[test]
    fn the_limit_is_checked_before_the_body_is_buffered() {
        let mut r = FrameReader::new();
        let mut frames = Vec::new();
        let mut bytes = ((MAX_PREAUTH_FRAME + 1) as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0; 100]);
        assert_eq!(
            r.feed(&bytes, MAX_PREAUTH_FRAME, &mut frames),
            Err(FrameError::TooLarge {
                len: MAX_PREAUTH_FRAME + 1,
                limit: MAX_PREAUTH_FRAME
            })
        );
        assert_eq!(r.buffered(), 4, "no body byte kept");
        // a partial frame holds what arrived, not what it announced
        let mut r = FrameReader::new();
        r.feed(&(MAX_FRAME as u32).to_be_bytes(), MAX_FRAME, &mut frames)
            .expect("at the limit");
        r.feed(&[1; 10], MAX_FRAME, &mut frames).expect("body");
        assert_eq!(r.buffered(), 14);
        assert!(r.body.capacity() < 4096);
        assert_eq!(r.wants(), MAX_FRAME - 10);
    }
}
