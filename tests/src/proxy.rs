//! A TCP proxy in front of a real service, for fault injection that touches one test only:
//! cut every open connection (a broker or database restart, as the client sees it), sever
//! only the client's side of them (a network partition the server has not noticed yet), or
//! refuse new ones for a while (an outage).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
};

pub struct Proxy {
    addr: SocketAddr,
    refusing: Arc<AtomicBool>,
    /// Bumped to cut every connection open at that moment.
    generation: watch::Sender<u64>,
    /// Set to drop the client side of every connection open at that moment, keeping the
    /// server side for the duration it holds.
    severed: watch::Sender<Duration>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a proxy port");
        let addr = listener.local_addr().expect("proxy address");
        let refusing = Arc::new(AtomicBool::new(false));
        let (generation, _) = watch::channel(0u64);
        let (severed, _) = watch::channel(Duration::ZERO);
        let upstream = upstream.to_owned();
        let (refuse, gen_tx, sever_tx) = (refusing.clone(), generation.clone(), severed.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if refuse.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let upstream = upstream.clone();
                let mut cut = gen_tx.subscribe();
                let mut sever = sever_tx.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                        _ = sever.changed() => {
                            // The client sees its connection end; the server keeps its
                            // side, silent, for the hold or until the next cut.
                            drop(inbound);
                            let hold = *sever.borrow();
                            tokio::select! {
                                () = tokio::time::sleep(hold) => {}
                                _ = cut.changed() => {}
                            }
                        }
                    }
                });
            }
        });
        Self {
            addr,
            refusing,
            generation,
            severed,
            accept,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Drops every connection open now (new ones are still accepted).
    pub fn cut(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    /// Drops the client side of every connection open now and keeps the server side open
    /// and silent for `hold` (or until the next `cut`): for that long the server still
    /// holds what those connections owned (exclusive queues, unacknowledged deliveries)
    /// while the clients reconnect, as before a missed-heartbeat timeout.
    pub fn sever(&self, hold: Duration) {
        self.severed.send_modify(|h| *h = hold);
    }

    /// Refuses (accepts and drops) new connections while `true`.
    pub fn refuse(&self, refusing: bool) {
        self.refusing.store(refusing, Ordering::SeqCst);
    }

    /// An outage: drop what is open and refuse new connections until `restore`.
    pub fn down(&self) {
        self.refuse(true);
        self.cut();
    }

    pub fn restore(&self) {
        self.refuse(false);
    }

    /// `url` with its `host:port` replaced by this proxy's.
    pub fn url_for(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        let (userinfo, hostpart) = match rest.rsplit_once('@') {
            Some((u, h)) => (format!("{u}@"), h),
            None => (String::new(), rest),
        };
        let tail = hostpart.find(['/', '?']).map_or("", |i| &hostpart[i..]);
        format!("{scheme}://{userinfo}{}{tail}", self.addr)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// A relay of a test's own in front of a real SMTP server: a free loopback port whose every
/// connection goes, with a new one of its own to `upstream`, to `serve`. It stops accepting
/// when dropped.
struct SmtpRelay {
    addr: SocketAddr,
    accept: tokio::task::JoinHandle<()>,
}

impl SmtpRelay {
    async fn start<F, Fut>(upstream: &str, serve: F) -> Self
    where
        F: Fn(TcpStream, TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a proxy port");
        let addr = listener.local_addr().expect("proxy address");
        let upstream = upstream.to_owned();
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                tokio::spawn(serve(inbound, outbound));
            }
        });
        Self { addr, accept }
    }

    fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }
}

impl Drop for SmtpRelay {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// An SMTP relay to a real server that, on its first connection only, forwards the end of
/// a message (`CRLF.CRLF`) and then drops the connection before the server's answer reaches
/// the client: the server has the mail, while the client sees a reset it calls transient.
pub struct DropAfterData(SmtpRelay);

impl DropAfterData {
    pub async fn start(upstream: &str) -> Self {
        let first = Arc::new(AtomicBool::new(true));
        let relay = SmtpRelay::start(upstream, move |inbound, outbound| {
            drop_after_data(inbound, outbound, first.swap(false, Ordering::SeqCst))
        })
        .await;
        Self(relay)
    }

    /// `smtp://` URL of this relay.
    pub fn url(&self) -> String {
        self.0.url()
    }
}

/// One connection through [`DropAfterData`], dropped after the end of its first message if
/// `drop_at_end`.
async fn drop_after_data(inbound: TcpStream, outbound: TcpStream, drop_at_end: bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client_rx, mut client_tx) = inbound.into_split();
    let (mut server_rx, mut server_tx) = outbound.into_split();
    let answers = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_rx, &mut client_tx).await;
        client_tx
    });
    let mut tail: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = client_rx.read(&mut buf).await {
        if n == 0 {
            break;
        }
        tail.extend_from_slice(&buf[..n]);
        let ends = tail.windows(5).any(|w| w == b"\r\n.\r\n");
        let keep = tail.len().saturating_sub(4);
        tail.drain(..keep);
        if drop_at_end && ends {
            // The server's answer must not reach the client.
            answers.abort();
            let _ = server_tx.write_all(&buf[..n]).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            return;
        }
        if server_tx.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    answers.abort();
}

