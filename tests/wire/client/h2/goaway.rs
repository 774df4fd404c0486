//! A server's GOAWAY: requests past its last stream id, a POST among them, are resent on a new
//! connection. paf's own server never leaves streams unprocessed this way, so a hand-written
//! one plays the server.

use super::*;

/// A hand-written HTTP/2 server for what paf's own server never does: on its first connection it
/// waits for three requests (streams 1, 3, 5), sends GOAWAY with last stream id 1 and answers
/// stream 1 with `"first"`; every later connection answers each stream at once with `"later"`.
/// Frames are parsed only as far as their headers (type, flags, stream); `:status: 200` is
/// HPACK static index 8, one byte (0x88).
mod scripted {
    use std::collections::BTreeMap;
    use std::net::SocketAddr;

    use net::{ConnId, ListenerId};
    use paf::{App, Cx};

    pub const PORT: u16 = 81;
    const PREFACE: usize = 24;

    pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    struct Conn {
        nth: usize,
        input: Vec<u8>,
        /// Bytes of `input` parsed so far (after the preface).
        at: usize,
        streams: Vec<u32>,
        answered: Vec<u32>,
        out: Vec<u8>,
    }

    #[derive(Default)]
    pub struct Server {
        conns: BTreeMap<ConnId, Conn>,
        accepted: usize,
    }

    impl Server {
        fn answer(c: &mut Conn, stream: u32, body: &[u8]) {
            c.out.extend(frame(1, 4, stream, &[0x88]));
            c.out.extend(frame(0, 1, stream, body));
            c.answered.push(stream);
        }

        fn run(c: &mut Conn) {
            while c.input.len() >= PREFACE + c.at + 9 {
                let h = &c.input[PREFACE + c.at..];
                let len = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
                if h.len() < 9 + len {
                    break;
                }
                let (kind, flags) = (h[3], h[4]);
                let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
                c.at += 9 + len;
                match kind {
                    4 if flags & 1 == 0 => c.out.extend(frame(4, 1, 0, &[])),
                    1 => c.streams.push(stream),
                    _ => {}
                }
            }
            if c.nth == 0 {
                if c.streams.len() >= 3 && c.answered.is_empty() {
                    let mut goaway = 1u32.to_be_bytes().to_vec();
                    goaway.extend(0u32.to_be_bytes());
                    c.out.extend(frame(7, 0, 0, &goaway));
                    Self::answer(c, 1, b"first");
                }
            } else {
                let new: Vec<u32> = c
                    .streams
                    .iter()
                    .copied()
                    .filter(|s| !c.answered.contains(s))
                    .collect();
                for s in new {
                    Self::answer(c, s, b"later");
                }
            }
        }

        pub fn accepted(&self) -> usize {
            self.accepted
        }
    }

    impl App for Server {
        fn handle_accept(&mut self, cx: &mut Cx<'_>, _l: ListenerId, id: ConnId, _p: SocketAddr) {
            let conn = Conn {
                nth: self.accepted,
                input: Vec::new(),
                at: 0,
                streams: Vec::new(),
                answered: Vec::new(),
                out: frame(4, 0, 0, &[]),
            };
            self.accepted += 1;
            self.conns.insert(id, conn);
            self.handle_ready(cx, id);
        }

        fn handle_ready(&mut self, cx: &mut Cx<'_>, id: ConnId) {
            let Some(c) = self.conns.get_mut(&id) else {
                return;
            };
            let mut buf = [0u8; 4096];
            let mut ended = false;
            loop {
                match cx.recv(id, &mut buf) {
                    Ok(0) => break,
                    Ok(n) => c.input.extend_from_slice(&buf[..n]),
                    Err(_) => {
                        ended = true;
                        break;
                    }
                }
            }
            Self::run(c);
            while !c.out.is_empty() {
                match cx.send(id, &c.out) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        c.out.drain(..n);
                    }
                }
            }
            if ended {
                cx.close(id);
                self.conns.remove(&id);
            }
        }
    }
}

#[test]
fn requests_beyond_a_goaway_last_stream_id_are_resent_on_a_new_connection_whatever_the_method() {
    let (server, mut net) = support::serve(parking(1, Peak::default()));
    let app = Rc::new(RefCell::new(scripted::Server::default()));
    // The scripted server on the server's runtime, port 81; its state read through a shared
    // cell (the runtime owns the app).
    struct Shim(Rc<RefCell<scripted::Server>>);
    impl paf::App for Shim {
        fn handle_accept(
            &mut self,
            cx: &mut paf::Cx<'_>,
            l: net::ListenerId,
            c: net::ConnId,
            p: std::net::SocketAddr,
        ) {
            self.0.borrow_mut().handle_accept(cx, l, c, p);
        }
        fn handle_ready(&mut self, cx: &mut paf::Cx<'_>, c: net::ConnId) {
            self.0.borrow_mut().handle_ready(cx, c);
        }
    }
    net.pair
        .server
        .add(Shim(app.clone()), |_, cx| {
            cx.listen(scripted::PORT, 16).map(|_| ())
        })
        .expect("listen on 81");
    let stack = client::Agent::attach(&mut net, Options::default());
    let ctx = ctx_for(&stack).add(&client::port(), scripted::PORT);
    let (a, w) = start_with(&ctx, h2c(), get("/a"));
    w.unwrap().close().unwrap();
    let (b, w) = start_with(&ctx, h2c(), get("/b"));
    w.unwrap().close().unwrap();
    // A POST: not idempotent, but the server said it did not process it.
    let post = Request::post("/c")
        .header("content-length", 4)
        .body(())
        .unwrap();
    let (c, w) = start_with(&ctx, h2c(), post);
    let mut w = w.unwrap();
    assert_eq!(w.write(b"data").unwrap(), 4);
    w.close().unwrap();
    drive(&mut net, LONG, "three answers", || {
        done(&a) && done(&b) && done(&c)
    });
    for (o, want) in [(&a, "first"), (&b, "later"), (&c, "later")] {
        let o = o.borrow();
        assert!(o.errors.is_empty(), "{:?}", o.errors);
        assert_eq!(String::from_utf8_lossy(&o.body), want);
    }
    assert_eq!(app.borrow().accepted(), 2);
    assert_eq!(stack.stats().connections, 2);
    assert_eq!(stack.stats().retries, 2);
    server.stop(&mut net);
}
