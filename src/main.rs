//! The `paf` command line. clap lives here only; everything else is the library.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod request_cli;
mod run_signals;
mod run_site;
mod run_workers;
use paf::Runtime;
use run_signals::stop_on_signals;

/// mimalloc for small blocks, glibc's malloc for socket buffers (`net::alloc`).
#[global_allocator]
static ALLOC: net::alloc::Split = net::alloc::Split;

#[derive(Parser)]
#[command(
    name = "paf",
    version,
    about = "HTTP/HTTPS appliance on its own userspace TCP/IP stack"
)]
struct Cli {
    /// Log level (error, warn, info, debug, trace) when RUST_LOG is not set.
    #[arg(long, global = true, default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// TCP echo server (for tests and stack checks).
    Echo(EchoArgs),
    /// The appliance: listeners and routes from --config (or the embedded default: a small page
    /// on `/`, `/health`, `/metrics` on port 80), logging each request. SIGINT/SIGTERM stop it
    /// gracefully (in-flight responses finish); a second signal, a second or more later, exits at
    /// once. SIGHUP reloads --config (see `paf reload`); SIGUSR1 reopens the access logs. A bad
    /// config exits 2 before the TAP is touched.
    Run(RunArgs),
    /// Reload a running `paf run`: send SIGHUP to the pid in its --pid-file. The new config is
    /// validated first; a bad one is refused (logged with key and line, counted in
    /// `paf_reloads_total{result="failed"}`) and the running one keeps serving.
    Reload(ReloadArgs),
    /// Validate a config file: every problem with its key and line; exit 2 if any.
    Check(CheckArgs),
    /// Configuration helpers.
    Config(ConfigArgs),
    /// Write a test CA and a server certificate signed by it (ECDSA P-256), for tests and demos.
    Cert(CertArgs),
    /// HTTP(S) client, curl-like, over the chosen stack: the body goes to stdout (or -o); the
    /// exit code names the failure (6 resolution, 7 connection, 28 timeout, 35/60 TLS, …).
    Request(RequestArgs),
}

/// Which TCP/IP stack serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum StackKind {
    /// paf's userspace stack (smoltcp) on a TAP device.
    Userspace,
    /// The host kernel's stack (sockets), for comparison.
    Kernel,
}

/// How to attach to the network.
#[derive(Args, Clone, Debug)]
struct NetArgs {
    /// TAP device to attach to (userspace stack).
    #[arg(long, default_value = "paf0")]
    tap: String,
    /// Which stack to use.
    #[arg(long, value_enum, default_value_t = StackKind::Userspace)]
    stack: StackKind,
    /// Address the kernel stack binds (with --stack kernel).
    #[arg(long, default_value = "::")]
    bind: IpAddr,
    /// IPv4 address/prefix of the userspace stack.
    #[arg(long, default_value = "198.18.0.2/24")]
    ipv4: String,
    /// IPv4 default gateway.
    #[arg(long, default_value = "198.18.0.1")]
    gateway4: Ipv4Addr,
    /// IPv6 address/prefix of the userspace stack.
    #[arg(long, default_value = "fd00:198:18::2/64")]
    ipv6: String,
    /// IPv6 default gateway.
    #[arg(long, default_value = "fd00:198:18::1")]
    gateway6: Ipv6Addr,
    /// Get the IPv4 address, gateway and DNS servers by DHCP instead of --ipv4.
    #[arg(long)]
    dhcp: bool,
    /// Set the TAP's MTU first (jumbo frames up to 65521).
    #[arg(long)]
    mtu: Option<usize>,
    /// Write every frame to this pcap file.
    #[arg(long)]
    pcap: Option<PathBuf>,
    /// Send plain MTU-sized frames to the TAP (no virtio-net header, no kernel segmentation).
    #[arg(long, conflicts_with = "no_tso")]
    no_offload: bool,
    /// MTU-sized frames both ways (no kernel segmentation, as `ethtool -K tso off gso off gro
    /// off`), TCP checksums still left to the kernel.
    #[arg(long)]
    no_tso: bool,
    /// TCP receive and send buffer per connection, bytes.
    #[arg(long, default_value_t = 256 * 1024)]
    tcp_buffer: usize,
}

#[derive(Args)]
struct EchoArgs {
    #[command(flatten)]
    net: NetArgs,
    /// Port to listen on.
    #[arg(long, default_value_t = 7)]
    port: u16,
    /// Most half-open connections (handshake under way) at once; more SYNs wait for a retry.
    #[arg(long, default_value_t = paf::service::DEFAULT_BACKLOG)]
    backlog: usize,
    /// What to do with connections.
    #[arg(long, value_enum, default_value_t = EchoMode::Echo)]
    mode: EchoMode,
    /// Bytes to send per connection with `--mode source`.
    #[arg(long, default_value_t = 100_000_000)]
    source_bytes: u64,
}

