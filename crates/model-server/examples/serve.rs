//! Run the scripted model server by hand:
//! `cargo run -p fracta-model-server --example serve -- SCRIPT [ADDR] [RECORD.jsonl]`.

use fracta_model_server::{ModelServer, Script, ServerOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let script = Script::from_path(args.next().ok_or("usage: serve SCRIPT [ADDR] [RECORD]")?)?;
    let addr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:0".into())
        .parse()?;
    let mut options = ServerOptions::default();
    if let Some(record) = args.next() {
        options = options.with_record_file(record);
    }
    let server = ModelServer::start_with_options(script, addr, options).await?;
    println!("{}", server.url());
    tokio::signal::ctrl_c().await?;
    server.shutdown().await;
    Ok(())
}
