//! The resolved view of a config for `fracta config show`: defaults filled in, `${VAR}`
//! expanded where it is safe to show, and every secret-bearing value redacted.

use serde_json::{Map, Value};

use crate::expand;
use crate::load::LoadedConfig;

/// What a redacted value is shown as.
pub const REDACTED: &str = "<redacted>";

/// Does an env var / config key name suggest that its value is a secret?
pub fn looks_secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "key",
        "token",
        "secret",
        "password",
        "passwd",
        "credential",
        "cookie",
        "private",
        "authorization",
    ]
    .iter()
    .any(|w| n.contains(w))
}

/// Show a value of a variable named `name`: references stay as written (`${OPENAI_API_KEY}`
/// says where the secret comes from without showing it), secrets are redacted, the rest is
/// expanded when every variable it uses is set.
fn show_value(name: &str, value: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    if looks_secret(name) {
        if expand::is_pure_reference(value) {
            value.to_string()
        } else {
            REDACTED.to_string()
        }
    } else if expand::references(value)
        .iter()
        .any(|r| looks_secret(r.name))
    {
        // `X-Auth: ${MY_API_TOKEN}`: say where the secret comes from, never what it is.
        value.to_string()
    } else {
        expand::expand(value, lookup).unwrap_or_else(|_| value.to_string())
    }
}

fn redact_env_map(v: &mut Value, lookup: &dyn Fn(&str) -> Option<String>) {
    if let Value::Object(m) = v {
        for (k, val) in m.iter_mut() {
            if let Value::String(s) = val {
                *s = show_value(k, s, lookup);
            }
        }
    }
}

/// Redact secret-looking keys anywhere in a free-form tree (`native_config`).
fn redact_tree(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, val) in m.iter_mut() {
                if looks_secret(k) && (val.is_string() || val.is_number()) {
                    if !val.as_str().is_some_and(expand::is_pure_reference) {
                        *val = Value::String(REDACTED.into());
                    }
                } else if k.eq_ignore_ascii_case("headers") || k.eq_ignore_ascii_case("env") {
                    if let Value::Object(h) = val {
                        for hv in h.values_mut() {
                            if hv.as_str().is_some_and(|s| !expand::is_pure_reference(s)) {
                                *hv = Value::String(REDACTED.into());
                            }
                        }
                    }
                } else {
                    redact_tree(val);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(redact_tree),
        _ => {}
    }
}

impl LoadedConfig {
    /// The resolved, redacted config as a JSON tree.
    pub fn show(&self, lookup: &dyn Fn(&str) -> Option<String>) -> Value {
        let mut v = serde_json::to_value(&self.config).unwrap_or(Value::Null);
        let Value::Object(root) = &mut v else {
            return v;
        };

        // Defaults a reader should see.
        let logging = obj(root, "logging");
        logging.insert(
            "file".into(),
            Value::String(self.log_path().display().to_string()),
        );
        logging
            .entry("level")
            .or_insert_with(|| Value::String("info".into()));
        let runtime = obj(root, "runtime");
        let state = obj(runtime, "state");
        obj(state, "sqlite").insert(
            "path".into(),
            Value::String(self.state_path().display().to_string()),
        );
        if let Some(d) = self.default_runtime() {
            obj(root, "agents").insert("default_runtime".into(), Value::String(d.to_string()));
        }
        let project = obj(root, "project");
        project
            .entry("default_base_branch")
            .or_insert_with(|| Value::String("main".into()));

        // Secrets.
        if let Some(Value::Object(rts)) = obj(root, "agents").get_mut("agent_runtimes") {
            for rt in rts.values_mut() {
                if let Some(env) = rt.get_mut("env") {
                    redact_env_map(env, lookup);
                }
                if let Some(kenv) = rt.get_mut("kubernetes").and_then(|k| k.get_mut("env")) {
                    match kenv {
                        Value::Object(_) => redact_env_map(kenv, lookup),
                        Value::Array(items) => {
                            for item in items {
                                let name = item
                                    .get("name")
                                    .and_then(Value::as_str)
                                    .unwrap_or("")
                                    .to_string();
                                if let Some(Value::String(s)) = item.get_mut("value") {
                                    *s = show_value(&name, s, lookup);
                                }
                            }
                        }
                        _ => {}
                    }
                }
                if let Some(nc) = rt.get_mut("native_config") {
                    redact_tree(nc);
                }
            }
        }
        if let Some(Value::Object(profiles)) = obj(root, "auth")
            .get_mut("credentials")
            .and_then(|c| c.get_mut("profiles"))
        {
            for p in profiles.values_mut() {
                if let Some(env) = p.get_mut("env") {
                    redact_env_map(env, lookup);
                }
            }
        }
        v
    }
}

fn obj<'a>(m: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = m.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(o) => o,
        _ => unreachable!("just made an object"),
    }
}
