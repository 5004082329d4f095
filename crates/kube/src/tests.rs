#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use fracta_config::LoadedConfig;
use fracta_state::{AgentRecord, Mode};

use crate::render::{RenderError, render};

/// Every credential form: an `apiKeyHelper` resolver (claude), a `secret_env` origin kept in
/// a cluster Secret (`secret_ref`, codex), a `command_output` origin (opencode), a
/// `secret_env` origin materialized from the control plane's env and a secret-looking
/// profile env entry (codex_env); `kubernetes.env` in list form (with `valueFrom`) and map
/// form; per-runtime and cluster-wide images.
pub const CONFIG: &str = r#"
runtime:
  backend: kubernetes
  kubernetes:
    image: registry.example/fracta/agent:1.2.3
    namespace: agents
auth:
  credentials:
    profiles:
      bedrock:
        runtime_auth_resolvers:
          token:
            type: command
            command: "printf %s \"$BEDROCK_TOKEN\""
            ttl_ms: 300000
        env:
          CLAUDE_CODE_USE_BEDROCK: "1"
          AWS_REGION: ap-southeast-2
        default_binding:
          type: claude_api_key_helper
          runtime_auth_resolver: token
      openai_secret:
        auth_origins:
          openai:
            type: secret_env
            env_name: OPENAI_API_KEY
            secret_ref: { name: openai, key: api-key }
        default_binding: { type: bearer_env, auth_origin: openai, env_name: OPENAI_API_KEY }
      opencode_bedrock:
        auth_origins:
          token:
            type: command_output
            command: ["aws-token-helper", "--region", "ap-southeast-2"]
        env:
          AWS_REGION: ap-southeast-2
        default_binding: { type: bearer_env, auth_origin: token, env_name: AWS_BEARER_TOKEN_BEDROCK }
      git:
        auth_origins:
          token:
            type: secret_env
            env_name: GIT_TOKEN
            secret_ref: { name: git, key: token }
      from_env:
        auth_origins:
          key:
            type: secret_env
            env_name: FRACTA_TEST_OPENAI_KEY
        env:
          EXTRA_API_TOKEN: "${FRACTA_TEST_EXTRA_TOKEN}"
          LITERAL_SECRET_KEY: do-not-print-this-literal
        default_binding: { type: bearer_env, auth_origin: key, env_name: OPENAI_API_KEY }
agents:
  agent_runtimes:
    claude:
      adapter: claude
      model: claude-sonnet-4-5
      auth_profile: bedrock
    codex:
      adapter: codex
      model: gpt-5.5
      auth_profile: openai_secret
      kubernetes:
        image: registry.example/fracta/agent-codex:1.2.3
        env:
          RUST_LOG: warn
    opencode:
      adapter: opencode
      model: amazon-bedrock/claude
      auth_profile: opencode_bedrock
      kubernetes:
        image: registry.example/fracta/agent-opencode:1.2.3
        env:
          - name: OPENCODE_DB
            value: /data/opencode.db
          - name: NODE_NAME
            valueFrom:
              fieldRef: { fieldPath: spec.nodeName }
          - name: PROXY_URL
            valueFrom:
              configMapKeyRef: { name: proxy, key: url }
    codex_env:
      adapter: codex
      auth_profile: from_env
    opencode_plain:
      adapter: opencode
      max_steps: 2
project:
  default_base_branch: main
  repository: https://git.example.com/acme/app.git
  repository_credential: { profile: git, origin: token }
  allowed_tools: [Read, Write, Edit, "Bash(git *)"]
"#;

fn cfg() -> LoadedConfig {
    fracta_config::parse(CONFIG, Path::new("/project/fracta.yaml")).unwrap()
}

pub(crate) fn agent_for(runtime: &str, adapter: &str, mode: Mode) -> AgentRecord {
    agent(runtime, adapter, mode, None)
}

fn agent(runtime: &str, adapter: &str, mode: Mode, model: Option<&str>) -> AgentRecord {
    let mut a = AgentRecord::new("review", runtime, adapter, mode, "Review the change.");
    a.id = "01JAGENT0000000000000000AB".into();
    a.root_id = a.id.clone();
    a.model = model.map(str::to_string);
    a
}

