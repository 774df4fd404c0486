//! One certificate order, RFC 8555 §7, as a sans-IO state machine: it says which HTTP request
//! to send next, is told each response, and says what the appliance must do (answer a
//! challenge, install the certificate) or why the order failed. It reads no clock and opens
//! no socket; waits (polling an authorization, `Retry-After`) are deadlines the caller honours.
//!
//! The steps: `GET` the directory; `HEAD` newNonce whenever no nonce is at hand; `POST`
//! newAccount (an existing key gets its account back); `POST` newOrder; for each
//! authorization not yet valid, `POST`-as-`GET` it, tell the caller to answer the chosen
//! challenge ([`Event::Respond`]), `POST {}` to the challenge, then poll the authorization
//! until it is valid; poll the order until `ready`; `POST` finalize with the CSR; poll until
//! `valid`; download the chain ([`Event::Issued`]). A `badNonce` error is retried with the
//! fresh nonce it carries (a few times); any other error ends the order ([`Event::Failed`],
//! naming the step and carrying the server's problem document).
//!
//! Loop: after [`Order::new`], call [`Order::poll_request`]; send what it gives and hand the
//! outcome to [`Order::handle_response`] (or [`Order::handle_transport_error`]); drain
//! [`Order::poll_event`]; when `poll_request` gives nothing and the order is not
//! [`Order::is_finished`], call it again at [`Order::poll_timeout`].

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::jws::{b64, AccountKey};
use crate::config::AcmeChallenge;

/// `badNonce` errors retried in a row before the order fails.
const NONCE_RETRIES: u32 = 5;
/// Polls of authorizations and of the order, all together, before the order fails.
const MAX_POLLS: u32 = 120;
/// The wait between polls when the server gives no `Retry-After`.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// The longest `Retry-After` honoured while polling.
const MAX_POLL_WAIT: Duration = Duration::from_secs(60);

/// An HTTP method the protocol uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// The directory.
    Get,
    /// newNonce.
    Head,
    /// Everything else, a JWS body (`application/jose+json`).
    Post,
}

/// A request to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The absolute URL.
    pub url: String,
    /// The body: a JWS in flattened JSON for `POST`, empty otherwise.
    pub body: Vec<u8>,
    /// Whether this is the certificate download (`Accept: application/pem-certificate-chain`).
    pub wants_pem: bool,
}

/// What came back (the transport's parts the protocol needs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// `Location`, if any.
    pub location: Option<String>,
    /// `Replay-Nonce`, if any.
    pub nonce: Option<String>,
    /// `Retry-After`, in seconds form or already converted.
    pub retry_after: Option<Duration>,
    /// The body.
    pub body: Vec<u8>,
}

/// Which step of the protocol a failure happened at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Fetching the directory.
    Directory,
    /// Fetching a nonce.
    Nonce,
    /// Creating or finding the account.
    Account,
    /// Creating the order.
    NewOrder,
    /// Fetching an authorization.
    Authorization,
    /// Telling the server a challenge is ready.
    Challenge,
    /// Waiting for the server to validate.
    Validation,
    /// Waiting for the order to be ready.
    Ready,
    /// Sending the CSR.
    Finalize,
    /// Waiting for issuance.
    Issuance,
    /// Downloading the certificate.
    Download,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Directory => "directory",
            Step::Nonce => "new-nonce",
            Step::Account => "new-account",
            Step::NewOrder => "new-order",
            Step::Authorization => "authorization",
            Step::Challenge => "challenge",
            Step::Validation => "validation",
            Step::Ready => "order-ready",
            Step::Finalize => "finalize",
            Step::Issuance => "issuance",
            Step::Download => "download",
        })
    }
}

/// An ACME problem document (RFC 7807, RFC 8555 §6.7).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Problem {
    /// `type`, e.g. `urn:ietf:params:acme:error:unauthorized`.
    pub kind: String,
    /// `detail`.
    pub detail: String,
    /// `subproblems`' `identifier: detail`, if any.
    pub subproblems: Vec<String>,
}

