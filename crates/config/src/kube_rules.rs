//! The checks on the Kubernetes Pod settings (`runtime.kubernetes` and a runtime's
//! `kubernetes`) that the API server would otherwise make at spawn: quantities, names,
//! tolerations, labels.

use indexmap::IndexMap;

use crate::diagnostic::{Diagnostic, SourceCtx};
use crate::model::{Resources, SecurityContext, TaintEffect, Toleration, TolerationOperator};

/// The Pod settings of one `kubernetes` block, borrowed for checking.
pub(crate) struct PodFields<'a> {
    pub resources: Option<&'a Resources>,
    pub node_selector: Option<&'a IndexMap<String, String>>,
    pub tolerations: Option<&'a [Toleration]>,
    pub image_pull_secrets: Option<&'a [String]>,
    pub service_account: Option<&'a String>,
    pub security_context: Option<&'a SecurityContext>,
    pub runtime_class_name: Option<&'a String>,
}

/// A Kubernetes quantity: a decimal number with an optional binary (`Ki`…`Ei`), decimal SI
/// (`n u m k M G T P E`) or exponent (`e3`) suffix.
pub fn is_quantity(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(digits_end);
    let valid_number = !number.is_empty()
        && number != "."
        && number.matches('.').count() <= 1
        && number.chars().any(|c| c.is_ascii_digit());
    if !valid_number {
        return false;
    }
    const SUFFIXES: &[&str] = &[
        "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E",
    ];
    if SUFFIXES.contains(&suffix) {
        return true;
    }
    match suffix.strip_prefix(['e', 'E']) {
        Some(exp) => {
            let exp = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            !exp.is_empty() && exp.chars().all(|c| c.is_ascii_digit())
        }
        None => false,
    }
}

/// A DNS-1123 subdomain (the name of a ServiceAccount, Secret or RuntimeClass).
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// A label value: empty, or at most 63 of `[A-Za-z0-9._-]` starting and ending alphanumeric.
pub fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// A label key: an optional DNS subdomain prefix and `/`, then a name as a label value.
pub fn is_label_key(s: &str) -> bool {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    prefix.is_none_or(is_dns_subdomain) && !name.is_empty() && is_label_value(name)
}

const NAME_HELP: &str = "a Kubernetes object name: lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit";

