//! How events and agents read in a terminal and in a pipe: one line per event, the same
//! events either way; colour only on a terminal (never with NO_COLOR); lines cut to the
//! terminal's width with an ellipsis, full lines in a pipe.

use std::borrow::Cow;
use std::io::IsTerminal;

use anstyle::{AnsiColor, Style};
use fracta_core::event::{Event, Role};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use crate::output::{BOLD, DIM, GREEN, RED, YELLOW};

pub const CYAN: Style = AnsiColor::Cyan.on_default();
pub const MAGENTA: Style = AnsiColor::Magenta.on_default();

/// The width to cut lines to: `COLUMNS` when set (a person or a test asking for a width),
/// else the terminal's when stdout is one; `None` (full lines) in a pipe.
pub fn width() -> Option<usize> {
    if let Some(n) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
    {
        return Some(n.max(20));
    }
    let out = std::io::stdout();
    if !out.is_terminal() {
        return None;
    }
    terminal_size::terminal_size_of(&out).map(|(w, _)| usize::from(w.0).max(20))
}

/// Whether what goes to stdout may carry colour (a terminal, and no NO_COLOR).
pub fn colour() -> bool {
    anstream::AutoStream::choice(&std::io::stdout()) != anstream::ColorChoice::Never
}

/// `text` in `style`, when colour is on.
pub fn paint(on: bool, style: Style, text: &str) -> String {
    if on && style != Style::new() {
        format!("{style}{text}{style:#}")
    } else {
        text.to_string()
    }
}

/// One line: runs of whitespace (newlines too) become one space.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The columns `s` takes on a terminal.
pub fn columns(s: &str) -> usize {
    s.width()
}

/// `s` cut to `width` columns, ending in "…" when cut: at the last space when one is near the
/// end, else between two characters (never inside one).
pub fn fit(s: &str, width: usize) -> Cow<'_, str> {
    if s.width() <= width {
        return Cow::Borrowed(s);
    }
    if width == 0 {
        return Cow::Borrowed("");
    }
    let room = width - 1;
    let mut used = 0;
    let mut end = 0;
    for (i, c) in s.char_indices() {
        let w = c.width().unwrap_or(0);
        if used + w > room {
            break;
        }
        used += w;
        end = i + c.len_utf8();
    }
    let head = &s[..end];
    // A word boundary in the last third of the room reads better than a cut word.
    let cut = match head.rfind(' ') {
        Some(sp) if head[..sp].width() * 3 >= room * 2 => head[..sp].trim_end(),
        _ => head.trim_end(),
    };
    Cow::Owned(format!("{cut}…"))
}

/// `fit` when there is a width.
pub fn fit_opt(s: &str, width: Option<usize>) -> Cow<'_, str> {
    match width {
        Some(w) => fit(s, w),
        None => Cow::Borrowed(s),
    }
}

/// A duration the way `ps` and the spinner show it: `42s`, `3m05s`, `2h10m`, `3d4h`.
pub fn duration(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..86400 => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{}h", secs / 86400, secs % 86400 / 3600),
    }
}

