//! Reading what reached the SMTP server, through MailDev's REST API
//! (`MAILDEV_API_URL`, default `http://127.0.0.1:1080`; MailDev 3 serves `/api/email`,
//! MailDev 2 `/email`).

use serde_json::Value;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct Email {
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Clone)]
pub struct MailDev {
    base: String,
    http: reqwest::Client,
}

impl MailDev {
    pub fn from_env() -> Self {
        Self {
            base: std::env::var("MAILDEV_API_URL")
                .unwrap_or_else(|_| "http://127.0.0.1:1080".to_owned())
                .trim_end_matches('/')
                .to_owned(),
            http: reqwest::Client::new(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Every email MailDev holds.
    pub async fn all(&self) -> Vec<Email> {
        for path in ["/api/email", "/email"] {
            let Ok(res) = self.http.get(format!("{}{path}", self.base)).send().await else {
                continue;
            };
            if !res.status().is_success() {
                continue;
            }
            let Ok(Value::Array(list)) = res.json::<Value>().await else {
                continue;
            };
            return list.iter().map(parse).collect();
        }
        panic!(
            "cannot read MailDev's API at {}: start MailDev (`bash .ci/test` does, or `npx maildev`)",
            self.base
        );
    }

    /// Emails addressed to `address` (case-insensitive).
    pub async fn to(&self, address: &str) -> Vec<Email> {
        self.all()
            .await
            .into_iter()
            .filter(|e| e.to.iter().any(|t| t.eq_ignore_ascii_case(address)))
            .collect()
    }

    /// Waits until at least `n` emails to `address` arrived, and returns them.
    pub async fn wait_for(&self, address: &str, n: usize, timeout: Duration) -> Vec<Email> {
        let start = Instant::now();
        loop {
            let got = self.to(address).await;
            if got.len() >= n || start.elapsed() > timeout {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn parse(v: &Value) -> Email {
    let text = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Email {
        to: v
            .get("to")
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(|t| t.get("address").and_then(Value::as_str).map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        subject: text("subject"),
        text: text("text"),
        html: text("html"),
    }
}

impl Email {
    /// The first `…/invite/<token>` link in the text part (noted for the log scan).
    pub fn invite_link(&self) -> Option<String> {
        let start = self.text.find("http")?;
        let link: String = self.text[start..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect();
        let link = link.contains("/invite/").then_some(link)?;
        if let Some(token) = link.rsplit('/').next() {
            crate::harness::record_secret(token);
        }
        Some(link)
    }
}
