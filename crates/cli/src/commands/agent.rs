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
use fracta_core::workspace;
use fracta_server::convert::{agent_view, event_view};
use fracta_state::{AgentFilter, AgentRecord, Store};

use super::client::Client;
use crate::cli::{
    IdArgs, LogsArgs, ModeArg, PsArgs, ResumeArgs, SendArgs, SpawnArgs, SteerArgs, TierArg,
};
use crate::exit::{self, Failure};
use crate::output::{self, BOLD, DIM, GREEN, RED, YELLOW};
use crate::view;

pub fn open_store(cfg: &LoadedConfig) -> anyhow::Result<Arc<dyn Store>> {
    let sc = fracta_state::StateConfig::sqlite(cfg.state_path());
    fracta_state::open_store(&sc).map_err(|e| anyhow::anyhow!("cannot open the state store: {e}"))
}

/// A one-shot command's state store, left to the process's exit instead of closed: its WAL is
/// kept and closing checkpoints nothing (`fracta_state`), so SQLite's close only frees its
/// memory and unmaps and closes what the exit does (~0.1 ms of a `spawn`). What is on disk is
/// the same either way, and a store left open by a process that ended is what SQLite expects.
fn leave_open(store: Arc<dyn Store>) {
    std::mem::forget(store);
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

/// The live view: one line per event, the same events on a terminal as in a pipe. On a
/// terminal the lines are coloured and cut to its width, under a spinner with the elapsed
/// time and the latest step; in a pipe they are plain and whole.
struct LiveView {
    terminal: bool,
    spinner: Option<indicatif::ProgressBar>,
    width: Option<usize>,
    colour: bool,
    /// A stream session run in this terminal: between turns the spinner stops and a prompt
    /// shows, and a typed line is not shown again as the session's prompt.
    session: Option<Typed>,
    /// The prompt is the last thing on screen (the cursor is after it).
    prompted: bool,
}

/// The lines typed into a stream session in this terminal, until the session records them.
#[derive(Clone)]
struct Typed {
    root: String,
    /// Whether stdin is a terminal (which shows what is typed, and wants a prompt).
    typing: bool,
    lines: Arc<std::sync::Mutex<std::collections::VecDeque<String>>>,
}

impl Typed {
    fn push(&self, line: &str) {
        if self.typing
            && let Ok(mut l) = self.lines.lock()
        {
            l.push_back(line.to_string());
        }
    }

    /// Whether `text` is the next line typed here (which the terminal showed already).
    fn take(&self, text: &str) -> bool {
        let Ok(mut l) = self.lines.lock() else {
            return false;
        };
        if l.front().is_some_and(|t| t == text) {
            l.pop_front();
            return true;
        }
        false
    }
}

impl LiveView {
    fn new() -> Self {
        let mut v = LiveView {
            terminal: std::io::stdout().is_terminal(),
            spinner: None,
            width: view::width(),
            colour: view::colour(),
            session: None,
            prompted: false,
        };
        v.spin();
        v
    }

    /// Start the spinner (on a terminal), unless it runs.
    fn spin(&mut self) {
        if !self.terminal || self.spinner.is_some() {
            return;
        }
        self.prompted = false;
        let template = if self.colour {
            "{spinner:.cyan} {t:.dim} {wide_msg}"
        } else {
            "{spinner} {t} {wide_msg}"
        };
        let style = indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner())
            .with_key(
                "t",
                |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:>6}", view::duration(s.elapsed().as_secs()));
                },
            );
        // On stdout, where the lines go: the spinner is there only when stdout is a terminal.
        let pb =
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stdout())
                .with_style(style);
        pb.enable_steady_tick(Duration::from_millis(100));
        self.spinner = Some(pb);
    }

    /// Stop the spinner and clear its line (the end of a run, or of a session's turn).
    fn finish(&mut self) {
        if let Some(s) = self.spinner.take() {
            s.finish_and_clear();
        }
        if std::mem::take(&mut self.prompted) {
            let _ = writeln!(anstream::stdout().lock());
        }
    }

    /// Print a line above the spinner (or plainly).
    fn print(&self, line: &str) {
        match &self.spinner {
            Some(s) => s.println(line),
            None => {
                let _ = writeln!(anstream::stdout().lock(), "{line}");
            }
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
        let Some(session) = self.session.clone() else {
            self.line(&e.runtime, &e.agent_id, &e.event);
            return;
        };
        let root = e.agent_id == session.root;
        if let Event::Message(m) = &e.event
            && m.role == fracta_core::event::Role::User
            && root
        {
            self.spin();
            if session.take(&m.text) {
                return;
            }
        }
        self.line(&e.runtime, &e.agent_id, &e.event);
        // A turn's usage is its last word: the session waits for the next line.
        if root && matches!(e.event, Event::Usage(_)) {
            self.finish();
            if session.typing {
                let mut out = anstream::stdout().lock();
                let _ = write!(out, "{}", view::paint(self.colour, view::MAGENTA, PROMPT));
                let _ = out.flush();
                self.prompted = true;
            }
        }
    }

    /// One event: its line (see `view::event_line`), and on a terminal the spinner's step.
    fn line(&mut self, runtime: &str, agent_id: &str, event: &Event) {
        let prefix = format!("[{runtime} {}] ", short(agent_id));
        if let Some(s) = &self.spinner {
            let step = match event {
                Event::Step(_) => Some("thinking".to_string()),
                Event::Runtime(_) | Event::Unknown(_) => None,
                other => view::event_line(other).map(|l| l.text),
            };
            if let Some(step) = step {
                let room = self.width.map(|w| w.saturating_sub(10));
                s.set_message(view::fit_opt(&format!("{prefix}{step}"), room).into_owned());
            }
        }
        let Some(l) = view::event_line(event) else {
            return;
        };
        let room = self
            .width
            .map(|w| w.saturating_sub(view::columns(&prefix)).max(10));
        let text = view::fit_opt(&l.text, room);
        let line = format!(
            "{}{}",
            view::paint(self.colour, DIM, &prefix),
            view::paint(self.colour, l.style, &text)
        );
        self.print(&line);
    }
}

