//! Fracta's engine, in rooms from the bottom up: secrets, redaction, env composition and the
//! launch description (`secret`, `redact`, `env`, `launch`, `event`, `task`, `error`); the
//! adapters that describe launches, credentials, workspaces and backends that run them
//! (`adapter`, `credentials`, `workspace`, `backend`); recording and the session loop
//! (`record`, `transport`, `session`); a remote backend's plug (`remote`); resolution and the
//! runner, which lives one agent's life (`resolve`, `runner`, `stop`); the supervisor on top
//! (trees, budgets, tokens, queueing). A module imports only from rooms below it.

pub mod adapter;
pub mod backend;
pub mod credentials;
pub mod env;
pub mod error;
pub mod event;
pub mod launch;
pub mod record;
pub mod redact;
pub mod remote;
pub mod resolve;
pub mod runner;
pub mod secret;
pub mod session;
mod stop;
pub mod supervisor;
pub mod task;
pub mod transport;
pub mod workspace;
