//! Reloading a running appliance with a new [`Config`]: what changes ([`Plan`], a pure diff of
//! two configs), why a reload is refused ([`ReloadError`]), and [`Appliance::reload`].
//!
//! Contract:
//! - A reload is all or nothing. The new file is validated first (the errors of `paf check`,
//!   with key and line); then every certificate, access-log file, upstream CA and new port is
//!   opened before anything running is touched. Any failure leaves the running configuration
//!   serving, unchanged, and is counted in `paf_reloads_total{result="failed"}`.
//! - Listeners are matched by port. A port in both configs keeps its listening socket (it is
//!   handed to a new service, never closed: no SYN is refused); a port only in the new one is
//!   opened; a port only in the old one stops accepting and its connections drain, as at a stop.
//! - Per request, from the reload on, on every connection: routes and upstreams (the route table
//!   is taken when a request starts, so a request in flight finishes on the one it started
//!   with). Per connection, for connections accepted from the reload on: TLS certificates,
//!   limits and timeouts, the access log. A connection accepted before keeps those of its
//!   configuration until it closes. The per-client counts of a port go on (its
//!   [`ClientTable`](crate::service::ClientTable) is kept, on every worker).
//! - Upstreams equal to the running ones are kept with their pools of idle connections;
//!   changed upstreams get new client agents (the old ones finish their requests, then go).
//! - `[interface]` (TAP, stack, addresses, MAC, MTU, DNS, TCP buffers, pcap) and a kept
//!   listener's `backlog` cannot change while running: the rest of the reload applies, and the
//!   log names what needs a restart. The running interface stays the one started with.

use std::fmt;
use std::path::Path;

use super::{Appliance, StartError};
use crate::config::{Config, Errors, Interface};
use crate::runtime::Runtime;

/// What a reload from one config to another changes, listener by listener (matched by port).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Listeners whose port is in both: `(name in the new config, port)`. Their socket is
    /// kept.
    pub kept: Vec<(String, u16)>,
    /// Listeners on new ports: opened.
    pub added: Vec<(String, u16)>,
    /// Listeners of the old config on ports the new one does not have: they stop accepting
    /// and drain.
    pub removed: Vec<(String, u16)>,
    /// Kept listeners whose name changed: `(old, new)` (their metrics series change name).
    pub renamed: Vec<(String, String)>,
    /// `[interface]` fields that differ: not applied, they need a restart.
    pub interface: Vec<&'static str>,
    /// Kept listeners whose `backlog` differs: not applied (the listening socket is kept).
    pub backlog: Vec<String>,
    /// Whether the upstreams differ (new client agents and pools) or are kept as running.
    pub upstreams_changed: bool,
}

impl Plan {
    /// The plan of a first start: every listener is added.
    pub fn initial(new: &Config) -> Plan {
        Plan {
            added: new
                .listeners
                .iter()
                .map(|l| (l.name.clone(), l.port))
                .collect(),
            upstreams_changed: true,
            ..Plan::default()
        }
    }

    /// What reloading from `old` to `new` changes.
    pub fn new(old: &Config, new: &Config) -> Plan {
        let mut plan = Plan {
            interface: interface_changes(&old.interface, &new.interface),
            upstreams_changed: old.upstreams != new.upstreams,
            ..Plan::default()
        };
        for l in &new.listeners {
            match old.listeners.iter().find(|o| o.port == l.port) {
                Some(o) => {
                    plan.kept.push((l.name.clone(), l.port));
                    if o.name != l.name {
                        plan.renamed.push((o.name.clone(), l.name.clone()));
                    }
                    if o.limits.backlog != l.limits.backlog {
                        plan.backlog.push(l.name.clone());
                    }
                }
                None => plan.added.push((l.name.clone(), l.port)),
            }
        }
        for o in &old.listeners {
            if !new.listeners.iter().any(|l| l.port == o.port) {
                plan.removed.push((o.name.clone(), o.port));
            }
        }
        plan
    }

