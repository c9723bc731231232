//! The HTTP server of every Switchyard process: the registry's API, and the admin endpoints (`/metrics`,
//! `/healthz`, `/readyz`, a plugin worker's `/actions/{name}`) of routers and plugin workers.
//!
//! [`serve`] runs an axum router with the limits that an endpoint reachable without a token needs and that
//! `axum::serve` does not set:
//!
//! ```text
//!  listener ── free slot of max_connections? ── no ──► stop accepting: new connections wait in the kernel's
//!     │                                                listen backlog until one closes (WARN, once a minute)
//!     └ yes ─► accept ─► connection task (HTTP/1.1, hyper)
//!                 request head within header_read_timeout, else the connection is closed; hyper runs the
//!                   same clock while a kept-alive connection waits for its next request (the idle timeout)
//!                 each request within request_timeout (else 503)
//!                 `Connection: close` on the max_requests_per_connection-th response
//!                 hyper is done ─► linger: FIN, then read and discard what the client still sends (bounded)
//!  shutdown ─► stop accepting, close idle connections, let in-flight requests finish;
//!              at drain_timeout, close whatever is still open
//! ```
//!
//! **At the connection cap the server waits, it does not refuse.** It stops calling `accept` until a
//! connection closes, so further clients queue in the kernel's listen backlog and are served in arrival
//! order; they cost the process no file descriptor while they wait. Refusing (accept, then close at once)
//! would spend a descriptor on every refused attempt and let a client that holds connections starve the
//! others, who would all be turned away instead of waiting their turn. The number of waits is logged at
//! WARN at most once per [`CAP_WARNING_INTERVAL`].
//!
//! **Why linger.** A server that answers before reading the whole body (a 401 for a missing token, a 413
//! for a body over the limit) and then closes a socket that still has unread bytes makes the kernel send a
//! reset: the client, still uploading, gets "broken pipe" or "connection reset" instead of the answer.
//! Closing only the sending side and discarding what still arrives, for a bounded time and number of bytes,
//! lets the client finish its upload and read the status (nginx's `lingering_close` does the same).

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::header::{CONNECTION, HeaderValue};
use axum::http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::{debug, warn};

/// The warning that the connection cap is reached is logged at most once per this interval.
pub const CAP_WARNING_INTERVAL: Duration = Duration::from_secs(60);
/// Pause after an accept error that is not about one connection (out of file descriptors, say), so that a
/// lasting error does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);
/// Read buffer of a lingering close, in bytes.
const LINGER_BUFFER_BYTES: usize = 16 * 1024;

/// The limits of one server. The registry takes them from its `[http]` configuration; the admin servers
/// use [`Limits::admin`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// How long a client has to send a request's head (request line and headers), counted from when the
    /// server starts waiting for it: from the accept for the first request, from the end of the previous
    /// response on a kept-alive connection. hyper runs this clock while a kept-alive connection sits idle,
    /// so it is also the longest a connection stays open between two requests.
    pub header_read_timeout: Duration,
    /// Bound of one request, from its head to its response's head (body reading included); past it the
    /// answer is a plain-text 503. `None` when the app bounds its requests itself.
    pub request_timeout: Option<Duration>,
    /// Connections open at once (lingering ones included). At the cap, new connections wait in the listen
    /// backlog. Keep it well below the process's open-file limit.
    pub max_connections: usize,
    /// Requests served on one connection: the response to the last one carries `Connection: close`, so
    /// that a long-lived client reconnects (and is balanced anew across replicas) now and then.
    pub max_requests_per_connection: u64,
    /// After shutdown begins: how long open connections have to finish their in-flight requests (and
    /// lingering) before they are closed.
    pub drain_timeout: Duration,
    /// How long a closing connection keeps reading and discarding what the client still sends.
    pub linger_timeout: Duration,
    /// How many bytes a closing connection discards at most before it closes anyway.
    pub linger_max_bytes: u64,
}

