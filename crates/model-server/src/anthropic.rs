//! Anthropic Messages API encoding (`POST /v1/messages`).

use serde_json::{Value, json};

use crate::script::{Block, ToolCall};
use crate::wire::{Ctx, Event, Ids, Stream, chunks};

/// A block with its generated ids.
enum Out<'a> {
    Text(&'a str),
    Thinking(&'a str, String),
    Tool(&'a ToolCall, String),
}

fn prepare<'a>(ctx: &'a Ctx, ids: &Ids) -> Vec<Out<'a>> {
    ctx.blocks
        .iter()
        .map(|b| match b {
            Block::Text(t) => Out::Text(t),
            Block::Reasoning(t) => Out::Thinking(t, ids.next("sig")),
            Block::ToolCall(tc) => {
                Out::Tool(tc, tc.id.clone().unwrap_or_else(|| ids.next("toolu")))
            }
        })
        .collect()
}

fn stop_reason(ctx: &Ctx) -> String {
    ctx.stop_reason.clone().unwrap_or_else(|| {
        if ctx.has_tool_calls() {
            "tool_use".into()
        } else {
            "end_turn".into()
        }
    })
}

fn usage(ctx: &Ctx, output_tokens: u64) -> Value {
    json!({
        "input_tokens": ctx.tokens.input,
        "output_tokens": output_tokens,
        "cache_read_input_tokens": ctx.tokens.cached,
        "cache_creation_input_tokens": ctx.tokens.cache_creation,
    })
}

fn full_block(out: &Out) -> Value {
    match out {
        Out::Text(t) => json!({"type": "text", "text": t}),
        Out::Thinking(t, sig) => json!({"type": "thinking", "thinking": t, "signature": sig}),
        Out::Tool(tc, id) => {
            json!({"type": "tool_use", "id": id, "name": tc.name, "input": tc.input})
        }
    }
}

/// The non-streaming message object.
pub(crate) fn message(ctx: &Ctx, ids: &Ids) -> Value {
    let id = ids.next("msg");
    let content: Vec<Value> = prepare(ctx, ids).iter().map(full_block).collect();
    json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": ctx.model,
        "content": content,
        "stop_reason": stop_reason(ctx),
        "stop_sequence": null,
        "usage": usage(ctx, ctx.tokens.output),
    })
}

/// The SSE event sequence of a streamed message.
pub(crate) fn stream(ctx: &Ctx, ids: &Ids) -> Stream {
    let id = ids.next("msg");
    let outs = prepare(ctx, ids);
    let mut ev = vec![
        Event::named(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": id,
                "type": "message",
                "role": "assistant",
                "model": ctx.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": usage(ctx, 1),
            }}),
        ),
        Event::named("ping", &json!({"type": "ping"})),
    ];
    let preamble = ev.len();
    for (index, out) in outs.iter().enumerate() {
        let start = match out {
            Out::Text(_) => json!({"type": "text", "text": ""}),
            Out::Thinking(..) => json!({"type": "thinking", "thinking": "", "signature": ""}),
            Out::Tool(tc, id) => {
                json!({"type": "tool_use", "id": id, "name": tc.name, "input": {}})
            }
        };
        ev.push(Event::named(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": start}),
        ));
        let deltas: Vec<Value> = match out {
            Out::Text(t) => chunks(t)
                .into_iter()
                .map(|c| json!({"type": "text_delta", "text": c}))
                .collect(),
            Out::Thinking(t, sig) => chunks(t)
                .into_iter()
                .map(|c| json!({"type": "thinking_delta", "thinking": c}))
                .chain(std::iter::once(
                    json!({"type": "signature_delta", "signature": sig}),
                ))
                .collect(),
            Out::Tool(tc, _) => chunks(&tc.input.to_string())
                .into_iter()
                .map(|c| json!({"type": "input_json_delta", "partial_json": c}))
                .collect(),
        };
        for d in deltas {
            ev.push(
                Event::named(
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": index, "delta": d}),
                )
                .into_delta(),
            );
        }
        ev.push(Event::named(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        ));
    }
    ev.push(Event::named(
        "message_delta",
        &json!({
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason(ctx), "stop_sequence": null},
            "usage": {"output_tokens": ctx.tokens.output},
        }),
    ));
    ev.push(Event::named(
        "message_stop",
        &json!({"type": "message_stop"}),
    ));
    Stream {
        events: ev,
        preamble,
    }
}

/// The default Anthropic error type for an HTTP status.
pub(crate) fn error_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

/// An Anthropic error body.
pub(crate) fn error_body(error_type: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": error_type, "message": message}})
}
