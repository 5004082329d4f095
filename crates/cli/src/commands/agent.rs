//! `spawn`, `resume`, `stop`, `ps`, `show` and `logs`.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use fracta_api::AgentStatus as Status;
use fracta_api::AgentView;
use fracta_config::Budgets;
use fracta_config::{LoadedConfig, Mode, Tier};
use fracta_core::error::RunError;
use fracta_core::event::Event;
use fracta_core::record::Observer;
use fracta_core::resolve::SpawnRequest;
use fracta_core::runner::Runner;
use fracta_core::session::{RunOptions, Shutdown};
use fracta_core::supervisor::{Caller, ControlError, Supervisor};
use fracta_server::convert::{agent_view, event_view};
use fracta_state::{AgentFilter, AgentRecord, Store};

use super::client::Client;
use crate::cli::{
    IdArgs, LogsArgs, ModeArg, PsArgs, ResumeArgs, SendArgs, SpawnArgs, SteerArgs, TierArg,
};
use crate::exit::{self, Failure};
use crate::output::{self, DIM, GREEN, RED, YELLOW};

pub fn open_store(cfg: &LoadedConfig) -> anyhow::Result<Arc<dyn Store>> {
    let sc = fracta_state::StateConfig::sqlite(cfg.state_path());
    fracta_state::open_store(&sc).map_err(|e| anyhow::anyhow!("cannot open the state store: {e}"))
}

/// The Kubernetes backend, when `runtime.backend` asks for it (it connects on first use).
fn kube_remote(cfg: &LoadedConfig) -> Option<Arc<fracta_kube::run::KubeRemote>> {
    (cfg.config.runtime.backend == fracta_config::Backend::Kubernetes).then(|| {
        Arc::new(fracta_kube::run::KubeRemote::new(
            cfg.config.runtime.kubernetes.clone(),
        ))
    })
}

/// The runner, with the Kubernetes backend behind it when `runtime.backend` asks for it.
pub fn new_runner(cfg: LoadedConfig, store: Arc<dyn Store>) -> Runner {
    let kube = kube_remote(&cfg);
    let runner = Runner::new(Arc::new(cfg), store);
    if let Some(kube) = kube {
        runner.set_remote(kube);
    }
    runner
}

/// The short-lived commands' runtime: current-thread, as starting worker threads would cost
/// every command start-up time (`fracta serve` has a multi-threaded one of its own).
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// A status's name, as `--json` writes it.
fn status_name(s: Status) -> &'static str {
    match s {
        Status::Queued => "queued",
        Status::Starting => "starting",
        Status::Running => "running",
        Status::Succeeded => "succeeded",
        Status::Failed => "failed",
        Status::Stopped => "stopped",
        Status::Lost => "lost",
    }
}

/// Whether an agent with this status has ended (a resume may start it again).
fn has_ended(s: Status) -> bool {
    matches!(
        s,
        Status::Succeeded | Status::Failed | Status::Stopped | Status::Lost
    )
}

fn status_code(a: &AgentView) -> u8 {
    match a.status {
        Status::Succeeded => 0,
        Status::Stopped => exit::STOPPED,
        _ => exit::FAILURE,
    }
}

fn run_error(e: RunError) -> anyhow::Error {
    match e {
        RunError::Usage(m) => Failure::msg(exit::USAGE, m),
        RunError::Task(t @ fracta_core::task::TaskError::NotFound { .. }) => {
            Failure::msg(exit::NOT_FOUND, t.to_string())
        }
        RunError::Task(t) => Failure::msg(exit::USAGE, t.to_string()),
        RunError::Store(s) if s.is_not_found() => Failure::msg(exit::NOT_FOUND, s.to_string()),
        other => anyhow::Error::new(other),
    }
}

/// Long enough to mean "until it ends" (a year), short enough not to overflow a deadline.
const FOREVER: Duration = Duration::from_secs(365 * 24 * 3600);

