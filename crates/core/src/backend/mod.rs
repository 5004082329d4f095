//! Backends run what adapters describe. `local`: child processes on this machine.

pub mod local;
