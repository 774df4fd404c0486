//! Responses counted per listener, route and status class (`paf_requests_total`), with their
//! body bytes (`paf_response_body_bytes_total`).

/// The status classes, in the order of their index ([`class`]).
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The index of `status`'s class in [`CLASSES`].
fn class(status: u16) -> usize {
    match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        _ => 4,
    }
}

/// One listener's responses: counted by index, found by a walk over the few listeners (a
/// response used to cost two string-keyed map lookups and a second lock).
#[derive(Clone, Debug)]
pub(super) struct Responses {
    pub listener: String,
    /// Per route (index 0: no route; `i + 1`: route `i`), per status class.
    by_route: Vec<[u64; 5]>,
    pub body_bytes: u64,
}

impl Responses {
    /// Counts a response of `listener` in `all`: its route (`None`: no route), its status,
    /// its body bytes.
    pub fn count(
        all: &mut Vec<Responses>,
        listener: &str,
        route: Option<usize>,
        status: u16,
        body_bytes: u64,
    ) {
        let at = match all.iter().position(|r| r.listener == listener) {
            Some(at) => at,
            None => {
                all.push(Responses {
                    listener: listener.to_owned(),
                    by_route: Vec::new(),
                    body_bytes: 0,
                });
                all.len() - 1
            }
        };
        let r = &mut all[at];
        let slot = route.map_or(0, |i| i + 1);
        if r.by_route.len() <= slot {
            r.by_route.resize(slot + 1, [0; 5]);
        }
        r.by_route[slot][class(status)] += 1;
        r.body_bytes += body_bytes;
    }

    /// Counts of `(route, class)`, the non-zero ones, in order.
    pub fn counts(&self) -> impl Iterator<Item = (Option<usize>, &'static str, u64)> + '_ {
        self.by_route.iter().enumerate().flat_map(|(r, by_class)| {
            let route = r.checked_sub(1);
            by_class
                .iter()
                .zip(CLASSES)
                .filter(|(n, _)| **n > 0)
                .map(move |(n, c)| (route, c, *n))
        })
    }
}
