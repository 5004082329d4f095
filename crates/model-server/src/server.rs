//! The axum application, request recording, holds and the [`ModelServer`] handle.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::serve::ListenerExt;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

use crate::error::ServerError;
use crate::script::{Api, Reply, Script};
use crate::wire::{self, Ctx, Ids, Stream};
use crate::{anthropic, gemini, openai};

/// Largest request body accepted (agent requests with long histories are big).
const MAX_BODY: usize = 256 * 1024 * 1024;

/// Lock a std mutex, ignoring poisoning (no code here panics while holding one).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One request the server received (control requests under `/_fracta/` excluded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// 1-based arrival order.
    pub seq: u64,
    /// HTTP method.
    pub method: String,
    /// Path as received (without the query).
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// All headers, lowercase names; repeated headers joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// The body as JSON, or as a JSON string if it was not JSON (`null` if empty).
    pub body: Value,
    /// The wire API of a model request (`None` for probes, model lists, 404s...).
    pub api: Option<Api>,
    /// Which rule answered: its name, `#INDEX` if unnamed, `fallback`, or `None`.
    pub rule: Option<String>,
    /// HTTP status answered.
    pub status: u16,
    /// Milliseconds since the server started.
    pub at_ms: u64,
}

impl RecordedRequest {
    /// The text of the last user-side message (user message or tool result).
    pub fn last_user_text(&self) -> Option<String> {
        wire::last_user_text(&self.body)
    }

    /// The request's `model` field.
    /// The request's model: its body's `model`, or for the Gemini API the one its path names.
    pub fn model(&self) -> Option<&str> {
        self.body
            .get("model")
            .and_then(Value::as_str)
            .or_else(|| gemini::model_of(&self.path))
    }
}

/// Options for [`ModelServer::start_with_options`].
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Append every recorded request as one JSON line to this file.
    pub record_file: Option<PathBuf>,
}

impl ServerOptions {
    /// Record requests to a JSONL file.
    pub fn with_record_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.record_file = Some(path.into());
        self
    }
}

struct ScriptState {
    script: Script,
    used: Vec<u32>,
}

#[derive(Default)]
struct Holds {
    slots: Mutex<HashMap<String, (Arc<Semaphore>, usize)>>,
}

impl Holds {
    fn semaphore(&self, name: &str) -> Arc<Semaphore> {
        let mut slots = lock(&self.slots);
        slots
            .entry(name.to_string())
            .or_insert_with(|| (Arc::new(Semaphore::new(0)), 0))
            .0
            .clone()
    }

    fn adjust_waiting(&self, name: &str, up: bool) {
        let mut slots = lock(&self.slots);
        if let Some(slot) = slots.get_mut(name) {
            slot.1 = if up {
                slot.1 + 1
            } else {
                slot.1.saturating_sub(1)
            };
        }
    }

    fn waiting(&self, name: &str) -> usize {
        lock(&self.slots).get(name).map_or(0, |s| s.1)
    }

    fn release(&self, name: &str) {
        self.semaphore(name).add_permits(1);
    }
}

struct Shared {
    started: Instant,
    script: Mutex<ScriptState>,
    requests: Mutex<Vec<RecordedRequest>>,
    seq: AtomicU64,
    ids: Ids,
    holds: Holds,
    record_file: Option<Mutex<std::fs::File>>,
    shutdown: watch::Receiver<bool>,
}

impl Shared {
    fn set_script(&self, script: Script) {
        let mut st = lock(&self.script);
        st.used = vec![0; script.rules.len()];
        st.script = script;
    }

    /// Pick the reply for a request and consume one use of its rule.
    fn select(&self, api: Api, body: &Value) -> (Option<String>, Option<Reply>) {
        let mut st = lock(&self.script);
        let ScriptState { script, used } = &mut *st;
        for (i, rule) in script.rules.iter().enumerate() {
            let left = rule.limit().is_none_or(|l| used[i] < l);
            if left && wire::matches(&rule.when, api, body) {
                used[i] = used[i].saturating_add(1);
                let label = rule.name.clone().unwrap_or_else(|| format!("#{i}"));
                return (Some(label), Some(rule.reply.clone()));
            }
        }
        match &script.fallback {
            Some(f) => (Some("fallback".into()), Some(f.clone())),
            None => (None, None),
        }
    }

