//! The CLI's side of a running control plane: found through `.fracta/serve.json` and a health
//! check (a file left by a dead control plane is ignored), then spoken to over its HTTP API.
//! With no control plane running, commands work straight on the state store instead.

use std::time::Duration;

use eventsource_stream::Eventsource;
use fracta_api::{
    AgentView, ApiErrorBody, ErrorCode, EventView, Health, LoginCode, ResumeBody, SendBody,
    SpawnArgs, SteerBody,
};
use fracta_config::LoadedConfig;
use fracta_server::discovery;
use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::exit::{self, Failure};

/// How long a health check may take before the control plane counts as gone.
const HEALTH_TIMEOUT: Duration = Duration::from_millis(800);
/// How long one API call may take (a `send` waits for its turn, up to 600 s).
const CALL_TIMEOUT: Duration = Duration::from_secs(660);

pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

impl Client {
    /// The project's running control plane, if there is one that answers.
    pub fn discover(cfg: &LoadedConfig) -> Option<Client> {
        let info = discovery::read(&cfg.fracta_dir())?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        let http = reqwest::Client::builder().no_proxy().build().ok()?;
        let health: Health = rt.block_on(async {
            let r = http
                .get(format!("{}/v1/health", info.url))
                .timeout(HEALTH_TIMEOUT)
                .send()
                .await
                .ok()?;
            r.json().await.ok()
        })?;
        if !health.ok || health.pid != info.pid {
            return None;
        }
        Some(Client {
            base: info.url,
            token: info.token,
            http,
            rt,
        })
    }

    /// A control plane is required (e.g. `spawn --detach`): say how to start one.
    pub fn require(cfg: &LoadedConfig, what: &str) -> anyhow::Result<Client> {
        Self::discover(cfg).ok_or_else(|| {
            Failure::msg(
                exit::FAILURE,
                format!(
                    "{what} needs a running control plane, and none is running for {}; start one with `fracta serve` (in another terminal, or in the background: `fracta serve &`)",
                    cfg.dir.display()
                ),
            )
        })
    }

    async fn answer<T: DeserializeOwned>(r: reqwest::Response) -> anyhow::Result<T> {
        let status = r.status();
        if status.is_success() {
            return Ok(r.json().await?);
        }
        let (error_code, msg) = match r.json::<ApiErrorBody>().await {
            Ok(b) => (b.error.code, b.error.message),
            Err(_) => (
                ErrorCode::Internal,
                format!("the control plane answered {status}"),
            ),
        };
        let code = match status.as_u16() {
            400 | 409 | 422 => exit::USAGE,
            404 => exit::NOT_FOUND,
            _ => exit::FAILURE,
        };
        Err(Failure::api(code, error_code, msg))
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.rt.block_on(async {
            let r = self
                .http
                .get(format!("{}{path}", self.base))
                .bearer_auth(&self.token)
                .timeout(CALL_TIMEOUT)
                .send()
                .await?;
            Self::answer(r).await
        })
    }

    fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> anyhow::Result<T> {
        self.rt.block_on(async {
            let r = self
                .http
                .post(format!("{}{path}", self.base))
                .bearer_auth(&self.token)
                .json(body)
                .timeout(CALL_TIMEOUT)
                .send()
                .await?;
            Self::answer(r).await
        })
    }

    /// The control plane's URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A one-time dashboard login code.
    pub fn login_code(&self) -> anyhow::Result<LoginCode> {
        self.post("/v1/dashboard/codes", &serde_json::json!({}))
    }

    pub fn spawn(&self, args: &SpawnArgs) -> anyhow::Result<AgentView> {
        self.post("/v1/agents", args)
    }

    pub fn list(&self, all: bool) -> anyhow::Result<Vec<AgentView>> {
        self.get(&format!("/v1/agents?all={all}"))
    }

    pub fn agent(&self, id: &str) -> anyhow::Result<AgentView> {
        self.get(&format!("/v1/agents/{id}"))
    }

    pub fn stop(&self, id: &str) -> anyhow::Result<AgentView> {
        self.post(&format!("/v1/agents/{id}/stop"), &serde_json::json!({}))
    }

    pub fn resume(&self, id: &str, prompt: &str) -> anyhow::Result<AgentView> {
        self.post(
            &format!("/v1/agents/{id}/resume"),
            &ResumeBody {
                prompt: prompt.to_string(),
            },
        )
    }

    pub fn send(&self, id: &str, prompt: &str, wait: bool) -> anyhow::Result<AgentView> {
        self.post(
            &format!("/v1/agents/{id}/send"),
            &SendBody {
                prompt: prompt.to_string(),
                wait: Some(wait),
                timeout_secs: None,
            },
        )
    }

    pub fn steer(&self, id: &str, prompt: &str) -> anyhow::Result<AgentView> {
        self.post(
            &format!("/v1/agents/{id}/steer"),
            &SteerBody {
                prompt: prompt.to_string(),
            },
        )
    }

    /// Follow an agent's events (after `after`) until it ends; `on_event` sees each one in
    /// order. Returns the agent as it ended.
    pub fn follow(
        &self,
        id: &str,
        after: u64,
        on_event: &mut dyn FnMut(&EventView) -> anyhow::Result<()>,
    ) -> anyhow::Result<AgentView> {
        self.rt.block_on(async {
            let r = self
                .http
                .get(format!(
                    "{}/v1/agents/{id}/events/stream?after={after}",
                    self.base
                ))
                .bearer_auth(&self.token)
                .send()
                .await?;
            if !r.status().is_success() {
                return Self::answer::<AgentView>(r).await;
            }
            let mut events = r.bytes_stream().eventsource();
            while let Some(ev) = events.next().await {
                let ev = ev.map_err(|e| anyhow::anyhow!("the event stream broke: {e}"))?;
                if ev.event == "end" {
                    let mut records: Vec<AgentView> = serde_json::from_str(&ev.data)?;
                    return records
                        .pop()
                        .ok_or_else(|| anyhow::anyhow!("the event stream ended without a record"));
                }
                let e: EventView = serde_json::from_str(&ev.data)?;
                on_event(&e)?;
            }
            Err(anyhow::anyhow!(
                "the control plane closed the event stream before the agent ended"
            ))
        })
    }
}
