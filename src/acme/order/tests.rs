//! The order on canned server replies, on a virtual clock.

use super::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

const DIR: &str = "https://ca.test/dir";

fn settings(domains: &[&str]) -> Settings {
    Settings {
        directory: DIR.into(),
        contact: vec!["mailto:ops@a.test".into()],
        domains: domains.iter().map(|d| (*d).to_owned()).collect(),
        challenge: AcmeChallenge::Http01,
    }
}

fn order(domains: &[&str]) -> (Order, Arc<AccountKey>) {
    let key = Arc::new(AccountKey::generate().unwrap());
    (
        Order::new(settings(domains), key.clone(), b"CSR".to_vec()),
        key,
    )
}

fn json(status: u16, nonce: &str, body: &str) -> Response {
    Response {
        status,
        location: None,
        nonce: Some(nonce.into()),
        retry_after: None,
        body: body.as_bytes().to_vec(),
    }
}

fn located(mut r: Response, location: &str) -> Response {
    r.location = Some(location.into());
    r
}

/// The JWS of a POST: (protected header, payload).
fn jws(req: &Request) -> (Value, String) {
    let v: Value = serde_json::from_slice(&req.body).unwrap();
    let part = |k: &str| URL_SAFE_NO_PAD.decode(v[k].as_str().unwrap()).unwrap();
    (
        serde_json::from_slice(&part("protected")).unwrap(),
        String::from_utf8(part("payload")).unwrap(),
    )
}

const DIRECTORY: &str = r#"{"newNonce":"https://ca.test/nonce","newAccount":"https://ca.test/acct","newOrder":"https://ca.test/order","meta":{}}"#;

fn authz(domain: &str, status: &str, challenge_status: &str) -> String {
    format!(
        r#"{{"status":"{status}","identifier":{{"type":"dns","value":"{domain}"}},"challenges":[
            {{"type":"tls-alpn-01","url":"https://ca.test/chal/{domain}/alpn","token":"T-alpn","status":"pending"}},
            {{"type":"http-01","url":"https://ca.test/chal/{domain}/http","token":"T_{domain}","status":"{challenge_status}"}}]}}"#,
        domain = domain.replace('.', "-"),
    )
}