/// An SMTP relay to a real server that greylists: it answers `451` itself to every
/// `RCPT TO` naming an address that contains `marker` (the server never sees it), until
/// [`Greylist::lift`], and forwards everything else, both ways, as it is. It notes, for
/// each message it forwards whole, how many refusals it had answered by then.
pub struct Greylist {
    relay: SmtpRelay,
    refused: Arc<std::sync::atomic::AtomicUsize>,
    lifted: Arc<AtomicBool>,
    forwarded: Arc<std::sync::Mutex<Vec<usize>>>,
}

impl Greylist {
    pub async fn start(upstream: &str, marker: &str) -> Self {
        let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let lifted = Arc::new(AtomicBool::new(false));
        let marker = marker.to_ascii_lowercase();
        let forwarded = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (count, lift, sent) = (refused.clone(), lifted.clone(), forwarded.clone());
        let relay = SmtpRelay::start(upstream, move |inbound, outbound| {
            greylist_one(
                inbound,
                outbound,
                marker.clone(),
                (count.clone(), sent.clone()),
                lift.clone(),
            )
        })
        .await;
        Self {
            relay,
            refused,
            lifted,
            forwarded,
        }
    }

    /// For each message forwarded whole so far (its closing `.` passed on to the server),
    /// in order: how many recipients had been answered `451` by then.
    pub fn forwarded(&self) -> Vec<usize> {
        self.forwarded.lock().expect("greylist lock").clone()
    }

    /// `smtp://` URL of this relay.
    pub fn url(&self) -> String {
        self.relay.url()
    }

    /// How many recipients it has answered `451` so far.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    /// From now on, forwards every recipient.
    pub fn lift(&self) {
        self.lifted.store(true, Ordering::SeqCst);
    }
}

/// One connection through [`Greylist`]: the client's lines are read one by one (a message's
/// lines, between `DATA` and its lone `.`, pass through untouched); the server's answers are
/// copied back, and a `451` of ours is written between them, while the server waits for the
/// client's next command.
async fn greylist_one(
    inbound: TcpStream,
    outbound: TcpStream,
    marker: String,
    (refused, forwarded): (
        Arc<std::sync::atomic::AtomicUsize>,
        Arc<std::sync::Mutex<Vec<usize>>>,
    ),
    lifted: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let (client_rx, client_tx) = inbound.into_split();
    let (mut server_rx, mut server_tx) = outbound.into_split();
    let client_tx = Arc::new(tokio::sync::Mutex::new(client_tx));
    let to_client = client_tx.clone();
    let answers = tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match tokio::io::AsyncReadExt::read(&mut server_rx, &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to_client.lock().await.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    let mut lines = BufReader::new(client_rx);
    let mut line = Vec::new();
    let mut in_data = false;
    loop {
        line.clear();
        match lines.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line).to_ascii_lowercase();
        let mut ends_message = false;
        if in_data {
            in_data = text.trim_end() != ".";
            ends_message = !in_data;
        } else if text.starts_with("data") {
            in_data = true;
        } else if text.starts_with("rcpt to:")
            && text.contains(&marker)
            && !lifted.load(Ordering::SeqCst)
        {
            refused.fetch_add(1, Ordering::SeqCst);
            let answer = b"451 4.7.1 Greylisted, please try again later\r\n";
            if client_tx.lock().await.write_all(answer).await.is_err() {
                break;
            }
            continue;
        }
        if server_tx.write_all(&line).await.is_err() {
            break;
        }
        if ends_message {
            let by_then = refused.load(Ordering::SeqCst);
            forwarded.lock().expect("greylist lock").push(by_then);
        }
    }
    answers.abort();
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn urls_point_at_the_proxy() {
        let p = super::Proxy::start("127.0.0.1:1").await;
        let a = p.addr();
        assert_eq!(
            p.url_for("postgres://postgres@127.0.0.1:5432/db"),
            format!("postgres://postgres@{a}/db")
        );
        assert_eq!(
            p.url_for("amqp://guest:guest@127.0.0.1:5672/%2f"),
            format!("amqp://guest:guest@{a}/%2f")
        );
        assert_eq!(p.url_for("smtp://127.0.0.1:1025"), format!("smtp://{a}"));
    }
}
