//! Tests of the registry and its exposition.

use super::*;

pub(super) fn handle(https: bool) -> Handle {
    let h = Handle::default();
    let c = &h.0.counters;
    let r = Ordering::Relaxed;
    c.https.store(https, r);
    c.head_timeouts.store(3, r);
    c.write_timeouts.store(2, r);
    c.h2_connections.store(5, r);
    c.h2_resets.store(6, r);
    c.h2_floods[Flood::Continuation.index()].store(7, r);
    c.limited_requests.store(8, r);
    c.access_dropped.store(9, r);
    c.abuse_held.store(11, r);
    c.body_in_place.store(12, r);
    if https {
        c.tls_ok.store(7, r);
        c.tls_failed.store(4, r);
        c.tls_reasons[TlsFailure::HandshakeTimeout.index()].store(1, r);
        c.tls_reasons[TlsFailure::Protocol.index()].store(2, r);
        c.tls_reasons[TlsFailure::Alert.index()].store(1, r);
        c.tls_renegotiations.store(1, r);
    }
    h
}

pub(super) fn sample(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn timeouts_for_every_listener_and_tls_families_for_https_ones_only() {
    let m = Metrics::default();
    m.add_service("web", handle(false));
    m.add_service("tls", handle(true));
    let text = m.render();
    let cases: &[(&str, Option<u64>)] = &[
        (r#"paf_timeouts_total{listener="web",kind="head"}"#, Some(3)),
        (
            r#"paf_request_body_bytes_in_place_total{listener="tls"}"#,
            Some(12),
        ),
        (r#"paf_timeouts_total{listener="web",kind="body"}"#, Some(0)),
        (
            r#"paf_timeouts_total{listener="web",kind="write"}"#,
            Some(2),
        ),
        (
            r#"paf_timeouts_total{listener="tls",kind="write"}"#,
            Some(2),
        ),
        (
            r#"paf_tls_handshakes_total{listener="tls",result="ok"}"#,
            Some(7),
        ),
        (
            r#"paf_tls_handshakes_total{listener="tls",result="failed"}"#,
            Some(4),
        ),
        (
            r#"paf_tls_failures_total{listener="tls",reason="handshake_timeout"}"#,
            Some(1),
        ),
        (
            r#"paf_tls_failures_total{listener="tls",reason="handshake_eof"}"#,
            Some(0),
        ),
        (
            r#"paf_tls_failures_total{listener="tls",reason="protocol"}"#,
            Some(2),
        ),
        (
            r#"paf_tls_failures_total{listener="tls",reason="alert"}"#,
            Some(1),
        ),
        (
            r#"paf_tls_failures_total{listener="tls",reason="incompatible"}"#,
            Some(0),
        ),
        (
            r#"paf_tls_failures_total{listener="tls",reason="renegotiation"}"#,
            Some(0),
        ),
        (
            r#"paf_tls_renegotiations_refused_total{listener="tls"}"#,
            Some(1),
        ),
        (r#"paf_h2_connections_total{listener="web"}"#, Some(5)),
        (r#"paf_access_log_dropped_total{listener="tls"}"#, Some(9)),
        (r#"paf_h2_resets_received_total{listener="tls"}"#, Some(6)),
        (r#"paf_h2_goaways_sent_total{listener="web"}"#, Some(0)),
        (
            r#"paf_h2_floods_total{listener="tls",kind="continuation"}"#,
            Some(7),
        ),
        (
            r#"paf_h2_floods_total{listener="tls",kind="rapid_reset"}"#,
            Some(0),
        ),
        (
            r#"paf_limited_total{listener="web",kind="requests"}"#,
            Some(8),
        ),
        (
            r#"paf_limited_total{listener="web",kind="connections"}"#,
            Some(0),
        ),
        (r#"paf_abuse_held_total{listener="web"}"#, Some(11)),
        (
            r#"paf_tls_handshakes_total{listener="web",result="ok"}"#,
            None,
        ),
        (
            r#"paf_tls_failures_total{listener="web",reason="alert"}"#,
            None,
        ),
        (
            r#"paf_tls_renegotiations_refused_total{listener="web"}"#,
            None,
        ),
    ];
    for (series, want) in cases {
        assert_eq!(sample(&text, series), *want, "{series} in\n{text}");
    }
    // Every sample's family has its HELP and TYPE lines.
    for family in [
        "paf_timeouts_total",
        "paf_request_body_bytes_in_place_total",
        "paf_h2_streams_total",
        "paf_h2_protocol_errors_total",
        "paf_tls_failures_total",
        "paf_tls_renegotiations_refused_total",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} counter\n")),
            "{text}"
        );
        assert!(text.contains(&format!("# HELP {family} ")), "{text}");
    }
}

#[test]
fn request_and_upstream_counters_add_up_by_their_labels() {
    let m = Metrics::default();
    for _ in 0..3 {
        m.request("web", Some(1), 200, 10);
    }
    m.request("web", None, 404, 5);
    m.request("web", Some(12), 503, 0);
    m.request("api", Some(1), 204, 0);
    m.request_bytes("web", 7);
    m.request_bytes("web", 8);
    for _ in 0..2 {
        m.upstream_response("app", "http/1.1");
    }
    m.upstream_response("app", "h2");
    m.upstream_error("app", "connect");
    m.connect_failure("web", "dns");
    let text = m.render();
    let cases: &[(&str, Option<u64>)] = &[
        (
            r#"paf_requests_total{listener="web",route="1",class="2xx"}"#,
            Some(3),
        ),
        (
            r#"paf_requests_total{listener="web",route="none",class="4xx"}"#,
            Some(1),
        ),
        (
            r#"paf_requests_total{listener="web",route="12",class="5xx"}"#,
            Some(1),
        ),
        (
            r#"paf_requests_total{listener="api",route="1",class="2xx"}"#,
            Some(1),
        ),
        (r#"paf_response_body_bytes_total{listener="web"}"#, Some(35)),
        (r#"paf_request_body_bytes_total{listener="web"}"#, Some(15)),
        (
            r#"paf_upstream_responses_total{upstream="app",protocol="http/1.1"}"#,
            Some(2),
        ),
        (
            r#"paf_upstream_responses_total{upstream="app",protocol="h2"}"#,
            Some(1),
        ),
        (
            r#"paf_upstream_errors_total{upstream="app",kind="connect"}"#,
            Some(1),
        ),
        (
            r#"paf_connect_failures_total{listener="web",kind="dns"}"#,
            Some(1),
        ),
    ];
    for (series, want) in cases {
        assert_eq!(sample(&text, series), *want, "{series} in\n{text}");
    }
    assert_eq!(m.requests_of("web", "2xx"), 3);
    assert_eq!(m.requests_of("web", "5xx"), 1);
    assert_eq!(m.requests_of("api", "2xx"), 1);
    assert_eq!(m.requests_of("none", "2xx"), 0);
    assert_eq!(m.responses_total(), 6);
}
