use super::*;
use std::net::Ipv4Addr;

mod proxy;

fn errors_of(text: &str) -> Vec<Error> {
    parse(text, "test.toml", Path::new("/nonexistent"))
        .unwrap_err()
        .errors
}

#[test]
fn the_embedded_default_is_valid_and_serves_port_80() {
    let c = default_config();
    assert_eq!(c.interface.tap, "paf0");
    assert_eq!(c.listeners.len(), 1);
    let l = &c.listeners[0];
    assert_eq!(l.port, 80);
    assert_eq!(l.protocol, Protocol::Http);
    assert_eq!(l.route(None, "/health").unwrap().action, Action::Health);
    assert_eq!(l.route(None, "/metrics").unwrap().action, Action::Metrics);
    assert!(matches!(
        l.route(None, "/").unwrap().action,
        Action::Static { .. }
    ));
    assert!(l.route(None, "/other").is_none());
    assert_eq!(
        c.interface.net.ipv4,
        net::Ipv4Setting::Static {
            addr: Ipv4Addr::new(198, 18, 0, 2),
            prefix: 24,
            gateway: Some(Ipv4Addr::new(198, 18, 0, 1))
        }
    );
}

#[test]
fn unknown_keys_are_rejected_with_name_and_line() {
    let e = errors_of("[interface]\ntap = \"x\"\ntapp = \"y\"\n");
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].key, "tapp");
    assert_eq!(e[0].line, Some(3));
    let e = errors_of("[[listener]]\nname = \"a\"\nport = 80\n[[listener.route]]\naction = \"health\"\nbogus = 1\n");
    assert_eq!(e[0].key, "bogus");
    assert_eq!(e[0].line, Some(6));
}

#[test]
fn semantic_errors_name_the_key_and_line() {
    let text = r#"
[interface]
ipv4 = "198.18.0.2/40"
stack = "fast"

[[listener]]
name = "a"
port = 80
[[listener.route]]
action = "proxy"
upstream = "nope"
[[listener.route]]
action = "static"
status = 999
[[listener.route]]
action = "files"
root = "missing-dir"
[[listener.route]]
action = "redirect"
to = "https://{host}{path}"
status = 200
[[listener.route]]
action = "health"
body = "x"

[[listener]]
name = "b"
port = 80
protocol = "https"

[[upstream]]
name = "up"
urls = ["ftp://x", "http://198.18.0.1:8080"]
"#;
    let e = errors_of(text);
    let keys: Vec<&str> = e.iter().map(|e| e.key.as_str()).collect();
    for want in [
        "interface.ipv4",
        "interface.stack",
        "listener[0].route[0].upstream",
        "listener[0].route[1].status",
        "listener[0].route[2].root",
        "listener[0].route[3].status",
        "listener[0].route[4].body",
        "listener[1].port",
        "listener[1].certificate",
        "upstream[0].urls[0]",
    ] {
        assert!(keys.contains(&want), "missing {want} in {keys:?}");
    }
    let line_of = |k: &str| e.iter().find(|x| x.key == k).unwrap().line;
    assert_eq!(line_of("interface.ipv4"), Some(3));
    assert_eq!(line_of("interface.stack"), Some(4));
    assert_eq!(line_of("upstream[0].urls[0]"), Some(33));
    let shown = Errors {
        origin: "x.toml".into(),
        errors: e,
    }
    .to_string();
    assert!(shown.contains("x.toml:3: interface.ipv4:"), "{shown}");
}

