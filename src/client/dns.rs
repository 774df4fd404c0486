//! DNS jobs of the resolver fold: each name asked by a ctx becomes A and/or AAAA queries on the
//! stack ([`Cx::resolve`]); the job completes its promise with the first usable address (the A
//! answer when there is one) or fails it with the most telling error, which also becomes the
//! asking request's cause ([`Error::Dns`]).

use std::net::IpAddr;

use net::{DnsError, QueryId, RecordType};

use super::state::Inner;
use super::{Error, Family};
use crate::runtime::Cx;

pub(crate) fn start(cx: &mut Cx<'_>, inner: &mut Inner) {
    let jobs: Vec<u64> = inner
        .dns
        .iter()
        .filter(|(_, j)| !j.started)
        .map(|(id, _)| *id)
        .collect();
    for job in jobs {
        let Inner {
            dns,
            queries,
            stats,
            ..
        } = &mut *inner;
        let j = dns.get_mut(&job).expect("listed");
        j.started = true;
        let types: &[RecordType] = match j.family {
            Family::Any => &[RecordType::A, RecordType::Aaaa],
            Family::V4 => &[RecordType::A],
            Family::V6 => &[RecordType::Aaaa],
        };
        for &rtype in types {
            match cx.resolve(&j.name, rtype) {
                Ok(q) => {
                    stats.dns_queries += 1;
                    j.running.push(q);
                    queries.insert(q, (job, rtype));
                }
                Err(e) => j.results.push((rtype, Err(e))),
            }
        }
        settle_job(cx, inner, job);
    }
}

/// Takes a DNS outcome for the job that asked.
pub(crate) fn resolved(cx: &mut Cx<'_>, inner: &mut Inner, q: QueryId) {
    let Some((job, rtype)) = inner.queries.remove(&q) else {
        let _ = cx.poll_resolution(q);
        return;
    };
    let outcome = cx.poll_resolution(q).unwrap_or(Err(DnsError::Timeout));
    if let Some(j) = inner.dns.get_mut(&job) {
        j.running.retain(|r| *r != q);
        j.results.push((rtype, outcome));
    }
    settle_job(cx, inner, job);
}

/// Completes a DNS job when it can: an A answer at once, else once every query is in.
fn settle_job(cx: &mut Cx<'_>, inner: &mut Inner, job: u64) {
    let Some(j) = inner.dns.get_mut(&job) else {
        return;
    };
    let wanted = j.completer.as_ref().is_some_and(|c| c.is_wanted());
    let found = |t: RecordType| {
        j.results.iter().find_map(|(rt, r)| match r {
            Ok(a) if *rt == t => a.first().copied(),
            _ => None,
        })
    };
    let addr: Option<IpAddr> = found(RecordType::A).or_else(|| {
        j.running
            .is_empty()
            .then(|| found(RecordType::Aaaa))
            .flatten()
    });
    if wanted && addr.is_none() && !j.running.is_empty() {
        return;
    }
    let j = inner.dns.remove(&job).expect("present");
    for q in &j.running {
        inner.queries.remove(q);
        cx.cancel_resolution(*q);
    }
    let Some(completer) = j.completer else { return };
    match addr {
        Some(a) => {
            log::debug!("client: {} → {a}", j.name);
            completer.complete(a);
        }
        None if !wanted => {}
        None => {
            let errors = j.results.iter().filter_map(|(_, r)| r.as_ref().err());
            let error = errors
                .clone()
                .find(|e| **e == DnsError::NotFound)
                .or_else(|| errors.clone().find(|e| **e == DnsError::Timeout))
                .or_else(|| errors.clone().next())
                .copied()
                .unwrap_or(DnsError::NotFound);
            log::debug!("client: {}: {error}", j.name);
            if let Some(x) = j.owner.and_then(|o| inner.exchanges.get_mut(&o)) {
                x.cause = Some(Error::Dns {
                    name: j.name.clone(),
                    error,
                });
            }
            completer.fail(format!("{}: {error}", j.name));
        }
    }
}
