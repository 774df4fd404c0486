//! CONNECT tunnels (RFC 9110 §9.3.6): `action = "connect"` routes.
//!
//! Contract:
//! - A CONNECT request goes to the first `connect` route of its listener whose `host` filter
//!   (if any) matches the target's host; no other route takes a CONNECT, and a `connect` route
//!   takes nothing else (see [`Route::matches_connect`](crate::config::Route::matches_connect)).
//!   A listener without one answers `501`, as do HTTP/2 connections (RFC 9113 §8.5's CONNECT
//!   is not offered) and a CONNECT with content (its meaning is undefined).
//! - The target must be authority-form `host:port` ([`Target::parse`]): `400` otherwise. The
//!   route's `allow` list decides ([`Allow`]): a target it refuses as written is answered
//!   `403` before any lookup; a name allowed only by address entries is resolved by the
//!   userspace stack's DNS and its address checked before anything is dialled
//!   ([`client::address_filter`]), `403` when refused.
//! - The target is dialled with [`client::connect`] on the userspace stack within the route's
//!   `connect_timeout`: a DNS failure or a refused or timed-out connection is `502` (the
//!   proxy's convention: a connect timeout is a failure to reach the upstream, not a
//!   response timeout). Once connected: `200` with no content and no framing fields, then the
//!   client's connection and the target's are joined into a [`tunnel`] (backpressure,
//!   half-closes, `tunnel_idle_timeout`), counted with the listener's other tunnels. Bytes the
//!   client sent right behind its CONNECT head are the tunnel's first bytes.
//! - Every answer but the `200` closes the client's connection after it. Refusals and
//!   failures are counted in `paf_connect_failures_total{kind}` and logged (a warning for a
//!   target that could not be reached, as the proxy does for upstreams; debug for refusals).

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use ::http::header;
use ::http::{Response, StatusCode, Version};

use super::Metrics;
use crate::client;
use crate::config::allow::{Allow, Target, TargetHost, Verdict};
use crate::config::{Action, Listener};
use crate::service::Reqd;
use crate::tunnel;

/// Where a CONNECT came from: for metrics and logs.
pub(super) struct Origin<'a> {
    /// The listener.
    pub listener: &'a Listener,
    /// The counters.
    pub metrics: &'a Arc<Metrics>,
    /// The agent that dials targets.
    pub dialer: &'a client::Agent,
}

/// Answers a CONNECT request: refuses it, or dials its target and tunnels.
pub(super) fn handle(reqd: Reqd, origin: &Origin<'_>) {
    let name: Rc<str> = Rc::from(origin.listener.name.as_str());
    let reply = Reply {
        reqd,
        listener: name,
        route: Cell::new(None),
        metrics: origin.metrics.clone(),
    };
    let routes = &origin.listener.routes;
    if !routes
        .iter()
        .any(|r| matches!(r.action, Action::Connect { .. }))
    {
        return reply.refuse(StatusCode::NOT_IMPLEMENTED, None, "CONNECT is not offered");
    }
    let req = reply.reqd.request();
    if req.version() == Version::HTTP_2 {
        return reply.refuse(
            StatusCode::NOT_IMPLEMENTED,
            None,
            "CONNECT over HTTP/2 is not offered",
        );
    }
    let with_content = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    let target = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_default();
    let target = match Target::parse(&target) {
        Ok(t) if !with_content => t,
        Ok(_) => {
            return reply.refuse(
                StatusCode::BAD_REQUEST,
                Some("bad_target"),
                "CONNECT with content",
            )
        }
        Err(why) => return reply.refuse(StatusCode::BAD_REQUEST, Some("bad_target"), &why),
    };
    let host = target.host.to_string();
    let found = routes
        .iter()
        .enumerate()
        .find_map(|(i, r)| match &r.action {
            Action::Connect {
                allow,
                connect_timeout,
                tunnel_idle_timeout,
            } if r.matches_connect(&host) => Some((i, allow, connect_timeout, tunnel_idle_timeout)),
            _ => None,
        });
    let Some((index, allow, connect_timeout, tunnel_idle_timeout)) = found else {
        return reply.refuse(
            StatusCode::FORBIDDEN,
            Some("forbidden"),
            "no connect route for this host",
        );
    };
    reply.route.set(Some(index));
    let verdict = allow.verdict(&target);
    if verdict == Verdict::Refused {
        log::debug!("connect: {target} for {}: not allowed", reply.reqd.peer());
        return reply.refuse(
            StatusCode::FORBIDDEN,
            Some("forbidden"),
            "target not allowed",
        );
    }
    let config = tunnel::Config {
        idle_timeout: *tunnel_idle_timeout,
        ..tunnel::Config::default()
    };
    dial(
        Rc::new(reply),
        origin.dialer,
        target,
        (verdict == Verdict::ByAddress).then(|| allow.clone()),
        *connect_timeout,
        config,
    );
}

