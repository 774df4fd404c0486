//! The pipe on the virtual pair.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use net::ListenerId;

use super::*;
use crate::runtime::{App, Cx};
use crate::testing::{Pair, RawClient, B};

/// A codec that takes input only when told to, counts the ends it is told, and has `out`
/// to send.
#[derive(Default)]
struct Sink {
    wants: bool,
    /// Takes whole lines only (up to the last `\n` offered), as a codec takes whole heads.
    lines: bool,
    /// Takes one line, then wants nothing more (what follows is read directly).
    one_line: bool,
    got: Vec<u8>,
    eofs: u32,
    out: Vec<u8>,
    sent: usize,
}

impl Codec for Sink {
    fn wants_read(&self) -> bool {
        self.wants && !(self.one_line && self.got.contains(&b'\n'))
    }
    fn handle_input(&mut self, _: Instant, bytes: &[u8]) -> usize {
        let n = if self.one_line {
            bytes.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1)
        } else if self.lines {
            bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
        } else {
            bytes.len()
        };
        self.got.extend_from_slice(&bytes[..n]);
        n
    }
    fn handle_eof(&mut self, _: Instant) {
        self.eofs += 1;
    }
    fn poll_transmit(&self) -> &[u8] {
        &self.out[self.sent..]
    }
    fn handle_transmitted(&mut self, _: Instant, n: usize) {
        self.sent += n;
    }
}

/// What the test app knows: its sink, the pipe of the one connection it accepts, and how
/// the pipe said to end it.
struct State {
    sink: Sink,
    pipe: Option<Pipe<ServerSession>>,
    pool: Pool,
    /// Shut down, lingering this long, once everything was sent.
    linger: Option<Duration>,
    ended: Option<Next>,
    /// The most plaintext the pipe held at once.
    peak: usize,
    waker: Option<crate::runtime::LocalWaker>,
    /// Read with `read_direct` (at most `direct_max` a time) once the sink wants nothing: the
    /// bytes, and the largest slice.
    direct: Option<(Vec<u8>, usize)>,
    direct_max: usize,
}

#[derive(Clone)]
struct Server(Rc<RefCell<State>>);

impl Server {
    fn pump(&self, cx: &mut Cx<'_>) {
        let mut guard = self.0.borrow_mut();
        let st = &mut *guard;
        let Some(pipe) = st.pipe.as_mut() else { return };
        pipe.begin();
        loop {
            if let Some((direct, biggest)) = st.direct.as_mut().filter(|_| !st.sink.wants_read()) {
                let mut take = |d: &[u8]| {
                    direct.extend_from_slice(d);
                    *biggest = (*biggest).max(d.len());
                    d.len()
                };
                while let Direct::Took(_) = pipe
                    .read_direct(cx, st.direct_max, &mut take)
                    .expect("socket")
                {}
            }
            let r = pipe.read(cx, &mut st.sink, &mut st.pool, EofPolicy::Feed);
            let w = pipe.write(cx, &mut st.sink);
            st.peak = st.peak.max(pipe.take_peak_input());
            if !(r.expect("socket") | w.expect("socket")) {
                break;
            }
        }
        pipe.end(&mut st.pool);
        let Some(linger) = st.linger else { return };
        if st.sink.sent < st.sink.out.len() {
            return;
        }
        let how = Shutdown {
            notify: false,
            write_timeout: Duration::from_secs(3600),
            linger: Some(cx.now + linger),
        };
        let id = pipe.id();
        match pipe.shutdown(cx, how) {
            Next::Keep => {}
            end => {
                st.ended = Some(end);
                st.pipe = None;
                match end {
                    Next::Close => cx.close(id),
                    _ => cx.abort(id),
                }
            }
        }
    }
}

impl App for Server {
    fn handle_accept(&mut self, cx: &mut Cx<'_>, _: ListenerId, c: ConnId, _: SocketAddr) {
        let mut st = self.0.borrow_mut();
        st.pipe = Some(Pipe::new(c, None));
        st.waker = Some(cx.local_waker());
        drop(st);
        self.pump(cx);
    }
    fn handle_ready(&mut self, cx: &mut Cx<'_>, _: ConnId) {
        self.pump(cx);
    }
    fn handle_wake(&mut self, cx: &mut Cx<'_>) {
        self.pump(cx);
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.0.borrow().pipe.as_ref()?.poll_timeout()
    }
    fn handle_timeout(&mut self, cx: &mut Cx<'_>) {
        self.pump(cx);
    }
}

