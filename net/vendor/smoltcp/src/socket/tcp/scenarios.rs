// paf patch (issue 13): packetdrill-style scenario tests for the loss-recovery patch.
//
// Each scenario drives one socket through a real handshake (so SACK is negotiated and the
// initial window is set as in production), then plays a scripted peer: segments go in at
// given virtual times, and everything the socket sends comes out through [`Sim::run`],
// which advances the virtual clock only to the instants the socket asks to be polled at
// (`poll_at`), as an interface would. Every segment the socket sends must be expected:
// [`Sim::peer`] fails if anything went out that the script did not collect first.
//
// Conventions: the peer's MSS is [`MSS`] (100 bytes, so segment arithmetic is readable),
// the minimum RTO is 200 ms, `l(n)` is our sequence number `n` bytes into our data and
// `r(n)` the peer's. Under the default features smoltcp runs without a congestion
// controller; the scenarios that need one (the window reduction, the initial window,
// limited transmit) are compiled only with `socket-tcp-cubic` or `socket-tcp-reno`:
//
// ```text
// cd net/vendor/smoltcp
// cargo test --lib scenarios                                # default features
// cargo test --lib --features socket-tcp-cubic scenarios    # + Cubic (what paf uses)
// cargo test --lib --features socket-tcp-reno scenarios     # + Reno
// ```

use super::*;

/// The peer's MSS.
const MSS: usize = 100;

/// The minimum RTO the scenarios set (Linux's, and paf's default).
const MIN_RTO: i64 = 200;

/// Bytes the peer sends as data.
static PEER_DATA: [u8; 4096] = [0x5a; 4096];

/// Our sequence number `n` bytes into our data (after the SYN).
fn l(n: usize) -> TcpSeqNumber {
    LOCAL_SEQ + 1 + n
}

/// The peer's sequence number `n` bytes into its data (after its SYN).
fn r(n: usize) -> TcpSeqNumber {
    REMOTE_SEQ + 1 + n
}

/// How far `seq` is into our data (negative for the SYN).
fn lo(seq: TcpSeqNumber) -> i64 {
    i64::from(seq.0.wrapping_sub(l(0).0))
}

/// How far `seq` is into the peer's data.
fn ro(seq: TcpSeqNumber) -> i64 {
    i64::from(seq.0.wrapping_sub(r(0).0))
}

/// SACK blocks on the wire for ranges of our data.
fn sack_l(blocks: &[(usize, usize)]) -> [Option<(u32, u32)>; 3] {
    let mut out = [None; 3];
    for (o, &(a, b)) in out.iter_mut().zip(blocks) {
        *o = Some((l(a).0 as u32, l(b).0 as u32));
    }
    out
}

/// One segment the socket sent.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Out {
    /// Virtual time in ms.
    at: i64,
    seq: TcpSeqNumber,
    ack: Option<TcpSeqNumber>,
    /// Payload length.
    len: usize,
    ctl: TcpControl,
    win: u16,
    /// SACK blocks as (left, right) pairs, in the order they were sent.
    sack: Vec<(TcpSeqNumber, TcpSeqNumber)>,
    /// TCP option bytes (header length less 20).
    opt_len: usize,
    /// The whole IP packet.
    ip_len: usize,
}

impl Out {
    fn from(at: i64, ip_repr: &IpRepr, repr: &TcpRepr) -> Out {
        Out {
            at,
            seq: repr.seq_number,
            ack: repr.ack_number,
            len: repr.payload.len(),
            ctl: repr.control.quash_psh(),
            win: repr.window_len,
            sack: repr
                .sack_ranges
                .iter()
                .flatten()
                .map(|&(a, b)| (TcpSeqNumber(a as i32), TcpSeqNumber(b as i32)))
                .collect(),
            opt_len: repr.header_len() - 20,
            ip_len: ip_repr.header_len() + repr.buffer_len(),
        }
    }

    /// Whether this carries our data `[a, b)` (offsets into our data).
    fn is_data(&self, a: usize, b: usize) -> bool {
        self.seq == l(a) && self.len == b - a
    }

    /// SACK blocks as offsets into the peer's data.
    fn sack_r(&self) -> Vec<(i64, i64)> {
        self.sack.iter().map(|&(a, b)| (ro(a), ro(b))).collect()
    }
}

/// Readable one-line summaries, for assertion messages.
fn show(outs: &[Out]) -> String {
    outs.iter()
        .map(|o| {
            format!(
                "t={} seq=l({}) ack={:?} len={} {:?} sack={:?}",
                o.at,
                lo(o.seq),
                o.ack.map(ro),
                o.len,
                o.ctl,
                o.sack_r()
            )
        })
        .collect::<Vec<_>>()
        .join("\n  ")
}

struct Opts {
    sack: bool,
    /// The handshake's RTT in ms (the first RTT sample).
    rtt: i64,
    /// The peer's (unscaled) window.
    win: u16,
    tx: usize,
    rx: usize,
    #[allow(dead_code)]
    cc: Option<CongestionControl>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            sack: true,
            rtt: 20,
            win: 60000,
            tx: 8192,
            rx: 4096,
            cc: None,
        }
    }
}

/// A socket, a virtual clock, and a log of what the socket sent.
struct Sim {
    s: TestSocket,
    now: i64,
    /// Replies `process` returned directly, not yet handed out by `run`.
    pending: Vec<Out>,
    /// Everything sent since the handshake.
    log: Vec<Out>,
}

