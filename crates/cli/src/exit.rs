//! Exit codes (documented in `--help` and the README) and the error that carries one.

use fracta_api::ErrorCode;

pub const FAILURE: u8 = 1;
pub const USAGE: u8 = 2;
#[allow(dead_code)]
pub const STOPPED: u8 = 3;
pub const NOT_FOUND: u8 = 4;

/// An error that decides the exit code. When `message` is None, the details were already
/// printed (diagnostics, a failed agent's report) and only the code remains.
#[derive(Debug, thiserror::Error)]
#[error("{}", message.as_deref().unwrap_or("failed"))]
pub struct Failure {
    pub code: u8,
    pub message: Option<String>,
    pub already_reported: bool,
    /// The machine-readable code, when it is known more precisely than the exit code says
    /// (an error answer of the control plane).
    pub error_code: Option<ErrorCode>,
}

impl Failure {
    pub fn reported(code: u8) -> anyhow::Error {
        Failure {
            code,
            message: None,
            already_reported: true,
            error_code: None,
        }
        .into()
    }

    pub fn msg(code: u8, message: impl Into<String>) -> anyhow::Error {
        Failure {
            code,
            message: Some(message.into()),
            already_reported: false,
            error_code: None,
        }
        .into()
    }

    /// An error the control plane answered, with its code.
    pub fn api(code: u8, error_code: ErrorCode, message: impl Into<String>) -> anyhow::Error {
        Failure {
            code,
            message: Some(message.into()),
            already_reported: false,
            error_code: Some(error_code),
        }
        .into()
    }

    /// The code `--json` prints for this error.
    pub fn error_code(&self) -> ErrorCode {
        self.error_code.unwrap_or(match self.code {
            USAGE => ErrorCode::Usage,
            NOT_FOUND => ErrorCode::NotFound,
            _ => ErrorCode::Failed,
        })
    }
}
