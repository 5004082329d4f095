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

/// Start the transport a session's endpoint speaks, on its own task: messages for the
/// session come from `out`, what it says goes to `said` (which closes when it gives up).
pub fn connect(
    endpoint: crate::launch::Endpoint,
    secret: String,
    resume: Option<&str>,
    title: String,
    out: UnboundedReceiver<String>,
    said: UnboundedSender<String>,
) {
    match endpoint {
        crate::launch::Endpoint::OpenCodeHttp { url, .. } => {
            tokio::spawn(opencode(
                OpenCodeTarget {
                    url,
                    password: secret,
                    resume: resume.map(str::to_string),
                    title,
                },
                out,
                said,
            ));
        }
        crate::launch::Endpoint::CodexWs { url, .. } => {
            tokio::spawn(codex_ws(CodexWsTarget { url, token: secret }, out, said));
        }
    }
}

/// An OpenCode server and the conversation to continue, if any.
pub struct OpenCodeTarget {
    pub url: String,
    pub password: String,
    pub resume: Option<String>,
    /// A new session's title (OpenCode asks the model for one when a session has none).
    pub title: String,
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
                .json(&json!({ "title": target.title }))
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

/// How long `codex app-server --listen ws://…` may take to accept the connection.
pub const CODEX_WS_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A Codex app-server reached over WebSocket, and the session's capability token.
pub struct CodexWsTarget {
    pub url: String,
    pub token: String,
}

/// Connect to `codex app-server --listen ws://…` (retrying until it listens), presenting the
/// capability token as `Authorization: Bearer`, then carry the session's JSON-RPC messages:
/// each of Fracta's messages one text frame out, each text frame in one message back.
pub async fn codex_ws(
    target: CodexWsTarget,
    mut out: UnboundedReceiver<String>,
    said: UnboundedSender<String>,
) {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::HeaderValue;
    use tokio_tungstenite::tungstenite::{Error as WsError, Message};

    let until = tokio::time::Instant::now() + CODEX_WS_READY_TIMEOUT;
    let socket = loop {
        let mut request = match target.url.as_str().into_client_request() {
            Ok(r) => r,
            Err(e) => {
                let _ = said.send(fracta_error(format!(
                    "bad app-server URL {}: {e}",
                    target.url
                )));
                return;
            }
        };
        match HeaderValue::from_str(&format!("Bearer {}", target.token)) {
            Ok(v) => {
                request.headers_mut().insert("authorization", v);
            }
            Err(_) => {
                let _ = said.send(fracta_error(
                    "the session's capability token is not a header value",
                ));
                return;
            }
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((socket, _)) => break socket,
            // Refused with an HTTP answer (401: wrong token): retrying will not help.
            Err(WsError::Http(r)) => {
                let _ = said.send(fracta_error(format!(
                    "codex app-server at {} refused the session: HTTP {}",
                    target.url,
                    r.status()
                )));
                return;
            }
            Err(e) if tokio::time::Instant::now() >= until => {
                let _ = said.send(fracta_error(format!(
                    "codex app-server at {} did not accept a connection within {} s (last: {e})",
                    target.url,
                    CODEX_WS_READY_TIMEOUT.as_secs()
                )));
                return;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let (mut sink, mut stream) = socket.split();
    loop {
        tokio::select! {
            msg = out.recv() => match msg {
                Some(m) => {
                    if let Err(e) = sink.send(Message::text(m)).await {
                        let _ = said.send(fracta_error(format!("cannot write to codex app-server: {e}")));
                        return;
                    }
                }
                None => {
                    // The session is over on Fracta's side.
                    let _ = sink.send(Message::Close(None)).await;
                    return;
                }
            },
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(t))) => {
                    if said.send(t.as_str().to_string()).is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Close(_))) | None => {
                    let _ = said.send(fracta_error("codex app-server closed the connection"));
                    return;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    let _ = said.send(fracta_error(format!("codex app-server connection failed: {e}")));
                    return;
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::path::PathBuf;

    /// The real `codex app-server --listen ws://…` with a capability token's digest: the
    /// transport is refused (HTTP 401, said at once, no retrying) with a wrong token, and
    /// carries JSON-RPC both ways with the right one.
    #[tokio::test]
    async fn codex_ws_presents_the_capability_token() {
        let codex = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../node_modules/.bin/codex");
        assert!(
            codex.is_file(),
            "the pinned codex CLI is missing: run `npm ci` (scripts/setup.sh does)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let home = tempfile::tempdir().unwrap();
        let token = "right-token-0123456789";
        let mut child = tokio::process::Command::new(codex)
            .args(["app-server", "--listen", &format!("ws://127.0.0.1:{port}")])
            .args(["--ws-auth", "capability-token", "--ws-token-sha256"])
            .arg(crate::secret::sha256_hex(token))
            .env("CODEX_HOME", home.path())
            .env("HOME", home.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            // Its own group: the npm wrapper and the native app-server it starts both go at
            // the end, whether the test passes or panics.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        struct Group(u32);
        impl Drop for Group {
            fn drop(&mut self) {
                crate::backend::local::signal_group(self.0, nix::sys::signal::Signal::SIGKILL);
            }
        }
        let _group = Group(child.id().unwrap());
        let url = format!("ws://127.0.0.1:{port}");

        // Wait until it listens, so the wrong token meets a server and not a closed port.
        let until = tokio::time::Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < until,
                "app-server never listened"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (_out_tx, out_rx) = tokio::sync::mpsc::unbounded_channel();
        let (said_tx, mut said_rx) = tokio::sync::mpsc::unbounded_channel();
        let wrong = CodexWsTarget {
            url: url.clone(),
            token: "wrong".into(),
        };
        tokio::time::timeout(Duration::from_secs(10), codex_ws(wrong, out_rx, said_tx))
            .await
            .expect("a refused token is not retried");
        let said = said_rx.recv().await.unwrap();
        assert!(
            said.contains("fracta.error") && said.contains("401"),
            "{said}"
        );

        let (out_tx, out_rx) = tokio::sync::mpsc::unbounded_channel();
        let (said_tx, mut said_rx) = tokio::sync::mpsc::unbounded_channel();
        let right = CodexWsTarget {
            url,
            token: token.into(),
        };
        let task = tokio::spawn(codex_ws(right, out_rx, said_tx));
        out_tx
            .send(json!({"id": 1, "method": "initialize", "params": {"clientInfo": {"name": "t", "version": "0"}}}).to_string())
            .unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(30), said_rx.recv())
            .await
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(v["id"], 1, "{answer}");
        assert!(v.get("result").is_some(), "{answer}");
        drop(out_tx);
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .unwrap()
            .unwrap();
        let _ = child.kill().await;
    }
}
