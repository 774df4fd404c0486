//! The proxy's keys: upstreams and their URLs and protocols, compression, the PROXY protocol
//! both ways, upgrades and CONNECT routes.

use super::*;

#[test]
fn upstream_urls() {
    assert_eq!(
        parse_upstream_url("https://upstream.test").unwrap(),
        UpstreamUrl {
            tls: true,
            host: "upstream.test".into(),
            port: 443
        }
    );
    assert_eq!(
        parse_upstream_url("http://[fd00:198:18::1]:8080").unwrap(),
        UpstreamUrl {
            tls: false,
            host: "fd00:198:18::1".into(),
            port: 8080
        }
    );
    assert!(parse_upstream_url("http://x/path").is_err());
    assert!(parse_upstream_url("x:80").is_err());
}

#[test]
fn compress_keys() {
    let c = parse(
        r#"
[[listener]]
name = "web"
port = 80
[[listener.route]]
path = "/a"
action = "static"
body = "x"
[[listener.route]]
path = "/b"
action = "static"
compress = ["gzip"]
compress_min_size = "1KiB"
[[listener.route]]
path = "/c"
action = "static"
compress = []
[[listener.route]]
action = "health"
"#,
        "t",
        Path::new("."),
    )
    .unwrap();
    let r = &c.listeners[0].routes;
    assert_eq!(r[0].compress, Compress::on());
    assert_eq!(r[1].compress.encodings, vec![Encoding::Gzip]);
    assert_eq!(r[1].compress.min_size, 1024);
    assert!(r[2].compress.encodings.is_empty());
    assert_eq!(r[3].compress, Compress::off());
    for (bad, want) in [
        (
            "compress = [\"zstd\"]",
            "t:6: listener[0].route[0].compress",
        ),
        (
            "compress = [\"br\", \"br\"]",
            "t:6: listener[0].route[0].compress",
        ),
    ] {
        let text = format!(
            "[[listener]]\nname = \"web\"\nport = 80\n[[listener.route]]\naction = \"static\"\n{bad}\n"
        );
        let e = parse(&text, "t", Path::new(".")).unwrap_err().to_string();
        assert!(e.contains(want), "{bad}: {e}");
    }
    let text = "[[listener]]\nname = \"web\"\nport = 80\n[[listener.route]]\naction = \"health\"\ncompress = [\"br\"]\n";
    let e = parse(text, "t", Path::new(".")).unwrap_err().to_string();
    assert!(e.contains("not used by action"), "{e}");
}

#[test]
fn proxy_routes_compress_only_when_told() {
    let c = parse(
        r#"
[[listener]]
name = "web"
port = 80
[[listener.route]]
path = "/a"
action = "proxy"
upstream = "up"
[[listener.route]]
path = "/b"
action = "proxy"
upstream = "up"
compress = ["gzip", "br"]
compress_min_size = "2KiB"
[[upstream]]
name = "up"
urls = ["http://198.18.0.1:8080"]
"#,
        "t",
        Path::new("."),
    )
    .unwrap();
    let r = &c.listeners[0].routes;
    assert_eq!(r[0].compress, Compress::off());
    assert_eq!(r[1].compress.encodings, vec![Encoding::Gzip, Encoding::Br]);
    assert_eq!(r[1].compress.min_size, 2048);
}

#[test]
fn proxy_protocol_keys() {
    let c = parse(
        "[[listener]]\nname = \"a\"\nport = 80\nproxy_protocol = true\n\
         proxy_protocol_trusted = [\"198.18.0.0/24\", \"fd00:198:18::1\"]\n",
        "t",
        Path::new("."),
    )
    .unwrap();
    let t = c.listeners[0].limits.http.proxy_protocol.clone().unwrap();
    assert_eq!(t.len(), 2);
    assert!(t[0].contains("198.18.0.77".parse().unwrap()));
    assert!(!t[0].contains("198.18.1.1".parse().unwrap()));
    assert!(t[0].contains("::ffff:198.18.0.9".parse().unwrap()));
    assert!(t[1].contains("fd00:198:18::1".parse().unwrap()));
    assert!(!t[1].contains("fd00:198:18::2".parse().unwrap()));
    for (bad, want) in [
        ("proxy_protocol = true", "needs proxy_protocol_trusted"),
        (
            "proxy_protocol_trusted = [\"198.18.0.0/24\"]",
            "only with proxy_protocol = true",
        ),
        (
            "proxy_protocol = true\nproxy_protocol_trusted = [\"198.18.0.0/33\"]",
            "the prefix must be 0..=32",
        ),
        (
            "proxy_protocol = true\nproxy_protocol_trusted = [\"a.test\"]",
            "is not an address",
        ),
        (
            "proxy_protocol = true\nproxy_protocol_trusted = []",
            "lists no source",
        ),
    ] {
        let text = format!("[[listener]]\nname = \"a\"\nport = 80\n{bad}\n");
        let e = parse(&text, "t", Path::new(".")).unwrap_err().to_string();
        assert!(e.contains(want), "{bad}: {e}");
    }
}

