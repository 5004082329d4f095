//! `/metrics` on the control plane (`fracta serve`), in the OpenMetrics text format that
//! Prometheus scrapes (via the `prometheus-client` crate). What the state store knows (agents
//! by status and runtime, spawns, turns, tokens, cost, failures, the queue) is read from it at
//! each scrape, so it survives a restart of the control plane and counts agents other
//! processes ran; what only this process sees (the latency and errors of its HTTP API) is
//! kept in memory since it started.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use fracta_core::supervisor::Supervisor;
use fracta_state::{AgentFilter, AgentRecord, AgentStatus};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The path Prometheus scrapes.
pub const METRICS_PATH: &str = "/metrics";
/// The media type of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    /// The route's template (`/v1/agents/{id}`), not the path, so that ids make no series.
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgentLabels {
    runtime: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuntimeLabels {
    runtime: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SpawnLabels {
    runtime: String,
    mode: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    runtime: String,
    kind: String,
}

type LatencyFamily = Family<RequestLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms … ~16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// What this process measures itself: its HTTP API's latency and error answers.
#[derive(Clone)]
pub struct Metrics {
    latency: LatencyFamily,
    errors: Family<RequestLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            latency: Family::new_with_constructor(latency_histogram),
            errors: Family::default(),
        }
    }
}

/// Time every request and count the error answers (4xx, 5xx), by route.
pub async fn track(State(m): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = match req.extensions().get::<MatchedPath>() {
        Some(p) => p.as_str().to_string(),
        // The gateway is a nested service, which has no matched path.
        None if req.uri().path().starts_with(crate::MCP_PATH) => crate::MCP_PATH.to_string(),
        None => "unmatched".to_string(),
    };
    let method = req.method().to_string();
    let start = Instant::now();
    let res = next.run(req).await;
    let labels = RequestLabels {
        method,
        route,
        status: res.status().as_u16(),
    };
    m.latency
        .get_or_create(&labels)
        .observe(start.elapsed().as_secs_f64());
    if res.status().is_client_error() || res.status().is_server_error() {
        m.errors.get_or_create(&labels).inc();
    }
    res
}

/// Sums over the agents in the store.
#[derive(Default)]
struct Totals {
    by_status: BTreeMap<(String, String), i64>,
    spawns: BTreeMap<(String, String), u64>,
    turns: BTreeMap<String, u64>,
    tokens: BTreeMap<(String, String), u64>,
    cost: BTreeMap<String, f64>,
    failures: BTreeMap<String, u64>,
    queued: i64,
}

fn totals(agents: &[AgentRecord]) -> Totals {
    let mut t = Totals::default();
    for a in agents {
        let rt = a.runtime.clone();
        *t.by_status
            .entry((rt.clone(), a.status.as_str().to_string()))
            .or_default() += 1;
        *t.spawns
            .entry((rt.clone(), a.mode.as_str().to_string()))
            .or_default() += 1;
        *t.turns.entry(rt.clone()).or_default() += u64::from(a.meta.turns);
        for (kind, n) in [
            ("input", a.usage.input_tokens),
            ("output", a.usage.output_tokens),
            ("cached", a.usage.cached_tokens),
        ] {
            *t.tokens.entry((rt.clone(), kind.to_string())).or_default() += n;
        }
        *t.cost.entry(rt.clone()).or_default() += a.cost_usd.unwrap_or(0.0);
        if a.status == AgentStatus::Failed {
            *t.failures.entry(rt.clone()).or_default() += 1;
        }
        if a.status == AgentStatus::Queued {
            t.queued += 1;
        }
    }
    t
}

/// The exposition: the store's sums now, and this process's own measurements.
pub fn render(sup: &Supervisor, m: &Metrics) -> Result<String, String> {
    let agents = sup
        .runner
        .store
        .list_agents(&AgentFilter::default())
        .map_err(|e| e.to_string())?;
    let t = totals(&agents);
    let mut reg = Registry::with_prefix("fracta");

    let by_status = Family::<AgentLabels, Gauge>::default();
    for ((runtime, status), n) in &t.by_status {
        by_status
            .get_or_create(&AgentLabels {
                runtime: runtime.clone(),
                status: status.clone(),
            })
            .set(*n);
    }
    reg.register(
        "agents",
        "Agents in the state store, by runtime and status",
        by_status,
    );
    let spawns = Family::<SpawnLabels, Counter>::default();
    for ((runtime, mode), n) in &t.spawns {
        spawns
            .get_or_create(&SpawnLabels {
                runtime: runtime.clone(),
                mode: mode.clone(),
            })
            .inc_by(*n);
    }
    reg.register(
        "spawns",
        "Agents spawned (recorded in the state store), by runtime and mode",
        spawns,
    );
    let turns = Family::<RuntimeLabels, Counter>::default();
    for (runtime, n) in &t.turns {
        turns
            .get_or_create(&RuntimeLabels {
                runtime: runtime.clone(),
            })
            .inc_by(*n);
    }
    reg.register("turns", "Turns agents have taken, by runtime", turns);
    let tokens = Family::<TokenLabels, Counter>::default();
    for ((runtime, kind), n) in &t.tokens {
        tokens
            .get_or_create(&TokenLabels {
                runtime: runtime.clone(),
                kind: kind.clone(),
            })
            .inc_by(*n);
    }
    reg.register(
        "tokens",
        "Model tokens agents used, by runtime and kind (input, output, cached)",
        tokens,
    );
    let cost = Family::<RuntimeLabels, Counter<f64, AtomicU64>>::default();
    for (runtime, usd) in &t.cost {
        cost.get_or_create(&RuntimeLabels {
            runtime: runtime.clone(),
        })
        .inc_by(*usd);
    }
    reg.register(
        "cost_usd",
        "Cost the runtimes reported, in US dollars, by runtime",
        cost,
    );
    let failures = Family::<RuntimeLabels, Counter>::default();
    for (runtime, n) in &t.failures {
        failures
            .get_or_create(&RuntimeLabels {
                runtime: runtime.clone(),
            })
            .inc_by(*n);
    }
    reg.register("agent_failures", "Agents that failed, by runtime", failures);
    let queue = Gauge::<i64, std::sync::atomic::AtomicI64>::default();
    queue.set(t.queued);
    reg.register(
        "queue_length",
        "Agents recorded and waiting to start",
        queue,
    );
    let live = Gauge::<i64, std::sync::atomic::AtomicI64>::default();
    live.set(i64::try_from(sup.live_ids().len()).unwrap_or(i64::MAX));
    reg.register(
        "live_agents",
        "Agents this control plane runs or has queued right now",
        live,
    );
    reg.register(
        "api_request_duration_seconds",
        "Latency of the control plane's HTTP requests, by method, route and status",
        m.latency.clone(),
    );
    reg.register(
        "api_errors",
        "HTTP answers with a 4xx or 5xx status, by method, route and status",
        m.errors.clone(),
    );
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &reg).map_err(|e| e.to_string())?;
    Ok(out)
}

/// `GET /metrics`.
pub async fn handler(sup: Arc<Supervisor>, m: Arc<Metrics>) -> Response {
    match fracta_state::blocking(|| render(&sup, &m)) {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot read the state store for metrics: {e}\n"),
        )
            .into_response(),
    }
}
