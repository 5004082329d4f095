//! The published OpenAPI document: `docs/openapi.json` is exactly what the server serves, every
//! `$ref` in it resolves, and every route the server has is documented.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use serde_json::Value;

fn checked_in() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

/// Regenerate with `FRACTA_UPDATE_OPENAPI=1 cargo test -p fracta-server openapi`.
#[test]
fn docs_openapi_json_is_the_served_document() {
    let doc = fracta_server::openapi::document();
    let text = serde_json::to_string_pretty(&doc).unwrap() + "\n";
    if std::env::var_os("FRACTA_UPDATE_OPENAPI").is_some() {
        std::fs::write(checked_in(), &text).unwrap();
    }
    let on_disk = std::fs::read_to_string(checked_in()).unwrap_or_default();
    assert!(
        on_disk == text,
        "docs/openapi.json is out of date: run FRACTA_UPDATE_OPENAPI=1 cargo test -p fracta-server openapi"
    );
}

fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref" {
                    out.push(x.as_str().unwrap().to_string());
                } else {
                    refs(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

#[test]
fn every_ref_resolves_and_every_route_is_documented() {
    let doc = fracta_server::openapi::document();
    let mut all = vec![];
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in &all {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("external ref {r}"));
        assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
    }
    let paths = doc["paths"].as_object().unwrap();
    let source = include_str!("../../src/http.rs");
    for line in source.lines().filter(|l| l.contains(".route(\"")) {
        let path = line.split('"').nth(1).unwrap();
        assert!(
            paths.contains_key(path),
            "route {path} is not in the OpenAPI document"
        );
    }
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        assert!(schema.is_object(), "{name}");
    }
    let agent = &doc["components"]["schemas"]["AgentView"];
    assert!(agent["properties"]["status"].is_object());
    assert!(doc["components"]["schemas"].get("AgentRecord").is_none());
}

/// List and show answer the agent view: every key required (null when empty), the schema
/// version pinned, money a string.
#[test]
fn list_and_show_answer_the_agent_view() {
    let doc = fracta_server::openapi::document();
    let show = &doc["paths"]["/v1/agents/{id}"]["get"]["responses"]["200"]["content"]["application/json"]
        ["schema"];
    assert_eq!(show["$ref"], "#/components/schemas/AgentView");
    let list = &doc["paths"]["/v1/agents"]["get"]["responses"]["200"]["content"]["application/json"]
        ["schema"];
    assert_eq!(list["items"]["$ref"], "#/components/schemas/AgentView");
    let agent = &doc["components"]["schemas"]["AgentView"];
    let props: Vec<&String> = agent["properties"].as_object().unwrap().keys().collect();
    let required: Vec<&str> = agent["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for p in &props {
        assert!(required.contains(&p.as_str()), "{p} is not required");
    }
    assert_eq!(agent["properties"]["schema"]["const"], "fracta.agent.v1");
    assert_eq!(
        agent["properties"]["cost_usd"]["type"],
        serde_json::json!(["string", "null"])
    );
    let error = &doc["components"]["schemas"]["ErrorDetail"];
    assert!(error["properties"]["code"].is_object(), "{error:#}");
}
