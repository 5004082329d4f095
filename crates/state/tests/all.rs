//! All integration tests of the state store, in one binary.

mod suite;
