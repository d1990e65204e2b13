//! Ports that do not speak HTTP are not web ports (`proxy::port_kinds`): a
//! database found listening in a workspace is probed, never bound on the
//! host's loopback by the proxy and never shown as a URL; and a client
//! speaking another protocol to a port the proxy does hold gets an answer
//! at once, not a 60 s wait for a head that never ends.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dual::proxy::routes::Table;

use crate::proxy::{Proxy, free_port};
use crate::support::{each_engine, ensure_test_image, eventually, http_get};
use crate::workspaces::TestEnv;

/// Sends `bytes` on a new connection to the proxy at `port` and reads until
/// it answers and closes; what it said and how long that took.
fn answer_to(port: u16, bytes: &[u8]) -> (String, Duration) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    stream.write_all(bytes).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

#[test]
fn a_database_client_on_a_proxied_port_is_answered_at_once() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    // Never reached: the requests are refused before any route is looked up.
    let nowhere: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let table = Table::one_route("shop-a", port, nowhere);
    let stop = Arc::new(tokio::sync::Notify::new());
    // The real head deadline (60 s): nothing may wait for it.
    runtime.spawn(dual::proxy::serve_fixed(
        listener,
        table,
        Arc::clone(&stop),
        None,
    ));
    let clients: [(&str, &[u8]); 4] = [
        // What `psql` sends first: an SSLRequest.
        ("postgres SSLRequest", b"\x00\x00\x00\x08\x04\xd2\x16\x2f"),
        // `redis-cli PING`.
        ("redis PING", b"*1\r\n$4\r\nPING\r\n"),
        // A request line that ends, then is not HTTP/1.x.
        ("a line of another protocol", b"HELO example.com\r\n"),
        ("a method that never ends", &[b'A'; 40]),
    ];
    for (what, bytes) in clients {
        let (answer, took) = answer_to(port, bytes);
        eprintln!("{what}: answered in {took:?}");
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 400 "),
            "{what}: {answer}"
        );
        assert!(
            took < Duration::from_millis(500),
            "{what}: answered only after {took:?}"
        );
    }
    stop.notify_waiters();
}

fn listed(env: &TestEnv, name: &str) -> serde_json::Value {
    env.list()
        .into_iter()
        .find(|w| w["name"] == name)
        .unwrap_or_else(|| panic!("{name} not listed"))
}

fn has_url(workspace: &serde_json::Value, port: u16) -> bool {
    workspace["urls"]
        .as_array()
        .unwrap()
        .iter()
        .any(|url| url.as_str().unwrap().ends_with(&format!(":{port}")))
}

/// Whether the proxy holds `port` on the host's loopback.
fn bound_on_host(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(3)).is_ok()
}

#[test]
fn databases_found_in_a_workspace_are_tcp_ports_not_urls() {
    each_engine("port_kinds", |kind| {
        let declared = free_port();
        let config = format!(
            "image = \"{}\"\nports = [{declared}]\n",
            ensure_test_image(kind)
        );
        let env = TestEnv::new(Some(kind), &config);
        env.ok(&["create", "kinds"]);
        env.ok(&["launch", "kinds"]);
        let name = env.name("kinds");
        let _proxy = Proxy::start(&env, declared);
        // An HTTP server and three that are not, none declared: one reads
        // a startup packet's 8 bytes and closes (Postgres), one greets
        // first (MySQL), one answers a line with an error (Redis).
        let (web, postgres, mysql, redis) = (free_port(), free_port(), free_port(), free_port());
        let servers = format!(
            "dual test-server --name {name} --port {web} >/dev/null 2>&1 &
             nc -ll -p {postgres} -e sh -c 'head -c 8 >/dev/null' >/dev/null 2>&1 &
             nc -ll -p {mysql} -e sh -c 'printf \"J\\0\\0\\0\\n8.0.36\\0\"; sleep 5' >/dev/null 2>&1 &
             nc -ll -p {redis} -e sh -c 'read line; echo -ERR unknown command' >/dev/null 2>&1 &"
        );
        let started = env.run_in("kinds", "", &["sh", "-c", &servers]);
        assert!(started.status.success(), "{started:?}");

        // From their bind on, the others are never bound on the host, not
        // even before their first probe comes back.
        let tcp = [postgres, mysql, redis];
        let judged = Instant::now();
        let mut workspace = serde_json::Value::Null;
        let settled = eventually(Duration::from_secs(20), || {
            for port in tcp {
                assert!(
                    !bound_on_host(port),
                    "{kind}: the proxy bound :{port}, which does not speak HTTP"
                );
            }
            workspace = listed(&env, &name);
            has_url(&workspace, web) && workspace["tcp_ports"].as_array().unwrap().len() == 3
        });
        assert!(
            settled,
            "{kind}: never judged: {workspace:#}\nthe proxy's log:\n{}\nlist: {:?}",
            std::fs::read_to_string(env.dir.path().join("proxy-test.log")).unwrap_or_default(),
            env.cmd(&["-v", "list"]).output().unwrap()
        );
        eprintln!("{kind}: judged within {:?}", judged.elapsed());
        let mut tcp_sorted = tcp;
        tcp_sorted.sort_unstable();
        assert_eq!(
            workspace["tcp_ports"],
            serde_json::json!(tcp_sorted),
            "{workspace:#}"
        );
        for port in tcp {
            assert!(!has_url(&workspace, port), "{kind}: {workspace:#}");
            assert!(!bound_on_host(port), "{kind}: :{port} bound on the host");
        }
        // The HTTP one is routed.
        let host = format!("{name}.localhost:{web}");
        let (status, body) = http_get(web, &host, "/").unwrap();
        assert_eq!((status, body.as_str()), (200, name.as_str()));

        let urls = env.ok(&["urls", &name]);
        assert!(urls.contains(&format!("http://{host}")), "{urls}");
        for port in tcp {
            assert!(!urls.contains(&format!(":{port}")), "{kind}: {urls}");
        }
        let text = env.ok(&["list"]);
        let ports: Vec<String> = tcp_sorted.iter().map(u16::to_string).collect();
        assert!(
            text.contains(&format!("tcp: {}", ports.join(" "))) && text.contains("dual forward"),
            "{text}"
        );
        for port in tcp {
            assert!(!text.contains(&format!(".localhost:{port}")), "{text}");
        }
    });
}