impl Sim {
    /// A passive open: the peer's SYN at 0 ms, our SYN|ACK, the peer's ACK at `rtt` ms.
    fn connect(o: Opts) -> Sim {
        let mut s = socket_with_buffer_sizes(o.tx, o.rx);
        s.set_min_rto(Duration::from_millis(MIN_RTO as u64));
        if let Some(cc) = o.cc {
            s.set_congestion_control(cc);
        }
        s.state = State::Listen;
        s.listen_endpoint = LISTEN_END;
        let mut sim = Sim {
            s,
            now: 0,
            pending: Vec::new(),
            log: Vec::new(),
        };
        sim.peer(
            0,
            TcpRepr {
                control: TcpControl::Syn,
                seq_number: REMOTE_SEQ,
                ack_number: None,
                max_seg_size: Some(MSS as u16),
                sack_permitted: o.sack,
                window_len: o.win,
                ..SEND_TEMPL
            },
        );
        let synack = sim.run(0);
        assert_eq!(synack.len(), 1, "{}", show(&synack));
        assert_eq!(synack[0].ctl, TcpControl::Syn);
        assert_eq!(synack[0].seq, LOCAL_SEQ);
        assert_eq!(synack[0].ack, Some(r(0)));
        sim.peer(o.rtt, sim.ack(0, &[], o.win));
        assert_eq!(sim.s.state, State::Established);
        assert!(sim.run(o.rtt).is_empty());
        assert_eq!(sim.s.remote_has_sack, o.sack);
        sim.log.clear();
        sim
    }

    /// A pure ACK from the peer: `una` bytes of our data acknowledged, SACK blocks over our
    /// data, the peer's sequence number just after its data so far.
    fn ack(&self, una: usize, sack: &[(usize, usize)], win: u16) -> TcpRepr<'static> {
        TcpRepr {
            seq_number: self.peer_nxt(),
            ack_number: Some(l(una)),
            window_len: win,
            sack_ranges: sack_l(sack),
            ..SEND_TEMPL
        }
    }

    /// The peer's next sequence number as far as this socket knows (the peer's data we
    /// have in order). Scenarios with peer data build their segments themselves.
    fn peer_nxt(&self) -> TcpSeqNumber {
        self.s.remote_seq_no + self.s.rx_buffer.len()
    }

    /// A data segment from the peer: its bytes `[a, b)`, acknowledging `una` of ours.
    fn data(a: usize, b: usize, una: usize, sack: &[(usize, usize)], win: u16) -> TcpRepr<'static> {
        TcpRepr {
            seq_number: r(a),
            ack_number: Some(l(una)),
            window_len: win,
            sack_ranges: sack_l(sack),
            payload: &PEER_DATA[..b - a],
            ..SEND_TEMPL
        }
    }

    /// The application writes `n` bytes.
    fn write(&mut self, n: usize) {
        let data = vec![0xa5u8; n];
        assert_eq!(self.s.send_slice(&data), Ok(n));
    }

    /// One `dispatch` at the current time.
    fn dispatch_once(&mut self) -> Option<Out> {
        let now = self.now;
        self.s.cx.set_now(Instant::from_millis(now));
        let mut out = None;
        let r: Result<(), ()> =
            self.s
                .socket
                .dispatch(&mut self.s.cx, |_, _, (ip_repr, tcp_repr)| {
                    out = Some(Out::from(now, &ip_repr, &tcp_repr));
                    Ok(())
                });
        assert_eq!(r, Ok(()));
        out
    }

    /// Advance the clock to `until`, polling the socket whenever it asks to be polled, and
    /// return everything it sent (with replies `process` returned since the last call).
    #[track_caller]
    fn run(&mut self, until: i64) -> Vec<Out> {
        assert!(
            until >= self.now,
            "time goes forward: {} < {}",
            until,
            self.now
        );
        let mut got = core::mem::take(&mut self.pending);
        loop {
            let before = got.len();
            while let Some(o) = self.dispatch_once() {
                got.push(o);
                assert!(got.len() < 10_000, "runaway transmission");
            }
            match self.s.socket.poll_at(&mut self.s.cx) {
                PollAt::Now => panic!(
                    "poll_at() is Now at {} ms but dispatch() sends nothing (busy loop)",
                    self.now
                ),
                PollAt::Time(t) => {
                    let t = t.total_millis();
                    if t > until {
                        break;
                    }
                    if t <= self.now {
                        assert!(
                            got.len() > before,
                            "poll_at() is {} ms at {} ms but dispatch() sends nothing (busy loop)",
                            t,
                            self.now
                        );
                        continue;
                    }
                    self.now = t;
                }
                PollAt::Ingress => break,
            }
        }
        self.now = until;
        self.log.extend(got.iter().cloned());
        got
    }

    /// The peer's segment arrives at `at`. Fails if the socket sent anything before that
    /// the script has not collected with [`Sim::run`].
    #[track_caller]
    fn peer(&mut self, at: i64, repr: TcpRepr) {
        let before = self.run(at);
        assert!(
            before.is_empty(),
            "unexpected segments before the peer's segment at {} ms:\n  {}",
            at,
            show(&before)
        );
        let ip_repr = IpReprIpvX(IpvXRepr {
            src_addr: REMOTE_ADDR,
            dst_addr: LOCAL_ADDR,
            next_header: IpProtocol::Tcp,
            payload_len: repr.buffer_len(),
            hop_limit: 64,
        });
        self.s.cx.set_now(Instant::from_millis(at));
        assert!(self.s.socket.accepts(&mut self.s.cx, &ip_repr, &repr));
        if let Some((ip, reply)) = self.s.socket.process(&mut self.s.cx, &ip_repr, &repr) {
            self.pending.push(Out::from(at, &ip, &reply));
        }
    }

    /// The congestion window (usize::MAX without a controller).
    fn cwnd(&self) -> usize {
        self.s.congestion_controller.inner().window()
    }
}

/// `n` full segments of new data, each MSS long, starting `from` bytes into our data.
#[track_caller]
fn assert_new_segments(outs: &[Out], from: usize, n: usize) {
    assert_eq!(outs.len(), n, "expected {} segments:\n  {}", n, show(outs));
    for (i, o) in outs.iter().enumerate() {
        assert!(
            o.is_data(from + i * MSS, from + (i + 1) * MSS),
            "segment {} is not l({})+{}:\n  {}",
            i,
            from + i * MSS,
            MSS,
            show(outs)
        );
    }
}

