//! Automatic certificates by ACME (RFC 8555), the sans-IO part: the account key and JWS
//! signing ([`jws`]), one order as a state machine on canned or real replies ([`order`]), the
//! validity period of a certificate ([`der`]), and what answers the challenges
//! ([`challenge`]: the HTTP-01 key authorizations by token, the TLS-ALPN-01 certificate of a
//! name, RFC 8737).
//!
//! Nothing here sends a request or reads a clock: the appliance's ACME driver
//! (`appliance::acme`) sends what an [`order::Order`] asks through `paf::client` on the
//! userspace stack and hands the replies back with the loop's `now`.

pub mod challenge;
pub mod der;
pub mod jws;
pub mod order;

pub use challenge::Http01;
pub use der::Validity;
pub use jws::{AccountKey, KeyError};
pub use order::{Event, Failure, Order, Problem, Settings, Step};
