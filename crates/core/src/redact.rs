//! Redaction at the boundary: every secret value Fracta materializes is registered here, and
//! every text that leaves for the store, a log or the terminal passes through `redact`.

use std::sync::{Arc, RwLock};

pub const MASK: &str = "[REDACTED]";

/// Secrets shorter than this are not masked in text (they would mask innocent words); they
/// are still never written by Fracta itself.
const MIN_LEN: usize = 4;

#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Arc<RwLock<Vec<String>>>,
}

impl Redactor {
    pub fn new() -> Self {
        Self::default()
    }

    /// A redactor that already knows the values of Fracta's own secret-looking environment
    /// variables (`*_KEY`, `*_TOKEN`, `*SECRET*`, `*PASSWORD*`, …): a credential helper that
    /// fails and prints one on its stderr, or an agent that echoes one, shows the mask.
    /// Values shorter than 8 characters are left out (they would mask innocent words).
    pub fn with_secret_env() -> Self {
        let r = Self::new();
        for (k, v) in std::env::vars() {
            if v.trim().len() >= 8 && fracta_config::show::looks_secret(&k) {
                r.add(&v);
            }
        }
        r
    }

    pub fn add(&self, secret: &str) {
        let s = secret.trim();
        if s.len() < MIN_LEN {
            return;
        }
        if let Ok(mut v) = self.secrets.write()
            && !v.iter().any(|x| x == s)
        {
            v.push(s.to_string());
            // Longest first, so a secret that contains another is masked whole.
            v.sort_by_key(|x| std::cmp::Reverse(x.len()));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.read().map(|v| v.is_empty()).unwrap_or(true)
    }

    pub fn redact(&self, text: &str) -> String {
        let Ok(v) = self.secrets.read() else {
            return text.to_string();
        };
        let mut out = text.to_string();
        for s in v.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
        }
        out
    }

    /// Whether `text` holds a registered secret.
    pub fn contains_secret(&self, text: &str) -> bool {
        self.secrets
            .read()
            .is_ok_and(|v| v.iter().any(|s| text.contains(s.as_str())))
    }

    /// Redact every string inside a JSON value.
    pub fn redact_json(&self, v: &mut serde_json::Value) {
        if self.is_empty() {
            return;
        }
        match v {
            serde_json::Value::String(s) => {
                let r = self.redact(s);
                if r != *s {
                    *s = r;
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| self.redact_json(x)),
            serde_json::Value::Object(m) => m.values_mut().for_each(|x| self.redact_json(x)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_longest_first() {
        let r = Redactor::new();
        r.add("abcd");
        r.add("abcdefgh");
        assert_eq!(r.redact("x abcdefgh y abcd"), "x [REDACTED] y [REDACTED]");
        let mut j = serde_json::json!({"a": ["abcd"]});
        r.redact_json(&mut j);
        assert_eq!(j, serde_json::json!({"a": ["[REDACTED]"]}));
    }
}
