//! A TCP proxy put between the order service and a dependency, to break
//! connections on purpose and to see what the order service sends.
//!
//! Each connection it accepts gets the next [`Fault`] of its plan (then
//! [`Fault::Pass`] once the plan is used up). It records the first bytes of
//! every connection (the request line and headers of its first request), and
//! it can hold every connection at a gate until the test opens it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Passes bytes both ways.
    Pass,
    /// Forwards the request, waits until the dependency starts answering (so
    /// the dependency did the work), then drops the caller's connection
    /// without a byte of the answer.
    CutAfterForward,
    /// Drops the caller's connection at once; the dependency sees nothing.
    Cut,
}

struct State {
    plan: Mutex<VecDeque<Fault>>,
    default: Fault,
    heads: Mutex<Vec<String>>,
    arrived: watch::Sender<usize>,
    gate: watch::Sender<bool>,
}

pub struct Proxy {
    pub url: String,
    state: Arc<State>,
}

impl Proxy {
    /// A proxy to `upstream` (`http://host:port`) applying `plan`, then `default`.
    pub async fn start(upstream: &str, plan: &[Fault], default: Fault) -> Self {
        let upstream = upstream
            .strip_prefix("http://")
            .expect("an http:// url")
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(State {
            plan: Mutex::new(plan.iter().copied().collect()),
            default,
            heads: Mutex::new(Vec::new()),
            arrived: watch::channel(0).0,
            gate: watch::channel(true).0,
        });
        let accepting = state.clone();
        actix_web::rt::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let fault = accepting
                    .plan
                    .lock()
                    .expect("plan")
                    .pop_front()
                    .unwrap_or(accepting.default);
                actix_web::rt::spawn(serve(accepting.clone(), client, upstream.clone(), fault));
            }
        });
        Self { url, state }
    }

    /// The request lines of the first requests seen, in arrival order.
    pub fn request_lines(&self) -> Vec<String> {
        self.heads()
            .iter()
            .map(|head| head.lines().next().unwrap_or_default().to_owned())
            .collect()
    }

    /// How many first requests started with `prefix` (`POST /reservations`).
    pub fn count(&self, prefix: &str) -> usize {
        self.request_lines()
            .iter()
            .filter(|line| line.starts_with(prefix))
            .count()
    }

    /// The request heads seen (request line and headers).
    pub fn heads(&self) -> Vec<String> {
        self.state.heads.lock().expect("heads").clone()
    }

    /// Holds every connection that arrives from now on until [`Proxy::open`].
    pub fn close(&self) {
        self.state.gate.send_replace(false);
    }

    pub fn open(&self) {
        self.state.gate.send_replace(true);
    }

    /// Waits until `n` connections have sent their first request.
    pub async fn arrived(&self, n: usize) {
        let mut arrived = self.state.arrived.subscribe();
        arrived
            .wait_for(|seen| *seen >= n)
            .await
            .expect("proxy runs");
    }
}

/// The value of header `name` in `head`, if present.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then_some(value.trim())
    })
}

async fn serve(state: Arc<State>, mut client: TcpStream, upstream: String, fault: Fault) {
    let mut first = vec![0; 64 * 1024];
    let n = match client.read(&mut first).await {
        Ok(0) | Err(_) => return,
        Ok(n) => n,
    };
    first.truncate(n);
    let head = String::from_utf8_lossy(&first);
    let head = head.split("\r\n\r\n").next().unwrap_or_default().to_owned();
    state.heads.lock().expect("heads").push(head);
    state.arrived.send_modify(|seen| *seen += 1);
    let mut gate = state.gate.subscribe();
    if gate.wait_for(|open| *open).await.is_err() {
        return;
    }
    if fault == Fault::Cut {
        return;
    }
    let Ok(mut server) = TcpStream::connect(&upstream).await else {
        return;
    };
    if server.write_all(&first).await.is_err() {
        return;
    }
    match fault {
        Fault::CutAfterForward => cut_after_forward(client, server).await,
        _ => {
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        }
    }
}

/// Forwards the rest of the request until the answer starts, then drops
/// both connections.
async fn cut_after_forward(mut client: TcpStream, mut server: TcpStream) {
    let (mut from_client, mut to_server) = (vec![0; 16 * 1024], vec![0; 16 * 1024]);
    loop {
        tokio::select! {
            read = client.read(&mut from_client) => match read {
                Ok(n) if n > 0 => {
                    if server.write_all(&from_client[..n]).await.is_err() {
                        return;
                    }
                }
                _ => return,
            },
            // The first byte of the answer: the work is done; the caller
            // never hears of it.
            _ = server.read(&mut to_server) => return,
        }
    }
}
