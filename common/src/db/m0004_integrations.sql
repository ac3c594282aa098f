-- Integration credentials: what another service of an org puts on the commands it
-- publishes (docs/messages.md). Like every secret, only the SHA-256 digest and the last
-- four characters are kept. Revoking sets `revoked_at`; the row stays for the list.

CREATE TABLE integration_credentials (
    id         uuid PRIMARY KEY,
    org_id     uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name       text NOT NULL,
    token_hash text NOT NULL UNIQUE,
    hint       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX integration_credentials_org ON integration_credentials (org_id, created_at);
