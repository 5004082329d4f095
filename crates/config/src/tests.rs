//! The seed's YAML blocks and a corpus of bad configs, as fixtures.

use std::path::{Path, PathBuf};

use crate::load::{ConfigError, parse};

fn fixtures(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(dir),
    )
    .unwrap()
    .map(|e| e.unwrap().path())
    .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
    .collect();
    v.sort();
    v
}

/// Display path, stable across machines.
fn rel(p: &Path) -> PathBuf {
    p.strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .unwrap()
        .to_path_buf()
}

fn lookup(k: &str) -> Option<String> {
    match k {
        "OPENAI_API_KEY" => Some("sk-SENTINEL-openai".into()),
        "AWS_BEARER_TOKEN_BEDROCK" => Some("SENTINEL-bedrock".into()),
        _ => None,
    }
}

fn merge(base: &mut serde_yaml_ng::Value, over: serde_yaml_ng::Value) {
    match (base, over) {
        (serde_yaml_ng::Value::Mapping(b), serde_yaml_ng::Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Fragments of the seed reference profiles that other blocks define: merge them over the
/// complete example plus the profile blocks.
fn with_base(name: &str, src: &str) -> String {
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/seed");
    let read = |f: &str| -> serde_yaml_ng::Value {
        serde_yaml_ng::from_str(&std::fs::read_to_string(seed.join(f)).unwrap()).unwrap()
    };
    let mut base = read("11-complete-example.yaml");
    merge(&mut base, read("04-codex-k8s-secret.yaml"));
    merge(&mut base, read("05-opencode-bedrock-command-output.yaml"));
    // Only the fragment's own runtimes: replace the example's runtime map with the fragment's.
    if let serde_yaml_ng::Value::Mapping(m) = &mut base
        && let Some(serde_yaml_ng::Value::Mapping(a)) = m.get_mut("agents")
    {
        a.remove("agent_runtimes");
        a.remove("default_runtime");
    }
    merge(&mut base, serde_yaml_ng::from_str(src).unwrap());
    let _ = name;
    serde_yaml_ng::to_string(&base).unwrap()
}

/// The blocks that reference profiles defined in other blocks.
const FRAGMENTS: &[&str] = &[
    "01-basic-local.yaml",
    "08-k8s-controlplane-configmap.yaml",
    "10-per-runtime-images.yaml",
];

#[test]
fn every_seed_block_loads_and_shows_what_the_seed_says() {
    let files = fixtures("seed");
    assert_eq!(files.len(), 10, "the seed has ten fracta.yaml blocks");
    for f in files {
        let name = f.file_name().unwrap().to_str().unwrap().to_string();
        let raw = std::fs::read_to_string(&f).unwrap();
        let src = if FRAGMENTS.contains(&name.as_str()) {
            with_base(&name, &raw)
        } else {
            raw
        };
        let loaded = match parse(&src, &rel(&f)) {
            Ok(l) => l,
            Err(e) => panic!("{name} does not load:\n{e}"),
        };
        let shown = serde_yaml_ng::to_string(&loaded.show(&lookup)).unwrap();
        assert!(
            !shown.contains("SENTINEL"),
            "{name}: a secret reached config show:\n{shown}"
        );
        let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
        insta::with_settings!({snapshot_suffix => name.trim_end_matches(".yaml").to_string(), description => "config show"}, {
            insta::assert_snapshot!("seed_show", format!("{shown}\n# warnings\n{}", warnings.join("\n")));
        });
    }
}

#[test]
fn seed_fixtures_match_the_seed_when_it_is_beside_the_repo() {
    let guide = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/seed/runtime-configuration-guide.md");
    let Ok(text) = std::fs::read_to_string(&guide) else {
        return;
    };
    let blocks: Vec<&str> = text
        .split("```yaml")
        .skip(1)
        .filter_map(|b| b.split_once('\n'))
        .map(|(_, rest)| rest.split("```").next().unwrap_or(""))
        .collect();
    let mut ours: Vec<String> = fixtures("seed")
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    ours.insert(
        8,
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fixtures/seed-k8s/opencode-serve-pod-spec.yaml"),
        )
        .unwrap(),
    );
    assert_eq!(blocks.len(), ours.len());
    for (b, o) in blocks.iter().zip(&ours) {
        assert_eq!(
            b, o,
            "a seed block changed; update crates/config/fixtures/seed"
        );
    }
}

#[test]
fn bad_configs_get_actionable_diagnostics() {
    for f in fixtures("bad") {
        let name = f
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .trim_end_matches(".yaml")
            .to_string();
        let src = std::fs::read_to_string(&f).unwrap();
        let err = match parse(&src, &rel(&f)) {
            Ok(_) => panic!("{name} should not load"),
            Err(e) => e,
        };
        let ConfigError::Invalid(diags) = &err else {
            panic!("{name}: {err}")
        };
        for d in diags {
            assert!(d.file.is_some(), "{name}: no file in {d}");
            if name != "empty" {
                assert!(
                    d.line.is_some() && d.column.is_some(),
                    "{name}: no position in {d}"
                );
            }
        }
        insta::with_settings!({snapshot_suffix => name.clone()}, {
            insta::assert_snapshot!("bad", err.to_string());
        });
    }
}

#[test]
fn missing_file_says_how_to_make_one() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("fracta.yaml");
    let err = crate::load::load_path(&p, crate::load::Found::Default).unwrap_err();
    assert!(matches!(err, ConfigError::NotFound { .. }));
    assert!(err.to_string().contains("not found"));
    assert!(err.help().unwrap().contains("fracta init"));
}

#[test]
fn legacy_runtimes_load_with_a_warning_and_lose_to_the_new_key() {
    let src = "runtimes:\n  claude:\n    adapter: claude\n";
    let l = parse(src, Path::new("f.yaml")).unwrap();
    assert!(l.config.agents.agent_runtimes.contains_key("claude"));
    assert_eq!(l.warnings.len(), 1);
    assert!(
        l.warnings[0].message.contains("agents.agent_runtimes"),
        "{}",
        l.warnings[0]
    );

    let both = "runtimes:\n  old:\n    adapter: codex\nagents:\n  agent_runtimes:\n    new:\n      adapter: claude\n";
    let l = parse(both, Path::new("f.yaml")).unwrap();
    assert_eq!(
        l.config.agents.agent_runtimes.keys().collect::<Vec<_>>(),
        vec!["new"]
    );
    assert!(l.warnings[0].message.contains("wins"), "{}", l.warnings[0]);
}

#[test]
fn unset_variables_are_warnings_with_their_key_path() {
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/seed/11-complete-example.yaml");
    let l = parse(&std::fs::read_to_string(&f).unwrap(), &rel(&f)).unwrap();
    let unset = l.unset_variables(&|_| None);
    let paths: Vec<_> = unset.iter().map(|d| d.key_path.clone().unwrap()).collect();
    assert_eq!(
        paths,
        vec![
            "agents.agent_runtimes.codex.env.OPENAI_API_KEY",
            "agents.agent_runtimes.opencode.env.AWS_BEARER_TOKEN_BEDROCK"
        ]
    );
    assert!(l.unset_variables(&lookup).is_empty());
}

#[test]
fn bedrock_model_ids_in_ap_southeast_2_get_the_au_prefix() {
    use crate::load::bedrock_au_model;
    assert_eq!(
        bedrock_au_model("amazon-bedrock/apac.anthropic.claude-sonnet-4-6").as_deref(),
        Some("amazon-bedrock/au.anthropic.claude-sonnet-4-6")
    );
    assert_eq!(
        bedrock_au_model("amazon-bedrock/anthropic.claude-sonnet-4-6").as_deref(),
        Some("amazon-bedrock/au.anthropic.claude-sonnet-4-6")
    );
    assert_eq!(
        bedrock_au_model("amazon-bedrock/au.anthropic.claude-sonnet-4-6"),
        None
    );
    assert_eq!(bedrock_au_model("openai/gpt-5"), None);
    let src = "agents:\n  agent_runtimes:\n    opencode:\n      adapter: opencode\n      model: amazon-bedrock/apac.anthropic.claude-sonnet-4-6\n      env:\n        AWS_REGION: ap-southeast-2\n";
    let l = parse(src, Path::new("f.yaml")).unwrap();
    assert_eq!(l.warnings.len(), 1);
    insta::assert_snapshot!(l.warnings[0].to_string());
}

mod fuzz {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// No input makes the loader panic.
        #[test]
        fn loader_never_panics_on_text(s in "\\PC{0,400}") {
            let _ = crate::load::parse(&s, std::path::Path::new("fuzz.yaml"));
        }

        /// YAML-shaped input built from the config's own vocabulary.
        #[test]
        fn loader_never_panics_on_yamlish(lines in proptest::collection::vec(
            ( 0usize..5,
              prop::sample::select(vec!["agents", "agent_runtimes", "claude", "adapter", "auth", "credentials", "profiles",
                  "auth_origins", "type", "command", "command_output", "secret_env", "env", "runtime", "backend",
                  "kubernetes", "image", "model_tiers", "heavy", "ttl_ms", "default_binding", "- x", "runtimes",
                  "auth_profile", "bearer_env", "scope", "env_name", "[a, b]", "{}", "&a", "*a", "\"${X}\"", "- name: A"]),
              prop::sample::select(vec!["", " claude", " codex", " 1", " [x]", " \"s\"", " {a: 1}", " ~", " :", " - y", " &b"]) ),
            0..25)) {
            let src: String = lines.iter().map(|(i, k, v)| format!("{}{}:{}\n", "  ".repeat(*i), k, v)).collect();
            let _ = crate::load::parse(&src, std::path::Path::new("fuzz.yaml"));
        }
    }
}

