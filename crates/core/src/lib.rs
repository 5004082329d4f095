//! Fracta's engine, in rooms from the bottom up: secrets, redaction, env composition and the
//! launch description (`secret`, `redact`, `env`, `launch`, `event`, `task`, `error`); the
//! adapters that describe launches, credentials, workspaces and backends that run them
//! (`adapter`, `credentials`, `workspace`, `backend`); recording and the session loop
//! (`record`, `transport`, `session`); a remote backend's plug (`remote`); resolution and the
//! runner, which lives one agent's life (`resolve`, `runner`, `stop`); the supervisor on top
//! (trees, budgets, tokens, queueing). A module imports only from rooms below it.

pub mod adapter;
pub mod backend;
pub mod beside;
pub mod credentials;
pub mod env;
pub mod error;
pub mod event;
pub mod launch;
pub mod record;
pub mod redact;
pub mod remote;
pub mod resolve;
pub mod review;
pub mod runner;
pub mod secret;
pub mod session;
pub mod setup;
mod stop;
pub mod supervisor;
pub mod task;
pub mod transport;
pub mod workspace;

/// The layering rule, checked: no import circle among the engine's modules. Each top-level
/// module's files are read, every `crate::X` they name is an edge, and the graph must sort.
#[cfg(test)]
mod layering {
    #![allow(clippy::unwrap_used)]

    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    /// The top-level module a file belongs to: `adapter/claude.rs` → `adapter`.
    fn module_of(rel: &Path) -> String {
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        first.trim_end_matches(".rs").to_string()
    }

    fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }

    /// `crate::name` references in `text`, outside its `#[cfg(test)]` part.
    fn uses(text: &str) -> BTreeSet<String> {
        let text = text.split("#[cfg(test)]").next().unwrap_or("");
        let mut out = BTreeSet::new();
        let mut rest = text;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
        // `use crate::{a, b}` groups.
        let mut rest = text;
        while let Some(i) = rest.find("crate::{") {
            rest = &rest[i + "crate::{".len()..];
            let group = rest.split('}').next().unwrap_or("");
            for part in group.split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        }
        out
    }

    #[test]
    fn no_module_of_the_engine_imports_in_a_circle() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut all = Vec::new();
        files(&src, &mut all);
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for f in &all {
            let rel = f.strip_prefix(&src).unwrap();
            if rel == Path::new("lib.rs") {
                continue;
            }
            let m = module_of(rel);
            let deps = uses(&std::fs::read_to_string(f).unwrap());
            let entry = graph.entry(m.clone()).or_default();
            entry.extend(deps.into_iter().filter(|d| *d != m));
        }
        let modules: BTreeSet<String> = graph.keys().cloned().collect();
        for deps in graph.values_mut() {
            deps.retain(|d| modules.contains(d));
        }
        assert!(graph.len() > 15, "read the engine's modules: {graph:?}");
        // Kahn's sort: what cannot be placed sits on a circle.
        let mut left = graph.clone();
        loop {
            let ready: Vec<String> = left
                .iter()
                .filter(|(_, d)| d.iter().all(|x| !left.contains_key(x)))
                .map(|(m, _)| m.clone())
                .collect();
            if ready.is_empty() {
                break;
            }
            for m in ready {
                left.remove(&m);
            }
        }
        assert!(left.is_empty(), "modules on an import circle: {left:#?}");
        // And the rooms sit where docs/src/architecture.md says: nothing below the runner names it.
        for (m, deps) in &graph {
            if !["stop", "supervisor"].contains(&m.as_str()) {
                assert!(!deps.contains("runner"), "{m} imports the runner");
            }
            if m != "supervisor" {
                assert!(!deps.contains("supervisor"), "{m} imports the supervisor");
            }
        }
    }
}
