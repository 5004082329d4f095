//! Where each key and value of a YAML document stands, by key path
//! (`agents.agent_runtimes.claude.adapter`, `project.allowed_tools[2]`), so that errors found
//! after deserialization still point at a file, line and column.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl From<Marker> for Pos {
    fn from(m: Marker) -> Self {
        // yaml-rust2 lines are 1-based, columns 0-based.
        Pos {
            line: m.line(),
            column: m.col() + 1,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Span {
    /// Where the key of a mapping entry stands.
    pub key: Option<Pos>,
    /// Where the value starts.
    pub value: Option<Pos>,
}

/// A key given twice in one mapping: its path, and where each occurrence stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    /// The key as written.
    pub key: String,
    pub path: String,
    pub first: Pos,
    pub again: Pos,
}

/// Key path → positions, for one document.
#[derive(Debug, Default)]
pub struct SpanMap {
    spans: HashMap<String, Span>,
    duplicates: Vec<Duplicate>,
}

impl SpanMap {
    /// Collect positions; a document that does not parse gives an empty map.
    pub fn parse(src: &str) -> SpanMap {
        Self::try_parse(src).unwrap_or_default()
    }

    /// Collect positions, or the YAML syntax error with its position.
    pub fn try_parse(src: &str) -> Result<SpanMap, (String, Pos)> {
        let mut c = Collector::default();
        let mut parser = Parser::new_from_str(src);
        parser
            .load(&mut c, false)
            .map_err(|e| (e.info().to_string(), Pos::from(*e.marker())))?;
        Ok(SpanMap {
            spans: c.spans,
            duplicates: c.duplicates,
        })
    }

    /// Keys given more than once in the same mapping, in document order (YAML forbids them;
    /// a deserializer would silently keep the last).
    pub fn duplicates(&self) -> &[Duplicate] {
        &self.duplicates
    }

    pub fn get(&self, path: &str) -> Option<Span> {
        self.spans.get(path).copied()
    }

    /// The position of `path`'s key (or value), else that of its nearest ancestor.
    pub fn locate(&self, path: &str) -> Option<Pos> {
        let mut p = path;
        loop {
            if let Some(s) = self.spans.get(p)
                && let Some(pos) = s.key.or(s.value)
            {
                return Some(pos);
            }
            if p.is_empty() {
                return None;
            }
            p = parent(p);
        }
    }

    /// The position of `path`'s value (falling back to its key, then its ancestors).
    pub fn locate_value(&self, path: &str) -> Option<Pos> {
        match self.spans.get(path) {
            Some(Span { value: Some(v), .. }) => Some(*v),
            _ => self.locate(path),
        }
    }
}

/// `a.b[2].c` → `a.b[2]` → `a.b` → `a` → ``.
pub fn parent(path: &str) -> &str {
    if path.ends_with(']')
        && let Some(i) = path.rfind('[')
    {
        return &path[..i];
    }
    match path.rfind('.') {
        Some(i) => &path[..i],
        None => "",
    }
}

pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

enum Frame {
    Map {
        path: String,
        key: Option<String>,
        /// The keys read so far, and where.
        seen: HashMap<String, Pos>,
    },
    Seq {
        path: String,
        index: usize,
    },
}

#[derive(Default)]
struct Collector {
    stack: Vec<Frame>,
    spans: HashMap<String, Span>,
    duplicates: Vec<Duplicate>,
}

impl Collector {
    /// The path of the value about to be read, or None if the next node is a mapping key.
    fn value_path(&self) -> Option<String> {
        match self.stack.last() {
            None => Some(String::new()),
            Some(Frame::Map { key: None, .. }) => None,
            Some(Frame::Map {
                path, key: Some(k), ..
            }) => Some(join(path, k)),
            Some(Frame::Seq { path, index }) => Some(format!("{path}[{index}]")),
        }
    }

    fn advance(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Map { key, .. }) => *key = None,
            Some(Frame::Seq { index, .. }) => *index += 1,
            None => {}
        }
    }

    fn value_at(&mut self, path: String, mark: Marker) {
        self.spans.entry(path).or_default().value = Some(mark.into());
    }
}

impl MarkedEventReceiver for Collector {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(v, ..) => match self.value_path() {
                None => {
                    if let Some(Frame::Map { path, key, seen }) = self.stack.last_mut() {
                        let p = join(path, &v);
                        let here = Pos::from(mark);
                        if let Some(first) = seen.get(&v) {
                            self.duplicates.push(Duplicate {
                                key: v.clone(),
                                path: p.clone(),
                                first: *first,
                                again: here,
                            });
                        } else {
                            seen.insert(v.clone(), here);
                        }
                        *key = Some(v);
                        // The first occurrence keeps the key's span.
                        self.spans.entry(p).or_default().key.get_or_insert(here);
                    }
                }
                Some(p) => {
                    self.value_at(p, mark);
                    self.advance();
                }
            },
            Event::Alias(_) => {
                if let Some(p) = self.value_path() {
                    self.value_at(p, mark);
                }
                self.advance();
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                // A complex (non-scalar) mapping key gets a placeholder path.
                let p = self.value_path().unwrap_or_else(|| "?".to_string());
                self.value_at(p.clone(), mark);
                self.stack.push(if matches!(ev, Event::MappingStart(..)) {
                    Frame::Map {
                        path: p,
                        key: None,
                        seen: HashMap::new(),
                    }
                } else {
                    Frame::Seq { path: p, index: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.advance();
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_positions() {
        let src = "agents:\n  agent_runtimes:\n    claude:\n      adapter: claud\nproject:\n  allowed_tools:\n    - Read\n    - \"Bash(git *)\"\n";
        let m = SpanMap::parse(src);
        let s = m.get("agents.agent_runtimes.claude.adapter").unwrap();
        assert_eq!(s.key, Some(Pos { line: 4, column: 7 }));
        assert_eq!(
            s.value,
            Some(Pos {
                line: 4,
                column: 16
            })
        );
        assert_eq!(
            m.locate_value("project.allowed_tools[1]"),
            Some(Pos { line: 8, column: 7 })
        );
        // Unknown deeper paths fall back to the nearest ancestor.
        assert_eq!(
            m.locate("agents.agent_runtimes.claude.nope"),
            Some(Pos { line: 3, column: 5 })
        );
        assert_eq!(parent("a.b[2]"), "a.b");
        assert!(m.duplicates().is_empty());
    }

    #[test]
    fn duplicate_keys_are_found_with_both_positions() {
        let src = "agents:\n  agent_runtimes:\n    claude:\n      adapter: claude\n      env: { A: \"1\", A: \"2\" }\n    claude:\n      adapter: codex\n";
        let m = SpanMap::parse(src);
        assert_eq!(
            m.duplicates(),
            [
                Duplicate {
                    key: "A".into(),
                    path: "agents.agent_runtimes.claude.env.A".into(),
                    first: Pos {
                        line: 5,
                        column: 14
                    },
                    again: Pos {
                        line: 5,
                        column: 22
                    },
                },
                Duplicate {
                    key: "claude".into(),
                    path: "agents.agent_runtimes.claude".into(),
                    first: Pos { line: 3, column: 5 },
                    again: Pos { line: 6, column: 5 },
                },
            ]
        );
        // The same key in two different mappings is no duplicate.
        assert!(
            SpanMap::parse("a: { x: 1 }\nb: { x: 1 }\n")
                .duplicates()
                .is_empty()
        );
        assert_eq!(parent("a"), "");
    }
}
