//! The docs' examples are run: every ```sh block of README.md and the book (`docs/src`) runs,
//! page by page in order, in a fresh git project with the real `fracta` and the real Claude
//! Code against the scripted model server; every ```yaml block that is a `fracta.yaml` passes
//! `fracta config validate`, and every one that is a model-server script parses. A block that
//! cannot run here (a cluster, a real API key, a command that never ends) is marked
//! ```sh,norun (the test says how many).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use fracta_model_server::{ModelServer, Script};
use pulldown_cmark::{CodeBlockKind, Event, Parser, Tag, TagEnd};

use super::harness::{repo_root, require_clis};

/// One fenced block: its language, its other attributes, where it starts and its text.
#[derive(Debug)]
struct Block {
    lang: String,
    attrs: Vec<String>,
    line: usize,
    text: String,
}

fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut current: Option<Block> = None;
    for (event, range) in Parser::new(markdown).into_offset_iter() {
        match event {
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) => {
                let mut parts = info.split([',', ' ']).filter(|s| !s.is_empty());
                let lang = parts.next().unwrap_or("").to_string();
                let attrs = parts.map(str::to_string).collect();
                let line = markdown[..range.start].lines().count() + 1;
                current = Some(Block {
                    lang,
                    attrs,
                    line,
                    text: String::new(),
                });
            }
            Event::Text(t) => {
                if let Some(b) = current.as_mut() {
                    b.text.push_str(&t);
                }
            }
            Event::End(TagEnd::CodeBlock) => out.extend(current.take()),
            _ => {}
        }
    }
    out
}

