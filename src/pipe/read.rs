//! The read path: socket → (TLS →) input buffer → codec ([`Pipe::read`], in place from the
//! stack's buffer when it can lend it), the bytes handed to the owner past the codec
//! ([`Pipe::read_direct`]), the end of the stream told ([`Pipe::feed_eof`]), and the TLS part's
//! decryption (`TlsPart::fill`).

use std::time::Instant;

use net::{ConnId, RecvError};

use super::{Codec, Direct, EofPolicy, Failure, Input, Pipe, Pool, Session, TlsPart, TlsWatch};
use crate::runtime::Cx;
use crate::tls::PlainRead;

/// What offering the stack's buffer to the codec in place did.
enum InPlace {
    /// The codec took bytes.
    Took,
    /// Nothing waits on the socket.
    Empty,
    /// The stream ended, everything before the end taken.
    Ended,
    /// Read by copying instead: the stack cannot lend its buffer, or the codec took nothing
    /// of what it was offered.
    Copy,
}

/// What filling the input buffer produced.
enum Fill {
    Data(usize),
    /// Nothing now; a new readiness event comes when there is.
    Blocked,
    /// The peer's stream ended.
    Eof,
    Failed,
}

impl<S: Session, W: TlsWatch> Pipe<S, W> {
    /// Socket → (TLS →) buffer → codec, while the codec wants input (or the TLS handshake is
    /// under way) and the buffer (at most `pool.size()` bytes) has room. Returns whether
    /// anything moved.
    ///
    /// # Errors
    /// The socket failed.
    pub(crate) fn read(
        &mut self,
        cx: &mut Cx<'_>,
        codec: &mut dyn Codec,
        pool: &mut Pool,
        eof: EofPolicy,
    ) -> Result<bool, Failure> {
        let cap = pool.size();
        let mut moved = false;
        loop {
            if self.tls_failed() {
                return Ok(moved);
            }
            if let Some(t) = self.tls.as_mut().filter(|t| !t.alpn_told) {
                if !t.session.is_handshaking() {
                    t.alpn_told = true;
                    codec.handle_alpn(t.session.alpn_protocol());
                }
            }
            if codec.wants_read() && self.input.len() > 0 {
                let n = codec.handle_input(cx.now, self.input.data());
                self.input.consume(n);
                moved |= n > 0;
            }
            if eof == EofPolicy::Feed {
                moved |= self.feed_eof(cx.now, codec);
            }
            // The handshake goes on whatever the codec wants: it never sees its bytes.
            let wanted = codec.wants_read() || self.is_handshaking();
            if self.state != Input::Open || self.drained || !wanted || self.input.len() >= cap {
                return Ok(moved);
            }
            if self.tls.is_none() && self.input.len() == 0 {
                // Plain, nothing buffered: the codec reads straight from the stack's buffer,
                // and what it leaves there stays (a head not whole yet is copied below).
                match self.read_in_place(cx, codec, cap)? {
                    InPlace::Took => {
                        moved = true;
                        continue;
                    }
                    InPlace::Empty => {
                        self.drained = true;
                        return Ok(moved);
                    }
                    InPlace::Ended => {
                        self.state = Input::Ended;
                        moved = true;
                        continue;
                    }
                    InPlace::Copy => {}
                }
            }
            let spare = self.input.spare(pool);
            let fill = match self.tls.as_mut() {
                Some(t) => t.fill(cx, self.id, pool, spare),
                None => match cx.recv(self.id, spare) {
                    Ok(0) => Fill::Blocked,
                    Ok(n) => Fill::Data(n),
                    Err(RecvError::Finished) => Fill::Eof,
                    Err(_) => Fill::Failed,
                },
            };
            match fill {
                Fill::Blocked => {
                    // Plain: the socket is empty for this pump. TLS keeps its own flag, since
                    // it may also wait for room the codec frees later in this pump.
                    self.drained = self.tls.is_none();
                    return Ok(moved);
                }
                Fill::Data(n) => {
                    self.input.filled(n);
                    self.peak_input = self.peak_input.max(self.input.len());
                    moved = true;
                }
                Fill::Eof => {
                    self.state = Input::Ended;
                    moved = true;
                }
                Fill::Failed => return Err(Failure::Socket),
            }
        }
    }

    /// Offers the codec the bytes in the stack's buffer, where they lie: at most `cap` at a
    /// time, as many as the copying path would (a codec's input per call stays bounded).
    fn read_in_place(
        &mut self,
        cx: &mut Cx<'_>,
        codec: &mut dyn Codec,
        cap: usize,
    ) -> Result<InPlace, Failure> {
        let now = cx.now;
        let mut offered = 0;
        let r = cx.recv_in_place(self.id, &mut |data: &[u8]| {
            let data = &data[..data.len().min(cap)];
            offered = data.len();
            if data.is_empty() {
                0
            } else {
                codec.handle_input(now, data)
            }
        });
        Ok(match r {
            Ok(None) => InPlace::Copy,
            Ok(Some(n)) if n > 0 => InPlace::Took,
            Ok(Some(_)) if offered == 0 => InPlace::Empty,
            // The codec needs more than this slice (a head cut by the buffer's wrap, or not
            // all here yet): the copying path gathers it.
            Ok(Some(_)) => InPlace::Copy,
            Err(RecvError::Finished) => InPlace::Ended,
            Err(_) => return Err(Failure::Socket),
        })
    }

