//! Answering a tiny_http request without reading its body, and without
//! letting the body hold the thread that answers.
//!
//! tiny_http reads a body of up to `PREBUFFERED` bytes before it queues a
//! request. A larger body stays on the socket, and when the request is
//! dropped its reader drains what is left (up to `DRAIN_LIMIT` bytes; a
//! longer or chunked one is not drained, and its connection ends after
//! the answer: see vendor/README.md), on whichever thread drops it, for
//! as long as the client takes to send it (until `crate::httpguard` cuts
//! the connection: seconds). So every server that answers a request
//! without reading its body goes through [`finish`]: the answer is written
//! on the caller's thread, and the unread body goes to the one
//! process-wide `http-drain` thread, which drops the bodies one after
//! another. Each takes at most until httpguard cuts its connection (the
//! age limit), so the queue empties within that limit of the last one;
//! the client has its answer meanwhile. The queue holds at most
//! `DRAIN_QUEUE` bodies (far more than httpguard lets the listeners keep
//! open); beyond that the caller drops the body itself.

use std::io::Read;
use std::sync::OnceLock;
use tiny_http::{Request, Response};

/// Bodies up to this size are read by tiny_http before the request is
/// queued (its own constant); larger ones are read from the socket later.
pub const PREBUFFERED: usize = 1024;
/// Unread bodies up to this size are drained; longer ones are not, and
/// their connection ends after the answer (vendored tiny_http's own
/// constant).
pub const DRAIN_LIMIT: usize = 1024 * 1024;
/// Connections waiting for the drain thread.
pub const DRAIN_QUEUE: usize = 4096;

/// Whether `request`'s body is still on the socket (not read by
/// tiny_http before the request was queued): longer than `PREBUFFERED`,
/// chunked, or announced with `Expect: 100-continue` (tiny_http then
/// waits for the reader to ask for it, however short it is).
pub fn unbuffered(request: &Request) -> bool {
    let has = |name: &'static str| request.headers().iter().any(|h| h.field.equiv(name));
    request.body_length().is_some_and(|n| n > PREBUFFERED)
        || has("Transfer-Encoding")
        || (has("Expect") && request.body_length().is_some_and(|n| n > 0))
}

/// Whether `request` declares a body too large to drain.
pub fn oversized(request: &Request) -> bool {
    request.body_length().is_some_and(|n| n > DRAIN_LIMIT)
}

/// Answers `request` with `response`, leaving an unread body to the
/// drain thread (see the module comment). Returns whether a body was
/// handed over. A client that went away is not an error here.
pub fn finish<R: Read>(request: Request, response: Response<R>) -> bool {
    if !unbuffered(&request) {
        if let Err(e) = request.respond(response) {
            log::debug!("http: client went away before the answer: {e}");
        }
        return false;
    }
    let (sent, body) = request.respond_keep_body(response);
    if let Err(e) = sent {
        log::debug!("http: client went away before the answer: {e}");
    }
    drain(body);
    true
}

type Body = Box<dyn Read + Send>;

/// Hands `body` to the drain thread (started on first use); drops it here
/// when the queue is full or the thread cannot start.
fn drain(body: Body) {
    static QUEUE: OnceLock<Option<crossbeam_channel::Sender<Body>>> = OnceLock::new();
    let queue = QUEUE.get_or_init(|| {
        let (tx, rx) = crossbeam_channel::bounded::<Body>(DRAIN_QUEUE);
        let started = std::thread::Builder::new()
            .name("http-drain".into())
            .spawn(move || {
                // Dropping reads what is left of the body (or sees the
                // connection cut), then the connection goes on.
                for body in rx {
                    drop(body);
                }
            });
        match started {
            Ok(_) => Some(tx),
            Err(e) => {
                log::error!("http: cannot start the drain thread: {e}");
                None
            }
        }
    });
    if let Some(Err(crossbeam_channel::TrySendError::Full(body))) =
        queue.as_ref().map(|q| q.try_send(body))
    {
        log::warn!("http: the drain queue is full; draining on the answering thread");
        drop(body);
    }
}
