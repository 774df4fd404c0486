//! Garbage-record clients (`tests/tools/tls_garbage.py`): they neither slow a parallel curl
//! loop nor outlive the handshake timeout, and each failure is logged with its peer.

use super::*;

#[test]
fn garbage_clients_do_not_slow_a_curl_loop_and_time_out() {
    if !require_netns("https_garbage") || !require_tools("https_garbage", &["curl", "python3"]) {
        return;
    }
    let _serial = serial();
    // Two rates compared, and curl loops and attackers on the cores. See crate::heavy.
    let _heavy = crate::heavy();
    let dir = Scratch::new("garbage");
    let pki = paf_cert(&dir, "pki", &["paf.test"]);
    let ns = Netns::new("tlsjunk");
    let mut paf = start_config(&ns, &dir, &tls_config(&pki, &[]));
    let ca = pki.ca();
    const N: usize = 50;

    // Warm up (ARP/ND, page cache), then the baseline.
    curl_loop(&ns, ca, 3);
    let base = curl_loop(&ns, ca, N);
    let base_rate = N as f64 / base.as_secs_f64();

    // Attackers for the whole of the second loop: record headers that announce a body and then
    // fall silent (16 03 03 48 00 announces 18,432 bytes, over rustls' limit, so it is refused at
    // once; 16 03 03 40 00 waits for its 16,384 bytes until the handshake timeout), a partial
    // ClientHello, clients that send nothing, random bytes. Each reconnects after being closed.
    let silent = vec!["hdr40"; 16].join(",");
    let kinds =
        format!("hdr48,hdr48,{silent},hello1,hello1,none,none,rand1,rand64,rand700,rand3000");
    let duration = (base.as_secs_f64() * 3.0).max(5.0);
    let mut attackers = ns.spawn(
        "python3",
        [
            tool("tls_garbage.py"),
            "198.18.0.2".into(),
            "443".into(),
            format!("{duration:.1}"),
            kinds.clone(),
            "10".into(),
            "100".into(),
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    let attacked = curl_loop(&ns, ca, N);
    let attacked_rate = N as f64 / attacked.as_secs_f64();
    eprintln!(
        "{N} sequential HTTPS GETs (new connection each): {base_rate:.1}/s alone, \
         {attacked_rate:.1}/s with {} garbage clients",
        kinds.split(',').count()
    );
    assert!(
        attacked_rate >= 0.5 * base_rate,
        "garbage clients slowed the loop: {attacked_rate:.1}/s vs {base_rate:.1}/s alone"
    );

    let status = attackers
        .wait_timeout(Duration::from_secs_f64(duration + 30.0))
        .expect("garbage clients finished");
    let report = attackers.stdout();
    assert!(status.success(), "{status}\n{report}");
    let cycles = parse_garbage(&report);
    let limit_ms = HANDSHAKE_TIMEOUT_MS + 3000;
    for c in &cycles {
        // The server closed every one of them (no client-side timeout), never later than the
        // handshake timeout plus slack.
        assert!(
            c.how == "eof" || c.how == "reset",
            "{c:?} was not closed by the server\n{report}"
        );
        assert!(c.close_ms <= limit_ms, "{c:?} closed late\n{report}");
    }
    // Those that wait for more bytes of a valid-looking record are closed at the handshake
    // timeout, not before.
    let waiting: Vec<&Garbage> = cycles
        .iter()
        .filter(|c| ["hdr40", "hello1", "none"].contains(&c.kind.as_str()))
        .collect();
    assert!(waiting.len() >= 20, "{report}");
    for c in &waiting {
        assert!(
            c.close_ms + 200 >= HANDSHAKE_TIMEOUT_MS,
            "{c:?} closed before the handshake timeout\n{report}"
        );
    }
    // Those rejected at once got an alert first (flushed before the close).
    for c in cycles
        .iter()
        .filter(|c| c.close_ms + 500 < HANDSHAKE_TIMEOUT_MS)
    {
        assert!(
            c.got.starts_with("15"),
            "{c:?}: closed without an alert\n{report}"
        );
    }
    for kind in [
        "hdr48", "hdr40", "hello1", "none", "rand1", "rand64", "rand700", "rand3000",
    ] {
        let of: Vec<&Garbage> = cycles.iter().filter(|c| c.kind == kind).collect();
        let ms = |f: fn(u64, u64) -> u64| of.iter().map(|c| c.close_ms).reduce(f).unwrap_or(0);
        let mut got: Vec<&str> = of.iter().map(|c| c.got.as_str()).collect();
        got.sort_unstable();
        got.dedup();
        eprintln!(
            "{kind}: {} connections closed by the server after {}..{} ms; sent back: {got:?}",
            of.len(),
            ms(u64::min),
            ms(u64::max),
        );
    }

    // Still serving, and nothing of the attack is left open.
    let out = curl_tls(&ns, ca, &["https://paf.test/metrics"]);
    let open = metric(&out.stdout, "paf_connections_open{listener=\"tls\"}");
    assert_eq!(open, Some(1), "{}", out.stdout);
    assert!(paf.is_running());
    assert!(
        paf.stop(Duration::from_secs(20)).success(),
        "{}",
        paf.stderr()
    );
}