/// Test app modes of `paf echo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum EchoMode {
    /// Send every byte back.
    Echo,
    /// Read and drop.
    Discard,
    /// Send --source-bytes bytes, then close.
    Source,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    net: NetArgs,
    /// Appliance config file (TOML; see README). Without it, the embedded default.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Port to serve HTTP on.
    #[arg(long, default_value_t = 80)]
    port: u16,
    /// Most half-open connections (handshake under way) at once; more SYNs wait for a retry.
    #[arg(long, default_value_t = paf::service::DEFAULT_BACKLOG)]
    backlog: usize,
    /// A request head must arrive within this time (slowloris guard): `60s`, `500ms`, `2m`.
    #[arg(long, value_parser = duration, default_value = "60s")]
    head_timeout: Duration,
    /// Idle keep-alive connections close after this time.
    #[arg(long, value_parser = duration, default_value = "75s")]
    idle_timeout: Duration,
    /// On SIGINT/SIGTERM, how long in-flight exchanges may take to finish.
    #[arg(long, value_parser = duration, default_value = "30s")]
    drain_timeout: Duration,
    /// Largest request body accepted, in bytes (413 beyond).
    #[arg(long, default_value_t = 1024 * 1024)]
    max_body: u64,
    /// Also serve HTTPS with this certificate chain (PEM; needs --key).
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Port to serve HTTPS on (with --cert/--key).
    #[arg(long, default_value_t = 443)]
    tls_port: u16,
    /// Also serve the test routes, for end-to-end tests and benchmarks: `GET /bench` (12 bytes),
    /// `POST /echo` (body back), `POST /count` (streamed byte count and FNV-1a hash),
    /// `GET /blob?size=N` (N pattern bytes, streamed).
    #[arg(long)]
    test_routes: bool,
    /// Access log: a file (appended to, reopened on SIGUSR1), `stderr` or `-`, or `off`.
    /// Default: stderr. With --config, the file's `access_log` keys decide instead. A log
    /// filter that turns `paf::access` off (`RUST_LOG=info,paf::access=off`) turns every
    /// access log off.
    #[arg(long, value_name = "PATH")]
    access_log: Option<String>,
    /// Access-log line format.
    #[arg(long, value_enum, value_name = "FORMAT")]
    access_log_format: Option<LogFormat>,
    /// Write the process id to FILE once serving (for `paf reload --pid-file FILE`); removed at
    /// exit.
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// Worker threads, each with its own loop and stack (overrides `[interface] workers`), for
    /// the appliance and for --test-routes/--cert: on its own queue of a multi-queue TAP, or,
    /// with the kernel stack, its own listening sockets (`SO_REUSEPORT`). Default: one per core
    /// the process may use (one with a pcap capture).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    workers: Option<u16>,
    /// Pin worker K to the K-th core the process may use (as `[interface] pin = true`).
    #[arg(long)]
    pin: bool,
}

#[derive(Args)]
struct ReloadArgs {
    /// The pid file of the `paf run` to reload (its --pid-file).
    #[arg(long, value_name = "FILE")]
    pid_file: PathBuf,
}

/// Access-log line formats (see README, "Access logs").
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// nginx's `combined`.
    Combined,
    /// One JSON object per line.
    Json,
    /// paf's own line.
    Paf,
}

#[derive(Args)]
struct CheckArgs {
    /// The config file to validate.
    #[arg(long)]
    config: PathBuf,
}

#[derive(Args)]
struct ConfigArgs {
    /// Print the embedded default configuration.
    #[arg(long)]
    print_default: bool,
}

#[derive(Args)]
struct CertArgs {
    /// Directory to write ca.pem, cert.pem and key.pem into.
    #[arg(long, default_value = "paf-pki")]
    out: PathBuf,
    /// Names (DNS names or IP addresses) the server certificate is valid for.
    #[arg(long = "name", default_values = ["paf.test", "localhost", "198.18.0.2", "fd00:198:18::2"])]
    names: Vec<String>,
}

/// A failed command: its message and exit code (2 for bad configuration or usage).
struct Failure {
    code: u8,
    message: String,
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure { code: 1, message }
    }
}

/// Parses `500ms`, `3s`, `2m` or a plain number of seconds.
fn duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, "s"), |i| s.split_at(i));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s}: expected a duration such as 500ms, 3s or 2m"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("{s}: unknown unit {unit:?} (ms, s, m)")),
    }
}

