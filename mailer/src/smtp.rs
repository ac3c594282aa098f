//! The SMTP connections the mailer sends through: lettre's SMTP client on sockets with
//! Nagle's algorithm off (`TCP_NODELAY`), pooled here.
//!
//! lettre 0.11.23 writes a message's body and its closing `.` in two writes, on sockets
//! with Nagle on. The kernel then holds the five bytes of the `.` until the server
//! acknowledges the body, and servers delay that acknowledgement (40 ms on Linux): every
//! mail cost 40 ms more, and each connection sent at most ~22 a second
//! (docs/performance.md, "Invites in batches, and 40 ms a mail"; fixed upstream in
//! lettre's pull request 1159, not yet released). lettre builds its own sockets inside its
//! pool, so the mailer opens each socket itself and hands it to lettre's client, which
//! speaks SMTP, STARTTLS and AUTH on it: for `smtps://` (TLS from the first byte) wrapped
//! first in lettre's own TLS stream, with lettre's certificate checks ([`Wrapped`]).

use crate::invite::SendError;
use lettre::{
    AsyncSmtpTransport, Message, Tokio1Executor,
    transport::smtp::{
        authentication::{Credentials, Mechanism},
        client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters},
        extension::ClientId,
    },
};
use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll, ready},
    time::{Duration, Instant},
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    sync::Mutex,
};

/// TLS, as the URL asks: `smtps://` from the first byte, else STARTTLS as `?tls=` says.
enum Tls {
    Never,
    Wrapper(TlsParameters),
    Required(TlsParameters),
    Opportunistic(TlsParameters),
}

/// Where and how invites are sent (`SMTP_URL`), each send within a time limit, over the
/// connections kept here.
pub(crate) struct Smtp {
    host: String,
    port: u16,
    tls: Tls,
    credentials: Option<Credentials>,
    hello: ClientId,
    /// Connections not in use, and since when; at most `keep` of them.
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
    keep: usize,
    timeout: Duration,
}

/// A connection idle this long is closed rather than used again (lettre's pool default).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// lettre's default ports: 25 for plain SMTP, 587 for submission with STARTTLS, 465 for
/// submission over TLS.
const SMTP_PORT: u16 = 25;
const SUBMISSION_PORT: u16 = 587;
const SUBMISSIONS_PORT: u16 = 465;

impl Smtp {
    /// Reads `SMTP_URL` in lettre's syntax, keeping at most `keep` connections open, each
    /// send (with any connection made for it) bounded by `timeout`.
    pub(crate) fn from_url(url: &str, timeout: Duration, keep: usize) -> anyhow::Result<Self> {
        use anyhow::Context;
        // lettre's own reading decides what is valid, so we accept the URLs lettre does.
        AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .context("SMTP_URL is not a valid SMTP URL")?;
        let parsed = url::Url::parse(url).context("SMTP_URL is not a valid URL")?;
        let host = parsed
            .host_str()
            .context("SMTP_URL has no host")?
            .to_owned();
        let query = |key: &str| {
            parsed
                .query_pairs()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.into_owned())
        };
        let tls = || TlsParameters::new(host.clone()).context("SMTP_URL's host for TLS");
        let (tls, default_port) = match (parsed.scheme(), query("tls").as_deref()) {
            ("smtps", _) => (Tls::Wrapper(tls()?), SUBMISSIONS_PORT),
            ("smtp", None) => (Tls::Never, SMTP_PORT),
            ("smtp", Some("required")) => (Tls::Required(tls()?), SUBMISSION_PORT),
            ("smtp", Some("opportunistic")) => (Tls::Opportunistic(tls()?), SUBMISSION_PORT),
            (scheme, tls) => anyhow::bail!("SMTP_URL: unknown scheme {scheme} or tls={tls:?}"),
        };
        let credentials = match parsed.password() {
            Some(password) => Some(Credentials::new(
                percent_decode(parsed.username())?,
                percent_decode(password)?,
            )),
            None => None,
        };
        // As lettre reads it: the URL's path is the name said in EHLO.
        let path = parsed.path().trim_matches('/');
        let hello = if path.is_empty() {
            ClientId::default()
        } else {
            ClientId::Domain(path.to_owned())
        };
        Ok(Smtp {
            port: parsed.port().unwrap_or(default_port),
            host,
            tls,
            credentials,
            hello,
            idle: Mutex::new(Vec::new()),
            keep: keep.max(1),
            timeout,
        })
    }

    /// Sends one message within the time limit, connecting first if no idle connection
    /// answers (a server that stops answering must not hold the batch's locks for ever),
    /// classifying the failure.
    pub(crate) async fn send(&self, message: Message) -> Result<(), SendError> {
        match tokio::time::timeout(self.timeout, self.send_unbounded(&message)).await {
            Ok(result) => result,
            Err(_) => Err(SendError::Transient(format!(
                "no answer from the SMTP server within {:?}",
                self.timeout
            ))),
        }
    }
}

fn classify(e: lettre::transport::smtp::Error) -> SendError {
    if e.is_permanent() {
        SendError::Permanent(e.to_string())
    } else {
        SendError::Transient(e.to_string())
    }
}

/// `%XX` escapes of a URL's user or password, decoded; not UTF-8 is refused, as lettre
/// refuses it.
fn percent_decode(s: &str) -> anyhow::Result<String> {
    Ok(percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map_err(|_| anyhow::anyhow!("SMTP_URL: a user or password that is not UTF-8"))?
        .into_owned())
}

