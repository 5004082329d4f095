//! All integration tests of the model server, in one binary.

mod suite;