/// The client's side of one CONNECT.
struct Reply {
    reqd: Reqd,
    listener: Rc<str>,
    /// The route, once one took the request.
    route: Cell<Option<usize>>,
    metrics: Arc<Metrics>,
}

impl Reply {
    /// Answers `status` with `why` as the body (the connection closes after it); counts it,
    /// under `kind` in `paf_connect_failures_total` when given.
    fn refuse(&self, status: StatusCode, kind: Option<&'static str>, why: &str) {
        if self.reqd.is_responded() {
            return;
        }
        if let Some(kind) = kind {
            self.metrics.connect_failure(&self.listener, kind);
        }
        let head = Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(())
            .expect("static header");
        let text = format!("{status}: {why}\n");
        if self.reqd.respond_with_bytes(head, text.as_bytes()).is_ok() {
            let n = text.len() as u64;
            self.metrics
                .request(&self.listener, self.route.get(), status.as_u16(), n);
        }
    }
}

/// Dials `target` (its address checked against `by_address` when given) and tunnels.
fn dial(
    reply: Rc<Reply>,
    dialer: &client::Agent,
    target: Target,
    by_address: Option<Allow>,
    timeout: Duration,
    config: tunnel::Config,
) {
    let mut ctx = client::ctx(dialer)
        .add(&client::port(), target.port)
        .add(&client::connect_timeout(), timeout);
    ctx = match &target.host {
        TargetHost::Name(n) => ctx.add(&client::domain_name(), n.clone()),
        TargetHost::Addr(a) => ctx.add(&client::ipaddr(), *a),
    };
    if let Some(allow) = by_address {
        let filter = client::AddressFilter::new(move |addr| allow.allows_addr(addr));
        ctx = ctx.add(&client::address_filter(), filter);
    }
    let name = Rc::new(target.to_string());
    let on_error = {
        let (reply, name) = (reply.clone(), name.clone());
        move |_peer, e: client::Error| failed(&reply, &name, &e)
    };
    let on_connected = {
        let (reply, name) = (reply.clone(), name.clone());
        move |peer, up: tunnel::Upgraded| {
            let head = Response::builder()
                .status(StatusCode::OK)
                .body(())
                .expect("no header");
            match reply.reqd.tunnel(head) {
                Ok(down) => {
                    log::debug!(
                        "connect: {} to {name} ({peer}): tunnel open",
                        reply.reqd.peer()
                    );
                    let counters = reply.metrics.tunnels(&reply.listener);
                    tunnel::join(down, up, &config, &counters);
                    let route = reply.route.get();
                    reply.metrics.request(&reply.listener, route, 200, 0);
                }
                // The client went away while the target was dialled: dropping `up` closes
                // the target's connection.
                Err(e) => log::debug!("connect: {name}: client gone before the tunnel: {e}"),
            }
        }
    };
    if let Err(e) = client::connect(&ctx, on_error, on_connected) {
        failed(&reply, &name, &e);
    }
}

/// The target could not be reached: `403` for an address the allow list refuses, else `502`.
fn failed(reply: &Reply, target: &str, e: &client::Error) {
    let peer = reply.reqd.peer();
    let (status, kind, why) = match e {
        client::Error::NotAllowed { peer: addr } => {
            log::debug!("connect: {target} for {peer}: address {addr} not allowed");
            let why = "target address not allowed";
            (StatusCode::FORBIDDEN, "forbidden", why)
        }
        client::Error::Dns { .. } => (StatusCode::BAD_GATEWAY, "dns", "cannot resolve target"),
        _ => (
            StatusCode::BAD_GATEWAY,
            "connect",
            "cannot connect to target",
        ),
    };
    if status == StatusCode::BAD_GATEWAY {
        log::warn!("connect: {target} for {peer}: {e}");
    }
    reply.refuse(status, Some(kind), why);
}
