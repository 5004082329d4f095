//! `project.setup`: the commands run in a new worktree before its agent starts (`npm ci`),
//! in order, each with `sh -c` in its own process group and a timeout. Each is recorded as a
//! `setup` tool call and its result (the output's tail, redacted like every event), so
//! `fracta logs` shows it; the first that fails is why the agent fails before it starts.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fracta_config::SetupCommand;
use fracta_state::AgentRecord;
use serde_json::json;
use tokio::io::AsyncReadExt;

use crate::backend::local;
use crate::error::RunError;
use crate::event::{Event, ToolCallEvent, ToolResultEvent};
use crate::record::{Observer, Recorder};
use crate::session::{Shutdown, ShutdownWatch};

/// The tool name setup commands are recorded under.
pub const SETUP_TOOL: &str = "setup";
/// How much of a command's output is recorded (its end: where errors are).
const OUTPUT_TAIL_BYTES: usize = 8 * 1024;
/// How many lines of output a failure's message carries.
const FAILURE_TAIL_LINES: usize = 15;

/// How often a running command looks whether its agent was stopped or Fracta is going away.
const CANCEL_POLL: Duration = Duration::from_millis(250);

/// How the setup ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupEnd {
    /// Every command succeeded: the agent may start.
    Ready,
    /// One failed: why (its exit code or the timeout, and its output's tail).
    Failed(String),
    /// The agent was stopped, or Fracta is shutting down (why): the command was killed.
    Cancelled(String),
}

/// Why the setup must stop now, if it must: the agent ended (`fracta stop`), or Fracta heard
/// a signal.
fn cancelled(recorder: &Recorder, id: &str, shutdown: Option<&ShutdownWatch>) -> Option<String> {
    if let Some(s) = shutdown.and_then(|w| *w.borrow()) {
        return Some(match s {
            Shutdown::Interrupt => "interrupted (Ctrl-C) during project.setup".to_string(),
            Shutdown::Terminate(sig) => format!("fracta received {sig} during project.setup"),
        });
    }
    match recorder.store.get_agent(id) {
        Ok(a) if a.status.is_terminal() => Some(
            a.error
                .unwrap_or_else(|| format!("the agent is {}", a.status.as_str())),
        ),
        _ => None,
    }
}

/// Run the setup commands in `workspace`, in order, until one fails or the agent is stopped.
pub async fn run(
    recorder: &Recorder,
    agent: &AgentRecord,
    commands: &[SetupCommand],
    workspace: &Path,
    shutdown: Option<&ShutdownWatch>,
    observer: &mut dyn Observer,
) -> Result<SetupEnd, RunError> {
    for (i, c) in commands.iter().enumerate() {
        let id = format!("setup-{}", i + 1);
        recorder.persist(
            agent,
            &[Event::ToolCall(ToolCallEvent {
                id: Some(id.clone()),
                name: SETUP_TOOL.into(),
                input: json!({ "command": c.run, "timeout_secs": c.timeout_secs }),
            })],
            None,
            true,
            observer,
        )?;
        let t0 = Instant::now();
        let cancel = || cancelled(recorder, &agent.id, shutdown);
        let outcome = run_one(c, workspace, &cancel).await;
        let secs = t0.elapsed().as_secs_f64();
        let (output, failure) = match outcome {
            Ok((Some(0), output)) => (output, None),
            Ok((code, output)) => {
                let how = match code {
                    Some(c) => format!("exited with code {c}"),
                    None => "was killed by a signal".into(),
                };
                (output, Some(how))
            }
            Err(Ended::TimedOut(output)) => (
                output,
                Some(format!("did not finish within {} s", c.timeout_secs)),
            ),
            Err(Ended::NotRun(e)) => (String::new(), Some(format!("could not be run: {e}"))),
            Err(Ended::Cancelled(why)) => {
                recorder.persist(
                    agent,
                    &[Event::ToolResult(ToolResultEvent {
                        id: Some(id),
                        name: Some(SETUP_TOOL.into()),
                        output: format!("killed: {why}"),
                        is_error: true,
                    })],
                    None,
                    true,
                    observer,
                )?;
                return Ok(SetupEnd::Cancelled(why));
            }
        };
        tracing::info!(agent = %agent.id, command = %c.run, secs, ok = failure.is_none(), "setup command ran");
        recorder.persist(
            agent,
            &[Event::ToolResult(ToolResultEvent {
                id: Some(id),
                name: Some(SETUP_TOOL.into()),
                output: output.clone(),
                is_error: failure.is_some(),
            })],
            None,
            true,
            observer,
        )?;
        if let Some(how) = failure {
            let tail: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
            let tail = tail[tail.len().saturating_sub(FAILURE_TAIL_LINES)..].join("\n");
            let mut why = format!(
                "setup command {} of {} (`{}`, project.setup) {how}",
                i + 1,
                commands.len(),
                c.run
            );
            if !tail.is_empty() {
                why.push_str(&format!("; its output ends:\n{tail}"));
            }
            return Ok(SetupEnd::Failed(why));
        }
    }
    Ok(SetupEnd::Ready)
}

