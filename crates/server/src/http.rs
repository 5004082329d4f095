//! The control plane's HTTP API under `/v1`, for people and tools (the `fracta` CLI talks to it
//! when `fracta serve` runs): create, list, get, stop and resume agents, read their events, and
//! follow them live as Server-Sent Events, per agent or for a whole tree. Every call needs the
//! control plane's admin token (`Authorization: Bearer …`, in `.fracta/serve.json`); agents'
//! gateway tokens are for `/mcp` only. The OpenAPI document is at `/v1/openapi.json`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use fracta_api::{
    AgentView, ApiErrorBody, DiffView, ErrorCode, ErrorDetail, EventView, EventsQuery, FileDiff,
    ForestAgent, Health, ListQuery, LoginCode, MergeBody, MergeView, RemoveQuery, ResumeBody,
    SendBody, SpawnArgs, SteerBody,
};
use fracta_core::error::RunError;
use fracta_core::supervisor::{Caller, ControlError, Supervisor};
use fracta_core::task::TaskError;
use fracta_state::{AgentFilter, AgentRecord, AgentStatus, StoreError};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::convert::{agent_view, event_view, forest_agent, request_context, spawn_request};
use crate::dashboard::{self, Authn, DashboardAuth};

/// An API error: a status and a message a person can act on.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError(status, message.into())
    }

    pub fn status(&self) -> StatusCode {
        self.0
    }
}

