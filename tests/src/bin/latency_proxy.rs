//! A TCP proxy that adds a fixed delay to every round trip: what a database in another
//! availability zone costs. Used to measure how workers scale when each one waits on the
//! network rather than the database's CPU (docs/performance.md, "Worker scaling").
//!
//! `latency_proxy LISTEN UPSTREAM DELAY_MS`, e.g.
//! `latency_proxy 127.0.0.1:25432 127.0.0.1:5432 1` — then point `DATABASE_URL` at
//! 127.0.0.1:25432. Bytes from the client reach the upstream `DELAY_MS` after they were
//! read, in order; answers come back at once, so each request/response adds `DELAY_MS`.

use std::time::Duration;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::mpsc,
    time::Instant,
};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, upstream, delay_ms] = args.as_slice() else {
        eprintln!("usage: latency_proxy LISTEN UPSTREAM DELAY_MS");
        std::process::exit(2);
    };
    let delay = Duration::from_millis(delay_ms.parse().unwrap_or_else(|_| {
        eprintln!("DELAY_MS must be a whole number of milliseconds");
        std::process::exit(2)
    }));
    let listener = TcpListener::bind(listen).await.unwrap_or_else(|e| {
        eprintln!("binding {listen}: {e}");
        std::process::exit(1)
    });
    eprintln!("latency_proxy: {listen} -> {upstream}, +{delay:?} per round trip");
    while let Ok((inbound, _)) = listener.accept().await {
        let upstream = upstream.clone();
        tokio::spawn(async move {
            if let Ok(outbound) = TcpStream::connect(&upstream).await {
                relay(inbound, outbound, delay).await;
            }
        });
    }
}

/// Client → upstream through a queue of (due time, bytes); upstream → client directly.
async fn relay(inbound: TcpStream, outbound: TcpStream, delay: Duration) {
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (mut client_read, mut client_write) = inbound.into_split();
    let (mut server_read, mut server_write) = outbound.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = client_read.read(&mut buf).await {
            if tx
                .send((Instant::now() + delay, buf[..n].to_vec()))
                .is_err()
            {
                break;
            }
        }
    };
    let writer = async move {
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if server_write.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let back = async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    };
    tokio::join!(reader, writer, back);
}