    fn record(&self, mut r: RecordedRequest) {
        r.seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        r.at_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        tracing::debug!(
            seq = r.seq,
            method = %r.method,
            path = %r.path,
            rule = ?r.rule,
            status = r.status,
            "model-server request"
        );
        if let Some(f) = &self.record_file {
            match serde_json::to_string(&r) {
                Ok(line) => {
                    let mut f = lock(f);
                    if let Err(e) = writeln!(f, "{line}").and_then(|_| f.flush()) {
                        tracing::warn!(error = %e, "cannot write model-server record file");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot serialize recorded request"),
            }
        }
        lock(&self.requests).push(r);
    }

    /// Sleep, cut short by shutdown. Returns false on shutdown.
    async fn sleep(&self, ms: u64) -> bool {
        let mut sd = self.shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(ms)) => true,
            _ = sd.wait_for(|v| *v) => false,
        }
    }

    /// Wait for a release of hold `name`. Returns false on shutdown or if `closed` fires first.
    async fn hold(&self, name: &str, closed: impl std::future::Future<Output = ()>) -> bool {
        let sem = self.holds.semaphore(name);
        self.holds.adjust_waiting(name, true);
        tracing::debug!(hold = name, "model-server stream held");
        let mut sd = self.shutdown.clone();
        let ok = tokio::select! {
            p = sem.acquire() => match p {
                Ok(p) => { p.forget(); true }
                Err(_) => false,
            },
            _ = sd.wait_for(|v| *v) => false,
            _ = closed => false,
        };
        self.holds.adjust_waiting(name, false);
        ok
    }
}

/// A running scripted model server.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use fracta_model_server::{ModelServer, Script};
/// let script = Script::parse("fallback: hello\n", "inline")?;
/// let server = ModelServer::start(script, "127.0.0.1:0".parse()?).await?;
/// // point ANTHROPIC_BASE_URL (or a Codex provider's base_url + "/v1") at server.url()
/// println!("{}", server.url());
/// let seen = server.requests();
/// # let _ = seen;
/// server.shutdown().await;
/// # Ok(()) }
/// ```
pub struct ModelServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ModelServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl ModelServer {
    /// Start on `addr` (port 0 picks a free port).
    pub async fn start(script: Script, addr: SocketAddr) -> Result<ModelServer, ServerError> {
        Self::start_with_options(script, addr, ServerOptions::default()).await
    }

