//! `/metrics` on the control plane: scraped over HTTP and read back with Prometheus' own
//! OpenMetrics parser (the Python `prometheus_client`, as a scraper would read it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use fracta_core::runner::Runner;
use fracta_core::supervisor::Supervisor;
use fracta_state::{AgentRecord, AgentStatus, Mode, SqliteStore, Store, Usage};
use serde_json::Value;

const CONFIG: &str = "agents:\n  default_runtime: claude\n  agent_runtimes:\n    claude:\n      adapter: claude\n      command: /bin/true\n    codex:\n      adapter: codex\n      command: /bin/true\n";

/// Parse an exposition with `prometheus_client.openmetrics.parser`: every sample as
/// (name, labels, value).
pub fn parse_openmetrics(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        out.append([s.name, s.labels, s.value])
print(json.dumps(out))
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'prometheus_client'"),
        "prometheus_client is not installed: pip install -r scripts/requirements-ci.txt (scripts/setup.sh does)"
    );
    assert!(
        out.status.success(),
        "the OpenMetrics parser rejected /metrics: {stderr}\n{text}"
    );
    let v: Vec<(String, BTreeMap<String, String>, f64)> =
        serde_json::from_slice(&out.stdout).unwrap();
    v
}

fn sample(
    samples: &[(String, BTreeMap<String, String>, f64)],
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| *v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_agents_turns_tokens_cost_and_time_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let yaml_path = dir.path().join("fracta.yaml");
    std::fs::write(&yaml_path, CONFIG).unwrap();
    let cfg = fracta_config::parse(CONFIG, &yaml_path).unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("state.db")).unwrap());
    // Three claude agents (two succeeded, one failed) and a queued codex session.
    for (runtime, mode, status, turns, tokens, cost) in [
        (
            "claude",
            Mode::Batch,
            AgentStatus::Succeeded,
            2,
            (100, 20, 5),
            0.25,
        ),
        (
            "claude",
            Mode::Batch,
            AgentStatus::Succeeded,
            1,
            (50, 10, 0),
            0.5,
        ),
        (
            "claude",
            Mode::Batch,
            AgentStatus::Failed,
            1,
            (7, 0, 0),
            0.0,
        ),
        (
            "codex",
            Mode::Stream,
            AgentStatus::Queued,
            0,
            (0, 0, 0),
            0.0,
        ),
    ] {
        let mut a = AgentRecord::new("t", runtime, runtime, mode, "SENTINEL-PROMPT");
        a.status = status;
        a.meta.turns = turns;
        a.usage = Usage {
            input_tokens: tokens.0,
            output_tokens: tokens.1,
            cached_tokens: tokens.2,
        };
        a.cost_usd = Some(cost);
        store.insert_agent(&a).unwrap();
    }
    let sup = Supervisor::new(Arc::new(Runner::new(Arc::new(cfg), Arc::clone(&store))));
    let server = fracta_server::start_control_plane(
        Arc::clone(&sup),
        ([127, 0, 0, 1], 0).into(),
        "admin-token".into(),
    )
    .await
    .unwrap();
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    // Two API calls: one answered, one refused.
    let ok = http
        .get(format!("{base}/v1/agents"))
        .bearer_auth("admin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let refused = http.get(format!("{base}/v1/agents")).send().await.unwrap();
    assert_eq!(refused.status(), 401);

    let res = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200, "no token needed to scrape");
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
        "{:?}",
        res.headers()
    );
    let text = res.text().await.unwrap();
    assert!(!text.contains("SENTINEL"), "{text}");
    let s = parse_openmetrics(&text);
    let get = |name: &str, labels: &[(&str, &str)]| {
        sample(&s, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"))
    };
    assert_eq!(
        get(
            "fracta_agents",
            &[("runtime", "claude"), ("status", "succeeded")]
        ),
        2.0
    );
    assert_eq!(
        get(
            "fracta_agents",
            &[("runtime", "claude"), ("status", "failed")]
        ),
        1.0
    );
    assert_eq!(
        get(
            "fracta_agents",
            &[("runtime", "codex"), ("status", "queued")]
        ),
        1.0
    );
    assert_eq!(
        get(
            "fracta_spawns_total",
            &[("runtime", "claude"), ("mode", "batch")]
        ),
        3.0
    );
    assert_eq!(
        get(
            "fracta_spawns_total",
            &[("runtime", "codex"), ("mode", "stream")]
        ),
        1.0
    );
    assert_eq!(get("fracta_turns_total", &[("runtime", "claude")]), 4.0);
    assert_eq!(
        get(
            "fracta_tokens_total",
            &[("runtime", "claude"), ("kind", "input")]
        ),
        157.0
    );
    assert_eq!(
        get(
            "fracta_tokens_total",
            &[("runtime", "claude"), ("kind", "output")]
        ),
        30.0
    );
    assert_eq!(
        get(
            "fracta_tokens_total",
            &[("runtime", "claude"), ("kind", "cached")]
        ),
        5.0
    );
    assert_eq!(get("fracta_cost_usd_total", &[("runtime", "claude")]), 0.75);
    assert_eq!(
        get("fracta_agent_failures_total", &[("runtime", "claude")]),
        1.0
    );
    assert_eq!(get("fracta_queue_length", &[]), 1.0);
    // The API's latency, by route template and status, and its error answers.
    let route = [
        ("method", "GET"),
        ("route", "/v1/agents"),
        ("status", "200"),
    ];
    assert_eq!(
        get("fracta_api_request_duration_seconds_count", &route),
        1.0
    );
    assert!(get("fracta_api_request_duration_seconds_sum", &route) > 0.0);
    assert_eq!(
        get(
            "fracta_api_request_duration_seconds_bucket",
            &[("route", "/v1/agents"), ("status", "200"), ("le", "+Inf")]
        ),
        1.0
    );
    assert_eq!(
        get(
            "fracta_api_errors_total",
            &[("route", "/v1/agents"), ("status", "401")]
        ),
        1.0
    );
    assert!(sample(&s, "fracta_api_errors_total", &[("status", "200")]).is_none());
    // An agent id never becomes a label (no series per agent).
    let ids: Vec<Value> = store
        .list_agents(&Default::default())
        .unwrap()
        .into_iter()
        .map(|a| Value::String(a.id))
        .collect();
    for id in ids {
        assert!(!text.contains(id.as_str().unwrap()), "{text}");
    }
    server.shutdown().await;
}