#[test]
fn upstream_protocols() {
    let dir = std::env::temp_dir();
    let up = |extra: &str| {
        format!("[[upstream]]\nname = \"up\"\nurls = [\"https://198.18.0.1:8443\"]\n{extra}")
    };
    let c = parse(&up(""), "t", &dir).unwrap();
    assert_eq!(c.upstreams[0].protocols, ["http/1.1"]);
    let c = parse(&up("protocols = [\"h2\", \"http/1.1\"]\n"), "t", &dir).unwrap();
    assert_eq!(c.upstreams[0].protocols, ["h2", "http/1.1"]);
    for (extra, says) in [
        ("protocols = [\"h3\"]\n", "\"h3\" is not"),
        ("protocols = []\n", "must name"),
        ("protocols = [\"h2\", \"h2\"]\n", "twice"),
    ] {
        let e = parse(&up(extra), "t", &dir).unwrap_err().errors;
        assert_eq!(e[0].key, "upstream[0].protocols", "{extra}: {e:?}");
        assert_eq!(e[0].line, Some(4), "{extra}: {e:?}");
        assert!(e[0].message.contains(says), "{extra}: {e:?}");
    }
}

#[test]
fn send_proxy_protocol_is_v1_or_v2_and_off_by_default() {
    use crate::http::proxy_protocol::Version;
    let dir = std::env::temp_dir();
    let up = |extra: &str| {
        format!("[[upstream]]\nname = \"up\"\nurls = [\"http://198.18.0.1:8080\"]\n{extra}")
    };
    let c = parse(&up(""), "t", &dir).unwrap();
    assert_eq!(c.upstreams[0].send_proxy_protocol, None);
    for (text, want) in [("v1", Version::V1), ("v2", Version::V2)] {
        let c = parse(
            &up(&format!("send_proxy_protocol = \"{text}\"\n")),
            "t",
            &dir,
        )
        .unwrap();
        assert_eq!(c.upstreams[0].send_proxy_protocol, Some(want));
    }
    for (extra, says) in [
        (
            "send_proxy_protocol = \"v3\"\n",
            "\"v3\" is not \"v1\" or \"v2\"",
        ),
        (
            "send_proxy_protocol = \"V2\"\n",
            "\"V2\" is not \"v1\" or \"v2\"",
        ),
        (
            "send_proxy_protocol = \"\"\n",
            "\"\" is not \"v1\" or \"v2\"",
        ),
    ] {
        let e = parse(&up(extra), "t", &dir).unwrap_err().errors;
        assert_eq!(
            e[0].key, "upstream[0].send_proxy_protocol",
            "{extra}: {e:?}"
        );
        assert_eq!(e[0].line, Some(4), "{extra}: {e:?}");
        assert!(e[0].message.contains(says), "{extra}: {e:?}");
    }
    // Not a string at all: serde's type error, with the line.
    let e = parse(&up("send_proxy_protocol = true\n"), "t", &dir)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("t:4") && e.contains("send_proxy_protocol"),
        "{e}"
    );
}

#[test]
fn proxy_upgrade_keys() {
    let c = parse(
        r#"
[[listener]]
name = "web"
port = 80
[[listener.route]]
path = "/a"
action = "proxy"
upstream = "u"
[[listener.route]]
path = "/b"
action = "proxy"
upstream = "u"
upgrade = false
[[listener.route]]
action = "proxy"
upstream = "u"
tunnel_idle_timeout = "5m"
[[upstream]]
name = "u"
urls = ["http://198.18.0.1:8080"]
"#,
        "t",
        Path::new("."),
    )
    .unwrap();
    let proxy = |i: usize| match c.listeners[0].routes[i].action {
        Action::Proxy {
            upgrade,
            tunnel_idle_timeout,
            ..
        } => (upgrade, tunnel_idle_timeout),
        ref other => panic!("{other:?}"),
    };
    assert_eq!(proxy(0), (true, Duration::from_secs(60)));
    assert!(!proxy(1).0);
    assert_eq!(proxy(2), (true, Duration::from_secs(300)));
    let head = "[[listener]]\nname = \"web\"\nport = 80\n[[listener.route]]\n";
    let up = "[[upstream]]\nname = \"u\"\nurls = [\"http://198.18.0.1:8080\"]\n";
    for (route, want) in [
        (
            "action = \"static\"\nupgrade = true\n",
            "listener[0].route[0].upgrade: not used by action",
        ),
        (
            "action = \"health\"\ntunnel_idle_timeout = \"1s\"\n",
            "listener[0].route[0].tunnel_idle_timeout: not used by action",
        ),
        (
            "action = \"proxy\"\nupstream = \"u\"\ntunnel_idle_timeout = \"0s\"\n",
            "t:4: listener[0].route[0].tunnel_idle_timeout: must be more than 0",
        ),
    ] {
        let text = format!("{head}{route}{up}");
        let e = parse(&text, "t", Path::new(".")).unwrap_err().to_string();
        assert!(e.contains(want), "{route}: {e}");
    }
}

