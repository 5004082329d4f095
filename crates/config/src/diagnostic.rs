//! Diagnostics a person can act on: file, line, column, key path, what is valid, and the
//! nearest valid name for a typo.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::spans::{Pos, SpanMap, join};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// Dotted key path, e.g. `agents.agent_runtimes.claude.adapter`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_path: Option<String>,
    /// What would be valid, and the nearest valid name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// The source line, for display.
    #[serde(skip)]
    pub source_line: Option<String>,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            file: None,
            line: None,
            column: None,
            key_path: None,
            help: None,
            source_line: None,
        }
    }

    pub fn warning(message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(message)
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn in_file(mut self, file: &Path) -> Self {
        self.file = Some(file.to_path_buf());
        self
    }

    /// Attach a key path and the position of that key in `src`.
    pub fn at(mut self, ctx: &SourceCtx<'_>, key_path: &str, pos: Option<Pos>) -> Self {
        self.file = Some(ctx.file.to_path_buf());
        if !key_path.is_empty() {
            self.key_path = Some(key_path.to_string());
        }
        if let Some(p) = pos {
            self.line = Some(p.line);
            self.column = Some(p.column);
            self.source_line = ctx
                .src
                .lines()
                .nth(p.line.saturating_sub(1))
                .map(str::to_string);
        }
        self
    }

    /// At the key of `key_path` (or its nearest ancestor).
    pub fn at_key(self, ctx: &SourceCtx<'_>, key_path: &str) -> Self {
        let pos = ctx.spans.locate(key_path);
        self.at(ctx, key_path, pos)
    }

    /// At the value of `key_path` (or its nearest ancestor).
    pub fn at_value(self, ctx: &SourceCtx<'_>, key_path: &str) -> Self {
        let pos = ctx.spans.locate_value(key_path);
        self.at(ctx, key_path, pos)
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// What a diagnostic needs to know about the document it is about.
pub struct SourceCtx<'a> {
    pub file: &'a Path,
    pub src: &'a str,
    pub spans: &'a SpanMap,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        writeln!(f, "{label}: {}", self.message)?;
        if let Some(file) = &self.file {
            write!(f, "  --> {}", file.display())?;
            if let (Some(l), Some(c)) = (self.line, self.column) {
                write!(f, ":{l}:{c}")?;
            }
            writeln!(f)?;
        }
        if let (Some(line), Some(col), Some(src)) = (self.line, self.column, &self.source_line) {
            let n = line.to_string();
            let pad = " ".repeat(n.len());
            writeln!(f, "{pad} |")?;
            writeln!(f, "{n} | {src}")?;
            let width = src
                .chars()
                .skip(col.saturating_sub(1))
                .take_while(|c| !matches!(c, ':' | ' ' | ','))
                .count()
                .max(1);
            writeln!(
                f,
                "{pad} | {}{}",
                " ".repeat(col.saturating_sub(1)),
                "^".repeat(width)
            )?;
        }
        if let Some(k) = &self.key_path {
            writeln!(f, "  = key: {k}")?;
        }
        if let Some(h) = &self.help {
            writeln!(f, "  = help: {}", h.replace('\n', "\n          "))?;
        }
        Ok(())
    }
}

/// The nearest of `candidates` to `word`, if it is close enough to be a likely typo.
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            (
                c,
                strsim::damerau_levenshtein(&lower, &c.to_ascii_lowercase()),
            )
        })
        .filter(|(c, d)| *d <= (c.len().max(word.len()) / 3).max(2))
        .min_by_key(|(_, d)| *d)
        .map(|(c, _)| c)
}

