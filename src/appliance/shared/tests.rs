//! Two workers' appliances, each on its own virtual pair (its own loop and stack), started
//! with one [`Shared`]: the client of each pair has the same address, as one client whose
//! connections land on two workers.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use net::testing::B_V4;

use super::*;
use crate::appliance::{self, Appliance};
use crate::config::{parse, Config};
use crate::service::Switch;
use crate::testing::{parse_response, ClientHandle, Pair, ParsedResponse, RawClient};

const LONG: Duration = Duration::from_secs(60);

fn cfg(text: &str) -> Config {
    parse(text, "test", Path::new(".")).unwrap_or_else(|e| panic!("{e}"))
}

struct Worker {
    app: Appliance,
    pair: Pair,
}

fn workers(config: &Config, n: usize) -> (Vec<Worker>, Switch, Arc<Shared>) {
    let shared = Arc::new(Shared::new());
    let stop = Switch::new();
    let all = (0..n)
        .map(|k| {
            let mut pair = Pair::builder().seed(7 + k as u64).build();
            let app =
                appliance::start_worker(&mut pair.server, config, stop.clone(), shared.clone(), k)
                    .expect("start");
            Worker { app, pair }
        })
        .collect();
    (all, stop, shared)
}

fn finish(mut all: Vec<Worker>, stop: &Switch) {
    stop.turn_off();
    for w in &mut all {
        let app = &w.app;
        w.pair
            .drive_until(LONG, "the appliance to stop", |_| app.is_finished());
    }
}

fn at(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::from(B_V4), port)
}

/// Sends `GET path` on `c` and drives until its whole response is in.
fn ask(pair: &mut Pair, c: &ClientHandle, path: &str) -> ParsedResponse {
    c.send(format!("GET {path} HTTP/1.1\r\nHost: a.paf.test\r\n\r\n").as_bytes());
    let mut buf = Vec::new();
    let mut out = None;
    pair.drive_until(LONG, path, |_| {
        buf.extend_from_slice(&c.take_input());
        if let Some((r, _)) = parse_response(&buf, false) {
            out = Some(r);
            return true;
        }
        c.is_done()
    });
    out.unwrap_or_else(|| panic!("no response to {path}"))
}

/// A connection to port 80 the service resets at accept.
fn refused(pair: &mut Pair) -> bool {
    let c = RawClient::connect(&mut pair.client, at(80)).expect("connect");
    c.send(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
    pair.drive_until(LONG, "a reset", |_| c.is_done());
    c.is_reset() && c.take_input().is_empty()
}

/// Drives `w` until its services have no connection open.
fn settle(w: &mut Worker) {
    let app = &w.app;
    w.pair.drive_until(LONG, "connections to close", |_| {
        app.handles.iter().all(|h| h.stats().active == 0)
    });
}

const LIMITED: &str = "[defaults]\naccess_log = false\nmax_connections_per_ip = 1\n\
                       rate = \"3/h\"\n\
                       [[listener]]\nname = \"web\"\nport = 80\n\
                       [[listener.route]]\npath = \"/health\"\naction = \"health\"\n";

#[test]
fn per_client_limits_count_once_across_workers_and_survive_a_reload() {
    let (mut all, stop, _shared) = workers(&cfg(LIMITED), 2);
    // The client's one connection, on worker 0.
    let held = RawClient::connect(&mut all[0].pair.client, at(80)).unwrap();
    assert_eq!(ask(&mut all[0].pair, &held, "/health").status, 200);
    // Worker 1 counts it: a second connection there is reset at accept.
    assert!(
        refused(&mut all[1].pair),
        "worker 1 took a second connection"
    );
    // A reload of worker 1 keeps the table.
    let reloaded = cfg(&format!(
        "{LIMITED}[[listener.route]]\npath = \"/more\"\naction = \"health\"\n"
    ));
    let w1 = &mut all[1];
    w1.app
        .reload(&mut w1.pair.server, reloaded)
        .expect("reload");
    assert!(refused(&mut all[1].pair), "a reload forgot the connection");
    // Once it closes, worker 1 takes one; then worker 0 refuses.
    held.close();
    settle(&mut all[0]);
    let c = RawClient::connect(&mut all[1].pair.client, at(80)).unwrap();
    // The rate is one too: 3 an hour in all, 1 spent on worker 0.
    assert_eq!(ask(&mut all[1].pair, &c, "/more").status, 200);
    assert_eq!(ask(&mut all[1].pair, &c, "/health").status, 200);
    let r = ask(&mut all[1].pair, &c, "/health");
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some());
    assert!(
        refused(&mut all[0].pair),
        "worker 0 took a second connection"
    );
    c.close();
    settle(&mut all[1]);
    let d = RawClient::connect(&mut all[0].pair.client, at(80)).unwrap();
    assert_eq!(ask(&mut all[0].pair, &d, "/health").status, 429);
    d.close();
    // (A port's services share their counters across a reload: one handle per port.)
    let limited: u64 = all
        .iter()
        .flat_map(|w| w.app.ports.iter())
        .map(|p| p.handle.stats().limited_connections)
        .sum();
    assert_eq!(limited, 3);
    finish(all, &stop);
}