impl Problem {
    fn from_value(v: &Value) -> Option<Problem> {
        let kind = v.get("type")?.as_str()?.to_owned();
        let detail = v
            .get("detail")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let subproblems = v
            .get("subproblems")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .map(|s| {
                        let who = s
                            .pointer("/identifier/value")
                            .and_then(Value::as_str)
                            .unwrap_or("?");
                        let what = s.get("detail").and_then(Value::as_str).unwrap_or("");
                        format!("{who}: {what}")
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(Problem {
            kind,
            detail,
            subproblems,
        })
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)?;
        for s in &self.subproblems {
            write!(f, "; {s}")?;
        }
        Ok(())
    }
}

/// Why an order failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Where.
    pub step: Step,
    /// What paf saw (status, transport error, unexpected reply).
    pub reason: String,
    /// The server's problem document, if it sent one.
    pub problem: Option<Problem>,
    /// The server's `Retry-After` on that reply, if any.
    pub retry_after: Option<Duration>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "step {}: {}", self.step, self.reason)?;
        if let Some(p) = &self.problem {
            write!(f, " (problem {p})")?;
        }
        Ok(())
    }
}

/// What the order asks of its caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Answer this challenge from now on (until the order ends): for `http-01`, serve
    /// `key_authorization` at `/.well-known/acme-challenge/{token}`; for `tls-alpn-01`, the
    /// RFC 8737 certificate for `domain` made from `key_authorization`.
    Respond {
        /// The name being validated.
        domain: String,
        /// The challenge token.
        token: String,
        /// `token.thumbprint`.
        key_authorization: String,
    },
    /// The certificate chain (PEM, end-entity first) for the order's CSR.
    Issued {
        /// The chain.
        chain_pem: String,
    },
    /// The order ended without a certificate.
    Failed(Failure),
}

/// The directory's URLs.
#[derive(Clone, Debug, Default)]
struct Directory {
    new_nonce: String,
    new_account: String,
    new_order: String,
}

/// Where the order is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Directory,
    Account,
    NewOrder,
    /// Fetch authorization `i` to pick its challenge.
    Authorization(usize),
    /// Tell the server challenge `url` of authorization `i` is ready.
    Challenge(usize, String),
    /// Poll authorization `i` until it is valid.
    Validation(usize),
    /// Poll the order until it is ready.
    Ready,
    Finalize,
    /// Poll the order until it is valid.
    Issuance,
    Download(String),
    Finished,
}

impl State {
    fn step(&self) -> Step {
        match self {
            State::Directory => Step::Directory,
            State::Account => Step::Account,
            State::NewOrder => Step::NewOrder,
            State::Authorization(_) => Step::Authorization,
            State::Challenge(..) => Step::Challenge,
            State::Validation(_) => Step::Validation,
            State::Ready => Step::Ready,
            State::Finalize => Step::Finalize,
            State::Issuance => Step::Issuance,
            State::Download(_) | State::Finished => Step::Download,
        }
    }
}

/// What an order is for.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The directory URL.
    pub directory: String,
    /// The account's contact URLs.
    pub contact: Vec<String>,
    /// The names.
    pub domains: Vec<String>,
    /// The challenge answered.
    pub challenge: AcmeChallenge,
}

/// One order, from the directory to the issued chain (see the module's doc).
#[derive(Debug)]
pub struct Order {
    settings: Settings,
    key: Arc<AccountKey>,
    csr_der: Vec<u8>,
    state: State,
    dir: Directory,
    nonce: Option<String>,
    /// The account URL (`kid`), once known.
    kid: Option<String>,
    order_url: Option<String>,
    authorizations: Vec<String>,
    finalize: Option<String>,
    /// A request is out; nothing more until its outcome.
    in_flight: Option<InFlight>,
    /// No request before then.
    wait_until: Option<Instant>,
    nonce_retries: u32,
    polls: u32,
    events: VecDeque<Event>,
}

/// What the request out was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InFlight {
    Nonce,
    Step,
}

impl Order {
    /// An order of `settings.domains` signed by `key`, finalized with `csr_der` (a PKCS#10
    /// request of the certificate's key for exactly those names).
    pub fn new(settings: Settings, key: Arc<AccountKey>, csr_der: Vec<u8>) -> Order {
        Order {
            settings,
            key,
            csr_der,
            state: State::Directory,
            dir: Directory::default(),
            nonce: None,
            kid: None,
            order_url: None,
            authorizations: Vec::new(),
            finalize: None,
            in_flight: None,
            wait_until: None,
            nonce_retries: 0,
            polls: 0,
            events: VecDeque::new(),
        }
    }

