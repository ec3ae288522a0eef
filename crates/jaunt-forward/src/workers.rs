//! Threads that each run a one-thread runtime, for agentless connections.
//! A terminated connection is three tasks that pass every packet along:
//! russh's loop for the client, russh's loop for sshd, and the channel
//! pump between them. On the daemon's work-stealing runtime they drift
//! onto different threads, and each hand-over then wakes another thread.
//! Kept on one thread, a hand-over is a queue push: in alternating runs
//! the proxy spent about a fifth less CPU per GiB of psftp download
//! (docs/benchmarks.md). Connections are spread over the threads in turn,
//! one thread per core.

use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

pub(crate) struct Workers {
    handles: Vec<Handle>,
    next: AtomicUsize,
    /// Dropped with the pool: each thread then ends its runtime (and the
    /// connections still on it) and exits.
    _stop: Vec<oneshot::Sender<()>>,
}

impl Workers {
    /// `count` threads, at least one.
    pub(crate) fn start(count: usize) -> std::io::Result<Self> {
        let mut handles = Vec::new();
        let mut stop = Vec::new();
        for i in 0..count.max(1) {
            let runtime = Builder::new_current_thread().enable_all().build()?;
            handles.push(runtime.handle().clone());
            let (tx, rx) = oneshot::channel::<()>();
            stop.push(tx);
            std::thread::Builder::new()
                .name(format!("jaunt-forward-{i}"))
                .spawn(move || {
                    runtime.block_on(async {
                        let _ = rx.await;
                    })
                })?;
        }
        Ok(Workers {
            handles,
            next: AtomicUsize::new(0),
            _stop: stop,
        })
    }

    /// The runtime the next connection runs on.
    pub(crate) fn pick(&self) -> &Handle {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        &self.handles[i]
    }
}

/// Aborts a task when whoever awaits it goes away (a relay cancelled at
/// shutdown must not leave its connection running on a worker).
pub(crate) struct AbortOnDrop(pub tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_take_the_threads_in_turn_and_run_there() {
        let workers = Workers::start(2).expect("workers");
        let mut names = Vec::new();
        for _ in 0..4 {
            let name = workers
                .pick()
                .spawn(async { std::thread::current().name().map(String::from) })
                .await
                .expect("ran");
            names.push(name.unwrap_or_default());
        }
        assert_eq!(
            names,
            [
                "jaunt-forward-0",
                "jaunt-forward-1",
                "jaunt-forward-0",
                "jaunt-forward-1"
            ]
        );
        assert_eq!(Workers::start(0).expect("workers").handles.len(), 1);
    }

    #[tokio::test]
    async fn a_task_whose_caller_is_gone_is_stopped() {
        let workers = Workers::start(1).expect("workers");
        let (tx, rx) = oneshot::channel::<()>();
        let task = workers.pick().spawn(async move {
            let _tx = tx;
            std::future::pending::<()>().await
        });
        drop(AbortOnDrop(task.abort_handle()));
        // The sender is dropped with the aborted task.
        assert!(rx.await.is_err());
    }
}
