//! Validation of `[[upstream]]` tables: URLs, timeouts, pools, protocols, PROXY headers.

use super::*;

impl Validator<'_> {
    pub(super) fn upstream(&mut self, i: usize, u: Spanned<raw::Upstream>) -> Upstream {
        let key = format!("upstream[{i}]");
        let span = u.span();
        let u = u.into_inner();
        if u.urls.is_empty() {
            self.err(
                format!("{key}.urls"),
                Some(span.clone()),
                "needs at least one URL",
            );
        }
        let mut urls = Vec::new();
        for (j, s) in u.urls.iter().enumerate() {
            match parse_upstream_url(s.get_ref()) {
                Ok(url) => urls.push(url),
                Err(e) => self.err(format!("{key}.urls[{j}]"), Some(s.span()), e),
            }
        }
        let ca =
            u.ca.as_ref()
                .map(|p| self.existing_file(&format!("{key}.ca"), &span, p));
        if let Some(n) = u.pool_size {
            if n > 10_000 {
                self.err(
                    format!("{key}.pool_size"),
                    Some(span.clone()),
                    "must be at most 10000",
                );
            }
        }
        Upstream {
            name: u.name,
            urls,
            ca,
            sni: u.sni,
            connect_timeout: u.connect_timeout.map_or(Duration::from_secs(5), |d| d.0),
            response_timeout: u.response_timeout.map_or(Duration::from_secs(60), |d| d.0),
            pool_size: u.pool_size.unwrap_or(32),
            retry_after: u.retry_after.map_or(Duration::from_secs(10), |d| d.0),
            preserve_host: u.preserve_host.unwrap_or(true),
            protocols: self.upstream_protocols(&key, u.protocols.as_ref()),
            send_proxy_protocol: self.send_proxy_protocol(&key, u.send_proxy_protocol.as_ref()),
        }
    }

    /// `send_proxy_protocol` of an upstream: `"v1"` or `"v2"`.
    pub(super) fn send_proxy_protocol(
        &mut self,
        key: &str,
        given: Option<&Spanned<String>>,
    ) -> Option<crate::http::proxy_protocol::Version> {
        use crate::http::proxy_protocol::Version;
        let given = given?;
        match given.get_ref().as_str() {
            "v1" => Some(Version::V1),
            "v2" => Some(Version::V2),
            other => {
                self.err(
                    format!("{key}.send_proxy_protocol"),
                    Some(given.span()),
                    format!("{other:?} is not \"v1\" or \"v2\" (leave the key out to send none)"),
                );
                None
            }
        }
    }

    /// `protocols` of an upstream: a non-empty list of `h2` and `http/1.1`, each once.
    pub(super) fn upstream_protocols(
        &mut self,
        key: &str,
        given: Option<&Spanned<Vec<String>>>,
    ) -> Vec<String> {
        let default = || vec!["http/1.1".to_owned()];
        let Some(given) = given else {
            return default();
        };
        let key = format!("{key}.protocols");
        self.protocol_list(key, given).unwrap_or_else(default)
    }
}