fn control_error(e: ControlError) -> anyhow::Error {
    match e {
        ControlError::Run(r) => run_error(r),
        other => anyhow::Error::new(other),
    }
}

/// `fracta mcp`: the MCP tools over stdio for a person's own client; agents it starts reach
/// the gateway over HTTP on loopback.
pub fn mcp_stdio(cfg: LoadedConfig) -> anyhow::Result<ExitCode> {
    let store = open_store(&cfg)?;
    let runner = new_runner(cfg, store);
    let _ = runner.reconcile();
    let supervisor = Supervisor::new(Arc::new(runner));
    runtime()?.block_on(async move {
        let sup = Arc::clone(&supervisor);
        crate::signals::forward(Shutdown::Terminate("SIGINT"), move |s| sup.shut_down(s))?;
        let gateway =
            fracta_server::start(Arc::clone(&supervisor), ([127, 0, 0, 1], 0).into()).await?;
        fracta_server::serve_stdio(Arc::clone(&supervisor)).await?;
        // The client went away: let the agents it started finish.
        supervisor.wait_all().await;
        gateway.shutdown().await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The live view: a spinner with the current step on a terminal, plain lines otherwise.
struct LiveView {
    spinner: Option<indicatif::ProgressBar>,
}

impl LiveView {
    fn new() -> Self {
        let spinner = std::io::stdout().is_terminal().then(|| {
            let pb = indicatif::ProgressBar::new_spinner();
            pb.enable_steady_tick(Duration::from_millis(100));
            pb
        });
        LiveView { spinner }
    }

    fn finish(&self) {
        if let Some(s) = &self.spinner {
            s.finish_and_clear();
        }
    }
}

impl Observer for LiveView {
    fn on_event(&mut self, agent: &AgentRecord, _seq: u64, event: &Event) {
        self.line(&agent.runtime, &agent.id, event);
    }
}

impl LiveView {
    /// Show one event of any agent in the tree.
    fn show(&mut self, e: &fracta_core::supervisor::AgentEvent) {
        self.line(&e.runtime, &e.agent_id, &e.event);
    }

    /// One event: on a terminal, messages, tool calls and errors stay on screen and the rest
    /// is the spinner's current step; otherwise one plain line each.
    fn line(&mut self, runtime: &str, agent_id: &str, event: &Event) {
        if matches!(event, Event::Runtime(_) | Event::Unknown(_)) {
            return;
        }
        let short = &agent_id[agent_id.len().saturating_sub(6)..];
        let line = event.summary();
        match &self.spinner {
            Some(s) => {
                if matches!(
                    event,
                    Event::Message(_) | Event::ToolCall(_) | Event::Error(_)
                ) {
                    s.println(format!("  [{runtime} {short}] {line}"));
                }
                s.set_message(format!("[{runtime} {short}] {line}"));
            }
            None => {
                let _ = writeln!(std::io::stdout().lock(), "[{runtime} {short}] {line}");
            }
        }
    }
}

fn print_outcome(a: &AgentView) {
    let mut out = anstream::stdout().lock();
    let (style, word) = match a.status {
        Status::Succeeded => (GREEN, "succeeded"),
        Status::Stopped => (YELLOW, "stopped"),
        _ => (RED, status_name(a.status)),
    };
    let _ = writeln!(
        out,
        "{style}{word}{style:#}  agent {} ({} on {})",
        a.id, a.task, a.runtime
    );
    if let Some(r) = &a.result {
        let _ = writeln!(out, "\n{r}\n");
    }
    if let Some(e) = &a.error {
        let _ = writeln!(out, "{RED}error{RED:#}: {e}");
    }
    let _ = writeln!(
        out,
        "{DIM}{}{}  ·  tokens {} in / {} out / {} cached{}{DIM:#}",
        match a.workspace.as_deref() {
            Some(w) => format!("workspace {w}"),
            None if a.changed_nothing => "changed nothing: no branch kept".to_string(),
            None => "workspace -".to_string(),
        },
        a.branch
            .as_deref()
            .map(|b| format!(" (branch {b})"))
            .unwrap_or_default(),
        a.usage.input_tokens,
        a.usage.output_tokens,
        a.usage.cached_tokens,
        a.cost_usd
            .as_deref()
            .and_then(|c| c.parse::<f64>().ok())
            .map(|c| format!("  ·  ${c:.4}"))
            .unwrap_or_default(),
    );
    if a.status != Status::Running && a.resume_token.is_some() {
        let _ = writeln!(
            out,
            "{DIM}continue with: fracta resume {} --prompt \"...\"{DIM:#}",
            a.id
        );
    }
}

fn report(a: &AgentView, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        output::json(a)?;
    } else {
        print_outcome(a);
    }
    match status_code(a) {
        0 => Ok(ExitCode::SUCCESS),
        code => Err(Failure::reported(code)),
    }
}

/// What `spawn` (and `render`) asks for; warns about the deprecated `--host-type`.
pub fn spawn_request(a: SpawnArgs) -> SpawnRequest {
    let runtime_name = match (a.runtime, a.host_type) {
        (Some(r), _) => Some(r),
        (None, Some(h)) => {
            output::warning("--host-type is deprecated; use --runtime");
            Some(h)
        }
        (None, None) => None,
    };
    SpawnRequest {
        task: a.task.unwrap_or_default(),
        prompt: a.prompt,
        runtime: runtime_name,
        tier: a.tier.map(|t| match t {
            TierArg::Heavy => Tier::Heavy,
            TierArg::Medium => Tier::Medium,
            TierArg::Light => Tier::Light,
        }),
        model: a.model,
        mode: a.mode.map(|m| match m {
            ModeArg::Batch => Mode::Batch,
            ModeArg::Stream => Mode::Stream,
        }),
        parent_id: None,
        base: a.base,
    }
}

pub fn run_failure(e: RunError) -> anyhow::Error {
    run_error(e)
}

pub fn spawn(cfg: LoadedConfig, a: SpawnArgs) -> anyhow::Result<ExitCode> {
    if a.detach {
        return spawn_detached(&cfg, a);
    }
    let json = a.json;
    let req = spawn_request(a);
    let store = open_store(&cfg)?;
    let kube = kube_remote(&cfg);
    let runner = Runner::new(Arc::new(cfg), store);
    let _ = runner.reconcile();
    // Check the request before anything starts (exit 2 on a bad one). Every spawn, local or
    // on Kubernetes, then goes through the supervisor: budgets, gateway, recording.
    runner.prepare(&req).map_err(run_error)?;
    let rt = runtime()?;
    if let Some(kube) = &kube {
        // No cluster to talk to is a clear error before anything is recorded.
        rt.block_on(kube.connect()).map_err(|e| {
            Failure::msg(
                exit::FAILURE,
                format!("{e}\n  = help: runtime.backend is kubernetes: Fracta needs a kubeconfig (or to run in a Pod); set runtime.kubernetes.context to pick a context"),
            )
        })?;
    }
    if let Some(kube) = kube {
        runner.set_remote(kube);
    }
    let supervisor = Supervisor::new(Arc::new(runner));
    let agent = rt.block_on(async move {
        // Ctrl-C stops the tree; SIGTERM and SIGHUP (the terminal closed) end it too.
        let sup = Arc::clone(&supervisor);
        crate::signals::forward(Shutdown::Interrupt, move |s| sup.shut_down(s))?;
        // This spawn hosts the MCP gateway for the life of its agent tree.
        let gateway =
            fracta_server::start(Arc::clone(&supervisor), ([127, 0, 0, 1], 0).into()).await?;
        let mut events = supervisor.subscribe();
        let root = supervisor
            .spawn(&Caller::User, req, &Budgets::default())
            .map_err(control_error)?;
        // A stream session in the terminal: each line on stdin is the next turn; end of input
        // (Ctrl-D) closes the session once its last turn is done.
        let turns = (root.mode == fracta_state::Mode::Stream).then(|| {
            let sup = Arc::clone(&supervisor);
            let id = root.id.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncBufReadExt;
                let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if line.trim().is_empty() {
                        continue;
                    }
                    if let Err(e) = sup.send(&Caller::User, &id, &line, None).await {
                        output::warning(&e.to_string());
                        break;
                    }
                }
                sup.close_session(&id);
            })
        });
        let view = (!json).then(|| {
            tokio::spawn(async move {
                let mut view = LiveView::new();
                loop {
                    match events.recv().await {
                        Ok(e) => view.show(&e),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    }
                }
                view.finish();
            })
        });
        let done = supervisor
            .wait(&root.id, FOREVER)
            .await
            .map_err(control_error)?;
        if let Some(t) = turns {
            t.abort();
        }
        supervisor.wait_all().await;
        gateway.shutdown().await;
        if let Some(v) = view {
            v.abort();
            let _ = v.await;
        }
        // The record as it ended (a child may have been stopped after the root returned).
        let done = supervisor.runner.store.get_agent(&done.id).unwrap_or(done);
        anyhow::Ok(done)
    });
    // A stream session's stdin reader may still be blocked on a terminal that sends nothing:
    // do not wait for it.
    rt.shutdown_background();
    report(&agent_view(&agent?), json)
}

