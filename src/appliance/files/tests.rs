use super::*;
use std::os::unix::fs::symlink;

struct Tree(PathBuf);

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// root/ {index.html, a.txt, sub/ {index.html}, nodir/, inside -> a.txt, out -> /etc/hostname,
/// outdir -> ..}, plus a secret file next to root.
fn tree(tag: &str) -> (Tree, PathBuf) {
    let base = std::env::temp_dir().join(format!("paf-files-{tag}-{}", std::process::id()));
    let root = base.join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::create_dir_all(root.join("nodir")).unwrap();
    std::fs::write(root.join("index.html"), "home").unwrap();
    std::fs::write(root.join("a.txt"), "hello").unwrap();
    std::fs::write(root.join("sub/index.html"), "sub").unwrap();
    std::fs::write(base.join("secret"), "secret").unwrap();
    symlink(root.join("a.txt"), root.join("inside")).unwrap();
    symlink(base.join("secret"), root.join("out")).unwrap();
    symlink(&base, root.join("outdir")).unwrap();
    (Tree(base), root)
}

#[test]
fn resolution_table() {
    let (_t, root) = tree("resolve");
    let file = |p: &str| Ok(Resolved::File(root.canonicalize().unwrap().join(p)));
    let cases: Vec<(&str, Result<Resolved, Refusal>)> = vec![
        ("/", file("index.html")),
        ("/a.txt", file("a.txt")),
        ("/a.txt?x=1", file("a.txt")),
        ("/%61.txt", file("a.txt")),
        ("/sub/", file("sub/index.html")),
        ("/sub", Ok(Resolved::AddSlash)),
        ("/nodir/", Err(Refusal::NotFound)),
        ("/missing", Err(Refusal::NotFound)),
        ("/inside", file("a.txt")),
        ("/../secret", Err(Refusal::Forbidden)),
        ("/sub/../../secret", Err(Refusal::Forbidden)),
        ("/%2e%2e/secret", Err(Refusal::Forbidden)),
        ("/%2E%2E/secret", Err(Refusal::Forbidden)),
        ("/sub/%2e%2e%2f%2e%2e%2fsecret", Err(Refusal::Forbidden)),
        ("/..%5csecret", Err(Refusal::Forbidden)),
        ("/a.txt%00.html", Err(Refusal::Forbidden)),
        ("/%zz", Err(Refusal::Forbidden)),
        ("/out", Err(Refusal::Forbidden)),
        ("/outdir/secret", Err(Refusal::Forbidden)),
        ("/./a.txt", Err(Refusal::Forbidden)),
    ];
    for (path, want) in cases {
        assert_eq!(resolve(&root, path, "index.html"), want, "{path}");
    }
}

fn validators() -> Validators {
    Validators {
        etag: "\"5f5e1000-5\"".into(),
        modified: UNIX_EPOCH + Duration::from_secs(1_600_000_000),
        len: 1000,
    }
}

#[test]
fn conditional_and_range_table() {
    let v = validators();
    let lm = v.last_modified();
    let before = "Sat, 12 Sep 2020 12:26:39 GMT"; // one second before
    type Case<'a> = (Method, Vec<(&'static str, &'a str)>, Plan);
    let cases: Vec<Case<'_>> = vec![
        (Method::GET, vec![], Plan::Full),
        (
            Method::GET,
            vec![("if-none-match", "\"5f5e1000-5\"")],
            Plan::NotModified,
        ),
        (
            Method::HEAD,
            vec![("if-none-match", "W/\"5f5e1000-5\"")],
            Plan::NotModified,
        ),
        (
            Method::GET,
            vec![("if-none-match", "\"other\", *")],
            Plan::NotModified,
        ),
        (
            Method::GET,
            vec![("if-none-match", "\"other\"")],
            Plan::Full,
        ),
        (
            Method::GET,
            vec![("if-modified-since", &lm)],
            Plan::NotModified,
        ),
        (Method::GET, vec![("if-modified-since", before)], Plan::Full),
        // If-None-Match wins over If-Modified-Since.
        (
            Method::GET,
            vec![("if-none-match", "\"x\""), ("if-modified-since", &lm)],
            Plan::Full,
        ),
        (
            Method::GET,
            vec![("if-match", "\"x\"")],
            Plan::PreconditionFailed,
        ),
        (
            Method::GET,
            vec![("if-match", "W/\"5f5e1000-5\"")],
            Plan::PreconditionFailed,
        ),
        (
            Method::GET,
            vec![("if-unmodified-since", before)],
            Plan::PreconditionFailed,
        ),
        (
            Method::GET,
            vec![("range", "bytes=0-99")],
            Plan::Partial { start: 0, end: 99 },
        ),
        (
            Method::GET,
            vec![("range", "bytes=900-")],
            Plan::Partial {
                start: 900,
                end: 999,
            },
        ),
        (
            Method::GET,
            vec![("range", "bytes=-100")],
            Plan::Partial {
                start: 900,
                end: 999,
            },
        ),
        (
            Method::GET,
            vec![("range", "bytes=-5000")],
            Plan::Partial { start: 0, end: 999 },
        ),
        (
            Method::GET,
            vec![("range", "bytes=990-5000")],
            Plan::Partial {
                start: 990,
                end: 999,
            },
        ),
        (
            Method::GET,
            vec![("range", "bytes=1000-")],
            Plan::Unsatisfiable,
        ),
        (
            Method::GET,
            vec![("range", "bytes=-0")],
            Plan::Unsatisfiable,
        ),
        (Method::GET, vec![("range", "bytes=5-1")], Plan::Full),
        (Method::GET, vec![("range", "bytes=0-1,5-6")], Plan::Full),
        (Method::GET, vec![("range", "items=0-1")], Plan::Full),
        (Method::HEAD, vec![("range", "bytes=0-1")], Plan::Full),
        (
            Method::GET,
            vec![("range", "bytes=0-9"), ("if-range", "\"5f5e1000-5\"")],
            Plan::Partial { start: 0, end: 9 },
        ),
        (
            Method::GET,
            vec![("range", "bytes=0-9"), ("if-range", "\"old\"")],
            Plan::Full,
        ),
        (
            Method::GET,
            vec![("range", "bytes=0-9"), ("if-range", &lm)],
            Plan::Partial { start: 0, end: 9 },
        ),
        (
            Method::GET,
            vec![("range", "bytes=0-9"), ("if-range", before)],
            Plan::Full,
        ),
    ];
    for (method, hs, want) in cases {
        let mut headers = HeaderMap::new();
        for (k, val) in &hs {
            headers.insert(*k, val.parse().unwrap());
        }
        assert_eq!(plan(&method, &headers, &v), want, "{method} {hs:?}");
    }
}

#[test]
fn validators_from_metadata_are_stable() {
    let (_t, root) = tree("meta");
    let m = std::fs::metadata(root.join("a.txt")).unwrap();
    let a = Validators::of(&m).unwrap();
    let b = Validators::of(&m).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.len, 5);
    assert!(
        a.etag.starts_with('"') && a.etag.ends_with("-5\""),
        "{}",
        a.etag
    );
    assert!(a.last_modified().ends_with(" GMT"));
}

#[test]
fn content_types() {
    assert_eq!(
        content_type(Path::new("x/INDEX.HTML")),
        "text/html; charset=utf-8"
    );
    assert_eq!(content_type(Path::new("a.png")), "image/png");
    assert_eq!(content_type(Path::new("noext")), "application/octet-stream");
}