    /// Start with options (e.g. a JSONL record file).
    pub async fn start_with_options(
        script: Script,
        addr: SocketAddr,
        options: ServerOptions,
    ) -> Result<ModelServer, ServerError> {
        let record_file = match &options.record_file {
            Some(path) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| ServerError::RecordFile {
                        path: path.clone(),
                        source,
                    })?,
            )),
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let local = listener.local_addr()?;
        let (tx, rx) = watch::channel(false);
        let used = vec![0; script.rules.len()];
        let shared = Arc::new(Shared {
            started: Instant::now(),
            script: Mutex::new(ScriptState { script, used }),
            requests: Mutex::new(Vec::new()),
            seq: AtomicU64::new(0),
            ids: Ids::default(),
            holds: Holds::default(),
            record_file,
            shutdown: rx.clone(),
        });
        let app = router(shared.clone());
        let mut sd = rx;
        let task = tokio::spawn(async move {
            // Each SSE event goes out as it is written, not after the client's delayed ACK.
            let listener = listener.tap_io(|tcp| {
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %e, "TCP_NODELAY not set");
                }
            });
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = sd.wait_for(|v| *v).await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "model server stopped with an error");
            }
        });
        tracing::info!(addr = %local, "fracta model server listening");
        Ok(ModelServer {
            addr: local,
            shared,
            shutdown: tx,
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (no trailing slash, no `/v1`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// All recorded requests so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// Only the model requests (those with an `api`).
    pub fn model_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.api.is_some())
            .collect()
    }

    /// Forget recorded requests (sequence numbers keep counting).
    pub fn clear_requests(&self) {
        lock(&self.shared.requests).clear();
    }

    /// Replace the script; rule use counts start again from zero.
    pub fn set_script(&self, script: Script) {
        self.shared.set_script(script);
    }

    /// Release one stream held at `hold: NAME` (or the next one to arrive).
    pub fn release(&self, name: &str) {
        self.shared.holds.release(name);
    }

    /// How many responses are paused at hold `name` right now.
    pub fn held(&self, name: &str) -> usize {
        self.shared.holds.waiting(name)
    }

    /// Wait until at least one response is paused at hold `name`; false on timeout.
    pub async fn wait_for_hold(&self, name: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.held(name) > 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stop accepting, end held and in-flight streams, and wait (up to 5 s) for the server task.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/_fracta/health", get(control_health))
        .route(
            "/_fracta/requests",
            get(control_requests).delete(control_clear),
        )
        .route(
            "/_fracta/script",
            put(control_put_script).get(control_get_script),
        )
        .route("/_fracta/release/{name}", post(control_release))
        .route("/_fracta/holds/{name}", get(control_holds))
        .fallback(handle)
        .with_state(shared)
}

// ------------------------------------------------------------------ control

async fn control_health() -> Response {
    json_response(StatusCode::OK, &json!({"ok": true}))
}

async fn control_requests(State(s): State<Arc<Shared>>) -> Response {
    let list = lock(&s.requests).clone();
    json_response(StatusCode::OK, &json!(list))
}

async fn control_clear(State(s): State<Arc<Shared>>) -> Response {
    lock(&s.requests).clear();
    json_response(StatusCode::OK, &json!({"ok": true}))
}

async fn control_get_script(State(s): State<Arc<Shared>>) -> Response {
    let script = lock(&s.script).script.clone();
    json_response(StatusCode::OK, &json!(script))
}

async fn control_put_script(State(s): State<Arc<Shared>>, body: String) -> Response {
    match Script::parse(&body, "PUT /_fracta/script") {
        Ok(script) => {
            let rules = script.rules.len();
            s.set_script(script);
            json_response(StatusCode::OK, &json!({"ok": true, "rules": rules}))
        }
        Err(e) => json_response(
            StatusCode::BAD_REQUEST,
            &json!({"ok": false, "error": e.to_string()}),
        ),
    }
}

async fn control_release(State(s): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    s.holds.release(&name);
    json_response(StatusCode::OK, &json!({"ok": true, "released": name}))
}

async fn control_holds(State(s): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    let waiting = s.holds.waiting(&name);
    json_response(StatusCode::OK, &json!({"name": name, "waiting": waiting}))
}

// ------------------------------------------------------------------ model API

fn json_response(status: StatusCode, v: &Value) -> Response {
    let mut r = (status, v.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn blank(method: &str, path: &str, query: Option<String>) -> RecordedRequest {
    RecordedRequest {
        seq: 0,
        method: method.to_string(),
        path: path.to_string(),
        query,
        headers: BTreeMap::new(),
        body: Value::Null,
        api: None,
        rule: None,
        status: 200,
        at_ms: 0,
    }
}

/// Every non-control request lands here.
async fn handle(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let method = parts.method.clone();
    let path = parts.uri.path().to_string();
    let mut rec = blank(
        method.as_str(),
        &path,
        parts.uri.query().map(str::to_string),
    );
    for (name, value) in &parts.headers {
        let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
        rec.headers
            .entry(name.as_str().to_string())
            .and_modify(|e| {
                e.push_str(", ");
                e.push_str(&v);
            })
            .or_insert(v);
    }
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            rec.status = 400;
            s.record(rec);
            let msg = format!("fracta-model-server: cannot read request body: {e}");
            return json_response(
                StatusCode::BAD_REQUEST,
                &anthropic::error_body("invalid_request_error", &msg),
            );
        }
    };
    rec.body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };

    let trimmed = path.trim_end_matches('/');
    // The Gemini API: `/v1beta/models/NAME:METHOD`.
    if method == Method::POST
        && let Some((_, call)) = trimmed
            .strip_prefix("/v1beta")
            .or_else(|| trimmed.strip_prefix("/v1"))
            .and_then(gemini::route)
    {
        match call {
            "generateContent" | "streamGenerateContent" => {
                return model_request(&s, rec, Api::Gemini).await;
            }
            "countTokens" => {
                let v = gemini::count_tokens(&rec.body);
                s.record(rec);
                return json_response(StatusCode::OK, &v);
            }
            _ => {}
        }
    }
    let route = trimmed.strip_prefix("/v1").unwrap_or(trimmed);
    let is_get = method == Method::GET || method == Method::HEAD;
    match (is_get, method == Method::POST, route) {
        (true, _, "") => {
            s.record(rec);
            StatusCode::OK.into_response()
        }
        (_, true, "/messages") => model_request(&s, rec, Api::Anthropic).await,
        (_, true, "/responses") => model_request(&s, rec, Api::OpenAi).await,
        (_, true, "/chat/completions") => model_request(&s, rec, Api::OpenAiChat).await,
        (_, true, "/messages/count_tokens") => {
            let n = wire::estimate_tokens(&rec.body);
            s.record(rec);
            json_response(StatusCode::OK, &json!({"input_tokens": n}))
        }
        (true, _, "/models") => {
            s.record(rec);
            json_response(StatusCode::OK, &models_list())
        }
        (true, _, r) if r.starts_with("/models/") => {
            let id = r.trim_start_matches("/models/").to_string();
            s.record(rec);
            json_response(StatusCode::OK, &model_entry(&id))
        }
        _ => {
            rec.status = 404;
            let msg = format!("fracta-model-server: no route for {method} {path}");
            s.record(rec);
            json_response(
                StatusCode::NOT_FOUND,
                &anthropic::error_body("not_found_error", &msg),
            )
        }
    }
}