/// `a`, `b` and `c` → "`a`, `b`, `c`".
pub fn one_of<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(|s| format!("`{}`", s.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// "expected one of …; did you mean `x`?"
pub fn valid_help<S: AsRef<str>>(what: &str, word: &str, valid: &[S]) -> String {
    if valid.is_empty() {
        return format!("there are no {what} defined here");
    }
    let mut h = format!("valid {what}: {}", one_of(valid));
    if let Some(n) = nearest(word, valid.iter().map(AsRef::as_ref)) {
        h.push_str(&format!("; did you mean `{n}`?"));
    }
    h
}

/// The backticked words of a serde message: "unknown field `x`, expected one of `a`, `b`"
/// → ["x", "a", "b"].
fn backticked(msg: &str) -> Vec<&str> {
    msg.split('`').skip(1).step_by(2).collect()
}

/// A serde error message, turned into our message, the key path it is really about, and help.
pub struct SerdeMessage {
    pub message: String,
    pub key_path: String,
    pub help: Option<String>,
    /// Point at the key itself (unknown keys) rather than at the value.
    pub at_key: bool,
}

/// Make a serde message actionable: name what is valid and the nearest name for a typo, and
/// move messages about a sub-key onto that key.
pub fn explain_serde(path: &str, raw: &str) -> SerdeMessage {
    let msg = strip_yaml_decoration(raw);
    if let Some(rest) = msg.strip_prefix("unknown field ") {
        let words = backticked(rest);
        if let Some((field, valid)) = words.split_first() {
            let key_path = if path.ends_with(field) {
                path.to_string()
            } else {
                join(path, field)
            };
            let help = if rest.contains("there are no fields") {
                "this mapping takes no keys".to_string()
            } else {
                valid_help("keys here", field, valid)
            };
            return SerdeMessage {
                message: format!("unknown key `{field}`"),
                key_path,
                help: Some(help),
                at_key: true,
            };
        }
    }
    if let Some(rest) = msg.strip_prefix("unknown variant ") {
        let words = backticked(rest);
        if let Some((variant, valid)) = words.split_first() {
            let leaf = path.rsplit('.').next().unwrap_or(path);
            let what = match leaf {
                "adapter" => "adapters",
                "type" => "types",
                "scope" => "scopes",
                "backend" => "backends",
                "driver" => "drivers",
                "default_mode" => "modes",
                "level" => "levels",
                _ => "values",
            };
            return SerdeMessage {
                message: format!(
                    "unknown {} `{variant}` for `{leaf}`",
                    what.trim_end_matches('s')
                ),
                key_path: path.to_string(),
                help: Some(valid_help(what, variant, valid)),
                at_key: false,
            };
        }
    }
    if let Some(rest) = msg.strip_prefix('`')
        && let Some((key, m)) = rest.split_once("`: ")
    {
        return SerdeMessage {
            message: format!("`{key}` {m}"),
            key_path: join(path, key),
            help: None,
            at_key: true,
        };
    }
    if msg == crate::model::ARGV_NOT_STRING {
        return SerdeMessage {
            message: "`command` MUST be a YAML array, not a string".to_string(),
            key_path: if path.ends_with("command") { path.to_string() } else { join(path, "command") },
            help: Some("write it as a list of program and arguments, e.g. command: [\"bedrock-auth-helper\"]".to_string()),
            at_key: false,
        };
    }
    if msg.starts_with("missing field") {
        return SerdeMessage {
            message: msg,
            key_path: path.to_string(),
            help: None,
            at_key: true,
        };
    }
    let help = if msg.starts_with("invalid type") && msg.contains("expected u") {
        Some("write a whole number, without quotes or units (e.g. 60000)".to_string())
    } else {
        None
    };
    SerdeMessage {
        message: msg,
        key_path: path.to_string(),
        help,
        at_key: false,
    }
}

/// serde_yaml_ng decorates messages with its own path prefix and " at line L column C".
fn strip_yaml_decoration(raw: &str) -> String {
    let mut s = raw;
    if let Some(i) = s.rfind(" at line ")
        && s[i + 9..]
            .split(" column ")
            .all(|p| p.chars().all(|c| c.is_ascii_digit()))
    {
        s = &s[..i];
    }
    if let Some((head, tail)) = s.split_once(": ")
        && !head.is_empty()
        && head
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '[' | ']'))
        && head != "invalid type"
        && head != "invalid value"
    {
        s = tail;
    }
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typo_suggestions() {
        assert_eq!(
            nearest("defualt_runtime", ["default_runtime", "default_mode"]),
            Some("default_runtime")
        );
        assert_eq!(
            nearest("claud", ["claude", "codex", "opencode"]),
            Some("claude")
        );
        assert_eq!(nearest("zzzzzz", ["claude", "codex"]), None);
    }

    #[test]
    fn strips_serde_yaml_decoration() {
        assert_eq!(
            strip_yaml_decoration("agents.x: unknown field `a`, expected `b` at line 3 column 5"),
            "unknown field `a`, expected `b`"
        );
        assert_eq!(
            strip_yaml_decoration("invalid type: string \"x\", expected u64"),
            "invalid type: string \"x\", expected u64"
        );
    }
}
