//! `fracta auth check`.

use std::io::Write;
use std::process::ExitCode;

use fracta_config::LoadedConfig;
use fracta_core::redact::Redactor;

use crate::cli::AuthCheckArgs;
use crate::exit::{self, Failure};
use crate::output::{self, GREEN, RED};

pub fn check(cfg: &LoadedConfig, a: AuthCheckArgs) -> anyhow::Result<ExitCode> {
    let redactor = Redactor::with_secret_env();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let results = rt
        .block_on(fracta_core::credentials::check(
            cfg,
            a.profile.as_deref(),
            &redactor,
        ))
        .map_err(|e| Failure::msg(exit::NOT_FOUND, e))?;
    let failed = results.iter().filter(|r| !r.ok).count();
    if a.json {
        output::json(&results)?;
    } else if results.is_empty() {
        println!("no auth origins or resolvers are configured");
    } else {
        let mut out = anstream::stdout().lock();
        for r in &results {
            let (style, word) = if r.ok { (GREEN, "ok") } else { (RED, "FAILED") };
            let secret = match (r.length, &r.fingerprint) {
                (Some(l), Some(f)) => format!("  {l} chars, sha256:{f}"),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "{style}{word:<6}{style:#} {}.{} {} ({}){secret}{}",
                r.profile,
                r.kind,
                r.name,
                r.source,
                r.detail
                    .as_deref()
                    .map(|d| format!("  — {d}"))
                    .unwrap_or_default()
            );
        }
    }
    if failed > 0 {
        Err(Failure::reported(exit::FAILURE))
    } else {
        Ok(ExitCode::SUCCESS)
    }
}
