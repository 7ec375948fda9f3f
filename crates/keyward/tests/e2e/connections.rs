//! Bounds on connections, tested with raw sockets: a client that sends its request's head a
//! byte at a time, sends nothing, or stays idle after an answer is disconnected once the
//! header timeout passes; beyond the connection cap a client waits until a connection
//! closes; a head too large is answered with a problem document.

use std::time::{Duration, Instant};

use keyward_store::testing::TestDatabase;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Server, database, init};

/// The header timeout of these tests' server.
const HEADER_TIMEOUT: Duration = Duration::from_millis(400);
/// How long a test waits for the server to close a connection it should close: the
/// timeout with room for a loaded machine, and still far below "never".
const CLOSE_WITHIN: Duration = Duration::from_secs(5);

/// A server with a 400 ms header timeout and `max_connections` connections.
fn start(db: &TestDatabase, max_connections: usize, work: &tempfile::TempDir) -> Server {
    let file = work.path().join("keyward.toml");
    std::fs::write(
        &file,
        format!(
            "[connections]\nheader_timeout_ms = {}\nmax_connections = {max_connections}\n",
            HEADER_TIMEOUT.as_millis()
        ),
    )
    .unwrap();
    Server::start(db.url(), &["--config", file.to_str().unwrap()], &[])
}

async fn connect(server: &Server) -> TcpStream {
    let address = server.base.trim_start_matches("http://");
    TcpStream::connect(address).await.unwrap()
}

/// Reads until the server closes `stream` or `limit` passes. Returns what was read, and
/// whether the server closed the connection.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let deadline = tokio::time::Instant::now() + limit;
    let mut received = Vec::new();
    let mut buffer = [0_u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return (received, false),
            Ok(Ok(0) | Err(_)) => return (received, true),
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
        }
    }
}