const MODELS: [&str; 5] = [
    "claude-sonnet-4-5",
    "claude-opus-4-1",
    "claude-haiku-4-5",
    "gpt-5",
    "gpt-5-codex",
];

/// One model, in a shape both Anthropic and OpenAI clients accept.
fn model_entry(id: &str) -> Value {
    json!({
        "id": id,
        "type": "model",
        "object": "model",
        "display_name": id,
        "created_at": "2025-01-01T00:00:00Z",
        "created": 1735689600,
        "owned_by": "fracta",
    })
}

fn models_list() -> Value {
    let data: Vec<Value> = MODELS.iter().map(|m| model_entry(m)).collect();
    json!({
        "object": "list",
        "data": data,
        "has_more": false,
        "first_id": MODELS.first(),
        "last_id": MODELS.last(),
    })
}

fn error_response(
    api: Api,
    status: u16,
    message: &str,
    reply: Option<&crate::ErrorReply>,
) -> Response {
    let body = match api {
        Api::Anthropic => {
            let ty = reply
                .and_then(|r| r.error_type.clone())
                .unwrap_or_else(|| anthropic::error_type(status).to_string());
            anthropic::error_body(&ty, message)
        }
        Api::OpenAi | Api::OpenAiChat => {
            let (dty, dcode) = openai::error_type(status);
            let ty = reply
                .and_then(|r| r.error_type.clone())
                .unwrap_or_else(|| dty.to_string());
            let code = reply
                .and_then(|r| r.code.clone())
                .or(dcode.map(str::to_string));
            openai::error_body(&ty, message, code.as_deref())
        }
        Api::Gemini => {
            gemini::error_body(status, message, reply.and_then(|r| r.error_type.as_deref()))
        }
    };
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = json_response(code, &body);
    if let Some(r) = reply {
        let h = resp.headers_mut();
        if let Some(ms) = r.retry_after_ms {
            if let Ok(v) = HeaderValue::from_str(&ms.to_string()) {
                h.insert("retry-after-ms", v);
            }
            if let Ok(v) = HeaderValue::from_str(&ms.div_ceil(1000).to_string()) {
                h.insert(header::RETRY_AFTER, v);
            }
        }
        if let Some(retry) = r.should_retry {
            h.insert(
                "x-should-retry",
                HeaderValue::from_static(if retry { "true" } else { "false" }),
            );
        }
    }
    resp
}

