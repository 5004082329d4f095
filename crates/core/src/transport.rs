//! Transports for stream sessions not spoken over stdin/stdout. A transport task carries the
//! session's messages (see `adapter::StreamSession`) to the runtime's server and hands back
//! what the server says, one JSON text each, plus its own `fracta.*` messages (the session
//! it opened, an error). When it ends, the session is over.

use std::time::Duration;

use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

/// How long `opencode serve` may take to answer its health check.
pub const OPENCODE_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// An OpenCode server and the conversation to continue, if any.
pub struct OpenCodeTarget {
    pub url: String,
    pub password: String,
    pub resume: Option<String>,
}

fn fracta_error(message: impl Into<String>) -> String {
    json!({ "type": "fracta.error", "message": message.into() }).to_string()
}

/// Wait until `GET /global/health` answers 200 with the password (401 without it).
pub async fn opencode_ready(
    client: &reqwest::Client,
    t: &OpenCodeTarget,
    timeout: Duration,
) -> Result<(), String> {
    let until = tokio::time::Instant::now() + timeout;
    let mut last = String::from("no answer");
    while tokio::time::Instant::now() < until {
        match client
            .get(format!("{}/global/health", t.url))
            .basic_auth("opencode", Some(&t.password))
            .timeout(Duration::from_secs(2))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => last = format!("HTTP {}", r.status()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!(
        "opencode serve at {} did not answer GET /global/health within {} s (last: {last})",
        t.url,
        timeout.as_secs()
    ))
}

/// Drive an `opencode serve` session: wait for health, follow `GET /event` (SSE) for the
/// session's events, create the session (or continue `resume`), then post each turn
/// (`{"op":"prompt","text":…}` → `POST /session/:id/prompt_async`) and abort
/// (`{"op":"abort"}` → `POST /session/:id/abort`).
pub async fn opencode(
    target: OpenCodeTarget,
    mut out: UnboundedReceiver<String>,
    said: UnboundedSender<String>,
) {
    let client = reqwest::Client::new();
    if let Err(e) = opencode_ready(&client, &target, OPENCODE_READY_TIMEOUT).await {
        let _ = said.send(fracta_error(e));
        return;
    }
    let auth = |r: reqwest::RequestBuilder| r.basic_auth("opencode", Some(&target.password));
    // Subscribe first, so no event of the session is missed.
    let events = match auth(client.get(format!("{}/event", target.url)))
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => {
            let _ = said.send(fracta_error(format!(
                "opencode serve refused its event stream: HTTP {}",
                r.status()
            )));
            return;
        }
        Err(e) => {
            let _ = said.send(fracta_error(format!(
                "cannot follow opencode's event stream: {e}"
            )));
            return;
        }
    };
    let session = match &target.resume {
        Some(id) => {
            match auth(client.get(format!("{}/session/{id}", target.url)))
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => id.clone(),
                Ok(r) => {
                    let _ = said.send(fracta_error(format!(
                        "opencode has no session {id} to continue: HTTP {}",
                        r.status()
                    )));
                    return;
                }
                Err(e) => {
                    let _ = said.send(fracta_error(format!("cannot reach opencode: {e}")));
                    return;
                }
            }
        }
        None => {
            let created = auth(client.post(format!("{}/session", target.url)))
                .json(&json!({}))
                .send()
                .await;
            let body: Result<Value, String> = match created {
                Ok(r) if r.status().is_success() => r.json().await.map_err(|e| e.to_string()),
                Ok(r) => Err(format!("HTTP {}", r.status())),
                Err(e) => Err(e.to_string()),
            };
            match body
                .ok()
                .and_then(|b| b.get("id").and_then(Value::as_str).map(str::to_string))
            {
                Some(id) => id,
                None => {
                    let _ = said.send(fracta_error("opencode serve created no session"));
                    return;
                }
            }
        }
    };
    if said
        .send(json!({ "type": "fracta.session", "sessionID": session }).to_string())
        .is_err()
    {
        return;
    }
    let forward = {
        let said = said.clone();
        let session = session.clone();
        tokio::spawn(async move {
            let mut stream = events.bytes_stream().eventsource();
            while let Some(ev) = stream.next().await {
                let Ok(ev) = ev else { break };
                let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
                    continue;
                };
                let ours = v
                    .pointer("/properties/sessionID")
                    .and_then(Value::as_str)
                    .is_some_and(|s| s == session);
                if ours && said.send(ev.data).is_err() {
                    break;
                }
            }
            let _ = said.send(fracta_error("opencode's event stream ended"));
        })
    };
    while let Some(msg) = out.recv().await {
        let Ok(v) = serde_json::from_str::<Value>(&msg) else {
            continue;
        };
        let (path, body) = match v.get("op").and_then(Value::as_str) {
            Some("prompt") => (
                format!("{}/session/{session}/prompt_async", target.url),
                json!({ "parts": [{ "type": "text", "text": v.get("text").cloned().unwrap_or_default() }] }),
            ),
            Some("abort") => (format!("{}/session/{session}/abort", target.url), json!({})),
            _ => continue,
        };
        match auth(client.post(&path)).json(&body).send().await {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                let _ = said.send(fracta_error(format!(
                    "opencode refused {}: HTTP {status} {}",
                    path.rsplit('/').next().unwrap_or(""),
                    text.chars().take(300).collect::<String>()
                )));
            }
            Err(e) => {
                let _ = said.send(fracta_error(format!("cannot reach opencode: {e}")));
            }
        }
    }
    forward.abort();
}
