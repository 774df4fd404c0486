//! Access-log line formats: nginx's `combined`, JSON, and paf's own line, each written straight
//! into the caller's buffer. The time of day is formatted once per wall-clock second
//! ([`TimeCache`]), numbers without `fmt`, and request bytes are escaped as they are copied, so
//! a line costs no allocation beyond the buffer's growth (JSON may copy a target or header that
//! is not UTF-8).

use std::borrow::Cow;
use std::fmt;
use std::io::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ::http::{header, Request, Version};
use serde::Serialize;

use crate::http::Error;

/// How each access-log line is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Format {
    /// nginx's and Apache's `combined`: `$remote_addr - - [$time_local] "$request" $status
    /// $body_bytes_sent "$http_referer" "$http_user_agent"`, the time in UTC (`+0000`). Quotes,
    /// backslashes, control bytes and bytes above 0x7e in the request line and the two fields
    /// are written `\xHH`, as nginx does.
    #[default]
    Combined,
    /// One JSON object per line: `time` (RFC 3339, UTC), `remote_addr`, `remote_port`,
    /// `method`, `uri`, `protocol`, `status`, `body_bytes_sent`, `referer`, `user_agent`,
    /// `duration_ms`, and `error` (for answers to peer faults) or `note` (`aborted`,
    /// `truncated`) when there is one. Fields of a request that was never parsed are `null`.
    Json,
    /// paf's own line: `time peer "METHOD target VERSION" status body-bytes duration`, then
    /// ` aborted`/` truncated`, or `error: why` for answers to peer faults.
    Paf,
}

impl Format {
    /// Every format, for validation messages.
    pub const ALL: [Format; 3] = [Format::Combined, Format::Json, Format::Paf];

    /// The name used in configuration files.
    pub fn name(self) -> &'static str {
        match self {
            Format::Combined => "combined",
            Format::Json => "json",
            Format::Paf => "paf",
        }
    }

    /// The format called `name` (`combined`, `json`, `paf`).
    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How an exchange ended, when not plainly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Note {
    /// The response was complete.
    None,
    /// The response was abandoned mid-body (the connection was cut).
    Aborted,
    /// The body writer closed short of the declared length.
    Truncated,
}

impl Note {
    fn word(self) -> Option<&'static str> {
        match self {
            Note::None => None,
            Note::Aborted => Some("aborted"),
            Note::Truncated => Some("truncated"),
        }
    }
}

/// One exchange (or one answer to a peer fault), as the formats see it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry<'a> {
    pub peer: SocketAddr,
    /// The request head; `None` when the fault came before one was parsed.
    pub request: Option<&'a Request<()>>,
    pub status: u16,
    pub body_bytes: u64,
    /// From the request head to the end of the response; `None` for faults without a request.
    pub duration: Option<Duration>,
    pub note: Note,
    /// The peer fault answered, for error responses.
    pub error: Option<&'a Error>,
}

/// The wall-clock second, formatted for each format; recomputed when the second changes.
#[derive(Clone, Debug)]
pub(crate) struct TimeCache {
    second: u64,
    /// `04/Dec/2026:16:38:45 +0000`.
    clf: [u8; 26],
    /// `2026-12-04T16:38:45Z`.
    iso: [u8; 20],
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

impl Default for TimeCache {
    fn default() -> Self {
        let mut t = TimeCache {
            second: u64::MAX,
            clf: [0; 26],
            iso: [0; 20],
        };
        t.set(0);
        t
    }
}

impl TimeCache {
    /// Brings the cache to `wall`'s second.
    pub(crate) fn update(&mut self, wall: SystemTime) {
        let second = wall.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if second != self.second {
            self.set(second);
        }
    }

