//! Several workers' registries shown as one: [`Metrics::join_workers`] links them, and
//! `/metrics` on any worker shows their sum (process-wide families once), the per-worker
//! gauges, and the hand-overs between the workers' stacks ([`Metrics::join_mesh`]), once.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::Metrics;

/// Families that describe the process, not traffic: the same on every worker, shown once
/// (their largest value) in a sum over workers.
const PROCESS_WIDE: &[&str] = &[
    "paf_reloads_total",
    "paf_config_generation",
    "paf_config_last_reload_success_timestamp_seconds",
    "paf_acme_",
];

impl Metrics {
    /// Link the registries of every worker of a process, in worker order: each one's
    /// [`Metrics::render`] then shows the sum over all of them. Only the first call on a
    /// registry counts.
    pub fn join_workers(all: &[Arc<Metrics>]) {
        let weak: Vec<_> = all.iter().map(Arc::downgrade).collect();
        for m in all {
            let _ = m.workers.set(weak.clone());
        }
    }

    /// Give every worker's registry the hand-over counters of the mesh joining their stacks
    /// (one set for the process): [`Metrics::render`] shows them once, after the sum. Only the
    /// first call on a registry counts.
    pub fn join_mesh(all: &[Arc<Metrics>], counters: net::stack::mesh::Counters) {
        for m in all {
            let _ = m.mesh.set(counters.clone());
        }
    }

    /// The Prometheus text exposition (format 0.0.4): this registry's, or with several
    /// [workers](Metrics::join_workers) their sum and per-worker gauges.
    pub fn render(&self) -> String {
        let workers: Vec<Arc<Metrics>> = self
            .workers
            .get()
            .map(|w| w.iter().filter_map(std::sync::Weak::upgrade).collect())
            .unwrap_or_default();
        if workers.len() < 2 {
            return self.render_one();
        }
        let texts: Vec<String> = workers.iter().map(|m| m.render_one()).collect();
        let mut out = sum_expositions(&texts);
        render_worker_gauges(&mut out, &workers);
        if let Some(mesh) = self.mesh.get() {
            render_handovers(&mut out, mesh);
        }
        out
    }
}

/// The sum of expositions of the same families: each series' values added up (those of
/// [`PROCESS_WIDE`] families: the largest), in the order series first appear; `HELP` and `TYPE`
/// lines once each.
fn sum_expositions(texts: &[String]) -> String {
    let mut order: Vec<(String, Option<f64>)> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for text in texts {
        for line in text.lines() {
            let parsed = line
                .rsplit_once(' ')
                .filter(|_| !line.starts_with('#'))
                .and_then(|(series, v)| Some((series, v.parse::<f64>().ok()?)));
            let Some((series, value)) = parsed else {
                if !index.contains_key(line) {
                    index.insert(line.to_string(), order.len());
                    order.push((line.to_string(), None));
                }
                continue;
            };
            match index.get(series) {
                Some(&i) => {
                    let once = PROCESS_WIDE.iter().any(|f| series.starts_with(f));
                    if let Some(v) = order[i].1.as_mut() {
                        *v = if once { v.max(value) } else { *v + value };
                    }
                }
                None => {
                    index.insert(series.to_string(), order.len());
                    order.push((series.to_string(), Some(value)));
                }
            }
        }
    }
    let mut out = String::with_capacity(texts.first().map_or(0, String::len));
    for (line, value) in order {
        match value {
            None => out.push_str(&line),
            // Counters are whole numbers; the timestamps (process-wide) keep their millis.
            Some(v) if v.fract() == 0.0 && v.abs() < 1e15 => {
                let _ = write!(out, "{line} {}", v as i64);
            }
            Some(v) => {
                let _ = write!(out, "{line} {v:.3}");
            }
        }
        out.push('\n');
    }
    out
}

/// A per-worker gauge: name, help text, its value in a worker's registry.
type WorkerGauge = (&'static str, &'static str, fn(&Metrics) -> u64);

/// Per-worker gauges: connections open, stack sockets and responses, by worker.
fn render_worker_gauges(out: &mut String, workers: &[Arc<Metrics>]) {
    let families: [WorkerGauge; 3] = [
        (
            "paf_worker_connections_open",
            "Connections open now, by worker.",
            |m| {
                let services = m.services.lock().unwrap_or_else(|p| p.into_inner());
                services.iter().map(|(_, h)| h.stats().active as u64).sum()
            },
        ),
        (
            "paf_worker_stack_sockets",
            "TCP sockets held by the worker's stack, sampled.",
            |m| m.stack_sockets.load(Ordering::Relaxed) as u64,
        ),
        (
            "paf_worker_responses",
            "Responses sent so far, by worker (a gauge of the worker's share).",
            |m| m.responses_total(),
        ),
    ];
    for (name, help, value) in families {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (k, m) in workers.iter().enumerate() {
            let _ = writeln!(out, "{name}{{worker=\"{k}\"}} {}", value(m));
        }
    }
}

