//! Appliance counters and their Prometheus text exposition (`/metrics`).
//!
//! Counters are atomics shared by the routes of every listener (they run on the loop thread;
//! atomics make the registry readable from other threads too, e.g. tests). Per-service
//! connection counts come from each service's [`Handle::stats`](crate::service::Handle::stats);
//! the stack's socket count is sampled once a second by [`Sampler`].
//!
//! With several workers each has its own registry (no counter is shared between cores);
//! [`Metrics::join_workers`] links them, and `/metrics` on any worker then shows their sum
//! (process-wide families, such as the configuration generation, once), followed by
//! per-worker gauges (`paf_worker_*{worker="K"}`) and the hand-overs between the workers'
//! stacks (see `workers.rs`).

mod responses;
mod workers;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use net::{ConnId, ListenerId};

use crate::http::h2::Flood;
use crate::runtime::{App, Cx};
use crate::service::handle::TlsFailure;
use crate::service::{Handle, Stats};
use responses::Responses;

/// Counters labelled by a name (a listener, an upstream) and a second label: looked up by `&str`,
/// so that counting allocates only the first time a name is seen.
type ByName<K> = Mutex<BTreeMap<String, BTreeMap<K, u64>>>;

/// The registry.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Responses by listener, then route and status class, and their body bytes.
    responses: Mutex<Vec<Responses>>,
    request_bytes: Mutex<BTreeMap<String, u64>>,
    upstream_errors: ByName<&'static str>,
    upstream_responses: ByName<&'static str>,
    tunnels: Mutex<BTreeMap<String, crate::tunnel::Counters>>,
    /// CONNECT requests not tunnelled, by listener and kind.
    connect_failures: ByName<&'static str>,
    services: Mutex<Vec<(String, Handle)>>,
    /// ACME: per domain, the installed certificate's `notAfter` (Unix seconds).
    acme_expiry: Mutex<BTreeMap<String, u64>>,
    /// ACME: orders per listener and result (`ok`, `failed`).
    acme_orders: ByName<&'static str>,
    /// Sockets held by the stack (listening pools included), sampled.
    pub stack_sockets: AtomicUsize,
    /// Loop passes observed by the sampler (liveness).
    pub samples: AtomicU64,
    /// Reloads applied, and refused.
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    /// The running configuration's generation: 1 once started, one more per reload applied.
    generation: AtomicU64,
    /// When it was applied, in Unix milliseconds.
    applied_ms: AtomicU64,
    /// Every worker's registry (this one included), once [joined](Metrics::join_workers).
    workers: std::sync::OnceLock<Vec<std::sync::Weak<Metrics>>>,
    /// The hand-over counters of the mesh joining the workers' stacks, once
    /// [joined](Metrics::join_mesh).
    mesh: std::sync::OnceLock<net::stack::mesh::Counters>,
}

/// Adds `by` to `name`'s counter (the name is copied only the first time).
fn bump(m: &Mutex<BTreeMap<String, u64>>, name: &str, by: u64) {
    let mut m = m.lock().unwrap_or_else(|p| p.into_inner());
    match m.get_mut(name) {
        Some(v) => *v += by,
        None => {
            m.insert(name.to_owned(), by);
        }
    }
}

/// Adds `by` to the counter of `name` and `label` (the name is copied only the first time).
fn bump_by<K: Ord>(m: &ByName<K>, name: &str, label: K, by: u64) {
    let mut m = m.lock().unwrap_or_else(|p| p.into_inner());
    let labels = match m.get_mut(name) {
        Some(l) => l,
        None => m.entry(name.to_owned()).or_default(),
    };
    *labels.entry(label).or_insert(0) += by;
}

/// The counters of `m` with their two labels, in order.
fn snapshot_by<K: Ord + Copy>(m: &ByName<K>) -> Vec<(String, K, u64)> {
    let m = m.lock().unwrap_or_else(|p| p.into_inner());
    m.iter()
        .flat_map(|(n, labels)| labels.iter().map(move |(k, v)| (n.clone(), *k, *v)))
        .collect()
}