/// Steps the order through the start: directory, nonce, account, new order.
fn start(o: &mut Order, now: Instant, order_body: &str) {
    let r = o.poll_request(now).unwrap();
    assert_eq!((r.method, r.url.as_str()), (Method::Get, DIR));
    assert!(o.poll_request(now).is_none(), "one request at a time");
    o.handle_response(now, json(200, "", DIRECTORY));
    let r = o.poll_request(now).unwrap();
    assert_eq!(
        (r.method, r.url.as_str()),
        (Method::Head, "https://ca.test/nonce")
    );
    o.handle_response(now, json(200, "n1", ""));
    let r = o.poll_request(now).unwrap();
    assert_eq!(
        (r.method, r.url.as_str()),
        (Method::Post, "https://ca.test/acct")
    );
    let (h, p) = jws(&r);
    assert_eq!(h["nonce"], "n1");
    assert_eq!(h["jwk"]["kty"], "EC", "no account yet: the key itself");
    let p: Value = serde_json::from_str(&p).unwrap();
    assert_eq!(p["termsOfServiceAgreed"], true);
    assert_eq!(p["contact"][0], "mailto:ops@a.test");
    o.handle_response(
        now,
        located(
            json(201, "n2", r#"{"status":"valid"}"#),
            "https://ca.test/acct/1",
        ),
    );
    let r = o.poll_request(now).unwrap();
    assert_eq!(r.url, "https://ca.test/order");
    let (h, p) = jws(&r);
    assert_eq!(h["kid"], "https://ca.test/acct/1");
    assert_eq!(h["nonce"], "n2");
    assert!(h.get("jwk").is_none());
    let p: Value = serde_json::from_str(&p).unwrap();
    assert_eq!(p["identifiers"][0]["type"], "dns");
    o.handle_response(
        now,
        located(json(201, "n3", order_body), "https://ca.test/order/9"),
    );
}

#[test]
fn an_order_goes_from_directory_to_chain() {
    let (mut o, key) = order(&["a.test", "b.test"]);
    let t0 = Instant::now();
    start(
        &mut o,
        t0,
        r#"{"status":"pending","authorizations":["https://ca.test/authz/a","https://ca.test/authz/b"],"finalize":"https://ca.test/fin/9"}"#,
    );
    // Authorization a: pending, its http-01 challenge answered, then triggered.
    let r = o.poll_request(t0).unwrap();
    assert_eq!(r.url, "https://ca.test/authz/a");
    assert_eq!(jws(&r).1, "", "POST-as-GET");
    o.handle_response(t0, json(200, "n4", &authz("a.test", "pending", "pending")));
    assert_eq!(
        o.poll_event(),
        Some(Event::Respond {
            domain: "a-test".into(),
            token: "T_a-test".into(),
            key_authorization: key.key_authorization("T_a-test"),
        })
    );
    let r = o.poll_request(t0).unwrap();
    assert_eq!(r.url, "https://ca.test/chal/a-test/http");
    assert_eq!(jws(&r).1, "{}");
    o.handle_response(t0, json(200, "n5", r#"{"status":"processing"}"#));
    // Then polled after a wait, the server's Retry-After honoured.
    assert_eq!(o.poll_request(t0), None);
    assert_eq!(o.poll_timeout(), Some(t0 + POLL_INTERVAL));
    let t1 = t0 + POLL_INTERVAL;
    let r = o.poll_request(t1).unwrap();
    assert_eq!(r.url, "https://ca.test/authz/a");
    let mut pending = json(200, "n6", &authz("a.test", "pending", "processing"));
    pending.retry_after = Some(Duration::from_secs(3));
    o.handle_response(t1, pending);
    assert_eq!(o.poll_timeout(), Some(t1 + Duration::from_secs(3)));
    assert_eq!(o.poll_request(t1 + Duration::from_secs(2)), None);
    let t2 = t1 + Duration::from_secs(3);
    o.poll_request(t2).unwrap();
    o.handle_response(t2, json(200, "n7", &authz("a.test", "valid", "valid")));
    // Authorization b is valid already (reused): nothing to answer.
    let r = o.poll_request(t2).unwrap();
    assert_eq!(r.url, "https://ca.test/authz/b");
    o.handle_response(t2, json(200, "n8", &authz("b.test", "valid", "valid")));
    assert_eq!(o.poll_event(), None);
    // The order is ready: finalize with the CSR, then poll until valid.
    let r = o.poll_request(t2).unwrap();
    assert_eq!(r.url, "https://ca.test/order/9");
    o.handle_response(
        t2,
        json(
            200,
            "n9",
            r#"{"status":"ready","finalize":"https://ca.test/fin/9"}"#,
        ),
    );
    let r = o.poll_request(t2).unwrap();
    assert_eq!(r.url, "https://ca.test/fin/9");
    let p: Value = serde_json::from_str(&jws(&r).1).unwrap();
    assert_eq!(p["csr"], b64(b"CSR"));
    o.handle_response(t2, json(200, "n10", r#"{"status":"processing"}"#));
    let t3 = t2 + POLL_INTERVAL;
    let r = o.poll_request(t3).unwrap();
    assert_eq!(r.url, "https://ca.test/order/9");
    o.handle_response(
        t3,
        json(
            200,
            "n11",
            r#"{"status":"valid","certificate":"https://ca.test/cert/9"}"#,
        ),
    );
    let r = o.poll_request(t3).unwrap();
    assert_eq!(r.url, "https://ca.test/cert/9");
    assert!(r.wants_pem);
    let pem = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n";
    o.handle_response(t3, json(200, "n12", pem));
    assert_eq!(
        o.poll_event(),
        Some(Event::Issued {
            chain_pem: pem.into()
        })
    );
    assert!(o.is_finished());
    assert_eq!(o.poll_request(t3), None);
    assert_eq!(o.poll_timeout(), None);
}

#[test]
fn a_bad_nonce_is_retried_with_the_nonce_it_carries() {
    let (mut o, _) = order(&["a.test"]);
    let now = Instant::now();
    o.poll_request(now).unwrap();
    o.handle_response(now, json(200, "", DIRECTORY));
    o.poll_request(now).unwrap();
    o.handle_response(now, json(200, "stale", ""));
    let mut expected = "stale".to_owned();
    for round in 0..=NONCE_RETRIES {
        let r = o.poll_request(now).unwrap();
        assert_eq!(r.url, "https://ca.test/acct");
        assert_eq!(jws(&r).0["nonce"], expected.as_str(), "round {round}");
        assert_eq!(o.poll_event(), None);
        expected = format!("fresh{round}");
        o.handle_response(
            now,
            json(
                400,
                &expected,
                r#"{"type":"urn:ietf:params:acme:error:badNonce","detail":"JWS has an invalid anti-replay nonce"}"#,
            ),
        );
    }
    assert!(matches!(o.poll_event(), Some(Event::Failed(f)) if f.step == Step::Account));
}

#[test]
fn a_failed_validation_reports_the_challenge_problem() {
    let (mut o, _) = order(&["a.test"]);
    let now = Instant::now();
    start(
        &mut o,
        now,
        r#"{"status":"pending","authorizations":["https://ca.test/authz/a"],"finalize":"https://ca.test/fin/9"}"#,
    );
    o.poll_request(now).unwrap();
    o.handle_response(now, json(200, "n", &authz("a.test", "pending", "pending")));
    assert!(matches!(o.poll_event(), Some(Event::Respond { .. })));
    o.poll_request(now).unwrap();
    o.handle_response(now, json(200, "n", r#"{"status":"processing"}"#));
    let later = now + POLL_INTERVAL;
    o.poll_request(later).unwrap();
    let invalid = r#"{"status":"invalid","identifier":{"type":"dns","value":"a.test"},"challenges":[
        {"type":"http-01","url":"u","token":"t","status":"invalid",
         "error":{"type":"urn:ietf:params:acme:error:unauthorized","detail":"wrong key authorization"}}]}"#;
    o.handle_response(later, json(200, "n", invalid));
    let Some(Event::Failed(f)) = o.poll_event() else {
        panic!("no failure");
    };
    assert_eq!(f.step, Step::Validation);
    let p = f.problem.unwrap();
    assert_eq!(p.kind, "urn:ietf:params:acme:error:unauthorized");
    assert_eq!(p.detail, "wrong key authorization");
    assert!(o.is_finished());
}

#[test]
fn errors_name_their_step_and_carry_retry_after() {
    // The directory cannot be reached.
    let (mut o, _) = order(&["a.test"]);
    let now = Instant::now();
    o.poll_request(now).unwrap();
    o.handle_transport_error(now, "connect: timed out".into());
    let Some(Event::Failed(f)) = o.poll_event() else {
        panic!()
    };
    assert_eq!(
        (f.step, f.reason.as_str()),
        (Step::Directory, "connect: timed out")
    );
    // A rate limit on new-order, with its Retry-After and problem document.
    let (mut o, _) = order(&["a.test"]);
    start(&mut o, now, "ignored");
    let Some(Event::Failed(f)) = o.poll_event() else {
        panic!()
    };
    assert_eq!(f.step, Step::NewOrder, "{f}");
    let (mut o, _) = order(&["a.test"]);
    o.poll_request(now).unwrap();
    o.handle_response(now, json(200, "", DIRECTORY));
    o.poll_request(now).unwrap();
    o.handle_response(now, json(200, "n1", ""));
    o.poll_request(now).unwrap();
    o.handle_response(
        now,
        located(json(201, "n2", "{}"), "https://ca.test/acct/1"),
    );
    o.poll_request(now).unwrap();
    let mut limited = json(
        429,
        "n3",
        r#"{"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many"}"#,
    );
    limited.retry_after = Some(Duration::from_secs(3600));
    o.handle_response(now, limited);
    let Some(Event::Failed(f)) = o.poll_event() else {
        panic!()
    };
    assert_eq!(f.step, Step::NewOrder);
    assert_eq!(f.retry_after, Some(Duration::from_secs(3600)));
    assert_eq!(
        f.to_string(),
        "step new-order: status 429 (problem urn:ietf:params:acme:error:rateLimited: too many)"
    );
}

#[test]
fn garbage_replies_fail_the_order_without_panicking() {
    let bodies: [&[u8]; 8] = [
        b"",
        b"null",
        b"[]",
        b"{\"status\":5}",
        b"{\"authorizations\":[1,2],\"status\":\"pending\"}",
        b"\xff\xfe",
        b"{\"status\":\"pending\",\"authorizations\":[],\"finalize\":\"f\"}",
        b"{\"challenges\":{}}",
    ];
    for depth in 0..6 {
        for body in bodies {
            let (mut o, _) = order(&["a.test"]);
            let now = Instant::now();
            let mut steps = 0;
            while let Some(_r) = o.poll_request(now) {
                steps += 1;
                let reply = if steps <= depth {
                    match steps {
                        1 => json(200, "", DIRECTORY),
                        2 => json(200, "n", ""),
                        _ => located(json(201, "n", "{}"), "https://ca.test/x"),
                    }
                } else {
                    Response {
                        status: 200,
                        location: Some("https://ca.test/x".into()),
                        nonce: Some("n".into()),
                        retry_after: None,
                        body: body.to_vec(),
                    }
                };
                o.handle_response(now, reply);
                if steps > 20 {
                    break;
                }
            }
            while o.poll_event().is_some() {}
        }
    }
}
