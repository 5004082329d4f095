//! Signals are the binary's business: the engine only hears of them as a `Shutdown`.
//! Ctrl-C means what the command says it means (a foreground spawn stops its agents; `serve`
//! shuts down); SIGTERM and SIGHUP (the terminal closed) always mean "shut down".

use fracta_core::session::Shutdown;
use tokio::signal::unix::{SignalKind, signal};

/// Call `f` with each signal Fracta is sent from now on (inside a tokio runtime).
pub fn forward(ctrl_c: Shutdown, f: impl Fn(Shutdown) + Send + 'static) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        loop {
            let s = tokio::select! {
                Some(()) = int.recv() => ctrl_c,
                Some(()) = term.recv() => Shutdown::Terminate("SIGTERM"),
                Some(()) = hup.recv() => Shutdown::Terminate("SIGHUP"),
                else => break,
            };
            tracing::info!("fracta received a signal: {s:?}");
            f(s);
        }
    });
    Ok(())
}

/// A watch that hears the signals, for a run hosted without a supervisor.
pub fn watch(ctrl_c: Shutdown) -> std::io::Result<tokio::sync::watch::Receiver<Option<Shutdown>>> {
    let (tx, rx) = tokio::sync::watch::channel(None);
    forward(ctrl_c, move |s| {
        tx.send_replace(Some(s));
    })?;
    Ok(rx)
}