fn snapshot<K: Clone + Ord>(m: &Mutex<BTreeMap<K, u64>>) -> BTreeMap<K, u64> {
    m.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// Register a listener's service for connection gauges.
    pub fn add_service(&self, listener: &str, handle: Handle) {
        self.services
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((listener.to_string(), handle));
    }

    /// Replaces the services shown (after a reload: the listeners of the new configuration,
    /// each with its current service, whose counters go on from those of the service it
    /// replaced).
    pub fn set_services(&self, services: Vec<(String, Handle)>) {
        *self.services.lock().unwrap_or_else(|p| p.into_inner()) = services;
    }

    /// A configuration was applied (the start, or a reload) at wall-clock time `wall`.
    pub fn config_applied(&self, wall: SystemTime) {
        self.generation.fetch_add(1, Ordering::Relaxed);
        let ms = wall
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        self.applied_ms
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Count a reload, applied (`ok`) or refused.
    pub fn reload_result(&self, ok: bool) {
        let c = if ok {
            &self.reloads_ok
        } else {
            &self.reloads_failed
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Reloads applied and refused so far.
    pub fn reloads(&self) -> (u64, u64) {
        (
            self.reloads_ok.load(Ordering::Relaxed),
            self.reloads_failed.load(Ordering::Relaxed),
        )
    }

    /// The running configuration's generation: 1 once started, one more per reload applied.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// Count one response.
    pub fn request(&self, listener: &str, route: Option<usize>, status: u16, body_bytes: u64) {
        let mut all = self.responses.lock().unwrap_or_else(|p| p.into_inner());
        Responses::count(&mut all, listener, route, status, body_bytes);
    }

    /// Every response counted, over all listeners.
    fn responses_total(&self) -> u64 {
        let all = self.responses.lock().unwrap_or_else(|p| p.into_inner());
        all.iter().flat_map(|r| r.counts()).map(|(_, _, n)| n).sum()
    }

    /// Count request body bytes received (uploads, proxied bodies).
    pub fn request_bytes(&self, listener: &str, n: u64) {
        bump(&self.request_bytes, listener, n);
    }

    /// Count an upstream failure by kind (`connect`, `tls`, `protocol`, `timeout`).
    pub fn upstream_error(&self, upstream: &str, kind: &'static str) {
        bump_by(&self.upstream_errors, upstream, kind, 1);
    }

    /// ACME: the certificate now served for `domain` expires at `not_after` (Unix seconds).
    pub fn acme_expiry(&self, domain: &str, not_after: u64) {
        self.acme_expiry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(domain.to_string(), not_after);
    }

    /// ACME: an order of `listener` ended, `ok` or `failed`.
    pub fn acme_order(&self, listener: &str, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        bump_by(&self.acme_orders, listener, result, 1);
    }

    /// Count an upstream response head by the protocol that carried it (`h2`, `http/1.1`).
    pub fn upstream_response(&self, upstream: &str, protocol: &'static str) {
        bump_by(&self.upstream_responses, upstream, protocol, 1);
    }

    /// Count a CONNECT request that got no tunnel, by kind: `bad_target` (400), `forbidden`
    /// (403: not in `allow`, by name or by address), `dns` and `connect` (502).
    pub fn connect_failure(&self, listener: &str, kind: &'static str) {
        bump_by(&self.connect_failures, listener, kind, 1);
    }

    /// The counters of a listener's tunnels: its proxy routes' upgraded connections and its
    /// connect routes' CONNECT tunnels.
    pub fn tunnels(&self, listener: &str) -> crate::tunnel::Counters {
        let mut m = self.tunnels.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(listener.to_string()).or_default().clone()
    }

    /// Requests counted so far for a listener and status class (tests, health checks).
    pub fn requests_of(&self, listener: &str, class_label: &str) -> u64 {
        let all = self.responses.lock().unwrap_or_else(|p| p.into_inner());
        all.iter()
            .filter(|r| r.listener == listener)
            .flat_map(Responses::counts)
            .filter(|(_, c, _)| *c == class_label)
            .map(|(_, _, n)| n)
            .sum()
    }

    /// This registry's exposition alone.
    fn render_one(&self) -> String {
        let mut out = String::with_capacity(2048);
        let services = self
            .services
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let _ = writeln!(
            out,
            "# HELP paf_connections_accepted_total TCP connections accepted."
        );
        let _ = writeln!(out, "# TYPE paf_connections_accepted_total counter");
        for (l, h) in &services {
            let _ = writeln!(
                out,
                "paf_connections_accepted_total{{listener=\"{}\"}} {}",
                escape(l),
                h.stats().accepted
            );
        }
        let _ = writeln!(out, "# HELP paf_connections_open Connections open now.");
        let _ = writeln!(out, "# TYPE paf_connections_open gauge");
        for (l, h) in &services {
            let _ = writeln!(
                out,
                "paf_connections_open{{listener=\"{}\"}} {}",
                escape(l),
                h.stats().active
            );
        }
        let _ = writeln!(out, "# HELP paf_peer_errors_total Requests refused for protocol errors or timeouts (4xx/5xx from the codec).");
        let _ = writeln!(out, "# TYPE paf_peer_errors_total counter");
        for (l, h) in &services {
            let _ = writeln!(
                out,
                "paf_peer_errors_total{{listener=\"{}\"}} {}",
                escape(l),
                h.stats().errors
            );
        }
        let _ = writeln!(
            out,
            "# HELP paf_requests_total Responses by listener, route index and status class."
        );
        let _ = writeln!(out, "# TYPE paf_requests_total counter");
        let mut responses = self
            .responses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        responses.sort_by(|a, b| a.listener.cmp(&b.listener));
        let counts = responses
            .iter()
            .flat_map(|x| x.counts().map(move |(r, c, v)| (&x.listener, r, c, v)));
        for (l, r, c, v) in counts {
            let _ = write!(
                out,
                "paf_requests_total{{listener=\"{}\",route=\"",
                escape(l)
            );
            let _ = match r {
                Some(r) => write!(out, "{r}"),
                None => write!(out, "none"),
            };
            let _ = writeln!(out, "\",class=\"{c}\"}} {v}");
        }
        let _ = writeln!(
            out,
            "# HELP paf_response_body_bytes_total Response body bytes sent."
        );
        let _ = writeln!(out, "# TYPE paf_response_body_bytes_total counter");
        for x in &responses {
            let _ = writeln!(
                out,
                "paf_response_body_bytes_total{{listener=\"{}\"}} {}",
                escape(&x.listener),
                x.body_bytes
            );
        }
        let _ = writeln!(
            out,
            "# HELP paf_request_body_bytes_total Request body bytes received."
        );
        let _ = writeln!(out, "# TYPE paf_request_body_bytes_total counter");
        for (l, v) in snapshot(&self.request_bytes) {
            let _ = writeln!(
                out,
                "paf_request_body_bytes_total{{listener=\"{}\"}} {v}",
                escape(&l)
            );
        }
        let _ = writeln!(
            out,
            "# HELP paf_request_body_bytes_in_place_total Request body bytes handed to the \
             handler where they lay in the connection's receive buffer, without a copy into \
             the HTTP/1.1 codec's body buffer."
        );
        let _ = writeln!(out, "# TYPE paf_request_body_bytes_in_place_total counter");
        for (l, h) in &services {
            let _ = writeln!(
                out,
                "paf_request_body_bytes_in_place_total{{listener=\"{}\"}} {}",
                escape(l),
                h.stats().body_bytes_in_place
            );
        }
        self.render_reloads(&mut out);
        render_timeouts(&mut out, &services);
        render_limited(&mut out, &services);
        render_access_log(&mut out, &services);
        render_h2(&mut out, &services);
        render_tls(&mut out, &services);
        self.render_tunnels(&mut out, &services);
        let _ = writeln!(
            out,
            "# HELP paf_connect_failures_total CONNECT requests not tunnelled, by kind: \
             bad_target, forbidden, dns, connect."
        );
        let _ = writeln!(out, "# TYPE paf_connect_failures_total counter");
        for (l, k, v) in snapshot_by(&self.connect_failures) {
            let _ = writeln!(
                out,
                "paf_connect_failures_total{{listener=\"{}\",kind=\"{k}\"}} {v}",
                escape(&l)
            );
        }
        let _ = writeln!(
            out,
            "# HELP paf_upstream_errors_total Upstream failures by kind."
        );
        let _ = writeln!(out, "# TYPE paf_upstream_errors_total counter");
        for (u, k, v) in snapshot_by(&self.upstream_errors) {
            let _ = writeln!(
                out,
                "paf_upstream_errors_total{{upstream=\"{}\",kind=\"{k}\"}} {v}",
                escape(&u)
            );
        }
        let _ = writeln!(
            out,
            "# HELP paf_upstream_responses_total Upstream response heads by the protocol that carried them."
        );
        let _ = writeln!(out, "# TYPE paf_upstream_responses_total counter");
        for (u, p, v) in snapshot_by(&self.upstream_responses) {
            let _ = writeln!(
                out,
                "paf_upstream_responses_total{{upstream=\"{}\",protocol=\"{p}\"}} {v}",
                escape(&u)
            );
        }
        let _ = writeln!(
            out,
            "# HELP paf_stack_sockets TCP sockets held by the stack, listening pools included."
        );
        let _ = writeln!(out, "# TYPE paf_stack_sockets gauge");
        let _ = writeln!(
            out,
            "paf_stack_sockets {}",
            self.stack_sockets.load(Ordering::Relaxed)
        );
        self.render_acme(&mut out);
        out
    }
}

/// A tunnel family: name, Prometheus type, help text, its value in a listener's tunnel stats.
type TunnelFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&crate::tunnel::Stats) -> u64,
);

impl Metrics {
    /// `paf_reloads_total`, `paf_config_generation`, `paf_config_last_reload_success_timestamp_seconds`.
    fn render_reloads(&self, out: &mut String) {
        let (ok, failed) = self.reloads();
        let _ = writeln!(
            out,
            "# HELP paf_reloads_total Configuration reloads (SIGHUP), by result: ok (applied) or \
             failed (refused: the running configuration kept serving)."
        );
        let _ = writeln!(out, "# TYPE paf_reloads_total counter");
        let _ = writeln!(out, "paf_reloads_total{{result=\"ok\"}} {ok}");
        let _ = writeln!(out, "paf_reloads_total{{result=\"failed\"}} {failed}");
        let name = "paf_config_generation";
        let _ = writeln!(
            out,
            "# HELP {name} The running configuration: 1 at start, one more per reload applied."
        );
        let _ = writeln!(out, "# TYPE {name} gauge");
        let _ = writeln!(out, "{name} {}", self.generation());
        let name = "paf_config_last_reload_success_timestamp_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} When the running configuration was applied (start or reload), Unix time."
        );
        let _ = writeln!(out, "# TYPE {name} gauge");
        let ms = self.applied_ms.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name} {}.{:03}", ms / 1000, ms % 1000);
    }

    /// The tunnel families (proxied upgrades and CONNECT tunnels), for every listener.
    fn render_tunnels(&self, out: &mut String, services: &[(String, Handle)]) {
        let stats: Vec<(&String, crate::tunnel::Stats)> = services
            .iter()
            .map(|(l, _)| (l, self.tunnels(l).stats()))
            .collect();
        let families: [TunnelFamily; 3] = [
            (
                "paf_tunnels_open",
                "gauge",
                "Tunnels (upgraded connections, WebSocket, CONNECT) open now.",
                |s| s.open,
            ),
            (
                "paf_tunnels_total",
                "counter",
                "Tunnels opened: upgrades the upstream accepted with 101, CONNECTs answered 200.",
                |s| s.opened,
            ),
            (
                "paf_tunnel_idle_timeouts_total",
                "counter",
                "Tunnels closed by tunnel_idle_timeout.",
                |s| s.idle_timeouts,
            ),
        ];
        for (name, kind, help, get) in families {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (l, s) in &stats {
                let _ = writeln!(out, "{name}{{listener=\"{}\"}} {}", escape(l), get(s));
            }
        }
        let name = "paf_tunnel_bytes_total";
        let _ = writeln!(
            out,
            "# HELP {name} Bytes relayed through tunnels, by direction (client_to_upstream, \
             upstream_to_client)."
        );
        let _ = writeln!(out, "# TYPE {name} counter");
        for (l, s) in &stats {
            for (dir, v) in [
                ("client_to_upstream", s.bytes_a_to_b),
                ("upstream_to_client", s.bytes_b_to_a),
            ] {
                let _ = writeln!(
                    out,
                    "{name}{{listener=\"{}\",direction=\"{dir}\"}} {v}",
                    escape(l)
                );
            }
        }
    }
}