fn cidr<A: std::str::FromStr>(flag: &str, s: &str) -> Result<(A, u8), String> {
    let (a, p) = s
        .split_once('/')
        .ok_or_else(|| format!("--{flag} {s}: expected ADDRESS/PREFIX"))?;
    let a = a
        .parse()
        .map_err(|_| format!("--{flag} {s}: bad address"))?;
    let p = p.parse().map_err(|_| format!("--{flag} {s}: bad prefix"))?;
    Ok((a, p))
}

fn runtime(n: &NetArgs) -> Result<Runtime, String> {
    if n.stack == StackKind::Kernel {
        return Runtime::kernel(n.bind).map_err(|e| format!("kernel stack: {e}"));
    }
    let config = stack_config(n)?;
    Runtime::tap(&n.tap, n.mtu, config, n.pcap.as_deref())
        .map_err(|e| format!("tap {}: {e}", n.tap))
}

/// The userspace stack's configuration from the flags.
fn stack_config(n: &NetArgs) -> Result<net::Config, String> {
    let (v4, p4) = cidr::<Ipv4Addr>("ipv4", &n.ipv4)?;
    let (v6, p6) = cidr::<Ipv6Addr>("ipv6", &n.ipv6)?;
    let mut config = net::Config {
        ipv4: if n.dhcp {
            net::Ipv4Setting::Dhcp
        } else {
            net::Ipv4Setting::Static {
                addr: v4,
                prefix: p4,
                gateway: Some(n.gateway4),
            }
        },
        ipv6: net::Ipv6Setting::Static {
            addr: v6,
            prefix: p6,
            gateway: Some(n.gateway6),
        },
        ..net::Config::default()
    };
    config.tcp.rx_buffer = n.tcp_buffer;
    config.tcp.tx_buffer = n.tcp_buffer;
    config.offload = if n.no_offload {
        net::Offload::Off
    } else if n.no_tso {
        net::Offload::Checksum
    } else {
        net::Offload::Full
    };
    Ok(config)
}

fn echo(args: EchoArgs) -> Result<(), String> {
    let mut rt = runtime(&args.net)?;
    let mode = match args.mode {
        EchoMode::Echo => paf::echo::Mode::Echo,
        EchoMode::Discard => paf::echo::Mode::Discard,
        EchoMode::Source => paf::echo::Mode::Source(args.source_bytes),
    };
    rt.add(paf::echo::Echo::new(mode), |app, cx| {
        app.listen(cx, args.port, args.backlog).map(|_| ())
    })
    .map_err(|e| format!("listen on port {}: {e}", args.port))?;
    log::info!(
        "echo: listening on port {} ({:?} stack)",
        args.port,
        args.net.stack
    );
    eprintln!("paf echo: listening on port {}", args.port);
    let stop = stop_on_signals(&rt)?;
    rt.run_until(|_| stop.load(Ordering::SeqCst))
        .map_err(|e| format!("event loop: {e}"))?;
    log::info!("echo: stopped");
    Ok(())
}

/// The access log the flags ask for; `None` for `off`, or when the log filter turns
/// `paf::access` off.
fn access_log_flags(args: &RunArgs) -> Option<paf::config::AccessLog> {
    use paf::config::{AccessLog, AccessLogTarget};
    use paf::service::access_log::Format;
    if !log::log_enabled!(target: "paf::access", log::Level::Info) {
        return None;
    }
    let target = match args.access_log.as_deref() {
        None | Some("stderr" | "-") => AccessLogTarget::Stderr,
        Some("off") => return None,
        Some(p) => AccessLogTarget::File(PathBuf::from(p)),
    };
    let format = match args.access_log_format {
        None | Some(LogFormat::Combined) => Format::Combined,
        Some(LogFormat::Json) => Format::Json,
        Some(LogFormat::Paf) => Format::Paf,
    };
    Some(AccessLog { target, format })
}

/// The access logs the log filter allows: none when it turns `paf::access` off.
fn filter_access_logs(config: &mut paf::config::Config) {
    if !log::log_enabled!(target: "paf::access", log::Level::Info) {
        for l in &mut config.listeners {
            l.access_log = None;
        }
    }
}

fn load_config(path: Option<&std::path::Path>) -> Result<paf::config::Config, Failure> {
    match path {
        None => Ok(paf::config::default_config()),
        Some(p) => paf::config::load(p).map_err(|e| Failure {
            code: 2,
            message: format!("invalid configuration:\n{e}"),
        }),
    }
}

