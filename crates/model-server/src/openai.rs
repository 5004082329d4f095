//! OpenAI encodings: the Responses API (`POST /v1/responses`) and Chat
//! Completions (`POST /v1/chat/completions`).

use serde_json::{Value, json};

use crate::script::{Block, ToolKind};
use crate::wire::{Ctx, Event, Ids, Stream, chunks};

/// An output item with its generated ids.
enum Item {
    Message {
        id: String,
        text: String,
    },
    Reasoning {
        id: String,
        text: String,
    },
    Function {
        id: String,
        call_id: String,
        name: String,
        namespace: Option<String>,
        arguments: String,
    },
    Custom {
        id: String,
        call_id: String,
        name: String,
        input: String,
    },
}

impl Item {
    fn id(&self) -> &str {
        match self {
            Item::Message { id, .. }
            | Item::Reasoning { id, .. }
            | Item::Function { id, .. }
            | Item::Custom { id, .. } => id,
        }
    }

    /// The item as in `response.output_item.added` (`done = false`) or `.done`.
    fn json(&self, done: bool) -> Value {
        let status = if done { "completed" } else { "in_progress" };
        match self {
            Item::Message { id, text } => {
                let content = if done {
                    json!([{"type": "output_text", "text": text, "annotations": []}])
                } else {
                    json!([])
                };
                json!({"type": "message", "id": id, "status": status, "role": "assistant", "content": content})
            }
            Item::Reasoning { id, text } => {
                let summary = if done {
                    json!([{"type": "summary_text", "text": text}])
                } else {
                    json!([])
                };
                json!({"type": "reasoning", "id": id, "summary": summary})
            }
            Item::Function {
                id,
                call_id,
                name,
                namespace,
                arguments,
            } => {
                let mut v = json!({
                    "type": "function_call", "id": id, "call_id": call_id, "name": name,
                    "arguments": if done { arguments.as_str() } else { "" }, "status": status,
                });
                if let Some(ns) = namespace {
                    v["namespace"] = json!(ns);
                }
                v
            }
            Item::Custom {
                id,
                call_id,
                name,
                input,
            } => json!({
                "type": "custom_tool_call", "id": id, "call_id": call_id, "name": name,
                "input": if done { input.as_str() } else { "" }, "status": status,
            }),
        }
    }
}

fn prepare(ctx: &Ctx, ids: &Ids) -> Vec<Item> {
    ctx.blocks
        .iter()
        .map(|b| match b {
            Block::Text(t) => Item::Message {
                id: ids.next("msg"),
                text: t.clone(),
            },
            Block::Reasoning(t) => Item::Reasoning {
                id: ids.next("rs"),
                text: t.clone(),
            },
            Block::ToolCall(tc) => match tc.kind {
                ToolKind::Function => Item::Function {
                    id: ids.next("fc"),
                    call_id: tc.id.clone().unwrap_or_else(|| ids.next("call")),
                    name: tc.name.clone(),
                    namespace: tc.namespace.clone(),
                    arguments: tc.input_string(),
                },
                ToolKind::Custom => Item::Custom {
                    id: ids.next("ctc"),
                    call_id: tc.id.clone().unwrap_or_else(|| ids.next("call")),
                    name: tc.name.clone(),
                    input: tc.input_string(),
                },
            },
        })
        .collect()
}

fn incomplete(ctx: &Ctx) -> bool {
    matches!(
        ctx.stop_reason.as_deref(),
        Some("max_tokens" | "max_output_tokens" | "incomplete" | "length")
    )
}

fn responses_usage(ctx: &Ctx) -> Value {
    let t = ctx.tokens;
    json!({
        "input_tokens": t.input,
        "input_tokens_details": {"cached_tokens": t.cached},
        "output_tokens": t.output,
        "output_tokens_details": {"reasoning_tokens": t.reasoning},
        "total_tokens": t.input + t.output,
    })
}

fn response_object(ctx: &Ctx, id: &str, status: &str, output: Vec<Value>, final_: bool) -> Value {
    let incomplete_details = if final_ && incomplete(ctx) {
        json!({"reason": "max_output_tokens"})
    } else {
        Value::Null
    };
    json!({
        "id": id,
        "object": "response",
        "created_at": ctx.created,
        "status": status,
        "error": null,
        "incomplete_details": incomplete_details,
        "model": ctx.model,
        "output": output,
        "parallel_tool_calls": true,
        "usage": if final_ { responses_usage(ctx) } else { Value::Null },
    })
}

fn final_status(ctx: &Ctx) -> &'static str {
    if incomplete(ctx) {
        "incomplete"
    } else {
        "completed"
    }
}

/// The non-streaming Responses API object.
pub(crate) fn response(ctx: &Ctx, ids: &Ids) -> Value {
    let id = ids.next("resp");
    let items = prepare(ctx, ids);
    let output = items.iter().map(|i| i.json(true)).collect();
    response_object(ctx, &id, final_status(ctx), output, true)
}

