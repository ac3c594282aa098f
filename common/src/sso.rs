//! Employee sign-in settings that both the ingress and the worker check: what an issuer URL
//! and a client id may look like (docs/sso.md).

/// Longest issuer URL, client id or client secret accepted.
pub const MAX_LEN: usize = 2048;

/// Whether `issuer` can be an OpenID provider's issuer: `https://` (plain `http://` only on
/// this machine, `localhost` or `127.0.0.1`, for development and tests), a host, no query,
/// fragment, user info or white space.
pub fn validate_issuer(issuer: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("issuer {why}"));
    if issuer.is_empty() || issuer.len() > MAX_LEN {
        return bad(&format!("must be 1 to {MAX_LEN} characters"));
    }
    if issuer.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("must not contain spaces");
    }
    if issuer.contains(['?', '#', '@']) {
        return bad("must not have a query, a fragment or user info");
    }
    let rest = if let Some(rest) = issuer.strip_prefix("https://") {
        rest
    } else if let Some(rest) = issuer.strip_prefix("http://") {
        let host = rest.split(['/', ':']).next().unwrap_or_default();
        if host != "localhost" && host != "127.0.0.1" {
            return bad("must be an https:// URL (http:// only for localhost)");
        }
        rest
    } else {
        return bad("must be an https:// URL, e.g. https://acme.okta.com");
    };
    if rest.split(['/', ':']).next().unwrap_or_default().is_empty() {
        return bad("must name a host");
    }
    Ok(())
}

/// Whether `value` can be a client id or secret: 1 to `MAX_LEN` visible characters.
pub fn validate_client_value(name: &str, value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > MAX_LEN || value.chars().any(char::is_control) {
        return Err(format!("{name} must be 1 to {MAX_LEN} visible characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuers_must_be_https_except_on_this_machine() {
        for good in [
            "https://acme.okta.com",
            "https://acme.okta.com/oauth2/default",
            "http://localhost:4000",
            "http://127.0.0.1:39211/",
        ] {
            assert_eq!(validate_issuer(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "acme.okta.com",
            "http://acme.okta.com",
            "http://localhost.evil.com",
            "https://",
            "https://acme.okta.com/?x=1",
            "https://acme.okta.com/#f",
            "https://user@acme.okta.com",
            "https://acme .okta.com",
            "ftp://acme.okta.com",
        ] {
            assert!(validate_issuer(bad).is_err(), "{bad}");
        }
        assert!(validate_issuer(&format!("https://a.com/{}", "x".repeat(MAX_LEN))).is_err());
    }

    #[test]
    fn client_values_are_visible_characters() {
        assert!(validate_client_value("client_id", "0oa1b2c3").is_ok());
        assert!(validate_client_value("client_id", "").is_err());
        assert!(validate_client_value("client_id", "a\nb").is_err());
        assert!(validate_client_value("client_secret", &"x".repeat(MAX_LEN + 1)).is_err());
    }
}
