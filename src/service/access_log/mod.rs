//! Access logs: one line per exchange, and one per answer to a peer fault, in a chosen
//! [`Format`], buffered in memory and handed to a [`Sink`] in batches.
//!
//! Contract:
//! - Lines are appended to the service's buffer as exchanges end; nothing is written per line.
//!   The buffer goes to the sink when it passes [`AccessLog::flush_size`], at the latest
//!   [`AccessLog::flush_interval`] after its first line (a timer of the service on the loop:
//!   the time is the loop pass's `now`, never read here), and when the service stops.
//! - A sink never blocks the loop: [`Sink::offer`] takes a batch or gives it back at once.
//!   [`FileSink`] hands batches to a writer thread through a bounded queue. While the sink
//!   refuses, lines accumulate up to [`AccessLog::max_buffer`]; past it they are dropped and
//!   counted ([`Stats::access_log_dropped`](super::Stats::access_log_dropped),
//!   `paf_access_log_dropped_total`), and so are lines a sink fails to write.
//! - The time of day is cached per wall-clock second, like the `Date` header.
//!
//! A service given no access log ([`Service::access_log`](super::Service::access_log)) keeps
//! the library's old behaviour: a `paf`-format line per exchange through the `log` crate at
//! `info`, target `paf::access` (unbuffered; fine for tests and low rates).

mod file;
mod format;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

pub use file::FileSink;
pub use format::Format;
use format::TimeCache;
pub(crate) use format::{address, Entry, Note};

/// Default [`AccessLog::flush_size`].
pub const FLUSH_SIZE: usize = 64 * 1024;
/// Default [`AccessLog::flush_interval`].
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Default [`AccessLog::max_buffer`].
pub const MAX_BUFFER: usize = 1024 * 1024;

/// Whole lines on their way to a [`Sink`], with the count of lines they hold.
pub struct Batch {
    bytes: Vec<u8>,
    lines: u64,
    lost: Arc<AtomicU64>,
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("bytes", &self.bytes.len())
            .field("lines", &self.lines)
            .finish()
    }
}

impl Batch {
    /// The lines, each ending with `\n`.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// How many lines.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// The batch could not be written: its lines are counted as dropped by the service that
    /// made it.
    pub fn lose(self) {
        self.lost.fetch_add(self.lines, Ordering::Relaxed);
    }
}

/// Where a service's access-log lines go.
pub trait Sink {
    /// Takes a batch of whole lines without blocking, or gives it back when it cannot take it
    /// now (the service keeps it and offers it again later, with more lines).
    ///
    /// # Errors
    /// The batch, untouched, when the sink is busy.
    fn offer(&mut self, batch: Batch) -> Result<(), Batch>;

    /// The service is stopping: takes its last batch, waiting for room if it must. A sink that
    /// cannot take it at all calls [`Batch::lose`].
    fn offer_final(&mut self, batch: Batch) {
        if let Err(b) = self.offer(batch) {
            b.lose();
        }
    }
}

/// A sink that keeps everything in memory (tests; examples). Clones share the same bytes.
#[derive(Clone, Debug, Default)]
pub struct MemorySink(Arc<Mutex<Vec<u8>>>);

impl MemorySink {
    /// An empty sink.
    pub fn new() -> MemorySink {
        MemorySink::default()
    }

    /// Everything written so far.
    pub fn contents(&self) -> Vec<u8> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Sink for MemorySink {
    fn offer(&mut self, batch: Batch) -> Result<(), Batch> {
        let mut v = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        v.extend_from_slice(&batch.bytes);
        Ok(())
    }
}

/// A service's access log: the line format, the sink, and when to flush. Give it to
/// [`Service::access_log`](super::Service::access_log).
pub struct AccessLog {
    format: Format,
    sink: Box<dyn Sink>,
    flush_size: usize,
    flush_interval: Duration,
    max_buffer: usize,
}

impl fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessLog")
            .field("format", &self.format)
            .field("flush_size", &self.flush_size)
            .field("flush_interval", &self.flush_interval)
            .field("max_buffer", &self.max_buffer)
            .finish()
    }
}

impl AccessLog {
    /// Lines in `format` to `sink`, flushed at [`FLUSH_SIZE`] or [`FLUSH_INTERVAL`], buffering
    /// at most [`MAX_BUFFER`].
    pub fn new(format: Format, sink: impl Sink + 'static) -> AccessLog {
        AccessLog {
            format,
            sink: Box::new(sink),
            flush_size: FLUSH_SIZE,
            flush_interval: FLUSH_INTERVAL,
            max_buffer: MAX_BUFFER,
        }
    }

