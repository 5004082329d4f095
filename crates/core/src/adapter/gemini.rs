//! Gemini CLI over the Agent Client Protocol: `gemini --acp [--model M]`, the session spoken
//! by the ACP client (`acp`). Its workspace file `.gemini/settings.json` selects API-key auth,
//! switches off what reaches for the network on its own (auto-update, usage statistics,
//! telemetry) and, unless `project.allow_native_subagents`, its subagents; merged with the
//! runtime's `native_config`. Fracta's MCP gateway is handed over in `session/new`, with the
//! agent's token as a header, as for any ACP agent. The workspace is trusted through
//! `GEMINI_CLI_TRUST_WORKSPACE` (a headless Gemini CLI refuses an untrusted folder).

use std::collections::BTreeMap;

use fracta_config::AdapterKind;
use serde_json::{Value, json};

use super::{
    Adapter, AdapterError, EventParser, LaunchContext, StreamSession, acp, merge_json, ws,
};
use crate::launch::{FileSpec, LaunchSpec};

pub struct Gemini;

/// The settings file Fracta writes in the workspace.
pub const SETTINGS: &str = ".gemini/settings.json";

impl Gemini {
    pub fn settings(ctx: &LaunchContext<'_>) -> Value {
        let mut cfg = json!({
            "security": { "auth": { "selectedType": "gemini-api-key" } },
            "general": { "enableAutoUpdate": false, "enableAutoUpdateNotification": false },
            "privacy": { "usageStatisticsEnabled": false },
            "telemetry": { "enabled": false },
        });
        if let Some(native) = &ctx.runtime.native_config {
            merge_json(&mut cfg, native);
        }
        // Native subagents run outside Fracta's budgets: off unless the project allows them.
        if !ctx.project.allow_native_subagents {
            // `enableAgents: false` loads no agents, but 0.61 still offers the model its
            // `invoke_agent` tool: it is excluded too.
            merge_json(
                &mut cfg,
                &json!({
                    "experimental": { "enableAgents": false },
                    "tools": { "exclude": ["invoke_agent"] },
                }),
            );
        }
        cfg
    }
}

impl Adapter for Gemini {
    fn kind(&self) -> AdapterKind {
        AdapterKind::Gemini
    }

    fn capabilities(&self) -> super::Capabilities {
        acp::CAPABILITIES
    }

    fn binary(&self) -> &'static str {
        "gemini"
    }

    fn npm_package(&self) -> &'static str {
        "@google/gemini-cli"
    }

    fn tested_version(&self) -> &'static str {
        "0.61.0"
    }

    fn batch_launch(&self, ctx: &LaunchContext<'_>) -> Result<LaunchSpec, AdapterError> {
        let settings = serde_json::to_string_pretty(&Self::settings(ctx))
            .map_err(|e| AdapterError::Other(format!("cannot render {SETTINGS}: {e}")))?;
        let mut args = vec!["--acp".to_string()];
        if let Some(m) = ctx.model {
            args.extend(["--model".into(), m.to_string()]);
        }
        args.extend(ctx.runtime.args.iter().cloned());
        let env = BTreeMap::from([("GEMINI_CLI_TRUST_WORKSPACE".to_string(), "true".to_string())]);
        acp::launch(
            ctx,
            self.binary().into(),
            args,
            env,
            vec![FileSpec {
                path: ws(ctx, SETTINGS),
                contents: settings + "\n",
                in_workspace: true,
            }],
        )
    }

    fn stream_launch(&self, ctx: &LaunchContext<'_>) -> Result<LaunchSpec, AdapterError> {
        self.batch_launch(ctx)
    }

    fn stream_session(&self, resume_token: Option<&str>) -> Box<dyn StreamSession> {
        acp::session_for(resume_token, None)
    }

    fn session_for(
        &self,
        resume_token: Option<&str>,
        init: Option<&Value>,
    ) -> Box<dyn StreamSession> {
        acp::session_for(resume_token, init)
    }

    fn parser(&self) -> Box<dyn EventParser> {
        Box::new(acp::AcpSession::new(None, acp::AcpInit::default()))
    }
}
