//! The OpenAPI 3.1 document of the HTTP API (`GET /v1/openapi.json`, and checked in as
//! `docs/openapi.json`). Paths are written here; every body's schema is generated from the
//! same serde types the server uses (schemars, JSON Schema 2020-12, which OpenAPI 3.1 uses),
//! so the document cannot drift from the wire types.

use fracta_api::{
    AgentView, ApiErrorBody, DiffView, EventView, ForestAgent, Health, LoginBody, LoginCode,
    MergeBody, MergeView, ResumeBody, SendBody, SessionView, SpawnArgs, SteerBody,
};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn body(name: &str) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": schema_ref(name) } } })
}

fn ok(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

fn errors() -> Value {
    let e = |d: &str| ok(d, schema_ref("ApiErrorBody"));
    json!({
        "400": e("Invalid request (the message names what is valid)"),
        "401": e("Missing or wrong admin token, or no live dashboard session"),
        "403": e("A dashboard call that changes something without the session's CSRF token, or from another origin"),
        "404": e("No such agent"),
        "409": e("The id prefix matches more than one agent, or the agent has no live stream session (send) or is still running (resume)"),
        "422": e("Over budget (the message names the budget and its value)"),
        "500": e("Internal error"),
    })
}

fn with_errors(mut responses: Value) -> Value {
    if let (Some(r), Some(e)) = (responses.as_object_mut(), errors().as_object()) {
        for (k, v) in e {
            r.entry(k.clone()).or_insert(v.clone());
        }
    }
    responses
}

fn id_param() -> Value {
    json!({ "name": "id", "in": "path", "required": true, "description": "An agent id (or a unique prefix)", "schema": { "type": "string" } })
}

fn query(name: &str, ty: &str, description: &str) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": { "type": ty } })
}

fn sse(description: &str) -> Value {
    json!({ "description": description, "content": { "text/event-stream": { "schema": { "type": "string", "description": "Server-Sent Events: `id: CURSOR`, `event: KIND`, `data: EventView` as JSON; a last `event: end` with the final AgentView(s) as a JSON array. CURSOR is the stream's position: `AGENT:SEQ` on a one-agent stream, `AGENT:SEQ` pairs joined by `,` on a tree stream (one per member that has sent events, ordered by id); sent back as `Last-Event-ID`, each agent goes on after its seq" } } } })
}

