//! `fracta serve`: the long-running control plane. It hosts the HTTP API and the MCP gateway on
//! one loopback address, writes `.fracta/serve.json` (URL, pid, admin token, mode 0600) so CLI
//! commands find it, reconciles agents a previous control plane left running, and on SIGINT or
//! SIGTERM (or SIGHUP) closes its idle stream sessions (they end recorded and resumable), stops the agents
//! it runs, busy sessions included (recorded as `stopped`), and removes the file. It holds a
//! lock on the project (`.fracta/serve.lock`) for its life: a second `serve` fails at once.
//!
//! Unlike the short-lived commands it runs a multi-threaded tokio runtime: it serves many
//! agents and clients at once, and a store call that blocks (a write waiting for another
//! process's lock on the database) then stalls only its own caller (see `fracta_state`).

use std::process::ExitCode;
use std::sync::Arc;

use fracta_config::LoadedConfig;
use fracta_core::event::Event;
use fracta_core::session::Shutdown;
use fracta_core::supervisor::Supervisor;
use fracta_server::discovery::{self, ServeInfo};

use super::agent::{new_runner, open_store};
use crate::cli::ServeArgs;

pub fn run(cfg: LoadedConfig, a: ServeArgs) -> anyhow::Result<ExitCode> {
    let fracta_dir = std::path::absolute(cfg.fracta_dir()).unwrap_or_else(|_| cfg.fracta_dir());
    // One control plane per project, before anything is touched: a second one would
    // overwrite the first's discovery file and remove it on exit. Held until we return.
    let _lock = discovery::lock(&fracta_dir)?;
    let store = open_store(&cfg)?;
    let runner = new_runner(cfg, store);
    // Agents a control plane (or a foreground spawn) left running when it died.
    match runner.reconcile() {
        Ok(lost) if !lost.is_empty() => {
            eprintln!(
                "reconciled {} agent(s) left running by a previous Fracta process: recorded as lost",
                lost.len()
            );
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("reconcile failed: {e}"),
    }
    let supervisor = Supervisor::new(Arc::new(runner));
    serve_runtime()?.block_on(async move {
        let token = fracta_core::secret::new_token()?;
        let server = fracta_server::start_control_plane_with_sessions(
            Arc::clone(&supervisor),
            a.listen,
            token.clone(),
            fracta_dir.join("dashboard-sessions.json"),
        )
        .await?;
        let url = format!("http://{}", server.addr);
        let pid = std::process::id();
        discovery::write(
            &fracta_dir,
            &ServeInfo {
                url: url.clone(),
                pid,
                token,
            },
        )?;
        tracing::info!(%url, "control plane listening");
        println!("fracta control plane listening on {url} (API: {url}/v1, MCP: {url}/mcp)");
        println!("discovery file: {}", discovery::path(&fracta_dir).display());
        println!("dashboard: run `fracta dashboard` for a login link");
        if !server.addr.ip().is_loopback() {
            eprintln!(
                "warning: listening on {}, not loopback: the API and the dashboard are reachable from the network, over plain HTTP",
                server.addr
            );
        }

        // Subscribed before any agent can start; drained of what is queued before the end.
        let (drain, drained) = tokio::sync::oneshot::channel();
        let logger = tokio::spawn(log_agents(
            Arc::clone(&supervisor),
            supervisor.subscribe(),
            drained,
        ));
        tokio::spawn(watch_config(Arc::clone(&supervisor)));

        // SIGINT, SIGTERM and SIGHUP all shut the control plane down.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        crate::signals::forward(Shutdown::Terminate("SIGINT"), move |s| {
            let _ = tx.send(s);
        })?;
        let why = rx.recv().await.unwrap_or(Shutdown::Terminate("SIGTERM"));
        supervisor.shut_down(why);
        eprintln!(
            "shutting down: closing stream sessions, stopping the agents this control plane runs"
        );
        discovery::remove_if_ours(&fracta_dir, pid);
        // Every run heard it: an idle session closes as its idle timeout would (resumable
        // later), a busy one is stopped.
        supervisor
            .close_sessions(std::time::Duration::from_secs(5))
            .await;
        for id in supervisor.live_ids() {
            if let Err(e) = supervisor.stop_tree(&id).await {
                tracing::warn!(agent = %id, "stop on shutdown failed: {e}");
            }
        }
        supervisor.wait_all().await;
        // Each agent's end is said before the process ends.
        let _ = drain.send(());
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), logger).await;
        server.shutdown().await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// How often the config file is looked at for a change.