/// (snapshot name, runtime, adapter, mode, model)
const CASES: &[(&str, &str, &str, Mode, Option<&str>)] = &[
    (
        "claude_batch_api_key_helper",
        "claude",
        "claude",
        Mode::Batch,
        Some("claude-sonnet-4-5"),
    ),
    (
        "codex_batch_secret_ref",
        "codex",
        "codex",
        Mode::Batch,
        Some("gpt-5.5"),
    ),
    (
        "codex_stream_secret_ref",
        "codex",
        "codex",
        Mode::Stream,
        Some("gpt-5.5"),
    ),
    (
        "opencode_batch_command_output",
        "opencode",
        "opencode",
        Mode::Batch,
        Some("amazon-bedrock/claude"),
    ),
    (
        "opencode_stream_command_output",
        "opencode",
        "opencode",
        Mode::Stream,
        Some("amazon-bedrock/claude"),
    ),
    (
        "codex_env_batch_secret_env",
        "codex_env",
        "codex",
        Mode::Batch,
        None,
    ),
];

fn rendered(name: &str) -> String {
    let (_, runtime, adapter, mode, model) = CASES.iter().find(|c| c.0 == name).unwrap();
    render(&cfg(), &agent(runtime, adapter, *mode, *model), "agents")
        .unwrap()
        .to_yaml()
        .unwrap()
}

#[test]
fn rendered_objects_for_every_runtime_mode_and_credential_form() {
    for (name, ..) in CASES {
        insta::assert_snapshot!(*name, rendered(name));
    }
}

/// The seed's `kubernetes.env` puts `OPENCODE_DB=/data/opencode.db`; a batch Job mounts a
/// writable `/data` for it as a session's Pod does (it used to reach a Job with no `/data`).
#[test]
fn an_opencode_job_mounts_the_volume_its_database_env_points_into() {
    let r = render(
        &cfg(),
        &agent(
            "opencode",
            "opencode",
            Mode::Batch,
            Some("amazon-bedrock/claude"),
        ),
        "agents",
    )
    .unwrap();
    let v = r.objects().unwrap().pop().unwrap();
    let pod = &v["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let env = container["env"].as_array().unwrap();
    assert!(
        env.iter()
            .any(|e| e["name"] == "OPENCODE_DB" && e["value"] == "/data/opencode.db"),
        "{env:#?}"
    );
    // On the claim (its `data` sub-folder), so that a resume finds the conversation.
    let mounts = container["volumeMounts"].as_array().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m["mountPath"] == "/data" && m["name"] == "agent" && m["subPath"] == "data"),
        "{mounts:#?}"
    );
    let volumes = pod["volumes"].as_array().unwrap();
    assert!(
        volumes.iter().all(|v| v.get("emptyDir").is_none()),
        "{volumes:#?}"
    );
}

#[test]
fn claude_stream_on_kubernetes_is_refused() {
    let e = render(
        &cfg(),
        &agent("claude", "claude", Mode::Stream, None),
        "agents",
    )
    .unwrap_err();
    assert!(matches!(e, RenderError::Refused(_)));
    assert!(e.to_string().contains("run locally only"), "{e}");
}

/// An ACP agent talks over its stdio, which a Pod does not offer: rendering one, in batch or
/// stream mode, is refused with the reason.
#[test]
fn acp_runtimes_on_kubernetes_are_refused_with_the_reason() {
    let text = CONFIG.replace(
        "agents:\n  agent_runtimes:\n",
        "agents:\n  agent_runtimes:\n    gemini:\n      adapter: gemini\n    qwen:\n      adapter: acp\n      command: qwen\n      args: [--acp]\n",
    );
    let cfg = fracta_config::parse(&text, Path::new("/project/fracta.yaml")).unwrap();
    for (rt, mode) in [("gemini", Mode::Batch), ("qwen", Mode::Stream)] {
        let adapter = if rt == "qwen" { "acp" } else { rt };
        let e = render(&cfg, &agent(rt, adapter, mode, None), "agents").unwrap_err();
        assert!(matches!(e, RenderError::Refused(_)));
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("runtime `{rt}` cannot run on Kubernetes"))
                && msg.contains("stdin/stdout"),
            "{msg}"
        );
    }
}

#[test]
fn a_resolver_the_default_image_lacks_is_refused() {
    let text = CONFIG
        .replace("    image: registry.example/fracta/agent:1.2.3\n", "")
        .replace("printf %s", "my-token-helper");
    let cfg = fracta_config::parse(&text, Path::new("/project/fracta.yaml")).unwrap();
    let e = render(
        &cfg,
        &agent("claude", "claude", Mode::Batch, None),
        "agents",
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("my-token-helper") && msg.contains("kubernetes.image"),
        "{msg}"
    );
}

