//! A strict HTTP/1.1 message splitter for what came over the wire: the responses a test client
//! received, and the requests the recording upstream was sent. Strict on purpose: every byte
//! must belong to a complete message (start line, CRLF-terminated fields, a body framed by
//! `Content-Length` or chunked), so a smuggled request or stray body bytes cannot hide in a
//! lenient parse.

/// Which side sent the messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Requests (to the upstream): no framing field means no body.
    Request,
    /// Responses (to the client): a length or chunked framing is required.
    Response,
}

/// One complete message.
#[derive(Clone, Debug)]
pub struct Message {
    /// The start line without CRLF.
    pub start: String,
    /// Field lines in order, names lower-cased, values trimmed.
    pub fields: Vec<(String, Vec<u8>)>,
    /// The body with the chunked framing removed.
    pub body: Vec<u8>,
}

impl Message {
    /// The response status (the second word of the start line).
    pub fn status(&self) -> Option<u16> {
        self.start.split(' ').nth(1)?.parse().ok()
    }

    /// The request method and target (the first two words of the start line).
    pub fn method_target(&self) -> (&str, &str) {
        let mut words = self.start.split(' ');
        (
            words.next().unwrap_or_default(),
            words.next().unwrap_or_default(),
        )
    }

    /// Every value of field `name` (lower-case).
    pub fn all(&self, name: &str) -> Vec<&[u8]> {
        self.fields
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
            .collect()
    }

    /// The one value of field `name`, if there is exactly one.
    pub fn field(&self, name: &str) -> Option<&[u8]> {
        match self.all(name)[..] {
            [v] => Some(v),
            _ => None,
        }
    }
}

/// Splits `bytes` into complete messages.
///
/// # Errors
///
/// Where and why the bytes stop being well-framed messages (including a message cut short).
pub fn parse_all(bytes: &[u8], kind: Kind) -> Result<Vec<Message>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    // Bounded: every message consumes at least its start line's CRLF.
    while at < bytes.len() {
        let (msg, used) =
            parse_one(&bytes[at..], kind).map_err(|e| format!("at byte {at}: {e}"))?;
        at += used;
        out.push(msg);
    }
    Ok(out)
}

fn line(bytes: &[u8], at: usize) -> Result<(&[u8], usize), String> {
    let rest = &bytes[at..];
    let lf = rest
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("line without LF (message cut short)")?;
    if lf == 0 || rest[lf - 1] != b'\r' {
        return Err(format!("bare LF in {:?}", show(&rest[..lf])));
    }
    let text = &rest[..lf - 1];
    if text.contains(&b'\r') {
        return Err(format!("bare CR in {:?}", show(text)));
    }
    Ok((text, at + lf + 1))
}

fn parse_one(bytes: &[u8], kind: Kind) -> Result<(Message, usize), String> {
    let (start, mut at) = line(bytes, 0)?;
    let start = String::from_utf8(start.to_vec()).map_err(|_| "start line is not UTF-8")?;
    let words: Vec<&str> = start.split(' ').collect();
    let well_formed = match kind {
        Kind::Request => words.len() == 3 && words[2] == "HTTP/1.1" && !words[0].is_empty(),
        Kind::Response => {
            words.len() >= 3
                && words[0] == "HTTP/1.1"
                && words[1].len() == 3
                && words[1].bytes().all(|b| b.is_ascii_digit())
        }
    };
    if !well_formed {
        return Err(format!("bad start line {start:?}"));
    }
    let mut fields = Vec::new();
    loop {
        let (text, next) = line(bytes, at)?;
        at = next;
        if text.is_empty() {
            break;
        }
        let colon = text
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| format!("field without colon {:?}", show(text)))?;
        let name = &text[..colon];
        if name.is_empty() || name.iter().any(|b| !b.is_ascii_graphic()) {
            return Err(format!("bad field name {:?}", show(text)));
        }
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        fields.push((name, text[colon + 1..].trim_ascii().to_vec()));
    }
    let msg = Message {
        start,
        fields,
        body: Vec::new(),
    };
    let te = msg.all("transfer-encoding");
    let cl = msg.all("content-length");
    let (body, used) = match (&te[..], &cl[..]) {
        ([], []) if kind == Kind::Request => (Vec::new(), at),
        ([], []) => return Err(format!("response {:?} has no length", msg.start)),
        ([te], []) if te.eq_ignore_ascii_case(b"chunked") => dechunk(bytes, at)?,
        ([], [n]) => {
            let n: usize = std::str::from_utf8(n)
                .ok()
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| format!("bad Content-Length {:?}", show(n)))?;
            let body = bytes
                .get(at..at + n)
                .ok_or_else(|| format!("body of {:?} cut short", msg.start))?;
            (body.to_vec(), at + n)
        }
        _ => return Err(format!("ambiguous framing in {:?}", msg.start)),
    };
    Ok((Message { body, ..msg }, used))
}

fn dechunk(bytes: &[u8], mut at: usize) -> Result<(Vec<u8>, usize), String> {
    let mut body = Vec::new();
    // Bounded: every chunk consumes its size line.
    loop {
        let (size, next) = line(bytes, at)?;
        at = next;
        let digits = size.split(|&b| b == b';').next().unwrap_or_default();
        let n = std::str::from_utf8(digits)
            .ok()
            .filter(|d| !d.is_empty() && d.len() <= 8)
            .and_then(|d| usize::from_str_radix(d, 16).ok())
            .ok_or_else(|| format!("bad chunk size {:?}", show(size)))?;
        if n == 0 {
            loop {
                let (trailer, next) = line(bytes, at)?;
                at = next;
                if trailer.is_empty() {
                    return Ok((body, at));
                }
            }
        }
        let data = bytes.get(at..at + n).ok_or("chunk cut short")?;
        body.extend_from_slice(data);
        at += n;
        if bytes.get(at..at + 2) != Some(b"\r\n") {
            return Err("chunk data not followed by CRLF".into());
        }
        at += 2;
    }
}

/// Bytes for messages: printable ASCII as is, the rest escaped, long runs shortened.
pub fn show(bytes: &[u8]) -> String {
    let text = bytes.escape_ascii().to_string();
    if text.len() > 400 {
        format!("{}…({} bytes)", &text[..400], bytes.len())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_strictly() {
        let two = b"POST /a HTTP/1.1\r\ncontent-length: 2\r\n\r\nhiGET /b HTTP/1.1\r\nx: y\r\n\r\n";
        let got = parse_all(two, Kind::Request).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].body, b"hi");
        assert_eq!(got[1].method_target(), ("GET", "/b"));
        let chunked = b"POST /a HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
        assert_eq!(parse_all(chunked, Kind::Request).unwrap()[0].body, b"hi");
        for bad in [
            &b"POST /a HTTP/1.1\r\ncontent-length: 3\r\n\r\nhi"[..],
            b"GET /a HTTP/1.1\nx: y\r\n\r\n",
            b"GET /a HTTP/1.1\r\n\r\nleftover",
            b"POST /a HTTP/1.1\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n",
        ] {
            assert!(parse_all(bad, Kind::Request).is_err(), "{}", show(bad));
        }
        let resp = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 3\r\nconnection: close\r\n\r\nbad";
        let got = parse_all(resp, Kind::Response).unwrap();
        assert_eq!(got[0].status(), Some(400));
        assert_eq!(got[0].field("connection"), Some(&b"close"[..]));
        assert!(parse_all(b"HTTP/1.1 200 OK\r\n\r\n", Kind::Response).is_err());
    }
}