/// `paf run` without test routes or certificate flags: the config-driven appliance.
fn run_appliance(args: RunArgs) -> Result<(), Failure> {
    let mut config = load_config(args.config.as_deref())?;
    if args.config.is_some() && (args.access_log.is_some() || args.access_log_format.is_some()) {
        return Err(Failure {
            code: 2,
            message: "--access-log cannot be combined with --config (set access_log in the file)"
                .into(),
        });
    }
    if args.config.is_none() {
        let log = access_log_flags(&args);
        for l in &mut config.listeners {
            l.access_log = log.clone();
        }
    } else {
        filter_access_logs(&mut config);
    }
    if args.config.is_none() {
        // The default config is the command line's: its flags shape the listener and its limits.
        // A config file's own limits (`[defaults]`, `limits`) are left as written.
        if let Some(l) = config.listeners.first_mut() {
            l.port = args.port;
            l.limits.backlog = args.backlog;
        }
        for l in &mut config.listeners {
            let h = &mut l.limits.http;
            h.head_timeout = args.head_timeout;
            h.idle_timeout = args.idle_timeout;
            h.drain_timeout = args.drain_timeout;
            h.max_body_size = Some(args.max_body);
        }
    }
    run_workers::run_workers(args, config)
}

fn run(args: RunArgs) -> Result<(), Failure> {
    if !args.test_routes && args.cert.is_none() {
        return run_appliance(args);
    }
    if args.config.is_some() {
        return Err(Failure {
            code: 2,
            message: "--config cannot be combined with --test-routes or --cert".into(),
        });
    }
    run_site::run_site(args)
}

fn check(args: CheckArgs) -> Result<(), Failure> {
    let c = load_config(Some(&args.config))?;
    println!(
        "{}: ok ({} listener(s), {} upstream(s))",
        args.config.display(),
        c.listeners.len(),
        c.upstreams.len()
    );
    for l in &c.listeners {
        if let paf::config::Protocol::Https {
            acme: Some(a),
            certificate,
            ..
        } = &l.protocol
        {
            println!(
                "listener {:?}: acme {} for {} from {} (state in {}; until issued: {})",
                l.name,
                a.challenge.name(),
                a.domains.join(", "),
                a.directory,
                a.state_dir.display(),
                if certificate.is_some() {
                    "the certificate"
                } else {
                    "a self-signed certificate"
                }
            );
        }
    }
    Ok(())
}

fn config_cmd(args: ConfigArgs) -> Result<(), Failure> {
    if !args.print_default {
        return Err(Failure {
            code: 2,
            message: "nothing to do: try `paf config --print-default`".into(),
        });
    }
    print!("{}", paf::config::DEFAULT);
    Ok(())
}