/// `paf_timeouts_total`: connections cut by the server's timeouts, by kind.
fn render_timeouts(out: &mut String, services: &[(String, Handle)]) {
    let _ = writeln!(
        out,
        "# HELP paf_timeouts_total Requests answered 408 for a stalled head or body, and \
         connections reset for taking no output, by kind (head, body, write)."
    );
    let _ = writeln!(out, "# TYPE paf_timeouts_total counter");
    for (l, h) in services {
        let s = h.stats();
        for (kind, v) in [
            ("head", s.head_timeouts),
            ("body", s.body_timeouts),
            ("write", s.write_timeouts),
        ] {
            let _ = writeln!(
                out,
                "paf_timeouts_total{{listener=\"{}\",kind=\"{kind}\"}} {v}",
                escape(l)
            );
        }
    }
}

/// `paf_limited_total`: what the per-client limits refused, by kind.
fn render_limited(out: &mut String, services: &[(String, Handle)]) {
    let _ = writeln!(
        out,
        "# HELP paf_limited_total Connections reset at accept for max_connections_per_ip, and \
         requests answered 429 for rate, by kind (connections, requests)."
    );
    let _ = writeln!(out, "# TYPE paf_limited_total counter");
    for (l, h) in services {
        let s = h.stats();
        for (kind, v) in [
            ("connections", s.limited_connections),
            ("requests", s.limited_requests),
        ] {
            let _ = writeln!(
                out,
                "paf_limited_total{{listener=\"{}\",kind=\"{kind}\"}} {v}",
                escape(l)
            );
        }
    }
    let name = "paf_proxy_protocol_refused_total";
    let _ = writeln!(
        out,
        "# HELP {name} Connections reset for the PROXY protocol: an untrusted source, or a \
         missing, late or malformed header."
    );
    let _ = writeln!(out, "# TYPE {name} counter");
    for (l, h) in services {
        let v = h.stats().proxy_protocol_refused;
        let _ = writeln!(out, "{name}{{listener=\"{}\"}} {v}", escape(l));
    }
}

