//! From the engine's types to the boundary types of `fracta-api` and back: the one place
//! that knows both.

use fracta_api::{
    AGENT_SCHEMA, AgentMode, AgentStatus, AgentView, EventView, ForestAgent, SpawnArgs, TokenUsage,
};
use fracta_config::{Budgets, Mode, Tier};
use fracta_core::credentials::RequestContext;
use fracta_core::resolve::SpawnRequest;
use fracta_state::{AgentRecord, EventRecord};

/// What a spawn request over HTTP carries for `http_header_token` origins: its headers (names
/// in lower case; a repeated header's last value), except `Authorization`, which holds Fracta's
/// own credential (the admin token on `/v1`, the calling agent's gateway token on `/mcp`) and
/// is never handed to an agent.
pub fn request_context(headers: &http::HeaderMap) -> RequestContext {
    let mut ctx = RequestContext::default();
    for (name, value) in headers {
        if name == http::header::AUTHORIZATION {
            continue;
        }
        if let Ok(v) = value.to_str() {
            ctx.headers.insert(name.as_str().to_string(), v.to_string());
        }
    }
    ctx
}

/// The view of a stored agent (never its prompt, process details or `meta`).
pub fn agent_view(a: &AgentRecord) -> AgentView {
    AgentView {
        schema: AGENT_SCHEMA.to_string(),
        id: a.id.clone(),
        parent_id: a.parent_id.clone(),
        root_id: a.root_id.clone(),
        depth: a.depth,
        task: a.task.clone(),
        runtime: a.runtime.clone(),
        adapter: a.adapter.clone(),
        mode: match a.mode {
            fracta_state::Mode::Batch => AgentMode::Batch,
            fracta_state::Mode::Stream => AgentMode::Stream,
        },
        model: a.model.clone(),
        status: status(a.status),
        resume_token: a.resume_token.clone(),
        workspace: a.workspace.clone(),
        branch: a.branch.clone(),
        changed_nothing: a.meta.unchanged_branch.is_some(),
        result: a.result.clone(),
        error: a.error.clone(),
        exit_code: a.exit_code,
        signal: a.signal,
        usage: TokenUsage {
            input_tokens: a.usage.input_tokens,
            output_tokens: a.usage.output_tokens,
            cached_tokens: a.usage.cached_tokens,
        },
        cost_usd: a.cost_usd.and_then(usd),
        created_at: a.created_at,
        started_at: a.started_at,
        ended_at: a.ended_at,
        updated_at: a.updated_at,
    }
}

/// An agent as the dashboard's forest shows it: its view, whether its live session waits for
/// input, and whether its runtime can be steered.
pub fn forest_agent(sup: &fracta_core::supervisor::Supervisor, a: &AgentRecord) -> ForestAgent {
    let steer =
        fracta_core::adapter::adapter_named(&a.adapter).is_some_and(|ad| ad.capabilities().steer);
    ForestAgent {
        agent: agent_view(a),
        waiting_for_input: sup.waiting_for_input(&a.id),
        has_session: sup.has_session(&a.id),
        steer_unsupported: (!steer).then(|| {
            format!(
                "{} runs {}: {}",
                a.id,
                a.adapter,
                fracta_core::adapter::STEER_UNSUPPORTED
            )
        }),
    }
}

/// The view of a status.
pub fn status(s: fracta_state::AgentStatus) -> AgentStatus {
    use fracta_state::AgentStatus as S;
    match s {
        S::Queued => AgentStatus::Queued,
        S::Starting => AgentStatus::Starting,
        S::Running => AgentStatus::Running,
        S::Succeeded => AgentStatus::Succeeded,
        S::Failed => AgentStatus::Failed,
        S::Stopped => AgentStatus::Stopped,
        S::Lost => AgentStatus::Lost,
    }
}

/// Dollars as the boundary writes them: exactly 6 decimals, no float noise.
pub fn usd(cost: f64) -> Option<String> {
    cost.is_finite().then(|| format!("{:.6}", cost + 0.0))
}

/// The view of a stored event.
pub fn event_view(e: &EventRecord) -> EventView {
    EventView {
        agent_id: e.agent_id.clone(),
        seq: e.seq,
        at: e.at,
        kind: e.kind.clone(),
        payload: e.payload.clone(),
        raw: e.raw.clone(),
        parsed: e.parsed,
    }
}

