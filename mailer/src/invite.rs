//! The invite email: who it is for, its text and HTML parts (every value escaped), and
//! the message (sent through `crate::smtp`).

use lettre::{
    Message,
    message::{Mailbox, MultiPart},
};
use std::time::Duration;

/// Why an invite could not be sent.
#[derive(Clone, Debug, thiserror::Error)]
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

    /// The HTML part; maud escapes every value.
    pub fn html(&self) -> String {
        let name = self.to_name.as_deref().map(single_line);
        maud::html! {
            (maud::DOCTYPE)
            html {
                body style="font-family:sans-serif" {
                    p {
                        @if let Some(name) = &name { "Hello " (name) "," } @else { "Hello," }
                    }
                    p {
                        (single_line(&self.org_name))
                        " uses Roster as its people directory, and your profile is ready."
                    }
                    p { a href=(self.link) { "Accept your invite" } }
                    p style="color:#666" {
                        "The link works once and expires in " (describe_ttl(self.ttl)) "."
                    }
                }
            }
        }
        .into_string()
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

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

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
        assert_eq!(greeting_name(None, None, None), None);
    }

    #[test]
    fn names_cannot_inject_headers_or_markup() {
        let invite = Invite {
            to_address: "eve@x.io".into(),
            to_name: greeting_name(Some("Eve\r\nBcc: all@x.io <script>"), None, None),
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