/// No secret value is ever part of what is rendered: plant sentinels in every place a
/// secret can come from and look for them in the output.
#[test]
fn no_secret_value_is_rendered() {
    // SAFETY: set once, before any thread of this test reads the environment.
    unsafe {
        std::env::set_var("FRACTA_TEST_OPENAI_KEY", "SENTINEL-OPENAI-31337");
        std::env::set_var("FRACTA_TEST_EXTRA_TOKEN", "SENTINEL-EXTRA-31337");
        std::env::set_var("BEDROCK_TOKEN", "SENTINEL-BEDROCK-31337");
    }
    for (name, ..) in CASES {
        let text = rendered(name);
        for s in ["SENTINEL-", "do-not-print-this-literal"] {
            assert!(!text.contains(s), "{name} shows a secret:\n{text}");
        }
    }
}

/// Every rendered object passes the real Kubernetes OpenAPI schemas (strict: no unknown
/// fields), with `kubernetes-validate` from PyPI (installed by `.ci/run`).
#[test]
fn rendered_objects_pass_the_kubernetes_schemas() {
    let dir = tempfile_dir();
    let mut files = Vec::new();
    for (name, ..) in CASES {
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(&path, rendered(name)).unwrap();
        files.push(path);
    }
    crate::tests::validate(&files);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("fracta-kube-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The Kubernetes version our k8s-openapi types target (feature `v1_33`).
pub const KUBERNETES_VERSION: &str = "1.33.0";

/// Run `kubernetes-validate --strict` on `files`; required under CI.
pub fn validate(files: &[std::path::PathBuf]) {
    let out = std::process::Command::new("kubernetes-validate")
        .args(["--strict", "--quiet", "-k", KUBERNETES_VERSION])
        .args(files)
        .output();
    match out {
        Ok(o) => assert!(
            o.status.success(),
            "kubernetes-validate rejected the objects:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        // A check that cannot run must not pass as if it had checked.
        Err(e) => panic!(
            "kubernetes-validate is not installed ({e}): pip install -r scripts/requirements-ci.txt (scripts/setup.sh does)"
        ),
    }
}

/// The validator itself rejects a broken object (so a pass means something).
#[test]
fn the_schema_check_rejects_a_broken_object() {
    if let Err(e) = std::process::Command::new("kubernetes-validate")
        .arg("--version")
        .output()
    {
        panic!(
            "kubernetes-validate is not installed ({e}): pip install -r scripts/requirements-ci.txt (scripts/setup.sh does)"
        );
    }
    let dir = tempfile_dir();
    let path = dir.join("broken.yaml");
    let text = rendered("codex_batch_secret_ref").replace("backoffLimit: 0", "backoffLimit: zero");
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new("kubernetes-validate")
        .args(["--strict", "--quiet", "-k", KUBERNETES_VERSION])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a Job with backoffLimit: zero passed"
    );
}

fn repo_root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The control plane's deployment file passes the Kubernetes schemas, and the `fracta.yaml` its
/// ConfigMap holds is a valid Fracta config for the Kubernetes backend.
#[test]
fn the_control_plane_deployment_file_is_valid() {
    let path = repo_root().join("deployment/k8s/manifests/fracta-controlplane.yaml");
    validate(std::slice::from_ref(&path));
    let text = std::fs::read_to_string(&path).unwrap();
    let docs: Vec<serde_json::Value> = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "ConfigMap",
            "PersistentVolumeClaim",
            "Deployment",
            "Service"
        ]
    );
    let config = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap")
        .and_then(|d| d["data"]["fracta.yaml"].as_str())
        .unwrap();
    let cfg = fracta_config::parse(config, Path::new("/var/lib/fracta/fracta.yaml")).unwrap();
    assert_eq!(
        cfg.config.runtime.backend,
        fracta_config::Backend::Kubernetes
    );
    // The seed's three runtimes, by its names, each rendering objects that pass the schemas.
    let runtimes: Vec<&str> = cfg
        .config
        .agents
        .agent_runtimes
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(runtimes, ["claude", "codex", "opencode"]);
    let dir = tempfile_dir().join("controlplane");
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    for (name, rt) in &cfg.config.agents.agent_runtimes {
        let r = render(
            &cfg,
            &agent(name, rt.adapter.as_str(), Mode::Batch, None),
            "fracta",
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(&path, r.to_yaml().unwrap()).unwrap();
        files.push(path);
    }
    validate(&files);
    // Prometheus finds /metrics on the control plane's Pod.
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let ann = &deployment["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(ann["prometheus.io/scrape"], "true");
    assert_eq!(ann["prometheus.io/path"], "/metrics");
    assert_eq!(ann["prometheus.io/port"], "8080");
    // Least privilege: only namespaced Jobs, Pods, Pods/log, Secrets, ConfigMaps and
    // NetworkPolicies.
    let role = docs.iter().find(|d| d["kind"] == "Role").unwrap();
    let mut resources: Vec<&str> = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r["resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
        })
        .collect();
    resources.sort_unstable();
    assert_eq!(
        resources,
        [
            "configmaps",
            "jobs",
            "networkpolicies",
            "pods",
            "pods/log",
            "pods/portforward",
            "secrets"
        ]
    );
}

/// The agent images pin the CLI versions the tests run (package.json).
#[test]
fn the_agent_images_pin_the_tested_cli_versions() {
    let pkg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo_root().join("package.json")).unwrap())
            .unwrap();
    let deps = &pkg["dependencies"];
    let pins = [
        ("CLAUDE_CODE_VERSION", "@anthropic-ai/claude-code"),
        ("CODEX_VERSION", "@openai/codex"),
        ("OPENCODE_VERSION", "opencode-ai"),
    ];
    for file in ["agent", "agent-claude", "agent-codex", "agent-opencode"] {
        let text = std::fs::read_to_string(
            repo_root().join(format!("deployment/docker/{file}.Dockerfile")),
        )
        .unwrap();
        for (arg, package) in pins {
            let want = deps[package].as_str().unwrap();
            assert!(
                text.contains(&format!("ARG {arg}={want}\n")),
                "{file}.Dockerfile does not pin {package} at {want}"
            );
        }
    }
    let gemini =
        std::fs::read_to_string(repo_root().join("deployment/docker/agent-gemini.Dockerfile"))
            .unwrap();
    let want = deps["@google/gemini-cli"].as_str().unwrap();
    assert!(
        gemini.contains(&format!("ARG GEMINI_CLI_VERSION={want}\n")),
        "agent-gemini.Dockerfile does not pin @google/gemini-cli at {want}"
    );
}

