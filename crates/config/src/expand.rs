//! `${VAR}` expansion. Values keep their `${VAR}` text in the typed config and are expanded
//! only where they are used, so that a variable needed by one runtime never stops another.
//!
//! Forms: `${VAR}`, `${VAR:-default}` (default when unset or empty), and `$$` for a literal `$`.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ExpandError {
    #[error("environment variable `{0}` is not set")]
    Unset(String),
    #[error("unterminated `${{` in `{0}`")]
    Unterminated(String),
}

/// One `${…}` reference in a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarRef<'a> {
    pub name: &'a str,
    pub default: Option<&'a str>,
}

/// The references in `s`, in order.
pub fn references(s: &str) -> Vec<VarRef<'_>> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            rest = stripped;
            continue;
        }
        let Some(body) = after.strip_prefix('{') else {
            rest = after;
            continue;
        };
        let Some(end) = body.find('}') else { break };
        let inner = &body[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        out.push(VarRef { name, default });
        rest = &body[end + 1..];
    }
    out
}

/// Is `s` exactly one `${VAR}` and nothing else?
pub fn is_pure_reference(s: &str) -> bool {
    s.starts_with("${")
        && s.ends_with('}')
        && s[2..s.len() - 1]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Expand `s` with `lookup` (usually the process environment).
pub fn expand(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
            continue;
        }
        let Some(body) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let Some(end) = body.find('}') else {
            return Err(ExpandError::Unterminated(s.to_string()));
        };
        let inner = &body[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        match (
            lookup(name).filter(|v| !v.is_empty() || default.is_none()),
            default,
        ) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => return Err(ExpandError::Unset(name.to_string())),
        }
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Expand from the process environment.
pub fn expand_env(s: &str) -> Result<String, ExpandError> {
    expand(s, &|k| std::env::var(k).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "A" => Some("1".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands() {
        assert_eq!(expand("x${A}y", &env).unwrap(), "x1y");
        assert_eq!(expand("${B:-d}", &env).unwrap(), "d");
        assert_eq!(expand("${EMPTY:-d}", &env).unwrap(), "d");
        assert_eq!(expand("${EMPTY}", &env).unwrap(), "");
        assert_eq!(expand("$$A $A", &env).unwrap(), "$A $A");
        assert_eq!(expand("${B}", &env), Err(ExpandError::Unset("B".into())));
        assert!(matches!(
            expand("${A", &env),
            Err(ExpandError::Unterminated(_))
        ));
        assert_eq!(references("${A} ${B:-x} $${C}").len(), 2);
        assert!(is_pure_reference("${OPENAI_API_KEY}"));
        assert!(!is_pure_reference("Bearer ${T}"));
    }
}