    /// Offers the next input bytes to `take` without the codec, where they lie: the bytes the
    /// pipe holds, if any (they come first), else the stack's own buffer (plain connections);
    /// at most `max` at a time, one slice per call. `take` says how many it used; the rest
    /// stays, for the next call or [`Pipe::read`]. The end of the stream is left to the next
    /// [`Pipe::read`], as are TLS connections' bytes.
    ///
    /// For an owner that knows the next bytes are not the codec's to parse (a request body it
    /// hands to its reader itself) and tells the codec how many it took.
    ///
    /// # Errors
    /// The socket failed.
    pub(crate) fn read_direct(
        &mut self,
        cx: &mut Cx<'_>,
        max: usize,
        take: &mut dyn FnMut(&[u8]) -> usize,
    ) -> Result<Direct, Failure> {
        if self.tls_failed() {
            return Ok(Direct::Unsupported);
        }
        if max == 0 {
            return Ok(Direct::Empty);
        }
        if self.input.len() > 0 {
            let data = self.input.data();
            let data = &data[..data.len().min(max)];
            let n = take(data).min(data.len());
            self.input.consume(n);
            return Ok(Direct::Took(n));
        }
        if self.tls.is_some() {
            return Ok(Direct::Unsupported);
        }
        if self.state != Input::Open || self.drained {
            return Ok(Direct::Empty);
        }
        let mut offered = false;
        let r = cx.recv_in_place(self.id, &mut |data: &[u8]| {
            let data = &data[..data.len().min(max)];
            offered = !data.is_empty();
            if offered {
                take(data)
            } else {
                0
            }
        });
        match r {
            Ok(None) => Ok(Direct::Unsupported),
            Ok(Some(n)) if offered => Ok(Direct::Took(n)),
            Ok(Some(_)) => {
                self.drained = true;
                Ok(Direct::Empty)
            }
            Err(RecvError::Finished) => {
                self.state = Input::Ended;
                Ok(Direct::Empty)
            }
            Err(_) => Err(Failure::Socket),
        }
    }

    /// Tells the codec the stream ended, once everything before the end was taken. Returns
    /// whether it did now.
    pub(crate) fn feed_eof(&mut self, now: Instant, codec: &mut dyn Codec) -> bool {
        if self.state == Input::Ended && self.input.len() == 0 {
            self.state = Input::Told;
            codec.handle_eof(now);
            return true;
        }
        false
    }
}

impl<S: Session, W: TlsWatch> TlsPart<S, W> {
    /// Decrypts into `out`, reading and feeding ciphertext as needed; ciphertext is held up to
    /// the pool's buffer size.
    fn fill(&mut self, cx: &mut Cx<'_>, id: ConnId, pool: &mut Pool, out: &mut [u8]) -> Fill {
        loop {
            match self.session.read_plaintext(out) {
                PlainRead::Data(n) => return Fill::Data(n),
                PlainRead::Closed | PlainRead::Truncated => return Fill::Eof,
                PlainRead::Pending => {}
            }
            if self.failed {
                return Fill::Blocked;
            }
            if self.cipher_in.len() > 0 {
                let established = !self.session.is_handshaking();
                match self.session.handle_input(cx.now, self.cipher_in.data()) {
                    Ok(n) => {
                        self.watch
                            .consumed(&self.cipher_in.data()[..n], established);
                        self.cipher_in.consume(n);
                        if !self.handshake_seen && !self.session.is_handshaking() {
                            self.handshake_seen = true;
                            self.watch.handshake_done();
                        }
                        if n > 0 {
                            continue;
                        }
                    }
                    Err(e) => {
                        self.fail(id, &e);
                        return Fill::Blocked;
                    }
                }
            }
            // Handshake replies must leave before rustls takes more input.
            if self.session.wants_write() && self.flush(cx, id).is_err() {
                return Fill::Failed;
            }
            if self.eof || self.drained || self.cipher_in.len() >= pool.size() {
                self.cipher_in.release(pool);
                return Fill::Blocked;
            }
            let spare = self.cipher_in.spare(pool);
            match cx.recv(id, spare) {
                Ok(0) => self.drained = true,
                Ok(n) => {
                    self.heard = true;
                    self.cipher_in.filled(n);
                }
                Err(RecvError::Finished) => {
                    self.eof = true;
                    self.session.handle_eof();
                    self.ended();
                }
                Err(_) => {
                    self.ended();
                    return Fill::Failed;
                }
            }
        }
    }
}