/// The whole document.
pub fn document() -> Value {
    let mut generator = SchemaGenerator::new(SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = "/components/schemas".into();
    }));
    let mut schemas = Map::new();
    fn add<T: JsonSchema>(g: &mut SchemaGenerator, schemas: &mut Map<String, Value>) {
        let mut v = g.root_schema_for::<T>().to_value();
        if let Some(o) = v.as_object_mut() {
            o.remove("$schema");
            // The definitions it uses are collected once, below.
            o.remove("components");
        }
        schemas.insert(T::schema_name().to_string(), v);
    }
    add::<SpawnArgs>(&mut generator, &mut schemas);
    add::<ResumeBody>(&mut generator, &mut schemas);
    add::<SendBody>(&mut generator, &mut schemas);
    add::<SteerBody>(&mut generator, &mut schemas);
    add::<Health>(&mut generator, &mut schemas);
    add::<ApiErrorBody>(&mut generator, &mut schemas);
    add::<AgentView>(&mut generator, &mut schemas);
    add::<EventView>(&mut generator, &mut schemas);
    add::<ForestAgent>(&mut generator, &mut schemas);
    add::<DiffView>(&mut generator, &mut schemas);
    add::<LoginCode>(&mut generator, &mut schemas);
    add::<LoginBody>(&mut generator, &mut schemas);
    add::<SessionView>(&mut generator, &mut schemas);
    add::<MergeBody>(&mut generator, &mut schemas);
    add::<MergeView>(&mut generator, &mut schemas);
    for (k, v) in generator.take_definitions(true) {
        schemas.entry(k).or_insert(v);
    }
    let agent = schema_ref("AgentView");
    let agents = json!({ "type": "array", "items": schema_ref("AgentView") });
    let events = json!({ "type": "array", "items": schema_ref("EventView") });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Fracta control plane",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Start, follow, stop and resume AI coding agents (Claude Code, Codex, OpenCode). Served by `fracta serve` on loopback; every call but /v1/health and /v1/openapi.json needs the admin token from `.fracta/serve.json` as `Authorization: Bearer TOKEN`, or the dashboard's session cookie (then a call that changes something also needs the session's CSRF token as `X-CSRF-Token`). Agents reach the MCP gateway at /mcp with their own tokens; those never open the API or the dashboard."
        },
        "security": [{ "admin": [] }],
        "paths": {
            "/v1/health": { "get": {
                "operationId": "health", "summary": "Is the control plane up", "security": [],
                "responses": { "200": ok("Up", schema_ref("Health")) }
            } },
            "/v1/openapi.json": { "get": {
                "operationId": "openapi", "summary": "This document", "security": [],
                "responses": { "200": ok("The OpenAPI document", json!({ "type": "object" })) }
            } },
            "/v1/agents": {
                "post": {
                    "operationId": "createAgent", "summary": "Spawn an agent (returns at once, or when it ends with `wait: true`)",
                    "requestBody": body("SpawnArgs"),
                    "responses": with_errors(json!({ "201": ok("The new agent", agent.clone()) }))
                },
                "get": {
                    "operationId": "listAgents", "summary": "List agents (running ones, or all)",
                    "parameters": [
                        query("all", "boolean", "Include ended agents"),
                        query("root", "string", "Only this tree (a root agent's id)")
                    ],
                    "responses": with_errors(json!({ "200": ok("Agents, newest first", agents) }))
                }
            },
            "/v1/agents/{id}": {
                "get": {
                    "operationId": "getAgent", "summary": "One agent", "parameters": [id_param()],
                    "responses": with_errors(json!({ "200": ok("The agent", agent.clone()) }))
                },
                "delete": {
                    "operationId": "removeAgent", "summary": "Remove an ended agent: its worktree, branch, runtime home and record (as `fracta rm`); 409 while it runs, or while its branch has work not on its base unless `force=true`",
                    "parameters": [id_param(), query("force", "boolean", "Remove it even with unmerged work on its branch")],
                    "responses": with_errors(json!({ "200": ok("The agent as it was", agent.clone()) }))
                }
            },
            "/v1/agents/{id}/merge": { "post": {
                "operationId": "mergeAgent", "summary": "Bring an ended agent's branch into the branch checked out in the project (as `fracta merge`); 409 while it runs, with a dirty work tree or on a conflict (then nothing is changed)",
                "parameters": [id_param()],
                "requestBody": body("MergeBody"),
                "responses": with_errors(json!({ "200": ok("The merge", schema_ref("MergeView")) }))
            } },
            "/v1/agents/{id}/events": { "get": {
                "operationId": "listEvents", "summary": "An agent's stored events, in order",
                "parameters": [
                    id_param(),
                    query("after", "integer", "Only events after this sequence number"),
                    query("limit", "integer", "At most this many (default 500)")
                ],
                "responses": with_errors(json!({ "200": ok("Events", events) }))
            } },
            "/v1/agents/{id}/events/stream": { "get": {
                "operationId": "streamEvents", "summary": "Follow an agent's events live until it ends (resumable with Last-Event-ID)",
                "parameters": [id_param(), query("after", "integer", "Start after this sequence number")],
                "responses": with_errors(json!({ "200": sse("The event stream") }))
            } },
            "/v1/agents/{id}/tree/events/stream": { "get": {
                "operationId": "streamTreeEvents", "summary": "Follow the events of an agent and all its descendants until all have ended (resumable with Last-Event-ID)",
                "parameters": [id_param()],
                "responses": with_errors(json!({ "200": sse("The event stream") }))
            } },
            "/v1/agents/{id}/stop": { "post": {
                "operationId": "stopAgent", "summary": "Stop an agent and its whole subtree",
                "parameters": [id_param()],
                "responses": with_errors(json!({ "200": ok("The agent as it ended", agent.clone()) }))
            } },
            "/v1/agents/{id}/send": { "post": {
                "operationId": "sendTurn", "summary": "The next turn of a live stream session (queued behind a turn in flight); waits for its end unless `wait: false`",
                "parameters": [id_param()],
                "requestBody": body("SendBody"),
                "responses": with_errors(json!({ "200": ok("The agent after the turn (its result is the turn's final message)", agent.clone()) }))
            } },
            "/v1/agents/{id}/steer": { "post": {
                "operationId": "steerTurn", "summary": "Add input to the turn in flight of a live Codex session (turn/steer); 409 for other runtimes, or with no turn in flight",
                "parameters": [id_param()],
                "requestBody": body("SteerBody"),
                "responses": with_errors(json!({ "200": ok("The agent (the turn goes on with the added input)", agent.clone()) }))
            } },
            "/v1/forest/stream": { "get": {
                "operationId": "streamForest", "summary": "Every agent live, for the dashboard's forest (never ends; resumable with Last-Event-ID)",
                "responses": with_errors(json!({ "200": { "description": "Server-Sent Events: `event: hello` first (`{\"resumed_from\": CURSOR|null}`); `event: agents` with a JSON array of ForestAgent: first every agent (oldest first, so parents come before their children), then those new or changed, one array per change (`id`: the newest `updated_at` sent, microseconds since the epoch); `event: removed` with the id of a deleted agent. Resumed with `Last-Event-ID`, `event: present` (every agent id, as a JSON array) comes before the agents updated since.", "content": { "text/event-stream": { "schema": { "type": "string" } } }, "x-event-schema": schema_ref("ForestAgent") } }))
            } },
            "/v1/agents/{id}/diff": { "get": {
                "operationId": "agentDiff", "summary": "What the agent's branch changed since its base (`git diff BASE...BRANCH`): a stat and one patch per file",
                "parameters": [id_param()],
                "responses": with_errors(json!({ "200": ok("The diff", schema_ref("DiffView")) }))
            } },
            "/v1/dashboard/codes": { "post": {
                "operationId": "createLoginCode", "summary": "A one-time dashboard login code (admin token only; `fracta dashboard` prints the URL with it)",
                "responses": with_errors(json!({ "201": ok("The code: it works once, within `expires_in_secs`", schema_ref("LoginCode")), "403": ok("Asked from a dashboard session", schema_ref("ApiErrorBody")) }))
            } },
            "/dashboard/session": {
                "post": {
                    "operationId": "dashboardLogin", "summary": "Trade a login code for an HttpOnly, SameSite=Strict session cookie (`fracta_session`) and its CSRF token", "security": [],
                    "requestBody": body("LoginBody"),
                    "responses": { "200": ok("The session's CSRF token (the cookie is set)", schema_ref("SessionView")), "401": ok("Unknown, used or expired code", schema_ref("ApiErrorBody")), "403": ok("Cross-origin request", schema_ref("ApiErrorBody")) }
                },
                "get": {
                    "operationId": "dashboardSession", "summary": "The CSRF token of the cookie's session (a reloaded page)", "security": [],
                    "responses": { "200": ok("The session", schema_ref("SessionView")), "401": ok("No session", schema_ref("ApiErrorBody")) }
                }
            },
            "/dashboard/logout": { "post": {
                "operationId": "dashboardLogout", "summary": "End the dashboard session (needs `X-CSRF-Token`)", "security": [],
                "responses": { "204": { "description": "Ended; the cookie is cleared" }, "401": ok("No session", schema_ref("ApiErrorBody")), "403": ok("No or wrong CSRF token", schema_ref("ApiErrorBody")) }
            } },
            "/v1/agents/{id}/resume": { "post": {
                "operationId": "resumeAgent", "summary": "Run a new turn of an ended agent's conversation (returns at once)",
                "parameters": [id_param()],
                "requestBody": body("ResumeBody"),
                "responses": with_errors(json!({ "200": ok("The agent", agent) }))
            } }
        },
        "components": {
            "schemas": Value::Object(schemas),
            "securitySchemes": { "admin": { "type": "http", "scheme": "bearer", "description": "The token in .fracta/serve.json" } }
        }
    })
}
