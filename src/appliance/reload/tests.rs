//! The reload diff ([`Plan`], [`interface_changes`]) on config pairs, and reloads of a running
//! appliance on the virtual pair: refused files, swapped routes, kept and removed sockets.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use net::testing::B_V4;

use super::*;
use crate::appliance;
use crate::config::parse;
use crate::service::Switch;
use crate::testing::{parse_response, ClientHandle, Pair, ParsedResponse, RawClient};

fn cfg(text: &str) -> Config {
    parse(text, "test", Path::new(".")).unwrap_or_else(|e| panic!("{e}"))
}

/// A config of listeners `(name, port)`, each with `/health` and `/metrics`, plus `extra`.
fn listeners(ls: &[(&str, u16)], extra: &str) -> Config {
    let mut text = String::from("[defaults]\naccess_log = false\n");
    for (name, port) in ls {
        text += &format!(
            "[[listener]]\nname = \"{name}\"\nport = {port}\n\
             [[listener.route]]\npath = \"/health\"\naction = \"health\"\n\
             [[listener.route]]\npath = \"/metrics\"\naction = \"metrics\"\n"
        );
    }
    cfg(&(text + extra))
}

fn pairs(v: &[(&str, u16)]) -> Vec<(String, u16)> {
    v.iter().map(|(n, p)| (n.to_string(), *p)).collect()
}

#[test]
fn listeners_are_kept_added_and_removed_by_port() {
    struct Case {
        old: &'static [(&'static str, u16)],
        new: &'static [(&'static str, u16)],
        kept: &'static [(&'static str, u16)],
        added: &'static [(&'static str, u16)],
        removed: &'static [(&'static str, u16)],
        renamed: &'static [(&'static str, &'static str)],
    }
    let cases = [
        Case {
            old: &[("web", 80)],
            new: &[("web", 80)],
            kept: &[("web", 80)],
            added: &[],
            removed: &[],
            renamed: &[],
        },
        Case {
            old: &[("web", 80)],
            new: &[("web", 80), ("admin", 8080)],
            kept: &[("web", 80)],
            added: &[("admin", 8080)],
            removed: &[],
            renamed: &[],
        },
        Case {
            old: &[("web", 80), ("admin", 8080)],
            new: &[("web", 80)],
            kept: &[("web", 80)],
            added: &[],
            removed: &[("admin", 8080)],
            renamed: &[],
        },
        // A name moving to another port: its old port is removed, the new one added.
        Case {
            old: &[("web", 80)],
            new: &[("web", 81)],
            kept: &[],
            added: &[("web", 81)],
            removed: &[("web", 80)],
            renamed: &[],
        },
        // The same port under another name keeps its socket.
        Case {
            old: &[("web", 80), ("b", 90)],
            new: &[("front", 80), ("c", 91)],
            kept: &[("front", 80)],
            added: &[("c", 91)],
            removed: &[("b", 90)],
            renamed: &[("web", "front")],
        },
    ];
    for c in cases {
        let plan = Plan::new(&listeners(c.old, ""), &listeners(c.new, ""));
        let what = format!("{:?} -> {:?}: {plan}", c.old, c.new);
        assert_eq!(plan.kept, pairs(c.kept), "{what}");
        assert_eq!(plan.added, pairs(c.added), "{what}");
        assert_eq!(plan.removed, pairs(c.removed), "{what}");
        let renamed: Vec<(String, String)> = c
            .renamed
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(plan.renamed, renamed, "{what}");
        assert!(!plan.needs_restart(), "{what}");
        assert!(!plan.upstreams_changed, "{what}");
    }
    let initial = Plan::initial(&listeners(&[("a", 1), ("b", 2)], ""));
    assert_eq!(initial.added, pairs(&[("a", 1), ("b", 2)]));
}

