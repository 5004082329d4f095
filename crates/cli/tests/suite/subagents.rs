//! Native subagents (a CLI's own way to start agents, outside Fracta's budgets and records)
//! are kept from the model by default, for every runtime; `project.allow_native_subagents`
//! gives them back. Checked in what each real CLI offers the scripted model.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use fracta_model_server::Script;

use super::harness::Project;

/// The tools of the requests that carried the prompt (for Codex, its whole request: it names
/// the tool namespaces it defers in its instructions).
fn offered(p: &Project, runtime: &str) -> String {
    p.requests()
        .into_iter()
        .filter(|r| r.body.to_string().contains("say hi"))
        .map(|r| match runtime {
            "codex" => r.body.to_string(),
            _ => r
                .body
                .get("tools")
                .map(|t| t.to_string())
                .unwrap_or_default(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn run(runtime: &str, allow: bool) -> String {
    let p = Project::with_acp(Script::parse("fallback: hi\n", "t").unwrap(), "");
    if allow {
        let path = p.path().join("fracta.yaml");
        let text = std::fs::read_to_string(&path).unwrap().replace(
            "\nproject:\n",
            "\nproject:\n  allow_native_subagents: true\n",
        );
        std::fs::write(path, text).unwrap();
    }
    let (code, v) = p.spawn_json(&["--runtime", runtime, "--task", "t", "--prompt", "say hi"]);
    assert_eq!(code, 0, "{v:#}");
    let tools = offered(&p, runtime);
    assert!(!tools.is_empty(), "no request offered tools");
    tools
}

/// Each runtime's subagent tool as it appears in the tools of a model request.
fn subagent_tool(runtime: &str) -> &'static [&'static str] {
    match runtime {
        "claude" => &["\"name\":\"Task\"", "\"name\":\"Agent\""],
        // Codex lists tool namespaces it defers in its instructions, not in `tools`.
        "codex" => &["multi_agent", "spawn_agent"],
        "opencode" => &["\"name\":\"task\""],
        "gemini" => &["invoke_agent"],
        _ => unreachable!(),
    }
}

fn denied_by_default(runtime: &str, teeth: bool) {
    let tools = run(runtime, false);
    for t in subagent_tool(runtime) {
        assert!(
            !tools.contains(t),
            "{runtime} offered its subagent tool {t}: {tools}"
        );
    }
    if teeth {
        let tools = run(runtime, true);
        assert!(
            subagent_tool(runtime).iter().any(|t| tools.contains(t)),
            "{runtime} allowed subagents but offered none: {tools}"
        );
    }
}

#[test]
fn claude_is_not_offered_its_subagent_tool() {
    denied_by_default("claude", true);
}

#[test]
fn codex_is_not_offered_its_multi_agent_tools() {
    denied_by_default("codex", true);
}

#[test]
fn opencode_is_not_offered_its_task_tool() {
    denied_by_default("opencode", true);
}

#[test]
fn gemini_is_not_offered_its_invoke_agent_tool() {
    denied_by_default("gemini", true);
}
