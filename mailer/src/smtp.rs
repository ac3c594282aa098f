//! The SMTP connections the mailer sends through: lettre's SMTP client on sockets with
//! Nagle's algorithm off (`TCP_NODELAY`), pooled here.
//!
//! lettre 0.11.23 writes a message's body and its closing `.` in two writes, on sockets
//! with Nagle on. The kernel then holds the five bytes of the `.` until the server
//! acknowledges the body, and servers delay that acknowledgement (40 ms on Linux): every
//! mail cost 40 ms more, and each connection sent at most ~22 a second
//! (docs/performance.md, "Invites in batches, and 40 ms a mail"; fixed upstream in
//! lettre's pull request 1159, not yet released). lettre builds its own sockets inside its pool, so for `smtp://` URLs (plain,
//! or STARTTLS with `?tls=required|opportunistic`) the mailer opens the socket itself and
//! hands it to lettre's client, which speaks SMTP, STARTTLS and AUTH on it. `smtps://`
//! (TLS from the first byte) keeps lettre's own pooled transport.

use crate::invite::SendError;
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    transport::smtp::{
        PoolConfig,
        authentication::{Credentials, Mechanism},
        client::{AsyncSmtpConnection, TlsParameters},
        extension::ClientId,
    },
};
use std::time::{Duration, Instant};
use tokio::{net::TcpStream, sync::Mutex};

/// Where and how invites are sent (`SMTP_URL`), each send within a time limit.
pub(crate) struct Smtp {
    via: Via,
    timeout: Duration,
}

enum Via {
    /// `smtp://`: sockets of our own, with Nagle off.
    Direct(Box<Direct>),
    /// `smtps://`: lettre's pooled transport.
    Pooled(AsyncSmtpTransport<Tokio1Executor>),
}

/// STARTTLS, as `?tls=` asks.
enum StartTls {
    Never,
    Required(TlsParameters),
    Opportunistic(TlsParameters),
}

pub(crate) struct Direct {
    host: String,
    port: u16,
    start_tls: StartTls,
    credentials: Option<Credentials>,
    hello: ClientId,
    /// Connections not in use, and since when; at most `keep` of them.
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
    keep: usize,
}

/// A connection idle this long is closed rather than used again (lettre's pool default).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// lettre's default ports: 25 for plain SMTP, 587 for submission with STARTTLS.
const SMTP_PORT: u16 = 25;
const SUBMISSION_PORT: u16 = 587;

impl Smtp {
    /// Reads `SMTP_URL` in lettre's syntax, keeping at most `keep` connections open, each
    /// exchange bounded by `timeout`.
    pub(crate) fn from_url(url: &str, timeout: Duration, keep: usize) -> anyhow::Result<Self> {
        use anyhow::Context;
        // lettre's own reading decides what is valid, so both paths accept the same URLs.
        let pooled = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .context("SMTP_URL is not a valid SMTP URL")?
            .timeout(Some(timeout))
            .pool_config(PoolConfig::new().max_size(u32::try_from(keep).unwrap_or(1)));
        let parsed = url::Url::parse(url).context("SMTP_URL is not a valid URL")?;
        if parsed.scheme() != "smtp" {
            return Ok(Smtp {
                via: Via::Pooled(pooled.build()),
                timeout,
            });
        }
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
        let (start_tls, default_port) = match query("tls").as_deref() {
            None => (StartTls::Never, SMTP_PORT),
            Some("required") => (StartTls::Required(tls()?), SUBMISSION_PORT),
            Some("opportunistic") => (StartTls::Opportunistic(tls()?), SUBMISSION_PORT),
            Some(other) => anyhow::bail!("SMTP_URL: unknown tls={other}"),
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
        let direct = Direct {
            port: parsed.port().unwrap_or(default_port),
            host,
            start_tls,
            credentials,
            hello,
            idle: Mutex::new(Vec::new()),
            keep: keep.max(1),
        };
        Ok(Smtp {
            via: Via::Direct(Box::new(direct)),
            timeout,
        })
    }

    /// Sends one message within the time limit (lettre bounds only the connect: a server
    /// that stops answering would hold the batch's locks for ever), classifying the
    /// failure.
    pub(crate) async fn send(&self, message: Message) -> Result<(), SendError> {
        let sent = async {
            match &self.via {
                Via::Pooled(transport) => transport.send(message).await.map(drop).map_err(classify),
                Via::Direct(direct) => direct.send(&message).await,
            }
        };
        match tokio::time::timeout(self.timeout, sent).await {
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

impl Direct {
    async fn send(&self, message: &Message) -> Result<(), SendError> {
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
        let mut conn = AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello)
            .await
            .map_err(classify)?;
        match &self.start_tls {
            StartTls::Required(tls) => conn.starttls(tls.clone(), &self.hello).await,
            StartTls::Opportunistic(tls) if conn.can_starttls() => {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn direct(url: &str) -> Direct {
        match Smtp::from_url(url, Duration::from_secs(1), 4)
            .expect("valid")
            .via
        {
            Via::Direct(d) => *d,
            Via::Pooled(_) => panic!("{url} is sent through lettre's pool"),
        }
    }

    // A runtime, because lettre's pool (for `smtps://`) starts a task when built.
    #[tokio::test]
    async fn smtp_urls_read_as_lettre_reads_them() {
        let d = direct("smtp://127.0.0.1:1025");
        assert_eq!((d.host.as_str(), d.port), ("127.0.0.1", 1025));
        assert!(matches!(d.start_tls, StartTls::Never));
        assert!(d.credentials.is_none());

        let d = direct("smtp://us%40er:p%2Fss@mail.example?tls=required");
        assert_eq!(d.port, SUBMISSION_PORT);
        assert!(matches!(d.start_tls, StartTls::Required(_)));
        let expected = Credentials::new("us@er".into(), "p/ss".into());
        assert_eq!(d.credentials, Some(expected));

        let d = direct("smtp://mail.example/roster.example?tls=opportunistic");
        assert!(matches!(d.start_tls, StartTls::Opportunistic(_)));
        assert_eq!(d.hello, ClientId::Domain("roster.example".into()));
        assert_eq!(direct("smtp://mail.example").port, SMTP_PORT);

        assert!(matches!(
            Smtp::from_url("smtps://u:p@mail.example", Duration::from_secs(1), 4).map(|s| s.via),
            Ok(Via::Pooled(_))
        ));
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
