//! CONNECT tunnels end to end: `paf run --config` on a TAP in a namespace with dnsmasq
//! (`upstream.test` → 198.18.0.1, `paf.test` → 198.18.0.2), nginx on the kernel side serving
//! files over TLS on 8443, and curl using paf as its proxy (`--proxytunnel`): curl sends
//! `CONNECT upstream.test:8443`, paf resolves the name through its own stack's DNS, checks the
//! allow list, dials nginx on the userspace stack and tunnels; TLS is curl's and nginx's, end to
//! end (paf sees ciphertext only).
//!
//! - over an http listener (allowed by address: `198.18.0.1/32:8443`, so the name's address
//!   decides) and an https listener (allowed by name; curl `--proxy https://…` with
//!   `--proxy-cacert`: TLS to paf, and inside it the TLS to nginx): a 20 MB file byte-exact;
//! - refused with `403`: a port not listed, and `paf.test`, whose address is not in the block;
//! - `/metrics`: the tunnels counted, none left open, the refusals by kind.
//!
//! Needs root, nginx, curl and dnsmasq: without them it prints `SKIP` (a failure under
//! `PAF_REQUIRE_NETNS=1`).

use std::time::Duration;

use crate::appliance::support::{curl, metrics, nginx, sha256, skip, start, Fixtures, Scratch};
use crate::common::Netns;

const SIZE: usize = 20_000_000;

const CONFIG: &str = r#"
[interface]
tap = "paf0"
ipv4 = "198.18.0.2/24"
gateway4 = "198.18.0.1"
dns = ["198.18.0.1"]

[[listener]]
name = "web"
port = 80

[[listener.route]]
action = "connect"
allow = ["198.18.0.1/32:8443"]

[[listener.route]]
path = "/metrics"
action = "metrics"

[[listener]]
name = "secure"
port = 443
protocol = "https"
protocols = ["http/1.1"]
certificate = "pki/paf/cert.pem"
key = "pki/paf/key.pem"

[[listener.route]]
action = "connect"
allow = ["upstream.test:8443"]
"#;

#[test]
fn curl_fetches_through_connect_tunnels_over_http_and_https() {
    let test = "curl_fetches_through_connect_tunnels_over_http_and_https";
    if skip(test) {
        return;
    }
    let ns = Netns::builder("connect").with_dnsmasq().up();
    let dir = Scratch::new("connect");
    dir.cert("upstream", &["upstream.test"]);
    dir.cert("paf", &["paf.test", "198.18.0.2"]);
    let file = dir.big_file("www/big.bin", SIZE, 7);
    let want = sha256(&file);
    let _nginx = nginx(&ns, &dir);
    let config = dir.write("connect.toml", CONFIG);
    let mut paf = start(&ns, &config);
    let (upstream_ca, paf_ca) = (dir.s("pki/upstream/ca.pem"), dir.s("pki/paf/ca.pem"));

    // The file through a tunnel: over the http listener, then over the https one.
    let proxies: [&[&str]; 2] = [
        &["--proxytunnel", "--proxy", "http://198.18.0.2:80"],
        &[
            "--proxytunnel",
            "--proxy",
            "https://198.18.0.2:443",
            "--proxy-cacert",
            &paf_ca,
        ],
    ];
    for (i, proxy) in proxies.iter().enumerate() {
        let out_file = dir.s(&format!("got-{i}.bin"));
        let mut args = proxy.to_vec();
        args.extend_from_slice(&[
            "--cacert",
            &upstream_ca,
            "-o",
            &out_file,
            "-w",
            "connect=%{http_connect}\n%{http_code}",
            "https://upstream.test:8443/big.bin",
        ]);
        let out = curl(&ns, &args);
        assert!(out.success(), "{proxy:?}: {out}");
        let (rest, code) = out.stdout.rsplit_once('\n').expect("status");
        assert_eq!(code.trim(), "200", "{proxy:?}: {out}");
        assert!(rest.contains("connect=200"), "{proxy:?}: {out}");
        assert_eq!(sha256(&out_file), want, "{proxy:?}: byte-exact");
    }

    // Refused before anything is dialled (a port not listed), and by address (`paf.test`
    // resolves to 198.18.0.2, outside 198.18.0.1/32): curl's CONNECT gets 403.
    for url in ["https://upstream.test:8080/", "https://paf.test:8443/"] {
        let out = curl(
            &ns,
            &[
                "--proxytunnel",
                "--proxy",
                "http://198.18.0.2:80",
                "-w",
                "connect=%{http_connect}\n%{http_code}",
                url,
            ],
        );
        assert!(!out.success(), "{url}: {out}");
        assert!(out.stdout.contains("connect=403"), "{url}: {out}");
    }

    // Every tunnel closed once curl was done; the counters say what happened.
    let mut open = f64::NAN;
    for _ in 0..50 {
        let m = metrics(&ns);
        open = m["paf_tunnels_open{listener=\"web\"}"] + m["paf_tunnels_open{listener=\"secure\"}"];
        if open == 0.0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let m = metrics(&ns);
    assert_eq!(open, 0.0, "{m:?}");
    let total = |l: &str| m[&format!("paf_tunnels_total{{listener=\"{l}\"}}")];
    assert_eq!((total("web"), total("secure")), (1.0, 1.0), "{m:?}");
    assert_eq!(
        m["paf_connect_failures_total{listener=\"web\",kind=\"forbidden\"}"],
        2.0
    );
    for l in ["web", "secure"] {
        let key =
            format!("paf_tunnel_bytes_total{{listener=\"{l}\",direction=\"upstream_to_client\"}}");
        assert!(m[&key] >= SIZE as f64, "{key}: {m:?}");
    }
    assert!(paf.is_running(), "{}", paf.stderr());
}