#[test]
fn connect_routes_keys_defaults_and_matching() {
    let c = parse(
        r#"
[[listener]]
name = "web"
port = 80
[[listener.route]]
host = "*.corp.test"
action = "connect"
allow = ["*.corp.test:*", "10.0.0.0/8:22"]
connect_timeout = "2s"
tunnel_idle_timeout = "5m"
[[listener.route]]
action = "connect"
allow = ["example.com:443"]
[[listener.route]]
action = "health"
"#,
        "t",
        Path::new("."),
    )
    .unwrap();
    let l = &c.listeners[0];
    let connect = |i: usize| match &l.routes[i].action {
        Action::Connect {
            allow,
            connect_timeout,
            tunnel_idle_timeout,
        } => (allow.entries.len(), *connect_timeout, *tunnel_idle_timeout),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        connect(0),
        (2, Duration::from_secs(2), Duration::from_secs(300))
    );
    // The defaults: upstreams' connect_timeout, proxy upgrades' tunnel_idle_timeout.
    assert_eq!(
        connect(1),
        (1, Duration::from_secs(5), Duration::from_secs(60))
    );
    // A connect route takes CONNECT only (by the target's host), other routes never do.
    assert!(l.routes[0].matches_connect("db.CORP.test"));
    assert!(!l.routes[0].matches_connect("example.com"));
    assert!(l.routes[1].matches_connect("example.com"));
    assert!(!l.routes[2].matches_connect("example.com"));
    assert!(!l.routes[1].matches(None, "/"));
    assert!(matches!(l.route(None, "/").unwrap().action, Action::Health));
}

#[test]
fn connect_routes_are_checked_with_key_and_line() {
    let head = "[[listener]]\nname = \"web\"\nport = 80\n[[listener.route]]\n";
    for (route, want) in [
        (
            "action = \"connect\"\n",
            "t:4: listener[0].route[0].allow: connect needs allow",
        ),
        (
            "action = \"connect\"\nallow = []\n",
            "listener[0].route[0].allow: must name at least one target",
        ),
        (
            "action = \"connect\"\nallow = [\"a.test:443\",\n  \"a.test\"]\n",
            "t:7: listener[0].route[0].allow[1]: \"a.test\": needs host:port",
        ),
        (
            "action = \"connect\"\nallow = [\"fd00::/8:443\"]\n",
            "listener[0].route[0].allow[0]: \"fd00::/8:443\": needs host:port (an IPv6 address \
             in brackets)",
        ),
        (
            "action = \"connect\"\nallow = [\"a.test:0\"]\n",
            "listener[0].route[0].allow[0]: \"a.test:0\": the port must be 1..=65535 or *",
        ),
        (
            "action = \"connect\"\nallow = [\"a.test:1\"]\nconnect_timeout = \"0s\"\n",
            "listener[0].route[0].connect_timeout: must be more than 0",
        ),
        (
            "action = \"connect\"\nallow = [\"a.test:1\"]\ntunnel_idle_timeout = \"0s\"\n",
            "listener[0].route[0].tunnel_idle_timeout: must be more than 0",
        ),
        (
            "action = \"connect\"\nallow = [\"a.test:1\"]\npath = \"/x\"\n",
            "listener[0].route[0].path: not used by action \"connect\"",
        ),
        (
            "action = \"connect\"\nallow = [\"a.test:1\"]\ncompress = [\"br\"]\n",
            "listener[0].route[0].compress: not used by action \"connect\"",
        ),
        (
            "action = \"health\"\nallow = [\"a.test:1\"]\n",
            "listener[0].route[0].allow: not used by action \"health\"",
        ),
        (
            "action = \"static\"\nconnect_timeout = \"1s\"\n",
            "listener[0].route[0].connect_timeout: not used by action \"static\"",
        ),
        (
            "action = \"tunnel\"\n",
            "\"tunnel\" is not one of static, files, proxy, connect, redirect",
        ),
    ] {
        let text = format!("{head}{route}");
        let e = parse(&text, "t", Path::new(".")).unwrap_err().to_string();
        assert!(e.contains(want), "{route}: {e}");
    }
}
