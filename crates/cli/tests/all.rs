//! All integration tests of the `fracta` binary, in one test binary.

mod suite;
