//! What happens to one exchange on its connection: sending it, streaming its body, retrying
//! it, ending it (complete or failed), and delivering what its handlers must hear.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use net::ConnId;

use super::body::{BodyEnd, BodyError, BodyWriter};
use super::conn::{Conn, ConnState, Failure};
use super::state::{
    BodyKind, Delivery, Exchange, Hints, Inner, Phase, PoolKey, Reader, MAX_REFUSED,
};
use super::{Agent, Error};
use crate::ctx::Endpoint;
use crate::http::client::{RequestBody, RequestId};
use crate::runtime::Cx;
use crate::tls;

/// Records the endpoint `Connect` chose: the request now waits for a connection.
pub(crate) fn choose(
    x: &mut Exchange,
    id: u64,
    hints: &mut Hints,
    edn: Endpoint<Agent, tls::ClientConfig>,
) {
    let addr = edn.addr();
    let tls = match edn {
        Endpoint::Tls(e) => Some((e.domain_name, e.tls)),
        Endpoint::Tcp(_) => None,
    };
    // `Host` (when the request has none) names the server the TLS endpoint verifies, unless the
    // ctx's `domain_name` already did.
    if x.host_hint.is_none() {
        x.host_hint = tls.as_ref().and_then(|(name, _)| name.clone());
    }
    x.key = Some(PoolKey {
        addr,
        tls,
        config: x.config.clone(),
        preamble: x.preamble.clone(),
    });
    x.peer = Some(addr);
    x.phase = Phase::Waiting;
    hints.waiting.push(id);
}

/// Sends `x`'s request on the open connection `c`.
pub(crate) fn send_on(c: &mut Conn, x: &mut Exchange, id: u64, now: Instant) -> Result<(), Error> {
    // The head is kept for a resend; a copy is made only to add a `Host`.
    let mut head = Cow::Borrowed(&x.head);
    if !crate::http::head::has(head.headers(), &::http::header::HOST)
        && head.uri().authority().is_none()
    {
        let host = match (
            &x.host_hint,
            net::dns::literal(x.host_hint.as_deref().unwrap_or("")),
        ) {
            (_, Some(IpAddr::V6(a))) => format!("[{a}]"),
            (Some(h), _) => h.clone(),
            (None, _) => {
                log::debug!(
                    "client: request {id}: no Host header, no domain_name in the ctx: Host is {}",
                    c.peer.ip()
                );
                match c.peer.ip() {
                    IpAddr::V4(a) => a.to_string(),
                    IpAddr::V6(a) => format!("[{a}]"),
                }
            }
        };
        let default = if c.key.tls.is_some() { 443 } else { 80 };
        let host = if c.peer.port() == default {
            host
        } else {
            format!("{host}:{}", c.peer.port())
        };
        if let Ok(v) = ::http::HeaderValue::try_from(host) {
            head.to_mut().headers_mut().insert(::http::header::HOST, v);
        }
    }
    let body = match &x.body {
        BodyKind::Empty => RequestBody::Empty,
        BodyKind::Bytes(b) => RequestBody::Complete(b),
        BodyKind::Length(n) => RequestBody::Length(*n),
        BodyKind::Chunked => RequestBody::Chunked,
    };
    let rid = c
        .codec
        .send_request(now, &head, body)
        .map_err(Error::Usage)?;
    if matches!(x.body, BodyKind::Empty | BodyKind::Bytes(_)) {
        x.finished = true;
    }
    x.phase = Phase::Sent(c.id, rid);
    x.peer = Some(c.peer);
    if !c.exchanges.contains(&id) {
        c.exchanges.push(id);
    }
    c.idle_since = None;
    Ok(())
}

/// Streamed body bytes → codec; the end of the body once the writer closed.
pub(crate) fn feed_body(c: &mut Conn, x: &mut Exchange, now: Instant) -> bool {
    let Phase::Sent(_, rid) = x.phase else {
        return false;
    };
    if x.finished {
        return false;
    }
    let mut moved = false;
    while !x.out.is_empty() {
        match c.codec.write_body(now, rid, &x.out) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                x.out.drain(..n);
                moved = true;
            }
        }
    }
    if x.closed && x.out.is_empty() {
        x.finished = true;
        let _ = c.codec.finish_body(now, rid);
        moved = true;
    }
    moved
}

/// Queues `on_writable` once the writer has room again (or the request ended).
pub(crate) fn writable(stack: &Agent, x: &mut Exchange, id: u64, out: &mut Vec<Delivery>) {
    let room = x.out.len() <= stack.0.options.body_buffer / 2;
    if x.on_writable.is_some() && (!x.blocked || room) {
        x.blocked = false;
        let f = x.on_writable.take().expect("checked");
        out.push(Delivery::Writable { f, id });
    }
}

/// Whether `x`, which got no response on `c`, may be sent again on a new connection: an
/// idempotent request on a stale pooled connection, or any request an HTTP/2 server said it
/// did not process (`not_processed`: GOAWAY below its stream, `REFUSED_STREAM`); its body must
/// be replayable either way.
pub(crate) fn retryable(x: &Exchange, c: &Conn, not_processed: bool) -> bool {
    let stale = x.is_idempotent() && c.served > 0 && !x.retried;
    let refused = not_processed && x.refused < MAX_REFUSED;
    !x.answered
        && (stale || refused)
        && (matches!(x.body, BodyKind::Empty | BodyKind::Bytes(_)) || x.replay.is_some())
}