/// `paf_access_log_dropped_total`: access-log lines lost, by listener.
fn render_access_log(out: &mut String, services: &[(String, Handle)]) {
    let _ = writeln!(
        out,
        "# HELP paf_access_log_dropped_total Access-log lines dropped because the log could \
         not keep up (its buffer was full) or could not be written."
    );
    let _ = writeln!(out, "# TYPE paf_access_log_dropped_total counter");
    for (l, h) in services {
        let _ = writeln!(
            out,
            "paf_access_log_dropped_total{{listener=\"{}\"}} {}",
            escape(l),
            h.stats().access_log_dropped
        );
    }
}

/// A counter family: name, help text, and its value in a service's [`Stats`].
type Family = (&'static str, &'static str, fn(&Stats) -> u64);

/// The HTTP/2 families, for every listener (http ones serve h2c).
fn render_h2(out: &mut String, services: &[(String, Handle)]) {
    let stats: Vec<(&String, Stats)> = services.iter().map(|(l, h)| (l, h.stats())).collect();
    let families: [Family; 7] = [
        (
            "paf_h2_connections_total",
            "Connections served as HTTP/2 (ALPN h2, or h2c with prior knowledge).",
            |s| s.h2_connections,
        ),
        (
            "paf_h2_streams_total",
            "HTTP/2 streams accepted (requests handed to the routes).",
            |s| s.h2_streams,
        ),
        (
            "paf_h2_resets_received_total",
            "HTTP/2 streams the client reset (RST_STREAM) before their response finished.",
            |s| s.h2_resets_received,
        ),
        (
            "paf_h2_goaways_sent_total",
            "HTTP/2 GOAWAY frames sent: stops, idle closes, protocol errors, rapid reset.",
            |s| s.h2_goaways_sent,
        ),
        (
            "paf_h2_streams_held_total",
            "Times an HTTP/2 connection was not read for 250 ms: its client opened a stream past max_concurrent_streams.",
            |s| s.h2_streams_held,
        ),
        (
            "paf_h2_protocol_errors_total",
            "HTTP/2 connections ended by a protocol error (either side's) or rapid reset.",
            |s| s.h2_protocol_errors,
        ),
        (
            "paf_abuse_held_total",
            "Connections held back unread at accept (up to abuse_delay): their client was cut off for an HTTP/2 flood lately.",
            |s| s.abuse_held,
        ),
    ];
    for (name, help, get) in families {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} counter");
        for (l, s) in &stats {
            let _ = writeln!(out, "{name}{{listener=\"{}\"}} {}", escape(l), get(s));
        }
    }
    let name = "paf_h2_floods_total";
    let _ = writeln!(
        out,
        "# HELP {name} HTTP/2 floods cut off (GOAWAY ENHANCE_YOUR_CALM), by kind."
    );
    let _ = writeln!(out, "# TYPE {name} counter");
    for (l, s) in &stats {
        for kind in Flood::ALL {
            let _ = writeln!(
                out,
                "{name}{{listener=\"{}\",kind=\"{}\"}} {}",
                escape(l),
                kind.name(),
                s.h2_floods[kind.index()]
            );
        }
    }
}

