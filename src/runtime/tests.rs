//! Ownership of connections between apps, on the virtual pair.

use std::cell::Cell;

use super::*;
use crate::testing::{Pair, B};

/// Connects at setup; when woken, tries `target` (another app's connection, if set).
struct Prober {
    own: Option<ConnId>,
    target: Rc<Cell<Option<ConnId>>>,
    seen: Rc<Cell<Option<(bool, bool)>>>,
}

impl App for Prober {
    fn handle_accept(&mut self, cx: &mut Cx<'_>, _: ListenerId, c: ConnId, _: SocketAddr) {
        cx.abort(c);
    }

    fn handle_ready(&mut self, _: &mut Cx<'_>, _: ConnId) {}

    fn handle_wake(&mut self, cx: &mut Cx<'_>) {
        if let Some(t) = self.target.get() {
            let sent = cx.send(t, b"x");
            let read = cx.recv(t, &mut [0; 8]);
            self.seen.set(Some((
                sent == Err(SendError::Invalid),
                read == Err(RecvError::Invalid) && !cx.readiness(t).established,
            )));
        }
    }
}

#[test]
fn an_app_cannot_touch_another_apps_connection() {
    let mut pair = Pair::new();
    let svc = crate::service::init(&mut pair.server, 80).unwrap();
    let _handle = crate::service::http(
        svc,
        crate::http::Config::default(),
        None,
        crate::service::default_error_handler,
        |_, _| {},
    );
    let target = Rc::new(Cell::new(None));
    let seen = Rc::new(Cell::new(None));
    let a = Prober {
        own: None,
        target: Rc::default(),
        seen: Rc::default(),
    };
    let mut own = None;
    pair.client
        .add(a, |a, cx| {
            a.own = Some(cx.connect(B.with_port(80))?);
            own = a.own;
            Ok::<_, ConnectError>(())
        })
        .unwrap();
    let b = Prober {
        own: None,
        target: target.clone(),
        seen: seen.clone(),
    };
    let id = pair.client.add(b, |_, _| Ok::<_, ()>(())).unwrap();
    pair.drive(Duration::from_secs(1), |p| {
        p.client.net().readiness(own.unwrap()).established
    });
    target.set(own);
    pair.client.wakes.flag(id);
    pair.drive(Duration::from_secs(1), |_| seen.get().is_some());
    assert_eq!(seen.get(), Some((true, true)));
}
