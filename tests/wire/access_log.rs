//! Access logs on the in-memory wire and the virtual clock: a service given an
//! [`AccessLog`] with a [`MemorySink`] writes nothing per request; its lines reach the sink
//! when the flush interval of virtual time has passed (or the service stops), with the fields
//! of each format, for HTTP/1.1 and HTTP/2 (h2c) requests and for answers to peer faults.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use ::http::{Request, Response};
use bytes::Bytes;
use net::testing::{A_V4, B_V4};
use paf::http::Config;
use paf::service::access_log::{Format, MemorySink, FLUSH_INTERVAL};
use paf::service::{self, AccessLog, Handle, Initialized, Reqd, Switch};
use paf::testing::{parse_response, ClientHandle, Pair, RawClient};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const LONG: Duration = Duration::from_secs(60);

struct Net {
    pair: Pair,
    handle: Handle,
    stop: Switch,
    sink: MemorySink,
}

/// A service on port 80 answering `hello` to everything, logging in `format` to a memory sink.
fn serve(format: Format) -> Net {
    let mut pair = Pair::new();
    let sink = MemorySink::new();
    let svc = service::init(&mut pair.server, 80)
        .expect("listen")
        .access_log(AccessLog::new(format, sink.clone()));
    let stop = Switch::new();
    let Initialized(handle) = service::http(
        svc,
        Config::default(),
        Some(stop.clone()),
        service::default_error_handler,
        |_peer, reqd: Reqd| {
            reqd.respond_with_bytes(Response::new(()), "hello")
                .expect("respond");
        },
    );
    Net {
        pair,
        handle,
        stop,
        sink,
    }
}

