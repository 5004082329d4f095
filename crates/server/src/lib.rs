//! Fracta's control plane server: the MCP gateway agents use to spawn and manage agents,
//! served over streamable HTTP (for agents) and stdio (`fracta mcp`).

pub mod convert;
pub mod discovery;
pub mod http;
pub mod mcp;
pub mod openapi;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use fracta_core::supervisor::Supervisor;
use rmcp::ServiceExt;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use crate::mcp::{FractaMcp, Identity};

/// The path the MCP gateway is served at.
pub const MCP_PATH: &str = "/mcp";

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("MCP over stdio failed: {0}")]
    Stdio(String),
}

/// A running gateway.
pub struct RunningGateway {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningGateway {
    pub fn url(&self) -> String {
        format!("http://{}{MCP_PATH}", self.addr)
    }

    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = self.task.await;
    }
}

/// Refuse any gateway request without a token that belongs to a running agent.
async fn require_token(State(sup): State<Arc<Supervisor>>, req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match token {
        Some(t) if sup.authenticate(t).is_some() => next.run(req).await,
        Some(_) => (StatusCode::UNAUTHORIZED, "unauthorized: this token belongs to no running agent\n").into_response(),
        None => (StatusCode::UNAUTHORIZED, "unauthorized: send `Authorization: Bearer TOKEN` (each agent gets one in FRACTA_AGENT_TOKEN)\n").into_response(),
    }
}

/// The gateway's router: streamable-HTTP MCP at `/mcp`, stateless with JSON responses.
pub fn router(supervisor: Arc<Supervisor>) -> axum::Router {
    let sup = Arc::clone(&supervisor);
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true);
    let service = StreamableHttpService::new(
        move || Ok(FractaMcp::new(Arc::clone(&sup), Identity::BearerToken)),
        Arc::new(NeverSessionManager::default()),
        config,
    );
    axum::Router::new()
        .nest_service(MCP_PATH, service)
        .layer(axum::middleware::from_fn_with_state(
            supervisor,
            require_token,
        ))
        .route("/health", axum::routing::get(|| async { "ok\n" }))
}

/// Serve the gateway on `addr` (port 0: any free port) and tell the supervisor its URL.
pub async fn start(
    supervisor: Arc<Supervisor>,
    addr: SocketAddr,
) -> Result<RunningGateway, ServerError> {
    start_with(supervisor, addr, None).await
}

/// The control plane (`fracta serve`): the gateway plus the HTTP API under `/v1`, which takes
/// `admin_token`.
pub async fn start_control_plane(
    supervisor: Arc<Supervisor>,
    addr: SocketAddr,
    admin_token: String,
) -> Result<RunningGateway, ServerError> {
    start_with(supervisor, addr, Some(admin_token)).await
}

async fn start_with(
    supervisor: Arc<Supervisor>,
    addr: SocketAddr,
    admin_token: Option<String>,
) -> Result<RunningGateway, ServerError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ServerError::Bind { addr, source })?;
    supervisor.set_gateway_url(format!("http://{addr}{MCP_PATH}"));
    let app = match admin_token {
        Some(token) => router(Arc::clone(&supervisor)).merge(http::router(supervisor, token)),
        None => router(supervisor),
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        // Small writes (SSE events, JSON answers) go out at once, not after the peer's
        // delayed ACK.
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!("TCP_NODELAY not set: {e}");
            }
        });
        let r = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
        if let Err(e) = r {
            tracing::error!("gateway stopped: {e}");
        }
    });
    tracing::info!(%addr, "MCP gateway listening");
    Ok(RunningGateway {
        addr,
        shutdown: Some(tx),
        task,
    })
}

/// Serve MCP over stdio for a local person's client (stdout is the protocol; logs go to the
/// log file).
pub async fn serve_stdio(supervisor: Arc<Supervisor>) -> Result<(), ServerError> {
    let svc = FractaMcp::new(supervisor, Identity::User)
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| ServerError::Stdio(e.to_string()))?;
    svc.waiting()
        .await
        .map_err(|e| ServerError::Stdio(e.to_string()))?;
    Ok(())
}
