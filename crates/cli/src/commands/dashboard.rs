//! `fracta dashboard`: a link to the running control plane's dashboard with a one-time login
//! code (the page trades it for a session cookie; the admin token stays out of the browser).

use std::process::ExitCode;

use fracta_config::LoadedConfig;

use super::client::Client;

pub fn run(cfg: &LoadedConfig, a: &crate::cli::DashboardArgs) -> anyhow::Result<ExitCode> {
    let client = Client::require(cfg, "the dashboard")?;
    let code = client.login_code()?;
    let url = format!("{}/#code={}", client.base(), code.code);
    if a.json {
        println!(
            "{}",
            serde_json::json!({ "url": url, "expires_in_secs": code.expires_in_secs })
        );
    } else {
        println!("{url}");
        eprintln!(
            "open it in a browser within {} s: the code works once, then the page keeps a session cookie",
            code.expires_in_secs
        );
    }
    if a.open {
        let opener = if cfg!(target_os = "macos") {
            "open"
        } else {
            "xdg-open"
        };
        let opened = std::process::Command::new(opener)
            .arg(&url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        if !opened.is_ok_and(|s| s.success()) {
            eprintln!("could not open a browser with `{opener}`: open the link above by hand");
        }
    }
    Ok(ExitCode::SUCCESS)
}
