//! Probes: client connections with a script each (what to send, when to stop reading, how to
//! end), as apps of the pair's client runtime, with or without TLS.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use net::{ConnId, ConnectError, ListenerId, RecvError};
use paf::runtime::{App, Cx};
use paf::testing::Pair;
use paf::tls::{ClientConfig, ClientSession, PlainRead, ServerName};
use paf::Runtime;

/// How long one wave of probes may take (virtual time).
const WAVE: Duration = Duration::from_secs(60);

/// How a probe ends its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Read until the server closes, then close.
    Eof,
    /// Reset (abort) once the request is sent and acknowledged and this many response bytes
    /// arrived (0: right after the request).
    AbortAfter(usize),
    /// Never read: the server's write timeout (or a stop) must end the connection.
    NoRead,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The server closed and the probe read everything.
    Eof,
    /// The connection was reset (by the server, or refused).
    Reset,
    /// The probe reset it as scripted.
    Aborted,
}

struct ProbeState {
    name: &'static str,
    conn: Option<ConnId>,
    tls: Option<(ClientSession, Vec<u8>, usize)>,
    out: Vec<u8>,
    sent: usize,
    /// The first bytes of the (plaintext) response, for status checks.
    head: Vec<u8>,
    received: usize,
    end: End,
    connected: bool,
    peer_eof: bool,
    outcome: Option<Outcome>,
}

struct Probe(Rc<RefCell<ProbeState>>);

#[derive(Clone)]
pub struct ProbeHandle(Rc<RefCell<ProbeState>>);

impl std::fmt::Debug for ProbeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.0.borrow();
        write!(
            f,
            "{} (sent {}/{}, received {}, {:?})",
            st.name,
            st.sent,
            st.out.len(),
            st.received,
            st.outcome
        )
    }
}

impl ProbeHandle {
    /// How the connection ended, once it has.
    pub fn outcome(&self) -> Option<Outcome> {
        self.0.borrow().outcome
    }

    /// How the probe was scripted to end.
    pub fn end(&self) -> End {
        self.0.borrow().end
    }

    /// The first bytes of the response, as text.
    pub fn head(&self) -> String {
        String::from_utf8_lossy(&self.0.borrow().head).into_owned()
    }

    /// The status of the first response.
    pub fn status(&self) -> Option<u16> {
        let st = self.0.borrow();
        let line = st.head.split(|&b| b == b'\r').next()?;
        std::str::from_utf8(line.get(9..12)?).ok()?.parse().ok()
    }
}

pub fn probe(
    rt: &mut Runtime,
    name: &'static str,
    to: SocketAddr,
    tls: Option<&ClientConfig>,
    send: &[u8],
    end: End,
) -> ProbeHandle {
    let tls = tls.map(|c| {
        let sni = ServerName::try_from("paf.test").expect("a name");
        (
            // The handshake deadline counts on the loop's (virtual) clock, as `cx.now` does.
            ClientSession::new(c, sni, rt.clock().now()).expect("a session"),
            Vec::new(),
            0,
        )
    });
    let st = Rc::new(RefCell::new(ProbeState {
        name,
        conn: None,
        tls,
        out: send.to_vec(),
        sent: 0,
        head: Vec::new(),
        received: 0,
        end,
        connected: false,
        peer_eof: false,
        outcome: None,
    }));
    rt.add(Probe(st.clone()), |p, cx| {
        p.0.borrow_mut().conn = Some(cx.connect(to)?);
        Ok::<_, ConnectError>(())
    })
    .expect("connect");
    ProbeHandle(st)
}

impl ProbeState {
    fn finish(&mut self, cx: &mut Cx<'_>, id: ConnId, outcome: Outcome) {
        self.outcome = Some(outcome);
        self.conn = None;
        match outcome {
            Outcome::Eof => cx.close(id),
            Outcome::Reset | Outcome::Aborted => cx.abort(id),
        }
    }

    fn deliver(&mut self, data: &[u8]) {
        self.received += data.len();
        let room = 512usize.saturating_sub(self.head.len());
        self.head.extend_from_slice(&data[..data.len().min(room)]);
    }