const REQUEST: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: keyward\r\n\r\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_client_dribbling_its_headers_is_disconnected() {
    let (db, work) = (database().await, tempfile::tempdir().unwrap());
    init(db.url());
    let server = start(&db, 100, &work);
    let mut stream = connect(&server).await;
    let (mut reader, mut writer) = stream.split();
    let started = Instant::now();
    // One byte of a header every 50 ms: the head is never complete, and each byte alone
    // arrives well within any per-read timeout.
    let dribble = async {
        writer
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: keyward\r\nX-Slow: ")
            .await
            .unwrap();
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if writer.write_all(b"a").await.is_err() {
                return true;
            }
        }
        false
    };
    let closed = async {
        let mut buffer = [0_u8; 4096];
        loop {
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    tokio::select! {
        refused = dribble => assert!(refused, "the server read a dribbled head for 10 s"),
        () = closed => {}
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= HEADER_TIMEOUT / 2 && elapsed < CLOSE_WITHIN,
        "closed after {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_client_and_an_idle_one_are_disconnected() {
    let (db, work) = (database().await, tempfile::tempdir().unwrap());
    init(db.url());
    let server = start(&db, 100, &work);

    let mut silent = connect(&server).await;
    let (received, closed) = read_until_closed(&mut silent, CLOSE_WITHIN).await;
    assert!(closed, "a connection that sent nothing was held open");
    assert!(
        received.is_empty(),
        "{}",
        String::from_utf8_lossy(&received)
    );

    // An answered request, then nothing: the keep-alive connection ends too.
    let mut idle = connect(&server).await;
    idle.write_all(REQUEST).await.unwrap();
    let (received, closed) = read_until_closed(&mut idle, CLOSE_WITHIN).await;
    assert!(closed, "an idle keep-alive connection was held open");
    let answer = String::from_utf8_lossy(&received);
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn beyond_the_connection_cap_a_client_waits_for_a_free_connection() {
    let (db, work) = (database().await, tempfile::tempdir().unwrap());
    init(db.url());
    let server = start(&db, 2, &work);

    // Two connections hold both places: each sends part of a head and stays.
    let mut holders = Vec::new();
    for _ in 0..2 {
        let mut holder = connect(&server).await;
        holder
            .write_all(b"GET /healthz HTTP/1.1\r\n")
            .await
            .unwrap();
        holders.push(holder);
    }
    // The kernel completes the third connection, but the server does not accept it while
    // both places are taken: its request gets no answer.
    let mut waiting = connect(&server).await;
    waiting.write_all(REQUEST).await.unwrap();
    let mut first = [0_u8; 1];
    let early = tokio::time::timeout(HEADER_TIMEOUT / 2, waiting.read(&mut first)).await;
    assert!(early.is_err(), "a third connection was served beside two");

    // The holders are dropped once their header timeout passes; then the waiting client is
    // served.
    let (received, _) = read_until_closed(&mut waiting, CLOSE_WITHIN).await;
    let answer = String::from_utf8_lossy(&received);
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    drop(holders);
}

/// Sends `head` (a request line and headers, without the blank line) on a new connection
/// and returns the answer's status and body.
async fn send_head(server: &Server, head: &str) -> (u16, String, String) {
    let mut stream = connect(server).await;
    stream
        .write_all(format!("{head}Connection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let (received, closed) = read_until_closed(&mut stream, CLOSE_WITHIN).await;
    assert!(closed);
    let text = String::from_utf8_lossy(&received).into_owned();
    let status = text[9..12].parse().unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_ascii_lowercase(), body.to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_head_gets_a_problem_document() {
    let (db, work) = (database().await, tempfile::tempdir().unwrap());
    init(db.url());
    let server = start(&db, 100, &work);
    let long_target = format!(
        "GET /healthz?q={} HTTP/1.1\r\nHost: k\r\n",
        "a".repeat(9_000)
    );
    let many_fields = format!(
        "GET /healthz HTTP/1.1\r\nHost: k\r\n{}",
        (0..70)
            .map(|i| format!("X-Field-{i}: {i}\r\n"))
            .collect::<String>()
    );
    let large_field = format!(
        "GET /healthz HTTP/1.1\r\nHost: k\r\nX-Large: {}\r\n",
        "b".repeat(17_000)
    );
    for (head, status, code) in [
        (long_target, 414, "uri_too_long"),
        (many_fields, 431, "header_fields_too_large"),
        (large_field, 431, "header_fields_too_large"),
    ] {
        let (got, answer_head, body) = send_head(&server, &head).await;
        assert_eq!(got, status, "{answer_head}\n{body}");
        assert!(
            answer_head.contains("content-type: application/problem+json"),
            "{answer_head}"
        );
        let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(problem["code"], code, "{body}");
        assert_eq!(problem["status"], status);
    }
    // Within the limits, the same server answers as usual.
    let (ok, _, _) = send_head(&server, "GET /healthz HTTP/1.1\r\nHost: k\r\n").await;
    assert_eq!(ok, 200);
    // Far beyond them (past hyper's own count), hyper refuses the head itself, still with a
    // 431.
    let (far, _, _) = send_head(
        &server,
        &format!(
            "GET /healthz HTTP/1.1\r\nHost: k\r\n{}",
            (0..200)
                .map(|i| format!("X-F-{i}: {i}\r\n"))
                .collect::<String>()
        ),
    )
    .await;
    assert_eq!(far, 431);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_header_count_above_hypers_own_is_honoured() {
    let (db, work) = (database().await, tempfile::tempdir().unwrap());
    init(db.url());
    let file = work.path().join("keyward.toml");
    std::fs::write(&file, "[connections]\nmax_headers = 150\n").unwrap();
    let server = Server::start(db.url(), &["--config", file.to_str().unwrap()], &[]);
    let head = |fields: usize| {
        format!(
            "GET /healthz HTTP/1.1\r\nHost: k\r\n{}",
            (0..fields)
                .map(|i| format!("X-F-{i}: {i}\r\n"))
                .collect::<String>()
        )
    };
    // More fields than hyper reads by default, within the configured count.
    let (within, answer_head, body) = send_head(&server, &head(120)).await;
    assert_eq!(within, 200, "{answer_head}\n{body}");
    // Beyond it: our problem document, not hyper's bare refusal.
    let (beyond, answer_head, body) = send_head(&server, &head(160)).await;
    assert_eq!(beyond, 431, "{answer_head}\n{body}");
    assert!(answer_head.contains("content-type: application/problem+json"));
}
