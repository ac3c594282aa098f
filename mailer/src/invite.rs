//! The invite email: who it is for, its text and HTML parts (every value escaped), and
//! sending it through SMTP.

use common::messages::UserEvent;
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, MultiPart},
};
use serde_json::Value;
use std::time::Duration;

/// Why an invite could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Worth trying again: connection refused or lost, timeouts, SMTP 4xx.
    #[error("temporary SMTP failure: {0}")]
    Transient(String),
    /// Never going to work: SMTP 5xx, an address the server refuses.
    #[error("permanent SMTP failure: {0}")]
    Permanent(String),
}

/// What an invite says.
#[derive(Clone, Debug, PartialEq)]
pub struct Invite {
    pub to_address: String,
    pub to_name: Option<String>,
    pub org_name: String,
    pub link: String,
    /// How long the link stays valid (`INVITE_TTL`).
    pub ttl: Duration,
    /// The same for every send of one invite (`<invite.{id}@{host}>`), so a mail system that
    /// gets it twice can drop the copy.
    pub message_id: String,
}

/// The `Message-ID` of an invite: fixed by the invite, on the host of `public_url`.
pub fn message_id(invite_id: uuid::Uuid, public_url: &str) -> String {
    let host = public_url
        .split_once("://")
        .map_or(public_url, |(_, rest)| rest)
        .split(['/', ':'])
        .next()
        .filter(|h| !h.is_empty())
        .unwrap_or("roster.invalid");
    format!("<invite.{invite_id}@{host}>")
}

/// The name to greet from the person's stored fields: `displayName`, else given and family
/// name.
pub fn greeting_name(
    display: Option<&str>,
    given: Option<&str>,
    family: Option<&str>,
) -> Option<String> {
    let name = display
        .map(str::to_owned)
        .filter(|n| !n.trim().is_empty())
        .or_else(|| {
            let full = format!(
                "{} {}",
                given.unwrap_or_default(),
                family.unwrap_or_default()
            );
            Some(full.trim().to_owned())
        })?;
    let name = single_line(&name);
    (!name.is_empty()).then_some(name)
}

/// The name to greet: `displayName`, else given and family name.
pub fn display_name(event: &UserEvent) -> Option<String> {
    let field = |name: &str| {
        event
            .changes
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    let name = field("displayName")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| {
            let name = field("name")?;
            let given = name
                .get("givenName")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let family = name
                .get("familyName")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let full = format!("{given} {family}").trim().to_owned();
            (!full.is_empty()).then_some(full)
        })?;
    let name = single_line(&name);
    (!name.is_empty()).then_some(name)
}

/// Longest name put in a greeting or a header; longer ones are cut.
const MAX_NAME_CHARS: usize = 100;

/// One line of plain text: control characters (CR, LF, …), Unicode line separators and
/// invisible direction overrides become spaces, so no value can break a header line or
/// disguise itself; runs of spaces collapse, and the result is at most `MAX_NAME_CHARS`.
fn single_line(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| {
            if c.is_control() || is_invisible_format(c) {
                ' '
            } else {
                c
            }
        })
        .collect();
    cleaned
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(MAX_NAME_CHARS)
        .collect::<String>()
        .trim_end()
        .to_owned()
}

