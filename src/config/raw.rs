//! The config file as written: serde structs that reject unknown keys. [`super::load`] turns
//! them into the validated [`super::Config`].

use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::units::{Dur, Size};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    #[serde(default)]
    pub interface: Option<Spanned<Interface>>,
    #[serde(default)]
    pub defaults: Option<Spanned<Limits>>,
    #[serde(default, rename = "listener")]
    pub listeners: Vec<Spanned<Listener>>,
    #[serde(default, rename = "upstream")]
    pub upstreams: Vec<Spanned<Upstream>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Interface {
    pub tap: Option<String>,
    pub stack: Option<Spanned<String>>,
    pub bind: Option<IpAddr>,
    pub mac: Option<Spanned<String>>,
    pub mtu: Option<Spanned<usize>>,
    pub ipv4: Option<Spanned<String>>,
    pub gateway4: Option<IpAddr>,
    pub ipv6: Option<Spanned<String>>,
    pub gateway6: Option<IpAddr>,
    #[serde(default)]
    pub dhcp: bool,
    #[serde(default)]
    pub dns: Vec<IpAddr>,
    pub pcap: Option<PathBuf>,
    pub tcp_buffer: Option<Spanned<Size>>,
    pub tcp_min_rto: Option<Spanned<Dur>>,
    pub workers: Option<Spanned<usize>>,
    #[serde(default)]
    pub pin: bool,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Limits {
    pub backlog: Option<usize>,
    pub max_head_size: Option<Size>,
    pub max_headers: Option<usize>,
    pub max_body_size: Option<Size>,
    pub body_buffer_size: Option<Size>,
    pub head_timeout: Option<Dur>,
    pub idle_timeout: Option<Dur>,
    pub body_timeout: Option<Dur>,
    pub write_timeout: Option<Dur>,
    pub drain_timeout: Option<Dur>,
    pub handshake_timeout: Option<Dur>,
    pub max_concurrent_streams: Option<u32>,
    pub max_connections_per_ip: Option<u32>,
    pub rate: Option<String>,
    pub burst: Option<u32>,
    pub abuse_delay: Option<Dur>,
    /// `[defaults]` only: the access log of listeners that set none.
    pub access_log: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Sni {
    pub name: String,
    pub certificate: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Listener {
    pub name: String,
    pub port: Spanned<u16>,
    #[serde(default = "http")]
    pub protocol: Spanned<String>,
    pub certificate: Option<PathBuf>,
    pub key: Option<PathBuf>,
    #[serde(default)]
    pub sni: Vec<Spanned<Sni>>,
    /// `acme = { directory = "…", domains = […], … }`: certificates ordered by ACME.
    pub acme: Option<Spanned<Acme>>,
    pub protocols: Option<Spanned<Vec<String>>>,
    pub h2c: Option<Spanned<bool>>,
    pub proxy_protocol: Option<Spanned<bool>>,
    pub proxy_protocol_trusted: Option<Spanned<Vec<String>>>,
    /// `false`, `true` (the default log) or `{ path = "…", format = "…" }`.
    pub access_log: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default, rename = "route")]
    pub routes: Vec<Spanned<Route>>,
}

/// A listener's `acme` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Acme {
    pub directory: Spanned<String>,
    #[serde(default)]
    pub contact: Vec<Spanned<String>>,
    pub domains: Spanned<Vec<Spanned<String>>>,
    pub challenge: Option<Spanned<String>>,
    pub ca: Option<Spanned<PathBuf>>,
    pub state_dir: Spanned<PathBuf>,
}

fn http() -> Spanned<String> {
    Spanned::new(0..0, "http".to_string())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Route {
    pub host: Option<String>,
    pub path: Option<String>,
    #[serde(default)]
    pub exact: bool,
    pub action: Spanned<String>,
    // static
    pub status: Option<u16>,
    pub content_type: Option<String>,
    pub body: Option<String>,
    // files
    pub root: Option<PathBuf>,
    pub index: Option<String>,
    // proxy
    pub upstream: Option<String>,
    pub upgrade: Option<bool>,
    pub tunnel_idle_timeout: Option<Dur>,
    // connect
    pub allow: Option<Vec<Spanned<String>>>,
    pub connect_timeout: Option<Dur>,
    // redirect
    pub to: Option<String>,
    // static, files
    pub compress: Option<Vec<Spanned<String>>>,
    pub compress_min_size: Option<Size>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Upstream {
    pub name: String,
    pub urls: Vec<Spanned<String>>,
    pub ca: Option<PathBuf>,
    pub sni: Option<String>,
    pub connect_timeout: Option<Dur>,
    pub response_timeout: Option<Dur>,
    pub pool_size: Option<usize>,
    pub retry_after: Option<Dur>,
    pub preserve_host: Option<bool>,
    pub protocols: Option<Spanned<Vec<String>>>,
    pub send_proxy_protocol: Option<Spanned<String>>,
}
