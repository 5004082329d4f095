//! Gemini API encoding (`POST /v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse`), as Gemini CLI speaks it: the model is in the path,
//! the conversation in `contents` (`parts` of `text`, `functionCall`, `functionResponse`).

use serde_json::{Value, json};

use crate::script::Block;
use crate::wire::{Ctx, Event, Ids, Stream, chunks};

/// A Gemini model path (`/models/NAME:METHOD`, after the version prefix): the model and the
/// method.
pub(crate) fn route(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/models/")?;
    rest.rsplit_once(':')
}

/// The model named by a Gemini request path (`/v1beta/models/NAME:METHOD`).
pub(crate) fn model_of(path: &str) -> Option<&str> {
    let rest = path
        .strip_prefix("/v1beta")
        .or_else(|| path.strip_prefix("/v1"))
        .unwrap_or(path);
    route(rest).map(|(m, _)| m)
}

fn finish_reason(ctx: &Ctx) -> &'static str {
    match ctx.stop_reason.as_deref() {
        Some("max_tokens" | "max_output_tokens" | "length" | "MAX_TOKENS") => "MAX_TOKENS",
        Some("safety" | "SAFETY") => "SAFETY",
        _ => "STOP",
    }
}

fn usage(ctx: &Ctx) -> Value {
    let t = ctx.tokens;
    json!({
        "promptTokenCount": t.input,
        "candidatesTokenCount": t.output,
        "cachedContentTokenCount": t.cached,
        "thoughtsTokenCount": t.reasoning,
        "totalTokenCount": t.input + t.output,
    })
}

/// The parts of a reply, each whole.
fn parts(ctx: &Ctx) -> Vec<Value> {
    ctx.blocks.iter().map(part).collect()
}

fn part(b: &Block) -> Value {
    match b {
        Block::Text(t) => json!({"text": t}),
        Block::Reasoning(t) => json!({"text": t, "thought": true}),
        Block::ToolCall(tc) => {
            let mut call = json!({"name": tc.name, "args": tc.input});
            if let Some(id) = &tc.id {
                call["id"] = json!(id);
            }
            json!({"functionCall": call})
        }
    }
}

fn candidate(parts: Vec<Value>, finish: Option<&str>) -> Value {
    let mut c = json!({"content": {"role": "model", "parts": parts}, "index": 0});
    if let Some(f) = finish {
        c["finishReason"] = json!(f);
    }
    c
}

/// The non-streaming `GenerateContentResponse`.
pub(crate) fn response(ctx: &Ctx, ids: &Ids) -> Value {
    json!({
        "candidates": [candidate(parts(ctx), Some(finish_reason(ctx)))],
        "usageMetadata": usage(ctx),
        "modelVersion": ctx.model,
        "responseId": ids.next("gem"),
    })
}

/// The SSE `data:` chunks of `streamGenerateContent?alt=sse`: text and thoughts in pieces,
/// each function call whole, the last chunk with the finish reason and usage.
pub(crate) fn stream(ctx: &Ctx, ids: &Ids) -> Stream {
    let id = ids.next("gem");
    let chunk = |parts: Vec<Value>, last: bool| {
        let mut v = json!({
            "candidates": [candidate(parts, last.then(|| finish_reason(ctx)))],
            "modelVersion": ctx.model,
            "responseId": id,
        });
        if last {
            v["usageMetadata"] = usage(ctx);
        }
        v.to_string()
    };
    let mut pieces: Vec<(Value, bool)> = Vec::new();
    for b in &ctx.blocks {
        match b {
            Block::Text(t) => {
                pieces.extend(chunks(t).into_iter().map(|c| (json!({"text": c}), true)));
            }
            Block::Reasoning(t) => pieces.extend(
                chunks(t)
                    .into_iter()
                    .map(|c| (json!({"text": c, "thought": true}), true)),
            ),
            Block::ToolCall(_) => pieces.push((part(b), false)),
        }
    }
    let mut events = Vec::new();
    let n = pieces.len();
    if n == 0 {
        events.push(Event::data_only(chunk(vec![json!({"text": ""})], true)));
    }
    for (i, (p, delta)) in pieces.into_iter().enumerate() {
        let e = Event::data_only(chunk(vec![p], i + 1 == n));
        events.push(if delta { e.into_delta() } else { e });
    }
    Stream {
        events,
        preamble: 0,
    }
}

/// `:countTokens`.
pub(crate) fn count_tokens(body: &Value) -> Value {
    json!({"totalTokens": crate::wire::estimate_tokens(body)})
}

/// The Google RPC status name of an HTTP status.
fn status_name(status: u16) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

/// A Gemini error body.
pub(crate) fn error_body(status: u16, message: &str, name: Option<&str>) -> Value {
    json!({"error": {
        "code": status,
        "message": message,
        "status": name.unwrap_or_else(|| status_name(status)),
    }})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_name_the_model_and_method() {
        assert_eq!(
            route("/models/gemini-2.5-pro:streamGenerateContent"),
            Some(("gemini-2.5-pro", "streamGenerateContent"))
        );
        assert_eq!(
            model_of("/v1beta/models/gemini-2.5-flash:generateContent"),
            Some("gemini-2.5-flash")
        );
        assert_eq!(route("/messages"), None);
    }
}
