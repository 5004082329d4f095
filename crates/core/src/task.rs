//! Tasks: `.fracta/tasks/<name>.md` with YAML front matter for defaults; the body is the
//! instructions. Or inline, with `--prompt`.

use std::path::{Path, PathBuf};

use fracta_config::{Mode, Tier};
use serde::{Deserialize, Serialize};

/// A task's front matter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskDefaults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Task {
    pub name: String,
    #[serde(flatten)]
    pub defaults: TaskDefaults,
    pub instructions: String,
    /// The task file, or None for an inline task.
    pub path: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("no task `{name}`: there is no {} and no --prompt was given ({})", path.display(), known_list(known))]
    NotFound {
        name: String,
        path: PathBuf,
        known: Vec<String>,
    },
    #[error("{}:{line}: invalid task front matter: {message}", path.display())]
    FrontMatter {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "invalid task name `{0}`: it has no letter or digit to name it by; give --task NAME or --prompt TEXT"
    )]
    BadName(String),
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        "no tasks are defined yet; create .fracta/tasks/NAME.md or pass --prompt TEXT".to_string()
    } else {
        format!("known tasks: {}", known.join(", "))
    }
}

/// Split `---\nYAML\n---\nbody`; a file without front matter is all body.
fn split_front_matter(text: &str) -> (Option<&str>, &str) {
    let t = text.strip_prefix('\u{feff}').unwrap_or(text);
    let Some(rest) = t
        .strip_prefix("---\n")
        .or_else(|| t.strip_prefix("---\r\n"))
    else {
        return (None, t);
    };
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end() == "---" {
            return (Some(&rest[..offset]), &rest[offset + line.len()..]);
        }
        offset += line.len();
    }
    (None, t)
}

pub fn parse(name: &str, text: &str, path: &Path) -> Result<Task, TaskError> {
    let (fm, body) = split_front_matter(text);
    let defaults = match fm {
        Some(y) if !y.trim().is_empty() => {
            serde_yaml_ng::from_str::<Option<TaskDefaults>>(y)
                .map_err(|e| TaskError::FrontMatter {
                    path: path.to_path_buf(),
                    // +1 for the opening `---` line.
                    line: e.location().map(|l| l.line() + 1).unwrap_or(1),
                    message: e
                        .to_string()
                        .split(" at line ")
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                })?
                .unwrap_or_default()
        }
        _ => TaskDefaults::default(),
    };
    Ok(Task {
        name: name.to_string(),
        defaults,
        instructions: body.trim().to_string(),
        path: Some(path.to_path_buf()),
    })
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A task name made of free text: lowercase ASCII letters and digits, runs of anything else
/// as one `-`, at most six words and 48 characters; empty when the text has no letter or digit.
pub fn slug(text: &str) -> String {
    let words: Vec<String> = text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(6)
        .map(str::to_ascii_lowercase)
        .collect();
    let mut out = String::new();
    for w in words {
        if !out.is_empty() && out.len() + 1 + w.len() > 48 {
            break;
        }
        if !out.is_empty() {
            out.push('-');
        }
        out.push_str(&w);
    }
    out.chars().take(48).collect()
}

/// The tasks defined in `dir`, by name.
pub fn list(dir: &Path) -> Result<Vec<Task>, TaskError> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(source) => {
            return Err(TaskError::Io {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "md")
            && let Some(name) = p.file_stem().and_then(|s| s.to_str())
        {
            let text = std::fs::read_to_string(&p).map_err(|source| TaskError::Io {
                path: p.clone(),
                source,
            })?;
            out.push(parse(name, &text, &p)?);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Resolve a task by name; with `prompt`, an unknown name becomes an inline task and a known
/// one gets the prompt appended to its body.
pub fn resolve(dir: &Path, name: &str, prompt: Option<&str>) -> Result<Task, TaskError> {
    // Free text names a task by its slug ("Fix bug #12" → `fix-bug-12`); no name at all, by
    // the first words of the prompt.
    let derived;
    let name = if valid_name(name) {
        name
    } else {
        let from = if name.trim().is_empty() {
            prompt.unwrap_or_default()
        } else {
            name
        };
        derived = slug(from);
        if derived.is_empty() {
            return Err(TaskError::BadName(name.to_string()));
        }
        &derived
    };
    let path = dir.join(format!("{name}.md"));
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let mut t = parse(name, &text, &path)?;
            if let Some(p) = prompt {
                t.instructions = if t.instructions.is_empty() {
                    p.to_string()
                } else {
                    format!("{}\n\n{p}", t.instructions)
                };
            }
            Ok(t)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match prompt {
            Some(p) => Ok(Task {
                name: name.to_string(),
                defaults: TaskDefaults::default(),
                instructions: p.to_string(),
                path: None,
            }),
            None => {
                let known = list(dir)
                    .map(|v| v.into_iter().map(|t| t.name).collect())
                    .unwrap_or_default();
                Err(TaskError::NotFound {
                    name: name.to_string(),
                    path,
                    known,
                })
            }
        },
        Err(source) => Err(TaskError::Io { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_text_names_a_task_by_its_slug() {
        assert_eq!(slug("fix bug #12"), "fix-bug-12");
        assert_eq!(
            slug("  Review: the LATEST change!  "),
            "review-the-latest-change"
        );
        assert_eq!(
            slug("one two three four five six seven"),
            "one-two-three-four-five-six"
        );
        assert_eq!(slug("#!?"), "");
        assert!(slug(&"x".repeat(100)).len() <= 48);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("review.md"), "Review it.\n").unwrap();
        // A free-text name finds the task file its slug names.
        let t = resolve(dir.path(), "review!", None).unwrap();
        assert_eq!(
            (t.name.as_str(), t.instructions.as_str()),
            ("review", "Review it.")
        );
        let t = resolve(dir.path(), "fix bug #12", Some("do it")).unwrap();
        assert_eq!(t.name, "fix-bug-12");
        // No name: the prompt's first words.
        let t = resolve(
            dir.path(),
            "",
            Some("Fix the flaky test in tree.rs, please"),
        )
        .unwrap();
        assert_eq!(t.name, "fix-the-flaky-test-in-tree");
        assert!(matches!(
            resolve(dir.path(), "#!", Some("")),
            Err(TaskError::BadName(_))
        ));
    }

    #[test]
    fn front_matter_and_body() {
        let t = parse(
            "t",
            "---\ndescription: d\nruntime: codex\ntier: heavy\n---\nDo it.\n",
            Path::new("t.md"),
        )
        .unwrap();
        assert_eq!(t.defaults.runtime.as_deref(), Some("codex"));
        assert_eq!(t.defaults.tier, Some(Tier::Heavy));
        assert_eq!(t.instructions, "Do it.");
        let t = parse("t", "Just a body", Path::new("t.md")).unwrap();
        assert_eq!(t.instructions, "Just a body");
        let e = parse("t", "---\nruntim: x\n---\nb", Path::new("t.md")).unwrap_err();
        assert!(e.to_string().contains("t.md:2"), "{e}");
    }

    #[test]
    fn unknown_task_lists_known_ones() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a.md"), "x").unwrap();
        let e = resolve(d.path(), "b", None).unwrap_err();
        assert!(e.to_string().contains("known tasks: a"), "{e}");
        let t = resolve(d.path(), "a", Some("more")).unwrap();
        assert_eq!(t.instructions, "x\n\nmore");
        assert!(
            resolve(d.path(), "b", Some("inline"))
                .unwrap()
                .path
                .is_none()
        );
    }
}
