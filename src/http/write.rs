//! Response head serialization and the `Date` header value.
//!
//! The codec owns the framing and persistence headers (`Content-Length`, `Transfer-Encoding`,
//! `Connection`): whatever the handler put there is replaced by what the chosen
//! [`ResponseBody`](super::ResponseBody) and the connection state require, except that a HEAD or
//! 304 response without a body keeps the handler's `Content-Length` (it describes the
//! representation a GET would get). `Date` and `Server` are added unless the handler set them.
//! Heads are written straight into the output buffer without intermediate strings.

use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{CONNECTION, CONTENT_LENGTH, DATE, SERVER, TRANSFER_ENCODING};

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the `Date` header value.
///
/// The codec never reads the clock: the owner formats the wall-clock time (cheaply, with
/// [`DateCache`]) and hands it to each connection with
/// [`ServerConn::set_date`](super::ServerConn::set_date).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HttpDate([u8; 29]);

impl HttpDate {
    /// Formats `time` (truncated to the second; times before 1970 format as 1970).
    pub fn from_system_time(time: SystemTime) -> Self {
        let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Self::from_unix_secs(secs)
    }

    /// Formats seconds since the Unix epoch.
    pub fn from_unix_secs(secs: u64) -> Self {
        const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
        const MONTHS: [&[u8; 3]; 12] = [
            b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
            b"Dec",
        ];
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let (year, month, day) = civil_from_days(days);
        let mut b = *b"Thu, 01 Jan 1970 00:00:00 GMT";
        b[..3].copy_from_slice(DAYS[(days % 7) as usize]);
        two(&mut b[5..7], day);
        b[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
        two(&mut b[12..14], year / 100 % 100);
        two(&mut b[14..16], year % 100);
        two(&mut b[17..19], rem / 3600);
        two(&mut b[20..22], rem / 60 % 60);
        two(&mut b[23..25], rem % 60);
        HttpDate(b)
    }

    /// The formatted date.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("Thu, 01 Jan 1970 00:00:00 GMT")
    }

    fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for HttpDate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn two(dst: &mut [u8], n: u64) {
    dst[0] = b'0' + (n / 10 % 10) as u8;
    dst[1] = b'0' + (n % 10) as u8;
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31); Howard Hinnant's algorithm.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Re-formats the date only when the second changes; one per event loop.
#[derive(Clone, Debug)]
pub struct DateCache {
    secs: u64,
    date: HttpDate,
}

impl DateCache {
    /// A cache holding the date of `now`.
    pub fn new(now: SystemTime) -> Self {
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        DateCache {
            secs,
            date: HttpDate::from_unix_secs(secs),
        }
    }

    /// The date of `now`, formatting it only if the second changed since the last call.
    pub fn update(&mut self, now: SystemTime) -> HttpDate {
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if secs != self.secs {
            self.secs = secs;
            self.date = HttpDate::from_unix_secs(secs);
        }
        self.date
    }
}

/// How the body of a response is framed on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// No framing header; the body ends when the connection closes (HTTP/1.0 streaming).
    Close,
    /// No framing header (204).
    None,
    /// Keep the handler's `Content-Length`, if any (HEAD or 304 without a body).
    Handler,
}

/// The `Connection` header the codec writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Persist {
    /// None needed (HTTP/1.1 keep-alive).
    Default,
    /// `Connection: keep-alive` (HTTP/1.0 keep-alive).
    KeepAlive,
    /// `Connection: close`.
    Close,
    /// `Connection: upgrade` (a `101 Switching Protocols`).
    Upgrade,
    /// No `Connection` field at all (a `2xx` to CONNECT: the connection is a tunnel now).
    None,
}

/// Appends a decimal number.
pub(crate) fn write_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Appends `HTTP/1.1 100 Continue`.
pub(crate) const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Appends a response head. HTTP/1.1 is sent to 1.0 clients too (RFC 9110 §2.5).
pub(crate) fn write_head(
    out: &mut Vec<u8>,
    head: &http::Response<()>,
    framing: Framing,
    persist: Persist,
    date: Option<&HttpDate>,
    server: Option<&str>,
) {
    let status = head.status();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let headers = head.headers();
    for (name, value) in headers {
        let owned = name == CONNECTION
            || name == TRANSFER_ENCODING
            || (name == CONTENT_LENGTH && framing != Framing::Handler);
        if !owned {
            header(out, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    match framing {
        Framing::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            write_u64(out, n);
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::Close | Framing::None | Framing::Handler => {}
    }
    match persist {
        Persist::Default | Persist::None => {}
        Persist::KeepAlive => out.extend_from_slice(b"connection: keep-alive\r\n"),
        Persist::Close => out.extend_from_slice(b"connection: close\r\n"),
        Persist::Upgrade => out.extend_from_slice(b"connection: upgrade\r\n"),
    }
    if let Some(date) = date.filter(|_| !super::head::has(headers, &DATE)) {
        header(out, b"date", date.as_bytes());
    }
    if let Some(server) = server.filter(|_| !super::head::has(headers, &SERVER)) {
        header(out, b"server", server.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

fn header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates() {
        let table = [
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
            (1_700_000_000, "Tue, 14 Nov 2023 22:13:20 GMT"),
            (4_102_444_799, "Thu, 31 Dec 2099 23:59:59 GMT"),
        ];
        for (secs, want) in table {
            assert_eq!(HttpDate::from_unix_secs(secs).as_str(), want);
        }
        let t = UNIX_EPOCH + Duration::from_millis(784_111_777_900);
        let mut cache = DateCache::new(UNIX_EPOCH);
        assert_eq!(cache.update(t).as_str(), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(
            format!("{:?}", HttpDate::from_system_time(t)),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
    }

    fn head(status: u16, headers: &[(&str, &str)], framing: Framing, persist: Persist) -> String {
        let mut b = http::Response::builder().status(status);
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        let mut out = Vec::new();
        let date = HttpDate::from_unix_secs(0);
        write_head(
            &mut out,
            &b.body(()).unwrap(),
            framing,
            persist,
            Some(&date),
            Some("paf"),
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn heads() {
        const D: &str = "date: Thu, 01 Jan 1970 00:00:00 GMT\r\nserver: paf\r\n\r\n";
        let cases = [
            (
                head(200, &[("X-A", "1")], Framing::Length(5), Persist::Default),
                format!("HTTP/1.1 200 OK\r\nx-a: 1\r\ncontent-length: 5\r\n{D}"),
            ),
            (
                head(200, &[("content-length", "9"), ("connection", "x")], Framing::Chunked, Persist::Close),
                format!("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n{D}"),
            ),
            (
                head(304, &[("content-length", "9")], Framing::Handler, Persist::KeepAlive),
                format!("HTTP/1.1 304 Not Modified\r\ncontent-length: 9\r\nconnection: keep-alive\r\n{D}"),
            ),
            (
                head(204, &[("transfer-encoding", "chunked")], Framing::None, Persist::Default),
                format!("HTTP/1.1 204 No Content\r\n{D}"),
            ),
            (
                head(599, &[("date", "x"), ("server", "y")], Framing::Close, Persist::Close),
                "HTTP/1.1 599 \r\ndate: x\r\nserver: y\r\nconnection: close\r\n\r\n".to_owned(),
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
        let mut out = Vec::new();
        for n in [0, 7, 10, 12345, u64::MAX] {
            out.clear();
            write_u64(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }
}
