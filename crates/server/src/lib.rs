//! Fracta's control plane server: the MCP gateway agents use to spawn and manage agents,
//! served over streamable HTTP (for agents) and stdio (`fracta mcp`).

pub mod convert;
pub mod dashboard;
pub mod discovery;
pub mod http;
pub mod mcp;
pub mod metrics;
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

/// The most a gateway request's body may hold (rmcp's own limit).
const MAX_MCP_BODY: usize = 4 * 1024 * 1024;

/// A JSON-RPC error answer with no request id (the request could not be read).
fn json_rpc_error(status: StatusCode, code: i64, message: String) -> Response {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": { "code": code, "message": message },
    });
    (status, axum::Json(body)).into_response()
}

/// Answer a JSON body that is no JSON-RPC message with a 400 and the JSON-RPC error for it
/// (-32700 parse error, -32600 invalid request); rmcp answers 415 (a media-type error) to
/// both. Any other request goes on unchanged.
async fn json_rpc_body(req: Request, next: Next) -> Response {
    let is_json = req
        .headers()
        .get(::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|e| e.trim().eq_ignore_ascii_case("application/json"))
        });
    if req.method() != ::http::Method::POST || !is_json {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_MCP_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return json_rpc_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                -32600,
                format!(
                    "invalid request: the body could not be read (at most {MAX_MCP_BODY} bytes): {e}"
                ),
            );
        }
    };
    if let Err(e) = serde_json::from_slice::<rmcp::model::ClientJsonRpcMessage>(&bytes) {
        return match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Err(_) => json_rpc_error(
                StatusCode::BAD_REQUEST,
                -32700,
                format!("parse error: the body is not valid JSON: {e}"),
            ),
            Ok(_) => json_rpc_error(
                StatusCode::BAD_REQUEST,
                -32600,
                format!("invalid request: the body is no JSON-RPC request: {e}"),
            ),
        };
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
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
        .layer(axum::middleware::from_fn(json_rpc_body))
        .layer(axum::middleware::from_fn_with_state(
            supervisor,
            require_token,
        ))
        .route("/health", axum::routing::get(|| async { "ok\n" }))
}

/// TCP keepalive on an accepted connection: idle this long, the peer is probed.
const KEEPALIVE_IDLE: std::time::Duration = std::time::Duration::from_secs(60);
/// Between probes; after `KEEPALIVE_PROBES` unanswered ones the connection is dropped.
const KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);
const KEEPALIVE_PROBES: u32 = 3;

/// Small writes (SSE events, JSON answers) go out at once, not after the peer's delayed ACK;
/// and a peer that vanished without closing (a half-open connection: its host down, a NAT
/// entry gone) is noticed by TCP keepalive within about 90 s of silence, and its connection
/// (an idle keep-alive, an SSE stream waiting for events) closed, instead of held forever.
fn tune_accepted(tcp: &mut tokio::net::TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!("TCP_NODELAY not set: {e}");
    }
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    if let Err(e) = socket2::SockRef::from(&*tcp).set_tcp_keepalive(&keepalive) {
        tracing::debug!("TCP keepalive not set: {e}");
    }
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
    start_with(supervisor, addr, Some((admin_token, None))).await
}

/// [`start_control_plane`], keeping the dashboard's sessions in `sessions_file` (mode 0600)
/// so an open page outlives a restart.
pub async fn start_control_plane_with_sessions(
    supervisor: Arc<Supervisor>,
    addr: SocketAddr,
    admin_token: String,
    sessions_file: std::path::PathBuf,
) -> Result<RunningGateway, ServerError> {
    start_with(supervisor, addr, Some((admin_token, Some(sessions_file)))).await
}

async fn start_with(
    supervisor: Arc<Supervisor>,
    addr: SocketAddr,
    admin: Option<(String, Option<std::path::PathBuf>)>,
) -> Result<RunningGateway, ServerError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ServerError::Bind { addr, source })?;
    supervisor.set_gateway_url(format!("http://{addr}{MCP_PATH}"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        // Listening already: a client that connects now waits in the backlog. The router is
        // built once the tasks started with this one have run as far as they can (a spawn's
        // launch, up to its CLI's start), not before them (~0.1 ms of a `fracta spawn`).
        tokio::task::yield_now().await;
        let app = match admin {
            Some((token, sessions)) => {
                let auth = Arc::new(dashboard::DashboardAuth::new(sessions));
                // The control plane: the API and the dashboard, and /metrics for Prometheus
                // (no token: a scraper has none; it shows counts and sums, never a prompt, a
                // secret or an id).
                let m = Arc::new(metrics::Metrics::default());
                let (sup, scrape) = (Arc::clone(&supervisor), Arc::clone(&m));
                router(Arc::clone(&supervisor))
                    .merge(http::router_with(supervisor, token, auth))
                    .route(
                        metrics::METRICS_PATH,
                        axum::routing::get(move || {
                            metrics::handler(Arc::clone(&sup), Arc::clone(&scrape))
                        }),
                    )
                    .layer(axum::middleware::from_fn_with_state(m, metrics::track))
            }
            None => router(supervisor),
        };
        let listener = listener.tap_io(tune_accepted);
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
