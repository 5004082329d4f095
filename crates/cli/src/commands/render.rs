//! `fracta render`: the Kubernetes objects a spawn would create, for review.

use std::process::ExitCode;
use std::sync::Arc;

use fracta_config::LoadedConfig;
use fracta_core::runner::Runner;
use fracta_kube::RenderError;

use super::agent::{open_store, run_failure, spawn_request};
use crate::cli::SpawnArgs;
use crate::exit::{self, Failure};

pub fn run(cfg: LoadedConfig, a: SpawnArgs) -> anyhow::Result<ExitCode> {
    if a.detach {
        return Err(Failure::msg(
            exit::USAGE,
            "`fracta render` starts nothing, so --detach means nothing to it",
        ));
    }
    let json = a.json;
    // The namespace a spawn would use (fracta.yaml, else the kubeconfig's context).
    let namespace = fracta_kube::client::resolve_namespace(cfg.config.runtime.kubernetes.as_ref());
    let store = open_store(&cfg)?;
    let cfg = Arc::new(cfg);
    let runner = Runner::new(Arc::clone(&cfg), store);
    let prepared = runner.prepare(&spawn_request(a)).map_err(run_failure)?;
    // Under a control plane in the cluster (FRACTA_GATEWAY_URL set), an agent that may spawn
    // children gets the gateway; its token is a Secret reference here.
    let budgets = cfg.config.agents.budgets;
    let gateway = std::env::var(fracta_kube::run::GATEWAY_URL_ENV)
        .ok()
        .filter(|u| !u.is_empty() && budgets.max_depth() > 0 && budgets.max_children() > 0)
        .map(|url| fracta_core::launch::Gateway {
            url,
            token: String::new(),
        });
    let rendered =
        fracta_kube::render::render_with(&cfg, &prepared.agent, &namespace, gateway.as_ref())
            .map_err(|e| match e {
                RenderError::Refused(_)
                | RenderError::Credentials { .. }
                | RenderError::Profile(_) => Failure::msg(exit::USAGE, e.to_string()),
                other => anyhow::Error::new(other),
            })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rendered.to_list()?)?);
    } else {
        print!("{}", rendered.to_yaml()?);
    }
    Ok(ExitCode::SUCCESS)
}