    /// Hands the buffer to the sink once it holds this many bytes.
    pub fn flush_size(mut self, bytes: usize) -> AccessLog {
        self.flush_size = bytes.max(1);
        self
    }

    /// Hands the buffer to the sink at the latest this long after its first line.
    pub fn flush_interval(mut self, interval: Duration) -> AccessLog {
        self.flush_interval = interval;
        self
    }

    /// Most bytes buffered while the sink refuses; further lines are dropped and counted.
    pub fn max_buffer(mut self, bytes: usize) -> AccessLog {
        self.max_buffer = bytes;
        self
    }
}

/// The line of `e` through the `log` crate (`info`, target `paf::access`), in the `paf` format
/// without its time (the logger adds its own): services given no access log.
pub(crate) fn log_line(e: &Entry<'_>) {
    if !log::log_enabled!(target: "paf::access", log::Level::Info) {
        return;
    }
    let mut line = Vec::new();
    format::write(Format::Paf, &mut line, &TimeCache::default(), e);
    // The time and its space, and the newline.
    let text = String::from_utf8_lossy(&line[21..line.len() - 1]);
    log::info!(target: "paf::access", "{text}");
}

/// The service's side of an access log: the buffer and its flush timer.
pub(crate) struct Recorder {
    log: AccessLog,
    buf: Vec<u8>,
    lines: u64,
    time: TimeCache,
    /// When the buffer must go to the sink (its first line's time plus the interval).
    deadline: Option<Instant>,
    dropped: Arc<AtomicU64>,
}

impl Recorder {
    /// A recorder for `log` that counts dropped lines in `dropped`.
    pub(crate) fn new(log: AccessLog, dropped: Arc<AtomicU64>) -> Recorder {
        Recorder {
            buf: Vec::new(),
            lines: 0,
            time: TimeCache::default(),
            deadline: None,
            dropped,
            log,
        }
    }

