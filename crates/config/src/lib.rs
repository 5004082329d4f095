//! `fracta.yaml`: the typed configuration model of the Runtime Configuration Guide, its
//! loader, and diagnostics that name file, line, column and key path.

pub mod diagnostic;
pub mod expand;
pub mod kube_rules;
pub mod load;
pub mod model;
pub mod show;
pub mod spans;

pub use diagnostic::{Diagnostic, Severity};
pub use load::{ConfigError, Found, LoadedConfig, load, load_path, locate, parse};
pub use model::*;

#[cfg(test)]
mod tests;