fn cert(args: CertArgs) -> Result<(), Failure> {
    let names: Vec<&str> = args.names.iter().map(String::as_str).collect();
    let p = paf::tls::certs::write_test_pki(&args.out, &names).map_err(|e| e.to_string())?;
    println!("CA certificate:     {}", p.ca_cert.display());
    println!("server certificate: {}", p.cert.display());
    println!("server key:         {}", p.key.display());
    println!("valid for: {}", names.join(", "));
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(cli.log.as_str()))
        .init();
    // TCP buffers of this size and larger get fresh, lazily zeroed pages: an idle connection
    // costs the pages its traffic touched, not its whole buffers.
    net::lazy_buffer_memory(net::alloc::LARGE);
    let result = match cli.command {
        Command::Echo(a) => echo(a).map_err(Failure::from),
        Command::Run(a) => run(a),
        Command::Check(a) => check(a),
        Command::Reload(a) => run_signals::reload(&a),
        Command::Config(a) => config_cmd(a),
        Command::Cert(a) => cert(a),
        Command::Request(a) => return request(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("paf: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

#[derive(Args)]
struct RequestArgs {
    #[command(flatten)]
    net: NetArgs,
    /// The URL (http:// or https://).
    url: String,
    /// Method (default GET, or POST with -d).
    #[arg(short = 'X', long = "request")]
    method: Option<String>,
    /// Extra header, "Name: value" (repeatable).
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// Request body; @FILE reads it from FILE.
    #[arg(short = 'd', long = "data")]
    data: Option<String>,
    /// Trust only the CAs in this PEM file (default: the webpki roots).
    #[arg(long)]
    cacert: Option<PathBuf>,
    /// Accept any server certificate.
    #[arg(short = 'k', long)]
    insecure: bool,
    /// Offer HTTP/2 by ALPN on https URLs (then HTTP/1.1); the server picks.
    #[arg(long)]
    http2: bool,
    /// Speak HTTP/2 from the first byte on http URLs (h2c); implies --http2 for https.
    #[arg(long)]
    http2_prior_knowledge: bool,
    /// Write the body to FILE instead of stdout.
    #[arg(short = 'o', long = "output")]
    output: Option<PathBuf>,
    /// Show the request and response heads on stderr.
    #[arg(short = 'v', long)]
    verbose: bool,
    /// DNS server to ask (repeatable; default: from the configuration, DHCP, or, with
    /// --stack kernel, /etc/resolv.conf).
    #[arg(long = "dns")]
    dns: Vec<IpAddr>,
    /// Resolve names to IPv4 addresses only.
    #[arg(short = '4', conflicts_with = "ipv6_only")]
    ipv4_only: bool,
    /// Resolve names to IPv6 addresses only.
    #[arg(short = '6')]
    ipv6_only: bool,
    /// Follow redirects (at most --max-redirs).
    #[arg(short = 'L', long)]
    location: bool,
    /// Most redirects followed with -L.
    #[arg(long, default_value_t = 10)]
    max_redirs: usize,
    /// Give up after this long (e.g. 10s, 500ms).
    #[arg(short = 'm', long, value_parser = duration)]
    max_time: Option<Duration>,
}

/// The runtime for `paf request`: like [`runtime`], with the DNS servers given, and, with
/// --dhcp, after the lease is in (an address and the DNS servers to use).
fn request_runtime(n: &NetArgs, dns: &[IpAddr]) -> Result<Runtime, String> {
    let now = std::time::Instant::now;
    if n.stack == StackKind::Kernel {
        let mut k = net::kernel::KernelStack::new(n.bind, now())
            .map_err(|e| format!("kernel stack: {e}"))?;
        if !dns.is_empty() {
            k.set_dns_servers(dns.to_vec());
        }
        return Runtime::new(Box::new(k)).map_err(|e| format!("kernel stack: {e}"));
    }
    let mut config = stack_config(n)?;
    config.dns_servers = dns.to_vec();
    let tap = net::device::Tap::open_with(&n.tap, n.mtu, config.offload)
        .map_err(|e| format!("tap {}: {e}", n.tap))?;
    let mut device = net::device::Device::new(net::device::Link::Tap(tap));
    if let Some(p) = &n.pcap {
        device
            .capture_to(p)
            .map_err(|e| format!("cannot write pcap {}: {e}", p.display()))?;
    }
    let mut stack = net::Stack::new(config, device, now()).map_err(|e| e.to_string())?;
    if n.dhcp {
        let deadline = now() + Duration::from_secs(15);
        while stack.ipv4().is_none() {
            if now() >= deadline {
                return Err("dhcp: no lease within 15 s".to_owned());
            }
            net::Transport::poll(&mut stack, now());
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Runtime::new(Box::new(stack)).map_err(|e| format!("tap {}: {e}", n.tap))
}

fn request(args: RequestArgs) -> ExitCode {
    use crate::request_cli::{self as cli, Failure};
    let fail = |f: Failure| {
        eprintln!("paf request: {f}");
        ExitCode::from(f.exit_code())
    };
    let method = match args.method.as_deref().map(|m| m.parse::<::http::Method>()) {
        None => None,
        Some(Ok(m)) => Some(m),
        Some(Err(e)) => return fail(Failure::Usage(format!("-X: {e}"))),
    };
    let data = match args.data.as_deref() {
        Some(d) if d.starts_with('@') => match std::fs::read(&d[1..]) {
            Ok(b) => Some(b),
            Err(e) => return fail(Failure::Usage(format!("-d {d}: {e}"))),
        },
        Some(d) => Some(d.as_bytes().to_vec()),
        None => None,
    };
    let mut rt = match request_runtime(&args.net, &args.dns) {
        Ok(rt) => rt,
        Err(e) => return fail(Failure::Usage(e)),
    };
    let stack = paf::client::Agent::attach(&mut rt, paf::client::Options::default());
    let req = cli::Request {
        method,
        url: args.url,
        headers: args.headers,
        data,
        output: args.output,
        verbose: args.verbose,
        insecure: args.insecure,
        cacert: args.cacert,
        http2: args.http2 || args.http2_prior_knowledge,
        http2_prior_knowledge: args.http2_prior_knowledge,
        family: match (args.ipv4_only, args.ipv6_only) {
            (true, _) => paf::client::Family::V4,
            (_, true) => paf::client::Family::V6,
            _ => paf::client::Family::Any,
        },
        redirects: if args.location { args.max_redirs } else { 0 },
        max_time: args.max_time,
    };
    match cli::run(&mut rt, &stack, &req) {
        Ok(status) => {
            log::debug!("request: status {status}");
            ExitCode::SUCCESS
        }
        Err(f) => fail(f),
    }
}