    /// Appends the line of `e` at `now` (`wall`: the same instant on the wall clock).
    pub(crate) fn record(&mut self, now: Instant, wall: SystemTime, e: &Entry<'_>) {
        if self.buf.len() >= self.log.max_buffer {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.buf.capacity() == 0 {
            self.buf
                .reserve(self.log.flush_size.min(self.log.max_buffer) + 1024);
        }
        self.time.update(wall);
        format::write(self.log.format, &mut self.buf, &self.time, e);
        self.lines += 1;
        self.deadline.get_or_insert(now + self.log.flush_interval);
        if self.buf.len() >= self.log.flush_size {
            self.flush(now);
        }
    }

    /// When [`Recorder::handle_timeout`] has work.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// Flushes if the interval is up at `now`.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.deadline.is_some_and(|d| d <= now) {
            self.flush(now);
        }
    }

    fn take(&mut self) -> Batch {
        let batch = Batch {
            bytes: std::mem::take(&mut self.buf),
            lines: self.lines,
            lost: self.dropped.clone(),
        };
        self.lines = 0;
        self.deadline = None;
        batch
    }

    /// Offers the buffer to the sink; if refused, keeps it and tries again an interval later.
    fn flush(&mut self, now: Instant) {
        if self.buf.is_empty() {
            self.deadline = None;
            return;
        }
        let due = self.deadline;
        let batch = self.take();
        if let Err(batch) = self.log.sink.offer(batch) {
            self.buf = batch.bytes;
            self.lines = batch.lines;
            // Refused at the size mark: the interval's deadline stands; refused at the
            // deadline: the next try is an interval later.
            self.deadline = Some(match due {
                Some(d) if d > now => d,
                _ => now + self.log.flush_interval,
            });
        }
    }

    /// The service is stopping (or going away): the last lines go, even if the sink must
    /// wait for room.
    pub(crate) fn finish(&mut self) {
        if !self.buf.is_empty() {
            let batch = self.take();
            self.log.sink.offer_final(batch);
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that refuses while `busy`, and keeps what it takes.
    #[derive(Clone, Default)]
    struct Gate {
        busy: Arc<std::sync::atomic::AtomicBool>,
        got: MemorySink,
        batches: Arc<AtomicU64>,
    }

    impl Sink for Gate {
        fn offer(&mut self, batch: Batch) -> Result<(), Batch> {
            if self.busy.load(Ordering::Relaxed) {
                return Err(batch);
            }
            self.batches.fetch_add(1, Ordering::Relaxed);
            self.got.offer(batch)
        }
    }

    fn entry(status: u16) -> Entry<'static> {
        Entry {
            peer: "198.18.0.1:1000".parse().unwrap(),
            request: None,
            status,
            body_bytes: 0,
            duration: None,
            note: Note::None,
            error: None,
        }
    }

    fn lines(s: &MemorySink) -> usize {
        s.contents().iter().filter(|&&b| b == b'\n').count()
    }

    #[test]
    fn lines_wait_for_the_interval_or_the_size_then_go_in_one_batch() {
        let t0 = net::clock::origin();
        let wall = SystemTime::UNIX_EPOCH;
        let gate = Gate::default();
        let dropped = Arc::new(AtomicU64::new(0));
        let log = AccessLog::new(Format::Combined, gate.clone()).flush_size(1000);
        let mut r = Recorder::new(log, dropped.clone());
        assert_eq!(r.poll_timeout(), None);
        r.record(t0, wall, &entry(200));
        r.record(t0 + Duration::from_millis(300), wall, &entry(201));
        // The deadline is the first line's plus the interval; nothing is out before it.
        assert_eq!(r.poll_timeout(), Some(t0 + FLUSH_INTERVAL));
        r.handle_timeout(t0 + Duration::from_millis(999));
        assert_eq!(lines(&gate.got), 0);
        r.handle_timeout(t0 + FLUSH_INTERVAL);
        assert_eq!(lines(&gate.got), 2);
        assert_eq!(gate.batches.load(Ordering::Relaxed), 1);
        assert_eq!(r.poll_timeout(), None);
        // Size: a batch as soon as the buffer passes flush_size, no timer needed.
        let line = {
            let mut v = Vec::new();
            format::write(Format::Combined, &mut v, &TimeCache::default(), &entry(200));
            v.len()
        };
        let n = 1000 / line + 1;
        for _ in 0..n {
            r.record(t0 + Duration::from_secs(5), wall, &entry(200));
        }
        assert_eq!(lines(&gate.got), 2 + n);
        assert_eq!(gate.batches.load(Ordering::Relaxed), 2);
        assert_eq!(dropped.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_busy_sink_bounds_the_buffer_and_dropped_lines_are_counted() {
        let t0 = net::clock::origin();
        let wall = SystemTime::UNIX_EPOCH;
        let gate = Gate::default();
        gate.busy.store(true, Ordering::Relaxed);
        let dropped = Arc::new(AtomicU64::new(0));
        let log = AccessLog::new(Format::Paf, gate.clone())
            .flush_size(200)
            .max_buffer(1000);
        let mut r = Recorder::new(log, dropped.clone());
        for i in 0..100 {
            r.record(t0 + Duration::from_millis(i), wall, &entry(200));
        }
        assert!(r.buf.len() < 1000 + 200, "bounded: {}", r.buf.len());
        let kept = r.lines;
        assert!(kept > 0 && kept < 100);
        assert_eq!(dropped.load(Ordering::Relaxed), 100 - kept);
        // Refused at the interval: tried again an interval later, and then it goes.
        r.handle_timeout(t0 + Duration::from_secs(1));
        assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(2)));
        gate.busy.store(false, Ordering::Relaxed);
        r.handle_timeout(t0 + Duration::from_secs(2));
        assert_eq!(lines(&gate.got) as u64, kept);
        // Lines a sink loses are counted too.
        r.record(t0 + Duration::from_secs(3), wall, &entry(200));
        gate.busy.store(true, Ordering::Relaxed);
        drop(r);
        assert_eq!(dropped.load(Ordering::Relaxed), 100 - kept + 1);
    }

    #[test]
    fn stopping_flushes_what_is_left() {
        let t0 = net::clock::origin();
        let sink = MemorySink::new();
        let mut r = Recorder::new(
            AccessLog::new(Format::Json, sink.clone()),
            Arc::new(AtomicU64::new(0)),
        );
        r.record(t0, SystemTime::UNIX_EPOCH, &entry(404));
        assert_eq!(lines(&sink), 0);
        r.finish();
        assert_eq!(lines(&sink), 1);
        assert_eq!(r.poll_timeout(), None);
    }
}