#[test]
fn interface_changes_are_named_and_need_a_restart() {
    let base = "[interface]\ntap = \"paf0\"\nipv4 = \"198.18.0.2/24\"\n";
    let cases: &[(&str, &[&str])] = &[
        (
            "[interface]\ntap = \"paf0\"\nipv4 = \"198.18.0.2/24\"\n",
            &[],
        ),
        (
            "[interface]\ntap = \"paf1\"\nipv4 = \"198.18.0.2/24\"\n",
            &["tap"],
        ),
        (
            "[interface]\ntap = \"paf0\"\nipv4 = \"198.18.0.3/24\"\n",
            &["ipv4"],
        ),
        (
            "[interface]\ntap = \"paf0\"\nipv4 = \"198.18.0.2/24\"\nmtu = 9000\n",
            &["mtu"],
        ),
        (
            "[interface]\ntap = \"paf0\"\nipv4 = \"198.18.0.2/24\"\nmac = \"02:00:00:00:00:09\"\n",
            &["mac"],
        ),
        (
            "[interface]\ntap = \"paf0\"\nipv4 = \"198.18.0.2/24\"\ndns = [\"198.18.0.1\"]\n",
            &["dns"],
        ),
        (
            "[interface]\ntap = \"x\"\nipv4 = \"10.0.0.2/8\"\n",
            &["tap", "ipv4"],
        ),
    ];
    let old = listeners(&[("web", 80)], base);
    for (text, want) in cases {
        let new = listeners(&[("web", 80)], text);
        assert_eq!(
            interface_changes(&old.interface, &new.interface),
            *want,
            "{text}"
        );
        let plan = Plan::new(&old, &new);
        assert_eq!(plan.interface, *want);
        assert_eq!(plan.needs_restart(), !want.is_empty());
    }
    // A kept listener's backlog cannot change either.
    let bigger = "[[listener]]\nname = \"x\"\nport = 9\n[listener.limits]\nbacklog = 7\n\
                  [[listener.route]]\npath = \"/\"\naction = \"health\"\n";
    let plan = Plan::new(
        &listeners(&[], &bigger.replace("= 7", "= 8")),
        &listeners(&[], bigger),
    );
    assert_eq!(plan.backlog, vec!["x".to_string()]);
    assert!(plan.needs_restart());
}

#[test]
fn upstreams_are_kept_unless_they_differ() {
    let up = |url: &str| {
        format!(
            "[[upstream]]\nname = \"u\"\nurls = [\"{url}\"]\n\
             [[listener]]\nname = \"p\"\nport = 81\n\
             [[listener.route]]\npath = \"/\"\naction = \"proxy\"\nupstream = \"u\"\n"
        )
    };
    let a = listeners(&[("web", 80)], &up("http://198.18.0.1:8080"));
    let b = listeners(&[("web", 80)], &up("http://198.18.0.1:8081"));
    assert!(!Plan::new(&a, &a.clone()).upstreams_changed);
    let plan = Plan::new(&a, &b);
    assert!(plan.upstreams_changed);
    assert!(plan.to_string().contains("upstreams replaced"), "{plan}");
}

const LONG: Duration = Duration::from_secs(60);

fn at(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::from(B_V4), port)
}

/// Sends `raw` on `c` and drives until its whole response is in.
fn exchange(pair: &mut Pair, c: &ClientHandle, raw: &str) -> ParsedResponse {
    c.send(raw.as_bytes());
    let mut buf = Vec::new();
    let mut out = None;
    pair.drive_until(LONG, raw, |_| {
        buf.extend_from_slice(&c.take_input());
        if let Some((r, _)) = parse_response(&buf, false) {
            out = Some(r);
            return true;
        }
        c.is_done()
    });
    out.unwrap_or_else(|| panic!("no response to {raw:?}"))
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: paf.test\r\n\r\n")
}

/// `GET path` on a connection of its own.
fn get_new(pair: &mut Pair, port: u16, path: &str) -> ParsedResponse {
    let c = RawClient::connect(&mut pair.client, at(port)).expect("connect");
    let r = exchange(pair, &c, &get(path));
    c.close();
    r
}

fn start(config: &Config) -> (Appliance, Switch, Pair) {
    let mut pair = Pair::builder().seed(5).build();
    let stop = Switch::new();
    let app = appliance::start(&mut pair.server, config, stop.clone()).expect("start");
    (app, stop, pair)
}

fn finish(app: Appliance, stop: &Switch, pair: &mut Pair) {
    stop.turn_off();
    pair.drive_until(LONG, "the appliance to stop", |_| app.is_finished());
}

