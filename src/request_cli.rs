//! `paf request`, without the argument parsing: one curl-like request on a runtime the caller
//! owns, the body streamed to stdout or a file, and exit codes that name the failure.
//!
//! Exit codes follow curl's where one fits: 3 bad URL, 6 name not resolved, 7 connection
//! failed, 8 malformed response, 23 output not writable, 28 timeout, 35 TLS failure, 52 closed
//! before any response, 56 connection broken mid-response, 60 server certificate not trusted
//! or not valid for the name, 2 anything else (bad arguments, configuration).

use std::cell::RefCell;
use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use ::http::header::{HeaderName, CONTENT_TYPE};
use ::http::{HeaderMap, HeaderValue, Method};

use paf::client::{Agent, BodyEnd, Client, Error, Family};
use paf::http::client::ClientError;
use paf::tls;
use paf::Runtime;

/// What to request, as `paf request` was asked.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// `-X`: the method (default GET, POST with data).
    pub method: Option<Method>,
    /// The URL.
    pub url: String,
    /// `-H`: header lines, `Name: value`.
    pub headers: Vec<String>,
    /// `-d`: the body.
    pub data: Option<Vec<u8>>,
    /// `-o`: write the body here instead of stdout.
    pub output: Option<PathBuf>,
    /// `-v`: print the request and response heads to stderr.
    pub verbose: bool,
    /// `-k`: accept any server certificate.
    pub insecure: bool,
    /// `--cacert`: trust only this CA bundle (default: the webpki roots).
    pub cacert: Option<PathBuf>,
    /// `--http2`: offer `h2` then `http/1.1` by ALPN on https URLs.
    pub http2: bool,
    /// `--http2-prior-knowledge`: HTTP/2 from the first byte on http URLs (h2c).
    pub http2_prior_knowledge: bool,
    /// `-4`/`-6`.
    pub family: Family,
    /// `-L`: follow up to this many redirects (0: none).
    pub redirects: usize,
    /// `-m`: give up after this long.
    pub max_time: Option<Duration>,
}

/// Why `paf request` failed.
#[derive(Debug)]
pub enum Failure {
    /// The request failed.
    Client(Error),
    /// The arguments cannot be used (the text says why).
    Usage(String),
    /// The body could not be written out.
    Output(io::Error),
    /// `max_time` passed.
    Timeout(Duration),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Client(e) => write!(f, "{e}"),
            Failure::Usage(why) => f.write_str(why),
            Failure::Output(e) => write!(f, "cannot write the body: {e}"),
            Failure::Timeout(d) => write!(f, "timed out after {d:?}"),
        }
    }
}

impl std::error::Error for Failure {}

impl Failure {
    /// The process exit code (see the [module docs](self)).
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => 2,
            Failure::Output(_) => 23,
            Failure::Timeout(_) => 28,
            Failure::Client(e) => match e {
                _ if e.is_timeout() => 28,
                Error::Url(_) => 3,
                Error::Dns { .. } => 6,
                Error::Connect { .. } => 7,
                Error::Tls {
                    error: tls::Error::Peer(rustls::Error::InvalidCertificate(_)),
                    ..
                } => 60,
                Error::Tls { .. } => 35,
                Error::Http { error, .. } => match error {
                    ClientError::ClosedBeforeResponse => 52,
                    ClientError::UnexpectedEof => 56,
                    _ => 8,
                },
                Error::Reset { .. } => 56,
                _ => 2,
            },
        }
    }
}

/// Sends `req` through `agent`, turning `rt` until the response is in; the body goes to
/// `req.output` (or stdout). Returns the status code.
///
/// # Errors
/// A [`Failure`]: the request's error, bad arguments, an unwritable output, `max_time`.
pub fn run(rt: &mut Runtime, agent: &Agent, req: &Request) -> Result<u16, Failure> {
    let mut client = Client::new(agent)
        .with_family(req.family)
        .follow_redirects(req.redirects);
    if let Some(tls) = trust(req)? {
        client = client.with_tls(tls);
    }
    if req.http2_prior_knowledge {
        client = client.with_http_config(paf::http::client::Config {
            http2_prior_knowledge: true,
            ..paf::http::client::Config::default()
        });
    }
    let headers = headers(req)?;
    let method = req.method.clone().unwrap_or(if req.data.is_some() {
        Method::POST
    } else {
        Method::GET
    });
    let mut out: Box<dyn Write> = match &req.output {
        Some(p) => Box::new(File::create(p).map_err(Failure::Output)?),
        None => Box::new(io::stdout().lock()),
    };
    if req.verbose {
        eprintln!("> {method} {}", req.url);
        for (k, v) in &headers {
            eprintln!("> {k}: {}", String::from_utf8_lossy(v.as_bytes()));
        }
    }
    let state: Rc<RefCell<State>> = Rc::default();
    let (s1, s2) = (state.clone(), state.clone());
    let verbose = req.verbose;
    client.send(
        method,
        &req.url,
        headers,
        req.data.clone().unwrap_or_default(),
        move |_peer, e| s1.borrow_mut().error = Some(e),
        move |peer, url, head, body| {
            if verbose {
                print_head(peer, &url, &head);
            }
            s2.borrow_mut().status = Some(head.status().as_u16());
            read(body, s2);
        },
    );
    let deadline = req.max_time.map(|d| rt.clock().now() + d);
    loop {
        {
            let mut st = state.borrow_mut();
            for chunk in st.chunks.drain(..) {
                out.write_all(&chunk).map_err(Failure::Output)?;
            }
            if let Some(e) = st.error.take() {
                let _ = out.flush();
                return Err(Failure::Client(e));
            }
            if st.end.is_some() {
                out.flush().map_err(Failure::Output)?;
                return Ok(st.status.unwrap_or(0));
            }
        }
        let wait = match deadline {
            Some(at) => {
                let now = rt.clock().now();
                if now >= at {
                    return Err(Failure::Timeout(req.max_time.unwrap_or_default()));
                }
                Some(at - now)
            }
            None => None,
        };
        rt.turn(wait)
            .map_err(|e| Failure::Usage(format!("event loop: {e}")))?;
    }
}