/// Under a control plane in the cluster, an agent that may spawn children gets Fracta's MCP
/// gateway at its in-cluster URL; its token comes from the agent's Secret.
#[test]
fn an_agent_in_the_cluster_reaches_the_gateway_with_its_token_from_its_secret() {
    let gateway = fracta_core::launch::Gateway {
        url: "http://fracta-controlplane.agents.svc:8080/mcp".into(),
        token: "SENTINEL-GATEWAY-TOKEN".into(),
    };
    for (runtime, adapter) in [
        ("claude", "claude"),
        ("codex", "codex"),
        ("opencode", "opencode"),
    ] {
        let r = crate::render::render_with(
            &cfg(),
            &agent(runtime, adapter, Mode::Batch, None),
            "agents",
            Some(&gateway),
        )
        .unwrap();
        let text = r.to_yaml().unwrap();
        assert!(!text.contains("SENTINEL-GATEWAY-TOKEN"), "{text}");
        assert!(
            text.contains("http://fracta-controlplane.agents.svc:8080/mcp"),
            "{runtime}: {text}"
        );
        assert_eq!(
            r.secret_sources.get("fracta-agent-token"),
            Some(&crate::render::SecretSource::GatewayToken)
        );
        if runtime == "claude" {
            insta::assert_snapshot!("claude_batch_with_gateway", text);
        }
    }
}

/// Pod settings: cluster-wide under `runtime.kubernetes`, a runtime's own `kubernetes`
/// replacing a key whole.
pub const SETTINGS_CONFIG: &str = r#"
runtime:
  backend: kubernetes
  kubernetes:
    image: registry.example/fracta/agent:1.2.3
    namespace: agents
    control_plane_labels:
      app: fracta-cp
    resources:
      requests: { cpu: 500m, memory: 1Gi }
      limits: { memory: 4Gi }
    node_selector:
      kubernetes.io/arch: amd64
    tolerations:
      - { key: dedicated, operator: Equal, value: agents, effect: NoSchedule }
    image_pull_secrets: [registry-creds]
    service_account: fracta-agent
    security_context:
      run_as_user: 1000
      run_as_group: 1000
      run_as_non_root: true
      fs_group: 1000
      seccomp_profile: RuntimeDefault
      allow_privilege_escalation: false
      drop_capabilities: [ALL]
    runtime_class_name: gvisor
