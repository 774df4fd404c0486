//! The client's pool keeps at most `max_idle_per_endpoint` idle connections of an endpoint:
//! past it, a connection that goes idle is closed.

use paf::client::{self, Options};

use super::{ctx_for, get, hello, start, support};
use net::testing::B_V4;
use support::{drive, serve, LONG};

#[test]
fn idle_connections_past_max_idle_per_endpoint_are_closed() {
    let (server, mut rt) = serve(hello());
    let options = Options {
        max_per_endpoint: 4,
        max_idle_per_endpoint: 2,
        ..Options::default()
    };
    let stack = client::Agent::attach(&mut rt, options);
    let ctx = ctx_for(&stack, B_V4);
    // Four requests at once: four connections.
    let outcomes: Vec<_> = (0..4)
        .map(|i| {
            let (o, w) = start(&ctx, get(&format!("/{i}")));
            w.unwrap().close().unwrap();
            o
        })
        .collect();
    drive(&mut rt, LONG, "four responses", || {
        outcomes.iter().all(|o| o.borrow().end.is_some())
    });
    for (i, o) in outcomes.iter().enumerate() {
        assert_eq!(o.borrow().body, format!("hello /{i}").as_bytes());
    }
    assert_eq!(stack.stats().connections, 4, "{:?}", stack.stats());
    // Two stay idle; the two that went idle past the limit were closed.
    drive(&mut rt, LONG, "the pool to shrink", || {
        stack.connections() == 2
    });
    assert_eq!(stack.idle_connections(), 2);
    assert_eq!(server.handle.stats().accepted, 4);
    server.stop(&mut rt);
}
