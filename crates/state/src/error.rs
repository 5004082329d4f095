//! Errors of the state store.

use std::path::PathBuf;

/// Result alias for state store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// An error from the state store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No record with that id (or id prefix / task name).
    #[error("no agent or record found for '{id}'")]
    NotFound { id: String },

    /// An id prefix matches more than one agent.
    #[error("id prefix '{prefix}' is ambiguous; it matches: {}", matches.join(", "))]
    Ambiguous {
        prefix: String,
        matches: Vec<String>,
    },

    /// Inserting a record whose id already exists.
    #[error("an agent with id '{id}' already exists")]
    AlreadyExists { id: String },

    /// An error from SQLite.
    #[error("state database {path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },

    /// Creating the database directory failed.
    #[error("cannot create state directory {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A schema migration failed.
    #[error("state database {path}: migration to schema version {version} failed: {message}")]
    Migration {
        path: String,
        version: u32,
        message: String,
    },

    /// The database was written by a newer fracta.
    #[error(
        "state database schema version {found} is newer than this fracta supports ({supported}); upgrade fracta"
    )]
    SchemaTooNew { found: u32, supported: u32 },

    /// JSON (de)serialization of a stored value failed.
    #[error("state store JSON error: {0}")]
    Serde(#[from] serde_json::Error),

    /// A stored value could not be decoded (bad enum name, timestamp, ...).
    #[error("invalid {field} value in state store: '{value}'")]
    InvalidValue { field: &'static str, value: String },
}

impl StoreError {
    /// Whether this is a `NotFound` error.
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound { .. })
    }
}
