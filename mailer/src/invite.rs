//! The invite email: who it is for, its text and HTML parts (every value escaped), and
//! sending it through SMTP.

use common::messages::UserEvent;
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, MultiPart},
};
use serde_json::Value;

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

/// Replaces control characters (CR, LF, …) so no value can break a header line.
fn single_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

impl Invite {
    pub fn subject(&self) -> String {
        format!(
            "You're invited to join {} on Roster",
            single_line(&self.org_name)
        )
    }

    pub fn text(&self) -> String {
        let hello = self
            .to_name
            .as_deref()
            .map_or("Hello,".to_owned(), |n| format!("Hello {n},"));
        format!(
            "{hello}\n\n{} uses Roster as its people directory, and your profile is ready.\n\n\
             Accept your invite: {}\n\nThe link works once and expires in 14 days.\n",
            single_line(&self.org_name),
            self.link
        )
    }

    pub fn html(&self) -> String {
        let hello = self.to_name.as_deref().map_or("Hello,".to_owned(), |n| {
            format!("Hello {},", escape_html(n))
        });
        format!(
            "<!doctype html><html><body style=\"font-family:sans-serif\">\
             <p>{hello}</p><p>{} uses Roster as its people directory, and your profile is ready.</p>\
             <p><a href=\"{link}\">Accept your invite</a></p>\
             <p style=\"color:#666\">The link works once and expires in 14 days.</p></body></html>",
            escape_html(&single_line(&self.org_name)),
            link = escape_html(&self.link),
        )
    }

    /// Builds the message; an address the builder refuses is a permanent failure.
    pub fn message(&self, from: &Mailbox) -> Result<Message, SendError> {
        let to = Mailbox::new(
            self.to_name.clone(),
            self.to_address
                .parse()
                .map_err(|e| SendError::Permanent(format!("bad recipient address: {e}")))?,
        );
        Message::builder()
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
        }
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
        };
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
}