    fn set(&mut self, second: u64) {
        self.second = second;
        let (y, mo, d) = civil_from_days(second / 86_400);
        let s = second % 86_400;
        let (h, mi, sec) = (s / 3600, s / 60 % 60, s % 60);
        let two = |n: u64| [b'0' + (n / 10) as u8, b'0' + (n % 10) as u8];
        let year = [
            b'0' + (y / 1000 % 10) as u8,
            b'0' + (y / 100 % 10) as u8,
            b'0' + (y / 10 % 10) as u8,
            b'0' + (y % 10) as u8,
        ];
        let month = MONTHS[(mo - 1) as usize];
        let mut clf = Vec::with_capacity(26);
        clf.extend_from_slice(&two(d));
        clf.push(b'/');
        clf.extend_from_slice(month);
        clf.push(b'/');
        clf.extend_from_slice(&year);
        for (sep, n) in [(b':', h), (b':', mi), (b':', sec)] {
            clf.push(sep);
            clf.extend_from_slice(&two(n));
        }
        clf.extend_from_slice(b" +0000");
        self.clf.copy_from_slice(&clf);
        let mut iso = Vec::with_capacity(20);
        iso.extend_from_slice(&year);
        for (sep, n) in [(b'-', mo), (b'-', d), (b'T', h), (b':', mi), (b':', sec)] {
            iso.push(sep);
            iso.extend_from_slice(&two(n));
        }
        iso.push(b'Z');
        self.iso.copy_from_slice(&iso);
    }

    fn iso(&self) -> &str {
        std::str::from_utf8(&self.iso).unwrap_or("-")
    }
}

/// (year, month 1–12, day 1–31) of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// The protocol as request lines name it.
fn protocol(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "-",
    }
}

/// The target as the client sent it: HTTP/2's `:path` (the head holds the whole URI),
/// HTTP/1.1's request-target.
fn target(r: &Request<()>) -> Cow<'_, str> {
    let uri = r.uri();
    match (r.version(), uri.path_and_query()) {
        (Version::HTTP_2 | Version::HTTP_3, Some(pq)) => Cow::Borrowed(pq.as_str()),
        (_, Some(pq)) if uri.scheme().is_none() => Cow::Borrowed(pq.as_str()),
        _ => Cow::Owned(uri.to_string()),
    }
}

fn field(r: Option<&Request<()>>, name: header::HeaderName) -> Option<&[u8]> {
    r?.headers().get(name).map(|v| v.as_bytes())
}

