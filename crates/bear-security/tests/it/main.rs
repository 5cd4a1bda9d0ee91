//! Integration tests for bear-security.

mod access;
mod audit;
mod conformance;
mod crypto;
mod detect;
mod primitives;
mod props;
mod scrub;
