//! Backends run what adapters describe. `local`: child processes on this machine; a remote
//! backend (Kubernetes, in its own crate) plugs in through `remote::RemoteBackend` and hands
//! the session loop its Pods as a `Workload`.

pub mod local;

use std::time::Duration;

use futures::future::BoxFuture;

/// How long a stop waits after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// What runs an agent's CLI, as the runner drives it: a local process group, or a Pod.
pub trait Workload: Send {
    /// The next line of its output (stdout here; a Pod's log), or `None` once it has ended.
    fn next_line(&mut self) -> BoxFuture<'_, Option<String>>;
    /// Ask it to end; what does not end within the grace period is killed.
    fn terminate(&mut self);
    /// Its end: exit code or signal, and the tail of its error output.
    fn wait(self: Box<Self>) -> BoxFuture<'static, local::ExitInfo>;
}

impl Workload for local::LocalProcess {
    fn next_line(&mut self) -> BoxFuture<'_, Option<String>> {
        Box::pin(local::LocalProcess::next_line(self))
    }

    fn terminate(&mut self) {
        local::signal_group(self.pid, nix::sys::signal::Signal::SIGTERM);
        let (pid, identity) = (self.pid, self.identity.clone());
        tokio::spawn(async move {
            local::stop_group(pid, identity.as_deref(), STOP_GRACE).await;
        });
    }

    fn wait(self: Box<Self>) -> BoxFuture<'static, local::ExitInfo> {
        Box::pin(local::LocalProcess::wait(*self))
    }
}
