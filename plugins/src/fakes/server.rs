//! What the fakes share: the handle of a running fake server and the failure switch.
//!
//! A fake is an axum [`Router`] over a cloneable state; [`FakeServer::start`] serves it on a listener
//! the caller bound (tests bind `127.0.0.1:0` and read the port back), and stops it when the handle is
//! shut down or dropped.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long [`FakeServer::shutdown`] waits for open connections to finish before it aborts the server.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A fake server running on a task of the current Tokio runtime; dropping it stops the server.
#[derive(Debug)]
pub struct FakeServer {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl FakeServer {
    /// Serves `router` on `listener` until the handle is shut down or dropped.
    ///
    /// # Errors
    ///
    /// When the listener's local address cannot be read.
    pub async fn start(listener: TcpListener, router: Router) -> io::Result<Self> {
        let addr = listener.local_addr()?;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    // Either a shutdown request or the handle being dropped ends the wait.
                    let _ = stopped.await;
                })
                .await
        });
        Ok(Self {
            addr,
            shutdown: Some(shutdown),
            task: Some(task),
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections, lets open ones finish for a few seconds, then stops.
    ///
    /// # Errors
    ///
    /// The server's own I/O error, if it failed while serving.
    pub async fn shutdown(mut self) -> io::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let Some(mut task) = self.task.take() else {
            return Ok(());
        };
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await {
            Ok(Ok(served)) => served,
            Ok(Err(join)) => Err(io::Error::other(join)),
            Err(_elapsed) => {
                task.abort();
                Ok(())
            }
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// An error a fake is told to answer with instead of doing its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InjectedFailure {
    /// The HTTP status to answer with, e.g. 503, 429 or 403.
    pub status: u16,
    /// Seconds for a `Retry-After` header, if one should be sent.
    pub retry_after: Option<u64>,
}

/// The next calls that must fail: a countdown and the failure to answer with.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FailureSwitch {
    remaining: u32,
    failure: Option<InjectedFailure>,
}

impl FailureSwitch {
    /// Makes the next `count` calls fail with `failure`, replacing any earlier setting.
    pub(crate) fn set(&mut self, count: u32, failure: InjectedFailure) {
        self.remaining = count;
        self.failure = Some(failure);
    }

    /// The failure this call must answer with, if any, counting it down.
    pub(crate) fn take(&mut self) -> Option<InjectedFailure> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        self.failure
    }
}