/// Writes `n` in decimal.
fn number(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Copies `bytes` the way nginx escapes its log variables: `"`, `\`, control bytes and bytes
/// above 0x7e become `\xHH`.
fn escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            out.extend_from_slice(&bytes[start..i]);
            out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 15)],
            ]);
            start = i + 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Appends one line for `e` (with its newline) to `out`.
pub(crate) fn write(format: Format, out: &mut Vec<u8>, time: &TimeCache, e: &Entry<'_>) {
    match format {
        Format::Combined => combined(out, time, e),
        Format::Json => json(out, time, e),
        Format::Paf => paf(out, time, e),
    }
}

/// Writes the peer's address: IPv4 by hand (the common case, without `fmt`), IPv6 as `Display`
/// writes it (IPv4-mapped addresses as IPv4, like nginx).
pub(crate) fn address(out: &mut Vec<u8>, ip: std::net::IpAddr) {
    let v4 = match ip {
        std::net::IpAddr::V4(a) => Some(a),
        std::net::IpAddr::V6(a) => a.to_ipv4_mapped(),
    };
    match v4 {
        Some(a) => {
            for (i, b) in a.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                number(out, u64::from(b));
            }
        }
        None => {
            let _ = write!(out, "{ip}");
        }
    }
}

fn combined(out: &mut Vec<u8>, time: &TimeCache, e: &Entry<'_>) {
    address(out, e.peer.ip());
    out.extend_from_slice(b" - - [");
    out.extend_from_slice(&time.clf);
    out.extend_from_slice(b"] \"");
    request_status_bytes(out, e);
    for name in [header::REFERER, header::USER_AGENT] {
        out.extend_from_slice(b" \"");
        match field(e.request, name) {
            Some(v) => escaped(out, v),
            None => out.push(b'-'),
        }
        out.push(b'"');
    }
    out.push(b'\n');
}

/// A value serialized through its `Display`, without an intermediate `String`.
struct Shown<T>(T);

impl<T: fmt::Display> Serialize for Shown<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

#[derive(Serialize)]
struct JsonLine<'a> {
    time: &'a str,
    remote_addr: Shown<std::net::IpAddr>,
    remote_port: u16,
    method: Option<&'a str>,
    uri: Option<Cow<'a, str>>,
    protocol: Option<&'static str>,
    status: u16,
    body_bytes_sent: u64,
    referer: Option<Cow<'a, str>>,
    user_agent: Option<Cow<'a, str>>,
    duration_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<Shown<&'a Error>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'static str>,
}

fn json(out: &mut Vec<u8>, time: &TimeCache, e: &Entry<'_>) {
    let text = |name| field(e.request, name).map(String::from_utf8_lossy);
    let line = JsonLine {
        time: time.iso(),
        remote_addr: Shown(e.peer.ip()),
        remote_port: e.peer.port(),
        method: e.request.map(|r| r.method().as_str()),
        uri: e.request.map(target),
        protocol: e.request.map(|r| protocol(r.version())),
        status: e.status,
        body_bytes_sent: e.body_bytes,
        referer: text(header::REFERER),
        user_agent: text(header::USER_AGENT),
        // Microseconds are plenty, and keep the numbers short.
        duration_ms: e.duration.map(|d| (d.as_secs_f64() * 1e6).round() / 1e3),
        error: e.error.map(Shown),
        note: e.note.word(),
    };
    // Writing into a Vec cannot fail, and every field serializes.
    let _ = serde_json::to_writer(&mut *out, &line);
    out.push(b'\n');
}

/// `METHOD target PROTOCOL" status bytes` (the opening quote is the caller's), escaped; `-`
/// for an error answered before a request was parsed.
fn request_status_bytes(out: &mut Vec<u8>, e: &Entry<'_>) {
    match e.request {
        Some(r) => {
            escaped(out, r.method().as_str().as_bytes());
            out.push(b' ');
            escaped(out, target(r).as_bytes());
            out.push(b' ');
            out.extend_from_slice(protocol(r.version()).as_bytes());
        }
        None => out.push(b'-'),
    }
    out.extend_from_slice(b"\" ");
    number(out, u64::from(e.status));
    out.push(b' ');
    number(out, e.body_bytes);
}

fn paf(out: &mut Vec<u8>, time: &TimeCache, e: &Entry<'_>) {
    out.extend_from_slice(&time.iso);
    let _ = write!(out, " {} \"", e.peer);
    request_status_bytes(out, e);
    if let Some(d) = e.duration {
        let _ = write!(out, " {:.3}ms", d.as_secs_f64() * 1e3);
    }
    if let Some(word) = e.note.word() {
        out.push(b' ');
        out.extend_from_slice(word.as_bytes());
    }
    if let Some(error) = e.error {
        let _ = write!(out, " error: {error}");
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: u64) -> TimeCache {
        let mut t = TimeCache::default();
        t.update(UNIX_EPOCH + Duration::from_secs(second));
        t
    }

    #[test]
    fn the_time_of_day_is_formatted_per_second() {
        let cases = [
            (0, "01/Jan/1970:00:00:00 +0000", "1970-01-01T00:00:00Z"),
            (
                951_782_400,
                "29/Feb/2000:00:00:00 +0000",
                "2000-02-29T00:00:00Z",
            ),
            (
                1_767_225_600,
                "01/Jan/2026:00:00:00 +0000",
                "2026-01-01T00:00:00Z",
            ),
            (
                1_796_402_325,
                "04/Dec/2026:16:38:45 +0000",
                "2026-12-04T16:38:45Z",
            ),
            // 2100 is not a leap year.
            (
                4_107_542_399,
                "28/Feb/2100:23:59:59 +0000",
                "2100-02-28T23:59:59Z",
            ),
            (
                4_107_542_400,
                "01/Mar/2100:00:00:00 +0000",
                "2100-03-01T00:00:00Z",
            ),
        ];
        for (second, clf, iso) in cases {
            let t = at(second);
            assert_eq!(std::str::from_utf8(&t.clf).unwrap(), clf, "{second}");
            assert_eq!(t.iso(), iso, "{second}");
        }
        // Within the second the cache keeps its text; the next second changes it.
        let mut t = at(1_796_402_325);
        t.update(UNIX_EPOCH + Duration::from_millis(1_796_402_325_999));
        assert_eq!(t.iso(), "2026-12-04T16:38:45Z");
        t.update(UNIX_EPOCH + Duration::from_secs(1_796_402_326));
        assert_eq!(t.iso(), "2026-12-04T16:38:46Z");
    }

    fn request(version: Version, target: &str, fields: &[(&str, &[u8])]) -> Request<()> {
        let mut b = Request::builder()
            .method("GET")
            .uri(target)
            .version(version);
        for (name, value) in fields {
            b = b.header(*name, ::http::HeaderValue::from_bytes(value).unwrap());
        }
        b.body(()).unwrap()
    }

    fn line(format: Format, e: &Entry<'_>) -> String {
        let mut out = Vec::new();
        write(format, &mut out, &at(1_796_402_325), e);
        String::from_utf8(out).unwrap()
    }

    fn entry<'a>(r: Option<&'a Request<()>>) -> Entry<'a> {
        Entry {
            peer: "198.18.0.1:40000".parse().unwrap(),
            request: r,
            status: 200,
            body_bytes: 12,
            duration: Some(Duration::from_micros(1500)),
            note: Note::None,
            error: None,
        }
    }

    #[test]
    fn combined_lines_escape_quotes_backslashes_and_control_bytes() {
        let hostile = request(
            Version::HTTP_11,
            "/a?q=%22x",
            &[
                ("referer", b"http://r.test/\"quoted\""),
                ("user-agent", b"curl\\8 \t\xff"),
            ],
        );
        let plain = request(Version::HTTP_11, "/bench", &[]);
        let h2 = request(Version::HTTP_2, "https://paf.test/x?y=1", &[]);
        let cases: [(Entry<'_>, &str); 4] = [
            (
                entry(Some(&plain)),
                "198.18.0.1 - - [04/Dec/2026:16:38:45 +0000] \"GET /bench HTTP/1.1\" 200 12 \"-\" \"-\"\n",
            ),
            (
                entry(Some(&hostile)),
                "198.18.0.1 - - [04/Dec/2026:16:38:45 +0000] \"GET /a?q=%22x HTTP/1.1\" 200 12 \
                 \"http://r.test/\\x22quoted\\x22\" \"curl\\x5C8 \\x09\\xFF\"\n",
            ),
            (
                entry(Some(&h2)),
                "198.18.0.1 - - [04/Dec/2026:16:38:45 +0000] \"GET /x?y=1 HTTP/2.0\" 200 12 \"-\" \"-\"\n",
            ),
            (
                Entry {
                    status: 400,
                    body_bytes: 16,
                    duration: None,
                    ..entry(None)
                },
                "198.18.0.1 - - [04/Dec/2026:16:38:45 +0000] \"-\" 400 16 \"-\" \"-\"\n",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(line(Format::Combined, &e), want);
        }
    }

    #[test]
    fn json_lines_are_one_object_each_with_escaped_strings() {
        let r = request(
            Version::HTTP_2,
            "https://paf.test/p?q=%221%22",
            &[("user-agent", b"a\"b\\c\t\xff")],
        );
        let text = line(Format::Json, &entry(Some(&r)));
        assert_eq!(text.matches('\n').count(), 1);
        assert!(text.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["time"], "2026-12-04T16:38:45Z");
        assert_eq!(v["remote_addr"], "198.18.0.1");
        assert_eq!(v["remote_port"], 40000);
        assert_eq!(v["method"], "GET");
        assert_eq!(v["protocol"], "HTTP/2.0");
        assert_eq!(v["uri"], "/p?q=%221%22");
        assert_eq!(v["status"], 200);
        assert_eq!(v["body_bytes_sent"], 12);
        assert_eq!(v["referer"], serde_json::Value::Null);
        assert_eq!(v["user_agent"], "a\"b\\c\t\u{fffd}");
        assert_eq!(v["duration_ms"], 1.5);
        assert!(v.get("error").is_none() && v.get("note").is_none(), "{v}");
        // The control byte is escaped, not written raw.
        assert!(text.contains("c\\t") && !text.contains('\t'), "{text}");
        // A fault before any request: nulls, and the error.
        let error = Error::BadRequest("invalid request method");
        let e = Entry {
            status: 400,
            duration: None,
            error: Some(&error),
            ..entry(None)
        };
        let v: serde_json::Value = serde_json::from_str(&line(Format::Json, &e)).unwrap();
        assert_eq!(v["method"], serde_json::Value::Null);
        assert_eq!(v["protocol"], serde_json::Value::Null);
        assert_eq!(v["status"], 400);
        assert_eq!(v["error"], "bad request: invalid request method");
        let e = Entry {
            note: Note::Aborted,
            ..entry(Some(&r))
        };
        let v: serde_json::Value = serde_json::from_str(&line(Format::Json, &e)).unwrap();
        assert_eq!(v["note"], "aborted");
    }

    #[test]
    fn paf_lines_keep_the_old_fields_after_the_time() {
        let r = request(Version::HTTP_11, "/bench", &[]);
        let e = Entry {
            note: Note::Truncated,
            ..entry(Some(&r))
        };
        assert_eq!(
            line(Format::Paf, &e),
            "2026-12-04T16:38:45Z 198.18.0.1:40000 \"GET /bench HTTP/1.1\" 200 12 1.500ms truncated\n"
        );
        let error = Error::HeaderTimeout;
        let e = Entry {
            status: 408,
            body_bytes: 20,
            duration: None,
            error: Some(&error),
            ..entry(None)
        };
        assert_eq!(
            line(Format::Paf, &e),
            format!("2026-12-04T16:38:45Z 198.18.0.1:40000 \"-\" 408 20 error: {error}\n")
        );
    }

    #[test]
    fn escaping_covers_every_byte_nginx_escapes() {
        // (No request the codec accepts carries most of these; the escaping does not rely on it.)
        let cases: [(&[u8], &str); 5] = [
            (b"plain /a?b=c", "plain /a?b=c"),
            (b"\"\\", "\\x22\\x5C"),
            (b"\0\x01\x1f\x7f", "\\x00\\x01\\x1F\\x7F"),
            (b"\r\nGET / HTTP/1.1", "\\x0D\\x0AGET / HTTP/1.1"),
            ("é".as_bytes(), "\\xC3\\xA9"),
        ];
        for (input, want) in cases {
            let mut out = Vec::new();
            escaped(&mut out, input);
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }

    #[test]
    fn addresses_as_nginx_writes_them() {
        let cases = [
            ("198.18.0.1", "198.18.0.1"),
            ("0.0.0.0", "0.0.0.0"),
            ("255.255.255.255", "255.255.255.255"),
            ("fd00:198:18::1", "fd00:198:18::1"),
            ("::ffff:198.18.0.1", "198.18.0.1"),
        ];
        for (ip, want) in cases {
            let mut out = Vec::new();
            address(&mut out, ip.parse().unwrap());
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }

    #[test]
    fn numbers_and_format_names() {
        for n in [0, 7, 10, 99, 1234567890, u64::MAX] {
            let mut out = Vec::new();
            number(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
        for f in Format::ALL {
            assert_eq!(Format::from_name(f.name()), Some(f));
        }
        assert_eq!(Format::from_name("common"), None);
    }
}
