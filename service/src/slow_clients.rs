//! HTTP/1.1 clients that misbehave on purpose, over a raw `TcpStream`, for the tests of servers built on
//! [`crate::http::serve`] (its own tests, the registry's, the plugin workers'): a request head that never
//! ends, a body uploaded slowly, and reading until the server closes. Compiled for this crate's tests and,
//! with the `slow-clients` feature, for other crates' tests.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Reads until the server closes the connection or `limit` passes: what arrived, and whether it closed.
pub async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut received = Vec::new();
    let mut buffer = [0; 4096];
    let deadline = Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => return (String::from_utf8_lossy(&received).into_owned(), true),
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            Err(_) => return (String::from_utf8_lossy(&received).into_owned(), false),
        }
    }
}

/// Whether the server has closed `stream` (read end or error), without waiting.
pub fn closed_by_server(stream: &TcpStream) -> bool {
    match stream.try_read(&mut [0; 16]) {
        Ok(read) => read == 0,
        Err(error) => error.kind() != std::io::ErrorKind::WouldBlock,
    }
}

/// Sends `GET path` and then one header line every `every`, never finishing the head. Returns how long
/// after connecting the server closed the connection, or `None` if it was still open after `give_up`.
///
/// # Panics
///
/// If the connection cannot be made or the request line cannot be written.
pub async fn slow_head(
    address: SocketAddr,
    path: &str,
    every: Duration,
    give_up: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(address).await.expect("connect");
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\n").as_bytes())
        .await
        .expect("request line");
    let mut lines = tokio::time::interval(every);
    let mut buffer = [0; 256];
    for line in 0.. {
        tokio::select! {
            read = stream.read(&mut buffer) => {
                if matches!(read, Ok(0) | Err(_)) {
                    return Some(started.elapsed());
                }
            }
            _ = lines.tick() => {
                if started.elapsed() > give_up {
                    return None;
                }
                if stream.write_all(format!("x-slow-{line}: 1\r\n").as_bytes()).await.is_err() {
                    return Some(started.elapsed());
                }
            }
        }
    }
    None
}

/// How [`slow_upload`] sends a body.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Bytes per write.
    pub chunk_bytes: usize,
    /// Time between writes.
    pub every: Duration,
}

impl Default for Pace {
    /// 16 KiB every 20 ms: 800 KiB a second.
    fn default() -> Self {
        Self {
            chunk_bytes: 16 * 1024,
            every: Duration::from_millis(20),
        }
    }
}

/// Sends `POST path` with `headers` announcing `length` bytes, uploads the body at `pace`, then returns the
/// answer read until the server closes (at most `read_limit`).
///
/// # Panics
///
/// If a write fails: the server reset the connection instead of letting the upload finish.
pub async fn slow_upload(
    address: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    length: usize,
    pace: Pace,
    read_limit: Duration,
) -> String {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    let mut head = format!("POST {path} HTTP/1.1\r\nhost: test\r\ncontent-length: {length}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("head");
    let chunk = vec![b' '; pace.chunk_bytes.max(1)];
    let mut ticks = tokio::time::interval(pace.every);
    let mut sent = 0;
    while sent < length {
        ticks.tick().await;
        let n = chunk.len().min(length - sent);
        if let Err(error) = stream.write_all(&chunk[..n]).await {
            panic!("the upload to {path} failed after {sent} of {length} bytes: {error}");
        }
        sent += n;
    }
    read_to_close(&mut stream, read_limit).await.0
}
