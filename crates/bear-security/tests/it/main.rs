//! Integration tests for bear-security.

mod detect;
mod primitives;