impl Net {
    fn lines(&self) -> Vec<String> {
        String::from_utf8(self.sink.contents())
            .expect("utf-8")
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Sends `bytes` on a new connection and returns the status of the one response.
    fn exchange(&mut self, bytes: &[u8]) -> u16 {
        let c = RawClient::connect(&mut self.pair.client, SocketAddr::from((B_V4, 80)))
            .expect("connect");
        c.send(bytes);
        let mut buf = Vec::new();
        let mut status = None;
        self.pair.drive_until(LONG, "a response", |_| {
            buf.extend_from_slice(&c.take_input());
            status = parse_response(&buf, false).map(|(r, _)| r.status);
            status.is_some()
        });
        status.expect("checked")
    }

    fn stop(&mut self) {
        self.stop.turn_off();
        let h = self.handle.clone();
        self.pair
            .drive_until(LONG, "the service to stop", |_| h.is_finished());
    }
}

#[test]
fn combined_lines_reach_the_sink_at_the_flush_interval_of_virtual_time() {
    let mut net = serve(Format::Combined);
    let status = net.exchange(
        b"GET /a?x=1 HTTP/1.1\r\nHost: paf.test\r\nReferer: http://r.test/\"q\"\r\n\
          User-Agent: wire \"test\" \\ 1\r\n\r\n",
    );
    assert_eq!(status, 200);
    // A TLS record header on the plain port: 400, logged without a request.
    assert_eq!(net.exchange(b"\x16\x03\x01"), 400);
    // Nothing is written per line: the sink is still empty just before the interval is up.
    net.pair
        .drive(FLUSH_INTERVAL - Duration::from_millis(50), |_| false);
    assert_eq!(net.lines(), Vec::<String>::new());
    let sink = net.sink.clone();
    net.pair.drive_until(
        Duration::from_millis(100),
        "the lines, once the interval is up",
        |_| sink.contents().iter().filter(|&&b| b == b'\n').count() == 2,
    );
    let lines = net.lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    // `$remote_addr - - [$time_local] "$request" $status $body_bytes_sent "$http_referer"
    // "$http_user_agent"`; the virtual wall clock starts at 2026-01-01T00:00:00Z.
    let prefix = format!("{A_V4} - - [01/Jan/2026:00:00:0");
    for l in &lines {
        assert!(l.starts_with(&prefix), "{l}");
        assert_eq!(&l[prefix.len() + 1..prefix.len() + 9], " +0000] ", "{l}");
    }
    let rest: Vec<&str> = lines.iter().map(|l| &l[prefix.len() + 9..]).collect();
    assert_eq!(
        rest,
        [
            r#""GET /a?x=1 HTTP/1.1" 200 5 "http://r.test/\x22q\x22" "wire \x22test\x22 \x5C 1""#,
            r#""-" 400 16 "-" "-""#,
        ]
    );
    assert_eq!(net.handle.stats().access_log_dropped, 0);
    net.stop();
}

#[test]
fn json_lines_name_the_protocol_and_the_last_ones_go_out_on_stop() {
    let mut net = serve(Format::Json);
    assert_eq!(
        net.exchange(b"GET /one HTTP/1.1\r\nHost: paf.test\r\nUser-Agent: \"x\"\r\n\r\n"),
        200
    );
    assert_eq!(
        net.exchange(b"POST /two HTTP/1.1\r\nHost: paf.test\r\nContent-Length: x\r\n\r\n"),
        400
    );
    // Well within the interval: the stop flushes.
    net.stop();
    let lines = net.lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let v: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect();
    assert_eq!(v[0]["remote_addr"], A_V4.to_string());
    assert_eq!(v[0]["method"], "GET");
    assert_eq!(v[0]["uri"], "/one");
    assert_eq!(v[0]["protocol"], "HTTP/1.1");
    assert_eq!(v[0]["status"], 200);
    assert_eq!(v[0]["body_bytes_sent"], 5);
    assert_eq!(v[0]["user_agent"], "\"x\"");
    assert_eq!(v[0]["time"], "2026-01-01T00:00:00Z");
    // The 400 came before any request was parsed.
    assert_eq!(v[1]["status"], 400);
    assert_eq!(v[1]["method"], serde_json::Value::Null);
    assert!(
        v[1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("Content-Length")),
        "{}",
        v[1]
    );
}

/// The raw client's bytes as the h2 client's IO.
struct Io(ClientHandle, Vec<u8>, usize);

impl AsyncRead for Io {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.2 == self.1.len() {
            self.1 = self.0.take_input();
            self.2 = 0;
        }
        if self.2 == self.1.len() {
            return if self.0.is_eof() || self.0.is_done() {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            };
        }
        let n = (self.1.len() - self.2).min(buf.remaining());
        let at = self.2;
        buf.put_slice(&self.1[at..at + n]);
        self.2 += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Io {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, d: &[u8]) -> Poll<io::Result<usize>> {
        self.0.send(d);
        Poll::Ready(Ok(d.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[test]
fn an_h2c_request_is_logged_as_http_2_0() {
    let mut net = serve(Format::Combined);
    let raw =
        RawClient::connect(&mut net.pair.client, SocketAddr::from((B_V4, 80))).expect("connect");
    let mut cx = Context::from_waker(Waker::noop());
    let mut hs = Box::pin(h2::client::Builder::new().handshake::<_, Bytes>(Io(raw, Vec::new(), 0)));
    let mut got = None;
    net.pair.drive_until(LONG, "the h2 handshake", |_| {
        if let Poll::Ready(r) = hs.as_mut().poll(&mut cx) {
            got = Some(r.expect("handshake"));
        }
        got.is_some()
    });
    let (mut send, conn) = got.expect("checked");
    let mut conn = Box::pin(conn);
    let req = Request::builder()
        .uri("http://paf.test/h2?q=1")
        .header("user-agent", "h2-test")
        .body(())
        .unwrap();
    let (fut, _) = send.send_request(req, true).expect("send_request");
    let mut fut = Box::pin(fut);
    let mut status = None;
    net.pair.drive_until(LONG, "the h2 response", |_| {
        let _ = conn.as_mut().poll(&mut cx);
        if let Poll::Ready(r) = fut.as_mut().poll(&mut cx) {
            status = Some(r.expect("response").status().as_u16());
        }
        status.is_some()
    });
    assert_eq!(status, Some(200));
    net.pair.drive(FLUSH_INTERVAL * 2, |_| false);
    let lines = net.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].ends_with(r#"] "GET /h2?q=1 HTTP/2.0" 200 5 "-" "h2-test""#),
        "{}",
        lines[0]
    );
    assert_eq!(net.handle.stats().h2_streams, 1);
    net.stop();
}