project:
  repository: https://git.example.com/acme/app.git
agents:
  agent_runtimes:
    codex:
      adapter: codex
      kubernetes:
        resources:
          requests: { cpu: "2", memory: 4Gi }
          limits: { cpu: "4", memory: 8Gi, nvidia.com/gpu: "1" }
        tolerations:
          - { key: gpu, operator: Exists, effect: NoExecute, toleration_seconds: 300 }
        runtime_class_name: kata
    opencode:
      adapter: opencode
"#;

fn settings_rendered(runtime: &str, mode: Mode) -> crate::render::Rendered {
    let cfg = fracta_config::parse(SETTINGS_CONFIG, Path::new("/project/fracta.yaml")).unwrap();
    render(&cfg, &agent(runtime, runtime, mode, None), "agents").unwrap()
}

#[test]
fn pod_settings_are_rendered_and_a_runtime_overrides_the_cluster_wide_ones() {
    let codex = settings_rendered("codex", Mode::Stream).to_yaml().unwrap();
    let opencode = settings_rendered("opencode", Mode::Batch)
        .to_yaml()
        .unwrap();
    insta::assert_snapshot!("codex_stream_pod_settings", codex);
    insta::assert_snapshot!("opencode_batch_pod_settings", opencode);
    // The runtime's keys replace the cluster's; the rest come from the cluster.
    assert!(codex.contains("runtimeClassName: kata") && codex.contains("nvidia.com/gpu"));
    assert!(codex.contains("serviceAccountName: fracta-agent"));
    assert!(!codex.contains("dedicated"), "{codex}");
    assert!(opencode.contains("runtimeClassName: gvisor") && opencode.contains("dedicated"));
    let dir = tempfile_dir();
    let files: Vec<_> = [
        ("settings-codex.yaml", codex),
        ("settings-opencode.yaml", opencode),
    ]
    .into_iter()
    .map(|(n, text)| {
        let p = dir.join(n);
        std::fs::write(&p, text).unwrap();
        p
    })
    .collect();
    validate(&files);
}

/// A session's Pod may be reached on its port by the control plane only; a batch Job's Pod,
/// which serves nothing, by nobody.
#[test]
fn each_agent_pod_admits_only_the_control_plane_to_its_ports() {
    let pod = settings_rendered("codex", Mode::Stream);
    let np = serde_json::to_value(&pod.network_policy).unwrap();
    assert_eq!(
        np["spec"]["podSelector"]["matchLabels"][crate::render::LABEL_AGENT],
        "01JAGENT0000000000000000AB"
    );
    assert_eq!(np["spec"]["policyTypes"], serde_json::json!(["Ingress"]));
    let rules = np["spec"]["ingress"].as_array().unwrap();
    assert_eq!(rules.len(), 1, "{np:#}");
    assert_eq!(
        rules[0]["from"],
        serde_json::json!([{"podSelector": {"matchLabels": {"app": "fracta-cp"}}}])
    );
    assert_eq!(
        rules[0]["ports"],
        serde_json::json!([{"port": 8080, "protocol": "TCP"}])
    );
    let job = settings_rendered("opencode", Mode::Batch);
    let np = serde_json::to_value(&job.network_policy).unwrap();
    assert_eq!(np["spec"]["ingress"], serde_json::json!([]), "{np:#}");
    // Without `control_plane_labels`: the deployment file's label.
    let r = render(
        &cfg(),
        &agent("codex", "codex", Mode::Stream, None),
        "agents",
    )
    .unwrap();
    let np = serde_json::to_value(&r.network_policy).unwrap();
    assert_eq!(
        np["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"],
        serde_json::json!({"app.kubernetes.io/name": "fracta-controlplane"})
    );
}