/// Line and paragraph separators, zero-width characters and bidirectional overrides.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// "7 days", "36 hours", "90 minutes": how long a link stays valid, for the email.
pub fn describe_ttl(ttl: Duration) -> String {
    let secs = ttl.as_secs();
    let (n, unit) = if secs >= 86_400 && secs.is_multiple_of(86_400) {
        (secs / 86_400, "day")
    } else if secs >= 3_600 && secs.is_multiple_of(3_600) {
        (secs / 3_600, "hour")
    } else {
        (secs.div_ceil(60).max(1), "minute")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

impl Invite {
    pub fn subject(&self) -> String {
        format!(
            "You're invited to join {} on Roster",
            single_line(&self.org_name)
        )
    }

    pub fn text(&self) -> String {
        let hello = self.to_name.as_deref().map_or("Hello,".to_owned(), |n| {
            format!("Hello {},", single_line(n))
        });
        format!(
            "{hello}\n\n{} uses Roster as its people directory, and your profile is ready.\n\n\
             Accept your invite: {}\n\nThe link works once and expires in {}.\n",
            single_line(&self.org_name),
            self.link,
            describe_ttl(self.ttl),
        )
    }

    pub fn html(&self) -> String {
        let hello = self.to_name.as_deref().map_or("Hello,".to_owned(), |n| {
            format!("Hello {},", common::html::escape(&single_line(n)))
        });
        format!(
            "<!doctype html><html><body style=\"font-family:sans-serif\">\
             <p>{hello}</p><p>{} uses Roster as its people directory, and your profile is ready.</p>\
             <p><a href=\"{link}\">Accept your invite</a></p>\
             <p style=\"color:#666\">The link works once and expires in {}.</p></body></html>",
            common::html::escape(&single_line(&self.org_name)),
            common::html::escape(&describe_ttl(self.ttl)),
            link = common::html::escape(&self.link),
        )
    }

    /// Builds the message with typed headers (lettre encodes the display name and the
    /// subject); an address that does not parse as one mailbox is a permanent failure.
    pub fn message(&self, from: &Mailbox) -> Result<Message, SendError> {
        let to = Mailbox::new(
            self.to_name
                .as_deref()
                .map(single_line)
                .filter(|n| !n.is_empty()),
            self.to_address
                .parse()
                .map_err(|e| SendError::Permanent(format!("bad recipient address: {e}")))?,
        );
        Message::builder()
            .message_id(Some(self.message_id.clone()))
            .from(from.clone())
            .to(to)
            .subject(self.subject())
            .multipart(MultiPart::alternative_plain_html(self.text(), self.html()))
            .map_err(|e| SendError::Permanent(format!("cannot build the message: {e}")))
    }
}

/// Sends one message, classifying the failure.
pub async fn send(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    message: Message,
) -> Result<(), SendError> {
    match transport.send(message).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_permanent() => Err(SendError::Permanent(e.to_string())),
        Err(e) => Err(SendError::Transient(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use uuid::Uuid;

    fn event(changes: Value, user_name: &str) -> UserEvent {
        UserEvent {
            user_id: Uuid::new_v4(),
            version: 1,
            user_name: user_name.into(),
            changes: changes.as_object().cloned().unwrap_or_default(),
            manager_id: None,
        }
    }

    #[test]
    fn greets_the_stored_name() {
        assert_eq!(
            greeting_name(Some("Ann B"), Some("A"), None).as_deref(),
            Some("Ann B")
        );
        assert_eq!(
            greeting_name(None, Some("Ann"), Some("Lee")).as_deref(),
            Some("Ann Lee")
        );
        assert_eq!(greeting_name(Some(" "), None, None), None);
    }

    #[test]
    fn greets_by_display_name_then_full_name() {
        let e = event(
            json!({"displayName": "Ann", "name": {"givenName": "A"}}),
            "u",
        );
        assert_eq!(display_name(&e).as_deref(), Some("Ann"));
        let e = event(
            json!({"name": {"givenName": "Jo", "familyName": "Li"}}),
            "jo@x.io",
        );
        assert_eq!(display_name(&e).as_deref(), Some("Jo Li"));
        assert_eq!(display_name(&event(json!({}), "u")), None);
    }

    #[test]
    fn names_cannot_inject_headers_or_markup() {
        let e = event(
            json!({"displayName": "Eve\r\nBcc: all@x.io <script>"}),
            "eve@x.io",
        );
        let invite = Invite {
            to_address: "eve@x.io".into(),
            to_name: display_name(&e),
            org_name: "Acme\r\nX-Evil: 1".into(),
            link: "http://h/invite/t".into(),
            ttl: Duration::from_secs(7 * 86_400),
            message_id: message_id(Uuid::nil(), "https://roster.example:8443/x"),
        };
        assert_eq!(
            invite.message_id,
            "<invite.00000000-0000-0000-0000-000000000000@roster.example>"
        );
        assert!(!invite.subject().contains('\n'));
        assert!(!invite.html().contains("<script>"));
        let from: Mailbox = "Roster <no-reply@roster.localhost>".parse().expect("from");
        let formatted =
            String::from_utf8(invite.message(&from).expect("builds").formatted()).expect("utf8");
        let headers = formatted.split("\r\n\r\n").next().expect("a header block");
        assert!(!headers.contains("\r\nBcc:"), "{headers}");
        assert!(!headers.contains("\r\nX-Evil:"), "{headers}");
        assert!(
            !formatted.contains("\nX-Evil"),
            "the body keeps names on one line"
        );
    }

    #[test]
    fn quotes_and_brackets_in_names_stay_inside_the_display_name() {
        let invite = Invite {
            to_address: "eve@x.io".into(),
            to_name: Some("\"Eve\" <boss@x.io>, mallory@x.io\u{202E}".into()),
            org_name: "Acme".into(),
            link: "http://h/invite/t?a=1&b=\"2\"".into(),
            ttl: Duration::from_secs(36 * 3600),
            message_id: message_id(Uuid::nil(), "http://h"),
        };
        let from: Mailbox = "Roster <no-reply@roster.localhost>".parse().expect("from");
        let message = invite.message(&from).expect("builds");
        let to: Vec<String> = message
            .envelope()
            .to()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(to, ["eve@x.io"], "one recipient: the address, not the name");
        let html = invite.html();
        assert!(html.contains("&quot;Eve&quot; &lt;boss@x.io&gt;"), "{html}");
        assert!(html.contains("href=\"http://h/invite/t?a=1&amp;b=&quot;2&quot;\""));
        assert!(!invite.text().contains('\u{202E}'));
        assert!(invite.text().contains("expires in 36 hours"));
    }

    #[test]
    fn long_names_are_cut_and_whitespace_collapses() {
        assert_eq!(single_line(" a\r\n\tb  c "), "a b c");
        assert_eq!(single_line(&"x".repeat(500)).len(), MAX_NAME_CHARS);
    }

    #[test]
    fn ttls_read_naturally() {
        assert_eq!(describe_ttl(Duration::from_secs(7 * 86_400)), "7 days");
        assert_eq!(describe_ttl(Duration::from_secs(86_400)), "1 day");
        assert_eq!(describe_ttl(Duration::from_secs(3 * 3600)), "3 hours");
        assert_eq!(describe_ttl(Duration::from_secs(90)), "2 minutes");
    }
}