impl Smtp {
    async fn send_unbounded(&self, message: &Message) -> Result<(), SendError> {
        let mut conn = self.connection().await?;
        // On an error lettre has already closed the connection; only a good one returns.
        conn.send(message.envelope(), &message.formatted())
            .await
            .map_err(classify)?;
        let mut idle = self.idle.lock().await;
        if idle.len() < self.keep {
            idle.push((conn, Instant::now()));
        }
        Ok(())
    }

    /// An idle connection that still answers (`NOOP`), else a new one. Connections idle
    /// too long are closed first (the server may have dropped them unseen), so none is
    /// left at the bottom of the stack for ever.
    async fn connection(&self) -> Result<AsyncSmtpConnection, SendError> {
        self.idle
            .lock()
            .await
            .retain(|(_, since)| since.elapsed() < IDLE_TIMEOUT);
        loop {
            let parked = self.idle.lock().await.pop();
            let Some((mut conn, _)) = parked else {
                return self.connect().await;
            };
            if conn.test_connected().await {
                return Ok(conn);
            }
            conn.abort().await;
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let unreachable = |e: std::io::Error| {
            SendError::Transient(format!(
                "cannot connect to the SMTP server {}:{}: {e}",
                self.host, self.port
            ))
        };
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(unreachable)?;
        // The point of this module: no 40 ms wait before each mail's closing `.`.
        tcp.set_nodelay(true).map_err(unreachable)?;
        let transport: Box<dyn AsyncTokioStream> = match &self.tls {
            Tls::Wrapper(tls) => Box::new(Wrapped::over(tcp, tls.clone()).await?),
            _ => Box::new(tcp),
        };
        let mut conn = AsyncSmtpConnection::connect_with_transport(transport, &self.hello)
            .await
            .map_err(classify)?;
        match &self.tls {
            Tls::Required(tls) => conn.starttls(tls.clone(), &self.hello).await,
            Tls::Opportunistic(tls) if conn.can_starttls() => {
                conn.starttls(tls.clone(), &self.hello).await
            }
            _ => Ok(()),
        }
        .map_err(classify)?;
        if let Some(credentials) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(classify)?;
        }
        Ok(conn)
    }
}

/// TLS from the first byte (`smtps://`) on a socket of ours: lettre's own TLS stream (its
/// certificate checks, its TLS versions) made over the socket, under lettre's client, which
/// then speaks SMTP on it as on any stream.
#[allow(deprecated)] // lettre has no other way to put its TLS on a socket it did not open
struct Wrapped {
    inner: lettre::transport::smtp::client::AsyncNetworkStream,
    peer: SocketAddr,
}

#[allow(deprecated)]
impl Wrapped {
    async fn over(tcp: TcpStream, tls: TlsParameters) -> Result<Self, SendError> {
        use lettre::transport::smtp::client::AsyncNetworkStream;
        let peer = tcp
            .peer_addr()
            .map_err(|e| SendError::Transient(format!("the SMTP connection: {e}")))?;
        let mut inner = AsyncNetworkStream::use_existing_tokio1(Box::new(tcp));
        inner.upgrade_tls(tls).await.map_err(classify)?;
        Ok(Self { inner, peer })
    }
}

impl std::fmt::Debug for Wrapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TLS to {}", self.peer)
    }
}

impl AsyncTokioStream for Wrapped {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.peer)
    }
}

// lettre's stream speaks the `futures` I/O traits; its client wants tokio's.
impl AsyncRead for Wrapped {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let read = futures_util::AsyncRead::poll_read(
            Pin::new(&mut self.get_mut().inner),
            cx,
            buf.initialize_unfilled(),
        );
        let n = ready!(read)?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Wrapped {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        futures_util::AsyncWrite::poll_write(Pin::new(&mut self.get_mut().inner), cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_util::AsyncWrite::poll_flush(Pin::new(&mut self.get_mut().inner), cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_util::AsyncWrite::poll_close(Pin::new(&mut self.get_mut().inner), cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smtp(url: &str) -> Smtp {
        Smtp::from_url(url, Duration::from_secs(1), 4).expect("valid")
    }

    #[test]
    fn smtp_urls_read_as_lettre_reads_them() {
        let d = smtp("smtp://127.0.0.1:1025");
        assert_eq!((d.host.as_str(), d.port), ("127.0.0.1", 1025));
        assert!(matches!(d.tls, Tls::Never));
        assert!(d.credentials.is_none());

        let d = smtp("smtp://us%40er:p%2Fss@mail.example?tls=required");
        assert_eq!(d.port, SUBMISSION_PORT);
        assert!(matches!(d.tls, Tls::Required(_)));
        let expected = Credentials::new("us@er".into(), "p/ss".into());
        assert_eq!(d.credentials, Some(expected));

        let d = smtp("smtp://mail.example/roster.example?tls=opportunistic");
        assert!(matches!(d.tls, Tls::Opportunistic(_)));
        assert_eq!(d.hello, ClientId::Domain("roster.example".into()));
        assert_eq!(smtp("smtp://mail.example").port, SMTP_PORT);

        let d = smtp("smtps://u:p@mail.example");
        assert!(matches!(d.tls, Tls::Wrapper(_)));
        assert_eq!(d.port, SUBMISSIONS_PORT);
        assert_eq!(smtp("smtps://mail.example:2465").port, 2465);
        for bad in [
            "mail.example",
            "http://mail.example",
            "smtp://mail.example?tls=maybe",
            "smtp://u:%ff@mail.example",
        ] {
            assert!(
                Smtp::from_url(bad, Duration::from_secs(1), 4).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn escapes_in_user_and_password_are_decoded() {
        assert_eq!(percent_decode("a%20b%zz%4").expect("UTF-8"), "a b%zz%4");
        assert!(percent_decode("%ff").is_err());
    }
}
