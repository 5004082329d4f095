//! What a person watching agents sees, pinned at 80 and 160 columns (`COLUMNS`, which the CLI
//! honours as a terminal's width): the live view of `spawn` and its end-of-run summary,
//! `logs`, `ps` (with a stream session waiting for input), and `attach` driven in a real
//! terminal (tmux) on a session under `fracta serve`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use fracta_model_server::Script;
use unicode_width::UnicodeWidthStr;

use super::harness::{Project, Serve};
use super::spawn_cli::filters;

/// The final message: long, with characters of more than one byte, to be cut at 80 columns.
const LONG: &str = "Wrote notes.txt with three lines — naïve café déjà vu; the change is small and easy to review, and this sentence goes on so that an eighty column terminal has to cut it.";

fn script() -> Script {
    Script::parse(
        &format!(
            "rules:\n  - when: {{ contains: \"write the notes\", has_tools: true }}\n    reply:\n      tool_calls: [{{ name: Write, input: {{ file_path: \"notes.txt\", content: \"one\\ntwo\\nthree\\n\" }} }}]\n  - when: {{ contains: \"write the notes\", anywhere: true, has_tools: true }}\n    reply: {LONG:?}\n  - when: {{ contains: \"first turn\", has_tools: true }}\n    reply: \"ANSWER-ONE\"\n  - when: {{ contains: \"second turn\", has_tools: true }}\n    reply: \"ANSWER-TWO\"\nfallback: \"Nothing to do here.\"\n"
        ),
        "view",
    )
    .unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// `fracta ARGS` with `COLUMNS` set (or not).
fn run(p: &Project, columns: Option<usize>, args: &[&str]) -> Output {
    let mut c = p.command(args);
    if let Some(n) = columns {
        c.env("COLUMNS", n.to_string());
    }
    c.output().unwrap()
}

/// The id on the summary's first line.
fn outcome_id(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("succeeded  agent "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no outcome line in:\n{out}"))
        .to_string()
}

/// Every line `pick` selects fits `columns`.
fn assert_fits(out: &str, columns: usize, pick: impl Fn(&str) -> bool) {
    for l in out.lines().filter(|l| pick(l)) {
        assert!(
            l.width() <= columns,
            "{} columns, more than {columns}: {l}",
            l.width()
        );
    }
}

fn snapshot(f: &[(String, String)], name: &str, value: &str) {
    let mut s = insta::Settings::clone_current();
    for (re, with) in f {
        s.add_filter(re, with.as_str());
    }
    s.add_filter(r"(fracta/[a-z0-9-]+)-[0-9a-z]{8}\b", "$1-[SUFFIX]");
    s.add_filter(r"\b[0-9a-f]{40}\b", "[COMMIT]");
    s.bind(|| insta::assert_snapshot!(name, value));
}

#[test]
fn the_live_view_logs_and_ps_fit_80_and_160_columns() {
    let p = Project::new(script());
    // An agent that changes a file, watched at 80 columns.
    let out = run(
        &p,
        Some(80),
        &[
            "spawn",
            "--runtime",
            "claude",
            "--task",
            "write the notes file for the weekly review meeting",
            "--prompt",
            "write the notes",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let live = text(&out);
    let id = outcome_id(&live);
    let short = &id[id.len() - 6..];
    assert!(!live.contains('\u{1b}'), "colour in a pipe:\n{live}");
    // Every event line is cut to the width, with an ellipsis; the tool's result is one line.
    assert_fits(&live, 80, |l| l.starts_with("[claude "));
    assert!(
        live.contains(&format!("[claude {short}] tool Write: notes.txt")),
        "{live}"
    );
    assert!(
        live.lines()
            .any(|l| l.starts_with(&format!("[claude {short}] tool result: ")))
    );
    assert!(
        live.lines().any(
            |l| l.starts_with(&format!("[claude {short}] assistant: Wrote")) && l.ends_with('…')
        ),
        "{live}"
    );
    // The summary: what changed, on which branch, and the command to review it.
    assert!(
        live.contains("changed    1 file, +3 \u{2212}0 on fracta/write-the-notes-file"),
        "{live}"
    );
    assert!(
        live.contains(&format!("review     fracta diff {short}")),
        "{live}"
    );
    let f = filters(&p, &[&id]);
    snapshot(&f, "spawn_80", &live);
    // The review command it printed works.
    let diff = p.run(&["diff", short, "--stat"]);
    assert!(text(&diff).contains("notes.txt"), "{}", text(&diff));

    // An agent that changes nothing, watched at 160 columns: its summary says so.
    let out = run(
        &p,
        Some(160),
        &[
            "spawn",
            "--runtime",
            "claude",
            "--task",
            "look around",
            "--prompt",
            "have a look",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let quiet = text(&out);
    let id2 = outcome_id(&quiet);
    assert!(quiet.contains("\nno changes\n"), "{quiet}");
    let f = filters(&p, &[&id, &id2]);
    snapshot(&f, "spawn_160_no_changes", &quiet);

    // logs: the same lines as the live view, cut at 80, whole at 160 and in a pipe.
    let logs80 = text(&run(&p, Some(80), &["logs", short]));
    assert_fits(&logs80, 80, |_| true);
    snapshot(&f, "logs_80", &logs80);
    let logs160 = text(&run(&p, Some(160), &["logs", short]));
    snapshot(&f, "logs_160", &logs160);
    let piped = text(&run(&p, None, &["logs", short]));
    assert!(piped.contains(LONG), "a pipe gets whole lines:\n{piped}");

    // ps: fits 80 columns without wrapping; at 160 nothing needs cutting.
    let ps80 = text(&run(&p, Some(80), &["ps"]));
    assert_fits(&ps80, 80, |_| true);
    assert!(ps80.lines().count() == 3, "{ps80}");
    snapshot(&f, "ps_80", &ps80);
    let ps160 = text(&run(&p, Some(160), &["ps"]));
    assert_fits(&ps160, 160, |_| true);
    assert!(
        ps160.contains("write-the-notes-file-for-the  "),
        "the whole task at 160:\n{ps160}"
    );
    snapshot(&f, "ps_160", &ps160);
    // Narrower still: the summary column goes rather than a row wrapping.
    let ps50 = text(&run(&p, Some(50), &["ps"]));
    assert_fits(&ps50, 50, |_| true);
    assert!(!ps50.contains("SUMMARY"), "{ps50}");
}

/// On a terminal, lines are coloured (and with NO_COLOR they are not).
#[test]
fn logs_are_coloured_on_a_terminal_only() {
    let p = Project::new(script());
    let out = p.run(&[
        "spawn",
        "--json",
        "--runtime",
        "claude",
        "--prompt",
        "have a look",
    ]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = v["id"].as_str().unwrap();
    let Some(coloured) = terminal(&p, &["logs", id], false) else {
        return;
    };
    assert!(
        coloured.contains("\u{1b}["),
        "no colour on a terminal:\n{coloured}"
    );
    let plain = terminal(&p, &["logs", id], true).unwrap();
    assert!(!plain.contains("\u{1b}["), "colour with NO_COLOR:\n{plain}");
    assert!(plain.contains("assistant: Nothing to do here."), "{plain}");
}

/// `fracta ARGS` on a pseudo-terminal (util-linux `script`); None when it is missing.
fn terminal(p: &Project, args: &[&str], no_color: bool) -> Option<String> {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipping: util-linux `script` is not installed");
        return None;
    }
    let line = std::iter::once(env!("CARGO_BIN_EXE_fracta"))
        .chain(args.iter().copied())
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ");
    let mut c = Command::new("script");
    c.args(["-qec", &line, "/dev/null"])
        .current_dir(p.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", p.path().join("home"))
        .env("TERM", "xterm-256color")
        .env("COLUMNS", "100");
    if no_color {
        c.env("NO_COLOR", "1");
    }
    Some(String::from_utf8_lossy(&c.output().unwrap().stdout).to_string())
}

/// A tmux server of the test's own (its own socket), killed when dropped.
struct Tmux {
    socket: std::path::PathBuf,
}

impl Tmux {
    /// None when tmux is not installed (CI installs it: there, its absence fails the test).
    fn start(dir: &Path, command: &str) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            assert!(
                std::env::var_os("CI").is_none(),
                "tmux is not installed (.ci/run installs it)"
            );
            eprintln!("skipping: tmux is not installed");
            return None;
        }
        let t = Tmux {
            socket: dir.join("tmux.sock"),
        };
        let ok = t
            .cmd(&[
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-x",
                "120",
                "-y",
                "40",
                command,
            ])
            .status()
            .unwrap()
            .success();
        assert!(ok, "tmux did not start");
        Some(t)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-S").arg(&self.socket).args(args);
        c
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "0"];
        args.extend_from_slice(keys);
        assert!(self.cmd(&args).status().unwrap().success());
    }

    /// The pane's text.
    fn screen(&self) -> String {
        let out = self
            .cmd(&["capture-pane", "-p", "-J", "-t", "0", "-S", "-200"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Wait until the screen satisfies `ok`; return it.
    fn wait(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{what} did not show within a minute; the screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]).output();
    }
}

/// `attach` in a real terminal: the conversation so far, a prompt, a typed turn shown once and
/// answered, the prompt again when the turn ends, and Ctrl-C detaching with a word while the
/// session goes on. `ps` says the session waits for input.
#[test]
fn attach_in_a_terminal_shows_history_prompts_and_detaches() {
    let p = Project::new(script());
    let server = Serve::start(&p);
    let v = p.json(&[
        "spawn",
        "--detach",
        "--json",
        "--mode",
        "stream",
        "--runtime",
        "claude",
        "--task",
        "chat",
        "--prompt",
        "first turn",
    ]);
    let id = v["id"].as_str().unwrap().to_string();
    let short = id[id.len() - 6..].to_string();
    let start = Instant::now();
    while p.agent(&id)["result"] != "ANSWER-ONE" {
        assert!(start.elapsed() < Duration::from_secs(60), "no first turn");
        std::thread::sleep(Duration::from_millis(100));
    }
    // ps: the idle session waits for input.
    let start = Instant::now();
    let ps = loop {
        let ps = text(&run(&p, Some(80), &["ps"]));
        if ps.contains("waiting for input") {
            break ps;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{ps}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_fits(&ps, 80, |_| true);
    snapshot(&filters(&p, &[&id]), "ps_waiting_for_input", &ps);
    let show = text(&p.run(&["show", &short]));
    assert!(
        show.contains("status        running (waiting for input)"),
        "{show}"
    );

    let bin = env!("CARGO_BIN_EXE_fracta");
    let command = format!(
        "cd '{}' && env -i PATH='{}' HOME='{}' TERM=xterm-256color NO_COLOR=1 '{bin}' attach {short}; echo ATTACH-EXITED-$?; sleep 120",
        p.path().display(),
        std::env::var("PATH").unwrap_or_default(),
        p.path().join("home").display(),
    );
    let Some(tmux) = Tmux::start(p.path(), &command) else {
        return;
    };
    // The conversation so far, then the prompt.
    let s = tmux.wait("the recent turns and a prompt", |s| {
        s.contains("you> first turn") && s.contains("ANSWER-ONE") && s.trim_end().ends_with("you>")
    });
    assert!(s.contains(&format!("attached to {short}")), "{s}");
    // A typed turn: shown once (as typed), answered, and the prompt comes back.
    tmux.keys(&["second turn", "Enter"]);
    let s = tmux.wait("the reply and the next prompt", |s| {
        s.contains("assistant: ANSWER-TWO") && s.trim_end().ends_with("you>")
    });
    assert_eq!(
        s.matches("second turn").count(),
        1,
        "typed once, shown once:\n{s}"
    );
    assert!(!s.contains("user: second turn"), "{s}");
    // Ctrl-C detaches, says so, and the session goes on.
    tmux.keys(&["C-c"]);
    let s = tmux.wait("the detach message", |s| s.contains("ATTACH-EXITED-"));
    assert!(s.contains("ATTACH-EXITED-0"), "{s}");
    assert!(
        s.contains(&format!(
            "detached from {short}; the session goes on (attach again: fracta attach {short})"
        )),
        "{s}"
    );
    assert_eq!(p.agent(&id)["status"], "running", "the session goes on");
    drop(tmux);
    assert!(server.stop());
}

/// A stream session run in the terminal (`spawn --mode stream`): between turns the spinner
/// stops and a prompt shows; a typed turn is shown once; Ctrl-D ends the session with its
/// summary.
#[test]
fn a_terminal_session_prompts_between_turns() {
    let p = Project::new(script());
    let bin = env!("CARGO_BIN_EXE_fracta");
    let command = format!(
        "cd '{}' && env -i PATH='{}' HOME='{}' TERM=xterm-256color NO_COLOR=1 '{bin}' spawn --mode stream --runtime claude --task chat --prompt 'first turn'; echo SPAWN-EXITED-$?; sleep 120",
        p.path().display(),
        std::env::var("PATH").unwrap_or_default(),
        p.path().join("home").display(),
    );
    let Some(tmux) = Tmux::start(p.path(), &command) else {
        return;
    };
    tmux.wait("the first answer and a prompt", |s| {
        s.contains("assistant: ANSWER-ONE") && s.trim_end().ends_with("you>")
    });
    tmux.keys(&["second turn", "Enter"]);
    let s = tmux.wait("the second answer and a prompt", |s| {
        s.contains("assistant: ANSWER-TWO") && s.trim_end().ends_with("you>")
    });
    assert_eq!(
        s.matches("second turn").count(),
        1,
        "typed once, shown once:\n{s}"
    );
    // Ctrl-D: the session closes after its last turn, and the run ends with its summary.
    tmux.keys(&["C-d"]);
    let s = tmux.wait("the end of the run", |s| s.contains("SPAWN-EXITED-"));
    assert!(s.contains("SPAWN-EXITED-0"), "{s}");
    assert!(
        s.contains("\nsucceeded  agent "),
        "the summary on a line of its own:\n{s}"
    );
    assert!(s.contains("no changes"), "{s}");
}

/// Codex's config warnings (here: a setting it does not know) are `warning:` lines with their
/// text, in `codex exec` (batch) and in `codex app-server` (stream) alike, and the agent
/// succeeds with no `error:` line.
#[test]
fn codex_config_warnings_read_as_warnings_with_their_text() {
    let p = Project::new(script());
    let cfg = std::fs::read_to_string(p.path().join("fracta.yaml")).unwrap();
    let cfg = cfg.replacen(
        "        model_provider: fake\n",
        "        model_provider: fake\n        no_such_setting: true\n",
        1,
    );
    std::fs::write(p.path().join("fracta.yaml"), cfg).unwrap();
    for mode in ["batch", "stream"] {
        let out = run(
            &p,
            None,
            &[
                "spawn",
                "--runtime",
                "codex",
                "--mode",
                mode,
                "--prompt",
                "have a look",
            ],
        );
        let live = text(&out);
        assert!(
            out.status.success(),
            "{mode}: {live}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            live.lines()
                .any(|l| l.contains("] warning: ") && l.contains("no_such_setting")),
            "{mode}: no warning naming the setting:\n{live}"
        );
        assert!(!live.contains("] error: "), "{mode}: {live}");
        assert!(!live.contains("(configWarning)"), "{mode}: {live}");
    }
}
