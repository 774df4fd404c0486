//! What the workers of one process share (see the README's *Workers*): each runs its own
//! appliance on its own loop and stack, and these are the few things they must agree on.
//!
//! - **Per-client limits**: one [`ClientTable`] per listening port, given to the service of
//!   that port on every worker and kept across reloads, so that `max_connections_per_ip` and
//!   `rate` count a client once wherever its connections land (its table is sharded, see
//!   [`ClientTable`]; nothing else on the hot path is shared).
//! - **ACME**: the HTTP-01 answers (every worker's port-80 listener serves them), and per
//!   listener `acme` block one certificate store (every worker's TLS configuration of the
//!   listener looks there: issued certificates and TLS-ALPN-01 challenge certificates), with
//!   the account key and the directory's trust, prepared once. The order driver runs on
//!   worker 0 only ([`ACME_WORKER`](super::ACME_WORKER)).
//!
//! Reloads happen on each worker on its own; they find the same table for a port and the same
//! store for an unchanged block, whichever worker reloads first.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::service::ClientTable;

/// What the appliances of a process's workers share (each has its own loop and stack): one
/// per-client table per listening port (so `max_connections_per_ip` and `rate` count a client
/// once wherever its connections land, and across reloads), and for ACME the HTTP-01 answers
/// and, per listener `acme` block, one certificate store with the account key, prepared once
/// (the drivers run on [`ACME_WORKER`](super::ACME_WORKER); every worker serves what they
/// publish). Make one for the process and start each worker's appliance with it
/// ([`start_worker`](super::start_worker)).
#[derive(Default)]
pub struct Shared {
    /// Per-client limits, by listening port.
    clients: Mutex<HashMap<u16, ClientTable>>,
    /// Resumable TLS sessions, by listening port: a client resumes on whichever worker its
    /// next connection lands.
    sessions: Mutex<HashMap<u16, crate::tls::SessionCache>>,
    /// The ACME HTTP-01 answers of every driver.
    pub(super) http01: Arc<crate::acme::Http01>,
    /// One entry per listener `acme` block in use.
    #[cfg(feature = "certs")]
    acme: Mutex<Vec<AcmeSlot>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("ports", &lock(&self.clients).len())
            .finish_non_exhaustive()
    }
}

/// A listener's `acme` block and what was prepared for it.
#[cfg(feature = "certs")]
struct AcmeSlot {
    port: u16,
    config: crate::config::Acme,
    as_default: bool,
    prepared: Arc<super::acme::Prepared>,
}

/// Each critical section is one lookup or insertion (or a preparation that either inserts or
/// not): a lock whose holder panicked is whole.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Nothing shared yet: tables and stores are made as the workers' appliances ask.
    pub fn new() -> Shared {
        Shared::default()
    }

    /// The per-client table of the listener on `port` (made at the first call for it).
    pub(super) fn client_table(&self, port: u16) -> ClientTable {
        lock(&self.clients).entry(port).or_default().clone()
    }

    /// The TLS session cache of the listener on `port` (made at the first call for it).
    pub(super) fn sessions(&self, port: u16) -> crate::tls::SessionCache {
        lock(&self.sessions).entry(port).or_default().clone()
    }

    /// What the listener `listener` on `port` needs for its `acme` block: the entry made by
    /// the first worker that asked for the same port, block and default, else one prepared
    /// now (its state directory, account key and trust: see `acme::prepare`). Entries no
    /// worker holds any more are dropped first.
    #[cfg(feature = "certs")]
    pub(super) fn acme(
        &self,
        listener: &str,
        port: u16,
        config: &crate::config::Acme,
        as_default: bool,
    ) -> Result<Arc<super::acme::Prepared>, super::acme::StartError> {
        let mut slots = lock(&self.acme);
        slots.retain(|s| Arc::strong_count(&s.prepared) > 1);
        let found = slots
            .iter()
            .find(|s| s.port == port && s.config == *config && s.as_default == as_default);
        if let Some(s) = found {
            return Ok(s.prepared.clone());
        }
        // Under the lock: a second worker waits for the account key the first one writes.
        let prepared = Arc::new(super::acme::prepare(listener, config)?);
        slots.push(AcmeSlot {
            port,
            config: config.clone(),
            as_default,
            prepared: prepared.clone(),
        });
        Ok(prepared)
    }
}

#[cfg(test)]
mod tests;