/// `paf_worker_handovers_total` by kind, `paf_worker_handover_drops_total` and
/// `paf_worker_handover_malformed_total`: the mesh's counters, one set for the process.
fn render_handovers(out: &mut String, mesh: &net::stack::mesh::Counters) {
    use net::stack::mesh::Kind;
    let h = mesh.snapshot();
    let _ = writeln!(
        out,
        "# HELP paf_worker_handovers_total Frames one worker's stack handed to another's, \
         by kind: neighbour (ARP, NDP: a copy to each other worker), tcp (a segment for \
         another worker's local port), icmp (an error quoting another worker's packet), dhcp \
         (a reply for worker 0's DHCP client)."
    );
    let _ = writeln!(out, "# TYPE paf_worker_handovers_total counter");
    for kind in Kind::ALL {
        let _ = writeln!(
            out,
            "paf_worker_handovers_total{{kind=\"{}\"}} {}",
            kind.label(),
            h.of(kind)
        );
    }
    let families = [
        (
            "paf_worker_handover_drops_total",
            "Hand-overs dropped because the receiving worker's inbox was full.",
            h.dropped,
        ),
        (
            "paf_worker_handover_malformed_total",
            "Frames dropped before a hand-over as malformed: ICMP errors whose quote is cut \
             short, DHCP replies that do not parse.",
            h.malformed,
        ),
    ];
    for (name, help, value) in families {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} counter");
        let _ = writeln!(out, "{name} {value}");
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::appliance::metrics::tests::{handle, sample};

    #[test]
    fn workers_are_summed_and_process_wide_families_shown_once() {
        let all: Vec<Arc<Metrics>> = (0..3).map(|_| Arc::new(Metrics::default())).collect();
        Metrics::join_workers(&all);
        for (k, m) in all.iter().enumerate() {
            m.add_service("web", handle(false));
            m.config_applied(UNIX_EPOCH + Duration::from_millis(1_500 + k as u64));
            for _ in 0..=k {
                m.request("web", Some(0), 200, 10);
            }
            m.stack_sockets.store(k + 1, Ordering::Relaxed);
        }
        let text = all[1].render();
        let cases: &[(&str, Option<u64>)] = &[
            (
                r#"paf_requests_total{listener="web",route="0",class="2xx"}"#,
                Some(6),
            ),
            (r#"paf_response_body_bytes_total{listener="web"}"#, Some(60)),
            (r#"paf_timeouts_total{listener="web",kind="head"}"#, Some(9)),
            ("paf_stack_sockets", Some(6)),
            ("paf_config_generation", Some(1)),
            (r#"paf_worker_responses{worker="2"}"#, Some(3)),
            (r#"paf_worker_stack_sockets{worker="0"}"#, Some(1)),
        ];
        for (series, want) in cases {
            assert_eq!(sample(&text, series), *want, "{series} in\n{text}");
        }
        assert!(
            text.contains("paf_config_last_reload_success_timestamp_seconds 1.502\n"),
            "{text}"
        );
        assert_eq!(
            text.matches("# TYPE paf_requests_total counter").count(),
            1,
            "{text}"
        );
    }

    #[test]
    fn handovers_are_shown_once_not_summed_per_worker() {
        let all: Vec<Arc<Metrics>> = (0..4).map(|_| Arc::new(Metrics::default())).collect();
        Metrics::join_workers(&all);
        let peers = net::stack::mesh::mesh(4).unwrap();
        Metrics::join_mesh(&all, peers[0].counters());
        let text = all[2].render();
        for kind in ["neighbour", "tcp", "icmp", "dhcp"] {
            let series = format!("paf_worker_handovers_total{{kind=\"{kind}\"}}");
            assert_eq!(sample(&text, &series), Some(0), "{series} in\n{text}");
        }
        assert_eq!(sample(&text, "paf_worker_handover_drops_total"), Some(0));
        assert_eq!(
            sample(&text, "paf_worker_handover_malformed_total"),
            Some(0)
        );
        for family in [
            "paf_worker_handovers_total",
            "paf_worker_handover_drops_total",
        ] {
            let head = format!("# TYPE {family} counter");
            assert_eq!(text.matches(&head).count(), 1, "{text}");
        }
        let one = Metrics::default();
        assert!(
            !one.render().contains("paf_worker_handover"),
            "one worker: no mesh"
        );
    }
}