pub(crate) fn check_pod_fields(
    f: &PodFields<'_>,
    base: &str,
    ctx: &SourceCtx<'_>,
    diags: &mut Vec<Diagnostic>,
) {
    if let Some(r) = f.resources {
        for (kind, map) in [("requests", &r.requests), ("limits", &r.limits)] {
            for (name, q) in map {
                let path = format!("{base}.resources.{kind}.{name}");
                if !is_quantity(q) {
                    diags.push(
                        Diagnostic::error(format!("`{q}` is not a Kubernetes quantity"))
                            .at_value(ctx, &path)
                            .with_help("write a number with an optional unit: `500m` or `2` (cpu), `512Mi` or `4Gi` (memory)"),
                    );
                }
                if !is_label_key(name) {
                    diags.push(
                        Diagnostic::error(format!("`{name}` is not a resource name"))
                            .at_key(ctx, &path)
                            .with_help("use `cpu`, `memory`, `ephemeral-storage` or an extended resource such as `nvidia.com/gpu`"),
                    );
                }
            }
        }
    }
    if let Some(ns) = f.node_selector {
        for (k, v) in ns {
            let path = format!("{base}.node_selector.{k}");
            if !is_label_key(k) {
                diags.push(
                    Diagnostic::error(format!("`{k}` is not a node label key"))
                        .at_key(ctx, &path)
                        .with_help("a label key is an optional DNS prefix and `/`, then at most 63 of letters, digits, `-`, `_`, `.` (e.g. `kubernetes.io/arch`)"),
                );
            }
            if !is_label_value(v) {
                diags.push(
                    Diagnostic::error(format!("`{v}` is not a node label value"))
                        .at_value(ctx, &path)
                        .with_help("a label value is at most 63 of letters, digits, `-`, `_`, `.`, starting and ending with a letter or digit"),
                );
            }
        }
    }
    for (i, t) in f.tolerations.unwrap_or_default().iter().enumerate() {
        let path = format!("{base}.tolerations[{i}]");
        let op = t.operator.unwrap_or(TolerationOperator::Equal);
        if op == TolerationOperator::Exists && t.value.as_deref().is_some_and(|v| !v.is_empty()) {
            diags.push(
                Diagnostic::error("a toleration with `operator: Exists` matches any value; it must not set `value`")
                    .at_value(ctx, &format!("{path}.value"))
                    .with_help("remove `value`, or use `operator: Equal`"),
            );
        }
        if t.key.as_deref().is_none_or(str::is_empty) && op != TolerationOperator::Exists {
            diags.push(
                Diagnostic::error("a toleration without `key` must have `operator: Exists` (it tolerates every taint)")
                    .at_key(ctx, &path)
                    .with_help("set `key` to the taint's key, or `operator: Exists`"),
            );
        }
        if t.toleration_seconds.is_some() && t.effect != Some(TaintEffect::NoExecute) {
            diags.push(
                Diagnostic::error("`toleration_seconds` only applies to `effect: NoExecute`")
                    .at_value(ctx, &format!("{path}.toleration_seconds"))
                    .with_help("set `effect: NoExecute`, or remove `toleration_seconds`"),
            );
        }
        if let Some(k) = &t.key
            && !k.is_empty()
            && !is_label_key(k)
        {
            diags.push(
                Diagnostic::error(format!("`{k}` is not a taint key"))
                    .at_value(ctx, &format!("{path}.key"))
                    .with_help("a taint key is written as a label key (e.g. `nvidia.com/gpu`)"),
            );
        }
    }
    for (i, s) in f.image_pull_secrets.unwrap_or_default().iter().enumerate() {
        if !is_dns_subdomain(s) {
            diags.push(
                Diagnostic::error(format!("`{s}` is not a Secret name"))
                    .at_value(ctx, &format!("{base}.image_pull_secrets[{i}]"))
                    .with_help(NAME_HELP),
            );
        }
    }
    for (key, v) in [
        ("service_account", f.service_account),
        ("runtime_class_name", f.runtime_class_name),
    ] {
        if let Some(v) = v
            && !is_dns_subdomain(v)
        {
            diags.push(
                Diagnostic::error(format!("`{v}` is not a valid `{key}`"))
                    .at_value(ctx, &format!("{base}.{key}"))
                    .with_help(NAME_HELP),
            );
        }
    }
    if let Some(sc) = f.security_context {
        for (i, c) in sc.drop_capabilities.iter().enumerate() {
            if c.is_empty() || !c.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                diags.push(
                    Diagnostic::error(format!("`{c}` is not a Linux capability"))
                        .at_value(ctx, &format!("{base}.security_context.drop_capabilities[{i}]"))
                        .with_help("write capabilities in capitals without `CAP_`: `ALL`, `NET_RAW`, `SYS_ADMIN`"),
                );
            }
        }
        for (key, v) in [
            ("run_as_user", sc.run_as_user),
            ("run_as_group", sc.run_as_group),
            ("fs_group", sc.fs_group),
        ] {
            if v.is_some_and(|v| v < 0) {
                diags.push(
                    Diagnostic::error(format!("`{key}` must be a user or group id (0 or more)"))
                        .at_value(ctx, &format!("{base}.security_context.{key}")),
                );
            }
        }
        if sc.run_as_non_root == Some(true) && sc.run_as_user == Some(0) {
            diags.push(
                Diagnostic::error(
                    "`run_as_non_root: true` with `run_as_user: 0` (root) can never start",
                )
                .at_value(ctx, &format!("{base}.security_context.run_as_user"))
                .with_help("pick a non-zero user id, or drop `run_as_non_root`"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        for ok in [
            "1", "500m", "0.5", "2Gi", "512Mi", "1e3", "1.5G", "100k", ".5",
        ] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "m", "2GB", "1.2.3", "abc", "1 Gi", "Gi", "1e"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn names_and_labels() {
        assert!(is_dns_subdomain("agent-pull.secret"));
        assert!(!is_dns_subdomain("Agent"));
        assert!(!is_dns_subdomain("-a"));
        assert!(is_label_key("kubernetes.io/arch"));
        assert!(is_label_key("pool"));
        assert!(!is_label_key("a/b/c"));
        assert!(is_label_value(""));
        assert!(!is_label_value("-x"));
    }
}