/// What an ended agent's branch changed, for the end-of-run summary.
enum Changes {
    /// Its branch changed nothing (or, having changed nothing, was not kept).
    Nothing,
    Changed {
        stat: workspace::DiffStat,
        branch: String,
    },
}

/// Where to look for an agent's changes: the project folder and the base branch it defaults to.
struct Review {
    dir: std::path::PathBuf,
    default_base: Option<String>,
}

impl Review {
    fn of(cfg: &LoadedConfig) -> Review {
        Review {
            dir: cfg.project_dir(),
            default_base: cfg.config.project.default_base_branch.clone(),
        }
    }

    /// What the agent's branch changed since it left its base; `None` when it has no branch
    /// (no git repository, Kubernetes) or git could not say.
    fn changes(&self, rec: &AgentRecord) -> Option<Changes> {
        let branch = rec.branch.as_deref()?;
        if !workspace::branch_exists(&self.dir, branch) {
            return Some(Changes::Nothing);
        }
        let base = rec
            .meta
            .base
            .as_deref()
            .or(self.default_base.as_deref())
            .unwrap_or("main");
        let stat = workspace::diff_stat(&self.dir, base, branch).ok()?;
        Some(if stat.files == 0 {
            Changes::Nothing
        } else {
            Changes::Changed {
                stat,
                branch: branch.to_string(),
            }
        })
    }
}

