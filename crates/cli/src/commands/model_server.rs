//! `fracta model-server`: the scripted model server, for trying Fracta offline.

use std::process::ExitCode;

use fracta_model_server::{ModelServer, Reply, Script, ServerOptions};

use crate::cli::ModelServerArgs;

pub fn run(a: ModelServerArgs) -> anyhow::Result<ExitCode> {
    let script = match &a.script {
        Some(p) => Script::from_path(p)?,
        None => Script::fallback_only(Reply::text("Hello from Fracta's scripted model server.")),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut opts = ServerOptions::default();
        if let Some(r) = &a.record {
            opts = opts.with_record_file(r.clone());
        }
        let server = ModelServer::start_with_options(script, a.listen, opts).await?;
        println!("scripted model server listening on {}", server.url());
        println!(
            "  Anthropic Messages: {}/v1/messages   OpenAI Responses: {}/v1/responses",
            server.url(),
            server.url()
        );
        println!(
            "  requests received:  {}/_fracta/requests   (Ctrl-C to stop)",
            server.url()
        );
        tokio::signal::ctrl_c().await?;
        server.shutdown().await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