#[test]
fn a_bad_file_is_refused_with_key_and_line_and_the_old_config_serves_on() {
    let (mut app, stop, mut pair) = start(&listeners(&[("web", 80)], ""));
    let dir = std::env::temp_dir().join(format!("paf-reload-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        "[[listener]]\nname = \"web\"\nport = 80\n\n[[listener.route]]\npath = \"/\"\naction = \"proxy\"\nupstream = \"nowhere\"\n",
    )
    .unwrap();
    let err = app
        .reload_file(&mut pair.server, &file, |_| {})
        .expect_err("refused");
    let ReloadError::Invalid(errors) = &err else {
        panic!("{err}");
    };
    let text = errors.to_string();
    assert!(text.contains("listener[0].route[0].upstream"), "{text}");
    assert!(text.contains("bad.toml:5:"), "{text}");
    let missing = app
        .reload_file(&mut pair.server, &dir.join("missing.toml"), |_| {})
        .expect_err("refused");
    assert!(missing.to_string().contains("cannot read"), "{missing}");
    assert_eq!(app.metrics.reloads(), (0, 2));
    assert_eq!(app.metrics.generation(), 1);
    let r = get_new(&mut pair, 80, "/health");
    assert_eq!(r.status, 200);
    let metrics = String::from_utf8(get_new(&mut pair, 80, "/metrics").body).unwrap();
    assert!(
        metrics.contains("paf_reloads_total{result=\"failed\"} 2\n"),
        "{metrics}"
    );
    assert!(metrics.contains("paf_config_generation 1\n"), "{metrics}");
    // A config that validates but cannot be opened (its access log is a directory) changes
    // nothing either.
    let mut unopenable = listeners(&[("web", 80), ("new", 81)], "");
    unopenable.listeners[1].access_log = Some(crate::config::AccessLog {
        target: crate::config::AccessLogTarget::File(dir.clone()),
        format: crate::service::access_log::Format::Combined,
    });
    let err = app
        .reload(&mut pair.server, unopenable)
        .expect_err("refused");
    assert!(
        matches!(err, ReloadError::Apply(StartError::AccessLog { .. })),
        "{err}"
    );
    assert_eq!(app.metrics.reloads(), (0, 3));
    assert_eq!(app.config().listeners.len(), 1);
    // Port 81 was not left open.
    let c = RawClient::connect(&mut pair.client, at(81)).expect("connect");
    pair.drive_until(LONG, "refused", |_| c.is_done());
    assert!(c.is_reset(), "port 81 accepted");
    assert_eq!(get_new(&mut pair, 80, "/health").status, 200);
    let _ = std::fs::remove_dir_all(&dir);
    finish(app, &stop, &mut pair);
}

#[test]
fn a_reload_swaps_routes_keeps_sockets_and_drains_removed_listeners() {
    let (mut app, stop, mut pair) = start(&listeners(&[("web", 80), ("admin", 8080)], ""));
    // A keep-alive connection from before the reload, and one to the port that goes away.
    let old = RawClient::connect(&mut pair.client, at(80)).expect("connect");
    assert_eq!(exchange(&mut pair, &old, &get("/new")).status, 404);
    let leaving = RawClient::connect(&mut pair.client, at(8080)).expect("connect");
    assert_eq!(exchange(&mut pair, &leaving, &get("/health")).status, 200);

    let route = "[[listener.route]]\npath = \"/new\"\nexact = true\naction = \"static\"\n\
                 content_type = \"text/plain\"\nbody = \"added\"\n";
    let mut text = String::from("[defaults]\naccess_log = false\n");
    text += "[[listener]]\nname = \"web\"\nport = 80\n";
    text += route;
    text += "[[listener.route]]\npath = \"/metrics\"\naction = \"metrics\"\n";
    text += "[[listener]]\nname = \"extra\"\nport = 9090\n";
    text += "[[listener.route]]\npath = \"/health\"\naction = \"health\"\n";
    let plan = app.reload(&mut pair.server, cfg(&text)).expect("reload");
    assert_eq!(plan.kept, pairs(&[("web", 80)]));
    assert_eq!(plan.added, pairs(&[("extra", 9090)]));
    assert_eq!(plan.removed, pairs(&[("admin", 8080)]));

    // The next request on the old connection is routed by the new config; so is a new one.
    let r = exchange(&mut pair, &old, &get("/new"));
    assert_eq!((r.status, r.body.as_slice()), (200, &b"added"[..]));
    assert_eq!(get_new(&mut pair, 80, "/new").status, 200);
    assert_eq!(get_new(&mut pair, 9090, "/health").status, 200);
    // The removed port refuses new connections; its open one was told to close.
    let c = RawClient::connect(&mut pair.client, at(8080)).expect("connect");
    pair.drive_until(LONG, "refused", |_| c.is_done() && leaving.is_done());
    assert!(c.is_reset(), "port 8080 still accepts");
    assert!(!leaving.is_reset(), "the open connection was reset");

    // The old connection's service finishes once it closes; counters go on across services.
    let handles = app.handles.len();
    old.close();
    pair.drive_until(LONG, "the replaced services to finish", |_| {
        app.handles.iter().filter(|h| h.is_finished()).count() >= 2
    });
    assert!(handles >= 4, "{handles} handles");
    let metrics = String::from_utf8(get_new(&mut pair, 80, "/metrics").body).unwrap();
    for line in [
        "paf_reloads_total{result=\"ok\"} 1\n",
        "paf_config_generation 2\n",
        // The connection from before the reload, the two since (this one included).
        "paf_connections_accepted_total{listener=\"web\"} 3\n",
        "paf_connections_accepted_total{listener=\"extra\"} 1\n",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    // A removed listener's service series go; its request counters stay.
    assert!(
        !metrics.contains("paf_connections_open{listener=\"admin\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("paf_requests_total{listener=\"admin\""));
    finish(app, &stop, &mut pair);
}

/// A web listener on 80 and an https one on 443 whose certificate comes from ACME for
/// `domains` (a directory nobody answers: the driver only retries).
#[cfg(feature = "certs")]
fn acme_config(state: &Path, domains: &str) -> Config {
    let text = format!(
        "[defaults]\naccess_log = false\n\
         [[listener]]\nname = \"web\"\nport = 80\n\
         [[listener.route]]\npath = \"/health\"\naction = \"health\"\n\
         [[listener]]\nname = \"tls\"\nport = 443\nprotocol = \"https\"\n\
         acme = {{ directory = \"https://acme.test:14000/dir\", domains = [{domains}], \
         state_dir = \"{}\" }}\n\
         [[listener.route]]\npath = \"/health\"\naction = \"health\"\n",
        state.display()
    );
    cfg(&text)
}

#[cfg(feature = "certs")]
#[test]
fn acme_drivers_are_kept_while_their_block_is_and_retired_when_it_changes_or_goes() {
    let dir = std::env::temp_dir().join(format!("paf-reload-acme-{}", std::process::id()));
    let a = acme_config(&dir, "\"a.test\"");
    let (mut app, stop, mut pair) = start(&a);
    assert_eq!(app.acme.len(), 1);
    let first = (app.acme[0].store.clone(), app.acme[0].retired.clone());
    // The same block: the same driver and certificate store.
    app.reload(&mut pair.server, a.clone()).expect("reload");
    assert_eq!(app.acme.len(), 1);
    assert!(std::sync::Arc::ptr_eq(&app.acme[0].store, &first.0));
    assert!(!first.1.get());
    // Another name: a new driver and store; the first orders nothing more.
    app.reload(
        &mut pair.server,
        acme_config(&dir, "\"a.test\", \"b.test\""),
    )
    .expect("reload");
    assert_eq!(app.acme.len(), 1);
    assert!(!std::sync::Arc::ptr_eq(&app.acme[0].store, &first.0));
    assert!(first.1.get());
    let second = app.acme[0].retired.clone();
    // The https listener gone: its driver retired too, the web listener serves on.
    app.reload(&mut pair.server, listeners(&[("web", 80)], ""))
        .expect("reload");
    assert!(app.acme.is_empty());
    assert!(second.get());
    assert_eq!(get_new(&mut pair, 80, "/health").status, 200);
    finish(app, &stop, &mut pair);
    let _ = std::fs::remove_dir_all(&dir);
}