/// A coarser age for tables: `42s`, `3m`, `2h`, `3d`.
pub fn age(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

/// An event as one line: its style and text. `None`: not shown in the live view (steps, and
/// runtime lines Fracta keeps only raw); `fracta logs` shows those too, dimmed.
pub struct EventLine {
    pub style: Style,
    pub text: String,
}

/// The most telling field of a tool's input (a command, a path, a pattern), else its JSON.
fn tool_input(input: &serde_json::Value) -> String {
    const KEYS: [&str; 10] = [
        "command",
        "cmd",
        "file_path",
        "filePath",
        "path",
        "pattern",
        "query",
        "url",
        "description",
        "prompt",
    ];
    if let Some(obj) = input.as_object() {
        for k in KEYS {
            match obj.get(k) {
                Some(serde_json::Value::String(s)) if !s.is_empty() => return one_line(s),
                Some(serde_json::Value::Array(a)) if !a.is_empty() => {
                    let parts: Vec<String> = a
                        .iter()
                        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                        .collect();
                    return one_line(&parts.join(" "));
                }
                _ => {}
            }
        }
        if obj.is_empty() {
            return String::new();
        }
    }
    if input.is_null() {
        return String::new();
    }
    one_line(&input.to_string())
}

/// A tool's output, summarized: its first non-empty line and how many more there are.
fn tool_output(output: &str) -> String {
    let mut lines = output.lines().map(str::trim).filter(|l| !l.is_empty());
    let Some(first) = lines.next() else {
        return "(no output)".into();
    };
    let more = lines.count();
    let first = one_line(first);
    match more {
        0 => first,
        1 => format!("{first} (+1 line)"),
        n => format!("{first} (+{n} lines)"),
    }
}

/// The line an event shows as, in the live view and in `fracta logs` alike.
pub fn event_line(event: &Event) -> Option<EventLine> {
    let line = |style: Style, text: String| Some(EventLine { style, text });
    match event {
        Event::Session(s) => line(DIM, format!("session {}", s.resume_token)),
        Event::Message(m) => match m.role {
            Role::Assistant => line(BOLD, format!("assistant: {}", one_line(&m.text))),
            Role::User => line(MAGENTA, format!("user: {}", one_line(&m.text))),
        },
        Event::Reasoning(t) => line(DIM, format!("thinking: {}", one_line(&t.text))),
        Event::ToolCall(t) => {
            let input = tool_input(&t.input);
            line(
                CYAN,
                if input.is_empty() {
                    format!("tool {}", t.name)
                } else {
                    format!("tool {}: {input}", t.name)
                },
            )
        }
        Event::ToolResult(t) if t.is_error => {
            line(RED, format!("tool error: {}", tool_output(&t.output)))
        }
        Event::ToolResult(t) => line(DIM, format!("tool result: {}", tool_output(&t.output))),
        Event::Usage(_) => line(DIM, event.summary()),
        Event::Error(e) => line(RED, format!("error: {}", one_line(&e.message))),
        Event::Warning(e) => line(YELLOW, format!("warning: {}", one_line(&e.message))),
        Event::Status(s) => {
            let style = match s.status.as_str() {
                "succeeded" => GREEN,
                "failed" | "lost" => RED,
                "stopped" => YELLOW,
                _ => DIM,
            };
            let text = match &s.detail {
                Some(d) => format!("{}: {}", s.status, one_line(d)),
                None => s.status.clone(),
            };
            line(style, text)
        }
        Event::Step(_) | Event::Runtime(_) | Event::Unknown(_) => None,
    }
}

/// The line `fracta logs` shows for any event: `event_line`, else the event's summary, dimmed.
pub fn log_line(event: &Event) -> EventLine {
    event_line(event).unwrap_or_else(|| EventLine {
        style: DIM,
        text: event.summary(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn fit_cuts_at_a_word_with_an_ellipsis() {
        assert_eq!(fit("short", 10), "short");
        assert_eq!(fit("the quick brown fox jumps", 16), "the quick brown…");
        assert_eq!(fit("abcdefghijklmnopqrstuvwxyz", 10), "abcdefghi…");
    }

    #[test]
    fn fit_never_splits_a_character() {
        // Three bytes each, two columns each.
        let s = "日本語のテキストです";
        let cut = fit(s, 7);
        assert_eq!(cut, "日本語…");
        assert!(cut.width() <= 7);
        let s = "héllo wörld ñandú";
        for w in 1..s.width() {
            assert!(fit(s, w).width() <= w, "{w}: {}", fit(s, w));
        }
    }

    #[test]
    fn durations_read_short() {
        assert_eq!(duration(5), "5s");
        assert_eq!(duration(65), "1m05s");
        assert_eq!(duration(3 * 3600 + 120), "3h02m");
        assert_eq!(age(7200), "2h");
        assert_eq!(age(3 * 86400), "3d");
    }

    #[test]
    fn a_tool_result_is_one_summarized_line() {
        let e: Event = serde_json::from_value(serde_json::json!({
            "type": "tool_result", "output": "line one\n\nline two\nline three\n"
        }))
        .unwrap();
        assert_eq!(
            event_line(&e).unwrap().text,
            "tool result: line one (+2 lines)"
        );
        let e: Event = serde_json::from_value(serde_json::json!({
            "type": "tool_call", "name": "Bash", "input": {"command": "git status", "description": "x"}
        }))
        .unwrap();
        assert_eq!(event_line(&e).unwrap().text, "tool Bash: git status");
    }
}