impl Limits {
    /// The limits of the router's and the plugin workers' admin servers (`/metrics`, probes, a worker's
    /// `/actions/{name}`): a 20 s header read and idle timeout (longer than a 15 s scrape interval, so a
    /// scraper keeps its connection), 30 s per request, 256 connections, 1000 requests per connection,
    /// 5 s to drain at shutdown, and a linger of at most 5 s and 4 MiB.
    pub fn admin() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(20),
            request_timeout: Some(Duration::from_secs(30)),
            max_connections: 256,
            max_requests_per_connection: 1000,
            drain_timeout: Duration::from_secs(5),
            linger_timeout: Duration::from_secs(5),
            linger_max_bytes: 4 * 1024 * 1024,
        }
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` completes, then drains: no new
/// connections, idle ones closed, in-flight requests finished, and after `limits.drain_timeout` whatever
/// is still open is closed. Returns when every connection is closed.
///
/// Accept errors never end the server: a client that vanished before its accept is skipped, any other
/// error (such as running out of file descriptors) is logged and retried a second later.
pub async fn serve(listener: TcpListener, app: Router, limits: Limits, shutdown: impl Future<Output = ()>) {
    let limits = Arc::new(limits);
    let slots = Arc::new(Semaphore::new(
        limits.max_connections.clamp(1, Semaphore::MAX_PERMITS),
    ));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let http = Arc::new(http);
    let closing = CancellationToken::new();
    let mut connections = JoinSet::new();
    let mut cap_warnings = CapWarnings::new(CAP_WARNING_INTERVAL);
    let mut shutdown = pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if let Some(waits) = cap_warnings.wait(Instant::now()) {
                    warn!(
                        max_connections = limits.max_connections,
                        waits,
                        "the HTTP connection cap is reached: new connections wait in the listen backlog until one closes"
                    );
                }
                tokio::select! {
                    () = &mut shutdown => break,
                    slot = Arc::clone(&slots).acquire_owned() => match slot {
                        Ok(slot) => slot,
                        // The semaphore is never closed.
                        Err(_) => break,
                    },
                }
            }
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) if is_about_one_connection(&error) => {
                    debug!(%error, "a connection closed before it was accepted");
                    continue;
                }
                Err(error) => {
                    warn!(%error, "accepting an HTTP connection failed; retrying in a second");
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => continue,
                    }
                }
            },
        };
        let requests = Requests {
            app: app.clone(),
            request_timeout: limits.request_timeout,
            max_requests: limits.max_requests_per_connection,
            served: AtomicU64::new(0),
        };
        connections.spawn(connection(
            stream,
            Arc::clone(&http),
            requests,
            Arc::clone(&limits),
            closing.clone(),
            slot,
        ));
    }
    drop(listener);
    closing.cancel();
    debug!(
        open = connections.len(),
        "the HTTP server stops: finishing in-flight requests"
    );
    let drained = tokio::time::timeout(limits.drain_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            open = connections.len(),
            drain_timeout_ms = limits.drain_timeout.as_millis() as u64,
            "HTTP connections still open at the drain deadline are closed"
        );
        connections.shutdown().await;
    }
}

/// An accept error caused by one client (it reset or gave up), not by the server.
fn is_about_one_connection(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    )
}

/// One connection, from accept to close; holds its `slot` of the connection cap until the end.
async fn connection(
    stream: TcpStream,
    http: Arc<http1::Builder>,
    requests: Requests,
    limits: Arc<Limits>,
    closing: CancellationToken,
    _slot: OwnedSemaphorePermit,
) {
    let mut connection = http.serve_connection(TokioIo::new(stream), requests);
    let mut cancelled = pin!(closing.cancelled());
    let mut shutting_down = false;
    let ended = poll_fn(|cx| {
        if !shutting_down && cancelled.as_mut().poll(cx).is_ready() {
            shutting_down = true;
            // Closes the connection if it is idle, or after the response in flight.
            Pin::new(&mut connection).graceful_shutdown();
        }
        connection.poll_without_shutdown(cx)
    })
    .await;
    match ended {
        Ok(()) => linger(connection.into_parts().io.into_inner(), &limits).await,
        // A head not read in time, a malformed request, a client that reset: nothing to answer.
        Err(error) => debug!(%error, "an HTTP connection ended on an error"),
    }
}

/// Closes a connection hyper is done with without resetting it: sends FIN, then reads and discards what
/// the client still sends (the rest of a body answered early) until it closes too, for at most
/// `linger_timeout` and `linger_max_bytes`.
async fn linger(mut stream: TcpStream, limits: &Limits) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let deadline = Instant::now() + limits.linger_timeout;
    let mut buffer = vec![0; LINGER_BUFFER_BYTES];
    let mut discarded: u64 = 0;
    while discarded < limits.linger_max_bytes {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => return,
            Ok(Ok(read)) => discarded += read as u64,
            Err(_) => {
                debug!(
                    discarded,
                    "a lingering HTTP connection is closed at the linger timeout"
                );
                return;
            }
        }
    }
    debug!(
        discarded,
        "a lingering HTTP connection is closed after linger_max_bytes"
    );
}

/// The requests of one connection: the app, bounded in time, and counted.
struct Requests {
    app: Router,
    request_timeout: Option<Duration>,
    max_requests: u64,
    served: AtomicU64,
}

impl hyper::service::Service<Request<Incoming>> for Requests {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let served = self.served.fetch_add(1, Ordering::Relaxed) + 1;
        let last = served >= self.max_requests;
        let answer = self.app.clone().oneshot(request);
        let request_timeout = self.request_timeout;
        Box::pin(async move {
            let Ok(mut response) = match request_timeout {
                Some(limit) => tokio::time::timeout(limit, answer)
                    .await
                    .unwrap_or_else(|_| Ok(too_slow())),
                None => answer.await,
            };
            if last {
                response
                    .headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(response)
        })
    }
}

/// The answer to a request that ran past `request_timeout`.
fn too_slow() -> Response<Body> {
    let mut response = Response::new(Body::from("the request took too long; retry\n"));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    response
}

/// Rate-limits the warning that the connection cap is reached: the first wait warns at once, later ones
/// at most once per interval, each warning counting the waits since the previous one.
#[derive(Debug)]
struct CapWarnings {
    interval: Duration,
    last: Option<Instant>,
    waits: u64,
}

impl CapWarnings {
    fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: None,
            waits: 0,
        }
    }

    /// Notes one wait at `now`; returns the number of waits to report when a warning is due.
    fn wait(&mut self, now: Instant) -> Option<u64> {
        self.waits += 1;
        if self
            .last
            .is_some_and(|last| now.saturating_duration_since(last) < self.interval)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.waits))
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use axum::body::Bytes;
    use axum::extract::DefaultBodyLimit;
    use axum::routing::{get, post};
    use tokio::sync::{Notify, mpsc};
    use tokio::task::JoinHandle;

    use super::*;
    use crate::slow_clients::{Pace, closed_by_server, read_to_close, slow_head, slow_upload};

    /// Limits with short clocks for tests.
    fn limits() -> Limits {
        Limits {
            header_read_timeout: Duration::from_millis(500),
            request_timeout: Some(Duration::from_secs(10)),
            max_connections: 64,
            max_requests_per_connection: 1000,
            drain_timeout: Duration::from_millis(500),
            linger_timeout: Duration::from_secs(5),
            linger_max_bytes: 4 * 1024 * 1024,
        }
    }

    /// `/` answers, `/guarded` answers 401 without reading the body, `/upload` takes at most 1 KiB.
    fn app() -> Router {
        Router::new()
            .route("/", get(|| async { "ok" }))
            .route("/guarded", post(|| async { StatusCode::UNAUTHORIZED }))
            .route(
                "/upload",
                post(|body: Bytes| async move { body.len().to_string() }).layer(DefaultBodyLimit::max(1024)),
            )
            .route("/hang", get(std::future::pending::<&'static str>))
    }

    struct Server {
        address: SocketAddr,
        shutdown: CancellationToken,
        task: JoinHandle<()>,
    }

    async fn start(app: Router, limits: Limits) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(listener, app, limits, shutdown.clone().cancelled_owned()));
        Server {
            address,
            shutdown,
            task,
        }
    }

    /// One GET on its own connection: the answer, read until the server closes.
    async fn get_once(address: SocketAddr, path: &str) -> String {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n").as_bytes())
            .await
            .unwrap();
        read_to_close(&mut stream, Duration::from_secs(10)).await.0
    }

    #[tokio::test]
    async fn slow_heads_are_cut_at_the_header_read_timeout_while_others_are_served() {
        let server = start(app(), limits()).await;
        let slow: Vec<_> = (0..20)
            .map(|_| {
                tokio::spawn(slow_head(
                    server.address,
                    "/",
                    Duration::from_millis(100),
                    Duration::from_secs(5),
                ))
            })
            .collect();
        assert!(get_once(server.address, "/").await.starts_with("HTTP/1.1 200"));
        for task in slow {
            let closed_after = task.await.unwrap().expect("a slow head is still open after 5 s");
            assert!(
                closed_after < Duration::from_secs(3),
                "closed after {closed_after:?}"
            );
        }
    }

    #[tokio::test]
    async fn at_the_connection_cap_new_connections_wait_for_a_free_slot() {
        let server = start(
            app(),
            Limits {
                max_connections: 2,
                ..limits()
            },
        )
        .await;
        // Two connections take both slots and hold them until the header read timeout closes them.
        let mut holders = Vec::new();
        for _ in 0..2 {
            let mut stream = TcpStream::connect(server.address).await.unwrap();
            stream.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
            holders.push(stream);
        }
        let answer = get_once(server.address, "/").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        // The third connection was served only once a holder had been closed.
        let closed = holders.iter().filter(|holder| closed_by_server(holder)).count();
        assert!(
            closed >= 1,
            "the third connection was served while both slots were held"
        );
    }

    #[tokio::test]
    async fn an_early_answer_reaches_a_client_that_is_still_uploading() {
        let server = start(app(), limits()).await;
        let upload = |path| {
            slow_upload(
                server.address,
                path,
                &[],
                256 * 1024,
                Pace::default(),
                Duration::from_secs(10),
            )
        };
        let unauthorized = upload("/guarded").await;
        assert!(unauthorized.starts_with("HTTP/1.1 401"), "{unauthorized}");
        let too_large = upload("/upload").await;
        assert!(too_large.starts_with("HTTP/1.1 413"), "{too_large}");
    }

    #[tokio::test]
    async fn lingering_is_bounded() {
        let server = start(
            app(),
            Limits {
                linger_timeout: Duration::from_millis(300),
                ..limits()
            },
        )
        .await;
        let mut stream = TcpStream::connect(server.address).await.unwrap();
        stream
            .write_all(b"POST /guarded HTTP/1.1\r\nhost: test\r\ncontent-length: 1000000\r\n\r\n")
            .await
            .unwrap();
        // A client that never finishes its body is cut once the linger timeout has passed.
        let started = Instant::now();
        let mut pace = tokio::time::interval(Duration::from_millis(20));
        loop {
            pace.tick().await;
            if stream.write_all(b"x").await.is_err() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "still lingering after 5 s"
            );
        }
    }

    #[tokio::test]
    async fn a_connection_closes_after_max_requests() {
        let server = start(
            app(),
            Limits {
                max_requests_per_connection: 2,
                ..limits()
            },
        )
        .await;
        let mut stream = TcpStream::connect(server.address).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n".repeat(3).as_slice())
            .await
            .unwrap();
        let (answers, closed) = read_to_close(&mut stream, Duration::from_secs(3)).await;
        assert!(closed, "the connection stayed open: {answers}");
        assert_eq!(answers.matches("HTTP/1.1 200").count(), 2, "{answers}");
        assert_eq!(answers.matches("connection: close").count(), 1, "{answers}");
    }

    #[tokio::test]
    async fn a_request_past_its_timeout_gets_503() {
        let server = start(
            app(),
            Limits {
                request_timeout: Some(Duration::from_millis(200)),
                ..limits()
            },
        )
        .await;
        let answer = get_once(server.address, "/hang").await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    }

    #[tokio::test]
    async fn shutdown_finishes_in_flight_requests_and_cuts_the_rest_at_the_drain_deadline() {
        let (entered, mut entries) = mpsc::channel(4);
        let release = Arc::new(Notify::new());
        let app = Router::new()
            .route(
                "/wait",
                get({
                    let (entered, release) = (entered.clone(), Arc::clone(&release));
                    move || async move {
                        entered.send(()).await.unwrap();
                        release.notified().await;
                        "done"
                    }
                }),
            )
            .route(
                "/hang",
                get(move || async move {
                    entered.send(()).await.unwrap();
                    std::future::pending::<&'static str>().await
                }),
            );
        let server = start(
            app,
            Limits {
                request_timeout: None,
                ..limits()
            },
        )
        .await;
        let waiting = tokio::spawn(get_once(server.address, "/wait"));
        let hanging = tokio::spawn(get_once(server.address, "/hang"));
        entries.recv().await.unwrap();
        entries.recv().await.unwrap();
        server.shutdown.cancel();
        release.notify_one();
        assert!(waiting.await.unwrap().starts_with("HTTP/1.1 200"));
        tokio::time::timeout(Duration::from_secs(5), server.task)
            .await
            .expect("the server did not stop at the drain deadline")
            .unwrap();
        let cut = hanging.await.unwrap();
        assert!(!cut.contains("HTTP/1.1"), "{cut}");
    }

    #[test]
    fn cap_warnings_come_at_once_then_at_most_once_per_interval() {
        let start = Instant::now();
        let mut warnings = CapWarnings::new(Duration::from_secs(60));
        assert_eq!(warnings.wait(start), Some(1));
        assert_eq!(warnings.wait(start + Duration::from_secs(1)), None);
        assert_eq!(warnings.wait(start + Duration::from_secs(59)), None);
        assert_eq!(warnings.wait(start + Duration::from_secs(60)), Some(3));
        assert_eq!(warnings.wait(start + Duration::from_secs(61)), None);
        assert_eq!(warnings.wait(start + Duration::from_secs(200)), Some(2));
    }
}
