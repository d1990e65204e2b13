//! The proxy's connection loop against in-process upstreams, through the
//! real forwarding code (`proxy::serve_fixed`): no container engine needed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dual::proxy::routes::Table;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// A proxy for one workspace, `shop-a`, whose port is the proxy's own port
/// and whose server is `upstream`; stopped on drop.
struct Proxy {
    port: u16,
    stop: Arc<Notify>,
}

impl Proxy {
    async fn start(upstream: SocketAddr, head_timeout: Option<Duration>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let table = Table::one_route("shop-a", port, upstream);
        let stop = Arc::new(Notify::new());
        tokio::spawn(dual::proxy::serve_fixed(
            listener,
            table,
            Arc::clone(&stop),
            head_timeout,
        ));
        Proxy { port, stop }
    }

    fn host(&self) -> String {
        format!("shop-a.localhost:{}", self.port)
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(("127.0.0.1", self.port)).await.unwrap()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.notify_waiters();
    }
}

/// An upstream that answers each connection with `serve`.
async fn upstream<F, Fut>(serve: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serve = Arc::new(serve);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream));
        }
    });
    addr
}

/// Reads a head (to the blank line) from `stream`, byte by byte.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        if stream.read(&mut byte).await.unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// An echo server that answers as it reads: the response's first chunk
/// goes out before the request's body is whole, as a streaming upload
/// endpoint (or a dev server proxying one) does.
async fn echo_as_it_reads(mut stream: TcpStream) {
    let head = read_head(&mut stream).await;
    let length: usize = head
        .lines()
        .find_map(|line| {
            line.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let _ = stream
        .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await;
    let mut left = length;
    let mut buf = vec![0u8; 64 * 1024];
    while left > 0 {
        let n = match stream.read(&mut buf[..left.min(64 * 1024)]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        left -= n;
        let mut chunk = format!("{n:x}\r\n").into_bytes();
        chunk.extend_from_slice(&buf[..n]);
        chunk.extend_from_slice(b"\r\n");
        if stream.write_all(&chunk).await.is_err() {
            return;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
}

#[test]
fn a_64_mib_upload_to_a_server_that_answers_as_it_reads_completes() {
    runtime().block_on(async {
        let proxy = Proxy::start(upstream(echo_as_it_reads).await, None).await;
        let size = 64 << 20;
        let echoed = upload_and_read_echo(proxy.port, &proxy.host(), "/echo", size).await;
        assert_eq!(echoed, size, "every byte came back");
    });
}

/// POSTs `size` bytes of `x` to `target` through the proxy on `port` while
/// reading the chunked echo; returns how many `x` came back. Panics if the
/// two do not finish within 60 s (request and response not flowing at once).
pub async fn upload_and_read_echo(port: u16, host: &str, target: &str, size: usize) -> usize {
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let head = format!("POST {target} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {size}\r\n\r\n");
    let sending = tokio::spawn(async move {
        write.write_all(head.as_bytes()).await.unwrap();
        let block = vec![b'x'; 1 << 20];
        let mut left = size;
        while left > 0 {
            let n = left.min(block.len());
            write.write_all(&block[..n]).await.unwrap();
            left -= n;
        }
        write
    });
    // The chunked response ends with `0\r\n\r\n`.
    let receiving = async {
        let mut received = Vec::with_capacity(size + (1 << 20));
        let mut buf = vec![0u8; 256 * 1024];
        while !received.ends_with(b"\r\n0\r\n\r\n") {
            let n = read.read(&mut buf).await.unwrap();
            assert!(n > 0, "the proxy closed after {} bytes", received.len());
            received.extend_from_slice(&buf[..n]);
        }
        received
    };
    let received = tokio::time::timeout(Duration::from_secs(60), receiving)
        .await
        .expect("the upload and its echo did not finish within 60 s: request and response do not flow at once");
    let _ = sending.await.unwrap();
    let text = String::from_utf8_lossy(&received[..received.len().min(64)]);
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    received.iter().filter(|&&b| b == b'x').count()
}

#[test]
fn a_head_trickled_a_byte_at_a_time_is_cut_off_at_the_deadline() {
    runtime().block_on(async {
        let never = upstream(|_stream| async {}).await;
        let proxy = Proxy::start(never, Some(Duration::from_secs(1))).await;
        let mut stream = proxy.connect().await;
        let started = Instant::now();
        let head = format!("GET / HTTP/1.1\r\nHost: {}\r\nX-Slow: ", proxy.host());
        stream.write_all(head.as_bytes()).await.unwrap();
        // One byte every 200 ms: each read is fresh, the head never ends.
        let mut cut = None;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if stream.write_all(b"a").await.is_err() {
                cut = Some(started.elapsed());
                break;
            }
            let mut probe = [0u8; 1];
            if let Ok(Ok(0)) =
                tokio::time::timeout(Duration::from_millis(1), stream.read(&mut probe)).await
            {
                cut = Some(started.elapsed());
                break;
            }
        }
        let cut = cut.expect("the proxy kept a trickled head open for 10 s");
        assert!(
            cut < Duration::from_secs(4),
            "cut off after {cut:?}, the deadline is 1 s for the whole head"
        );
    });
}

#[test]
fn an_unasked_101_gets_a_502_and_1xx_skips_http10_clients() {
    runtime().block_on(async {
        let rogue = upstream(|mut stream| async move {
            let head = read_head(&mut stream).await;
            let answer: &[u8] = if head.starts_with("GET /upgrade") {
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n"
            } else {
                b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
            };
            let _ = stream.write_all(answer).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        })
        .await;
        let proxy = Proxy::start(rogue, None).await;

        let mut stream = proxy.connect().await;
        let request = format!("GET /upgrade HTTP/1.1\r\nHost: {}\r\n\r\n", proxy.host());
        stream.write_all(request.as_bytes()).await.unwrap();
        let head = tokio::time::timeout(Duration::from_secs(5), read_head(&mut stream))
            .await
            .unwrap();
        assert!(head.starts_with("HTTP/1.1 502"), "{head:?}");

        let mut stream = proxy.connect().await;
        let request = format!("GET /hints HTTP/1.0\r\nHost: {}\r\n\r\n", proxy.host());
        stream.write_all(request.as_bytes()).await.unwrap();
        let head = tokio::time::timeout(Duration::from_secs(5), read_head(&mut stream))
            .await
            .unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "an HTTP/1.0 client gets no 1xx: {head:?}");

        let mut stream = proxy.connect().await;
        let request = format!("GET /hints HTTP/1.1\r\nHost: {}\r\n\r\n", proxy.host());
        stream.write_all(request.as_bytes()).await.unwrap();
        let head = tokio::time::timeout(Duration::from_secs(5), read_head(&mut stream))
            .await
            .unwrap();
        assert!(head.starts_with("HTTP/1.1 103"), "an HTTP/1.1 client gets it: {head:?}");
    });
}

#[test]
fn a_malformed_answer_gets_a_page_for_people_not_a_debug_dump() {
    runtime().block_on(async {
        let garbled = upstream(|mut stream| async move {
            let _ = read_head(&mut stream).await;
            // Two Content-Length headers that disagree: refused by the proxy.
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok")
                .await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        })
        .await;
        let proxy = Proxy::start(garbled, None).await;
        let mut stream = proxy.connect().await;
        let request = format!(
            "GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            proxy.host()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut page = String::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut page))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        assert!(page.starts_with("HTTP/1.1 502"), "{page}");
        assert!(
            page.contains("a malformed message: conflicting Content-Length headers"),
            "{page}"
        );
        assert!(
            !page.contains("Invalid("),
            "a Debug dump reached the page: {page}"
        );
    });
}