const CONFIG_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// A line on stderr for a person watching `fracta serve`, with the local time.
fn say(msg: &str) {
    let now = jiff::Timestamp::now().strftime("%H:%M:%S").to_string();
    eprintln!("{now} {msg}");
}

/// Each agent's start, a session's close, and each end, as it happens: id, runtime, task, status and
/// why. Once `drain` fires, what is already queued is said, then it returns.
async fn log_agents(
    supervisor: Arc<Supervisor>,
    mut rx: tokio::sync::broadcast::Receiver<fracta_core::supervisor::AgentEvent>,
    mut drain: tokio::sync::oneshot::Receiver<()>,
) {
    use tokio::sync::broadcast::error::{RecvError, TryRecvError};
    let mut draining = false;
    loop {
        let next = if draining {
            match rx.try_recv() {
                Ok(ev) => Ok(ev),
                Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                Err(TryRecvError::Empty | TryRecvError::Closed) => return,
            }
        } else {
            tokio::select! {
                biased;
                r = rx.recv() => r,
                _ = &mut drain => {
                    draining = true;
                    continue;
                }
            }
        };
        let ev = match next {
            Ok(ev) => ev,
            Err(RecvError::Lagged(n)) => {
                tracing::debug!("the agent log skipped {n} events");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let Event::Status(st) = &ev.event else {
            continue;
        };
        let task = supervisor
            .runner
            .store
            .get_agent(&ev.agent_id)
            .map(|a| a.task)
            .unwrap_or_default();
        let who = format!("agent {} ({}, task {task})", ev.agent_id, ev.runtime);
        let detail = st.detail.as_deref().unwrap_or("");
        let line = match st.status.as_str() {
            "running" => format!("{who} started ({detail})"),
            "idle" => format!("{who}: {detail}"),
            other => {
                let why = if detail.is_empty() {
                    String::new()
                } else {
                    format!(": {}", first_line(detail))
                };
                format!("{who} ended {other}{why}")
            }
        };
        tracing::info!("{line}");
        say(&line);
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// Watch the config file (its contents, looked at every second): a valid change is used for
/// new spawns; an invalid one keeps the config in use, and says why (file:line:col).
async fn watch_config(supervisor: Arc<Supervisor>) {
    let path = supervisor.runner.cfg().path.clone();
    let mut last = std::fs::read_to_string(&path).ok();
    let mut tick = tokio::time::interval(CONFIG_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let now = std::fs::read_to_string(&path).ok();
        if now == last {
            continue;
        }
        last = now;
        match fracta_config::load_path(&path, fracta_config::Found::Flag) {
            Ok(cfg) => {
                crate::output::diagnostics(&cfg.warnings);
                supervisor.runner.set_config(cfg);
                tracing::info!(config = %path.display(), "config reloaded");
                say(&format!(
                    "{} changed: reloaded; new agents use it (running ones keep theirs)",
                    path.display()
                ));
            }
            Err(e) => {
                tracing::warn!(config = %path.display(), "changed config is invalid: {e}");
                say(&format!(
                    "{} changed, but is not valid: still using the config loaded before",
                    path.display()
                ));
                crate::output::diagnostics(&e.diagnostics());
            }
        }
    }
}

/// A multi-threaded runtime with a worker per CPU, and at least two.
fn serve_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?)
}