#[test]
fn https_listeners_load_and_check_their_certificates() {
    let dir = std::env::temp_dir().join(format!("paf-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pki = crate::tls::certs::write_test_pki(&dir, &["paf.test"]).unwrap();
    let good = format!(
        "[[listener]]\nname = \"tls\"\nport = 443\nprotocol = \"https\"\ncertificate = {:?}\nkey = {:?}\n",
        pki.cert, pki.key
    );
    let c = parse(&good, "t", &dir).unwrap();
    assert!(matches!(c.listeners[0].protocol, Protocol::Https { .. }));
    // The CA certificate is not the key for the server certificate: caught at check time.
    let bad = format!(
        "[[listener]]\nname = \"tls\"\nport = 443\nprotocol = \"https\"\ncertificate = {:?}\nkey = {:?}\n",
        pki.ca_cert, pki.key
    );
    let e = parse(&bad, "t", &dir).unwrap_err().errors;
    assert_eq!(e[0].key, "listener[0].certificate", "{e:?}");
    // Relative paths are resolved against the config's directory.
    let rel = "[[listener]]\nname = \"tls\"\nport = 443\nprotocol = \"https\"\ncertificate = \"cert.pem\"\nkey = \"missing.pem\"\n";
    let e = parse(rel, "t", &dir).unwrap_err().errors;
    assert_eq!(e[0].key, "listener[0].key");
    assert!(e[0].message.contains("missing.pem"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn limits_override_defaults() {
    let text = r#"
[defaults]
head_timeout = "10s"
max_body_size = "2MiB"
backlog = 64
[[listener]]
name = "a"
port = 80
limits = { head_timeout = "3s" }
[[listener]]
name = "b"
port = 81
"#;
    let c = parse(text, "t", Path::new(".")).unwrap();
    assert_eq!(
        c.listeners[0].limits.http.head_timeout,
        Duration::from_secs(3)
    );
    assert_eq!(
        c.listeners[1].limits.http.head_timeout,
        Duration::from_secs(10)
    );
    assert_eq!(c.listeners[1].limits.http.max_body_size, Some(2 << 20));
    assert_eq!(c.listeners[0].limits.backlog, 64);
}

#[test]
fn http2_keys_default_and_are_checked_by_listener_kind() {
    let dir = std::env::temp_dir().join(format!("paf-config-h2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pki = crate::tls::certs::write_test_pki(&dir, &["paf.test"]).unwrap();
    let tls = |extra: &str| {
        format!(
            "[[listener]]\nname = \"tls\"\nport = 443\nprotocol = \"https\"\ncertificate = {:?}\nkey = {:?}\n{extra}",
            pki.cert, pki.key
        )
    };
    // Defaults: h2 then http/1.1 by ALPN, h2c on, 128 streams.
    let c = parse(&tls(""), "t", &dir).unwrap();
    assert_eq!(c.listeners[0].protocols, ["h2", "http/1.1"]);
    assert_eq!(c.listeners[0].limits.http.max_concurrent_streams, 128);
    let c = parse("[[listener]]\nname = \"a\"\nport = 80\n", "t", &dir).unwrap();
    assert!(c.listeners[0].limits.http.h2c);
    // Set.
    let text = tls("protocols = [\"http/1.1\"]\nlimits = { max_concurrent_streams = 8 }\n");
    let c = parse(&text, "t", &dir).unwrap();
    assert_eq!(c.listeners[0].protocols, ["http/1.1"]);
    assert_eq!(c.listeners[0].limits.http.max_concurrent_streams, 8);
    let c = parse(
        "[[listener]]\nname = \"a\"\nport = 80\nh2c = false\n",
        "t",
        &dir,
    )
    .unwrap();
    assert!(!c.listeners[0].limits.http.h2c);
    // Errors name the key and the line.
    for (text, key, line, says) in [
        (
            tls("protocols = [\"h3\"]\n"),
            "listener[0].protocols",
            7,
            "\"h3\" is not",
        ),
        (
            tls("protocols = []\n"),
            "listener[0].protocols",
            7,
            "must name",
        ),
        (
            tls("protocols = [\"h2\", \"h2\"]\n"),
            "listener[0].protocols",
            7,
            "twice",
        ),
        (tls("h2c = true\n"), "listener[0].h2c", 7, "applies to http"),
        (
            "[[listener]]\nname = \"a\"\nport = 80\nprotocols = [\"h2\"]\n".into(),
            "listener[0].protocols",
            4,
            "applies to https",
        ),
        (
            "[defaults]\nmax_concurrent_streams = 0\n[[listener]]\nname = \"a\"\nport = 80\n"
                .into(),
            "listener[0].limits.max_concurrent_streams",
            0,
            "must be 1..=10000",
        ),
    ] {
        let e = parse(&text, "t", &dir).unwrap_err().errors;
        assert_eq!(e[0].key, key, "{text}: {e:?}");
        assert_eq!(e[0].line.unwrap_or(0), line, "{text}: {e:?}");
        assert!(e[0].message.contains(says), "{text}: {e:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn route_matching() {
    let r = |host: Option<HostMatch>, path: PathMatch| Route {
        host,
        path,
        action: Action::Health,
        compress: Compress::off(),
    };
    let cases = [
        (
            r(None, PathMatch::Prefix("/".into())),
            None,
            "/anything",
            true,
        ),
        (
            r(None, PathMatch::Prefix("/api".into())),
            None,
            "/api",
            true,
        ),
        (
            r(None, PathMatch::Prefix("/api".into())),
            None,
            "/api/x",
            true,
        ),
        (
            r(None, PathMatch::Prefix("/api".into())),
            None,
            "/apix",
            false,
        ),
        (
            r(None, PathMatch::Prefix("/api/".into())),
            None,
            "/api/x",
            true,
        ),
        (r(None, PathMatch::Exact("/a".into())), None, "/a/", false),
        (
            r(
                Some(HostMatch::Exact("a.test".into())),
                PathMatch::Prefix("/".into()),
            ),
            Some("A.Test"),
            "/",
            true,
        ),
        (
            r(
                Some(HostMatch::Exact("a.test".into())),
                PathMatch::Prefix("/".into()),
            ),
            None,
            "/",
            false,
        ),
        (
            r(
                Some(HostMatch::Suffix(".ex.test".into())),
                PathMatch::Prefix("/".into()),
            ),
            Some("w.ex.test"),
            "/",
            true,
        ),
        (
            r(
                Some(HostMatch::Suffix(".ex.test".into())),
                PathMatch::Prefix("/".into()),
            ),
            Some("ex.test"),
            "/",
            false,
        ),
    ];
    for (route, host, path, want) in cases {
        assert_eq!(route.matches(host, path), want, "{route:?} {host:?} {path}");
    }
}

#[test]
fn per_client_limit_keys() {
    let c = parse(
        "[defaults]\nrate = \"100/s\"\nmax_connections_per_ip = 50\n\
         [[listener]]\nname = \"a\"\nport = 80\n\
         [[listener]]\nname = \"b\"\nport = 81\nlimits = { rate = \"60/m\", burst = 5, abuse_delay = \"1s\" }\n\
         [[listener]]\nname = \"c\"\nport = 82\nlimits = { abuse_delay = \"0s\" }\n",
        "t",
        Path::new("."),
    )
    .unwrap();
    let a = c.listeners[0].limits.http.per_client;
    assert_eq!(a.max_connections_per_ip, Some(50));
    assert_eq!(a.abuse_delay, crate::http::DEFAULT_ABUSE_DELAY);
    assert_eq!(
        c.listeners[1].limits.http.per_client.abuse_delay,
        Duration::from_secs(1)
    );
    assert_eq!(
        c.listeners[2].limits.http.per_client.abuse_delay,
        Duration::ZERO
    );
    assert_eq!(
        a.rate,
        Some(crate::http::Rate {
            requests: 100,
            per: Duration::from_secs(1),
            burst: 100
        })
    );
    let b = c.listeners[1].limits.http.per_client;
    assert_eq!(b.max_connections_per_ip, Some(50));
    assert_eq!(
        b.rate,
        Some(crate::http::Rate {
            requests: 60,
            per: Duration::from_secs(60),
            burst: 5
        })
    );
    for (bad, want) in [
        ("rate = \"fast\"", "rate: \"fast\" is not a rate"),
        ("rate = \"10/d\"", "rate: \"10/d\" is not a rate"),
        ("rate = \"0/s\"", "the rate must be at least 1"),
        ("burst = 3", "burst: burst needs a rate"),
        ("rate = \"1/s\"\nburst = 0", "burst: must be at least 1"),
        (
            "max_connections_per_ip = 0",
            "max_connections_per_ip: must be at least 1",
        ),
        ("abuse_delay = \"2m\"", "abuse_delay: must be at most 60s"),
    ] {
        let text = format!("[defaults]\n{bad}\n[[listener]]\nname = \"a\"\nport = 80\n");
        let e = parse(&text, "t", Path::new(".")).unwrap_err().to_string();
        assert!(e.contains(want), "{bad}: {e}");
    }
}

#[test]
fn access_logs_default_to_stderr_and_are_checked_with_key_and_line() {
    use crate::service::access_log::Format;
    let dir = std::env::temp_dir();
    let ok = |text: &str| parse(text, "test.toml", &dir).unwrap();
    // Absent everywhere: combined on stderr.
    let c = ok("[[listener]]\nname = \"a\"\nport = 80\n");
    assert_eq!(c.listeners[0].access_log, Some(AccessLog::default()));
    assert_eq!(
        AccessLog::default(),
        AccessLog {
            target: AccessLogTarget::Stderr,
            format: Format::Combined
        }
    );
    // [defaults] for listeners that set none; a listener's own wins; false turns it off.
    let c = ok(r#"
[defaults]
access_log = { path = "access.log", format = "json" }
[[listener]]
name = "a"
port = 80
[[listener]]
name = "b"
port = 81
access_log = false
[[listener]]
name = "c"
port = 82
access_log = { path = "-", format = "paf" }
[[listener]]
name = "d"
port = 83
access_log = true
"#);
    let logs: Vec<_> = c.listeners.iter().map(|l| l.access_log.clone()).collect();
    assert_eq!(
        logs,
        [
            Some(AccessLog {
                target: AccessLogTarget::File(dir.join("access.log")),
                format: Format::Json
            }),
            None,
            Some(AccessLog {
                target: AccessLogTarget::Stderr,
                format: Format::Paf
            }),
            Some(AccessLog::default()),
        ]
    );
    let text = r#"[[listener]]
name = "a"
port = 80
access_log = { path = "/nonexistent-paf/x.log" }
[[listener]]
name = "b"
port = 81
access_log = { path = "stderr", format = "common", buffer = 1 }
[[listener]]
name = "c"
port = 82
access_log = "yes"
[[listener]]
name = "d"
port = 83
access_log = { format = "json" }
limits = { access_log = false }
"#;
    let e = errors_of(text);
    let got: Vec<(&str, Option<usize>)> = e.iter().map(|e| (e.key.as_str(), e.line)).collect();
    assert_eq!(
        got,
        [
            ("listener[0].access_log.path", Some(4)),
            ("listener[1].access_log.buffer", Some(8)),
            ("listener[1].access_log.format", Some(8)),
            ("listener[2].access_log", Some(12)),
            ("listener[3].limits.access_log", Some(17)),
            ("listener[3].access_log.path", Some(16)),
        ],
        "{e:?}"
    );
    assert!(e[0].message.contains("does not exist"), "{}", e[0].message);
    assert!(e[2].message.contains("\"common\""), "{}", e[2].message);
}

#[test]
fn acme_blocks_are_checked_with_their_keys() {
    let dir = std::env::temp_dir().join(format!("paf-config-acme-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port80 = "[[listener]]\nname = \"web\"\nport = 80\n";
    // A good block: no certificate needed, the state directory created later.
    let good = format!(
        "{port80}[[listener]]\nname = \"tls\"\nport = 443\nprotocol = \"https\"\n\
         acme = {{ directory = \"https://acme.test:14000/dir\", contact = [\"mailto:a@b.test\"], \
         domains = [\"A.test\", \"b.test\"], state_dir = \"state\" }}\n"
    );
    let c = parse(&good, "t", &dir).unwrap();
    let Protocol::Https {
        certificate: None,
        acme: Some(a),
        ..
    } = &c.listeners[1].protocol
    else {
        panic!("{:?}", c.listeners[1].protocol);
    };
    assert_eq!(a.domains, ["a.test", "b.test"]);
    assert_eq!(a.challenge, AcmeChallenge::Http01);
    assert_eq!(a.state_dir, dir.join("state"));
    // Every field wrong at once: each error names its key.
    let bad = "[[listener]]\nname = \"tls\"\nport = 8443\nprotocol = \"https\"\n\
         acme = { directory = \"http://acme.test/dir\", contact = [\"admin@b.test\"], \
         domains = [\"*.a.test\", \"10.0.0.1\", \"ok.test\", \"OK.test\", \"bad name\"], \
         challenge = \"dns-01\", ca = \"missing.pem\", state_dir = \"/nonexistent/x/y\" }\n";
    let e = parse(bad, "t", &dir).unwrap_err().errors;
    let keys: Vec<&str> = e.iter().map(|e| e.key.as_str()).collect();
    for want in [
        "listener[0].acme.directory",
        "listener[0].acme.contact[0]",
        "listener[0].acme.domains[0]",
        "listener[0].acme.domains[1]",
        "listener[0].acme.domains[3]",
        "listener[0].acme.domains[4]",
        "listener[0].acme.challenge",
        "listener[0].acme.ca",
        "listener[0].acme.state_dir",
    ] {
        assert!(keys.contains(&want), "missing {want} in {e:?}");
    }
    assert!(e.iter().all(|e| e.line.is_some_and(|l| l <= 5)), "{e:?}");
    // http-01 needs the port-80 http listener; tls-alpn-01 port 443; acme needs https.
    let no80 = "[[listener]]\nname = \"tls\"\nport = 443\nprotocol = \"https\"\n\
         acme = { directory = \"https://acme.test/dir\", domains = [\"a.test\"], state_dir = \".\" }\n";
    let e = parse(no80, "t", &dir).unwrap_err().errors;
    assert_eq!(e[0].key, "listener[0].acme.challenge", "{e:?}");
    assert!(e[0].message.contains("port 80"), "{e:?}");
    let alpn = "[[listener]]\nname = \"tls\"\nport = 8443\nprotocol = \"https\"\n\
         acme = { directory = \"https://acme.test/dir\", domains = [\"a.test\"], state_dir = \".\", challenge = \"tls-alpn-01\" }\n";
    let e = parse(alpn, "t", &dir).unwrap_err().errors;
    assert!(e[0].message.contains("443"), "{e:?}");
    let on_http = "[[listener]]\nname = \"web\"\nport = 80\n\
         acme = { directory = \"https://acme.test/dir\", domains = [\"a.test\"], state_dir = \".\" }\n";
    let e = parse(on_http, "t", &dir).unwrap_err().errors;
    assert_eq!(e[0].key, "listener[0].acme", "{e:?}");
    // A missing field is named by toml.
    let missing = "[[listener]]\nname = \"tls\"\nport = 443\nprotocol = \"https\"\n\
         acme = { directory = \"https://acme.test/dir\", state_dir = \".\" }\n";
    let e = parse(missing, "t", &dir).unwrap_err().errors;
    assert!(e[0].message.contains("domains"), "{e:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn workers_and_pin_in_the_interface() {
    let listener = "[[listener]]\nname = \"w\"\nport = 80\n";
    let c = parse(
        &format!("[interface]\nworkers = 4\npin = true\n{listener}"),
        "t.toml",
        Path::new("."),
    )
    .unwrap();
    assert_eq!((c.interface.workers, c.interface.pin), (Some(4), true));
    assert_eq!(c.interface.default_workers(), 4);
    let c = parse(listener, "t.toml", Path::new(".")).unwrap();
    assert_eq!((c.interface.workers, c.interface.pin), (None, false));
    assert_eq!(c.interface.default_workers(), available_cores());
    let c = parse(
        &format!("[interface]\ndhcp = true\n{listener}"),
        "t.toml",
        Path::new("."),
    )
    .unwrap();
    assert_eq!(
        c.interface.default_workers(),
        available_cores(),
        "DHCP: one lease for every worker, one worker per core"
    );
    let c = parse(
        &format!("[interface]\ndhcp = true\nworkers = 4\n{listener}"),
        "t.toml",
        Path::new("."),
    )
    .unwrap();
    assert_eq!(c.interface.default_workers(), 4, "DHCP with 4 workers");
    let cases: &[(&str, &str)] = &[
        ("workers = 0", "must be 1..=256"),
        ("workers = 257", "must be 1..=256"),
        ("workers = 2\npcap = \"x.pcap\"", "pcap needs workers = 1"),
    ];
    for (text, message) in cases {
        let e = errors_of(&format!("[interface]\n{text}\n{listener}"));
        assert_eq!(e.len(), 1, "{text}: {e:?}");
        assert_eq!(e[0].key, "interface.workers", "{text}");
        assert!(e[0].message.contains(message), "{text}: {}", e[0].message);
        assert_eq!(e[0].line, Some(2), "{text}");
    }
}