/// `spawn --detach`: the running control plane starts and keeps the agent; print its id.
fn spawn_detached(cfg: &LoadedConfig, a: SpawnArgs) -> anyhow::Result<ExitCode> {
    let client = Client::require(cfg, "`fracta spawn --detach`")?;
    if a.host_type.is_some() {
        output::warning("--host-type is deprecated; use --runtime");
    }
    let args = fracta_api::SpawnArgs {
        task: a.task.unwrap_or_default(),
        prompt: a.prompt,
        runtime: a.runtime.or(a.host_type),
        tier: a.tier.map(|t| {
            match t {
                TierArg::Heavy => "heavy",
                TierArg::Medium => "medium",
                TierArg::Light => "light",
            }
            .to_string()
        }),
        model: a.model,
        mode: a.mode.map(|m| {
            match m {
                ModeArg::Batch => "batch",
                ModeArg::Stream => "stream",
            }
            .to_string()
        }),
        base: a.base,
        ..fracta_api::SpawnArgs::default()
    };
    let agent = client.spawn(&args)?;
    if a.json {
        output::json(&agent)?;
    } else {
        println!(
            "started agent {} ({} on {}); follow it with `fracta logs {} --follow`",
            agent.id, agent.task, agent.runtime, agent.id
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Follow an agent run by the control plane to its end, as a foreground command would.
fn follow_remote(
    client: &Client,
    agent: &AgentView,
    after: u64,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let mut view = (!json).then(LiveView::new);
    let done = client.follow(&agent.id, after, &mut |e| {
        if let Some(v) = view.as_mut()
            && let Ok(ev) = serde_json::from_value::<Event>(e.payload.clone())
        {
            v.line(&agent.runtime, &e.agent_id, &ev);
        }
        Ok(())
    })?;
    if let Some(v) = view {
        v.finish();
    }
    report(&done, json)
}

/// `fracta send`: the next turn of a stream session that the control plane runs.
pub fn send(cfg: LoadedConfig, a: SendArgs) -> anyhow::Result<ExitCode> {
    let client = Client::require(&cfg, "`fracta send`")?;
    let agent = client.send(&a.id, &a.prompt, !a.no_wait)?;
    if a.no_wait {
        if a.json {
            output::json(&agent)?;
        } else {
            println!("turn queued for agent {}", agent.id);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if a.json {
        output::json(&agent)?;
    } else {
        println!("{}", agent.result.as_deref().unwrap_or(""));
    }
    // How the turn went is kept with the record, not in the agent's view.
    let ok = open_store(&cfg)?
        .get_agent(&agent.id)
        .ok()
        .and_then(|r| r.meta.last_turn_ok);
    match ok {
        Some(false) => Err(Failure::reported(exit::FAILURE)),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// `fracta steer`: input for the turn in flight of a Codex session the control plane runs.
pub fn steer(cfg: LoadedConfig, a: SteerArgs) -> anyhow::Result<ExitCode> {
    let agent = open_store(&cfg)?
        .get_agent(&a.id)
        .map_err(|e| run_error(e.into()))?;
    if !fracta_core::adapter::adapter_named(&agent.adapter).is_some_and(|x| x.capabilities().steer)
    {
        return Err(Failure::msg(
            exit::USAGE,
            format!(
                "{} (agent {} runs {})",
                fracta_core::adapter::STEER_UNSUPPORTED,
                agent.id,
                agent.adapter
            ),
        ));
    }
    let client = Client::require(&cfg, "`fracta steer`")?;
    let agent = client.steer(&agent.id, &a.prompt)?;
    if a.json {
        output::json(&agent)?;
    } else {
        println!("steered the turn in flight of agent {}", agent.id);
    }
    Ok(ExitCode::SUCCESS)
}

/// `fracta attach`: type turns into a session the control plane runs and watch it live.
pub fn attach(cfg: LoadedConfig, a: IdArgs) -> anyhow::Result<ExitCode> {
    let client = Client::require(&cfg, "`fracta attach`")?;
    let agent = client.agent(&a.id)?;
    if has_ended(agent.status) {
        return Err(Failure::msg(
            exit::USAGE,
            format!(
                "agent {} has ended ({}); resume it with `fracta resume {} --prompt ...`",
                agent.id,
                status_name(agent.status),
                agent.id
            ),
        ));
    }
    eprintln!(
        "attached to {} ({} on {}): type a line to send it; Ctrl-C detaches and leaves it running",
        agent.id, agent.task, agent.runtime
    );
    // Where the view starts, counted before any typed line can be sent: a line sent first
    // could be recorded before the count, and its turn would not be shown.
    let after = open_store(&cfg)?.event_count(&agent.id)?;
    // Turns go in from another thread, each with its own connection, without waiting.
    let sender = Client::require(&cfg, "`fracta attach`")?;
    let id = agent.id.clone();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if line.trim().is_empty() {
                continue;
            }
            if let Err(e) = sender.send(&id, &line, false) {
                output::warning(&e.to_string());
            }
        }
    });
    follow_remote(&client, &agent, after, false)
}

pub fn resume(cfg: LoadedConfig, a: ResumeArgs) -> anyhow::Result<ExitCode> {
    if let Some(client) = Client::discover(&cfg) {
        let before = client.agent(&a.id)?;
        let seq = open_store(&cfg)?.event_count(&before.id)?;
        client.resume(&before.id, &a.prompt)?;
        return follow_remote(&client, &before, seq, a.json);
    }
    let store = open_store(&cfg)?;
    let runner = new_runner(cfg, store);
    let rt = runtime()?;
    let agent = rt.block_on(async {
        let opts = RunOptions {
            shutdown: Some(crate::signals::watch(Shutdown::Interrupt)?),
            ..RunOptions::default()
        };
        let r = if a.json {
            runner
                .resume_with(&a.id, &a.prompt, &opts, &mut fracta_core::record::Quiet)
                .await
        } else {
            let mut view = LiveView::new();
            let r = runner.resume_with(&a.id, &a.prompt, &opts, &mut view).await;
            view.finish();
            r
        };
        anyhow::Ok(r.map_err(run_error)?)
    })?;
    report(&agent_view(&agent), a.json)
}

pub fn stop(cfg: LoadedConfig, a: IdArgs) -> anyhow::Result<ExitCode> {
    let client = Client::discover(&cfg);
    let store = open_store(&cfg)?;
    let runner = new_runner(cfg, store);
    let before = runner
        .store
        .get_agent(&a.id)
        .map_err(|e| run_error(e.into()))?;
    // A running control plane owns its agents' processes: it stops them.
    let agent = match client {
        Some(c) => c.stop(&before.id)?,
        None => agent_view(
            &runtime()?
                .block_on(runner.stop_tree(&before.id))
                .map_err(run_error)?,
        ),
    };
    if a.json {
        output::json(&agent)?;
    } else if before.status.is_terminal() {
        println!(
            "agent {} had already ended ({})",
            agent.id,
            status_name(agent.status)
        );
    } else {
        println!(
            "stopped agent {} ({} on {})",
            agent.id, agent.task, agent.runtime
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn show(cfg: LoadedConfig, a: IdArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(&cfg)?;
    let runner = new_runner(cfg, store.clone());
    let _ = runner.reconcile();
    let agent = store.get_agent(&a.id).map_err(|e| run_error(e.into()))?;
    if a.json {
        output::json(&agent_view(&agent))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    let field = |out: &mut std::io::StdoutLock<'_>, k: &str, v: Option<String>| {
        if let Some(v) = v {
            let _ = writeln!(out, "{k:<13} {v}");
        }
    };
    field(&mut out, "id", Some(agent.id.clone()));
    field(&mut out, "status", Some(agent.status.as_str().to_string()));
    field(&mut out, "task", Some(agent.task.clone()));
    field(
        &mut out,
        "runtime",
        Some(format!("{} ({})", agent.runtime, agent.adapter)),
    );
    field(&mut out, "mode", Some(agent.mode.as_str().to_string()));
    field(&mut out, "model", agent.model.clone());
    field(&mut out, "parent", agent.parent_id.clone());
    field(&mut out, "resume token", agent.resume_token.clone());
    field(&mut out, "workspace", agent.workspace.clone());
    field(&mut out, "branch", agent.branch.clone());
    field(
        &mut out,
        "branch",
        agent
            .meta
            .unchanged_branch
            .as_ref()
            .map(|b| format!("none: it changed nothing, so {b} and its worktree were removed")),
    );
    field(&mut out, "created", Some(agent.created_at.to_string()));
    field(&mut out, "ended", agent.ended_at.map(|t| t.to_string()));
    field(
        &mut out,
        "exit code",
        agent.exit_code.map(|c| c.to_string()),
    );
    field(
        &mut out,
        "usage",
        Some(format!(
            "{} in, {} out, {} cached{}",
            agent.usage.input_tokens,
            agent.usage.output_tokens,
            agent.usage.cached_tokens,
            agent
                .cost_usd
                .map(|c| format!(", ${c:.6}"))
                .unwrap_or_default()
        )),
    );
    field(
        &mut out,
        "events",
        Some(store.event_count(&agent.id)?.to_string()),
    );
    field(&mut out, "error", agent.error.clone());
    field(&mut out, "result", agent.result.clone());
    Ok(ExitCode::SUCCESS)
}

pub fn ps(cfg: LoadedConfig, a: PsArgs) -> anyhow::Result<ExitCode> {
    let mut agents: Vec<AgentView> = match Client::discover(&cfg) {
        Some(c) => c.list(true)?,
        None => {
            let store = open_store(&cfg)?;
            let runner = new_runner(cfg, store.clone());
            let _ = runner.reconcile();
            let records = store.list_agents(&AgentFilter::default())?;
            records.iter().map(agent_view).collect()
        }
    };
    if !a.all {
        let day_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24);
        agents.retain(|x| !has_ended(x.status) || x.updated_at > day_ago);
    }
    if a.json {
        output::json(&agents)?;
        return Ok(ExitCode::SUCCESS);
    }
    if agents.is_empty() {
        println!(
            "no agents{}",
            if a.all {
                ""
            } else {
                " in the last day (--all for older ones)"
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = anstream::stdout().lock();
    let _ = writeln!(
        out,
        "{:<28} {:<10} {:<10} {:<20} {:<8} SUMMARY",
        "ID", "STATUS", "RUNTIME", "TASK", "AGE"
    );
    // Roots in list order, each followed by its descendants.
    let ids: std::collections::HashSet<&str> = agents.iter().map(|x| x.id.as_str()).collect();
    let roots: Vec<&AgentView> = agents
        .iter()
        .filter(|x| x.parent_id.as_deref().is_none_or(|p| !ids.contains(p)))
        .collect();
    fn walk<'a>(out: &mut dyn Write, all: &'a [AgentView], a: &'a AgentView, depth: usize) {
        let (style, _) = match a.status {
            Status::Succeeded => (GREEN, ()),
            Status::Failed | Status::Lost => (RED, ()),
            Status::Stopped => (YELLOW, ()),
            _ => (anstyle::Style::new(), ()),
        };
        let age = jiff::Timestamp::now()
            .duration_since(a.created_at)
            .as_secs();
        let age = if age < 120 {
            format!("{age}s")
        } else if age < 7200 {
            format!("{}m", age / 60)
        } else {
            format!("{}h", age / 3600)
        };
        let summary = a
            .error
            .as_deref()
            .or(a.result.as_deref())
            .unwrap_or("")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let summary: String = summary.chars().take(60).collect();
        let id = format!("{}{}", "  ".repeat(depth), a.id);
        let status = format!("{style}{:<10}{style:#}", status_name(a.status));
        let _ = writeln!(
            out,
            "{id:<28} {status} {:<10} {:<20} {age:<8} {summary}",
            a.runtime, a.task
        );
        for c in all
            .iter()
            .filter(|c| c.parent_id.as_deref() == Some(a.id.as_str()))
        {
            walk(out, all, c, depth + 1);
        }
    }
    for r in roots {
        walk(&mut out, &agents, r, 0);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn logs(cfg: LoadedConfig, a: LogsArgs) -> anyhow::Result<ExitCode> {
    let client = if a.follow {
        Client::discover(&cfg)
    } else {
        None
    };
    let store = open_store(&cfg)?;
    let runner = new_runner(cfg, store.clone());
    let _ = runner.reconcile();
    let agent = store.get_agent(&a.id).map_err(|e| run_error(e.into()))?;
    let print = |e: &fracta_api::EventView| -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        if a.raw {
            // The runtime's own lines (kept on the first event each line yielded).
            if let Some(r) = &e.raw {
                writeln!(out, "{r}")?;
            }
        } else if a.json {
            serde_json::to_writer(&mut out, e)?;
            writeln!(out)?;
        } else {
            let text = serde_json::from_value::<Event>(e.payload.clone())
                .map(|ev| ev.summary())
                .unwrap_or_else(|_| e.payload.to_string());
            writeln!(out, "{:>5} {} {text}", e.seq, e.at.strftime("%H:%M:%S"))?;
        }
        Ok(())
    };
    // Following an agent of a running control plane: its event stream, which ends with it.
    if let Some(c) = client {
        c.follow(&agent.id, 0, &mut |e| print(e))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut after = 0u64;
    loop {
        let batch = store.events(&agent.id, after, Some(500))?;
        for e in &batch {
            after = e.seq;
            print(&event_view(e))?;
        }
        if batch.len() == 500 {
            continue;
        }
        if !a.follow {
            break;
        }
        let now = store.get_agent(&agent.id)?;
        if now.status.is_terminal() && store.events(&agent.id, after, Some(1))?.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        let _ = runner.reconcile();
    }
    Ok(ExitCode::SUCCESS)
}
