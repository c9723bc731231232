//! A service running as a task of the test's runtime (the router's, the registry's or a worker's `run`),
//! stopped as SIGTERM would stop it.

use std::future::Future;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The task of a service and the token that stops it. Dropping it (a failing test) cancels the token, or
/// the test runtime would wait for the service's threads forever.
pub struct InProcess<E: Send + 'static> {
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), E>>,
}

impl<E: Send + 'static> InProcess<E> {
    /// Spawns `run(shutdown)`.
    pub fn spawn<F>(run: impl FnOnce(CancellationToken) -> F) -> Self
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(shutdown.clone()));
        Self { shutdown, task }
    }

    /// Stops it as SIGTERM would and returns how it ended.
    pub async fn stop(mut self) -> Result<(), E> {
        self.shutdown.cancel();
        (&mut self.task).await.expect("the service's task")
    }
}

impl<E: Send + 'static> Drop for InProcess<E> {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
