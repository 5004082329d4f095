//! End-to-end tests: a real server on loopback, real HTTP requests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use fracta_model_server::{Api, ModelServer, Script, ServerOptions};
use serde_json::{Value, json};

async fn start(yaml: &str) -> ModelServer {
    let script = Script::parse(yaml, "test").unwrap();
    ModelServer::start(script, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn post(server: &ModelServer, path: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}{path}", server.url()))
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn anthropic_body(prompt: &str, stream: bool) -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "stream": stream,
        "tools": [{"name": "Bash", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}]
    })
}

fn responses_body(prompt: &str, stream: bool) -> Value {
    json!({
        "model": "gpt-5-codex",
        "stream": stream,
        "tools": [{"type": "function", "name": "shell"}],
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": prompt}]}]
    })
}

fn redact(f: impl FnOnce()) {
    insta::with_settings!({filters => vec![
        (r#""created_at":\s*\d{9,}"#, r#""created_at":"[time]""#),
        (r#""created":\s*\d{9,}"#, r#""created":"[time]""#),
    ]}, { f() });
}

const FULL_REPLY: &str = r#"
rules:
  - name: full
    repeat: true
    reply:
      reasoning: "Let me think."
      text: "Running ls now."
      tool_calls:
        - { name: Bash, input: { command: "ls -la" } }
      usage: { input_tokens: 100, output_tokens: 20, cached_tokens: 60, cache_creation_tokens: 5, reasoning_tokens: 4 }
"#;

#[tokio::test]
async fn anthropic_stream_exact_sse() {
    let server = start(FULL_REPLY).await;
    let resp = post(
        &server,
        "/v1/messages?beta=true",
        anthropic_body("hi", true),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/event-stream"), "{ct}");
    let text = resp.text().await.unwrap();
    redact(|| insta::assert_snapshot!("anthropic_stream", text));
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names.last(), Some(&"message_stop"));
    let r = &server.requests()[0];
    assert_eq!(r.path, "/v1/messages");
    assert_eq!(r.query.as_deref(), Some("beta=true"));
    assert_eq!(r.rule.as_deref(), Some("full"));
    server.shutdown().await;
}

#[tokio::test]
async fn anthropic_non_stream_message() {
    let server = start(FULL_REPLY).await;
    let resp = post(&server, "/v1/messages", anthropic_body("hi", false)).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    insta::assert_json_snapshot!("anthropic_message", v);
    assert_eq!(v["stop_reason"], "tool_use");
    server.shutdown().await;
}

#[tokio::test]
async fn anthropic_text_only_ends_turn_and_no_v1_prefix() {
    let server = start("fallback: Hello there, friend!\n").await;
    let text = post(&server, "/messages", anthropic_body("hi", true))
        .await
        .text()
        .await
        .unwrap();
    redact(|| insta::assert_snapshot!("anthropic_text_only", text));
    assert!(text.contains(r#""stop_reason":"end_turn""#));
    server.shutdown().await;
}

const OPENAI_REPLY: &str = r#"
rules:
  - name: full
    repeat: true
    reply:
      reasoning: "Think first."
      text: "Here you go."
      tool_calls:
        - { name: shell, input: { command: ["ls"] } }
        - { name: apply_patch, kind: custom, input: "*** Begin Patch\n*** End Patch\n" }
      usage: { input_tokens: 100, output_tokens: 20, cached_tokens: 60, reasoning_tokens: 4 }
"#;

#[tokio::test]
async fn responses_stream_exact_sse() {
    let server = start(OPENAI_REPLY).await;
    let resp = post(&server, "/v1/responses", responses_body("hi", true)).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    redact(|| insta::assert_snapshot!("responses_stream", text));
    // every data object carries its type and a running sequence number
    for (expected_seq, block) in text.split("\n\n").filter(|b| !b.is_empty()).enumerate() {
        let mut lines = block.lines();
        let name = lines.next().unwrap().strip_prefix("event: ").unwrap();
        let data: Value =
            serde_json::from_str(lines.next().unwrap().strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(data["type"], name);
        assert_eq!(data["sequence_number"], expected_seq);
    }
    assert_eq!(server.requests()[0].api, Some(Api::OpenAi));
    server.shutdown().await;
}

#[tokio::test]
async fn responses_non_stream_and_incomplete() {
    let server = start(OPENAI_REPLY).await;
    let v: Value = post(&server, "/responses", responses_body("hi", false))
        .await
        .json()
        .await
        .unwrap();
    redact(|| insta::assert_json_snapshot!("responses_object", v));

    server
        .set_script(Script::parse("fallback: {text: cut, stop_reason: max_tokens}", "t").unwrap());
    let text = post(&server, "/v1/responses", responses_body("hi", true))
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("event: response.incomplete\n"), "{text}");
    assert!(text.contains(r#""incomplete_details":{"reason":"max_output_tokens"}"#));
    server.shutdown().await;
}

#[tokio::test]
async fn chat_completions_stream_and_non_stream() {
    let server = start(OPENAI_REPLY).await;
    let body = json!({
        "model": "gpt-5", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "hi"}]
    });
    let text = post(&server, "/v1/chat/completions", body)
        .await
        .text()
        .await
        .unwrap();
    redact(|| insta::assert_snapshot!("chat_stream", text));
    assert!(text.ends_with("data: [DONE]\n\n"));
    let v: Value = post(
        &server,
        "/chat/completions",
        json!({"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    redact(|| insta::assert_json_snapshot!("chat_object", v));
    assert_eq!(server.requests()[1].api, Some(Api::OpenAiChat));
    server.shutdown().await;
}

#[tokio::test]
async fn rule_matching_contains_times_fallback() {
    let server = start(
        r#"
rules:
  - name: two-greetings
    when: { contains: "hello" }
    times: 2
    reply: "hi!"
  - name: secret
    when: { contains: "SYSTEM-MARKER", anywhere: true }
    reply: "found it"
  - when: { api: openai }
    repeat: true
    reply: "openai answer"
fallback: "fallback answer"
"#,
    )
    .await;
    let ask = |prompt: &str| {
        let body = anthropic_body(prompt, false);
        let s = &server;
        async move {
            let v: Value = post(s, "/v1/messages", body).await.json().await.unwrap();
            v["content"][0]["text"].as_str().unwrap().to_string()
        }
    };
    assert_eq!(ask("say hello").await, "hi!");
    assert_eq!(ask("hello again").await, "hi!");
    assert_eq!(ask("hello thrice").await, "fallback answer");
    let mut body = anthropic_body("nothing", false);
    body["system"] = json!("SYSTEM-MARKER here");
    let v: Value = post(&server, "/v1/messages", body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["content"][0]["text"], "found it");
    for _ in 0..3 {
        let v: Value = post(&server, "/v1/responses", responses_body("x", false))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(v["output"][0]["content"][0]["text"], "openai answer");
    }
    let rules: Vec<Option<String>> = server.requests().into_iter().map(|r| r.rule).collect();
    let rules: Vec<&str> = rules.iter().map(|r| r.as_deref().unwrap()).collect();
    assert_eq!(
        rules,
        [
            "two-greetings",
            "two-greetings",
            "fallback",
            "secret",
            "#2",
            "#2",
            "#2"
        ]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn no_match_is_a_readable_500() {
    let server = start("rules:\n  - when: {contains: never}\n    reply: x\n").await;
    let resp = post(
        &server,
        "/v1/messages",
        anthropic_body("please do the thing", true),
    )
    .await;
    assert_eq!(resp.status(), 500);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "api_error");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("fracta-model-server: no script rule matched"),
        "{msg}"
    );
    assert!(msg.contains("please do the thing"), "{msg}");

    let resp = post(
        &server,
        "/v1/responses",
        responses_body("codex prompt", true),
    )
    .await;
    assert_eq!(resp.status(), 500);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "server_error");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("codex prompt")
    );
    let recs = server.requests();
    assert_eq!(recs.len(), 2);
    assert!(recs.iter().all(|r| r.status == 500 && r.rule.is_none()));
    server.shutdown().await;
}

#[tokio::test]
async fn concurrent_requests_consume_distinct_uses() {
    let server = start(
        r#"
rules:
  - { name: a, times: 3, reply: a }
  - { name: b, times: 2, reply: b }
fallback: z
"#,
    )
    .await;
    let url = server.url();
    let mut tasks = Vec::new();
    for i in 0..10 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let v: Value = reqwest::Client::new()
                .post(format!("{url}/v1/messages"))
                .json(&anthropic_body(&format!("q{i}"), false))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["content"][0]["text"].as_str().unwrap().to_string()
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    answers.sort();
    assert_eq!(answers, ["a", "a", "a", "b", "b", "z", "z", "z", "z", "z"]);
    server.shutdown().await;
}

#[tokio::test]
async fn error_replies_per_api() {
    let server = start(
        r#"
rules:
  - when: { api: anthropic, contains: e500 }
    reply: { error: { status: 500, message: boom } }
  - when: { api: anthropic, contains: e529 }
    reply: { error: { status: 529, message: busy, should_retry: false } }
  - when: { api: anthropic, contains: e429 }
    reply: { error: { status: 429, retry_after_ms: 1500 } }
  - when: { api: openai, contains: e500 }
    reply: { error: { status: 500, message: boom } }
  - when: { api: openai, contains: e429 }
    reply: { error: { status: 429, message: slow down } }
  - when: { api: openai, contains: custom }
    reply: { error: { status: 400, message: bad, type: context_length_exceeded, code: ctx } }
"#,
    )
    .await;
    let r = post(&server, "/v1/messages", anthropic_body("e500", true)).await;
    assert_eq!(r.status(), 500);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"type": "error", "error": {"type": "api_error", "message": "boom"}})
    );
    let r = post(&server, "/v1/messages", anthropic_body("e529", true)).await;
    assert_eq!(r.status().as_u16(), 529);
    assert_eq!(r.headers()["x-should-retry"], "false");
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["type"],
        "overloaded_error"
    );
    let r = post(&server, "/v1/messages", anthropic_body("e429", false)).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after-ms"], "1500");
    assert_eq!(r.headers()["retry-after"], "2");
    let v = r.json::<Value>().await.unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert_eq!(v["error"]["message"], "Too Many Requests");

    let r = post(&server, "/v1/responses", responses_body("e500", true)).await;
    assert_eq!(r.status(), 500);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": {"message": "boom", "type": "server_error", "code": null}})
    );
    let r = post(&server, "/v1/responses", responses_body("e429", true)).await;
    assert_eq!(r.status(), 429);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "rate_limit_exceeded"
    );
    let r = post(&server, "/v1/responses", responses_body("custom", true)).await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": {"message": "bad", "type": "context_length_exceeded", "code": "ctx"}})
    );
    let statuses: Vec<u16> = server.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 529, 429, 500, 429, 400]);
    server.shutdown().await;
}

