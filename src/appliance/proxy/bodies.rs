//! The bodies of a proxied exchange: the client's request body streamed up to the upstream,
//! the upstream's response body streamed down to the client, each a chunk at a time with
//! backpressure (the next chunk is read once the other side took this one).

use std::cell::RefCell;
use std::rc::Rc;

use ::http::StatusCode;

use super::{compress, Flight};
use crate::client::{self, BodyEnd as UpBodyEnd, ResponseBody};
use crate::service::{self, BodyEnd};

/// Streams the client's request body into the upstream request: read a chunk from the client,
/// write it all upstream (waiting for room), then read the next.
pub(super) fn upload(flight: Rc<Flight>, writer: client::BodyWriter) {
    let reqd = flight.reqd.clone();
    let slot = Rc::new(RefCell::new(Some((flight, writer))));
    let s2 = slot.clone();
    reqd.schedule_read(
        move |data| {
            let Some((flight, writer)) = slot.borrow_mut().take() else {
                return;
            };
            flight
                .proxy
                .metrics
                .request_bytes(flight.origin.listener_name(), data.len() as u64);
            push_up(flight, writer, data, Vec::new(), 0);
        },
        move |end| {
            let Some((_flight, writer)) = s2.borrow_mut().take() else {
                return;
            };
            match end {
                BodyEnd::Complete => {
                    let _ = writer.close();
                }
                // Dropping the writer unclosed cancels the upstream request.
                BodyEnd::Aborted => drop(writer),
            }
        },
    );
}

/// Writes `data`, or else `rest[off..]` (what a short write left), upstream; reads on when all
/// was taken.
fn push_up(
    flight: Rc<Flight>,
    mut writer: client::BodyWriter,
    data: &[u8],
    mut rest: Vec<u8>,
    off: usize,
) {
    let src: &[u8] = if rest.is_empty() { data } else { &rest[off..] };
    match writer.write(src) {
        Ok(n) if n == src.len() => upload(flight, writer),
        Ok(n) if rest.is_empty() => {
            rest = src[n..].to_vec();
            writer.on_writable(move |w| push_up(flight, w, &[], rest, 0));
        }
        Ok(n) => writer.on_writable(move |w| push_up(flight, w, &[], rest, off + n)),
        // The upstream request is over (failed): its error handler answered the client.
        Err(_) => {}
    }
}

/// A response body on its way to the client.
pub(super) struct Down {
    flight: Rc<Flight>,
    status: StatusCode,
    body: ResponseBody,
    /// Body bytes the client's codec took.
    sent: u64,
    /// The last chunk, when the client's codec did not take it all at once.
    rest: Vec<u8>,
    /// How much of `rest` was taken since.
    off: usize,
    /// The encoder when the body is compressed on its way.
    enc: Option<compress::Encoder>,
    /// The upstream body ended: once the last bytes are written, the response is closed.
    ending: bool,
}

impl Down {
    /// The body of `flight`'s `status` response, none of it sent yet; `enc` compresses it.
    pub(super) fn new(
        flight: Rc<Flight>,
        status: StatusCode,
        body: ResponseBody,
        enc: Option<compress::Encoder>,
    ) -> Down {
        Down {
            flight,
            status,
            body,
            sent: 0,
            rest: Vec::new(),
            off: 0,
            enc,
            ending: false,
        }
    }
}

/// Streams the upstream's response body to the client: read a chunk from the upstream, write it
/// all to the client (waiting for room), then read the next.
pub(super) fn download(down: Down, writer: service::BodyWriter) {
    let body = down.body.clone();
    body.schedule(Downloading { down, writer });
}

/// A download waiting for the upstream's next chunk.
struct Downloading {
    down: Down,
    writer: service::BodyWriter,
}

impl client::BodyReader for Downloading {
    fn data(self: Box<Self>, data: &[u8]) {
        let Downloading { mut down, writer } = *self;
        match down.enc.as_mut() {
            Some(enc) => {
                enc.write(data);
                enc.flush();
                let out = enc.take();
                push_down(down, writer, &out);
            }
            None => push_down(down, writer, data),
        }
    }

    fn end(self: Box<Self>, end: UpBodyEnd) {
        let Downloading { mut down, writer } = *self;
        match end {
            UpBodyEnd::Complete => {
                if let Some(enc) = down.enc.take() {
                    // The encoder's last bytes, then the close (and the count).
                    let tail = enc.finish();
                    down.ending = true;
                    return push_down(down, writer, &tail);
                }
                let _ = writer.close();
            }
            UpBodyEnd::Aborted => {
                log::warn!(
                    "proxy: upstream {:?} body aborted after {} bytes; cutting the response",
                    down.flight.upstream().config.name,
                    down.sent
                );
                // Dropping the writer unclosed cuts the response and closes the connection.
                drop(writer);
            }
        }
        down.flight.count(down.status, down.sent);
    }
}

/// Writes `data`, or else `down.rest[down.off..]` (what a short write left), to the client;
/// reads on when all was taken.
fn push_down(mut down: Down, mut writer: service::BodyWriter, data: &[u8]) {
    let src: &[u8] = if down.rest.is_empty() {
        data
    } else {
        &down.rest[down.off..]
    };
    match writer.write(src) {
        Ok(n) if n == src.len() => {
            down.sent += n as u64;
            down.rest.clear();
            down.off = 0;
            if down.ending {
                let _ = writer.close();
                down.flight.count(down.status, down.sent);
            } else {
                download(down, writer);
            }
        }
        Ok(n) => {
            down.sent += n as u64;
            if down.rest.is_empty() {
                down.rest = src[n..].to_vec();
            } else {
                down.off += n;
            }
            writer.on_writable(move |w| push_down(down, w, &[]));
        }
        Err(e) => {
            // The client went away: the rest is not read from the upstream, whose connection
            // closes.
            log::debug!("proxy: client gone mid-response: {e}");
            down.body.cancel();
            down.flight.count(down.status, down.sent);
        }
    }
}
