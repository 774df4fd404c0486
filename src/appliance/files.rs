//! The `files` route's decisions, apart from the IO of streaming: safe resolution of a request
//! path under a document root, content types, validators (`ETag`, `Last-Modified`), conditional
//! requests and byte ranges (RFC 9110 §13, §14).
//!
//! Safety rules: the path is percent-decoded once; any `..`, `.` segment, backslash, NUL or
//! encoded slash is refused; every component on the way is checked with `symlink_metadata` so a
//! symlink that leaves the root is refused (403) even when its target exists; a symlink that
//! stays inside the root is followed.

use std::fs::Metadata;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ::http::{HeaderMap, Method, StatusCode};

/// Why a path cannot be served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Malformed or escaping path, or a symlink out of the root: 403.
    Forbidden,
    /// Nothing there: 404.
    NotFound,
}

impl Refusal {
    /// The status to answer with.
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::Forbidden => StatusCode::FORBIDDEN,
            Refusal::NotFound => StatusCode::NOT_FOUND,
        }
    }
}

/// What a request path resolved to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// A regular file.
    File(PathBuf),
    /// A directory requested without a trailing slash: redirect to this path + `/`.
    AddSlash,
}

fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Resolve `url_path` (the part of the request path below the route's prefix, starting with
/// `/`) under `root`; a directory resolves to its `index` file.
///
/// # Errors
/// [`Refusal::Forbidden`] for anything that could escape the root, [`Refusal::NotFound`] when
/// nothing servable is there.
pub fn resolve(root: &Path, url_path: &str, index: &str) -> Result<Resolved, Refusal> {
    let raw = url_path.split(['?', '#']).next().unwrap_or("");
    // An encoded slash or backslash would let a segment smuggle a separator past our checks.
    let lower = raw.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") || raw.contains('\\') {
        return Err(Refusal::Forbidden);
    }
    let decoded = percent_decode(raw).ok_or(Refusal::Forbidden)?;
    let decoded = String::from_utf8(decoded).map_err(|_| Refusal::Forbidden)?;
    if decoded.contains('\0') {
        return Err(Refusal::Forbidden);
    }
    let canon_root = root.canonicalize().map_err(|_| Refusal::NotFound)?;
    let mut path = canon_root.clone();
    for seg in decoded.split('/').filter(|s| !s.is_empty()) {
        if seg == "." || seg == ".." {
            return Err(Refusal::Forbidden);
        }
        match Path::new(seg).components().next() {
            Some(Component::Normal(_)) => path.push(seg),
            _ => return Err(Refusal::Forbidden),
        }
        let meta = std::fs::symlink_metadata(&path).map_err(|_| Refusal::NotFound)?;
        if meta.file_type().is_symlink() {
            let target = path.canonicalize().map_err(|_| Refusal::NotFound)?;
            if !target.starts_with(&canon_root) {
                return Err(Refusal::Forbidden);
            }
            path = target;
        }
    }
    let meta = std::fs::metadata(&path).map_err(|_| Refusal::NotFound)?;
    if meta.is_dir() {
        if !decoded.ends_with('/') && !decoded.is_empty() {
            return Ok(Resolved::AddSlash);
        }
        let file = path.join(index);
        let m = std::fs::symlink_metadata(&file).map_err(|_| Refusal::NotFound)?;
        if m.file_type().is_symlink() {
            let target = file.canonicalize().map_err(|_| Refusal::NotFound)?;
            if !target.starts_with(&canon_root) {
                return Err(Refusal::Forbidden);
            }
            return Ok(Resolved::File(target));
        }
        return if m.is_file() {
            Ok(Resolved::File(file))
        } else {
            Err(Refusal::NotFound)
        };
    }
    if meta.is_file() {
        Ok(Resolved::File(path))
    } else {
        Err(Refusal::NotFound)
    }
}

/// The `Content-Type` for a file name, by extension.
pub fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("json") => "application/json",
        Some("txt" | "md") => "text/plain; charset=utf-8",
        Some("xml") => "application/xml",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("ico") => "image/x-icon",
        Some("wasm") => "application/wasm",
        Some("pdf") => "application/pdf",
        Some("woff2") => "font/woff2",
        Some("woff") => "font/woff",
        Some("gz") => "application/gzip",
        Some("zip") => "application/zip",
        Some("mp4") => "video/mp4",
        _ => "application/octet-stream",
    }
}

/// A file's validators.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validators {
    /// Strong entity tag from size and modification time (like nginx's).
    pub etag: String,
    /// Modification time, whole seconds.
    pub modified: SystemTime,
    /// File length.
    pub len: u64,
}

impl Validators {
    /// From file metadata.
    ///
    /// # Errors
    /// The modification time is unavailable.
    pub fn of(meta: &Metadata) -> io::Result<Validators> {
        let modified = meta.modified()?;
        let secs = modified
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Ok(Validators {
            etag: format!("\"{secs:x}-{:x}\"", meta.len()),
            modified: UNIX_EPOCH + Duration::from_secs(secs),
            len: meta.len(),
        })
    }