/// Establish (RTT 20 ms) and send ten segments, segment `k` (bytes `100k..100k+100`) at
/// `20 + k` ms, as a paced sender or a serializing link would; returns the simulation at
/// 29 ms. An ACK for segment `k` arriving one RTT later arrives at `40 + k` ms.
fn ten_segments_in_flight(sack: bool) -> Sim {
    let mut sim = Sim::connect(Opts {
        sack,
        ..Opts::default()
    });
    for k in 0..10 {
        sim.write(MSS);
        let out = sim.run(20 + k as i64);
        assert_new_segments(&out, k * MSS, 1);
        assert_eq!(out[0].at, 20 + k as i64);
        if k < 9 {
            sim.now += 1;
        }
    }
    sim
}

/// Feed the peer's segments in order (time, segment) and collect everything sent meanwhile,
/// up to `until`.
fn script(sim: &mut Sim, steps: Vec<(i64, TcpRepr<'static>)>, until: i64) -> Vec<Out> {
    let mut all = Vec::new();
    for (t, repr) in steps {
        all.extend(sim.run(t));
        sim.peer(t, repr);
    }
    all.extend(sim.run(until));
    all
}

/// The peer's ACKs of our ten segments, one RTT (20 ms) after each was sent: `una` and
/// SACK blocks as the peer would send them when segments `lost` never arrive.
fn acks_with_holes(sim: &Sim, lost: &[usize], from: usize) -> Vec<(i64, TcpRepr<'static>)> {
    let mut got = [false; 10];
    let mut steps = Vec::new();
    for k in from..10 {
        if lost.contains(&k) {
            continue;
        }
        got[k] = true;
        let una = got.iter().take_while(|&&g| g).count();
        // Runs held above the first hole; the one holding segment k first (RFC 2018 §4).
        let mut runs: Vec<(usize, usize)> = Vec::new();
        let mut i = una;
        while i < 10 {
            if got[i] {
                let a = i;
                while i < 10 && got[i] {
                    i += 1;
                }
                runs.push((a * MSS, i * MSS));
            } else {
                i += 1;
            }
        }
        if let Some(p) = runs.iter().position(|&(a, b)| a <= k * MSS && k * MSS < b) {
            let first = runs.remove(p);
            runs.insert(0, first);
        }
        runs.truncate(3);
        steps.push((40 + k as i64, sim.ack(una * MSS, &runs, 60000)));
    }
    steps
}

/// RFC 8985 §6.2 (RACK) and RFC 6675 §5: one lost segment in the middle of a flight is
/// retransmitted once a segment sent after it is SACKed and a reordering window (RTT/4)
/// has passed — within RTT + RTT/4 of the first SACK, long before the 200 ms RTO — and
/// nothing that was SACKed is sent again.
#[test]
fn scenario_1_single_loss_repaired_by_rack_within_an_rtt() {
    let mut sim = ten_segments_in_flight(true);
    // Segment 1 (bytes 100..200, sent at 21 ms) is lost. The peer ACKs segment 0 at 40,
    // then SACKs 2..10 as they arrive, from 42 ms.
    let steps = acks_with_holes(&sim, &[1], 0);
    let first_sack = 42;
    let out = script(&mut sim, steps, 60);
    assert_eq!(out.len(), 1, "only the hole goes out:\n  {}", show(&out));
    assert!(out[0].is_data(100, 200), "{}", show(&out));
    // RACK: lost at xmit (21) + RACK RTT (20) + reo_wnd (min RTT / 4 = 5) = 46 ms.
    assert_eq!(out[0].at, 46, "{}", show(&out));
    assert!(out[0].at - first_sack <= 20 + 20 / 4);
    // The repair is acknowledged with everything; no RTO follows.
    sim.peer(66, sim.ack(1000, &[], 60000));
    let out = sim.run(2000);
    assert!(
        out.is_empty(),
        "nothing after the repair:\n  {}",
        show(&out)
    );
    assert!(sim.s.recovery.is_empty());
    assert!(!sim.s.recovery.in_fast_recovery());
    assert!(!sim.s.timer.is_retransmit());
}

/// RFC 8985 §7.2–§7.4 (tail loss probe): when the last two segments of a flight are lost,
/// no SACK can reveal it. 2·SRTT (+2 ms slack) after the last ACK, one probe goes out —
/// the last segment again, as there is no new data — well before the RTO; the peer's SACK
/// of it lets RACK find the other lost segment, which is retransmitted at once.
#[test]
fn scenario_2_tail_loss_repaired_by_a_probe() {
    let mut sim = ten_segments_in_flight(true);
    // Segments 8 and 9 are lost: the peer ACKs 0..8 at 40..47 ms.
    let steps = acks_with_holes(&sim, &[8, 9], 0);
    let last_ack = 47;
    let out = script(&mut sim, steps, last_ack + 300);
    assert!(!out.is_empty(), "no probe and no RTO");
    let probe = &out[0];
    assert!(
        probe.is_data(900, 1000),
        "the probe is the last segment:\n  {}",
        show(&out)
    );
    // PTO = 2·SRTT + 2 ms from the last ACK that advanced SND.UNA; the RTO is 200 ms.
    let srtt = sim.s.rtte.srtt as i64;
    assert!((18..=22).contains(&srtt), "srtt {}", srtt);
    assert_eq!(probe.at, last_ack + 2 * srtt + 2, "{}", show(&out));
    assert!(probe.at < last_ack + MIN_RTO);
    // Exactly one probe; unanswered, the next thing is the RTO, restarted by the probe.
    assert!(
        out[1..].iter().all(|o| o.at == probe.at + MIN_RTO),
        "{}",
        show(&out)
    );
    assert!(out[1].is_data(800, 900), "{}", show(&out));

    // Replay with the peer answering the probe: SACK of segment 9, segment 8 missing.
    let mut sim = ten_segments_in_flight(true);
    let steps = acks_with_holes(&sim, &[8, 9], 0);
    let out = script(&mut sim, steps, last_ack + 2 * srtt + 2);
    assert_eq!(out.len(), 1);
    assert!(out[0].is_data(900, 1000));
    let t_probe = out[0].at;
    sim.peer(t_probe + 20, sim.ack(800, &[(900, 1000)], 60000));
    let out = sim.run(t_probe + 20);
    assert_eq!(out.len(), 1, "{}", show(&out));
    assert!(
        out[0].is_data(800, 900),
        "segment 8 is repaired at once:\n  {}",
        show(&out)
    );
    sim.peer(t_probe + 40, sim.ack(1000, &[], 60000));
    let out = sim.run(3000);
    assert!(out.is_empty(), "nothing more:\n  {}", show(&out));
    assert!(sim.s.recovery.is_empty());
    assert!(!sim.s.recovery.in_fast_recovery());
}

/// RFC 8985 §7.2: with a single segment in flight the probe timeout allows for the peer's
/// delayed ACK (2·SRTT + 200 ms) and is never later than the RTO; here the two coincide,
/// and the segment is retransmitted 200 ms after the last ACK.
#[test]
fn scenario_2b_single_segment_tail_waits_for_delayed_ack() {
    let mut sim = ten_segments_in_flight(true);
    let steps = acks_with_holes(&sim, &[9], 0);
    let last_ack = 48;
    let out = script(&mut sim, steps, last_ack + 1000);
    assert!(!out.is_empty());
    assert!(out[0].is_data(900, 1000), "{}", show(&out));
    assert_eq!(out[0].at, last_ack + MIN_RTO, "{}", show(&out));
}

/// RFC 2018 §4 (and §3): a receiver holding out-of-order data ACKs each segment at once with
/// ack = the first missing byte and SACK blocks: the first block is the one holding the
/// segment that just arrived, then the others (here from the lowest), three at most, each a
/// contiguous run of data held; when a hole fills the ACK jumps and the blocks shrink.
/// (The default build holds at most 4 out-of-order runs, `assembler-max-segment-count-4`.)
#[test]
fn scenario_3_sack_blocks_for_out_of_order_data() {
    let mut sim = Sim::connect(Opts::default());
    let w = 60000;
    sim.peer(30, Sim::data(0, 100, 0, &[], w));
    assert_eq!(sim.run(30).len(), 1);
    type Step = (usize, i64, &'static [(i64, i64)]);
    let steps: &[Step] = &[
        (200, 100, &[(200, 300)]),
        (400, 100, &[(400, 500), (200, 300)]),
        (600, 100, &[(600, 700), (200, 300), (400, 500)]),
        // A fourth run: the newest first, then the lowest two (three blocks at most).
        (800, 100, &[(800, 900), (200, 300), (400, 500)]),
        // 300 joins 200..300 and 400..500: the merged block comes first.
        (300, 100, &[(200, 500), (600, 700), (800, 900)]),
        (1000, 100, &[(1000, 1100), (200, 500), (600, 700)]),
        // 500 joins 200..500 and 600..700.
        (500, 100, &[(200, 700), (800, 900), (1000, 1100)]),
        // The hole at 100 is filled: the ACK jumps to 700, that block is gone.
        (100, 700, &[(800, 900), (1000, 1100)]),
        (700, 900, &[(1000, 1100)]),
        (900, 1100, &[]),
    ];
    for (t, &(a, ack, want)) in (31..).zip(steps) {
        sim.peer(t, Sim::data(a, a + 100, 0, &[], w));
        let out = sim.run(t);
        assert_eq!(out.len(), 1, "one ACK per segment:\n  {}", show(&out));
        let o = &out[0];
        assert_eq!(o.ack.map(ro), Some(ack), "after segment r({})", a);
        assert_eq!(o.sack_r(), want.to_vec(), "after segment r({})", a);
        assert!(o.sack.len() <= 3);
    }
}

/// RFC 6675 §5 (NextSeg) and RFC 2018: with two holes, the peer's SACK blocks decide what
/// is retransmitted — both holes, once each, and nothing the peer has SACKed.
#[test]
fn scenario_4_sack_blocks_choose_what_is_retransmitted() {
    let mut sim = ten_segments_in_flight(true);
    // Holes at segments 1 and 4.
    let steps = acks_with_holes(&sim, &[1, 4], 0);
    let out = script(&mut sim, steps, 60);
    assert_eq!(out.len(), 2, "the two holes:\n  {}", show(&out));
    assert!(out[0].is_data(100, 200), "{}", show(&out));
    assert!(out[1].is_data(400, 500), "{}", show(&out));
    // Each within an RTT and a quarter of its transmission.
    assert!(out[0].at <= 21 + 20 + 5, "{}", show(&out));
    assert!(out[1].at <= 24 + 20 + 5, "{}", show(&out));
    sim.peer(70, sim.ack(1000, &[], 60000));
    let out = sim.run(2000);
    assert!(out.is_empty(), "{}", show(&out));
    assert!(sim.s.recovery.is_empty());
}

/// RFC 6298 §2.4 and §5.5–5.6: with a 2 ms RTT the RTO is held at the 200 ms floor; with no
/// ACK at all, retransmissions come 200, 400 and 800 ms apart and start at SND.UNA. RFC 6675
/// §5.1 (paf patch): the timeout does not rewind SND.NXT, so a pure ACK sent during timeout
/// recovery carries seq = SND.NXT (which the peer, having received everything, accepts), and
/// new data after the recovery continues from the old SND.NXT.
#[test]
fn scenario_5_rto_backoff_floor_and_snd_nxt_kept() {
    let mut sim = Sim::connect(Opts {
        rtt: 2,
        ..Opts::default()
    });
    assert_eq!(sim.s.rtte.retransmission_timeout().total_millis(), 200);
    sim.write(3 * MSS);
    let out = sim.run(2);
    assert_new_segments(&out, 0, 3);
    // Nothing is ever ACKed. First the tail loss probe (2·SRTT + 2 ms, but 10 ms at least),
    // then RTOs.
    let out = sim.run(2000);
    assert!(out.len() >= 2, "{}", show(&out));
    let probe = &out[0];
    assert!(probe.is_data(200, 300), "TLP first:\n  {}", show(&out));
    assert_eq!(probe.at, 2 + 10);
    // The RTO retransmissions: each burst starts at SND.UNA.
    let rtos: Vec<&Out> = out[1..].iter().filter(|o| o.seq == l(0)).collect();
    assert!(rtos.len() >= 3, "three RTOs by 2 s:\n  {}", show(&out));
    assert_eq!(rtos[0].at - probe.at, 200, "{}", show(&out));
    assert_eq!(rtos[1].at - rtos[0].at, 400, "{}", show(&out));
    assert_eq!(rtos[2].at - rtos[1].at, 800, "{}", show(&out));
    assert!(
        out[1].seq == l(0),
        "the first retransmission after the probe starts at SND.UNA:\n  {}",
        show(&out)
    );
    // SND.NXT was never rewound.
    assert_eq!(sim.s.remote_last_seq, l(300));
    // The peer (which got everything, but whose ACKs were all lost) sends data: our pure ACK
    // carries seq = SND.NXT = l(300), not SND.UNA.
    sim.peer(2010, Sim::data(0, 100, 0, &[], 60000));
    let out = sim.run(2010);
    assert_eq!(out.len(), 1, "{}", show(&out));
    assert_eq!(out[0].len, 0);
    assert_eq!(out[0].seq, l(300), "pure ACK at SND.NXT:\n  {}", show(&out));
    assert_eq!(out[0].ack, Some(r(100)));
    // The peer finally ACKs everything; new data continues from the old SND.NXT.
    sim.peer(2020, sim.ack(300, &[], 60000));
    assert!(sim.run(2020).is_empty());
    sim.write(MSS);
    let out = sim.run(2030);
    assert_new_segments(&out, 300, 1);
    assert_eq!(out[0].at, 2020);
}

/// RFC 6675 §5.1 with RFC 8985 §6.3 (paf patch): an RTO in the middle of a flight whose
/// tail was SACKed: everything not SACKed is retransmitted from SND.UNA on, SACKed data is
/// not, and SND.NXT stays where it was.
#[test]
fn scenario_5b_rto_retransmits_only_unsacked() {
    let mut sim = ten_segments_in_flight(true);
    // One SACK, for segments 5 and 6 (sent at 25, 26), arrives at 46; every other ACK is
    // lost. RACK deems 0..5 lost within a few ms and retransmits them.
    sim.peer(46, sim.ack(0, &[(500, 700)], 60000));
    let out = sim.run(60);
    // How many of the five go out before more ACKs arrive depends on cwnd = ssthresh
    // against pipe (RFC 6675 §5 (4.3)): the first always does, the rest in order.
    assert!((1..=5).contains(&out.len()), "{}", show(&out));
    for (i, o) in out.iter().enumerate() {
        assert!(o.is_data(i * MSS, (i + 1) * MSS), "{}", show(&out));
        // Sent at 20 + i, RACK RTT 20 (segment 6), reordering window 5.
        assert!(o.at >= (20 + i as i64 + 20 + 5).max(46), "{}", show(&out));
        assert!(o.at < 60, "{}", show(&out));
    }
    // No ACK ever again: the RTO (running since the first transmission at 20 ms) resends
    // 0..5 and 7..10, never 5..7.
    let out = sim.run(20 + MIN_RTO);
    assert!(!out.is_empty(), "an RTO");
    assert!(out[0].is_data(0, 100), "{}", show(&out));
    assert_eq!(out[0].at, 20 + MIN_RTO, "{}", show(&out));
    assert!(
        out.iter().all(|o| lo(o.seq) < 500 || lo(o.seq) >= 700),
        "SACKed data is not resent:\n  {}",
        show(&out)
    );
    assert_eq!(sim.s.remote_last_seq, l(1000));
}

/// RFC 9293 §3.8.6.1 and RFC 6298 §5 / RFC 1122 §4.2.2.17: with data queued and a zero
/// window, the sender probes with one byte at RTO, backing off exponentially (200, 400,
/// 800 ms), and sends its data as soon as the window opens.
#[test]
fn scenario_6_zero_window_probe() {
    let mut sim = Sim::connect(Opts {
        win: 300,
        ..Opts::default()
    });
    sim.write(5 * MSS);
    let out = sim.run(20);
    assert_new_segments(&out, 0, 3);
    // The peer ACKs all three and closes its window.
    sim.peer(40, sim.ack(300, &[], 0));
    let out = sim.run(40 + 2000);
    assert!(out.len() >= 3, "{}", show(&out));
    for o in &out {
        assert_eq!(o.seq, l(300), "probes at SND.NXT:\n  {}", show(&out));
        assert_eq!(o.len, 1, "one-byte probes:\n  {}", show(&out));
    }
    assert_eq!(out[0].at, 40 + 200, "{}", show(&out));
    assert_eq!(out[1].at - out[0].at, 400, "{}", show(&out));
    assert_eq!(out[2].at - out[1].at, 800, "{}", show(&out));
    // The peer keeps its window shut (it dropped the probe bytes) ...
    sim.peer(2050, sim.ack(300, &[], 0));
    assert!(sim.run(2050).is_empty());
    // ... then opens it: the queued data goes out at once.
    sim.peer(2060, sim.ack(300, &[], 1000));
    let out = sim.run(2060);
    assert_new_segments(&out, 300, 2);
    assert_eq!(out[0].at, 2060);
    sim.peer(2080, sim.ack(500, &[], 1000));
    let out = sim.run(5000);
    assert!(out.is_empty(), "{}", show(&out));
}

/// RFC 5681 §3.2 and RFC 6582 §3.2 (NewReno), peer without SACK: the third duplicate ACK
/// retransmits the first unacknowledged segment; a partial ACK (the hole filled, a second
/// hole behind it) retransmits the next hole at once; the full ACK ends recovery.
#[test]
fn scenario_7_no_sack_fast_retransmit_and_newreno() {
    let mut sim = ten_segments_in_flight(false);
    // Segments 1 and 4 are lost: ACK of 0 at 40, duplicates at 42, 43 and 45 (the third),
    // then 46..49.
    let steps = acks_with_holes(&sim, &[1, 4], 0);
    let out = script(&mut sim, steps, 60);
    assert_eq!(out.len(), 1, "{}", show(&out));
    assert!(
        out[0].is_data(100, 200),
        "fast retransmit:\n  {}",
        show(&out)
    );
    assert_eq!(
        out[0].at,
        45,
        "on the third duplicate ACK:\n  {}",
        show(&out)
    );
    // Partial ACK when the retransmission arrives: up to the second hole.
    sim.peer(65, sim.ack(400, &[], 60000));
    let out = sim.run(65);
    assert_eq!(out.len(), 1, "{}", show(&out));
    assert!(
        out[0].is_data(400, 500),
        "NewReno partial ACK:\n  {}",
        show(&out)
    );
    assert!(sim.s.recovery.in_fast_recovery());
    sim.peer(85, sim.ack(1000, &[], 60000));
    let out = sim.run(3000);
    assert!(out.is_empty(), "{}", show(&out));
    assert!(!sim.s.recovery.in_fast_recovery());
    assert!(sim.s.recovery.is_empty());
}

/// The controllers compiled in.
#[cfg(any(feature = "socket-tcp-reno", feature = "socket-tcp-cubic"))]
fn controllers() -> Vec<CongestionControl> {
    let mut v = Vec::new();
    #[cfg(feature = "socket-tcp-reno")]
    v.push(CongestionControl::Reno);
    #[cfg(feature = "socket-tcp-cubic")]
    v.push(CongestionControl::Cubic);
    v
}

/// RFC 3042 (limited transmit), peer without SACK, with a congestion window: each of the
/// first two duplicate ACKs lets exactly one new segment out, beyond the window.
#[cfg(any(feature = "socket-tcp-reno", feature = "socket-tcp-cubic"))]
#[test]
fn scenario_7b_limited_transmit() {
    for cc in controllers() {
        let mut sim = Sim::connect(Opts {
            sack: false,
            cc: Some(cc),
            ..Opts::default()
        });
        sim.write(30 * MSS);
        let out = sim.run(20);
        assert_new_segments(&out, 0, 10);
        // Segment 1 is lost. The ACK of 0 opens the window (slow start) by one segment,
        // and one more is free: whatever goes out is new data in order.
        sim.peer(40, sim.ack(100, &[], 60000));
        let out = sim.run(40);
        let mut nxt = 1000;
        for o in &out {
            assert!(o.is_data(nxt, nxt + MSS), "{:?}: {}", cc, show(&out));
            nxt += MSS;
        }
        let cwnd = sim.cwnd();
        for (t, dup) in [(41, 1), (42, 2)] {
            sim.peer(t, sim.ack(100, &[], 60000));
            let out = sim.run(t);
            assert_eq!(
                out.len(),
                1,
                "{:?}: duplicate ACK {} sends one new segment:\n  {}",
                cc,
                dup,
                show(&out)
            );
            assert!(out[0].is_data(nxt, nxt + MSS), "{:?}: {}", cc, show(&out));
            nxt += MSS;
            assert_eq!(sim.cwnd(), cwnd, "{:?}: limited transmit leaves cwnd", cc);
        }
        // The third duplicate: fast retransmit of segment 1 first.
        sim.peer(43, sim.ack(100, &[], 60000));
        let out = sim.run(43);
        assert!(!out.is_empty(), "{:?}", cc);
        assert!(out[0].is_data(100, 200), "{:?}: {}", cc, show(&out));
        assert!(
            out[1..].iter().all(|o| lo(o.seq) >= nxt as i64),
            "{:?}: {}",
            cc,
            show(&out)
        );
    }
}

/// RFC 3042 §2 with RFC 6675 §5 (SACK peer, congestion window): the first two duplicate ACKs
/// each let one new segment out — the SACKed segment has left `pipe` — and no more: the
/// sender keeps FlightSize <= cwnd + 2 MSS until recovery starts.
#[cfg(any(feature = "socket-tcp-reno", feature = "socket-tcp-cubic"))]
#[test]
fn scenario_7c_limited_transmit_with_sack() {
    for cc in controllers() {
        let mut sim = Sim::connect(Opts {
            cc: Some(cc),
            ..Opts::default()
        });
        sim.write(30 * MSS);
        let out = sim.run(20);
        assert_new_segments(&out, 0, 10);
        // Segment 0 is lost; SACKs for 1 and 2 arrive (the first two duplicate ACKs).
        let cwnd = sim.cwnd();
        let mut nxt = 1000;
        for (t, k) in [(41, 2), (42, 3)] {
            sim.peer(t, sim.ack(0, &[(100, k * MSS)], 60000));
            let out = sim.run(t);
            assert_eq!(
                out.len(),
                1,
                "{:?}: duplicate ACK {} sends one new segment:\n  {}",
                cc,
                k - 1,
                show(&out)
            );
            assert!(out[0].is_data(nxt, nxt + MSS), "{:?}: {}", cc, show(&out));
            nxt += MSS;
        }
        assert!(
            nxt - 0 <= cwnd + 2 * MSS,
            "{:?}: FlightSize {} cwnd {}",
            cc,
            nxt,
            cwnd
        );
    }
}

/// Establish with `cc`, send the first flight (checking IW10), lose segments 1, 4 and 7 of
/// it and let the peer SACK the rest; returns the simulation at 60 ms (every hole found and
/// retransmitted), the window before the loss, and the window after each ACK and at 60 ms.
#[cfg(any(feature = "socket-tcp-reno", feature = "socket-tcp-cubic"))]
fn three_holes_in_one_window(cc: CongestionControl) -> (Sim, usize, Vec<usize>) {
    let mut sim = Sim::connect(Opts {
        cc: Some(cc),
        ..Opts::default()
    });
    // RFC 6928: min(10 * 100, max(2 * 100, 14600)) = 1000 bytes.
    assert_eq!(sim.cwnd(), 10 * MSS, "{:?}: IW10", cc);
    sim.write(40 * MSS);
    let out = sim.run(20);
    assert_new_segments(&out, 0, 10);
    sim.peer(40, sim.ack(100, &[], 60000));
    let mut nxt = 1000;
    for o in sim.run(40) {
        assert!(o.is_data(nxt, nxt + MSS), "{:?}", cc);
        nxt += MSS;
    }
    let before = sim.cwnd();
    let mut cwnds = vec![before];
    let acks: &[&[(usize, usize)]] = &[
        &[(200, 300)],
        &[(200, 400)],
        &[(500, 600), (200, 400)],
        &[(500, 700), (200, 400)],
        &[(800, 900), (500, 700), (200, 400)],
        &[(800, 1000), (500, 700), (200, 400)],
    ];
    let mut t = 41;
    for sack in acks {
        sim.peer(t, sim.ack(100, sack, 60000));
        sim.run(t);
        cwnds.push(sim.cwnd());
        t += 1;
    }
    // Let RACK's reordering window pass so that every hole is found.
    sim.run(60);
    cwnds.push(sim.cwnd());
    let retx: Vec<_> = sim
        .log
        .iter()
        .filter(|o| o.at > 20 && o.len > 0 && lo(o.seq) < 1000)
        .cloned()
        .collect();
    let holes: Vec<i64> = retx.iter().map(|o| lo(o.seq)).collect();
    // RACK finds all three holes; the first retransmission goes out whatever the window
    // (RFC 6675 §5 (4.3)); the others wait until pipe falls below cwnd = ssthresh, which
    // takes more ACKs than this script sends before 60 ms.
    assert_eq!(holes.first(), Some(&100), "{:?}: {}", cc, show(&retx));
    assert!(
        [100, 400, 700].starts_with(&holes),
        "{:?}: {}",
        cc,
        show(&retx)
    );
    let mut found = holes.clone();
    found.extend(sim.s.recovery.lost_starts().iter().map(|&s| lo(s)));
    assert_eq!(found, vec![100, 400, 700], "{:?}: the holes deemed lost", cc);
    (sim, before, cwnds)
}

/// RFC 6928 §2: the initial window is min(10·MSS, max(2·MSS, 14600 bytes)) — ten segments
/// here — so the first flight carries ten segments. RFC 5681 §3.2 / RFC 6675 §5 / RFC 6582
/// §3.2: several losses in one window are one congestion event: the controller is told
/// once (the window changes once), and the window does not grow again until the recovery
/// point is acknowledged.
#[cfg(any(feature = "socket-tcp-reno", feature = "socket-tcp-cubic"))]
#[test]
fn scenario_8_initial_window_and_one_reduction_per_episode() {
    for cc in controllers() {
        let (mut sim, _before, cwnds) = three_holes_in_one_window(cc);
        let changes = cwnds.windows(2).filter(|w| w[1] != w[0]).count();
        assert_eq!(changes, 1, "{:?}: one congestion event: {:?}", cc, cwnds);
        assert!(sim.s.recovery.in_fast_recovery());
        let reduced = *cwnds.last().unwrap();
        // Partial ACKs as the repairs arrive: no growth, no further reduction.
        sim.peer(61, sim.ack(400, &[(800, 1000), (500, 700)], 60000));
        sim.run(61);
        assert_eq!(sim.cwnd(), reduced, "{:?}", cc);
        sim.peer(62, sim.ack(700, &[(800, 1000)], 60000));
        sim.run(62);
        assert_eq!(sim.cwnd(), reduced, "{:?}", cc);
        // Everything sent so far (past the recovery point) is acknowledged: over.
        let all = lo(sim.s.remote_last_seq) as usize;
        sim.peer(63, sim.ack(all, &[], 60000));
        sim.run(63);
        assert!(!sim.s.recovery.in_fast_recovery(), "{:?}", cc);
    }
}

/// RFC 6675 §5 step (4.2) (and RFC 5681 §3.1 eq. 4): entering loss recovery sets
/// cwnd = ssthresh = FlightSize / 2 (Reno) or β·FlightSize (Cubic, RFC 9438 §4.6): the
/// window after the loss is smaller than before it.
///
/// (It failed while Reno/Cubic entered recovery with cwnd = ssthresh + 3·MSS on top of the
/// RFC 6675 `pipe`, which already leaves SACKed bytes out; `Controller::on_recovery` now
/// sets cwnd = ssthresh.)
#[cfg(any(feature = "socket-tcp-reno", feature = "socket-tcp-cubic"))]
#[test]
fn scenario_8b_window_is_smaller_after_a_loss() {
    for cc in controllers() {
        let (_sim, before, cwnds) = three_holes_in_one_window(cc);
        let after = *cwnds.last().unwrap();
        assert!(
            after < before,
            "{:?}: cwnd {} before the loss, {} after",
            cc,
            before,
            after
        );
    }
}

/// RFC 9293 §3.10.7.4 (segment acceptability) with RFC 6675 §5.1 (paf patch, the deadlock
/// fix) and RFC 2018: both directions lose data at once. Our ACKs (pure and duplicate)
/// always carry seq = SND.NXT, never below the peer's RCV.NXT, so the peer accepts them; our
/// only segments below the peer's RCV.NXT are retransmissions of data; both holes are
/// repaired by fast recovery (no RTO) and the connection settles with nothing outstanding.
#[test]
fn scenario_9_both_directions_in_loss() {
    let mut sim = ten_segments_in_flight(true);
    let w = 60000;
    // Our segment 3 (l(300..400), sent at 23) is lost; the peer gets the rest by 39 ms.
    // The peer's own flight r(0..500) crosses ours; r(100..200) is lost. Each of its data
    // segments carries its ACK and SACK of our data.
    let steps = vec![
        (40, Sim::data(0, 100, 300, &[(400, 1000)], w)),
        (40, Sim::data(200, 300, 300, &[(400, 1000)], w)),
        (41, Sim::data(300, 400, 300, &[(400, 1000)], w)),
        (42, Sim::data(400, 500, 300, &[(400, 1000)], w)),
    ];
    let all = script(&mut sim, steps, 60);
    // Every segment of the peer's is answered at once: the first by our retransmission of
    // segment 3 (RACK: the SACK at 40 covers segment 9, sent at 29, RACK RTT 11 ms, so
    // segment 3 sent at 23 is lost from 23 + 11 + 5 = 39 ms), which carries the ACK; the
    // others by duplicate ACKs for the peer's hole with SACK blocks for what we hold.
    assert_eq!(all.len(), 4, "{}", show(&all));
    assert!(all[0].is_data(300, 400), "{}", show(&all));
    assert_eq!(all[0].at, 40, "{}", show(&all));
    assert_eq!(all[0].ack, Some(r(100)), "the retransmission ACKs too");
    let want: [&[(i64, i64)]; 3] = [&[(200, 300)], &[(200, 400)], &[(200, 500)]];
    for (o, want) in all[1..].iter().zip(want) {
        assert_eq!(o.len, 0, "{}", show(&all));
        assert_eq!(o.ack, Some(r(100)), "{}", show(&all));
        assert_eq!(o.sack_r(), want.to_vec(), "{}", show(&all));
    }
    // The peer repairs its hole (with its RACK) before our retransmission arrives ...
    sim.peer(60, Sim::data(100, 200, 300, &[(400, 1000)], w));
    let out = sim.run(60);
    assert_eq!(out.len(), 1, "{}", show(&out));
    assert_eq!(out[0].ack, Some(r(500)));
    assert!(out[0].sack.is_empty());
    // ... and then our retransmission arrives: the peer ACKs everything.
    sim.peer(65, sim.ack(1000, &[], w));
    let tail = sim.run(3000);
    assert!(tail.is_empty(), "{}", show(&tail));
    // Every pure ACK carries SND.NXT = l(1000), the peer's RCV.NXT once it has everything
    // (and above it before): always acceptable to the peer.
    for o in sim.log.iter().filter(|o| o.len == 0) {
        assert_eq!(
            o.seq,
            l(1000),
            "pure ACKs carry SND.NXT:\n  {}",
            show(&sim.log)
        );
    }
    assert!(sim.s.recovery.is_empty());
    assert_eq!(sim.s.local_seq_no, l(1000));
    assert_eq!(sim.peer_nxt(), r(500));
    assert!(!sim.s.timer.is_retransmit());
}

/// RFC 9293 §3.10.7.4 with RFC 6675 §5.1 (paf patch: the bidirectional-RTO deadlock): the
/// peer got all our data but every ACK it sent was lost, and every data segment it sent
/// was lost too. Both sides time out. Our RTO retransmits from SND.UNA, but our pure ACK
/// for the peer's retransmitted data carries seq = SND.NXT = the peer's RCV.NXT — before the
/// patch it carried the rewound SND.UNA, below the peer's RCV.NXT, and the peer dropped it.
/// The peer's data carries the cumulative ACK that ends our recovery.
#[test]
fn scenario_9b_both_sides_time_out() {
    let mut sim = ten_segments_in_flight(true);
    let w = 60000;
    // Nothing from the peer arrives for a while: first our probe, then the RTO.
    let out = sim.run(29 + 2 * 20 + 2);
    assert_eq!(out.len(), 1);
    assert!(out[0].is_data(900, 1000), "TLP:\n  {}", show(&out));
    let out = sim.run(71 + MIN_RTO);
    assert!(!out.is_empty(), "RTO");
    assert!(out[0].is_data(0, 100), "{}", show(&out));
    // The peer, whose RCV.NXT is l(1000), retransmits its data (ack l(1000)).
    sim.peer(300, Sim::data(0, 100, 1000, &[], w));
    let out = sim.run(300);
    assert_eq!(out.len(), 1, "{}", show(&out));
    assert_eq!(out[0].len, 0);
    assert_eq!(out[0].ack, Some(r(100)));
    assert!(
        out[0].seq >= l(1000),
        "our ACK is acceptable to a peer with RCV.NXT = l(1000):\n  {}",
        show(&out)
    );
    assert!(
        sim.s.recovery.is_empty(),
        "the cumulative ACK ended recovery"
    );
    let out = sim.run(5000);
    assert!(out.is_empty(), "{}", show(&out));
    // New data continues from SND.NXT.
    sim.write(MSS);
    let out = sim.run(5000);
    assert_new_segments(&out, 1000, 1);
}

/// RFC 9293 §3.7.1 (and RFC 6691): the MSS bounds a segment's data plus its TCP options, so
/// a data segment carrying SACK blocks must carry less data; and no packet may exceed the
/// interface MTU. This checks a full-sized data segment sent while we hold out-of-order
/// data from the peer, with the MSS limited by our MTU (1460 both ways).
#[test]
fn scenario_9c_data_segments_with_sack_blocks_fit() {
    let mss = BASE_MSS as usize;
    let mut s = socket_with_buffer_sizes(8 * mss, 8 * mss);
    s.set_min_rto(Duration::from_millis(MIN_RTO as u64));
    s.state = State::Listen;
    s.listen_endpoint = LISTEN_END;
    let mut sim = Sim {
        s,
        now: 0,
        pending: Vec::new(),
        log: Vec::new(),
    };
    sim.peer(
        0,
        TcpRepr {
            control: TcpControl::Syn,
            seq_number: REMOTE_SEQ,
            ack_number: None,
            max_seg_size: Some(BASE_MSS),
            sack_permitted: true,
            window_len: 60000,
            ..SEND_TEMPL
        },
    );
    assert_eq!(sim.run(0).len(), 1);
    sim.peer(20, sim.ack(0, &[], 60000));
    assert!(sim.run(20).is_empty());
    // The peer's data with a hole: we hold r(200..300) out of order.
    sim.peer(30, Sim::data(200, 300, 0, &[], 60000));
    let out = sim.run(30);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].sack_r(), vec![(200, 300)]);
    // Now the application sends a full segment: it carries the SACK block too.
    sim.write(2 * mss);
    let out = sim.run(31);
    assert!(!out.is_empty());
    let mtu = sim.s.cx.ip_mtu();
    for o in &out {
        assert!(
            o.len + o.opt_len <= mss,
            "data {} + options {} > MSS {}:\n  {}",
            o.len,
            o.opt_len,
            mss,
            show(&out)
        );
        assert!(o.ip_len <= mtu, "IP packet {} > MTU {}", o.ip_len, mtu);
    }
}