/// A pair whose server runs the test app on port 7 with `sink`, buffers of `buffer` bytes.
fn setup(sink: Sink, buffer: usize, linger: Option<Duration>) -> (Pair, Server) {
    let mut pair = Pair::new();
    let server = Server(Rc::new(RefCell::new(State {
        sink,
        pipe: None,
        pool: Pool::new(buffer),
        linger,
        ended: None,
        peak: 0,
        waker: None,
        direct: None,
        direct_max: 0,
    })));
    pair.server
        .add(server.clone(), |_, cx| cx.listen(7, 16).map(|_| ()))
        .expect("listen");
    (pair, server)
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

#[test]
fn a_codec_that_wants_nothing_gets_nothing_then_every_byte_in_order_and_one_end() {
    let (mut pair, server) = setup(Sink::default(), 4096, None);
    let c = RawClient::connect(&mut pair.client, B.with_port(7)).unwrap();
    let data = pattern(1 << 20);
    c.send(&data);
    c.close();
    pair.drive(Duration::from_secs(10), |_| false);
    {
        let st = server.0.borrow();
        assert!(st.sink.got.is_empty() && st.sink.eofs == 0);
        // Nothing read, so nothing buffered either: backpressure is the socket's window.
        assert_eq!(st.peak, 0);
    }
    server.0.borrow_mut().sink.wants = true;
    // (The test stands in for the owner: something changed, pump.)
    let waker = server.0.borrow().waker.clone().expect("accepted");
    waker.wake();
    pair.drive(Duration::from_secs(30), |_| server.0.borrow().sink.eofs > 0);
    let st = server.0.borrow();
    assert_eq!(st.sink.got.len(), data.len());
    assert!(st.sink.got == data, "bytes differ");
    assert_eq!(st.sink.eofs, 1, "the end is told once");
    assert!(st.peak <= 4096, "held {} bytes at once", st.peak);
}

#[test]
fn lingering_closes_only_once_the_peer_has_every_byte() {
    // More than the client's socket takes while it reads nothing (256 KiB), less than that
    // plus the server's send buffer (256 KiB more): all of it reaches the server's socket,
    // not all of it the client.
    let out = pattern(384 * 1024);
    let sink = Sink {
        wants: true,
        out: out.clone(),
        ..Sink::default()
    };
    let (mut pair, server) = setup(sink, 4096, Some(Duration::from_secs(60)));
    let c = RawClient::connect(&mut pair.client, B.with_port(7)).unwrap();
    c.set_max_input(Some(1));
    // The client reads (almost) nothing: everything is handed to the socket, the pipe
    // lingers and keeps the connection.
    pair.drive(Duration::from_secs(10), |_| false);
    assert_eq!(server.0.borrow().sink.sent, out.len());
    assert!(server.0.borrow().ended.is_none());
    assert!(matches!(
        server.0.borrow().pipe.as_ref().map(Pipe::phase),
        Some(Phase::Lingering { .. })
    ));
    // Reading again, the client gets every byte, then the FIN of a graceful close.
    c.set_max_input(None);
    let mut got = Vec::new();
    pair.drive(Duration::from_secs(30), |_| {
        got.extend_from_slice(&c.take_input());
        c.is_eof()
    });
    got.extend_from_slice(&c.take_input());
    assert!(got == out, "got {} of {} bytes", got.len(), out.len());
    assert_eq!(server.0.borrow().ended, Some(Next::Close));
    assert!(!c.is_reset());
}

/// A server whose codec takes input always (`lines`: whole lines only), sent `data` and the
/// end; returns once the codec was told the end.
fn received(lines: bool, data: &[u8]) -> Server {
    let sink = Sink {
        wants: true,
        lines,
        ..Sink::default()
    };
    let (mut pair, server) = setup(sink, 4096, None);
    let c = RawClient::connect(&mut pair.client, B.with_port(7)).unwrap();
    c.send(data);
    c.close();
    pair.drive(Duration::from_secs(30), |_| server.0.borrow().sink.eofs > 0);
    server
}

#[test]
fn a_codec_reads_in_place_from_the_stack_and_what_it_leaves_is_gathered_by_copying() {
    // A codec that takes whatever it is offered reads straight from the socket's buffer:
    // nothing is ever copied into the pipe's own.
    let data = pattern(1 << 20);
    let server = received(false, &data);
    {
        let st = server.0.borrow();
        assert!(
            st.sink.got == data,
            "{} of {} bytes",
            st.sink.got.len(),
            data.len()
        );
        assert_eq!(st.peak, 0, "bytes were copied into the pipe's buffer");
    }
    // Lines of 1 to 300 bytes through the socket's 256 KiB ring (it wraps four times): a
    // line cut by the end of an offer, or by the ring's wrap, is gathered in the pipe's
    // buffer; every line arrives once, in order.
    let mut data = Vec::new();
    for i in 0..7000usize {
        data.extend((0..i % 300).map(|j| b'a' + ((i + j) % 26) as u8));
        data.push(b'\n');
    }
    let server = received(true, &data);
    let st = server.0.borrow();
    assert!(
        st.sink.got == data,
        "{} of {} bytes",
        st.sink.got.len(),
        data.len()
    );
    assert!(
        st.peak > 0 && st.peak <= 4096,
        "held {} bytes at once",
        st.peak
    );
}

#[test]
fn a_direct_read_takes_what_the_pipe_holds_first_then_the_stack_s_buffer_and_leaves_the_end() {
    // A head line, then 1 MiB the owner reads directly: the part the pipe gathered while the
    // codec looked for the line's end comes first, the rest from the socket's buffer, at most
    // `direct_max` at a time; the end is told to the codec once, by `read`.
    let sink = Sink {
        wants: true,
        one_line: true,
        ..Sink::default()
    };
    let (mut pair, server) = setup(sink, 4096, None);
    {
        let mut st = server.0.borrow_mut();
        st.direct = Some((Vec::new(), 0));
        st.direct_max = 10_000;
    }
    let c = RawClient::connect(&mut pair.client, B.with_port(7)).unwrap();
    let body = pattern(1 << 20);
    // The line cut in two sends: the pipe gathers it, then holds what follows it.
    c.send(b"HE");
    pair.drive(Duration::from_secs(1), |_| false);
    c.send(&[&b"AD\n"[..], &body].concat());
    c.close();
    pair.drive(Duration::from_secs(30), |_| server.0.borrow().sink.eofs > 0);
    let st = server.0.borrow();
    assert_eq!(st.sink.got, b"HEAD\n");
    let (direct, biggest) = st.direct.as_ref().expect("set");
    assert!(*direct == body, "{} of {} bytes", direct.len(), body.len());
    assert!(*biggest <= 10_000, "a slice of {biggest}");
    assert!(st.peak > 0 && st.peak <= 4096, "held {} bytes", st.peak);
    assert_eq!(st.sink.eofs, 1);
}