#[test]
fn project_setup_is_a_list_of_command_lines_with_timeouts_and_config_show_lists_them() {
    let src = "agents:\n  agent_runtimes:\n    claude:\n      adapter: claude\nproject:\n  setup:\n    - npm ci\n    - { run: make deps, timeout_secs: 30 }\n";
    let cfg = parse(src, Path::new("fracta.yaml")).unwrap();
    let setup = &cfg.config.project.setup;
    assert_eq!(setup.len(), 2);
    assert_eq!(setup[0].run, "npm ci");
    assert_eq!(
        setup[0].timeout_secs,
        crate::model::DEFAULT_SETUP_TIMEOUT_SECS
    );
    assert_eq!(
        (setup[1].run.as_str(), setup[1].timeout_secs),
        ("make deps", 30)
    );
    let shown = cfg.show(&lookup);
    assert_eq!(
        shown["project"]["setup"],
        serde_json::json!([
            { "run": "npm ci", "timeout_secs": 600 },
            { "run": "make deps", "timeout_secs": 30 }
        ])
    );
}

#[test]
fn project_setup_on_kubernetes_is_a_warning_that_it_is_not_run_there() {
    let src = "agents:\n  agent_runtimes:\n    claude:\n      adapter: claude\nruntime:\n  backend: kubernetes\nproject:\n  setup:\n    - npm ci\n";
    let cfg = parse(src, Path::new("fracta.yaml")).unwrap();
    let w: Vec<String> = cfg.warnings.iter().map(ToString::to_string).collect();
    assert!(
        w.iter().any(
            |w| w.contains("not run for agents on Kubernetes") && w.contains("fracta.yaml:8:3")
        ),
        "{w:?}"
    );
}