struct Seq {
    events: Vec<Event>,
    n: u64,
}

impl Seq {
    fn push(&mut self, ty: &str, mut data: Value, delta: bool) {
        if let Value::Object(m) = &mut data {
            let mut obj = serde_json::Map::new();
            obj.insert("type".into(), json!(ty));
            obj.insert("sequence_number".into(), json!(self.n));
            obj.append(m);
            data = Value::Object(obj);
        }
        self.n += 1;
        let e = Event::named(ty, &data);
        self.events.push(if delta { e.into_delta() } else { e });
    }
}

/// The SSE event sequence of a streamed Responses API reply.
pub(crate) fn response_stream(ctx: &Ctx, ids: &Ids) -> Stream {
    let id = ids.next("resp");
    let items = prepare(ctx, ids);
    let mut s = Seq {
        events: Vec::new(),
        n: 0,
    };
    let pending = response_object(ctx, &id, "in_progress", vec![], false);
    s.push(
        "response.created",
        json!({"response": pending.clone()}),
        false,
    );
    s.push("response.in_progress", json!({"response": pending}), false);
    let preamble = s.events.len();
    for (oi, item) in items.iter().enumerate() {
        let item_id = item.id().to_string();
        s.push(
            "response.output_item.added",
            json!({"output_index": oi, "item": item.json(false)}),
            false,
        );
        match item {
            Item::Message { text, .. } => {
                let part = |t: &str| json!({"type": "output_text", "text": t, "annotations": []});
                s.push(
                    "response.content_part.added",
                    json!({"item_id": item_id, "output_index": oi, "content_index": 0, "part": part("")}),
                    false,
                );
                for c in chunks(text) {
                    s.push(
                        "response.output_text.delta",
                        json!({"item_id": item_id, "output_index": oi, "content_index": 0, "delta": c}),
                        true,
                    );
                }
                s.push(
                    "response.output_text.done",
                    json!({"item_id": item_id, "output_index": oi, "content_index": 0, "text": text}),
                    false,
                );
                s.push(
                    "response.content_part.done",
                    json!({"item_id": item_id, "output_index": oi, "content_index": 0, "part": part(text)}),
                    false,
                );
            }
            Item::Reasoning { text, .. } => {
                let part = |t: &str| json!({"type": "summary_text", "text": t});
                s.push(
                    "response.reasoning_summary_part.added",
                    json!({"item_id": item_id, "output_index": oi, "summary_index": 0, "part": part("")}),
                    false,
                );
                for c in chunks(text) {
                    s.push(
                        "response.reasoning_summary_text.delta",
                        json!({"item_id": item_id, "output_index": oi, "summary_index": 0, "delta": c}),
                        true,
                    );
                }
                s.push(
                    "response.reasoning_summary_text.done",
                    json!({"item_id": item_id, "output_index": oi, "summary_index": 0, "text": text}),
                    false,
                );
                s.push(
                    "response.reasoning_summary_part.done",
                    json!({"item_id": item_id, "output_index": oi, "summary_index": 0, "part": part(text)}),
                    false,
                );
            }
            Item::Function {
                name, arguments, ..
            } => {
                for c in chunks(arguments) {
                    s.push(
                        "response.function_call_arguments.delta",
                        json!({"item_id": item_id, "output_index": oi, "delta": c}),
                        true,
                    );
                }
                s.push(
                    "response.function_call_arguments.done",
                    json!({"item_id": item_id, "output_index": oi, "name": name, "arguments": arguments}),
                    false,
                );
            }
            Item::Custom { input, .. } => {
                for c in chunks(input) {
                    s.push(
                        "response.custom_tool_call_input.delta",
                        json!({"item_id": item_id, "output_index": oi, "delta": c}),
                        true,
                    );
                }
                s.push(
                    "response.custom_tool_call_input.done",
                    json!({"item_id": item_id, "output_index": oi, "input": input}),
                    false,
                );
            }
        }
        s.push(
            "response.output_item.done",
            json!({"output_index": oi, "item": item.json(true)}),
            false,
        );
    }
    let output = items.iter().map(|i| i.json(true)).collect();
    let status = final_status(ctx);
    let done = response_object(ctx, &id, status, output, true);
    let ty = if status == "incomplete" {
        "response.incomplete"
    } else {
        "response.completed"
    };
    s.push(ty, json!({"response": done}), false);
    Stream {
        events: s.events,
        preamble,
    }
}

/// The default OpenAI error `type` and `code` for an HTTP status.
pub(crate) fn error_type(status: u16) -> (&'static str, Option<&'static str>) {
    match status {
        400 | 413 | 422 => ("invalid_request_error", None),
        401 => ("invalid_request_error", Some("invalid_api_key")),
        403 => ("permission_error", None),
        404 => ("not_found_error", None),
        429 => ("requests", Some("rate_limit_exceeded")),
        _ => ("server_error", None),
    }
}