/// A `kubernetes.env` path into `/data` gets the volume in a batch Job of any runtime.
#[test]
fn a_kubernetes_env_path_into_data_mounts_the_volume_in_a_codex_job() {
    let text = CONFIG.replace(
        "          RUST_LOG: warn\n",
        "          RUST_LOG: warn\n          CODEX_CACHE: /data/codex-cache\n",
    );
    let with_cache = fracta_config::parse(&text, Path::new("/project/fracta.yaml")).unwrap();
    let r = render(
        &with_cache,
        &agent("codex", "codex", Mode::Batch, None),
        "agents",
    )
    .unwrap();
    let v = r.objects().unwrap().pop().unwrap();
    let mounts = v["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        mounts.iter().any(|m| m["mountPath"] == "/data"),
        "{mounts:#?}"
    );
    // Without it, no /data.
    let r = render(
        &cfg(),
        &agent("codex", "codex", Mode::Batch, None),
        "agents",
    )
    .unwrap();
    let v = r.objects().unwrap().pop().unwrap();
    let mounts = v["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        !mounts.iter().any(|m| m["mountPath"] == "/data"),
        "{mounts:#?}"
    );
}

/// `render` and a spawn put agents in the same namespace: fracta.yaml's, else the kubeconfig
/// context's (the one named by `context`, else the current one), else `default`.
#[test]
fn the_namespace_comes_from_the_config_then_the_kubeconfig_context() {
    let dir = tempfile_dir().join("kubeconfig-ns");
    std::fs::create_dir_all(&dir).unwrap();
    let kc = dir.join("config");
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: \"http://127.0.0.1:9\"}\ncontexts:\n- name: one\n  context: {cluster: c, user: u, namespace: team-one}\n- name: two\n  context: {cluster: c, user: u}\ncurrent-context: one\nusers:\n- name: u\n  user: {token: t}\n",
    )
    .unwrap();
    // SAFETY: this test alone (its own process under nextest) reads KUBECONFIG.
    unsafe { std::env::set_var("KUBECONFIG", &kc) };
    let section =
        |namespace: Option<&str>, context: Option<&str>| fracta_config::KubernetesSection {
            namespace: namespace.map(str::to_string),
            context: context.map(str::to_string),
            ..Default::default()
        };
    let resolve = crate::client::resolve_namespace;
    assert_eq!(resolve(None), "team-one");
    assert_eq!(resolve(Some(&section(None, None))), "team-one");
    assert_eq!(resolve(Some(&section(None, Some("two")))), "default");
    assert_eq!(
        resolve(Some(&section(Some("agents"), Some("one")))),
        "agents"
    );
}

/// A session's Pod has no activeDeadlineSeconds (its idle timeout ends it, through the control
/// plane); a Job's one turn keeps the wall-clock budget as its deadline.
#[test]
fn a_session_pod_is_not_killed_at_the_wall_clock_budget_but_a_job_is() {
    let pod = render(
        &cfg(),
        &agent("codex", "codex", Mode::Stream, None),
        "agents",
    )
    .unwrap();
    let pod = pod.objects().unwrap().pop().unwrap();
    assert!(
        pod["spec"].get("activeDeadlineSeconds").is_none(),
        "{pod:#}"
    );
    let job = render(
        &cfg(),
        &agent("codex", "codex", Mode::Batch, None),
        "agents",
    )
    .unwrap();
    let job = job.objects().unwrap().pop().unwrap();
    assert_eq!(job["spec"]["activeDeadlineSeconds"], 3600, "{job:#}");
}

/// `project.repository`: the clone init container gets the remote, base and branch from its
/// env and the token from the cluster Secret the origin names; none of them in its script.
#[test]
fn the_clone_init_container_takes_the_remote_and_the_token_from_a_secret() {
    let r = render(
        &cfg(),
        &agent("codex", "codex", Mode::Batch, None),
        "agents",
    )
    .unwrap();
    let crate::render::Workload::Job(job) = &r.workload else {
        panic!("a batch agent is a Job")
    };
    let spec = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let init = spec.init_containers.as_ref().unwrap();
    assert_eq!(init[0].name, "clone");
    let env: std::collections::BTreeMap<_, _> = init[0]
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.as_str(), e))
        .collect();
    let value = |k: &str| env[k].value.clone().unwrap();
    assert_eq!(
        value("FRACTA_GIT_REPOSITORY"),
        "https://git.example.com/acme/app.git"
    );
    assert_eq!(value("FRACTA_GIT_BASE"), "main");
    assert_eq!(
        value("FRACTA_GIT_BRANCH"),
        fracta_core::workspace::branch_name("01JAGENT0000000000000000AB", "review")
    );
    assert_eq!(value("FRACTA_GIT_BRANCH"), "fracta/review-000000ab");
    assert_eq!(value("GIT_ASKPASS"), crate::render::GIT_ASKPASS);
    let token = env["FRACTA_GIT_TOKEN"].value_from.as_ref().unwrap();
    let s = token.secret_key_ref.as_ref().unwrap();
    assert_eq!((s.name.as_str(), s.key.as_str()), ("git", "token"));
    assert!(env["FRACTA_GIT_TOKEN"].value.is_none());
    let script = &init[0].command.as_ref().unwrap()[2];
    assert!(!script.contains("git.example.com"), "{script}");
}