/// Sends the request again, on a new connection.
pub(crate) fn retry(x: &mut Exchange, id: u64, hints: &mut Hints) {
    x.retried = true;
    x.fresh_only = true;
    x.phase = Phase::Waiting;
    hints.waiting.push(id);
    if let (BodyKind::Length(_) | BodyKind::Chunked, Some(r)) = (&x.body, &x.replay) {
        x.out = r.clone();
        x.finished = false;
    }
}

/// The exchange's response was read in full: it is over; the connection is free.
pub(crate) fn complete(
    inner: &mut Inner,
    c: &mut Conn,
    id: u64,
    now: Instant,
    out: &mut Vec<Delivery>,
) {
    c.exchanges.retain(|x| *x != id);
    c.served += 1;
    if c.exchanges.is_empty() && c.codec.is_reusable() && !c.closing {
        c.idle_since = Some(now);
    }
    if let Some(mut x) = inner.exchanges.remove(&id) {
        x.phase = Phase::Done;
        if let Some(f) = x.on_writable.take() {
            out.push(Delivery::Drop(Box::new(f)));
        }
        out.push(Delivery::Drop(Box::new(x)));
    }
}

/// A connection failed: each exchange on it tries the next endpoint, is retried, or fails.
pub(crate) fn conn_failed(inner: &mut Inner, c: Box<Conn>, f: Failure, out: &mut Vec<Delivery>) {
    log::debug!("client: {} to {} failed: {f:?}", c.id, c.peer);
    for &id in &c.exchanges {
        let Some(x) = inner.exchanges.get_mut(&id) else {
            continue;
        };
        let hints = &mut inner.hints;
        match x.phase {
            Phase::Connecting(_) => attempt_failed(x, id, hints, f.clone(), c.peer),
            Phase::Sent(..) if c.state != ConnState::Open => {
                attempt_failed(x, id, hints, f.clone(), c.peer);
            }
            _ if retryable(x, &c, false) => {
                retry(x, id, hints);
                inner.stats.retries += 1;
            }
            _ => {
                fail(inner, id, f.error(c.peer), out);
            }
        }
    }
}

/// The endpoint `x` was connecting to failed: back to the ctx for the next one (or the error).
pub(crate) fn attempt_failed(
    x: &mut Exchange,
    id: u64,
    hints: &mut Hints,
    f: Failure,
    peer: SocketAddr,
) {
    let error = f.error(peer);
    if let Some(connect) = &mut x.connect {
        connect.attempt_failed(error.to_string());
    }
    x.cause = Some(error);
    x.phase = Phase::Resolving;
    hints.resolving.push(id);
}

/// Ends exchange `id` with `error` (once): its error handler, readers and writers are told.
/// Returns the connection it was on (and its request there, once sent), which the caller
/// [`abort`]s.
pub(crate) fn fail(
    inner: &mut Inner,
    id: u64,
    error: Error,
    out: &mut Vec<Delivery>,
) -> Option<(ConnId, Option<RequestId>)> {
    let mut x = inner.exchanges.remove(&id)?;
    inner.stats.errors += 1;
    log::debug!("client: request {id} failed: {error}");
    let conn = match x.phase {
        Phase::Connecting(c) => Some((c, None)),
        Phase::Sent(c, rid) => Some((c, Some(rid))),
        _ => None,
    };
    x.phase = Phase::Done;
    if let Some(handler) = x.error_handler.take() {
        out.push(Delivery::Error {
            handler,
            peer: x.peer,
            error,
        });
    }
    if let Some(reader) = x.reader.take() {
        end_reader(reader, out);
    }
    if let Some(f) = x.on_writable.take() {
        out.push(Delivery::Writable { f, id });
    }
    out.push(Delivery::Drop(Box::new(x)));
    conn
}

/// Tells a reader the body will never complete.
pub(crate) fn end_reader(reader: Reader, out: &mut Vec<Delivery>) {
    match reader {
        Reader::Once(reader) => out.push(Delivery::Eof {
            reader,
            end: BodyEnd::Aborted,
        }),
        Reader::ToEnd { done, .. } => out.push(Delivery::Body {
            done,
            result: Err(BodyError::Aborted),
        }),
        Reader::Discard => {}
    }
}

/// Ends what a failed exchange left on its connection: on HTTP/2 its stream is reset and
/// the connection goes on; otherwise the connection is reset.
pub(crate) fn abort(cx: &mut Cx<'_>, inner: &mut Inner, conn: Option<(ConnId, Option<RequestId>)>) {
    let Some((cid, rid)) = conn else { return };
    if let (Some(c), Some(rid)) = (inner.conns.get_mut(&cid), rid) {
        if c.codec.cancel(cx.now, rid) {
            let live = &inner.exchanges;
            c.exchanges.retain(|x| live.contains_key(x));
            inner.dirty.push(cid);
            return;
        }
    }
    if inner.conns.remove(&cid).is_some() {
        cx.abort(cid);
    }
}

/// Runs the deliveries, with the state released.
pub(crate) fn deliver(stack: &Agent, out: &mut Vec<Delivery>) {
    for d in out.drain(..) {
        match d {
            Delivery::Response {
                handler,
                peer,
                head,
                body,
            } => handler(peer, head, body),
            Delivery::Data { reader, data } => {
                reader.data(&data);
                stack.0.hand_back(data);
            }
            Delivery::Eof { reader, end } => reader.end(end),
            Delivery::Body { done, result } => done(result),
            Delivery::Error {
                handler,
                peer,
                error,
            } => handler(peer, error),
            Delivery::Writable { f, id } => f(BodyWriter {
                stack: stack.clone(),
                id,
                done: false,
            }),
            Delivery::Connected {
                handler,
                peer,
                conn,
            } => handler(peer, conn),
            Delivery::Drop(x) => drop(x),
        }
    }
}
