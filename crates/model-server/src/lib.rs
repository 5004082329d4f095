//! Fracta's scripted model server.
//!
//! A small HTTP server that speaks enough of the Anthropic Messages API, the
//! OpenAI Responses API and OpenAI Chat Completions for the real agent CLIs
//! (Claude Code, Codex, OpenCode) to run against it offline. Replies come from
//! a [`Script`]; every request is recorded as a [`RecordedRequest`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use fracta_model_server::{ModelServer, Script, ServerOptions};
//! let script = Script::parse(
//!     r#"
//! rules:
//!   - name: hello
//!     when: { contains: "say hello" }
//!     reply: "Hello!"
//!   - name: tool
//!     when: { api: openai }
//!     reply:
//!       tool_calls: [{ name: shell, input: { command: ["ls"] } }]
//! fallback: "done"
//! "#,
//!     "inline",
//! )?;
//! let server = ModelServer::start_with_options(
//!     script,
//!     "127.0.0.1:0".parse()?,
//!     ServerOptions::default().with_record_file("/tmp/requests.jsonl"),
//! )
//! .await?;
//! // Claude Code: ANTHROPIC_BASE_URL=<url>;  Codex: base_url = "<url>/v1"
//! println!("{}", server.url());
//! for r in server.model_requests() {
//!     println!("{} {} -> {:?}", r.seq, r.path, r.rule);
//! }
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! HTTP surface:
//! - `HEAD /`, `GET /` → 200.
//! - `POST /v1/messages` (Anthropic, SSE when `"stream": true`),
//!   `POST /v1/messages/count_tokens`, `GET /v1/models`.
//! - `POST /v1/responses` (OpenAI Responses), `POST /v1/chat/completions`.
//! - `POST /v1beta/models/{model}:generateContent`, `:streamGenerateContent` (Gemini; SSE
//!   `data:` chunks), `:countTokens`.
//! - The same paths without the `/v1` prefix.
//! - Control API (not recorded): `GET /_fracta/health`, `GET|DELETE /_fracta/requests`,
//!   `GET|PUT /_fracta/script` (YAML or JSON), `POST /_fracta/release/{name}`,
//!   `GET /_fracta/holds/{name}`.
//! - Anything else: 404 with a JSON error (recorded).

mod anthropic;
mod error;
mod gemini;
mod openai;
pub mod script;
mod server;
mod wire;

pub use error::{ScriptError, ServerError};
pub use script::{Api, Block, ErrorReply, Match, Reply, Rule, Script, ToolCall, ToolKind, Usage};
pub use server::{ModelServer, RecordedRequest, ServerOptions};
pub use wire::last_user_text;
