//! Threads that run beside the one that starts them, not after it.
//!
//! Linux puts a new thread on its parent's CPU. There it either runs first, the parent
//! waiting, or waits until the parent blocks; the other CPU, idle, takes neither until a
//! periodic balance (milliseconds later). A thread started to overlap work then did not
//! overlap it: `fracta spawn`'s worktree thread (1.5–2 ms) ran before or after the main
//! thread's work on one CPU, the other idle (`perf sched timehist`, 2-core VM). [`spawn`]'s
//! thread, when it finds itself on the CPU its parent was on, moves to another CPU it may use
//! and at once allows every CPU again; the parent yields once, so a thread queued behind it
//! gets to move. With one CPU allowed, nothing moves.

use std::thread::JoinHandle;

/// Start `f` on a thread named `name`, beside the caller.
pub fn spawn<T, F>(name: &str, f: F) -> std::io::Result<JoinHandle<T>>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let parent = current_cpu();
    let handle = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            if let Some(cpu) = parent {
                leave(cpu);
            }
            f()
        })?;
    if parent.is_some() {
        std::thread::yield_now();
    }
    Ok(handle)
}

#[cfg(target_os = "linux")]
fn current_cpu() -> Option<usize> {
    nix::sched::sched_getcpu().ok()
}

/// Move the calling thread off `cpu` if it is on it and may run on another; every CPU it could
/// use before stays allowed. Best effort: an error leaves it where it is.
#[cfg(target_os = "linux")]
fn leave(cpu: usize) {
    use nix::sched::{CpuSet, sched_getaffinity, sched_getcpu, sched_setaffinity};
    use nix::unistd::Pid;
    let me = Pid::from_raw(0);
    if sched_getcpu().ok() != Some(cpu) {
        return;
    }
    let Ok(allowed) = sched_getaffinity(me) else {
        return;
    };
    let mut elsewhere = allowed;
    if elsewhere.unset(cpu).is_err() {
        return;
    }
    let others = (0..CpuSet::count()).any(|c| elsewhere.is_set(c).unwrap_or(false));
    if others && sched_setaffinity(me, &elsewhere).is_ok() {
        let _ = sched_setaffinity(me, &allowed);
    }
}

#[cfg(not(target_os = "linux"))]
fn current_cpu() -> Option<usize> {
    None
}

#[cfg(not(target_os = "linux"))]
fn leave(_cpu: usize) {}

#[cfg(test)]
mod tests {
    use nix::sched::{sched_getaffinity, sched_setaffinity};
    use nix::unistd::Pid;

    #[test]
    fn the_thread_runs_and_the_caller_keeps_every_cpu_it_had() {
        let me = Pid::from_raw(0);
        let before = sched_getaffinity(me).unwrap();
        let handle = super::spawn("beside-test", || 6 * 7).unwrap();
        assert_eq!(handle.join().unwrap(), 42);
        assert_eq!(sched_getaffinity(me).unwrap(), before);
    }

    #[test]
    fn a_caller_allowed_one_cpu_stays_on_it() {
        // On a thread of its own, so the test's main thread keeps its CPUs.
        std::thread::spawn(|| {
            let me = Pid::from_raw(0);
            let here = nix::sched::sched_getcpu().unwrap();
            let mut one = nix::sched::CpuSet::new();
            one.set(here).unwrap();
            sched_setaffinity(me, &one).unwrap();
            let handle = super::spawn("beside-test", || 1).unwrap();
            assert_eq!(handle.join().unwrap(), 1);
            assert_eq!(sched_getaffinity(me).unwrap(), one);
            assert_eq!(nix::sched::sched_getcpu().unwrap(), here);
        })
        .join()
        .unwrap();
    }
}