/// README.md and every page of the book, in a stable order.
fn pages() -> Vec<PathBuf> {
    let root = repo_root();
    let mut pages: Vec<PathBuf> = std::fs::read_dir(root.join("docs/src"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    pages.insert(0, root.join("README.md"));
    pages
}

fn rel(p: &Path) -> String {
    p.strip_prefix(repo_root())
        .unwrap_or(p)
        .display()
        .to_string()
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

/// The model behind every example: the starter task and the docs' prompts ask for HELLO.md,
/// which the model writes with Claude Code's Write tool; anything else gets a short answer.
const SCRIPT: &str = r#"
rules:
  - when: { contains: "named HELLO.md", has_tools: true }
    repeat: true
    reply:
      text: "Writing HELLO.md."
      tool_calls:
        - { name: Write, input: { file_path: HELLO.md, content: "Hello from an agent.\n" } }
  - when: { contains: "Write HELLO.md", has_tools: true }
    repeat: true
    reply:
      text: "Writing HELLO.md."
      tool_calls:
        - { name: Write, input: { file_path: HELLO.md, content: "Hello from an agent.\n" } }
fallback: "Wrote HELLO.md with a one-line greeting."
"#;

/// A fresh git project with one commit on `main`, a bin folder with `fracta` in it, and the
/// environment a user would have: the CLIs on PATH, Claude pointed at the model server.
struct Sandbox {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Sandbox {
    fn new(url: &str) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("project");
        let home = dir.path().join("home");
        let bin = dir.path().join("bin");
        for d in [&root, &home, &bin] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_fracta"), bin.join("fracta")).unwrap();
        git(&root, &["init", "-q", "-b", "main"]);
        std::fs::write(root.join("README.md"), "a project\n").unwrap();
        git(&root, &["add", "."]);
        git(
            &root,
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "-q",
                "-m",
                "init",
            ],
        );
        let path = format!(
            "{}:{}:{}",
            bin.display(),
            repo_root().join("node_modules/.bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let env = vec![
            ("PATH".to_string(), path),
            ("HOME".to_string(), home.display().to_string()),
            ("NO_COLOR".to_string(), "1".to_string()),
            ("ANTHROPIC_BASE_URL".to_string(), url.to_string()),
            ("ANTHROPIC_API_KEY".to_string(), "sk-ant-docs".to_string()),
            ("GIT_AUTHOR_NAME".to_string(), "docs".to_string()),
            ("GIT_AUTHOR_EMAIL".to_string(), "docs@localhost".to_string()),
            ("GIT_COMMITTER_NAME".to_string(), "docs".to_string()),
            (
                "GIT_COMMITTER_EMAIL".to_string(),
                "docs@localhost".to_string(),
            ),
        ];
        Sandbox { dir, env }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("project")
    }

    /// Run a block under `bash -euo pipefail`, with a time limit; the transcript on failure.
    fn run(&self, script: &str) -> Result<(), String> {
        let mut cmd = Command::new("timeout");
        cmd.arg("120")
            .args(["bash", "-euo", "pipefail", "-c", script])
            .current_dir(self.root())
            .env_clear()
            .stdin(std::process::Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
                out.status.code(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}

#[test]
fn every_sh_example_in_the_docs_runs() {
    require_clis();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let script = Script::parse(SCRIPT, "docs script").unwrap();
    let server = rt
        .block_on(ModelServer::start(script, "127.0.0.1:0".parse().unwrap()))
        .unwrap();
    let mut failures = Vec::new();
    let (mut ran, mut skipped) = (0, 0);
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let runnable: Vec<Block> = blocks(&text)
            .into_iter()
            .filter(|b| b.lang == "sh")
            .filter(|b| {
                let norun = b.attrs.iter().any(|a| a == "norun");
                skipped += usize::from(norun);
                !norun
            })
            .collect();
        if runnable.is_empty() {
            continue;
        }
        let sandbox = Sandbox::new(&server.url());
        // A page that does not start its own project gets one, as its reader has.
        if !runnable.iter().any(|b| b.text.contains("fracta init")) {
            sandbox.run("fracta init >/dev/null").unwrap();
        }
        for b in runnable {
            ran += 1;
            if let Err(e) = sandbox.run(&b.text) {
                failures.push(format!(
                    "{}:{}:\n{}\n{e}",
                    rel(&page),
                    b.line,
                    b.text.trim_end()
                ));
                break; // later blocks of the page build on this one
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(
        ran >= 5,
        "only {ran} examples ran: the docs lost their examples"
    );
    eprintln!("{ran} examples ran; {skipped} marked norun (a cluster, a benchmark, a server)");
}

/// Top-level keys of a `fracta.yaml`.
const CONFIG_KEYS: &[&str] = &[
    "agents", "auth", "logging", "project", "runtime", "runtimes",
];

#[test]
fn every_yaml_example_in_the_docs_is_valid() {
    let mut failures = Vec::new();
    let mut configs = 0;
    let mut scripts = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for b in blocks(&text).into_iter().filter(|b| b.lang == "yaml") {
            let where_ = format!("{}:{}", rel(&page), b.line);
            let value: serde_yaml_ng::Value = match serde_yaml_ng::from_str(&b.text) {
                Ok(v) => v,
                Err(e) => {
                    failures.push(format!("{where_}: not YAML: {e}"));
                    continue;
                }
            };
            let keys: Vec<String> = value
                .as_mapping()
                .map(|m| {
                    m.keys()
                        .filter_map(|k| k.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            if keys.iter().any(|k| k == "rules" || k == "fallback") {
                scripts += 1;
                if let Err(e) = Script::parse(&b.text, &where_) {
                    failures.push(format!("{where_}: model-server script: {e}"));
                }
            } else if !keys.is_empty() && keys.iter().all(|k| CONFIG_KEYS.contains(&k.as_str())) {
                configs += 1;
                let dir = tempfile::tempdir().unwrap();
                std::fs::write(dir.path().join("fracta.yaml"), &b.text).unwrap();
                let out = Command::new(env!("CARGO_BIN_EXE_fracta"))
                    .args(["config", "validate"])
                    .current_dir(dir.path())
                    .env_clear()
                    .env("HOME", dir.path())
                    .env("NO_COLOR", "1")
                    .output()
                    .unwrap();
                if !out.status.success() {
                    failures.push(format!(
                        "{where_}: `fracta config validate` exit {:?}:\n{}{}",
                        out.status.code(),
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(
        configs >= 3 && scripts >= 1,
        "{configs} config and {scripts} script examples: the docs lost theirs"
    );
}

#[test]
fn the_block_reader_finds_fences_and_their_attributes() {
    let md =
        "text\n\n```sh\nfracta ps\n```\n\n```sh,norun\nkind create cluster\n```\n\n    indented\n";
    let b = blocks(md);
    assert_eq!(b.len(), 2);
    assert_eq!((b[0].lang.as_str(), b[0].line), ("sh", 3));
    assert_eq!(b[0].text, "fracta ps\n");
    assert_eq!(b[1].attrs, vec!["norun".to_string()]);
}

#[test]
fn every_relative_link_in_the_docs_names_a_file_that_exists() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let dir = page.parent().unwrap();
        for event in Parser::new(&text) {
            let (Event::Start(Tag::Link { dest_url, .. })
            | Event::Start(Tag::Image { dest_url, .. })) = event
            else {
                continue;
            };
            let target = dest_url.split('#').next().unwrap_or("");
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            if !dir.join(target).exists() {
                broken.push(format!("{}: {dest_url}", rel(&page)));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "links to missing files:\n{}",
        broken.join("\n")
    );
    assert!(checked >= 10, "only {checked} relative links checked");
}
