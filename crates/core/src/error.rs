//! What can go wrong running an agent, as the engine reports it to its callers.

use fracta_state::StoreError;

use crate::task;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Bad request: nothing was started (exit code 2).
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Task(#[from] task::TaskError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Other(String),
}
