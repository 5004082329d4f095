//! Error types.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Errors loading or parsing a script.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    /// The script file could not be read.
    #[error("cannot read script {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The script did not parse.
    #[error("invalid script {origin} at `{path}`: {message}")]
    Parse {
        /// File name or other origin of the text.
        origin: String,
        /// serde path of the offending value (e.g. `rules[2].reply.usage`).
        path: String,
        /// The parser's message.
        message: String,
    },
}

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Could not bind the listening socket.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Requested address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// Could not open the request record file.
    #[error("cannot open record file {}: {source}", path.display())]
    RecordFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Other I/O error.
    #[error("model server I/O error: {0}")]
    Io(#[from] std::io::Error),
}