/// The runner's request and the budgets asked for, or a message naming what is valid.
pub fn spawn_request(args: &SpawnArgs) -> Result<(SpawnRequest, Budgets), String> {
    let tier = match args.tier.as_deref() {
        None => None,
        Some("heavy") => Some(Tier::Heavy),
        Some("medium") => Some(Tier::Medium),
        Some("light") => Some(Tier::Light),
        Some(other) => {
            return Err(format!(
                "unknown tier `{other}`; valid tiers: heavy, medium, light"
            ));
        }
    };
    let mode = match args.mode.as_deref() {
        None => None,
        Some("batch") => Some(Mode::Batch),
        Some("stream") => Some(Mode::Stream),
        Some(other) => {
            return Err(format!(
                "unknown mode `{other}`; valid modes: batch, stream"
            ));
        }
    };
    let req = SpawnRequest {
        task: args.task.clone(),
        prompt: args.prompt.clone(),
        runtime: args.runtime.clone(),
        tier,
        model: args.model.clone(),
        mode,
        parent_id: None,
        base: args.base.clone(),
    };
    let asked = Budgets {
        max_depth: args.max_depth,
        max_children: args.max_children,
        max_running: None,
        wall_clock_secs: args.wall_clock_secs,
    };
    Ok((req, asked))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn record() -> AgentRecord {
        let mut a = AgentRecord::new("t", "claude", "claude", fracta_state::Mode::Batch, "hi");
        a.created_at = "2026-01-02T03:04:05Z".parse().unwrap();
        a.updated_at = a.created_at;
        a
    }

    #[test]
    fn a_root_agent_has_every_key_with_null_for_the_empty_ones() {
        let a = record();
        let v = serde_json::to_value(agent_view(&a)).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "schema",
                "id",
                "parent_id",
                "root_id",
                "depth",
                "task",
                "runtime",
                "adapter",
                "mode",
                "model",
                "status",
                "resume_token",
                "workspace",
                "branch",
                "changed_nothing",
                "result",
                "error",
                "exit_code",
                "signal",
                "usage",
                "cost_usd",
                "created_at",
                "started_at",
                "ended_at",
                "updated_at",
            ]
        );
        assert_eq!(v["schema"], "fracta.agent.v1");
        assert!(v["parent_id"].is_null());
        assert_eq!(v["root_id"], a.id.as_str());
        assert!(v["cost_usd"].is_null());
        assert_eq!(v["status"], "queued");
        assert_eq!(v["mode"], "batch");
        assert_eq!(v["created_at"], "2026-01-02T03:04:05Z");
        // Never the prompt, process details or the untyped bag.
        for k in [
            "prompt",
            "pid",
            "runtime_home",
            "process_start",
            "host",
            "meta",
        ] {
            assert!(v.get(k).is_none(), "{k}");
        }
    }

    #[test]
    fn a_child_names_its_parent_and_root() {
        let root = record();
        let kid = record().with_parent(&root);
        let v = agent_view(&kid);
        assert_eq!(v.parent_id.as_deref(), Some(root.id.as_str()));
        assert_eq!(v.root_id, root.id);
        assert_eq!(v.depth, 1);
    }

    #[test]
    fn cost_is_a_decimal_string_with_six_places_and_no_float_noise() {
        assert_eq!(usd(0.1 * 3.0 * 0.001).as_deref(), Some("0.000300"));
        assert_eq!(usd(0.00030000000000000003).as_deref(), Some("0.000300"));
        assert_eq!(usd(0.0).as_deref(), Some("0.000000"));
        assert_eq!(usd(-0.0).as_deref(), Some("0.000000"));
        assert_eq!(usd(12.5).as_deref(), Some("12.500000"));
        assert_eq!(usd(f64::NAN), None);
        let mut a = record();
        a.cost_usd = Some(0.1 + 0.2);
        let v = serde_json::to_value(agent_view(&a)).unwrap();
        assert_eq!(v["cost_usd"], "0.300000");
    }

    #[test]
    fn the_view_reads_back_as_itself() {
        let mut a = record();
        a.cost_usd = Some(0.00042);
        a.status = fracta_state::AgentStatus::Succeeded;
        let v = agent_view(&a);
        let back: AgentView = serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn spawn_args_name_what_is_valid() {
        let bad = SpawnArgs {
            task: "t".into(),
            tier: Some("huge".into()),
            ..SpawnArgs::default()
        };
        assert!(
            spawn_request(&bad)
                .unwrap_err()
                .contains("heavy, medium, light")
        );
        let ok = SpawnArgs {
            task: "t".into(),
            mode: Some("stream".into()),
            max_depth: Some(2),
            ..SpawnArgs::default()
        };
        let (req, asked) = spawn_request(&ok).unwrap();
        assert_eq!(req.mode, Some(Mode::Stream));
        assert_eq!(asked.max_depth, Some(2));
    }
}