/// The TLS families, for https listeners only.
fn render_tls(out: &mut String, services: &[(String, Handle)]) {
    let tls: Vec<(&String, Stats)> = services
        .iter()
        .map(|(l, h)| (l, h.stats()))
        .filter(|(_, s)| s.https)
        .collect();
    let _ = writeln!(
        out,
        "# HELP paf_tls_handshakes_total TLS handshakes by result (https listeners)."
    );
    let _ = writeln!(out, "# TYPE paf_tls_handshakes_total counter");
    for (l, s) in &tls {
        for (result, v) in [("ok", s.tls_handshakes), ("failed", s.tls_failures)] {
            let _ = writeln!(
                out,
                "paf_tls_handshakes_total{{listener=\"{}\",result=\"{result}\"}} {v}",
                escape(l)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP paf_tls_failures_total TLS connections ended by a TLS failure, before or after \
         the handshake, by reason."
    );
    let _ = writeln!(out, "# TYPE paf_tls_failures_total counter");
    for (l, s) in &tls {
        for reason in TlsFailure::ALL {
            let _ = writeln!(
                out,
                "paf_tls_failures_total{{listener=\"{}\",reason=\"{}\"}} {}",
                escape(l),
                reason.label(),
                s.tls_failures_of(reason)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP paf_tls_renegotiations_refused_total Renegotiation requests on established TLS \
         1.2 sessions (all refused)."
    );
    let _ = writeln!(out, "# TYPE paf_tls_renegotiations_refused_total counter");
    for (l, s) in &tls {
        let _ = writeln!(
            out,
            "paf_tls_renegotiations_refused_total{{listener=\"{}\"}} {}",
            escape(l),
            s.tls_renegotiations_refused
        );
    }
}

impl Metrics {
    /// The ACME families, when some listener uses ACME.
    fn render_acme(&self, out: &mut String) {
        let expiry = self
            .acme_expiry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let orders = snapshot_by(&self.acme_orders);
        if !expiry.is_empty() {
            let _ = writeln!(out, "# HELP paf_acme_certificate_expiry_seconds When the ACME certificate served for a name expires (Unix time).");
            let _ = writeln!(out, "# TYPE paf_acme_certificate_expiry_seconds gauge");
            for (d, t) in &expiry {
                let _ = writeln!(
                    out,
                    "paf_acme_certificate_expiry_seconds{{domain=\"{}\"}} {t}",
                    escape(d)
                );
            }
        }
        if !orders.is_empty() {
            let _ = writeln!(
                out,
                "# HELP paf_acme_orders_total ACME orders ended, by result."
            );
            let _ = writeln!(out, "# TYPE paf_acme_orders_total counter");
            for (l, r, n) in &orders {
                let _ = writeln!(
                    out,
                    "paf_acme_orders_total{{listener=\"{}\",result=\"{r}\"}} {n}",
                    escape(l)
                );
            }
        }
    }
}

/// An app that samples stack-wide gauges into [`Metrics`] once a second.
pub struct Sampler {
    /// The registry to fill.
    pub metrics: Arc<Metrics>,
    /// Next sample.
    pub next: Option<Instant>,
}

impl App for Sampler {
    fn handle_accept(
        &mut self,
        cx: &mut Cx<'_>,
        _: ListenerId,
        conn: ConnId,
        _: std::net::SocketAddr,
    ) {
        cx.abort(conn);
    }

    fn handle_ready(&mut self, _: &mut Cx<'_>, _: ConnId) {}

    fn poll_timeout(&self) -> Option<Instant> {
        self.next
    }

    fn handle_timeout(&mut self, cx: &mut Cx<'_>) {
        self.metrics
            .stack_sockets
            .store(cx.socket_count(), Ordering::Relaxed);
        self.metrics.samples.fetch_add(1, Ordering::Relaxed);
        self.next = Some(cx.now + Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests;