    /// Whether the order has ended (issued or failed); its last events may still be queued.
    pub fn is_finished(&self) -> bool {
        self.state == State::Finished
    }

    /// When [`Order::poll_request`] will have something, if the order is waiting.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.in_flight.is_some() || self.is_finished() {
            None
        } else {
            self.wait_until
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next request to send, if one is due at `now` and none is out. Call again after
    /// each outcome and at [`Order::poll_timeout`].
    pub fn poll_request(&mut self, now: Instant) -> Option<Request> {
        if self.in_flight.is_some() || self.is_finished() {
            return None;
        }
        if self.wait_until.is_some_and(|t| now < t) {
            return None;
        }
        self.wait_until = None;
        if self.state == State::Directory {
            self.in_flight = Some(InFlight::Step);
            return Some(Request {
                method: Method::Get,
                url: self.settings.directory.clone(),
                body: Vec::new(),
                wants_pem: false,
            });
        }
        let Some(nonce) = self.nonce.take() else {
            self.in_flight = Some(InFlight::Nonce);
            return Some(Request {
                method: Method::Head,
                url: self.dir.new_nonce.clone(),
                body: Vec::new(),
                wants_pem: false,
            });
        };
        let (url, payload) = match &self.state {
            State::Account => {
                let contact: Vec<Value> = self
                    .settings
                    .contact
                    .iter()
                    .map(|c| Value::String(c.clone()))
                    .collect();
                let payload = serde_json::json!({
                    "termsOfServiceAgreed": true,
                    "contact": contact,
                });
                (self.dir.new_account.clone(), Some(payload.to_string()))
            }
            State::NewOrder => {
                let ids: Vec<Value> = self
                    .settings
                    .domains
                    .iter()
                    .map(|d| serde_json::json!({"type": "dns", "value": d}))
                    .collect();
                let payload = serde_json::json!({ "identifiers": ids });
                (self.dir.new_order.clone(), Some(payload.to_string()))
            }
            State::Authorization(i) | State::Validation(i) => (
                self.authorizations.get(*i).cloned().unwrap_or_default(),
                None,
            ),
            State::Challenge(_, url) => (url.clone(), Some("{}".to_owned())),
            State::Ready | State::Issuance => (self.order_url.clone().unwrap_or_default(), None),
            State::Finalize => {
                let payload = serde_json::json!({ "csr": b64(&self.csr_der) });
                (
                    self.finalize.clone().unwrap_or_default(),
                    Some(payload.to_string()),
                )
            }
            State::Download(url) => (url.clone(), None),
            State::Directory | State::Finished => return None,
        };
        let kid = if self.state == State::Account {
            None
        } else {
            self.kid.as_deref()
        };
        let body = match self.key.sign(&url, &nonce, kid, payload.as_deref()) {
            Ok(b) => b,
            Err(e) => {
                self.fail(format!("signing: {e}"), None, None);
                return None;
            }
        };
        self.in_flight = Some(InFlight::Step);
        Some(Request {
            method: Method::Post,
            wants_pem: matches!(self.state, State::Download(_)),
            url,
            body: body.into_bytes(),
        })
    }

    /// The request out could not be completed (connect, TLS, DNS, timeout): the order fails
    /// at its current step.
    pub fn handle_transport_error(&mut self, _now: Instant, reason: String) {
        let step = match self.in_flight.take() {
            Some(InFlight::Nonce) => Step::Nonce,
            _ => self.state.step(),
        };
        self.fail_at(step, reason, None, None);
    }

    /// The response to the request out.
    pub fn handle_response(&mut self, now: Instant, r: Response) {
        let Some(what) = self.in_flight.take() else {
            return;
        };
        if let Some(n) = r.nonce.clone().filter(|n| !n.is_empty()) {
            self.nonce = Some(n);
        }
        if what == InFlight::Nonce {
            if self.nonce.is_none() {
                let reason = format!("status {} without a Replay-Nonce", r.status);
                self.fail_at(Step::Nonce, reason, problem_of(&r), r.retry_after);
            }
            return;
        }
        if !(200..300).contains(&r.status) {
            let problem = problem_of(&r);
            let bad_nonce = problem
                .as_ref()
                .is_some_and(|p| p.kind == "urn:ietf:params:acme:error:badNonce");
            if bad_nonce && self.nonce_retries < NONCE_RETRIES {
                // RFC 8555 §6.5: retry with the nonce this error carries.
                self.nonce_retries += 1;
                return;
            }
            self.fail(format!("status {}", r.status), problem, r.retry_after);
            return;
        }
        self.nonce_retries = 0;
        if matches!(self.state, State::Download(_)) {
            return self.downloaded(r);
        }
        let body: Value = match serde_json::from_slice(&r.body) {
            Ok(v) => v,
            Err(e) => return self.fail(format!("reply is not JSON: {e}"), None, None),
        };
        match self.state.clone() {
            State::Directory => self.directory(&body),
            State::Account => match r.location {
                Some(kid) => {
                    self.kid = Some(kid);
                    self.state = State::NewOrder;
                }
                None => self.fail("no Location (account URL)".into(), None, None),
            },
            State::NewOrder => {
                self.order_url = r.location.clone();
                self.new_order(&body);
            }
            State::Authorization(i) => self.authorization(i, &body),
            State::Challenge(i, _) => {
                self.state = State::Validation(i);
                self.wait(now, r.retry_after);
            }
            State::Validation(i) => self.validation(now, i, &body, r.retry_after),
            State::Ready | State::Issuance | State::Finalize => {
                self.order_status(now, &body, r.retry_after)
            }
            State::Download(_) | State::Finished => {}
        }
    }

    fn directory(&mut self, body: &Value) {
        let url = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
        match (url("newNonce"), url("newAccount"), url("newOrder")) {
            (Some(new_nonce), Some(new_account), Some(new_order)) => {
                self.dir = Directory {
                    new_nonce,
                    new_account,
                    new_order,
                };
                self.state = State::Account;
            }
            _ => self.fail(
                "the directory lacks newNonce, newAccount or newOrder".into(),
                None,
                None,
            ),
        }
    }

    fn new_order(&mut self, body: &Value) {
        if self.order_url.is_none() {
            return self.fail("no Location (order URL)".into(), None, None);
        }
        let list = body.get("authorizations").and_then(Value::as_array);
        self.authorizations = list
            .map(|l| {
                l.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        self.finalize = body
            .get("finalize")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if self.finalize.is_none() {
            return self.fail("the order has no finalize URL".into(), None, None);
        }
        match status(body) {
            "pending" if !self.authorizations.is_empty() => self.state = State::Authorization(0),
            "ready" => self.state = State::Finalize,
            "processing" | "valid" => self.state = State::Issuance,
            other => self.fail(format!("new order is {other:?}"), problem(body), None),
        }
    }

    /// Authorization `i` fetched: done already, or its challenge to answer.
    fn authorization(&mut self, i: usize, body: &Value) {
        let domain = body
            .pointer("/identifier/value")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned();
        match status(body) {
            "valid" => return self.next_authorization(i),
            "pending" => {}
            other => {
                let reason = format!("authorization for {domain} is {other:?}");
                return self.fail(reason, challenge_problem(body), None);
            }
        }
        let kind = self.settings.challenge.name();
        let challenge = body
            .get("challenges")
            .and_then(Value::as_array)
            .and_then(|l| {
                l.iter()
                    .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
            });
        let Some(challenge) = challenge else {
            let reason = format!("the server offers no {kind} challenge for {domain}");
            return self.fail(reason, None, None);
        };
        let url = challenge.get("url").and_then(Value::as_str);
        let token = challenge.get("token").and_then(Value::as_str);
        let (Some(url), Some(token)) = (url, token) else {
            return self.fail(format!("{kind} challenge without url or token"), None, None);
        };
        // RFC 8555 §8.1: base64url characters only (it becomes a path and a file name).
        let token_ok = !token.is_empty()
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !token_ok {
            return self.fail(format!("bad challenge token {token:?}"), None, None);
        }
        self.events.push_back(Event::Respond {
            domain,
            token: token.to_owned(),
            key_authorization: self.key.key_authorization(token),
        });
        self.state = if status(challenge) == "pending" {
            State::Challenge(i, url.to_owned())
        } else {
            // Already processing: only wait for the outcome.
            State::Validation(i)
        };
    }

    fn next_authorization(&mut self, i: usize) {
        self.state = if i + 1 < self.authorizations.len() {
            State::Authorization(i + 1)
        } else {
            State::Ready
        };
    }

    fn validation(&mut self, now: Instant, i: usize, body: &Value, retry: Option<Duration>) {
        match status(body) {
            "valid" => self.next_authorization(i),
            "pending" | "processing" => self.poll(now, retry),
            other => {
                let domain = body
                    .pointer("/identifier/value")
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                let reason = format!("authorization for {domain} is {other:?}");
                self.fail(reason, challenge_problem(body), None);
            }
        }
    }

    /// The order object, after finalize or a poll.
    fn order_status(&mut self, now: Instant, body: &Value, retry: Option<Duration>) {
        match (status(body), &self.state) {
            ("valid", _) => match body.get("certificate").and_then(Value::as_str) {
                Some(url) => self.state = State::Download(url.to_owned()),
                None => self.fail("valid order without certificate URL".into(), None, None),
            },
            ("ready", State::Ready) => self.state = State::Finalize,
            ("pending", State::Ready) | ("processing", State::Issuance | State::Finalize) => {
                if self.state == State::Finalize {
                    self.state = State::Issuance;
                }
                self.poll(now, retry);
            }
            ("ready", State::Issuance) => self.poll(now, retry),
            (other, _) => self.fail(format!("order is {other:?}"), problem(body), None),
        }
    }

    fn downloaded(&mut self, r: Response) {
        match String::from_utf8(r.body) {
            Ok(chain_pem) if chain_pem.contains("-----BEGIN CERTIFICATE-----") => {
                self.events.push_back(Event::Issued { chain_pem });
                self.state = State::Finished;
            }
            _ => self.fail("the download is not a PEM chain".into(), None, None),
        }
    }

    /// Poll again later, within the poll budget.
    fn poll(&mut self, now: Instant, retry: Option<Duration>) {
        self.polls += 1;
        if self.polls > MAX_POLLS {
            return self.fail(
                format!("still not done after {MAX_POLLS} polls"),
                None,
                None,
            );
        }
        self.wait(now, retry);
    }

    fn wait(&mut self, now: Instant, retry: Option<Duration>) {
        let d = retry.map_or(POLL_INTERVAL, |d| d.clamp(POLL_INTERVAL, MAX_POLL_WAIT));
        self.wait_until = Some(now + d);
    }

    fn fail(&mut self, reason: String, problem: Option<Problem>, retry: Option<Duration>) {
        self.fail_at(self.state.step(), reason, problem, retry);
    }

    fn fail_at(
        &mut self,
        step: Step,
        reason: String,
        problem: Option<Problem>,
        retry_after: Option<Duration>,
    ) {
        self.state = State::Finished;
        self.events.push_back(Event::Failed(Failure {
            step,
            reason,
            problem,
            retry_after,
        }));
    }
}

fn status(v: &Value) -> &str {
    v.get("status").and_then(Value::as_str).unwrap_or("")
}

/// The problem document of an object (an order's or authorization's `error`).
fn problem(v: &Value) -> Option<Problem> {
    v.get("error").and_then(Problem::from_value)
}

/// An authorization's failure: its challenges' `error`, else its own.
fn challenge_problem(v: &Value) -> Option<Problem> {
    v.get("challenges")
        .and_then(Value::as_array)
        .and_then(|l| l.iter().find_map(problem))
        .or_else(|| problem(v))
}

/// The problem document of an error response.
fn problem_of(r: &Response) -> Option<Problem> {
    serde_json::from_slice::<Value>(&r.body)
        .ok()
        .as_ref()
        .and_then(Problem::from_value)
}

#[cfg(test)]
mod tests;