enum Ended {
    TimedOut(String),
    NotRun(std::io::Error),
    Cancelled(String),
}

/// One command: its exit code (None: a signal) and its output (stdout then stderr, the end
/// of each kept).
async fn run_one(
    c: &SetupCommand,
    workspace: &Path,
    cancel: &(dyn Fn() -> Option<String> + Sync),
) -> Result<(Option<i32>, String), Ended> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&c.run)
        .current_dir(workspace)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(Ended::NotRun)?;
    let pid = child.id();
    let (out, err) = (child.stdout.take(), child.stderr.take());
    let all = async { tokio::join!(read_all(out), read_all(err), child.wait()) };
    tokio::pin!(all);
    let deadline = tokio::time::sleep(Duration::from_secs(c.timeout_secs));
    tokio::pin!(deadline);
    let kill = || async {
        // The whole group: `npm ci` leaves children of its own.
        if let Some(pid) = pid {
            local::stop_group(pid, None, Duration::from_secs(2)).await;
        }
    };
    loop {
        tokio::select! {
            (o, e, status) = &mut all => {
                let code = status.map_err(Ended::NotRun)?.code();
                return Ok((code, combine(&o, &e)));
            }
            () = &mut deadline => {
                kill().await;
                return Err(Ended::TimedOut(String::new()));
            }
            () = tokio::time::sleep(CANCEL_POLL) => {
                if let Some(why) = cancel() {
                    kill().await;
                    return Err(Ended::Cancelled(why));
                }
            }
        }
    }
}

async fn read_all<R: tokio::io::AsyncRead + Unpin>(pipe: Option<R>) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(mut p) = pipe {
        let _ = p.read_to_end(&mut buf).await;
    }
    buf
}

/// stdout then stderr, each cut to the end of its last `OUTPUT_TAIL_BYTES / 2` bytes.
fn combine(out: &[u8], err: &[u8]) -> String {
    let tail = |b: &[u8]| -> String {
        let s = String::from_utf8_lossy(b);
        let max = OUTPUT_TAIL_BYTES / 2;
        if s.len() <= max {
            return s.into_owned();
        }
        let mut start = s.len() - max;
        while !s.is_char_boundary(start) {
            start += 1;
        }
        format!("…{}", &s[start..])
    };
    let (o, e) = (tail(out), tail(err));
    match (o.trim().is_empty(), e.trim().is_empty()) {
        (true, true) => String::new(),
        (false, true) => o,
        (true, false) => e,
        (false, false) => format!("{o}{}{e}", if o.ends_with('\n') { "" } else { "\n" }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_keeps_the_end_of_each_stream() {
        assert_eq!(combine(b"a\n", b"b\n"), "a\nb\n");
        assert_eq!(combine(b"", b"only err"), "only err");
        let long = "x".repeat(OUTPUT_TAIL_BYTES);
        let c = combine(long.as_bytes(), b"END");
        assert!(c.starts_with('…') && c.ends_with("END"), "{c}");
        assert!(c.len() < OUTPUT_TAIL_BYTES);
    }
}
