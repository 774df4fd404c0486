//! paf patch: loss recovery for the TCP sender.
//!
//! The sender keeps a scoreboard of what it has transmitted and not yet had cumulatively
//! acknowledged: ranges of sequence space with the time of their last transmission and
//! whether the peer has SACKed them (RFC 2018), whether they are deemed lost, and whether
//! they were ever retransmitted. From it:
//!
//! - RACK (RFC 8985 §6): a segment is lost once a segment sent after it has been delivered
//!   and one RACK RTT plus a reordering window has passed since it was sent. This needs no
//!   duplicate-ACK count, so ACKs that also change the window still repair holes, and a
//!   retransmission that is lost again is detected the same way.
//! - TLP (RFC 8985 §7): with data in flight and no ACK for two smoothed RTTs, one probe
//!   segment (new data, or the last segment again) makes the peer's SACKs reveal a tail
//!   loss, instead of waiting for the retransmission timeout.
//! - Peers without SACK: fast retransmit after three duplicate ACKs, NewReno partial-ACK
//!   retransmission (RFC 6582) and limited transmit (RFC 3042).
//! - A retransmission timeout marks everything not SACKed lost (RFC 6675 §5.1) instead of
//!   rewinding the send pointer, so SND.NXT never goes backwards in a synchronized state.
//! - The congestion controller is told once per loss episode: [`AckOutcome::entered_fast`]
//!   when a loss is first found, and the episode ends when SND.UNA passes the recovery
//!   point (RFC 6582 §3.2, RFC 6675 §5).
//! - How much may be sent is `cwnd - pipe` (RFC 6675 §4), where pipe leaves out what was
//!   SACKed and what is deemed lost and not yet retransmitted.

use alloc::collections::VecDeque;

use crate::time::{Duration, Instant};
use crate::wire::TcpSeqNumber;

/// Duplicate ACKs that trigger fast retransmit for a peer without SACK (RFC 5681 §3.2).
const DUP_THRESH: u8 = 3;

/// Timer slack added to the probe timeout when more than one segment is in flight, as Linux
/// does (`TCP_TIMEOUT_MIN`, two jiffies).
const TLP_SLACK: Duration = Duration::from_millis(2);

/// The probe timeout before any RTT sample (RFC 8985 §7.2).
const TLP_NO_RTT: Duration = Duration::from_millis(1000);

/// The shortest probe timeout (Linux had the same 10 ms floor): a sender that reads its ACKs
/// once per pass of a busy loop would otherwise probe spuriously on a sub-millisecond link.
const TLP_MIN: Duration = Duration::from_millis(10);

/// A range of transmitted sequence space `[start, end)` (a FIN counts as one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
struct Seg {
    start: TcpSeqNumber,
    end: TcpSeqNumber,
    /// Time of the latest (re)transmission.
    xmit: Instant,
    /// Retransmitted at least once (its ACK may be for an earlier copy).
    retx: bool,
    /// Selectively acknowledged by the peer.
    sacked: bool,
    /// Deemed lost and not retransmitted since.
    lost: bool,
}

impl Seg {
    fn len(&self) -> usize {
        self.end - self.start
    }
}

/// Where the connection is in loss recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
enum Episode {
    /// No loss being repaired.
    Open,
    /// Fast recovery until SND.UNA reaches `point` (SND.NXT when the loss was found).
    Fast { point: TcpSeqNumber },
    /// Recovery after a retransmission timeout, until SND.UNA reaches `point`.
    Timeout { point: TcpSeqNumber },
}

/// What one ACK meant for the congestion controller.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct AckOutcome {
    /// A loss was found and a fast-recovery episode begins: reduce the window once.
    pub entered_fast: bool,
    /// The window may grow with this ACK (no fast recovery is going on).
    pub may_grow: bool,
    /// An RTT sample: the time since the most recently sent segment this ACK delivered was
    /// sent, if that segment was sent once only (Karn's rule). Every ACK gives one, as on
    /// Linux, rather than one timed segment per flight, whose sample is inflated whenever
    /// it is the lone tail segment a receiver holds its delayed ACK for.
    pub rtt: Option<Duration>,
}

/// The ACK being processed, as the socket saw it.
pub(super) struct Ack<'a> {
    /// The cumulative acknowledgement (the new SND.UNA).
    pub una: TcpSeqNumber,
    /// The highest sequence number sent so far (SND.NXT, never rewound).
    pub snd_nxt: TcpSeqNumber,
    /// The SACK blocks of the segment (left and right edges).
    pub sack: &'a [Option<(u32, u32)>; 3],
    /// A duplicate ACK in the sense of RFC 5681 §2, except that a window change does not
    /// disqualify it: no data, no SYN/FIN, does not advance SND.UNA, data is outstanding.
    pub duplicate: bool,
    /// The sender's MSS now.
    pub mss: usize,
}