/// The end-of-run summary: the outcome, the final message, what changed and how to review
/// it, the workspace, tokens and how to continue.
fn print_outcome(a: &AgentView, changes: Option<&Changes>) {
    let mut out = anstream::stdout().lock();
    let (style, word) = match a.status {
        Status::Succeeded => (GREEN, "succeeded"),
        Status::Stopped => (YELLOW, "stopped"),
        _ => (RED, status_name(a.status)),
    };
    let took = match (a.started_at, a.ended_at) {
        (Some(s), Some(e)) => format!(
            ", {}",
            view::duration(e.duration_since(s).as_secs().max(0).unsigned_abs())
        ),
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "{style}{word}{style:#}  agent {} ({} on {}{took})",
        a.id, a.task, a.runtime
    );
    if let Some(r) = &a.result {
        let _ = writeln!(out, "\n{r}\n");
    }
    if let Some(e) = &a.error {
        let _ = writeln!(out, "{RED}error{RED:#}: {e}");
    }
    let short = short(&a.id);
    match changes {
        Some(Changes::Changed { stat, branch }) => {
            let files = if stat.files == 1 { "file" } else { "files" };
            let _ = writeln!(
                out,
                "{BOLD}changed{BOLD:#}    {} {files}, {GREEN}+{}{GREEN:#} {RED}\u{2212}{}{RED:#} on {branch}",
                stat.files, stat.added, stat.removed
            );
            let _ = writeln!(
                out,
                "review     fracta diff {short}  ·  merge: fracta merge {short}"
            );
        }
        Some(Changes::Nothing) => {
            let _ = writeln!(out, "{BOLD}no changes{BOLD:#}");
        }
        None if a.changed_nothing => {
            let _ = writeln!(out, "{BOLD}no changes{BOLD:#}");
            let _ = writeln!(out, "{DIM}branch     none kept (nothing to review){DIM:#}");
        }
        None => {
            if let Some(b) = &a.branch {
                let _ = writeln!(out, "branch     {b}");
            }
        }
    }
    if let Some(w) = &a.workspace {
        let _ = writeln!(out, "{DIM}workspace  {w}{DIM:#}");
    }
    let _ = writeln!(
        out,
        "{DIM}tokens     {} in / {} out / {} cached{}{DIM:#}",
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
            "{DIM}continue   fracta resume {short} --prompt \"...\"{DIM:#}"
        );
    }
}

/// What agent `id` changed, for the summary (none with `--json`).
fn changes_of(cfg: &LoadedConfig, id: &str, json: bool) -> Option<Changes> {
    if json {
        return None;
    }
    let rec = open_store(cfg).ok()?.get_agent(id).ok()?;
    Review::of(cfg).changes(&rec)
}