    /// `Last-Modified` value.
    pub fn last_modified(&self) -> String {
        crate::http::HttpDate::from_system_time(self.modified)
            .as_str()
            .to_string()
    }
}

/// The pre-compressed sibling of `path` (`path` + `.` + `suffix`, e.g. `app.js.br`) when it is
/// a regular file (a symlink is not followed) at least as fresh as the original (`original`'s
/// validators), opened, with its own validators.
pub fn sibling(
    path: &Path,
    suffix: &str,
    original: &Validators,
) -> Option<(std::fs::File, Validators)> {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    let sib = PathBuf::from(name);
    let meta = std::fs::symlink_metadata(&sib).ok()?;
    if !meta.is_file() {
        return None;
    }
    let v = Validators::of(&meta).ok()?;
    if v.modified < original.modified {
        return None; // stale: the original changed since it was compressed
    }
    let file = std::fs::File::open(&sib).ok()?;
    Some((file, v))
}

/// What to send for a GET/HEAD of a file, after conditionals and ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// 200 with the whole file.
    Full,
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    PreconditionFailed,
    /// 206 with this inclusive byte range.
    Partial {
        /// First byte.
        start: u64,
        /// Last byte (inclusive).
        end: u64,
    },
    /// 416 Range Not Satisfiable (send `Content-Range: bytes */len`).
    Unsatisfiable,
}

fn etag_list_matches(list: &str, etag: &str, weak: bool) -> bool {
    list.split(',').map(str::trim).any(|t| {
        if t == "*" {
            return true;
        }
        let strip = |x: &str| {
            if weak {
                x.trim_start_matches("W/").to_string()
            } else {
                x.to_string()
            }
        };
        // Strong comparison: a weak tag never matches.
        (weak || !t.starts_with("W/")) && strip(t) == strip(etag)
    })
}

/// Any of the three HTTP-date formats a recipient must accept (RFC 9110 §5.6.7).
fn parse_http_date(s: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(s).ok()
}

/// Decide the response for `method` on a file with validators `v`, given the request headers.
/// Evaluation order follows RFC 9110 §13.2.2.
pub fn plan(method: &Method, headers: &HeaderMap, v: &Validators) -> Plan {
    let h = |name: &str| headers.get(name).and_then(|x| x.to_str().ok());
    if let Some(im) = h("if-match") {
        if !etag_list_matches(im, &v.etag, false) {
            return Plan::PreconditionFailed;
        }
    } else if let Some(ius) = h("if-unmodified-since").and_then(parse_http_date) {
        if v.modified > ius {
            return Plan::PreconditionFailed;
        }
    }
    if let Some(inm) = h("if-none-match") {
        if etag_list_matches(inm, &v.etag, true) {
            return if method == Method::GET || method == Method::HEAD {
                Plan::NotModified
            } else {
                Plan::PreconditionFailed
            };
        }
    } else if let Some(ims) = h("if-modified-since").and_then(parse_http_date) {
        if (method == Method::GET || method == Method::HEAD) && v.modified <= ims {
            return Plan::NotModified;
        }
    }
    if method != Method::GET {
        return Plan::Full;
    }
    let Some(range) = h("range") else {
        return Plan::Full;
    };
    if let Some(ir) = h("if-range") {
        let fresh = if ir.starts_with('"') {
            ir == v.etag
        } else {
            parse_http_date(ir).is_some_and(|d| d == v.modified)
        };
        if !fresh {
            return Plan::Full;
        }
    }
    parse_range(range, v.len)
}

/// One `bytes=` range against a file of `len` bytes. Multiple ranges are answered with the whole
/// file (allowed by RFC 9110 §14.2: a server may ignore Range); junk is ignored the same way.
pub fn parse_range(header: &str, len: u64) -> Plan {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Plan::Full;
    };
    if spec.contains(',') {
        return Plan::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Plan::Full;
    };
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (a.trim(), b.trim()) {
        ("", suffix) => match num(suffix) {
            Some(0) => Plan::Unsatisfiable,
            Some(n) if len > 0 => Plan::Partial {
                start: len.saturating_sub(n),
                end: len - 1,
            },
            Some(_) => Plan::Unsatisfiable,
            None => Plan::Full,
        },
        (first, "") => match num(first) {
            Some(s) if s < len => Plan::Partial {
                start: s,
                end: len - 1,
            },
            Some(_) => Plan::Unsatisfiable,
            None => Plan::Full,
        },
        (first, last) => match (num(first), num(last)) {
            (Some(s), Some(e)) if s <= e => {
                if s >= len {
                    Plan::Unsatisfiable
                } else {
                    Plan::Partial {
                        start: s,
                        end: e.min(len - 1),
                    }
                }
            }
            _ => Plan::Full,
        },
    }
}

#[cfg(test)]
mod tests;