/// The sender's scoreboard and loss-recovery state.
#[derive(Debug)]
pub(super) struct Recovery {
    segs: VecDeque<Seg>,
    /// Bytes of `segs` that are SACKed.
    sacked: usize,
    /// Bytes of `segs` that are deemed lost and not retransmitted since.
    lost: usize,
    episode: Episode,
    /// Whether the peer agreed to SACK.
    sack_ok: bool,
    /// Consecutive duplicate ACKs (used when the peer has no SACK, and for limited transmit).
    dup_acks: u8,
    /// RACK: send time and end of the most recently sent segment known delivered.
    rack_xmit: Option<Instant>,
    rack_end: TcpSeqNumber,
    /// RACK: the RTT measured on that segment.
    rack_rtt: Duration,
    /// The smallest RTT seen on a segment sent once.
    min_rtt: Option<Duration>,
    /// The highest end of a SACK block seen (RACK.fack).
    fack: TcpSeqNumber,
    /// Set once a segment was delivered below RACK.fack without being retransmitted.
    reordering_seen: bool,
    /// When segments held back by the reordering window must be looked at again.
    reo_timer: Option<Instant>,
    /// When a tail loss probe is due.
    tlp_timer: Option<Instant>,
    /// A probe is due now (the TLP timer fired).
    tlp_pending: bool,
    /// SND.NXT when the outstanding probe was sent, and whether it was a retransmission.
    tlp_high: Option<(TcpSeqNumber, bool)>,
    /// A D-SACK was seen since the outstanding probe was sent.
    tlp_dsack: bool,
    /// The sender's MSS: the head "segment" a duplicate-ACK loss marks is one MSS of a
    /// coalesced range (see `mark_head_lost`).
    mss: usize,
    /// Peer without SACK: bytes that duplicate ACKs say have left the network (one MSS per
    /// duplicate ACK), counted out of `pipe` as if SACKed, as Linux does (`sacked_out` for
    /// Reno peers).
    dup_sacked: usize,
    /// The first retransmission of a fast-recovery episode, and a NewReno partial ACK's, go
    /// out whatever the congestion window says (RFC 6675 §5 (4.3), RFC 6582 §3.2 (3)).
    must_retransmit: bool,
    /// The newest never-retransmitted segment delivered by the ACK being processed: its send
    /// time and RTT.
    ack_rtt: Option<(Instant, Duration)>,
}

impl Default for Recovery {
    fn default() -> Self {
        Recovery {
            segs: VecDeque::new(),
            sacked: 0,
            lost: 0,
            episode: Episode::Open,
            sack_ok: false,
            dup_acks: 0,
            rack_xmit: None,
            rack_end: TcpSeqNumber::default(),
            rack_rtt: Duration::ZERO,
            min_rtt: None,
            fack: TcpSeqNumber::default(),
            reordering_seen: false,
            reo_timer: None,
            tlp_timer: None,
            tlp_pending: false,
            tlp_high: None,
            tlp_dsack: false,
            mss: 536,
            dup_sacked: 0,
            must_retransmit: false,
            ack_rtt: None,
        }
    }
}

impl Recovery {
    /// A fresh scoreboard for a connection whose handshake says whether the peer agreed to
    /// SACK, and the sender's MSS (the size of the segment a duplicate-ACK loss marks).
    pub fn new(sack_ok: bool, mss: usize) -> Recovery {
        Recovery {
            sack_ok,
            mss,
            ..Recovery::default()
        }
    }

    /// Bytes in flight in the sense of RFC 6675's `pipe`: outstanding, less what is SACKed
    /// and what is deemed lost and not yet retransmitted.
    pub fn pipe(&self, una: TcpSeqNumber, snd_nxt: TcpSeqNumber) -> usize {
        let outstanding = if snd_nxt > una { snd_nxt - una } else { 0 };
        outstanding.saturating_sub(self.sacked + self.lost + self.dup_sacked)
    }

    /// Whether a fast-recovery episode is going on (the window must not grow).
    pub fn in_fast_recovery(&self) -> bool {
        matches!(self.episode, Episode::Fast { .. })
    }

    /// Whether anything is deemed lost and waits to be retransmitted.
    pub fn has_lost(&self) -> bool {
        self.lost > 0
    }

    /// Whether the next retransmission is exempt from the congestion window.
    pub fn must_retransmit(&self) -> bool {
        self.must_retransmit && self.lost > 0
    }

    /// Whether a tail loss probe is due.
    pub fn probe_due(&self) -> bool {
        self.tlp_pending
    }