fn report(a: &AgentView, json: bool, changes: Option<&Changes>) -> anyhow::Result<ExitCode> {
    if json {
        output::json(a)?;
    } else {
        print_outcome(a, changes);
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
    let review = Review::of(&cfg);
    let kube = kube_remote(&cfg);
    // A local agent's request is resolved first (exit 2 on a bad one), and its workspace made
    // on a thread of its own while the store opens and the gateway starts.
    let early = match kube {
        Some(_) => None,
        None => {
            let prepared = fracta_core::resolve::prepare(&cfg, None, &req).map_err(run_error)?;
            let early = fracta_core::runner::EarlyWorkspace::start(&cfg, &prepared.agent)?;
            Some((prepared, early))
        }
    };
    let t0 = std::time::Instant::now();
    let store = open_store(&cfg)?;
    tracing::debug!(ms = t0.elapsed().as_secs_f64() * 1e3, "state store opened");
    let runner = Runner::new(Arc::new(cfg), store);
    // Check the request before anything starts (exit 2 on a bad one). Every spawn, local or
    // on Kubernetes, then goes through the supervisor: budgets, gateway, recording.
    let prepared = match early {
        Some((prepared, early)) => {
            runner.set_early_workspace(early);
            Some(prepared)
        }
        None => {
            runner.prepare(&req).map_err(run_error)?;
            None
        }
    };
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
    let store = Arc::clone(&supervisor.runner.store);
    let agent = rt.block_on(async move {
        // Ctrl-C stops the tree; SIGTERM and SIGHUP (the terminal closed) end it too.
        let sup = Arc::clone(&supervisor);
        crate::signals::forward(Shutdown::Interrupt, move |s| sup.shut_down(s))?;
        // This spawn hosts the MCP gateway for the life of its agent tree.
        let gateway =
            fracta_server::start(Arc::clone(&supervisor), ([127, 0, 0, 1], 0).into()).await?;
        // Live events only for the terminal's view (`--json` prints the record at the end).
        let events = (!json).then(|| supervisor.subscribe());
        let root = match prepared {
            Some(prepared) => supervisor.spawn_prepared(prepared, &Budgets::default()),
            None => supervisor.spawn(&Caller::User, req, &Budgets::default()),
        }
        .map_err(control_error)?;
        // Agents recorded as running whose Fracta process is gone are recorded as lost. Not
        // first: the launch runs until it waits for the CLI's output, then this does (~0.2
        // ms of the store), while the CLI starts.
        let sup = Arc::clone(&supervisor);
        tokio::spawn(async move {
            let _ = sup.runner.reconcile();
        });
        // A stream session in the terminal: each line on stdin is the next turn; end of input
        // (Ctrl-D) closes the session once its last turn is done.
        let session = (root.mode == fracta_state::Mode::Stream).then(|| Typed {
            root: root.id.clone(),
            typing: std::io::stdin().is_terminal(),
            lines: Arc::default(),
        });
        let turns = session.clone().map(|typed| {
            let sup = Arc::clone(&supervisor);
            let id = root.id.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncBufReadExt;
                let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if line.trim().is_empty() {
                        continue;
                    }
                    typed.push(&line);
                    if let Err(e) = sup.send(&Caller::User, &id, &line, None).await {
                        output::warning(&e.to_string());
                        break;
                    }
                }
                sup.close_session(&id);
            })
        });
        let view = events.map(|mut events| {
            tokio::spawn(async move {
                let mut view = LiveView::new();
                view.session = session;
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
    let agent = agent?;
    let changes = if json { None } else { review.changes(&agent) };
    leave_open(store);
    report(&agent_view(&agent), json, changes.as_ref())
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
    cfg: &LoadedConfig,
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
    if let Some(mut v) = view {
        v.finish();
    }
    report(&done, json, changes_of(cfg, &done.id, json).as_ref())
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

/// The last six characters of an id: what the live view shows, and what every command takes.
pub(crate) fn short(id: &str) -> &str {
    id.get(id.len().saturating_sub(6)..).unwrap_or(id)
}

/// Whether a running stream session waits for its next turn: its last turn has ended (a
/// turn's usage is recorded when it ends) since the last prompt it was sent.
fn waiting_for_input(store: &dyn Store, a: &AgentView) -> bool {
    if a.status != Status::Running || a.mode != fracta_api::AgentMode::Stream {
        return false;
    }
    let Ok(count) = store.event_count(&a.id) else {
        return false;
    };
    let Ok(events) = store.events(&a.id, count.saturating_sub(500), Some(500)) else {
        return false;
    };
    let last_prompt = events
        .iter()
        .rev()
        .find(|e| e.kind == "message" && e.payload["role"] == "user")
        .map(|e| e.at);
    let last_turn_end = store.usage(&a.id).ok().and_then(|u| u.last().map(|u| u.at));
    match (last_prompt, last_turn_end) {
        (Some(p), Some(t)) => t >= p,
        (None, Some(_)) => true,
        (_, None) => false,
    }
}

/// A session's recent turns, from its stored events: the last `n` prompts, each with the
/// replies it got.
fn recent_turns(store: &dyn Store, id: &str, upto: u64, n: usize) -> Vec<(String, Vec<String>)> {
    let mut turns: Vec<(String, Vec<String>)> = Vec::new();
    let mut after = upto.saturating_sub(5000);
    while let Ok(batch) = store.events(id, after, Some(500)) {
        for e in &batch {
            after = e.seq;
            if e.seq > upto {
                break;
            }
            if let Ok(Event::Message(m)) = serde_json::from_value::<Event>(e.payload.clone()) {
                match m.role {
                    fracta_core::event::Role::User => turns.push((m.text, Vec::new())),
                    fracta_core::event::Role::Assistant => match turns.last_mut() {
                        Some(t) => t.1.push(m.text),
                        None => turns.push((String::new(), vec![m.text])),
                    },
                }
            }
        }
        if batch.len() < 500 || after >= upto {
            break;
        }
    }
    let skip = turns.len().saturating_sub(n);
    turns.split_off(skip)
}

/// The prompt `attach` shows when the session waits for input.
const PROMPT: &str = "you> ";

/// Print the recent turns of a session, as `attach` shows them first.
fn print_history(turns: &[(String, Vec<String>)], width: Option<usize>, colour: bool) {
    if turns.is_empty() {
        return;
    }
    let mut out = anstream::stdout().lock();
    let rule = view::paint(colour, DIM, "── recent turns ──");
    let _ = writeln!(out, "{rule}");
    for (prompt, replies) in turns {
        if !prompt.is_empty() {
            let text = view::one_line(prompt);
            let text = view::fit_opt(&text, width.map(|w| w.saturating_sub(PROMPT.len())));
            let _ = writeln!(
                out,
                "{}{}",
                view::paint(colour, view::MAGENTA, PROMPT),
                text
            );
        }
        for r in replies {
            let lines: Vec<&str> = r.lines().collect();
            const MAX: usize = 12;
            for l in lines.iter().take(MAX) {
                let _ = writeln!(out, "{}", view::fit_opt(l, width));
            }
            if lines.len() > MAX {
                let more = format!("… ({} more lines)", lines.len() - MAX);
                let _ = writeln!(out, "{}", view::paint(colour, DIM, &more));
            }
        }
    }
    let _ = writeln!(out, "{}", view::paint(colour, DIM, "──"));
}

/// What `attach`'s main loop hears.
enum Heard {
    Event(fracta_api::EventView),
    End(Box<anyhow::Result<AgentView>>),
    /// A line typed (and about to be sent as a turn).
    Line(String),
    /// End of input (Ctrl-D).
    Eof,
    /// Ctrl-C, or the terminal closed.
    Signal,
}

/// `fracta attach`: the session's recent turns, then its live view; each line typed is its
/// next turn. Ctrl-C, or the end of input once no turn is in flight, detaches and leaves the
/// session running.
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
                short(&agent.id)
            ),
        ));
    }
    let store = open_store(&cfg)?;
    let id = agent.id.clone();
    let sid = short(&id).to_string();
    let typing = std::io::stdin().is_terminal();
    eprintln!(
        "attached to {sid} ({} on {}): type a prompt and press Enter; Ctrl-C detaches and leaves it running",
        agent.task, agent.runtime
    );
    // Where the view starts, counted before any typed line can be sent: a line sent first
    // could be recorded before the count, and its turn would not be shown.
    let after = store.event_count(&id)?;
    let width = view::width();
    let colour = view::colour();
    print_history(&recent_turns(store.as_ref(), &id, after, 3), width, colour);
    let mut idle = waiting_for_input(store.as_ref(), &agent);

    let (tx, rx) = std::sync::mpsc::channel::<Heard>();
    // Signals: heard on a runtime of their own, registered before anything can be typed.
    let rt = runtime()?;
    let signals = {
        let _in_rt = rt.enter();
        use tokio::signal::unix::{SignalKind, signal};
        [
            signal(SignalKind::interrupt())?,
            signal(SignalKind::hangup())?,
            signal(SignalKind::terminate())?,
        ]
    };
    let to_main = tx.clone();
    std::thread::spawn(move || {
        let [mut int, mut hup, mut term] = signals;
        rt.block_on(async {
            tokio::select! {
                _ = int.recv() => {}
                _ = hup.recv() => {}
                _ = term.recv() => {}
            }
        });
        let _ = to_main.send(Heard::Signal);
    });
    // The session's events, until it ends.
    let to_main = tx.clone();
    let follow_id = id.clone();
    std::thread::spawn(move || {
        let end = client.follow(&follow_id, after, &mut |e| {
            let _ = to_main.send(Heard::Event(e.clone()));
            Ok(())
        });
        let _ = to_main.send(Heard::End(Box::new(end)));
    });
    // Turns go in from another thread, each with its own connection, without waiting.
    let sender = Client::require(&cfg, "`fracta attach`")?;
    let send_id = id.clone();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if line.trim().is_empty() {
                continue;
            }
            let _ = tx.send(Heard::Line(line.clone()));
            if let Err(e) = sender.send(&send_id, &line, false) {
                output::warning(&e.to_string());
            }
        }
        let _ = tx.send(Heard::Eof);
    });

    let mut view = LiveView::new();
    let prompt = |colour: bool| {
        let mut out = anstream::stdout().lock();
        let _ = write!(out, "{}", view::paint(colour, view::MAGENTA, PROMPT));
        let _ = out.flush();
    };
    if idle {
        view.finish();
        if typing {
            prompt(colour);
        }
    }
    // Typed lines not yet seen back as the session's prompt: the terminal showed them already.
    let mut typed: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    let mut eof = false;
    let detached = |view: &mut LiveView| {
        view.finish();
        eprintln!("\ndetached from {sid}; the session goes on (attach again: fracta attach {sid})");
        Ok(ExitCode::SUCCESS)
    };
    while let Ok(heard) = rx.recv() {
        match heard {
            Heard::Signal => return detached(&mut view),
            Heard::Eof => {
                eof = true;
                if idle {
                    return detached(&mut view);
                }
            }
            Heard::Line(l) => {
                idle = false;
                if typing {
                    typed.push_back(l);
                }
                view.spin();
            }
            Heard::Event(e) => {
                let Ok(ev) = serde_json::from_value::<Event>(e.payload.clone()) else {
                    continue;
                };
                if let Event::Message(m) = &ev
                    && m.role == fracta_core::event::Role::User
                {
                    idle = false;
                    view.spin();
                    if typed.front() == Some(&m.text) {
                        typed.pop_front();
                        continue;
                    }
                }
                view.line(&agent.runtime, &e.agent_id, &ev);
                // A turn's usage is its last word: the session waits for the next one.
                if matches!(ev, Event::Usage(_)) && e.agent_id == id {
                    idle = true;
                    view.finish();
                    if eof {
                        return detached(&mut view);
                    }
                    if typing {
                        prompt(colour);
                    }
                }
            }
            Heard::End(done) => {
                view.finish();
                if typing && idle {
                    println!();
                }
                let done = (*done)?;
                return report(&done, false, changes_of(&cfg, &done.id, false).as_ref());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn resume(cfg: LoadedConfig, a: ResumeArgs) -> anyhow::Result<ExitCode> {
    if let Some(client) = Client::discover(&cfg) {
        let before = client.agent(&a.id)?;
        let seq = open_store(&cfg)?.event_count(&before.id)?;
        client.resume(&before.id, &a.prompt)?;
        return follow_remote(&cfg, &client, &before, seq, a.json);
    }
    let review = Review::of(&cfg);
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
    let changes = if a.json { None } else { review.changes(&agent) };
    report(&agent_view(&agent), a.json, changes.as_ref())
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
    let status = if waiting_for_input(store.as_ref(), &agent_view(&agent)) {
        "running (waiting for input)".to_string()
    } else {
        agent.status.as_str().to_string()
    };
    field(&mut out, "status", Some(status));
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

/// The word `ps` shows for an agent's state.
fn state_word(a: &AgentView, waiting: bool) -> &'static str {
    if waiting {
        "waiting for input"
    } else {
        status_name(a.status)
    }
}

/// One row of `ps`, before it is fitted to the width.
struct PsRow {
    id: String,
    state: &'static str,
    style: anstyle::Style,
    age: String,
    runtime: String,
    task: String,
    summary: String,
}

/// The columns `ps` shows, in order; the last one (SUMMARY) takes what is left.
#[derive(Clone, Copy, PartialEq)]
enum Col {
    Id,
    State,
    Age,
    Runtime,
    Task,
    Summary,
}

impl Col {
    fn header(self) -> &'static str {
        match self {
            Col::Id => "ID",
            Col::State => "STATE",
            Col::Age => "AGE",
            Col::Runtime => "RUNTIME",
            Col::Task => "TASK",
            Col::Summary => "SUMMARY",
        }
    }

    fn of(self, r: &PsRow) -> &str {
        match self {
            Col::Id => &r.id,
            Col::State => r.state,
            Col::Age => &r.age,
            Col::Runtime => &r.runtime,
            Col::Task => &r.task,
            Col::Summary => &r.summary,
        }
    }
}

/// The columns and their widths for `rows` in `width` columns: each as wide as its widest
/// cell; past the width the task is narrowed (to 12) and the summary takes the rest; when
/// too narrow still, the summary, then the runtime, then the age are left out.
fn ps_layout(rows: &[PsRow], width: Option<usize>) -> Vec<(Col, usize)> {
    let natural = |c: Col| {
        rows.iter()
            .map(|r| view::columns(c.of(r)))
            .chain([c.header().len()])
            .max()
            .unwrap_or(0)
    };
    let mut cols: Vec<(Col, usize)> = [
        Col::Id,
        Col::State,
        Col::Age,
        Col::Runtime,
        Col::Task,
        Col::Summary,
    ]
    .into_iter()
    .map(|c| (c, natural(c)))
    .collect();
    let total = |cols: &[(Col, usize)]| {
        cols.iter().map(|(_, w)| w).sum::<usize>() + cols.len().saturating_sub(1) * 2
    };
    // A pipe gets whole cells, and so does a terminal wide enough.
    let Some(width) = width else {
        return cols;
    };
    if total(&cols) <= width {
        return cols;
    }
    // Runtime names beyond 12 columns are cut (with an ellipsis) before anything goes.
    for (c, w) in cols.iter_mut() {
        if *c == Col::Runtime {
            *w = (*w).min(12);
        }
    }
    for drop in [None, Some(Col::Summary), Some(Col::Runtime), Some(Col::Age)] {
        if let Some(d) = drop {
            cols.retain(|(c, _)| *c != d);
        }
        if total(&cols) <= width {
            return cols;
        }
        // The task gets a third of what is left (at least 12 columns), the summary the rest
        // (at least 16).
        let fixed: usize = cols
            .iter()
            .filter(|(c, _)| !matches!(c, Col::Task | Col::Summary))
            .map(|(_, w)| w)
            .sum::<usize>()
            + cols.len().saturating_sub(1) * 2;
        let has_summary = cols.iter().any(|(c, _)| *c == Col::Summary);
        let left = width.saturating_sub(fixed);
        let task_natural = cols
            .iter()
            .find(|(c, _)| *c == Col::Task)
            .map_or(0, |(_, w)| *w);
        let task = if has_summary {
            task_natural.min((left / 3).max(12))
        } else {
            task_natural.min(left)
        };
        let summary = left.saturating_sub(task);
        if task >= 4.min(task_natural) && (!has_summary || summary >= 16) {
            for (c, w) in cols.iter_mut() {
                match c {
                    Col::Task => *w = task,
                    Col::Summary => *w = summary,
                    _ => {}
                }
            }
            return cols;
        }
    }
    cols
}

pub fn ps(cfg: LoadedConfig, a: PsArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(&cfg)?;
    let mut agents: Vec<AgentView> = match Client::discover(&cfg) {
        Some(c) => c.list(true)?,
        None => {
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
    // Roots in list order, each followed by its descendants (indented under it).
    let ids: std::collections::HashSet<&str> = agents.iter().map(|x| x.id.as_str()).collect();
    let mut order: Vec<(&AgentView, usize)> = Vec::new();
    fn walk<'a>(
        all: &'a [AgentView],
        a: &'a AgentView,
        depth: usize,
        order: &mut Vec<(&'a AgentView, usize)>,
    ) {
        order.push((a, depth));
        for c in all
            .iter()
            .filter(|c| c.parent_id.as_deref() == Some(a.id.as_str()))
        {
            walk(all, c, depth + 1, order);
        }
    }
    for r in agents
        .iter()
        .filter(|x| x.parent_id.as_deref().is_none_or(|p| !ids.contains(p)))
    {
        walk(&agents, r, 0, &mut order);
    }
    let now = jiff::Timestamp::now();
    let rows: Vec<PsRow> = order
        .iter()
        .map(|(a, depth)| {
            let waiting = waiting_for_input(store.as_ref(), a);
            let style = match a.status {
                _ if waiting => YELLOW,
                Status::Succeeded => GREEN,
                Status::Failed | Status::Lost => RED,
                Status::Stopped => YELLOW,
                Status::Running | Status::Starting => view::CYAN,
                Status::Queued => DIM,
            };
            let summary = a
                .error
                .as_deref()
                .or(a.result.as_deref())
                .map(view::one_line)
                .unwrap_or_default();
            PsRow {
                id: format!("{}{}", "  ".repeat(*depth), short(&a.id)),
                state: state_word(a, waiting),
                style,
                age: view::age(
                    now.duration_since(a.created_at)
                        .as_secs()
                        .max(0)
                        .unsigned_abs(),
                ),
                runtime: a.runtime.clone(),
                task: a.task.clone(),
                summary,
            }
        })
        .collect();
    let width = view::width();
    let colour = view::colour();
    let cols = ps_layout(&rows, width);
    let mut out = anstream::stdout().lock();
    let cell = |w: usize, text: &str, last: bool| -> String {
        let text = view::fit(text, w);
        let pad = if last {
            0
        } else {
            w.saturating_sub(view::columns(&text))
        };
        format!("{text}{}", " ".repeat(pad))
    };
    let n = cols.len();
    let header: Vec<String> = cols
        .iter()
        .enumerate()
        .map(|(i, (c, w))| cell(*w, c.header(), i + 1 == n))
        .collect();
    let _ = writeln!(
        out,
        "{}",
        view::paint(colour, BOLD, header.join("  ").trim_end())
    );
    for r in &rows {
        let line: Vec<String> = cols
            .iter()
            .enumerate()
            .map(|(i, (c, w))| {
                let text = cell(*w, c.of(r), i + 1 == n);
                match c {
                    Col::State => view::paint(colour, r.style, &text),
                    Col::Age => view::paint(colour, DIM, &text),
                    _ => text,
                }
            })
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
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
    let width = view::width();
    let colour = view::colour();
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
            let prefix = format!("{:>5} {} ", e.seq, e.at.strftime("%H:%M:%S"));
            let line = serde_json::from_value::<Event>(e.payload.clone())
                .map(|ev| view::log_line(&ev))
                .unwrap_or_else(|_| view::EventLine {
                    style: DIM,
                    text: e.payload.to_string(),
                });
            let room = width.map(|w| w.saturating_sub(prefix.len()).max(10));
            let text = view::fit_opt(&line.text, room);
            // Colour was chosen above: nothing to strip.
            writeln!(
                out,
                "{}{}",
                view::paint(colour, DIM, &prefix),
                view::paint(colour, line.style, &text)
            )?;
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
