-- Roster's initial schema. Every tenant row carries org_id; secrets are SHA-256 hex.

CREATE TABLE orgs (
    id                   uuid PRIMARY KEY,
    name                 text NOT NULL,
    admin_key_hash       text NOT NULL UNIQUE,
    provisioning_enabled boolean NOT NULL DEFAULT false,
    send_invites         boolean NOT NULL DEFAULT true,
    lock_synced_fields   boolean NOT NULL DEFAULT false,
    created_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE scim_tokens (
    id         uuid PRIMARY KEY,
    org_id     uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    token_hash text NOT NULL UNIQUE,
    hint       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX scim_tokens_live ON scim_tokens (org_id) WHERE revoked_at IS NULL;

CREATE TABLE users (
    id           uuid PRIMARY KEY,
    org_id       uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_name    text NOT NULL,
    external_id  text,
    active       boolean NOT NULL DEFAULT true,
    display_name text,
    given_name   text,
    family_name  text,
    email        text,
    resource     jsonb NOT NULL,
    version      bigint NOT NULL DEFAULT 1,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);
-- userName is unique per org, case-insensitively (RFC 7643 §4.1.1, OKTA.md pitfall 3).
CREATE UNIQUE INDEX users_org_user_name ON users (org_id, lower(user_name));
CREATE INDEX users_org_id ON users (org_id, id);
CREATE INDEX users_org_external_id ON users (org_id, external_id);
CREATE INDEX users_org_email ON users (org_id, lower(email));

-- Events written in the command's transaction; the relay publishes them in id order.
CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    event_id     uuid NOT NULL UNIQUE,
    org_id       uuid NOT NULL,
    routing_key  text NOT NULL,
    envelope     jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

-- One row per applied command: deduplicates redeliveries and stores the reply.
CREATE TABLE processed_commands (
    command_id   uuid PRIMARY KEY,
    org_id       uuid,
    command_type text NOT NULL,
    reply        jsonb,
    processed_at timestamptz NOT NULL DEFAULT now()
);

-- Invites: one per user, decided by the worker in the create's transaction (when the org
-- has invites on); the mailer sends it and sets the token; accepting is a worker command.
CREATE TABLE invites (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    email       text NOT NULL,
    token_hash  text UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    sent_at     timestamptz,
    accepted_at timestamptz
);

CREATE TABLE audit_log (
    id             bigserial PRIMARY KEY,
    org_id         uuid,
    command_id     uuid NOT NULL,
    correlation_id text NOT NULL,
    actor          text NOT NULL,
    action         text NOT NULL,
    resource_type  text NOT NULL,
    resource_id    text,
    detail         jsonb NOT NULL DEFAULT '{}',
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_org ON audit_log (org_id, id DESC);