/// An OpenAI error body.
pub(crate) fn error_body(error_type: &str, message: &str, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": error_type, "code": code}})
}

// ---------------------------------------------------------------- chat

struct ChatParts {
    reasoning: String,
    text: String,
    tools: Vec<(String, String, String)>, // call_id, name, arguments
}

fn chat_parts(ctx: &Ctx, ids: &Ids) -> ChatParts {
    let mut p = ChatParts {
        reasoning: String::new(),
        text: String::new(),
        tools: Vec::new(),
    };
    for b in &ctx.blocks {
        match b {
            Block::Text(t) => p.text.push_str(t),
            Block::Reasoning(t) => p.reasoning.push_str(t),
            Block::ToolCall(tc) => p.tools.push((
                tc.id.clone().unwrap_or_else(|| ids.next("call")),
                tc.name.clone(),
                tc.input_string(),
            )),
        }
    }
    p
}

fn chat_finish(ctx: &Ctx, p: &ChatParts) -> String {
    match ctx.stop_reason.as_deref() {
        Some("max_tokens" | "max_output_tokens") => "length".into(),
        Some(other) => other.into(),
        None if !p.tools.is_empty() => "tool_calls".into(),
        None => "stop".into(),
    }
}

fn chat_usage(ctx: &Ctx) -> Value {
    let t = ctx.tokens;
    json!({
        "prompt_tokens": t.input,
        "completion_tokens": t.output,
        "total_tokens": t.input + t.output,
        "prompt_tokens_details": {"cached_tokens": t.cached},
        "completion_tokens_details": {"reasoning_tokens": t.reasoning},
    })
}

/// The non-streaming Chat Completions object.
pub(crate) fn chat(ctx: &Ctx, ids: &Ids) -> Value {
    let id = ids.next("chatcmpl");
    let p = chat_parts(ctx, ids);
    let mut message = serde_json::Map::new();
    message.insert("role".into(), json!("assistant"));
    message.insert(
        "content".into(),
        if p.text.is_empty() && !p.tools.is_empty() {
            Value::Null
        } else {
            json!(p.text)
        },
    );
    if !p.reasoning.is_empty() {
        message.insert("reasoning_content".into(), json!(p.reasoning));
    }
    if !p.tools.is_empty() {
        let calls: Vec<Value> = p
            .tools
            .iter()
            .map(|(id, name, args)| {
                json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}})
            })
            .collect();
        message.insert("tool_calls".into(), json!(calls));
    }
    json!({
        "id": id,
        "object": "chat.completion",
        "created": ctx.created,
        "model": ctx.model,
        "choices": [{"index": 0, "message": message, "finish_reason": chat_finish(ctx, &p)}],
        "usage": chat_usage(ctx),
    })
}

/// The `data:` chunks of a streamed Chat Completion (ending in `[DONE]`).
pub(crate) fn chat_stream(ctx: &Ctx, ids: &Ids, include_usage: bool) -> Stream {
    let id = ids.next("chatcmpl");
    let p = chat_parts(ctx, ids);
    let chunk = |delta: Value, finish: Value| {
        json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": ctx.created,
            "model": ctx.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        })
        .to_string()
    };
    let mut ev = vec![Event::data_only(chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    ))];
    let preamble = ev.len();
    for c in chunks(&p.reasoning) {
        ev.push(Event::data_only(chunk(json!({"reasoning_content": c}), Value::Null)).into_delta());
    }
    for c in chunks(&p.text) {
        ev.push(Event::data_only(chunk(json!({"content": c}), Value::Null)).into_delta());
    }
    for (i, (call_id, name, args)) in p.tools.iter().enumerate() {
        ev.push(Event::data_only(chunk(
            json!({"tool_calls": [{"index": i, "id": call_id, "type": "function",
                "function": {"name": name, "arguments": ""}}]}),
            Value::Null,
        )));
        for c in chunks(args) {
            ev.push(
                Event::data_only(chunk(
                    json!({"tool_calls": [{"index": i, "function": {"arguments": c}}]}),
                    Value::Null,
                ))
                .into_delta(),
            );
        }
    }
    ev.push(Event::data_only(chunk(
        json!({}),
        json!(chat_finish(ctx, &p)),
    )));
    if include_usage {
        ev.push(Event::data_only(
            json!({
                "id": id,
                "object": "chat.completion.chunk",
                "created": ctx.created,
                "model": ctx.model,
                "choices": [],
                "usage": chat_usage(ctx),
            })
            .to_string(),
        ));
    }
    ev.push(Event::data_only("[DONE]".into()));
    Stream {
        events: ev,
        preamble,
    }
}