#[tokio::test]
async fn delay_and_chunk_delay() {
    let server = start(
        r#"
rules:
  - { when: { contains: first }, reply: { text: "slow start", delay_ms: 300 } }
  - { when: { contains: second }, reply: { text: "one two three", chunk_delay_ms: 100 } }
"#,
    )
    .await;
    let t0 = Instant::now();
    let r = post(&server, "/v1/messages", anthropic_body("first", true)).await;
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t0.elapsed()
    );
    r.text().await.unwrap();

    let t0 = Instant::now();
    let text = post(&server, "/v1/messages", anthropic_body("second", true))
        .await
        .text()
        .await
        .unwrap();
    // three text deltas, 100 ms before each
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(text.matches("text_delta").count(), 3);
    server.shutdown().await;
}

/// Read the body until `needle` appears; returns everything read.
async fn read_until(resp: &mut reqwest::Response, seen: &mut String, needle: &str) {
    while !seen.contains(needle) {
        let chunk = tokio::time::timeout(Duration::from_secs(5), resp.chunk())
            .await
            .expect("timed out reading stream")
            .unwrap()
            .expect("stream ended early");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn hold_pauses_stream_until_released() {
    let server = start(
        r#"
rules:
  - { when: { contains: one }, reply: { text: "first turn", hold: turn } }
  - { when: { contains: two }, reply: { text: "second turn", hold: turn } }
"#,
    )
    .await;
    let mut resp = post(&server, "/v1/messages", anthropic_body("one", true)).await;
    assert_eq!(resp.status(), 200);
    let mut seen = String::new();
    read_until(&mut resp, &mut seen, "event: ping").await;
    assert!(server.wait_for_hold("turn", Duration::from_secs(5)).await);
    assert_eq!(server.held("turn"), 1);
    // nothing more arrives while held
    let more = tokio::time::timeout(Duration::from_millis(200), resp.chunk()).await;
    assert!(more.is_err(), "stream continued while held");
    assert!(!seen.contains("content_block_start"));
    server.release("turn");
    read_until(&mut resp, &mut seen, "event: message_stop").await;
    assert!(seen.contains("first turn") || seen.contains("text_delta"));
    assert_eq!(server.held("turn"), 0);

    // Release through the control API, on the OpenAI side.
    server.set_script(Script::parse("fallback: {text: later, hold: h2}", "t").unwrap());
    let mut resp = post(&server, "/v1/responses", responses_body("two", true)).await;
    let mut seen = String::new();
    read_until(&mut resp, &mut seen, "event: response.in_progress").await;
    assert!(server.wait_for_hold("h2", Duration::from_secs(5)).await);
    let st: Value = client()
        .get(format!("{}/_fracta/holds/h2", server.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(st["waiting"], 1);
    let r = client()
        .post(format!("{}/_fracta/release/h2", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    read_until(&mut resp, &mut seen, "event: response.completed").await;

    // A release that comes first is kept for the next hold.
    server.release("early");
    server.set_script(Script::parse("fallback: {text: x, hold: early}", "t").unwrap());
    let v: Value = post(&server, "/v1/messages", anthropic_body("x", false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["content"][0]["text"], "x");
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_held_streams() {
    let server = start("fallback: {text: x, hold: forever}").await;
    let mut resp = post(&server, "/v1/messages", anthropic_body("x", true)).await;
    let mut seen = String::new();
    read_until(&mut resp, &mut seen, "event: ping").await;
    assert!(
        server
            .wait_for_hold("forever", Duration::from_secs(5))
            .await
    );
    // The guard only stops a hang; the held stream must end because the server shuts down.
    tokio::time::timeout(Duration::from_secs(60), server.shutdown())
        .await
        .expect("shutdown waited on a held stream");
    let rest = tokio::time::timeout(Duration::from_secs(60), resp.chunk())
        .await
        .expect("the held stream did not end");
    assert!(matches!(rest, Ok(None) | Err(_)), "{rest:?}");
}

#[tokio::test]
async fn drop_connection_mid_stream() {
    let server = start("fallback: {text: \"a fairly long text\", drop_connection: true}").await;
    let mut resp = post(&server, "/v1/messages", anthropic_body("x", true)).await;
    assert_eq!(resp.status(), 200);
    let mut seen = String::new();
    let err = loop {
        match resp.chunk().await {
            Ok(Some(c)) => seen.push_str(&String::from_utf8_lossy(&c)),
            Ok(None) => panic!("stream ended cleanly: {seen}"),
            Err(e) => break e,
        }
    };
    assert!(
        err.is_body() || err.is_decode() || err.is_request(),
        "{err:?}"
    );
    assert_eq!(seen.matches("text_delta").count(), 1, "{seen}");
    assert!(!seen.contains("message_stop"));

    // Non-streaming: the connection closes before a complete response.
    let r = client()
        .post(format!("{}/v1/responses", server.url()))
        .json(&responses_body("x", false))
        .send()
        .await;
    match r {
        Err(e) => assert!(e.is_request(), "{e:?}"),
        Ok(r) => assert!(r.text().await.is_err()),
    }
    assert_eq!(server.requests().len(), 2);
    server.shutdown().await;
}

#[tokio::test]
async fn records_requests_with_headers_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("req.jsonl");
    let server = ModelServer::start_with_options(
        Script::parse("fallback: ok", "t").unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        ServerOptions::default().with_record_file(&file),
    )
    .await
    .unwrap();
    let c = client();
    let head = c.head(server.url()).send().await.unwrap();
    assert_eq!(head.status(), 200);
    let r = c
        .post(format!("{}/v1/messages?beta=true", server.url()))
        .header("X-Api-Key", "secret-ish")
        .header("Anthropic-Version", "2023-06-01")
        .json(&anthropic_body("record me", true))
        .send()
        .await
        .unwrap();
    r.text().await.unwrap();
    let r = c
        .post(format!("{}/v1/unknown", server.url()))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(
        r.json::<Value>().await.unwrap()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/v1/unknown")
    );
    // control requests are not recorded
    let health: Value = c
        .get(format!("{}/_fracta/health", server.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["ok"], true);

    let recs = server.requests();
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[0].method, "HEAD");
    assert_eq!(recs[0].path, "/");
    assert_eq!(recs[0].api, None);
    let m = &recs[1];
    assert_eq!(m.seq, 2);
    assert_eq!(m.headers["x-api-key"], "secret-ish");
    assert_eq!(m.headers["anthropic-version"], "2023-06-01");
    assert_eq!(m.headers["content-type"], "application/json");
    assert_eq!(m.body["model"], "claude-sonnet-4-5");
    assert_eq!(m.last_user_text().as_deref(), Some("record me"));
    assert_eq!(m.rule.as_deref(), Some("fallback"));
    assert_eq!(m.api, Some(Api::Anthropic));
    assert!(m.at_ms >= recs[0].at_ms);
    assert_eq!(recs[2].status, 404);
    assert_eq!(recs[2].body, json!("not json"));
    assert_eq!(server.model_requests().len(), 1);

    let via_http: Vec<fracta_model_server::RecordedRequest> = c
        .get(format!("{}/_fracta/requests", server.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(via_http, recs);
    let lines: Vec<fracta_model_server::RecordedRequest> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, recs);
    server.shutdown().await;
}

#[tokio::test]
async fn control_api_replaces_script() {
    let server = start("fallback: old").await;
    let c = client();
    let r = c
        .put(format!("{}/_fracta/script", server.url()))
        .body("rules:\n  - {name: r, when: {contains: ping}, reply: pong}\nfallback: new\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = post(&server, "/v1/messages", anthropic_body("ping", false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["content"][0]["text"], "pong");
    let r = c
        .put(format!("{}/_fracta/script", server.url()))
        .body(r#"{"rules": [{"reply": {"txet": "typo"}}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert!(
        e["error"].as_str().unwrap().contains("rules[0].reply"),
        "{e}"
    );
    assert_eq!(server.requests().len(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn count_tokens_and_models() {
    let server = start("fallback: x").await;
    let v: Value = post(
        &server,
        "/v1/messages/count_tokens",
        anthropic_body("count", false),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(v["input_tokens"].as_u64().unwrap() > 0);
    let v: Value = client()
        .get(format!("{}/v1/models", server.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!v["data"].as_array().unwrap().is_empty());
    assert_eq!(v["data"][0]["type"], "model");
    assert_eq!(v["data"][0]["object"], "model");
    // these do not consume script rules
    assert!(server.requests().iter().all(|r| r.rule.is_none()));
    server.shutdown().await;
}

const GEMINI_REPLY: &str = r#"
rules:
  - name: router
    when: { api: gemini, model: flash-lite, stream: false }
    repeat: true
    reply: '{"reasoning": "simple", "model_choice": "flash"}'
  - name: tool
    when: { api: gemini, contains: "list files" }
    reply:
      reasoning: "Think first."
      text: "Listing."
      tool_calls:
        - { name: list_directory, input: { path: "." } }
      usage: { input_tokens: 100, output_tokens: 20, cached_tokens: 60, reasoning_tokens: 4 }
  - name: after-tool
    when: { api: gemini, contains: "a.txt" }
    reply: "There is a.txt."
"#;

fn gemini_body(contents: Value) -> Value {
    json!({
        "contents": contents,
        "systemInstruction": {"parts": [{"text": "You are Gemini CLI."}]},
        "tools": [{"functionDeclarations": [{"name": "list_directory", "parameters": {"type": "object"}}]}],
        "generationConfig": {"temperature": 0},
    })
}

/// The Gemini API as Gemini CLI speaks it: the router's `generateContent`, then streamed
/// turns with a function call and its response; the model comes from the path.
#[tokio::test]
async fn gemini_generate_and_stream_with_function_calls() {
    let server = start(GEMINI_REPLY).await;
    let user = |t: &str| json!([{"role": "user", "parts": [{"text": t}]}]);
    let routed: Value = post(
        &server,
        "/v1beta/models/gemini-2.5-flash-lite:generateContent",
        gemini_body(user("route me")),
    )
    .await
    .json()
    .await
    .unwrap();
    insta::assert_json_snapshot!("gemini_generate", routed);
    assert_eq!(routed["candidates"][0]["finishReason"], "STOP");

    let resp = post(
        &server,
        "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
        gemini_body(user("please list files")),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    insta::assert_snapshot!("gemini_stream", text);
    let chunks: Vec<Value> = text
        .split("\n\n")
        .filter(|b| !b.is_empty())
        .map(|b| serde_json::from_str(b.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    let last = chunks.last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(last["usageMetadata"]["promptTokenCount"], 100);
    assert!(chunks.iter().any(
        |c| c["candidates"][0]["content"]["parts"][0]["functionCall"]["name"] == "list_directory"
    ));

    // The function's response is the next request's user text.
    let contents = json!([
        {"role": "user", "parts": [{"text": "please list files"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "list_directory", "args": {"path": "."}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "list_directory", "response": {"output": "a.txt"}}}]}
    ]);
    let text = post(
        &server,
        "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
        gemini_body(contents),
    )
    .await
    .text()
    .await
    .unwrap();
    let said: String = text
        .split("\n\n")
        .filter_map(|b| b.strip_prefix("data: "))
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .filter_map(|c| {
            c["candidates"][0]["content"]["parts"][0]["text"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(said, "There is a.txt.");

    let counted: Value = post(
        &server,
        "/v1beta/models/gemini-2.5-pro:countTokens",
        gemini_body(user("x")),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(counted["totalTokens"].as_u64().unwrap() > 0);

    let reqs = server.model_requests();
    let rules: Vec<Option<&str>> = reqs.iter().map(|r| r.rule.as_deref()).collect();
    assert_eq!(rules, [Some("router"), Some("tool"), Some("after-tool")]);
    assert!(reqs.iter().all(|r| r.api == Some(Api::Gemini)));
    assert_eq!(reqs[1].model(), Some("gemini-2.5-pro"));
    assert_eq!(reqs[1].query.as_deref(), Some("alt=sse"));
    // Recorded as received: the body has no `model` of its own.
    assert!(reqs[1].body.get("model").is_none());
    assert_eq!(
        reqs[1].body["tools"][0]["functionDeclarations"][0]["name"],
        "list_directory"
    );
    server.shutdown().await;
}

/// An unscripted Gemini request and a scripted error answer in Gemini's error shape.
#[tokio::test]
async fn gemini_errors_have_the_google_shape() {
    let server = start(
        "rules:\n  - when: { contains: busy }\n    reply: { error: { status: 429, message: slow down } }\n",
    )
    .await;
    let body = gemini_body(json!([{"role": "user", "parts": [{"text": "busy"}]}]));
    let resp = post(&server, "/v1beta/models/m:generateContent", body).await;
    assert_eq!(resp.status(), 429);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED");
    assert_eq!(v["error"]["message"], "slow down");
    let body = gemini_body(json!([{"role": "user", "parts": [{"text": "nothing"}]}]));
    let v: Value = post(&server, "/v1beta/models/m:streamGenerateContent", body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["error"]["code"], 500);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("gemini request, model m"),
        "{v}"
    );
    server.shutdown().await;
}
