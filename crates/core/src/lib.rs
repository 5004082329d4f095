//! Fracta's engine: adapters describe launches of the agent CLIs, backends run them, the
//! runner records everything in the state store.

pub mod adapter;
pub mod backend;
pub mod control_plane;
pub mod credentials;
pub mod event;
pub mod launch;
pub mod redact;
pub mod runner;
pub mod task;
pub mod transport;
pub mod workspace;