    /// The earliest instant a recovery timer needs the socket polled.
    pub fn poll_at(&self) -> Option<Instant> {
        match (self.reo_timer, self.tlp_timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The first range deemed lost, at most `max` long: what to retransmit next.
    pub fn next_retransmit(&self, max: usize) -> Option<(TcpSeqNumber, usize)> {
        if self.lost == 0 {
            return None;
        }
        let mut iter = self.segs.iter().skip_while(|s| !s.lost);
        let first = iter.next()?;
        let mut end = first.end;
        for s in iter {
            if !s.lost || s.start != end || end - first.start >= max {
                break;
            }
            end = s.end;
        }
        Some((first.start, (end - first.start).min(max)))
    }

    /// The last `max` bytes of what is outstanding, for a probe that retransmits.
    pub fn probe_retransmit(&self, max: usize) -> Option<(TcpSeqNumber, usize)> {
        let last = self.segs.iter().rev().find(|s| !s.sacked)?;
        let len = last.len().min(max);
        Some((last.end - len, len))
    }

    /// Split the segment holding `seq` so that a segment starts at `seq`; returns its index.
    fn split_at(&mut self, seq: TcpSeqNumber) -> Option<usize> {
        let i = self.segs.iter().position(|s| s.end > seq)?;
        let s = self.segs[i];
        if s.start >= seq {
            return Some(i);
        }
        let mut head = s;
        head.end = seq;
        self.segs[i].start = seq;
        self.segs.insert(i, head);
        Some(i + 1)
    }

    /// A segment `[start, end)` went out at `now`: new data past the scoreboard's end, or a
    /// retransmission of sequence space already on it.
    pub fn on_send(&mut self, start: TcpSeqNumber, end: TcpSeqNumber, now: Instant) {
        if end <= start {
            return;
        }
        let tail = self.segs.back().map(|s| s.end);
        if tail.is_none_or(|t| start >= t) {
            // New data. Coalesce with the tail when sent in the same instant.
            if let Some(last) = self.segs.back_mut()
                && last.end == start
                && last.xmit == now
                && !last.retx
                && !last.sacked
                && !last.lost
            {
                last.end = end;
            } else {
                self.segs.push_back(Seg {
                    start,
                    end,
                    xmit: now,
                    retx: false,
                    sacked: false,
                    lost: false,
                });
            }
            return;
        }
        // A retransmission: mark every piece of [start, end) as sent again now.
        self.must_retransmit = false;
        let Some(mut i) = self.split_at(start) else {
            return;
        };
        self.split_at(end);
        while i < self.segs.len() && self.segs[i].start < end {
            let s = &mut self.segs[i];
            if s.lost {
                s.lost = false;
                self.lost -= s.len();
            }
            s.xmit = now;
            s.retx = true;
            i += 1;
        }
    }

    /// Mark the segment at index `i` lost.
    fn mark_lost(&mut self, i: usize) -> bool {
        let s = &mut self.segs[i];
        if s.lost || s.sacked {
            return false;
        }
        s.lost = true;
        self.lost += s.len();
        true
    }

    /// Mark the first unSACKed segment lost (fast retransmit / NewReno partial ACK).
    fn mark_head_lost(&mut self) -> bool {
        let Some(i) = self.segs.iter().position(|s| !s.sacked) else {
            return false;
        };
        // paf fix (issue 13, scenario 7b): `on_send` coalesces segments sent in one instant
        // (and a segmentation-offload send is one range), so the head range may hold many
        // segments; RFC 5681 §3.2 and RFC 6582 §3.2 retransmit only the first one. Marking
        // the whole range lost resent a whole initial window on the third duplicate ACK.
        let s = self.segs[i];
        if s.len() > self.mss {
            self.split_at(s.start + self.mss);
        }
        self.mark_lost(i)
    }

    /// RACK's update for a segment that has just been delivered (RFC 8985 §6.2 step 2).
    fn on_delivered(&mut self, s: Seg, now: Instant) {
        let rtt = now - s.xmit;
        if s.retx && self.min_rtt.is_some_and(|m| rtt < m) {
            // Likely the ACK of an earlier copy: no timing can be drawn from it.
            return;
        }
        if !s.retx {
            if self.ack_rtt.is_none_or(|(x, _)| s.xmit > x) {
                self.ack_rtt = Some((s.xmit, rtt));
            }
            self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
            if s.end < self.fack {
                self.reordering_seen = true;
            }
        }
        let newer = match self.rack_xmit {
            None => true,
            Some(x) => s.xmit > x || (s.xmit == x && s.end > self.rack_end),
        };
        if newer {
            self.rack_xmit = Some(s.xmit);
            self.rack_end = s.end;
            self.rack_rtt = rtt;
        }
    }

    /// The RACK reordering window: a quarter of the minimum RTT once reordering was seen or
    /// while no loss is being repaired, otherwise zero (RFC 8985 §6.2 step 4).
    fn reo_wnd(&self) -> Duration {
        let quarter = self.min_rtt.map_or(Duration::ZERO, |m| m / 4);
        if self.reordering_seen || self.episode == Episode::Open {
            quarter
        } else {
            Duration::ZERO
        }
    }

    /// RACK loss detection (RFC 8985 §6.2 step 5); returns whether anything became lost.
    fn detect_lost(&mut self, now: Instant) -> bool {
        self.reo_timer = None;
        let Some(rack_xmit) = self.rack_xmit else {
            return false;
        };
        let wait = self.rack_rtt + self.reo_wnd();
        let mut any = false;
        for i in 0..self.segs.len() {
            let s = self.segs[i];
            if s.sacked || s.lost {
                continue;
            }
            let before = s.xmit < rack_xmit || (s.xmit == rack_xmit && s.end <= self.rack_end);
            if !before {
                continue;
            }
            let deadline = s.xmit + wait;
            if now >= deadline {
                any |= self.mark_lost(i);
            } else {
                self.reo_timer = Some(self.reo_timer.map_or(deadline, |t| t.min(deadline)));
            }
        }
        any
    }

    /// Begin fast recovery if no episode is going on; returns whether it began.
    fn enter_fast(&mut self, snd_nxt: TcpSeqNumber) -> bool {
        if self.episode != Episode::Open {
            return false;
        }
        self.episode = Episode::Fast { point: snd_nxt };
        self.must_retransmit = true;
        self.tlp_timer = None;
        self.tlp_pending = false;
        true
    }

    /// Process an acceptable ACK (after SND.UNA moved to `ack.una`).
    pub fn on_ack(&mut self, ack: Ack, now: Instant) -> AckOutcome {
        let mut out = AckOutcome::default();
        self.mss = ack.mss.max(1);
        self.ack_rtt = None;
        let old_una = self.segs.front().map(|s| s.start);
        let advanced = old_una.is_some_and(|u| ack.una > u);

        // Cumulatively acknowledged segments leave the scoreboard.
        while let Some(&s) = self.segs.front() {
            if s.end <= ack.una {
                self.segs.pop_front();
                if s.sacked {
                    self.sacked -= s.len();
                } else {
                    if s.lost {
                        self.lost -= s.len();
                    }
                    self.on_delivered(s, now);
                }
            } else {
                if s.start < ack.una {
                    let gone = ack.una - s.start;
                    let head = Seg { end: ack.una, ..s };
                    let front = self.segs.front_mut().unwrap();
                    front.start = ack.una;
                    if s.sacked {
                        self.sacked -= gone;
                    } else {
                        if s.lost {
                            self.lost -= gone;
                        }
                        self.on_delivered(head, now);
                    }
                }
                break;
            }
        }

        // SACK blocks mark what the peer holds above SND.UNA.
        let mut new_sack = false;
        if self.sack_ok {
            for &(left, right) in ack.sack.iter().flatten() {
                let (left, right) = (TcpSeqNumber(left as i32), TcpSeqNumber(right as i32));
                if right <= left || right > ack.snd_nxt {
                    continue;
                }
                if right <= ack.una {
                    // D-SACK (RFC 2883): a duplicate arrived.
                    self.tlp_dsack = true;
                    continue;
                }
                let left = left.max(ack.una);
                if right > self.fack {
                    self.fack = right;
                }
                let Some(mut i) = self.split_at(left) else {
                    continue;
                };
                self.split_at(right);
                while i < self.segs.len() && self.segs[i].start < right {
                    let s = self.segs[i];
                    if !s.sacked {
                        self.segs[i].sacked = true;
                        self.segs[i].lost = false;
                        self.sacked += s.len();
                        if s.lost {
                            self.lost -= s.len();
                        }
                        self.on_delivered(s, now);
                        new_sack = true;
                    }
                    i += 1;
                }
            }
        }

        // Duplicate ACKs: limited transmit, and fast retransmit for a peer without SACK.
        if ack.duplicate {
            self.dup_acks = self.dup_acks.saturating_add(1);
        } else {
            self.dup_acks = 0;
        }
        // paf fix (issue 13, scenario 7b): a peer without SACK tells what left the network
        // only by duplicate ACKs. Without counting them out of `pipe`, a controller that
        // cut cwnd below the outstanding data on the third one (Reno: cwnd = FlightSize/2 +
        // 3 MSS) left no room for the fast retransmit itself, and recovery waited for the
        // RTO. Each duplicate ACK counts one MSS as delivered (RFC 5681's window inflation,
        // Linux's `tcp_add_reno_sack`); an advancing ACK takes back what it acknowledged
        // beyond one segment (`tcp_remove_reno_sacks`).
        if !self.sack_ok {
            if ack.duplicate {
                let outstanding = match (self.segs.front(), self.segs.back()) {
                    (Some(first), Some(last)) => last.end - first.start,
                    _ => 0,
                };
                let room = outstanding.saturating_sub(self.lost + self.mss);
                self.dup_sacked = (self.dup_sacked + self.mss).min(room);
            } else if advanced {
                let acked = ack.una - old_una.unwrap_or(ack.una);
                self.dup_sacked = self
                    .dup_sacked
                    .saturating_sub(acked.saturating_sub(self.mss));
            }
        }

        // The end of a probe's round: did it repair a loss? (RFC 8985 §7.4.2, as Linux's
        // `tcp_process_tlp_ack`.) A probe of new data, or one a D-SACK shows arrived twice,
        // repaired nothing. An ACK beyond the probe's end that is no D-SACK means the probe
        // filled a hole: one window reduction, for an episode already over. An ACK of exactly
        // the probe's end may be the original's, late (a busy sender reads ACKs late): wait
        // for the next one; a duplicate ACK then says both copies arrived.
        if let Some((high, was_retx)) = self.tlp_high {
            if !was_retx && ack.una >= high || self.tlp_dsack {
                self.tlp_high = None;
            } else if ack.una > high {
                self.tlp_high = None;
                if self.episode == Episode::Open {
                    out.entered_fast = true;
                }
            } else if ack.una == high && ack.duplicate {
                self.tlp_high = None;
            }
        }

        let mut lost = false;
        if self.sack_ok {
            if new_sack || advanced {
                lost = self.detect_lost(now);
            }
        } else if self.dup_acks == DUP_THRESH {
            lost = self.mark_head_lost();
        }

        // NewReno (RFC 6582 §3.2 step 3): a partial ACK retransmits the next hole.
        if let Episode::Fast { point } = self.episode
            && advanced
            && ack.una < point
            && !self.sack_ok
            && self.mark_head_lost()
        {
            lost = true;
            self.must_retransmit = true;
        }

        // The episode ends when SND.UNA passes the recovery point.
        match self.episode {
            Episode::Fast { point } | Episode::Timeout { point } if ack.una >= point => {
                self.episode = Episode::Open;
                self.reordering_seen = false;
                self.dup_sacked = 0;
            }
            _ => {}
        }

        if lost && self.enter_fast(ack.snd_nxt) {
            out.entered_fast = true;
        }
        out.may_grow = !self.in_fast_recovery();
        out.rtt = self.ack_rtt.take().map(|(_, rtt)| rtt);
        if self.segs.is_empty() {
            self.dup_sacked = 0;
            self.tlp_timer = None;
            self.tlp_pending = false;
            self.reo_timer = None;
        }
        out
    }

    /// Run the timers due at `now`: the reordering timer may find losses (then returns
    /// whether a fast-recovery episode began), the probe timer makes a probe due.
    pub fn on_timers(&mut self, now: Instant, snd_nxt: TcpSeqNumber) -> bool {
        let mut entered = false;
        if self.reo_timer.is_some_and(|t| now >= t) && self.detect_lost(now) {
            entered = self.enter_fast(snd_nxt);
        }
        if self.tlp_timer.is_some_and(|t| now >= t) {
            self.tlp_timer = None;
            if self.episode == Episode::Open && !self.segs.is_empty() {
                self.tlp_pending = true;
            }
        }
        entered
    }

    /// A probe went out; it ends at `snd_nxt` and was a retransmission or new data.
    pub fn on_probe_sent(&mut self, snd_nxt: TcpSeqNumber, retransmission: bool) {
        self.tlp_pending = false;
        self.tlp_high = Some((snd_nxt, retransmission));
        self.tlp_dsack = false;
    }

    /// A probe could not be sent (nothing in flight or no room): forget it.
    pub fn cancel_probe(&mut self) {
        self.tlp_pending = false;
    }

    /// Arm the probe timeout after sending or an ACK (RFC 8985 §7.2), for a SACK peer with
    /// data in flight and no loss being repaired; never later than the RTO.
    pub fn arm_probe(
        &mut self,
        now: Instant,
        srtt: Option<Duration>,
        min_rto: Duration,
        rto_at: Option<Instant>,
        mss: usize,
    ) {
        if !self.sack_ok
            || self.episode != Episode::Open
            || self.tlp_high.is_some()
            || self.tlp_pending
            || self.segs.is_empty()
        {
            self.tlp_timer = None;
            return;
        }
        let in_flight = match (self.segs.front(), self.segs.back()) {
            (Some(first), Some(last)) => last.end - first.start,
            _ => 0,
        };
        let pto = match srtt {
            // One segment in flight: allow for the peer's delayed ACK, as Linux does.
            Some(srtt) if in_flight <= mss => srtt * 2 + min_rto,
            Some(srtt) => (srtt * 2 + TLP_SLACK).max(TLP_MIN),
            None => TLP_NO_RTT,
        };
        let mut at = now + pto;
        if let Some(rto_at) = rto_at
            && rto_at < at
        {
            at = rto_at;
        }
        self.tlp_timer = Some(at);
    }

    /// The retransmission timer expired: everything not SACKed is lost (RFC 6675 §5.1,
    /// RFC 8985 §6.3), and a timeout episode lasts until `snd_nxt` is acknowledged.
    ///
    /// Returns false when the scoreboard is empty (the handshake, which the caller repairs by
    /// sending its SYN again).
    pub fn on_rto(&mut self, snd_nxt: TcpSeqNumber) -> bool {
        for i in 0..self.segs.len() {
            self.mark_lost(i);
        }
        if self.lost == 0
            && let Some(head) = self.segs.front_mut()
        {
            // Everything outstanding is SACKed, yet SND.UNA did not move for a whole RTO:
            // the peer may have reneged (RFC 2018 §8), so send the head again.
            head.sacked = false;
            let len = head.len();
            self.sacked -= len;
            self.mark_lost(0);
        }
        self.episode = Episode::Timeout { point: snd_nxt };
        self.dup_acks = 0;
        self.dup_sacked = 0;
        self.tlp_timer = None;
        self.tlp_pending = false;
        self.tlp_high = None;
        self.reo_timer = None;
        !self.segs.is_empty()
    }

    /// Where the ranges deemed lost and not yet retransmitted start (tests).
    #[cfg(test)]
    pub fn lost_starts(&self) -> alloc::vec::Vec<TcpSeqNumber> {
        self.segs
            .iter()
            .filter(|s| s.lost)
            .map(|s| s.start)
            .collect()
    }

    /// The duplicate-ACK count (tests).
    #[cfg(test)]
    pub fn dup_acks(&self) -> u8 {
        self.dup_acks
    }

    /// Set the duplicate-ACK count (tests).
    #[cfg(test)]
    pub fn set_dup_acks(&mut self, n: u8) {
        self.dup_acks = n;
    }

    /// Whether the scoreboard is empty (nothing outstanding recorded).
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.segs.is_empty()
    }

    /// Check the byte counters against the segments (tests).
    #[cfg(test)]
    fn check(&self) {
        let sacked: usize = self.segs.iter().filter(|s| s.sacked).map(Seg::len).sum();
        let lost: usize = self.segs.iter().filter(|s| s.lost).map(Seg::len).sum();
        assert_eq!((sacked, lost), (self.sacked, self.lost));
        for w in self.segs.iter().collect::<alloc::vec::Vec<_>>().windows(2) {
            assert_eq!(w[0].end, w[1].start, "segments are contiguous");
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    const MSS: usize = 1000;

    fn seq(n: usize) -> TcpSeqNumber {
        TcpSeqNumber(1000) + n
    }

    fn at(ms: i64) -> Instant {
        Instant::from_millis(ms)
    }

    /// A scoreboard with `n` MSS segments sent 1 ms apart from t=0.
    fn sent(n: usize, sack: bool) -> Recovery {
        let mut r = Recovery::new(sack, MSS);
        for i in 0..n {
            r.on_send(seq(i * MSS), seq((i + 1) * MSS), at(i as i64));
        }
        r.check();
        r
    }

    fn ack(una: usize, snd_nxt: usize, sack: &[(usize, usize)], dup: bool) -> Ack<'static> {
        let mut blocks = [None; 3];
        for (b, &(l, r)) in blocks.iter_mut().zip(sack) {
            *b = Some((seq(l).0 as u32, seq(r).0 as u32));
        }
        Ack {
            una: seq(una),
            snd_nxt: seq(snd_nxt),
            sack: alloc::boxed::Box::leak(alloc::boxed::Box::new(blocks)),
            duplicate: dup,
            mss: MSS,
        }
    }

    #[test]
    fn coalesces_sends_of_one_instant() {
        let mut r = Recovery::default();
        r.on_send(seq(0), seq(MSS), at(5));
        r.on_send(seq(MSS), seq(2 * MSS), at(5));
        r.on_send(seq(2 * MSS), seq(3 * MSS), at(6));
        assert_eq!(r.segs.len(), 2);
        r.check();
    }

    #[test]
    fn sack_above_a_hole_marks_it_lost_after_the_rack_window() {
        let n = 10;
        let mut r = sent(n, true);
        let nxt = n * MSS;
        // Segment 1 (bytes 1000..2000) is lost; 0 is acked at t=20, then SACKs for 2.. arrive.
        let o = r.on_ack(ack(MSS, nxt, &[], false), at(20));
        assert!(!o.entered_fast);
        let o = r.on_ack(ack(MSS, nxt, &[(2 * MSS, 3 * MSS)], true), at(22));
        r.check();
        // RACK RTT is 20 ms (segment 2 sent at 2 ms, SACKed at 22): segment 1, sent at 1 ms,
        // is lost from 1 + 20 + reo_wnd (min_rtt/4 = 5) = 26 ms.
        assert!(!o.entered_fast);
        assert_eq!(r.poll_at(), Some(at(26)));
        assert!(r.on_timers(at(26), seq(nxt)));
        assert_eq!(r.next_retransmit(MSS), Some((seq(MSS), MSS)));
        assert_eq!(r.pipe(seq(MSS), seq(nxt)), (n - 3) * MSS);
        r.on_send(seq(MSS), seq(2 * MSS), at(27));
        assert!(!r.has_lost());
        r.check();
        // The repair is acknowledged with everything up to the SACKed segment.
        let o = r.on_ack(ack(3 * MSS, nxt, &[], false), at(47));
        assert!(o.may_grow || r.in_fast_recovery());
        r.check();
        assert_eq!(r.segs.front().unwrap().start, seq(3 * MSS));
    }

    #[test]
    fn sack_blocks_choose_what_is_retransmitted() {
        let n = 10;
        let mut r = sent(n, true);
        let nxt = n * MSS;
        // Holes at segments 1 and 5; the peer SACKs 2..5 and 6..10.
        let o = r.on_ack(
            ack(MSS, nxt, &[(6 * MSS, 10 * MSS), (2 * MSS, 5 * MSS)], true),
            at(40),
        );
        assert!(o.entered_fast);
        r.check();
        assert_eq!(r.next_retransmit(4 * MSS), Some((seq(MSS), MSS)));
        r.on_send(seq(MSS), seq(2 * MSS), at(41));
        // Segment 5 went out 4 ms after segment 1: RACK waits that much longer (RACK RTT
        // 31 ms from segment 9, plus min_rtt/4) before it is deemed lost.
        assert_eq!(r.next_retransmit(4 * MSS), None);
        assert!(!r.on_timers(at(43), seq(nxt)), "already in recovery");
        assert_eq!(r.next_retransmit(4 * MSS), None);
        r.on_timers(at(44), seq(nxt));
        assert_eq!(r.next_retransmit(4 * MSS), Some((seq(5 * MSS), MSS)));
        r.on_send(seq(5 * MSS), seq(6 * MSS), at(41));
        assert_eq!(r.next_retransmit(4 * MSS), None);
        r.check();
    }

    #[test]
    fn three_duplicate_acks_without_sack_and_newreno_partial_acks() {
        let n = 10;
        let mut r = sent(n, false);
        let nxt = n * MSS;
        r.on_ack(ack(MSS, nxt, &[], false), at(20));
        for i in 0..2 {
            let o = r.on_ack(ack(MSS, nxt, &[], true), at(21 + i));
            assert!(!o.entered_fast);
            // Limited transmit (RFC 3042): each duplicate ACK takes one MSS out of pipe.
            assert_eq!(r.pipe(seq(MSS), seq(nxt)), (n - 1 - (i as usize + 1)) * MSS);
        }
        let o = r.on_ack(ack(MSS, nxt, &[], true), at(23));
        assert!(o.entered_fast && !o.may_grow);
        assert_eq!(r.next_retransmit(MSS), Some((seq(MSS), MSS)));
        r.on_send(seq(MSS), seq(2 * MSS), at(23));
        // A partial ACK: segment 4 was lost too.
        let o = r.on_ack(ack(4 * MSS, nxt, &[], false), at(43));
        assert!(!o.entered_fast && !o.may_grow);
        assert_eq!(r.next_retransmit(MSS), Some((seq(4 * MSS), MSS)));
        r.on_send(seq(4 * MSS), seq(5 * MSS), at(43));
        // The full ACK ends the episode.
        let o = r.on_ack(ack(nxt, nxt, &[], false), at(63));
        assert!(o.may_grow && !r.in_fast_recovery());
        assert!(r.is_empty());
        r.check();
    }

    #[test]
    fn duplicate_acks_mark_one_segment_of_a_coalesced_head_lost() {
        // paf fix (issue 13): ten segments sent in one instant are one range on the
        // scoreboard; the third duplicate ACK (no SACK) deems only the first segment lost,
        // and a NewReno partial ACK only the next one.
        let mut r = Recovery::new(false, MSS);
        for i in 0..10 {
            r.on_send(seq(i * MSS), seq((i + 1) * MSS), at(0));
        }
        let nxt = 10 * MSS;
        r.on_ack(ack(MSS, nxt, &[], false), at(20));
        for i in 0..3 {
            r.on_ack(ack(MSS, nxt, &[], true), at(21 + i));
        }
        assert_eq!(r.next_retransmit(10 * MSS), Some((seq(MSS), MSS)));
        // Nine outstanding, one lost, three reported delivered by the duplicate ACKs.
        assert_eq!(r.pipe(seq(MSS), seq(nxt)), 5 * MSS);
        r.on_send(seq(MSS), seq(2 * MSS), at(23));
        r.on_ack(ack(4 * MSS, nxt, &[], false), at(43));
        assert_eq!(r.next_retransmit(10 * MSS), Some((seq(4 * MSS), MSS)));
        // The partial ACK covered three segments: two of the three counted delivered.
        assert_eq!(r.pipe(seq(4 * MSS), seq(nxt)), 6 * MSS - MSS - MSS);
        r.check();
    }

    #[test]
    fn rto_marks_all_but_sacked_lost() {
        let n = 6;
        let mut r = sent(n, true);
        let nxt = n * MSS;
        r.on_ack(ack(0, nxt, &[(3 * MSS, 4 * MSS)], true), at(10));
        r.on_rto(seq(nxt));
        r.check();
        assert_eq!(r.pipe(seq(0), seq(nxt)), 0);
        assert_eq!(r.next_retransmit(10 * MSS), Some((seq(0), 3 * MSS)));
        r.on_send(seq(0), seq(MSS), at(300));
        assert_eq!(r.pipe(seq(0), seq(nxt)), MSS);
        r.check();
    }

    #[test]
    fn tail_probe_is_armed_and_a_repaired_tail_reduces_the_window_once() {
        let n = 4;
        let mut r = sent(n, true);
        let nxt = n * MSS;
        let srtt = Some(Duration::from_millis(20));
        r.arm_probe(at(3), srtt, Duration::from_millis(200), Some(at(203)), MSS);
        assert_eq!(r.poll_at(), Some(at(45)));
        r.on_timers(at(45), seq(nxt));
        assert!(r.probe_due());
        let (s, len) = r.probe_retransmit(MSS).unwrap();
        assert_eq!((s, len), (seq(3 * MSS), MSS));
        r.on_send(s, s + len, at(45));
        r.on_probe_sent(seq(nxt), true);
        // An ACK of exactly the probe's end may be the original's, late: no verdict yet.
        let o = r.on_ack(ack(nxt, nxt, &[], false), at(65));
        assert!(!o.entered_fast);
        // New data, then an ACK beyond the probe's end with no D-SACK: the probe repaired a
        // loss, a congestion signal (once).
        r.on_send(seq(nxt), seq(nxt + MSS), at(66));
        let o = r.on_ack(ack(nxt + MSS, nxt + MSS, &[], false), at(86));
        assert!(
            o.entered_fast,
            "a repaired tail loss is a congestion signal"
        );
        assert!(r.is_empty() && !r.in_fast_recovery());
    }

    #[test]
    fn a_probe_both_copies_of_which_arrived_is_no_loss() {
        let n = 4;
        let mut r = sent(n, true);
        let nxt = n * MSS;
        let srtt = Some(Duration::from_millis(20));
        r.arm_probe(at(3), srtt, Duration::from_millis(200), None, MSS);
        r.on_timers(at(45), seq(nxt));
        let (s, len) = r.probe_retransmit(MSS).unwrap();
        r.on_send(s, s + len, at(45));
        r.on_probe_sent(seq(nxt), true);
        r.on_send(seq(nxt), seq(nxt + MSS), at(46));
        // The original's ACK, late, then the duplicate ACK the probe's copy draws: no
        // window reduction.
        assert!(
            !r.on_ack(ack(nxt, nxt + MSS, &[], false), at(50))
                .entered_fast
        );
        assert!(
            !r.on_ack(ack(nxt, nxt + MSS, &[], true), at(51))
                .entered_fast
        );
        assert!(
            !r.on_ack(ack(nxt + MSS, nxt + MSS, &[], false), at(70))
                .entered_fast
        );
    }
}