/// A token from the control plane's env goes into the agent's own Secret, by reference.
#[test]
fn a_repository_token_from_the_control_planes_env_is_a_key_of_the_agents_secret() {
    let text = CONFIG.replace("secret_ref: { name: git, key: token }", "scope: any");
    let cfg = fracta_config::parse(&text, Path::new("/project/fracta.yaml")).unwrap();
    let r = render(&cfg, &agent("codex", "codex", Mode::Batch, None), "agents").unwrap();
    assert_eq!(
        r.secret_sources.get(crate::render::GIT_TOKEN_KEY),
        Some(&crate::render::SecretSource::Env {
            name: "GIT_TOKEN".into()
        })
    );
}

/// No `project.repository` and no `origin` remote: refused, naming the key to set.
#[test]
fn a_project_with_no_remote_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let text = CONFIG
        .replace("  repository: https://git.example.com/acme/app.git\n", "")
        .replace(
            "  repository_credential: { profile: git, origin: token }\n",
            "",
        );
    let cfg = fracta_config::parse(&text, &dir.path().join("fracta.yaml")).unwrap();
    let err = render(&cfg, &agent("codex", "codex", Mode::Batch, None), "agents").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("set project.repository"), "{msg}");
    assert!(msg.contains("no `origin` remote"), "{msg}");

    // With an `origin`, that is the default.
    let git = |args: &[&str]| {
        assert!(
            std::process::Command::new("git")
                .args(args)
                .current_dir(dir.path())
                .output()
                .unwrap()
                .status
                .success()
        );
    };
    git(&["init", "--quiet", "--initial-branch", "trunk"]);
    git(&[
        "remote",
        "add",
        "origin",
        "https://git.example.com/acme/origin.git",
    ]);
    let r = render(&cfg, &agent("codex", "codex", Mode::Batch, None), "agents").unwrap();
    let yaml = r.to_yaml().unwrap();
    assert!(
        yaml.contains("https://git.example.com/acme/origin.git"),
        "{yaml}"
    );
    // The base is the branch the project has checked out, as locally.
    assert!(yaml.contains("value: trunk"), "{yaml}");

    // An origin with a password in it is not copied into a manifest.
    git(&[
        "remote",
        "set-url",
        "origin",
        "https://bob:hunter2@git.example.com/a.git",
    ]);
    let msg = render(&cfg, &agent("codex", "codex", Mode::Batch, None), "agents")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("has credentials in it"), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
    assert!(msg.contains("set project.repository"), "{msg}");
}

/// Each agent's workspace and runtime home are on its own claim, sized and classed by
/// `runtime.kubernetes.workspace_volume`, with no `emptyDir` for either.
#[test]
fn the_workspace_and_home_are_on_a_claim_of_the_configured_class_and_size() {
    let text = CONFIG.replace(
        "    namespace: agents\n",
        "    namespace: agents\n    workspace_volume: { storage_class: fast-ssd, size: 25Gi }\n",
    );
    assert_ne!(text, CONFIG);
    let cfg = fracta_config::parse(&text, Path::new("/project/fracta.yaml")).unwrap();
    let r = render(&cfg, &agent("codex", "codex", Mode::Stream, None), "agents").unwrap();
    let spec = r.claim.spec.as_ref().unwrap();
    assert_eq!(spec.storage_class_name.as_deref(), Some("fast-ssd"));
    assert_eq!(
        spec.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"].0,
        "25Gi"
    );
    assert_eq!(r.claim.metadata.name.as_deref(), Some(r.name.as_str()));
    let crate::render::Workload::Pod(pod) = &r.workload else {
        panic!("a stream agent is a Pod")
    };
    let pod_spec = pod.spec.as_ref().unwrap();
    let agent_volume = pod_spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "agent")
        .unwrap();
    assert_eq!(
        agent_volume
            .persistent_volume_claim
            .as_ref()
            .unwrap()
            .claim_name,
        r.name
    );
    for c in pod_spec
        .containers
        .iter()
        .chain(pod_spec.init_containers.iter().flatten())
    {
        for m in c.volume_mounts.iter().flatten() {
            if m.mount_path == "/workspace" || m.mount_path == "/fracta" {
                assert_eq!(m.name, "agent", "{}: {m:?}", c.name);
                assert_eq!(
                    m.sub_path.as_deref(),
                    Some(m.mount_path.trim_start_matches('/'))
                );
            }
        }
    }
    // The first object is the claim.
    assert_eq!(r.objects().unwrap()[0]["kind"], "PersistentVolumeClaim");
}

