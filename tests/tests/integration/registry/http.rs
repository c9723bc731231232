//! The registry's HTTP server against clients that misbehave, over raw TCP on loopback (`app::run`, the
//! way the binary serves): slow-header connections are cut at `http.header_read_timeout_ms` while other
//! requests are served; past `http.max_connections` new connections wait until a slot frees; a client still
//! uploading a body that was answered early (401 without a token, 413 over `http.body_limit_bytes`) reads
//! the status instead of a broken pipe.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use switchyard_service::slow_clients::{Pace, closed_by_server, read_to_close, slow_head, slow_upload};
use switchyard_tests::registries::{RegistryTopics, ServedRegistry, admin, http};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn address(registry: &ServedRegistry) -> SocketAddr {
    registry
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("address")
}

/// A slow upload to the registry's API: JSON, with a bearer token when given, answered within 20 s.
async fn upload(address: SocketAddr, token: Option<&str>, length: usize) -> String {
    let authorization = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(authorization) = &authorization {
        headers.push(("authorization", authorization));
    }
    slow_upload(
        address,
        "/v1/plugins",
        &headers,
        length,
        Pace::default(),
        Duration::from_secs(20),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_connections_are_cut_at_the_header_read_timeout_while_requests_are_served() {
    let registry = ServedRegistry::start(
        &RegistryTopics::unique(),
        &[("HTTP__HEADER_READ_TIMEOUT_MS", "1000")],
    )
    .await;
    let address = address(&registry);
    let closed = Arc::new(AtomicUsize::new(0));
    let slow: Vec<_> = (0..50)
        .map(|_| {
            let closed = Arc::clone(&closed);
            tokio::spawn(async move {
                let after = slow_head(
                    address,
                    "/v1/plugins",
                    Duration::from_secs(1),
                    Duration::from_secs(15),
                )
                .await;
                closed.fetch_add(1, Ordering::SeqCst);
                after
            })
        })
        .collect();
    // Served while the slow connections are open.
    let url = format!("{}/v1/plugins", registry.url);
    let (status, _) = http("GET", &url, Some(&admin()), None).await;
    assert_eq!(status, 200);
    assert!(
        closed.load(Ordering::SeqCst) < 50,
        "the request was only served after every slow connection had been closed"
    );
    for task in slow {
        let after = task
            .await
            .expect("slow client")
            .expect("a slow-header connection was still open after 15 s");
        assert!(
            after < Duration::from_secs(4),
            "a slow-header connection was closed only after {after:?}"
        );
    }
    registry.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_wait_for_a_free_slot() {
    let registry = ServedRegistry::start(
        &RegistryTopics::unique(),
        &[
            ("HTTP__MAX_CONNECTIONS", "4"),
            ("HTTP__HEADER_READ_TIMEOUT_MS", "1000"),
        ],
    )
    .await;
    let address = address(&registry);
    // Four connections that never finish their head take every slot until the header timeout cuts them.
    let mut holders = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(address).await.expect("connect");
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\n")
            .await
            .expect("request line");
        holders.push(stream);
    }
    // Six more, each a whole request: none is served while the four hold their slots.
    let mut waiting = Vec::new();
    for _ in 0..6 {
        let mut stream = TcpStream::connect(address).await.expect("connect");
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: registry\r\nconnection: close\r\n\r\n")
            .await
            .expect("request");
        waiting.push(stream);
    }
    let (first, closed) = read_to_close(&mut waiting[0], Duration::from_secs(10)).await;
    assert!(first.starts_with("HTTP/1.1 200") && closed, "{first}");
    let holders_closed = holders.iter().filter(|holder| closed_by_server(holder)).count();
    assert!(
        holders_closed >= 1,
        "a connection past the cap was served while all four slots were held"
    );
    for stream in &mut waiting[1..] {
        let (answer, _) = read_to_close(stream, Duration::from_secs(10)).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    registry.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_still_uploading_reads_an_early_401_or_413() {
    let registry =
        ServedRegistry::start(&RegistryTopics::unique(), &[("HTTP__BODY_LIMIT_BYTES", "1024")]).await;
    let address = address(&registry);
    let length = 256 * 1024;
    let unauthorized = upload(address, None, length).await;
    assert!(unauthorized.starts_with("HTTP/1.1 401"), "{unauthorized}");
    assert!(
        unauthorized.contains("a bearer token is required"),
        "{unauthorized}"
    );
    let too_large = upload(address, Some(&admin()), length).await;
    assert!(too_large.starts_with("HTTP/1.1 413"), "{too_large}");
    registry.stop().await;
}