    /// Whether the new config asks for something a reload cannot apply (see
    /// [`Plan::interface`] and [`Plan::backlog`]).
    pub fn needs_restart(&self) -> bool {
        !self.interface.is_empty() || !self.backlog.is_empty()
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |v: &[(String, u16)]| {
            v.iter()
                .map(|(n, p)| format!("{n:?} (port {p})"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut parts = Vec::new();
        for (what, v) in [
            ("kept", &self.kept),
            ("added", &self.added),
            ("removed", &self.removed),
        ] {
            if !v.is_empty() {
                parts.push(format!("{what} {}", names(v)));
            }
        }
        for (old, new) in &self.renamed {
            parts.push(format!("renamed {old:?} to {new:?}"));
        }
        parts.push(
            if self.upstreams_changed {
                "upstreams replaced"
            } else {
                "upstreams unchanged"
            }
            .into(),
        );
        write!(f, "{}", parts.join("; "))
    }
}

/// The `[interface]` fields that differ between `old` and `new`, by their config key.
pub fn interface_changes(old: &Interface, new: &Interface) -> Vec<&'static str> {
    let (a, b) = (&old.net, &new.net);
    [
        ("tap", old.tap != new.tap),
        ("stack", old.stack != new.stack),
        ("bind", old.bind != new.bind),
        ("mtu", old.mtu != new.mtu),
        ("pcap", old.pcap != new.pcap),
        ("workers", old.workers != new.workers),
        ("pin", old.pin != new.pin),
        ("mac", a.mac != b.mac),
        ("ipv4", a.ipv4 != b.ipv4),
        ("ipv6", a.ipv6 != b.ipv6),
        ("dns", a.dns_servers != b.dns_servers),
        ("tcp", a.tcp != b.tcp),
        ("offload", a.offload != b.offload),
        ("seed", a.seed != b.seed),
    ]
    .into_iter()
    .filter_map(|(k, changed)| changed.then_some(k))
    .collect()
}

/// Why a reload was refused. The running configuration keeps serving, unchanged.
#[derive(Debug)]
pub enum ReloadError {
    /// The new file does not validate: every problem with its key and line, as `paf check`
    /// prints them.
    Invalid(Errors),
    /// The new configuration validated but a part of it cannot be opened (a port, a
    /// certificate, an access-log file, an upstream's CA); nothing was changed.
    Apply(StartError),
    /// The appliance is stopping.
    Stopping,
}

impl fmt::Display for ReloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReloadError::Invalid(e) => write!(f, "invalid configuration:\n{e}"),
            ReloadError::Apply(e) => write!(f, "cannot apply the configuration: {e}"),
            ReloadError::Stopping => f.write_str("the appliance is stopping"),
        }
    }
}

impl std::error::Error for ReloadError {}

impl Appliance {
    /// Reads and validates `path` (as `paf check` does), lets `adjust` edit the result (the
    /// command line's overrides), and applies it as [`Appliance::reload`] does. Call it on the
    /// loop's thread between passes (e.g. in the predicate of
    /// [`Runtime::run_until`]), never from a callback.
    ///
    /// # Errors
    /// [`ReloadError::Invalid`] with every problem of the file, or as [`Appliance::reload`].
    /// Either way it is logged and counted, and the running configuration keeps serving.
    pub fn reload_file(
        &mut self,
        rt: &mut Runtime,
        path: &Path,
        adjust: impl FnOnce(&mut Config),
    ) -> Result<Plan, ReloadError> {
        match crate::config::load(path) {
            Ok(mut config) => {
                adjust(&mut config);
                self.reload(rt, config)
            }
            Err(e) => Err(self.refused(ReloadError::Invalid(e))),
        }
    }

    /// Applies `new` to the running appliance (see the [module docs](self) for what changes
    /// and when); the metrics count it and the configuration generation goes up by one.
    ///
    /// # Errors
    /// [`ReloadError::Apply`] when a part of `new` cannot be opened, [`ReloadError::Stopping`]
    /// once the stop switch is off. The running configuration keeps serving, unchanged.
    pub fn reload(&mut self, rt: &mut Runtime, new: Config) -> Result<Plan, ReloadError> {
        if self.stop.is_off() {
            return Err(self.refused(ReloadError::Stopping));
        }
        let plan = Plan::new(&self.config, &new);
        if let Err(e) = self.apply(rt, new, &plan) {
            return Err(self.refused(ReloadError::Apply(e)));
        }
        self.metrics.config_applied(rt.pass_time().wall());
        self.metrics.reload_result(true);
        log::info!(
            "reload: configuration generation {} applied: {plan}",
            self.metrics.generation()
        );
        if !plan.interface.is_empty() {
            log::warn!(
                "reload: [interface] changes need a restart, not applied: {}",
                plan.interface.join(", ")
            );
        }
        if !plan.backlog.is_empty() {
            log::warn!(
                "reload: backlog changes of kept listeners need a restart, not applied: {}",
                plan.backlog.join(", ")
            );
        }
        Ok(plan)
    }

    /// Logs and counts a refused reload.
    fn refused(&self, e: ReloadError) -> ReloadError {
        self.metrics.reload_result(false);
        log::error!("reload refused, the running configuration keeps serving: {e}");
        e
    }
}

#[cfg(test)]
mod tests;
