//! Composing an agent's environment, and which of its entries carry secrets.

use std::collections::BTreeMap;

/// The env var that carries an agent's gateway token.
pub const AGENT_TOKEN_ENV: &str = "FRACTA_AGENT_TOKEN";

/// The agent's environment. Precedence, lowest first: Fracta's own (inherited) environment,
/// the adapter's defaults (quiet/offline switches, `CODEX_HOME`), the profile's `env`, the
/// runtime's `env`, then bindings (`bearer_env`). Fracta's own `FRACTA_*` variables are not
/// passed on.
pub fn compose_env(
    inherited: impl IntoIterator<Item = (String, String)>,
    adapter: &BTreeMap<String, String>,
    profile: &BTreeMap<String, String>,
    runtime: &BTreeMap<String, String>,
    bindings: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = inherited
        .into_iter()
        .filter(|(k, _)| !k.starts_with("FRACTA_"))
        .collect();
    for layer in [adapter, profile, runtime, bindings] {
        env.extend(layer.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    env
}

/// Is an env entry secret-bearing? Its name, or the name of a `${VAR}` it takes its value
/// from, looks like a key, token, secret, password or credential. Such values are registered
/// with the redactor, so they never reach an event, a log or an output.
pub fn is_secret_env(name: &str, raw_value: &str) -> bool {
    fracta_config::show::looks_secret(name)
        || fracta_config::expand::references(raw_value)
            .iter()
            .any(|r| fracta_config::show::looks_secret(r.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn env_precedence_inherited_adapter_profile_runtime_binding() {
        let inherited = vec![
            ("A".to_string(), "inherited".to_string()),
            ("B".to_string(), "inherited".to_string()),
            ("FRACTA_CONFIG".to_string(), "x".to_string()),
            ("KEEP".to_string(), "inherited".to_string()),
        ];
        let env = compose_env(
            inherited,
            &m(&[
                ("A", "adapter"),
                ("B", "adapter"),
                ("C", "adapter"),
                ("D", "adapter"),
            ]),
            &m(&[("B", "profile"), ("C", "profile"), ("D", "profile")]),
            &m(&[("C", "runtime"), ("D", "runtime")]),
            &m(&[("D", "binding")]),
        );
        assert_eq!(
            env,
            m(&[
                ("A", "adapter"),
                ("B", "profile"),
                ("C", "runtime"),
                ("D", "binding"),
                ("KEEP", "inherited")
            ])
        );
    }
}
