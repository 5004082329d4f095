//! Human output on stdout, diagnostics on stderr; colour only on a terminal and never with
//! NO_COLOR (anstream decides).

use std::io::Write;

use anstyle::{AnsiColor, Style};
use fracta_config::{Diagnostic, Severity};

pub const RED: Style = AnsiColor::Red.on_default().bold();
pub const YELLOW: Style = AnsiColor::Yellow.on_default().bold();
#[allow(dead_code)]
pub const GREEN: Style = AnsiColor::Green.on_default().bold();
#[allow(dead_code)]
pub const DIM: Style = Style::new().dimmed();
#[allow(dead_code)]
pub const BOLD: Style = Style::new().bold();

/// `error: outer` then `  caused by: inner` for each cause, once.
pub fn error_chain(err: &anyhow::Error) {
    let mut e = anstream::stderr().lock();
    let _ = writeln!(e, "{RED}error{RED:#}: {err}");
    for cause in err.chain().skip(1) {
        let _ = writeln!(e, "  caused by: {cause}");
    }
}

pub fn warning(msg: &str) {
    let _ = writeln!(
        anstream::stderr().lock(),
        "{YELLOW}warning{YELLOW:#}: {msg}"
    );
}

/// Config diagnostics, with the severity label coloured.
pub fn diagnostics(diags: &[Diagnostic]) {
    let mut e = anstream::stderr().lock();
    for d in diags {
        let text = d.to_string();
        let (label, style) = match d.severity {
            Severity::Error => ("error", RED),
            Severity::Warning => ("warning", YELLOW),
        };
        let rest = text.strip_prefix(label).unwrap_or(&text);
        let _ = write!(e, "{style}{label}{style:#}{rest}");
    }
}

/// Pretty JSON on stdout, in one write (stdout is line-buffered: written straight to it, each
/// line of the document would be a system call of its own).
pub fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    let mut text = serde_json::to_vec_pretty(value)?;
    text.push(b'\n');
    let mut out = std::io::stdout().lock();
    out.write_all(&text)?;
    out.flush()?;
    Ok(())
}