#[derive(Default)]
struct State {
    status: Option<u16>,
    chunks: Vec<Vec<u8>>,
    end: Option<BodyEnd>,
    error: Option<Error>,
}

/// Reads the body chunk by chunk into `st` (written out by [`run`] between loop passes).
fn read(body: paf::client::ResponseBody, st: Rc<RefCell<State>>) {
    let (b, s) = (body.clone(), st.clone());
    body.schedule_read(
        move |data| {
            s.borrow_mut().chunks.push(data.to_vec());
            read(b, s);
        },
        move |end| {
            // An aborted body is reported by the error handler (with the reason).
            if end == BodyEnd::Complete {
                st.borrow_mut().end = Some(end);
            }
        },
    );
}

fn print_head(peer: SocketAddr, url: &str, head: &::http::Response<()>) {
    eprintln!("* {url} answered by {peer}");
    eprintln!("< {:?} {}", head.version(), head.status());
    for (k, v) in head.headers() {
        eprintln!("< {k}: {}", String::from_utf8_lossy(v.as_bytes()));
    }
}

/// The TLS configuration `-k`/`--cacert`/`--http2` ask for (`None`: the default, webpki roots
/// and ALPN `http/1.1`).
fn trust(req: &Request) -> Result<Option<tls::ClientConfig>, Failure> {
    let trust = match (&req.cacert, req.insecure) {
        (_, true) => tls::ClientTrust::DangerousInsecure,
        (Some(path), false) => tls::ClientTrust::CaPemFile(path.clone()),
        (None, false) if !req.http2 => return Ok(None),
        (None, false) => tls::ClientTrust::WebPki,
    };
    let alpn: &[&[u8]] = if req.http2 {
        &[tls::ALPN_H2, tls::ALPN_HTTP11]
    } else {
        &[tls::ALPN_HTTP11]
    };
    tls::ClientConfig::builder(trust)
        .alpn_protocols(alpn)
        .build()
        .map(Some)
        .map_err(|e| Failure::Usage(e.to_string()))
}

/// The `-H` lines as a header map, plus curl's form content type for `-d`.
fn headers(req: &Request) -> Result<HeaderMap, Failure> {
    let mut map = HeaderMap::new();
    for line in &req.headers {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| Failure::Usage(format!("-H {line:?}: expected \"Name: value\"")))?;
        let name = HeaderName::try_from(name.trim())
            .map_err(|e| Failure::Usage(format!("-H {line:?}: {e}")))?;
        let value = HeaderValue::try_from(value.trim())
            .map_err(|e| Failure::Usage(format!("-H {line:?}: {e}")))?;
        map.append(name, value);
    }
    if req.data.is_some() && !map.contains_key(CONTENT_TYPE) {
        map.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use net::DnsError;
    use paf::http::client::ClientError;

    #[test]
    fn failures_map_to_curl_exit_codes() {
        let peer: SocketAddr = "198.18.0.1:80".parse().unwrap();
        let cert = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let cases = [
            (
                Error::Dns {
                    name: "x.test".into(),
                    error: DnsError::NotFound,
                },
                6,
            ),
            (
                Error::Dns {
                    name: "x.test".into(),
                    error: DnsError::Timeout,
                },
                28,
            ),
            (
                Error::Connect {
                    peer,
                    failure: paf::client::ConnectFailure::Refused,
                },
                7,
            ),
            (
                Error::Tls {
                    peer,
                    error: tls::Error::Peer(cert),
                },
                60,
            ),
            (
                Error::Tls {
                    peer,
                    error: tls::Error::HandshakeTimeout,
                },
                28,
            ),
            (
                Error::Http {
                    peer,
                    error: ClientError::ClosedBeforeResponse,
                },
                52,
            ),
            (
                Error::Http {
                    peer,
                    error: ClientError::Malformed("x"),
                },
                8,
            ),
            (Error::Url("x".into()), 3),
        ];
        for (e, code) in cases {
            assert_eq!(Failure::Client(e.clone()).exit_code(), code, "{e}");
        }
        assert_eq!(Failure::Usage("x".into()).exit_code(), 2);
    }

    #[test]
    fn header_lines_parse_and_data_gets_a_form_type() {
        let req = Request {
            headers: vec!["X-A: 1".into(), "x-a:2".into()],
            data: Some(b"a=b".to_vec()),
            ..Request::default()
        };
        let h = headers(&req).unwrap();
        assert_eq!(h.get_all("x-a").iter().count(), 2);
        assert_eq!(h[CONTENT_TYPE], "application/x-www-form-urlencoded");
        let bad = Request {
            headers: vec!["nocolon".into()],
            ..Request::default()
        };
        assert!(matches!(headers(&bad), Err(Failure::Usage(_))));
    }
}
