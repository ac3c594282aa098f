-- Employee sign-in with OpenID Connect (docs/sso.md). Per org: the provider's issuer, the
-- client id, the client secret sealed with ROSTER_SECRETS_KEY (AES-256-GCM, bound to the
-- org; never stored or sent in plain text), which ID token claim names the person, and a
-- generation that every change bumps: sessions carry it, so a change ends them all.
ALTER TABLE orgs
    ADD COLUMN oidc_issuer        text,
    ADD COLUMN oidc_client_id     text,
    ADD COLUMN oidc_client_secret text,
    ADD COLUMN oidc_claim         text NOT NULL DEFAULT 'email'
        CHECK (oidc_claim IN ('email', 'preferred_username')),
    ADD COLUMN oidc_generation    bigint NOT NULL DEFAULT 0,
    ADD COLUMN oidc_updated_at    timestamptz;

-- Per person: a generation sessions carry, bumped whenever the person is deactivated by any
-- path (SCIM PATCH or PUT, another service's user.deactivate), so their sessions end and a
-- reactivation does not bring them back; and when they last signed in.
ALTER TABLE users
    ADD COLUMN session_generation bigint NOT NULL DEFAULT 0,
    ADD COLUMN last_signed_in_at  timestamptz;

CREATE FUNCTION users_end_sessions_on_deactivation() RETURNS trigger AS $$
BEGIN
    NEW.session_generation := OLD.session_generation + 1;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER users_end_sessions_on_deactivation
    BEFORE UPDATE OF active ON users
    FOR EACH ROW WHEN (OLD.active AND NOT NEW.active)
    EXECUTE FUNCTION users_end_sessions_on_deactivation();