/// The machine-readable code of an error answer with this status.
pub fn error_code(status: StatusCode) -> ErrorCode {
    match status {
        StatusCode::BAD_REQUEST => ErrorCode::Usage,
        StatusCode::UNAUTHORIZED => ErrorCode::Unauthorized,
        StatusCode::FORBIDDEN => ErrorCode::Forbidden,
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::CONFLICT => ErrorCode::Conflict,
        StatusCode::UNPROCESSABLE_ENTITY => ErrorCode::BudgetExceeded,
        _ => ErrorCode::Internal,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ApiErrorBody {
            error: ErrorDetail {
                code: error_code(self.0),
                message: self.1,
            },
        };
        (self.0, Json(body)).into_response()
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        let status = match &e {
            ControlError::Budget { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ControlError::Forbidden { .. } | ControlError::SelfStop { .. } => StatusCode::FORBIDDEN,
            ControlError::NoSession { .. } | ControlError::Steer(_) => StatusCode::CONFLICT,
            ControlError::Store(StoreError::NotFound { .. })
            | ControlError::Run(RunError::Store(StoreError::NotFound { .. })) => {
                StatusCode::NOT_FOUND
            }
            // The prefix matched more than one agent: the client names one of them.
            ControlError::Store(StoreError::Ambiguous { .. })
            | ControlError::Run(RunError::Store(StoreError::Ambiguous { .. })) => {
                StatusCode::CONFLICT
            }
            ControlError::Run(RunError::Task(TaskError::NotFound { .. })) => StatusCode::NOT_FOUND,
            ControlError::Run(RunError::Usage(_) | RunError::Task(_)) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ControlError::Store(e).into()
    }
}

#[derive(Clone)]
struct Api {
    sup: Arc<Supervisor>,
    token: Arc<String>,
    auth: Arc<DashboardAuth>,
}

/// Refuse any API call without the admin token or a dashboard session (see
/// [`DashboardAuth::check`]).
async fn require_admin(State(api): State<Api>, req: Request, next: Next) -> Response {
    match api.auth.check(&api.token, &req) {
        Ok(_) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// Only the admin token (not a dashboard session): minting login codes.
async fn require_admin_token(State(api): State<Api>, req: Request, next: Next) -> Response {
    match api.auth.check(&api.token, &req) {
        Ok(Authn::AdminToken) => next.run(req).await,
        Ok(Authn::Session) => ApiError(
            StatusCode::FORBIDDEN,
            "forbidden: login codes are made with the admin token (`fracta dashboard`), not from a dashboard session".into(),
        )
        .into_response(),
        Err(e) => e.into_response(),
    }
}

/// The `/v1` routes (the health check needs no token) and the dashboard at `/`, with
/// sessions in memory only.
pub fn router(sup: Arc<Supervisor>, admin_token: String) -> Router {
    router_with(sup, admin_token, Arc::new(DashboardAuth::new(None)))
}

/// [`router`] with the dashboard's login codes and sessions in `auth`.
pub fn router_with(sup: Arc<Supervisor>, admin_token: String, auth: Arc<DashboardAuth>) -> Router {
    let api = Api {
        sup,
        token: Arc::new(admin_token),
        auth: Arc::clone(&auth),
    };
    let codes = Router::new()
        .route("/v1/dashboard/codes", post(new_code))
        .layer(axum::middleware::from_fn_with_state(
            api.clone(),
            require_admin_token,
        ))
        .with_state(api.clone());
    let protected = Router::new()
        .route("/v1/agents", post(create).get(list))
        .route("/v1/forest/stream", get(stream_forest))
        .route("/v1/agents/{id}/diff", get(diff))
        .route("/v1/agents/{id}", get(show).delete(remove))
        .route("/v1/agents/{id}/merge", post(merge))
        .route("/v1/agents/{id}/events", get(events))
        .route("/v1/agents/{id}/events/stream", get(stream_agent))
        .route("/v1/agents/{id}/tree/events/stream", get(stream_tree))
        .route("/v1/agents/{id}/stop", post(stop))
        .route("/v1/agents/{id}/resume", post(resume))
        .route("/v1/agents/{id}/send", post(send))
        .route("/v1/agents/{id}/steer", post(steer))
        .layer(axum::middleware::from_fn_with_state(
            api.clone(),
            require_admin,
        ))
        .with_state(api);
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/openapi.json", get(openapi))
        .merge(protected)
        .merge(codes)
        .merge(dashboard::pages(auth))
}

async fn new_code(State(api): State<Api>) -> Result<(StatusCode, Json<LoginCode>), ApiError> {
    Ok((StatusCode::CREATED, Json(api.auth.new_code()?)))
}

async fn health() -> Json<Health> {
    Json(Health {
        ok: true,
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    })
}

async fn openapi() -> Json<serde_json::Value> {
    Json(crate::openapi::document())
}

async fn create(
    State(api): State<Api>,
    headers: HeaderMap,
    Json(args): Json<SpawnArgs>,
) -> Result<(StatusCode, Json<AgentView>), ApiError> {
    let (req, asked) = spawn_request(&args).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))?;
    let agent = api
        .sup
        .spawn_with(&Caller::User, req, &asked, request_context(&headers))?;
    if args.wait.unwrap_or(false) {
        let t = Duration::from_secs(args.timeout_secs.unwrap_or(crate::mcp::DEFAULT_WAIT_SECS));
        let done = api.sup.wait(&agent.id, t).await?;
        return Ok((StatusCode::CREATED, Json(agent_view(&done))));
    }
    Ok((StatusCode::CREATED, Json(agent_view(&agent))))
}

async fn list(
    State(api): State<Api>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<AgentView>>, ApiError> {
    let filter = AgentFilter {
        statuses: if q.all.unwrap_or(false) {
            vec![]
        } else {
            vec![
                AgentStatus::Queued,
                AgentStatus::Starting,
                AgentStatus::Running,
            ]
        },
        root_id: q.root,
        ..AgentFilter::default()
    };
    let agents = api.sup.runner.store.list_agents(&filter)?;
    Ok(Json(agents.iter().map(agent_view).collect()))
}

async fn show(State(api): State<Api>, Path(id): Path<String>) -> Result<Json<AgentView>, ApiError> {
    Ok(Json(agent_view(&api.sup.runner.store.get_agent(&id)?)))
}

async fn events(
    State(api): State<Api>,
    Path(id): Path<String>,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Vec<EventView>>, ApiError> {
    let agent = api.sup.runner.store.get_agent(&id)?;
    let limit = q.limit.unwrap_or(500).min(5000);
    let events = api
        .sup
        .runner
        .store
        .events(&agent.id, q.after.unwrap_or(0), Some(limit))?;
    Ok(Json(events.iter().map(event_view).collect()))
}

async fn stop(State(api): State<Api>, Path(id): Path<String>) -> Result<Json<AgentView>, ApiError> {
    Ok(Json(agent_view(&api.sup.stop_tree(&id).await?)))
}

async fn resume(
    State(api): State<Api>,
    Path(id): Path<String>,
    Json(body): Json<ResumeBody>,
) -> Result<Json<AgentView>, ApiError> {
    let agent = api.sup.runner.store.get_agent(&id)?;
    Ok(Json(agent_view(&api.sup.resume(&agent.id, &body.prompt)?)))
}

async fn send(
    State(api): State<Api>,
    Path(id): Path<String>,
    Json(body): Json<SendBody>,
) -> Result<Json<AgentView>, ApiError> {
    let wait = body
        .wait
        .unwrap_or(true)
        .then(|| Duration::from_secs(body.timeout_secs.unwrap_or(crate::mcp::DEFAULT_WAIT_SECS)));
    let agent = api.sup.send(&Caller::User, &id, &body.prompt, wait).await?;
    Ok(Json(agent_view(&agent)))
}

async fn steer(
    State(api): State<Api>,
    Path(id): Path<String>,
    Json(body): Json<SteerBody>,
) -> Result<Json<AgentView>, ApiError> {
    let agent = api.sup.steer(&Caller::User, &id, &body.prompt).await?;
    Ok(Json(agent_view(&agent)))
}

/// A stream position: for each agent, the last seq sent. As an SSE event id (and so as the
/// `Last-Event-ID` a client resumes with) it is `AGENT:SEQ` pairs joined by `,`, one per agent
/// that has sent events, ordered by id: a one-agent stream's ids are `AGENT:SEQ`, a tree
/// stream's carry every member's position, so a reconnect resumes each agent where it was.
type Cursor = HashMap<String, u64>;

/// The cursor a client resumes from (`Last-Event-ID`); malformed pairs are ignored.
fn last_event_cursor(headers: &HeaderMap) -> Cursor {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(',')
                .filter_map(|pair| {
                    let (id, seq) = pair.trim().rsplit_once(':')?;
                    Some((id.to_string(), seq.parse().ok()?))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The SSE event id of a stream at `cursor`.
fn cursor_id(cursor: &Cursor) -> String {
    let mut pairs: Vec<(&String, &u64)> = cursor.iter().filter(|(_, s)| **s > 0).collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(id, seq)| format!("{id}:{seq}"))
        .collect::<Vec<_>>()
        .join(",")
}

async fn stream_agent(
    State(api): State<Api>,
    Path(id): Path<String>,
    Query(q): Query<EventsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let agent = api.sup.runner.store.get_agent(&id)?;
    let resume = last_event_cursor(&headers);
    let after = resume.get(&agent.id).copied().or(q.after).unwrap_or(0);
    Ok(follow(
        api.sup,
        agent.clone(),
        false,
        HashMap::from([(agent.id, after)]),
    ))
}

async fn stream_tree(
    State(api): State<Api>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let agent = api.sup.runner.store.get_agent(&id)?;
    Ok(follow(api.sup, agent, true, last_event_cursor(&headers)))
}

/// Stream stored events as SSE (`id`: the stream's [`Cursor`], `event: KIND`, `data:
/// EventView`), then live ones as they are persisted, until the agent (or every agent of the
/// tree) has ended; a last `event: end` carries the final AgentView(s). Events are read back
/// from the store, so a client sees exactly what was persisted, in order, and nothing before
/// it was persisted. Each agent starts after its seq in `resume` (for a tree, only members of
/// the subtree count).
fn follow(sup: Arc<Supervisor>, agent: AgentRecord, tree: bool, resume: Cursor) -> Response {
    let (tx, rx) = mpsc::channel::<Result<SseEvent, Infallible>>(256);
    // Subscribe before the first read, so nothing persisted in between is missed.
    let mut live = sup.subscribe();
    tokio::spawn(async move {
        let store = &sup.runner.store;
        let start = |id: &str| resume.get(id).copied().unwrap_or(0);
        let mut sent: Cursor = HashMap::from([(agent.id.clone(), start(&agent.id))]);
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            // Members of the tree may have been added.
            if tree {
                let filter = AgentFilter {
                    root_id: Some(agent.root_id.clone()),
                    ..AgentFilter::default()
                };
                for a in store.list_agents(&filter).unwrap_or_default() {
                    if a.id == agent.id || is_below(store.as_ref(), &a, &agent.id) {
                        let at = start(&a.id);
                        sent.entry(a.id).or_insert(at);
                    }
                }
            }
            let ids: Vec<String> = sent.keys().cloned().collect();
            for id in ids {
                loop {
                    let after = sent.get(&id).copied().unwrap_or(0);
                    let batch = store.events(&id, after, Some(500)).unwrap_or_default();
                    for e in &batch {
                        sent.insert(id.clone(), e.seq);
                        let data = serde_json::to_string(&event_view(e)).unwrap_or_default();
                        let ev = SseEvent::default()
                            .id(cursor_id(&sent))
                            .event(e.kind.clone())
                            .data(data);
                        if tx.send(Ok(ev)).await.is_err() {
                            return;
                        }
                    }
                    if batch.len() < 500 {
                        break;
                    }
                }
            }
            let records: Vec<AgentRecord> = sent
                .keys()
                .filter_map(|id| store.get_agent(id).ok())
                .collect();
            // Ended: recorded as ended, no longer run here (its last events are persisted by
            // then), and nothing left unsent.
            let running_here = sup.live_ids();
            let ended = records
                .iter()
                .all(|a| a.status.is_terminal() && !running_here.contains(&a.id))
                && records.iter().all(|a| {
                    store
                        .events(&a.id, sent.get(&a.id).copied().unwrap_or(0), Some(1))
                        .map(|v| v.is_empty())
                        .unwrap_or(true)
                });
            if ended {
                let views: Vec<AgentView> = records.iter().map(agent_view).collect();
                let data = serde_json::to_string(&views).unwrap_or_default();
                let _ = tx
                    .send(Ok(SseEvent::default().event("end").data(data)))
                    .await;
                return;
            }
            // Wake on a live event (or a lag, or the tick: a status change that came with no
            // event, or an agent run by another process).
            tokio::select! {
                r = live.recv() => if let Err(broadcast::error::RecvError::Closed) = r {
                    tick.tick().await;
                },
                _ = tick.tick() => {}
            }
        }
    });
    Sse::new(ReceiverStream::new(rx))
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// The forest's stream position: the newest `updated_at` sent (microseconds since the epoch).
fn forest_cursor(headers: &HeaderMap) -> Option<i64> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// At most this many agents, newest first, are in the forest stream.
const FOREST_MAX: usize = 5000;

/// `GET /v1/forest/stream`: every agent as a [`fracta_api::ForestAgent`] (`event: agents`, a
/// JSON array), then those that changed, in one array per change, and `event: removed` (its id) when one is deleted.
/// The stream never ends. It opens with `event: hello` (`{"resumed_from": CURSOR|null}`);
/// resumed with `Last-Event-ID`, it first sends `event: present` (every agent id there is,
/// so the client drops those removed meanwhile), then only the agents updated since.
async fn stream_forest(State(api): State<Api>, headers: HeaderMap) -> Response {
    let resumed = forest_cursor(&headers);
    let (tx, rx) = mpsc::channel::<Result<SseEvent, Infallible>>(256);
    let mut live = api.sup.subscribe();
    let mut shutdown = api.sup.shutdown_watch();
    let sup = api.sup;
    tokio::spawn(async move {
        let hello = serde_json::json!({ "resumed_from": resumed.map(|c| c.to_string()) });
        if tx
            .send(Ok(SseEvent::default()
                .event("hello")
                .retry(Duration::from_secs(1))
                .data(hello.to_string())))
            .await
            .is_err()
        {
            return;
        }
        // What the client has: id → the JSON it was sent.
        let mut sent: HashMap<String, String> = HashMap::new();
        let mut cursor = resumed.unwrap_or(0);
        let mut first = true;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            let sup2 = Arc::clone(&sup);
            let listed = tokio::task::spawn_blocking(move || {
                let filter = AgentFilter {
                    limit: Some(FOREST_MAX),
                    ..AgentFilter::default()
                };
                sup2.runner.store.list_agents(&filter).map(|agents| {
                    agents
                        .iter()
                        .map(|a| (a.updated_at.as_microsecond(), forest_agent(&sup2, a)))
                        .collect::<Vec<_>>()
                })
            })
            .await;
            let Ok(Ok(mut agents)) = listed else {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            // Oldest first: a parent arrives before its children.
            agents.reverse();
            if first && resumed.is_some() {
                let ids: Vec<&str> = agents.iter().map(|(_, f)| f.agent.id.as_str()).collect();
                let data = serde_json::to_string(&ids).unwrap_or_default();
                if tx
                    .send(Ok(SseEvent::default().event("present").data(data)))
                    .await
                    .is_err()
                {
                    return;
                }
                for (at, f) in &agents {
                    if *at <= cursor {
                        sent.insert(
                            f.agent.id.clone(),
                            serde_json::to_string(f).unwrap_or_default(),
                        );
                    }
                }
            }
            first = false;
            let mut present = std::collections::HashSet::new();
            let mut changed: Vec<&ForestAgent> = Vec::new();
            for (at, f) in &agents {
                present.insert(f.agent.id.clone());
                let data = serde_json::to_string(f).unwrap_or_default();
                if sent.get(&f.agent.id) == Some(&data) {
                    continue;
                }
                cursor = cursor.max(*at);
                sent.insert(f.agent.id.clone(), data);
                changed.push(f);
            }
            // One message per round (the first one holds the whole forest): a page draws
            // once, not once per agent.
            for chunk in changed.chunks(1000) {
                let ev = SseEvent::default()
                    .id(cursor.to_string())
                    .event("agents")
                    .data(serde_json::to_string(chunk).unwrap_or_default());
                if tx.send(Ok(ev)).await.is_err() {
                    return;
                }
            }
            let gone: Vec<String> = sent
                .keys()
                .filter(|k| !present.contains(*k))
                .cloned()
                .collect();
            for id in gone {
                sent.remove(&id);
                let data = serde_json::to_string(&id).unwrap_or_default();
                if tx
                    .send(Ok(SseEvent::default().event("removed").data(data)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            // Wake on a live event (then let a burst settle) or the tick (status changes
            // that came with no event, agents run by another process).
            tokio::select! {
                r = live.recv() => {
                    if let Err(broadcast::error::RecvError::Closed) = r {
                        tick.tick().await;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    while live.try_recv().is_ok() {}
                },
                _ = tick.tick() => {}
                _ = tx.closed() => return,
                // The control plane is going away: end the stream (the client reconnects to
                // the next one, resuming from its last id).
                _ = async { shutdown.wait_for(Option::is_some).await.map(|_| ()) } => return,
            }
        }
    });
    Sse::new(ReceiverStream::new(rx))
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// `GET /v1/agents/{id}/diff`: the agent's branch against its base, with a stat and one
/// patch per file.
async fn diff(State(api): State<Api>, Path(id): Path<String>) -> Result<Json<DiffView>, ApiError> {
    let agent = api.sup.runner.store.get_agent(&id)?;
    let Some(branch) = agent.branch.clone() else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!(
                "agent {} has no branch (it ran outside a git repository, or on Kubernetes)",
                agent.id
            ),
        ));
    };
    let cfg = api.sup.runner.cfg();
    let dir = cfg.project_dir();
    let base = fracta_core::review::base_of(&cfg, &agent);
    if !fracta_core::workspace::branch_exists(&dir, &branch) {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("agent {}'s branch {branch} no longer exists", agent.id),
        ));
    }
    let (b, br) = (base.clone(), branch.clone());
    let out = tokio::task::spawn_blocking(move || {
        let stat = fracta_core::workspace::diff(&dir, &b, &br, true)?;
        let patch = fracta_core::workspace::diff(&dir, &b, &br, false)?;
        Ok::<_, fracta_core::workspace::WorkspaceError>((stat, patch))
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(DiffView {
        agent_id: agent.id,
        base,
        branch,
        stat: out.0,
        files: split_patch(&out.1),
    }))
}

impl From<fracta_core::review::ReviewError> for ApiError {
    fn from(e: fracta_core::review::ReviewError) -> Self {
        use fracta_core::review::ReviewError as R;
        let status = match &e {
            R::NotEnded(_) | R::Refused(_) => StatusCode::CONFLICT,
            R::NoBranch { .. } | R::Store(StoreError::NotFound { .. }) => StatusCode::NOT_FOUND,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, e.to_string())
    }
}

/// Run blocking review work (git, files) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

/// `POST /v1/agents/{id}/merge`: bring an ended agent's branch into the branch checked out
/// in the project (as `fracta merge`), then remove the agent with `rm: true`.
async fn merge(
    State(api): State<Api>,
    Path(id): Path<String>,
    Json(body): Json<MergeBody>,
) -> Result<Json<MergeView>, ApiError> {
    use fracta_core::workspace::MergeHow;
    let how = match body.how.as_deref() {
        None | Some("merge") => MergeHow::Merge,
        Some("squash") => MergeHow::Squash,
        Some("rebase") => MergeHow::Rebase,
        Some(other) => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("unknown merge `{other}`; valid: merge, squash, rebase"),
            ));
        }
    };
    let sup = Arc::clone(&api.sup);
    blocking(move || {
        let store = &sup.runner.store;
        let cfg = &sup.runner.cfg();
        let agent = store.get_agent(&id)?;
        let m = fracta_core::review::merge(cfg, &agent, how)?;
        let rm = body.rm.unwrap_or(false);
        if rm {
            fracta_core::review::remove(cfg, store.as_ref(), &agent)?;
        }
        Ok(Json(MergeView {
            agent_id: agent.id,
            branch: m.branch,
            into: m.into,
            head: m.head,
            removed: rm,
        }))
    })
    .await
}

/// `DELETE /v1/agents/{id}[?force=true]`: remove an ended agent (worktree, branch, runtime
/// home, record), as `fracta rm`; refused (409) while it runs, or while its branch has work
/// not on its base unless `force`. Answers the agent as it was.
async fn remove(
    State(api): State<Api>,
    Path(id): Path<String>,
    Query(q): Query<RemoveQuery>,
) -> Result<Json<AgentView>, ApiError> {
    let sup = Arc::clone(&api.sup);
    blocking(move || {
        let store = &sup.runner.store;
        let cfg = &sup.runner.cfg();
        let agent = store.get_agent(&id)?;
        let why = fracta_core::review::refusal(cfg, &agent, q.force.unwrap_or(false))
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        if let Some(why) = why {
            return Err(ApiError(StatusCode::CONFLICT, why));
        }
        fracta_core::review::remove(cfg, store.as_ref(), &agent)?;
        Ok(Json(agent_view(&agent)))
    })
    .await
}

/// A patch cut at each `diff --git` line, with each file's path and line counts.
pub fn split_patch(patch: &str) -> Vec<FileDiff> {
    let mut files: Vec<FileDiff> = Vec::new();
    for line in patch.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix("diff --git ") {
            // `a/OLD b/NEW`: the new path (paths with spaces keep theirs).
            let path = rest
                .trim_end()
                .rsplit_once(" b/")
                .map(|(_, p)| p.to_string())
                .unwrap_or_else(|| rest.trim_end().to_string());
            files.push(FileDiff {
                path,
                added: 0,
                removed: 0,
                patch: String::new(),
            });
        }
        let Some(f) = files.last_mut() else { continue };
        f.patch.push_str(line);
        if line.starts_with('+') && !line.starts_with("+++ ") {
            f.added += 1;
        } else if line.starts_with('-') && !line.starts_with("--- ") {
            f.removed += 1;
        }
    }
    files
}

/// Whether `a` is a descendant of `ancestor`.
fn is_below(store: &dyn fracta_state::Store, a: &AgentRecord, ancestor: &str) -> bool {
    let mut cur = a.parent_id.clone();
    let mut hops = 0;
    while let Some(p) = cur {
        if p == ancestor {
            return true;
        }
        hops += 1;
        if hops > 64 {
            return false;
        }
        cur = store.get_agent(&p).ok().and_then(|r| r.parent_id);
    }
    false
}