    /// Ciphertext (or plaintext without TLS) from the socket; false on a TLS error.
    fn receive(&mut self, now: Instant, mut data: &[u8], eof: bool) -> bool {
        let Some((session, _, _)) = self.tls.as_mut() else {
            self.deliver(data);
            self.peer_eof |= eof;
            return true;
        };
        let mut plain = [0u8; 16 * 1024];
        let mut got = Vec::new();
        loop {
            match session.handle_input(now, data) {
                Ok(n) => data = &data[n..],
                Err(_) => return false,
            }
            if eof && data.is_empty() {
                session.handle_eof();
            }
            let mut closed = false;
            loop {
                match session.read_plaintext(&mut plain) {
                    PlainRead::Data(n) => got.extend_from_slice(&plain[..n]),
                    PlainRead::Closed | PlainRead::Truncated => {
                        closed = true;
                        break;
                    }
                    PlainRead::Pending => break,
                }
            }
            self.peer_eof |= closed;
            if data.is_empty() || closed {
                break;
            }
        }
        self.deliver(&got);
        true
    }

    fn pump(&mut self, cx: &mut Cx<'_>) {
        let Some(id) = self.conn else { return };
        let r = cx.readiness(id);
        if r.reset {
            return self.finish(cx, id, Outcome::Reset);
        }
        if !self.connected {
            if r.closed {
                return self.finish(cx, id, Outcome::Reset);
            }
            if !r.established {
                return;
            }
            self.connected = true;
        }
        let mut buf = [0u8; 16 * 1024];
        for _ in 0..10_000 {
            let mut moved = false;
            if self.sent < self.out.len() {
                let data = &self.out[self.sent..];
                let n = match self.tls.as_mut() {
                    Some((s, _, _)) => s.write_plaintext(data),
                    None => cx.send(id, data).unwrap_or(0),
                };
                self.sent += n;
                moved |= n > 0;
            }
            if let Some((s, out, pos)) = self.tls.as_mut() {
                loop {
                    if *pos == out.len() {
                        out.clear();
                        *pos = 0;
                        if s.poll_transmit(out) == 0 {
                            break;
                        }
                    }
                    match cx.send(id, &out[*pos..]) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            *pos += n;
                            moved = true;
                        }
                    }
                }
            }
            // A client that stops reading still reads its TLS handshake: the server's write
            // timeout is under test, not its handshake timeout.
            let handshaking = self
                .tls
                .as_ref()
                .is_some_and(|(s, _, _)| s.is_handshaking());
            if (self.end != End::NoRead || handshaking) && !self.peer_eof {
                let ok = match cx.recv(id, &mut buf) {
                    Ok(0) => true,
                    Ok(n) => {
                        moved = true;
                        self.receive(cx.now, &buf[..n], false)
                    }
                    Err(RecvError::Finished) => {
                        moved = true;
                        self.receive(cx.now, &[], true)
                    }
                    Err(_) => return self.finish(cx, id, Outcome::Reset),
                };
                if !ok {
                    return self.finish(cx, id, Outcome::Reset);
                }
            }
            let flushed = self.sent == self.out.len()
                && cx.send_queue(id) == 0
                && self
                    .tls
                    .as_ref()
                    .is_none_or(|(s, out, pos)| *pos == out.len() && !s.wants_write());
            if let End::AbortAfter(n) = self.end {
                if flushed && self.received >= n {
                    return self.finish(cx, id, Outcome::Aborted);
                }
            }
            if self.peer_eof {
                return self.finish(cx, id, Outcome::Eof);
            }
            if !moved {
                break;
            }
        }
    }
}

impl App for Probe {
    fn handle_accept(&mut self, cx: &mut Cx<'_>, _l: ListenerId, conn: ConnId, _p: SocketAddr) {
        cx.abort(conn);
    }

    fn handle_ready(&mut self, cx: &mut Cx<'_>, _conn: ConnId) {
        self.0.borrow_mut().pump(cx);
    }

    fn is_finished(&self) -> bool {
        self.0.borrow().outcome.is_some()
    }
}

/// Steps the pair until every probe has ended.
pub fn wave(pair: &mut Pair, probes: &[ProbeHandle], what: &str) {
    pair.drive(WAVE, |_| probes.iter().all(|p| p.outcome().is_some()));
    let stuck: Vec<_> = probes.iter().filter(|p| p.outcome().is_none()).collect();
    assert!(
        stuck.is_empty(),
        "{what}: probes still running after {WAVE:?} of virtual time: {stuck:?}"
    );
}
