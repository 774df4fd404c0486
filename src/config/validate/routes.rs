//! Validation of `[[listener.route]]` tables: matching keys, each action's keys, statuses.

use super::*;

impl Validator<'_> {
    pub(super) fn route(
        &mut self,
        key: &str,
        r: Spanned<raw::Route>,
        upstreams: &[String],
    ) -> Option<Route> {
        let span = r.span();
        let r = r.into_inner();
        let host = match r.host.as_deref() {
            None => None,
            Some(h) if h.starts_with("*.") && h.len() > 2 => {
                Some(HostMatch::Suffix(h[1..].to_ascii_lowercase()))
            }
            Some(h) if !h.is_empty() && !h.contains(['*', '/', ' ']) => {
                Some(HostMatch::Exact(h.to_ascii_lowercase()))
            }
            Some(h) => {
                self.err(
                    format!("{key}.host"),
                    Some(span.clone()),
                    format!("{h:?} is not a host name or *.suffix"),
                );
                None
            }
        };
        let p = r.path.clone().unwrap_or_else(|| "/".into());
        if !p.starts_with('/') {
            self.err(
                format!("{key}.path"),
                Some(span.clone()),
                "must start with /",
            );
        }
        let path = if r.exact {
            PathMatch::Exact(p)
        } else {
            PathMatch::Prefix(p)
        };
        let action_name = r.action.get_ref().clone();
        // Keys that belong to other actions are mistakes worth naming.
        let given: [(&str, bool); 15] = [
            ("path", r.path.is_some()),
            ("exact", r.exact),
            ("allow", r.allow.is_some()),
            ("connect_timeout", r.connect_timeout.is_some()),
            ("status", r.status.is_some()),
            ("content_type", r.content_type.is_some()),
            ("body", r.body.is_some()),
            ("root", r.root.is_some()),
            ("index", r.index.is_some()),
            ("upstream", r.upstream.is_some()),
            ("upgrade", r.upgrade.is_some()),
            ("tunnel_idle_timeout", r.tunnel_idle_timeout.is_some()),
            ("to", r.to.is_some()),
            ("compress", r.compress.is_some()),
            ("compress_min_size", r.compress_min_size.is_some()),
        ];
        const PATHS: [&str; 2] = ["path", "exact"];
        let allowed: &[&str] = match action_name.as_str() {
            // (CONNECT has no path: its target is `host:port`.)
            "connect" => &["allow", "connect_timeout", "tunnel_idle_timeout"],
            "static" => &[
                PATHS[0],
                PATHS[1],
                "status",
                "content_type",
                "body",
                "compress",
                "compress_min_size",
            ],
            "files" => &[
                PATHS[0],
                PATHS[1],
                "root",
                "index",
                "compress",
                "compress_min_size",
            ],
            "proxy" => &[
                PATHS[0],
                PATHS[1],
                "upstream",
                "compress",
                "compress_min_size",
                "upgrade",
                "tunnel_idle_timeout",
            ],
            "redirect" => &[PATHS[0], PATHS[1], "to", "status"],
            "health" | "metrics" => &PATHS,
            other => {
                self.err(
                    format!("{key}.action"),
                    Some(r.action.span()),
                    format!(
                        "{other:?} is not one of static, files, proxy, connect, redirect, \
                         health, metrics"
                    ),
                );
                return None;
            }
        };
        for (k, set) in given {
            if set && !allowed.contains(&k) {
                self.err(
                    format!("{key}.{k}"),
                    Some(span.clone()),
                    format!("not used by action {action_name:?}"),
                );
            }
        }
        let mut compress = match action_name.as_str() {
            "static" | "files" => Compress::on(),
            _ => Compress::off(),
        };
        if let Some(list) = &r.compress {
            compress.encodings.clear();
            for e in list {
                let enc = match e.get_ref().as_str() {
                    "br" => Encoding::Br,
                    "gzip" => Encoding::Gzip,
                    other => {
                        self.err(
                            format!("{key}.compress"),
                            Some(e.span()),
                            format!("{other:?} is not \"br\" or \"gzip\""),
                        );
                        continue;
                    }
                };
                if compress.encodings.contains(&enc) {
                    self.err(
                        format!("{key}.compress"),
                        Some(e.span()),
                        format!("{:?} is listed twice", enc.token()),
                    );
                }
                compress.encodings.push(enc);
            }
        }
        if let Some(n) = r.compress_min_size {
            compress.min_size = n.0;
        }
        let action = match action_name.as_str() {
            "static" => Action::Static {
                status: self.status(key, &span, r.status.unwrap_or(200), false)?,
                content_type: r
                    .content_type
                    .unwrap_or_else(|| "text/plain; charset=utf-8".into()),
                body: Arc::from(r.body.unwrap_or_default().into_bytes()),
            },
            "files" => {
                let Some(root) = r.root else {
                    self.err(format!("{key}.root"), Some(span), "files needs root");
                    return None;
                };
                let root = self.path(&root);
                if !root.is_dir() {
                    self.err(
                        format!("{key}.root"),
                        Some(span.clone()),
                        format!("{} is not a directory", root.display()),
                    );
                }
                let index = r.index.unwrap_or_else(|| "index.html".into());
                if index.contains('/') || index == ".." {
                    self.err(
                        format!("{key}.index"),
                        Some(span),
                        "must be a plain file name",
                    );
                }
                Action::Files { root, index }
            }
            "proxy" => {
                let Some(name) = r.upstream else {
                    self.err(
                        format!("{key}.upstream"),
                        Some(span),
                        "proxy needs upstream",
                    );
                    return None;
                };
                let tunnel_idle_timeout = r
                    .tunnel_idle_timeout
                    .map_or(Duration::from_secs(60), |d| d.0);
                if tunnel_idle_timeout.is_zero() {
                    self.err(
                        format!("{key}.tunnel_idle_timeout"),
                        Some(span.clone()),
                        "must be more than 0",
                    );
                }
                match upstreams.iter().position(|u| *u == name) {
                    Some(upstream) => Action::Proxy {
                        upstream,
                        upgrade: r.upgrade.unwrap_or(true),
                        tunnel_idle_timeout,
                    },
                    None => {
                        self.err(
                            format!("{key}.upstream"),
                            Some(span),
                            format!("no [[upstream]] named {name:?}"),
                        );
                        return None;
                    }
                }
            }
            "redirect" => {
                let Some(to) = r.to else {
                    self.err(format!("{key}.to"), Some(span), "redirect needs to");
                    return None;
                };
                Action::Redirect {
                    to,
                    status: self.status(key, &span, r.status.unwrap_or(301), true)?,
                }
            }
            "connect" => self.connect(key, &span, &r)?,
            "health" => Action::Health,
            _ => Action::Metrics,
        };
        Some(Route {
            host,
            path,
            action,
            compress,
        })
    }

    /// A `connect` route's keys.
    pub(super) fn connect(
        &mut self,
        key: &str,
        span: &std::ops::Range<usize>,
        r: &raw::Route,
    ) -> Option<Action> {
        let Some(list) = &r.allow else {
            self.err(
                format!("{key}.allow"),
                Some(span.clone()),
                "connect needs allow = [\"host:port\", ...]: the targets it may reach",
            );
            return None;
        };
        if list.is_empty() {
            self.err(
                format!("{key}.allow"),
                Some(span.clone()),
                "must name at least one target (an empty list would allow nothing)",
            );
        }
        let mut entries = Vec::new();
        for (j, e) in list.iter().enumerate() {
            match AllowEntry::parse(e.get_ref()) {
                Ok(entry) => entries.push(entry),
                Err(why) => self.err(format!("{key}.allow[{j}]"), Some(e.span()), why),
            }
        }
        let mut duration = |name: &str, given: Option<Duration>, default: u64| {
            let d = given.unwrap_or(Duration::from_secs(default));
            if d.is_zero() {
                self.err(
                    format!("{key}.{name}"),
                    Some(span.clone()),
                    "must be more than 0",
                );
            }
            d
        };
        // As upstreams' `connect_timeout`.
        let connect_timeout = duration("connect_timeout", r.connect_timeout.map(|d| d.0), 5);
        let tunnel_idle_timeout = duration(
            "tunnel_idle_timeout",
            r.tunnel_idle_timeout.map(|d| d.0),
            60,
        );
        Some(Action::Connect {
            allow: Allow { entries },
            connect_timeout,
            tunnel_idle_timeout,
        })
    }

    pub(super) fn status(
        &mut self,
        key: &str,
        span: &std::ops::Range<usize>,
        code: u16,
        redirect: bool,
    ) -> Option<::http::StatusCode> {
        let ok = if redirect {
            matches!(code, 301 | 302 | 303 | 307 | 308)
        } else {
            (200..=599).contains(&code)
        };
        match ::http::StatusCode::from_u16(code) {
            Ok(s) if ok => Some(s),
            _ => {
                let want = if redirect {
                    "301, 302, 303, 307 or 308"
                } else {
                    "200..=599"
                };
                self.err(
                    format!("{key}.status"),
                    Some(span.clone()),
                    format!("{code} is not {want}"),
                );
                None
            }
        }
    }
}