/// A session's Pod runs its server inside Fracta's wrapper: without the git token in the
/// server's env, with what git needs to push (the token from its Secret), and the grace period
/// the wrapper has, once the Pod is deleted, to commit and push the agent's branch.
#[test]
fn a_session_pod_runs_its_server_in_the_wrapper_that_pushes_its_branch() {
    let r = render(
        &cfg(),
        &agent("codex", "codex", Mode::Stream, None),
        "agents",
    )
    .unwrap();
    let crate::render::Workload::Pod(pod) = &r.workload else {
        panic!("a stream agent is a Pod")
    };
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(
        spec.termination_grace_period_seconds,
        Some(crate::render::SESSION_GRACE_SECS)
    );
    let c = &spec.containers[0];
    let cmd = c.command.as_ref().unwrap();
    assert_eq!(cmd[..2], ["sh".to_string(), "-c".to_string()]);
    assert_eq!(
        cmd[3..],
        ["fracta-session".to_string(), "codex".to_string()]
    );
    let script = &cmd[2];
    assert!(
        script.starts_with("env -u FRACTA_GIT_TOKEN \"$@\" &\n"),
        "{script}"
    );
    assert!(script.contains("trap "), "{script}");
    assert!(
        script.contains("git push --quiet origin \"HEAD:refs/heads/$FRACTA_GIT_BRANCH\""),
        "{script}"
    );
    // Fracta's own files stay out of the commit.
    assert!(
        script.contains("git restore --staged --quiet -- '.codex/config.toml'"),
        "{script}"
    );
    // The server's args are the adapter's, untouched.
    assert_eq!(c.args.as_ref().unwrap()[0], "app-server");
    let env: std::collections::BTreeMap<_, _> = c
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.as_str(), e))
        .collect();
    for k in [
        "FRACTA_GIT_REPOSITORY",
        "FRACTA_GIT_BRANCH",
        "GIT_ASKPASS",
        "FRACTA_COMMIT_MESSAGE",
    ] {
        assert!(env[k].value.is_some(), "{k}");
    }
    let token = env["FRACTA_GIT_TOKEN"].value_from.as_ref().unwrap();
    assert_eq!(
        token.secret_key_ref.as_ref().map(|s| s.name.as_str()),
        Some("git")
    );
    assert!(env["FRACTA_GIT_TOKEN"].value.is_none());
}

/// A closed stream session's resumed turn is one turn, as locally: a Job on the agent's claim
/// (the same one its session's Pod had) running the batch CLI with the runtime's resume token.
#[test]
fn a_stream_agents_resumed_turn_renders_as_a_job_on_its_claim() {
    let mut a = agent("codex", "codex", Mode::Stream, None);
    a.resume_token = Some("0199-thread".into());
    let session = render(&cfg(), &a, "agents").unwrap();
    let turn = crate::render::render_turn(&cfg(), &a, "agents", None, false).unwrap();
    let crate::render::Workload::Job(job) = &turn.workload else {
        panic!("a resumed turn is a Job")
    };
    assert_eq!(turn.claim.metadata.name, session.claim.metadata.name);
    let spec = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let args = spec.containers[0].args.clone().unwrap();
    assert_eq!(args[..2], ["exec".to_string(), "resume".to_string()]);
    assert!(args.contains(&"0199-thread".to_string()), "{args:?}");
    // It serves nothing: no port, so its NetworkPolicy lets nothing in.
    assert!(spec.containers[0].ports.is_none());
    assert_eq!(
        turn.network_policy.spec.as_ref().unwrap().ingress,
        Some(vec![])
    );
}