async fn model_request(s: &Arc<Shared>, mut rec: RecordedRequest, api: Api) -> Response {
    rec.api = Some(api);
    // The Gemini API names the model and streaming in the path: matching and replies see
    // them as the other APIs' body fields.
    let gemini_stream = rec.path.ends_with(":streamGenerateContent");
    let view = match (api, rec.model().map(str::to_string), &rec.body) {
        (Api::Gemini, model, Value::Object(m)) => {
            let mut m = m.clone();
            m.insert("model".into(), json!(model));
            m.insert("stream".into(), json!(gemini_stream));
            Some(Value::Object(m))
        }
        _ => None,
    };
    let body = view.as_ref().unwrap_or(&rec.body);
    let (rule, reply) = s.select(api, body);
    rec.rule = rule;
    let Some(reply) = reply else {
        let last = wire::last_user_text(&rec.body).unwrap_or_default();
        let model = rec.model().unwrap_or("?").to_string();
        let msg = format!(
            "fracta-model-server: no script rule matched ({} request, model {model}); last user message: \"{}\"",
            api.as_str(),
            wire::excerpt(&last, 200)
        );
        tracing::warn!("{msg}");
        rec.status = 500;
        s.record(rec);
        return error_response(api, 500, &msg, None);
    };
    rec.status = reply.error.as_ref().map_or(200, |e| e.status);
    let stream_requested = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let include_usage = rec
        .body
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let ctx = Ctx::new(&reply, body);
    s.record(rec);

    if let Some(ms) = reply.delay_ms
        && ms > 0
        && !s.sleep(ms).await
    {
        return error_response(api, 503, "fracta-model-server: shutting down", None);
    }

    if let Some(err) = &reply.error {
        let message = err.message.clone().unwrap_or_else(|| {
            StatusCode::from_u16(err.status)
                .ok()
                .and_then(|c| c.canonical_reason())
                .unwrap_or("error")
                .to_string()
        });
        return error_response(api, err.status, &message, Some(err));
    }

    if stream_requested {
        let stream = match api {
            Api::Anthropic => anthropic::stream(&ctx, &s.ids),
            Api::OpenAi => openai::response_stream(&ctx, &s.ids),
            Api::OpenAiChat => openai::chat_stream(&ctx, &s.ids, include_usage),
            Api::Gemini => gemini::stream(&ctx, &s.ids),
        };
        return sse_response(s.clone(), stream, &reply);
    }

    let body = match api {
        Api::Anthropic => anthropic::message(&ctx, &s.ids),
        Api::OpenAi => openai::response(&ctx, &s.ids),
        Api::OpenAiChat => openai::chat(&ctx, &s.ids),
        Api::Gemini => gemini::response(&ctx, &s.ids),
    };
    if let Some(name) = &reply.hold
        && !s.hold(name, std::future::pending()).await
    {
        return error_response(api, 503, "fracta-model-server: shutting down", None);
    }
    if reply.drop_connection {
        let failing = futures::stream::once(async {
            Err::<Bytes, std::io::Error>(std::io::Error::other(
                "fracta-model-server: drop_connection",
            ))
        });
        let mut r = Response::new(Body::from_stream(failing));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return r;
    }
    json_response(StatusCode::OK, &body)
}

fn sse_response(s: Arc<Shared>, stream: Stream, reply: &Reply) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let hold = reply.hold.clone();
    let chunk_delay = reply.chunk_delay_ms.unwrap_or(0);
    let drop_after = reply.drop_connection.then(|| {
        stream
            .events
            .iter()
            .position(|e| e.delta)
            .map_or(stream.preamble, |i| i + 1)
    });
    tokio::spawn(async move {
        let Stream { events, preamble } = stream;
        for (i, ev) in events.iter().enumerate() {
            if drop_after == Some(i) {
                // Let hyper flush what was sent, then fail the body: hyper
                // aborts the connection without a terminating chunk.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let _ = tx
                    .send(Err(std::io::Error::other(
                        "fracta-model-server: drop_connection",
                    )))
                    .await;
                return;
            }
            if i == preamble
                && let Some(name) = &hold
            {
                let closed = tx.closed();
                if !s.hold(name, closed).await {
                    return;
                }
            }
            if ev.delta && chunk_delay > 0 && !s.sleep(chunk_delay).await {
                return;
            }
            if tx.send(Ok(Bytes::from(ev.encode()))).await.is_err() {
                return;
            }
        }
    });
    let mut r = Response::new(Body::from_stream(ReceiverStream::new(rx)));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}