#[cfg(feature = "certs")]
#[test]
fn acme_orders_on_worker_0_and_every_worker_serves_its_certificates_and_answers() {
    let dir = std::env::temp_dir().join(format!("paf-shared-acme-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let text = format!(
        "[defaults]\naccess_log = false\n\
         [[listener]]\nname = \"web\"\nport = 80\n\
         [[listener.route]]\npath = \"/\"\naction = \"health\"\n\
         [[listener]]\nname = \"tls\"\nport = 443\nprotocol = \"https\"\n\
         acme = {{ directory = \"https://acme.paf.test/dir\", domains = [\"a.paf.test\"], \
         challenge = \"tls-alpn-01\", state_dir = \"{}\" }}\n\
         [[listener.route]]\npath = \"/\"\naction = \"static\"\nbody = \"tls\"\n",
        dir.join("state").display()
    );
    let config = cfg(&text);
    let apps_before = Pair::builder().seed(1).build().server.app_count();
    let (mut all, stop, shared) = workers(&config, 2);
    // One account key, one store, one driver (worker 0's loop has one app more).
    assert!(dir.join("state/account.key").is_file());
    assert_eq!(lock(&shared.acme).len(), 1);
    let (a0, a1) = (
        all[0].pair.server.app_count(),
        all[1].pair.server.app_count(),
    );
    assert!(a0 > a1 && a1 > apps_before, "{a0} {a1}");
    let store = lock(&shared.acme)[0].prepared.store.clone();

    // HTTP-01 answers set by the driver are served by every worker's port 80.
    shared.http01.set("tok", "tok.thumb");
    for w in &mut all {
        let c = RawClient::connect(&mut w.pair.client, at(80)).unwrap();
        let r = ask(&mut w.pair, &c, "/.well-known/acme-challenge/tok");
        assert_eq!((r.status, &r.body[..]), (200, &b"tok.thumb"[..]));
        c.close();
    }

    // A certificate installed in the store (an order's) is served by every worker.
    let ca = crate::tls::certs::TestCa::new("shared test CA").unwrap();
    let issued = ca.issue(&["a.paf.test"]).unwrap();
    store
        .install(&["a.paf.test".to_string()], &issued.identity(), true)
        .unwrap();
    let trust = crate::tls::ClientTrust::CaCerts(vec![ca.cert().clone()]);
    let client = crate::tls::ClientConfig::builder(trust)
        .alpn_protocols(&[crate::tls::ALPN_HTTP11])
        .build()
        .unwrap();
    for w in &mut all {
        let name = crate::tls::ServerName::try_from("a.paf.test").unwrap();
        let c = RawClient::connect_tls(&mut w.pair.client, at(443), &client, name).unwrap();
        let r = ask(&mut w.pair, &c, "/");
        assert_eq!((r.status, &r.body[..]), (200, &b"tls"[..]));
        c.close();
    }

    // A TLS-ALPN-01 challenge certificate too: every worker offers `acme-tls/1` and shows it
    // to a validation. (Issued by another CA for the test: webpki cannot parse a real RFC
    // 8737 one. A validation gets nothing but a challenge certificate, so a handshake
    // verified against that CA alone shows it was served.)
    let other = crate::tls::certs::TestCa::new("challenge test CA").unwrap();
    let challenge = other.issue(&["a.paf.test"]).unwrap();
    store
        .set_challenge("a.paf.test", &challenge.identity())
        .unwrap();
    let validation =
        crate::tls::ClientConfig::builder(crate::tls::ClientTrust::CaCerts(vec![other
            .cert()
            .clone()]))
        .alpn_protocols(&[crate::tls::ALPN_ACME_TLS])
        .build()
        .unwrap();
    for w in &mut all {
        let name = crate::tls::ServerName::try_from("a.paf.test").unwrap();
        let c = RawClient::connect_tls(&mut w.pair.client, at(443), &validation, name).unwrap();
        c.send(b"GET / HTTP/1.1\r\nHost: a.paf.test\r\n\r\n");
        let mut buf = Vec::new();
        w.pair.drive_until(LONG, "the validation", |_| {
            buf.extend_from_slice(&c.take_input());
            parse_response(&buf, false).is_some() || c.is_done()
        });
        assert!(
            !c.is_reset(),
            "the handshake failed: no challenge certificate"
        );
        c.close();
    }
    store.clear_challenges();
    finish(all, &stop);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A web listener and an https one with ACME for `domains` (a directory nobody answers).
#[cfg(feature = "certs")]
fn acme_config(state: &Path, domains: &str) -> Config {
    cfg(&format!(
        "[defaults]\naccess_log = false\n\
         [[listener]]\nname = \"web\"\nport = 80\n\
         [[listener.route]]\npath = \"/health\"\naction = \"health\"\n\
         [[listener]]\nname = \"tls\"\nport = 443\nprotocol = \"https\"\n\
         acme = {{ directory = \"https://acme.paf.test/dir\", domains = [{domains}], \
         state_dir = \"{}\" }}\n\
         [[listener.route]]\npath = \"/health\"\naction = \"health\"\n",
        state.display()
    ))
}

#[cfg(feature = "certs")]
#[test]
fn workers_reloading_in_any_order_share_the_new_store_and_retire_the_old_driver() {
    let dir = std::env::temp_dir().join(format!("paf-shared-reload-{}", std::process::id()));
    let a = acme_config(&dir, "\"a.paf.test\"");
    let b = acme_config(&dir, "\"a.paf.test\", \"b.paf.test\"");
    let (mut all, stop, shared) = workers(&a, 2);
    let first = all[0].app.acme[0].store.clone();
    assert!(Arc::ptr_eq(&first, &all[1].app.acme[0].store));
    let driver = all[0].app.acme[0].retired.clone();
    // The same block again: kept on both.
    for w in &mut all {
        w.app.reload(&mut w.pair.server, a.clone()).expect("reload");
        assert!(Arc::ptr_eq(&first, &w.app.acme[0].store));
    }
    assert!(!driver.get());
    // Another block, worker 1 first (it makes the entry), then worker 0 (it finds it and
    // starts the new driver; the old one orders nothing more).
    for k in [1, 0] {
        let w = &mut all[k];
        w.app.reload(&mut w.pair.server, b.clone()).expect("reload");
    }
    let second = all[0].app.acme[0].store.clone();
    assert!(!Arc::ptr_eq(&first, &second));
    assert!(Arc::ptr_eq(&second, &all[1].app.acme[0].store));
    assert!(driver.get(), "the old driver was not retired");
    assert!(!all[0].app.acme[0].retired.get());
    // No worker holds the old block's entry any more: the next lookup drops it.
    let held = |shared: &Shared| {
        lock(&shared.acme)
            .iter()
            .filter(|s| Arc::strong_count(&s.prepared) > 1)
            .count()
    };
    assert_eq!(held(&shared), 1);
    finish(all, &stop);
    let _ = std::fs::remove_dir_all(&dir);
}
